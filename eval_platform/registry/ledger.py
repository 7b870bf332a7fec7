"""The release ledger: an append-only, hash-chained record of what happened to each model name's releases.

Every gate decision, override, promotion, rollback and demotion of a model name appends one
:class:`~eval_platform.registry.schema.ReleaseLedgerEntry` **in the transaction that writes the event**
(:func:`append` takes the caller's session), so the ledger never misses an event nor records one that was
rolled back. An entry carries who acted, why, when, and the lineage hashes of its evidence
(:func:`evidence_of`): the gate decision, the model file hash, and per run behind the decision its dataset
content hash, suite definition hash, metric table and predictions artifact hashes.

**Append-only.** This module has no update or delete path, and nothing else writes the table. On
PostgreSQL a trigger (migration 0011) refuses any ``UPDATE`` or ``DELETE`` of a row as well. Each name's
entries form a chain: ``entry_hash = sha256(canonical JSON of the entry's fields and previous_hash)``, the
first entry's ``previous_hash`` being :data:`GENESIS`. Editing any field of a row, deleting a row or
reordering rows breaks the chain, which :func:`verify` reports with the first broken entry. (A chain proves
tampering *after the fact* to anyone holding the last hash, e.g. in an exported evidence bundle; it cannot
stop someone with write access from rewriting the whole chain consistently.)

Two writers appending to the same name at once: on PostgreSQL a transaction-level advisory lock per name
queues them (each reads the other's entry once it commits); SQLite has a single writer. Should two ever
compute the same ``sequence``, the unique ``(model_name, sequence)`` refuses the second, whose whole
transaction (the event with it) rolls back: the chain never forks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from eval_platform.core.hashing import json_hash
from eval_platform.core.states import CANARY_TRIGGER, LedgerKind, RunStatus
from eval_platform.registry.schema import EvalDataset, EvalRun, MetricSuite, Model, ReleaseLedgerEntry, utcnow

#: the ``previous_hash`` of a name's first entry
GENESIS = "sha256:" + "0" * 64


def _utc_text(moment: datetime) -> str:
    """The entry's time as hashed: UTC, microseconds (SQLite hands it back naive; both read the same)."""
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(entry: ReleaseLedgerEntry) -> str:
    """The hash of an entry's content and of the entry before it (what :func:`verify` recomputes)."""
    return json_hash({
        "model_name": entry.model_name, "sequence": entry.sequence, "model_version": entry.model_version,
        "kind": str(entry.kind), "actor": entry.actor, "reason": entry.reason, "recorded_at": _utc_text(entry.recorded_at),
        "evidence": entry.evidence, "previous_hash": entry.previous_hash,
    })


def evidence_of(session: Session, model_name: str, model_version: int | None, gate_decision_id: int | None = None,
                **extra) -> dict:
    """The lineage hashes behind a model version's release state: its file hash, the gate decision (id), and
    every current (not superseded) run of it with its dataset content hash, suite definition hash, metric
    table and predictions artifact hashes. ``extra`` adds event-specific facts (an override's id, a
    decision's outcome)."""
    evidence: dict = {"gate_decision_id": gate_decision_id, **extra}
    if model_version is None:
        return evidence
    model = session.scalar(select(Model).where(Model.name == model_name, Model.version == model_version))
    evidence["model_file_hash"] = model.file_hash if model is not None else None
    runs = session.scalars(select(EvalRun).where(
        EvalRun.model_name == model_name, EvalRun.model_version == model_version, EvalRun.trigger != CANARY_TRIGGER,
        EvalRun.status.in_((RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INVALID))).order_by(EvalRun.run_id))
    evidence["runs"] = []
    for run in runs:
        dataset = session.scalar(select(EvalDataset).where(EvalDataset.dataset_id == run.dataset_id,
                                                           EvalDataset.version == run.dataset_version))
        suite = session.scalar(select(MetricSuite).where(MetricSuite.suite_id == run.suite_id,
                                                         MetricSuite.version == run.suite_version))
        artifacts = (run.results or {}).get("artifacts") or {} if isinstance(run.results, dict) else {}
        evidence["runs"].append({
            "run_id": run.run_id, "status": str(run.status), "dataset": run.dataset_key, "suite": run.suite_key,
            "dataset_content_hash": dataset.content_hash if dataset is not None else None,
            "suite_definition_hash": suite.definition_hash if suite is not None else None,
            "metrics_hash": run.metrics_hash, "predictions_hash": run.predictions_hash,
            "curves_png": artifacts.get("curves_png") if isinstance(artifacts, dict) else None,
        })
    return evidence


def _lock_key(model_name: str) -> int:
    """A signed 64-bit advisory lock key of a model name's chain."""
    digest = hashlib.sha256(f"release_ledger:{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def append(session: Session, model_name: str, model_version: int | None, kind: LedgerKind, actor: str, reason: str,
           evidence: dict) -> ReleaseLedgerEntry:
    """Add the next entry of ``model_name``'s chain to the caller's transaction (committed or rolled back
    with the event it records)."""
    if session.get_bind().dialect.name == "postgresql":
        # appends to one name queue here until the holder commits, so concurrent events (two versions'
        # gates decided at once) each extend the chain instead of one failing on the unique sequence
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(model_name)})
    last = session.scalar(select(ReleaseLedgerEntry).where(ReleaseLedgerEntry.model_name == model_name)
                          .order_by(ReleaseLedgerEntry.sequence.desc()).limit(1))
    # microseconds kept as stored: PostgreSQL and SQLite both keep them, so the hash reads back the same
    entry = ReleaseLedgerEntry(model_name=model_name, sequence=(last.sequence + 1) if last else 1, model_version=model_version,
                               kind=LedgerKind(kind).value, actor=actor or "", reason=reason or "", recorded_at=utcnow(),
                               evidence=evidence, previous_hash=last.entry_hash if last else GENESIS)
    entry.entry_hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def entries(session: Session, model_name: str) -> list[ReleaseLedgerEntry]:
    """A model name's entries, oldest first."""
    return list(session.scalars(select(ReleaseLedgerEntry).where(ReleaseLedgerEntry.model_name == model_name)
                                .order_by(ReleaseLedgerEntry.sequence)))


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of :func:`verify`: ``ok``, how many entries were checked, the last hash, and the first problem."""

    model_name: str
    ok: bool
    entries: int
    head: str
    #: the sequence number of the first entry that does not hold (None when ok)
    broken_at: int | None = None
    problem: str = ""


def verify(model_name: str, chain: list[ReleaseLedgerEntry]) -> ChainCheck:
    """Recompute the chain: sequences 1..n without gaps, each ``previous_hash`` the entry before's hash and
    each ``entry_hash`` the hash of the entry's own content."""
    previous = GENESIS
    for position, entry in enumerate(chain, start=1):
        if entry.sequence != position:
            return ChainCheck(model_name, False, len(chain), previous, entry.sequence,
                              f"entry {entry.sequence} found where {position} was expected (an entry was deleted or inserted)")
        if entry.previous_hash != previous:
            return ChainCheck(model_name, False, len(chain), previous, entry.sequence,
                              f"entry {entry.sequence} does not follow the entry before it (previous hash differs)")
        if entry_hash(entry) != entry.entry_hash:
            return ChainCheck(model_name, False, len(chain), previous, entry.sequence,
                              f"entry {entry.sequence}'s content does not match its hash (it was edited)")
        previous = entry.entry_hash
    return ChainCheck(model_name, True, len(chain), previous)
