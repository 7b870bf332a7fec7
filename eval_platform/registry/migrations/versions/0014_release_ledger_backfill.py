"""back-fill the release ledger from the gate decisions, overrides and promotions recorded before it existed

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-07 03:00:00.000000

Migration 0011 created the ledger empty: promotions, overrides and gate decisions made before it have no
entries, so "what served at T" answered nothing for older times. This revision appends one entry per such
record to its model name's chain, oldest first, each at the time the record was made (``recorded_at``), hashed
and chained exactly as ``eval_platform.registry.ledger.append`` does, so ``evalp releases verify`` holds:

* a model-version or online gate decision (``gate_decisions``, scope not ``run``) -> ``gate_decision``;
* an override (``gate_overrides``) -> ``override``;
* a promotion row (``model_promotions``) -> ``promotion`` (``rollback`` for a row whose reason starts with
  ``rollback: ``, ``demotion`` for a row without a version; both are written with their entry since 0011).

A record is already in the ledger when an entry names its id (``gate_decision_id`` of a gate decision entry,
``override_id``, ``promotion_id``); those are skipped, so running it on a ledger 0011 already started only adds
what is missing, after the existing entries (``serving_at`` orders serving entries by ``recorded_at``). Evidence
has the shape ``ledger.evidence_of`` gives (the model file hash, the version's runs with their lineage hashes,
read at the upgrade) plus ``backfilled: "migration 0014"``.

Downgrade removes nothing: the ledger is append-only (PostgreSQL's trigger refuses deletes), and the back-filled
entries are valid entries of 0011's table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from eval_platform.registry.ledger import GENESIS, entry_hash

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_LEDGER = sa.table('release_ledger', sa.column('id', sa.Integer), sa.column('model_name', sa.String),
                   sa.column('sequence', sa.Integer), sa.column('model_version', sa.Integer), sa.column('kind', sa.String),
                   sa.column('actor', sa.String), sa.column('reason', sa.Text), sa.column('recorded_at', sa.DateTime(timezone=True)),
                   sa.column('evidence', sa.JSON), sa.column('previous_hash', sa.String), sa.column('entry_hash', sa.String))
_DECISIONS = sa.table('gate_decisions', sa.column('id', sa.Integer), sa.column('scope', sa.String), sa.column('model_name', sa.String),
                      sa.column('model_version', sa.Integer), sa.column('decision', sa.String),
                      sa.column('decided_at', sa.DateTime(timezone=True)))
_OVERRIDES = sa.table('gate_overrides', sa.column('id', sa.Integer), sa.column('gate_decision_id', sa.Integer),
                      sa.column('model_name', sa.String), sa.column('model_version', sa.Integer),
                      sa.column('overridden_decision', sa.String), sa.column('suites', sa.JSON), sa.column('approver', sa.String),
                      sa.column('reason', sa.Text), sa.column('created_at', sa.DateTime(timezone=True)))
_PROMOTIONS = sa.table('model_promotions', sa.column('id', sa.Integer), sa.column('model_name', sa.String),
                       sa.column('model_version', sa.Integer), sa.column('gate_decision_id', sa.Integer),
                       sa.column('promoted_by', sa.String), sa.column('reason', sa.Text),
                       sa.column('promoted_at', sa.DateTime(timezone=True)))
_MODELS = sa.table('models', sa.column('name', sa.String), sa.column('version', sa.Integer), sa.column('file_hash', sa.String))
_RUNS = sa.table('eval_runs', sa.column('run_id', sa.String), sa.column('model_name', sa.String), sa.column('model_version', sa.Integer),
                 sa.column('dataset_id', sa.String), sa.column('dataset_version', sa.Integer), sa.column('suite_id', sa.String),
                 sa.column('suite_version', sa.Integer), sa.column('status', sa.String), sa.column('trigger', sa.String),
                 sa.column('metrics_hash', sa.String), sa.column('predictions_hash', sa.String), sa.column('results', sa.JSON))
_DATASETS = sa.table('eval_datasets', sa.column('dataset_id', sa.String), sa.column('version', sa.Integer),
                     sa.column('content_hash', sa.String))
_SUITES = sa.table('metric_suites', sa.column('suite_id', sa.String), sa.column('version', sa.Integer),
                   sa.column('definition_hash', sa.String))

_BACKFILLED = "migration 0014"
_CANARY_TRIGGER = "canary"
_EVIDENCE_STATES = ("succeeded", "failed", "invalid")
#: when two records share a time, the order their events happen in: decided, overridden, then released
_KIND_ORDER = {"gate_decision": 0, "override": 1, "promotion": 2, "rollback": 2, "demotion": 2}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _evidence(bind, name: str, version: int | None, decision_id: int | None, **extra) -> dict:
    """``ledger.evidence_of``'s shape, read with plain SQL (the ORM may be ahead of this revision's schema)."""
    evidence: dict = {"gate_decision_id": decision_id, **extra, "backfilled": _BACKFILLED}
    if version is None:
        return evidence
    evidence["model_file_hash"] = bind.execute(sa.select(_MODELS.c.file_hash).where(
        _MODELS.c.name == name, _MODELS.c.version == version)).scalar()
    runs = bind.execute(sa.select(_RUNS).where(
        _RUNS.c.model_name == name, _RUNS.c.model_version == version, _RUNS.c.trigger != _CANARY_TRIGGER,
        _RUNS.c.status.in_(_EVIDENCE_STATES)).order_by(_RUNS.c.run_id)).mappings().all()
    evidence["runs"] = []
    for run in runs:
        content_hash = bind.execute(sa.select(_DATASETS.c.content_hash).where(
            _DATASETS.c.dataset_id == run["dataset_id"], _DATASETS.c.version == run["dataset_version"])).scalar()
        definition_hash = bind.execute(sa.select(_SUITES.c.definition_hash).where(
            _SUITES.c.suite_id == run["suite_id"], _SUITES.c.version == run["suite_version"])).scalar()
        results = run["results"] if isinstance(run["results"], dict) else {}
        artifacts = results.get("artifacts") if isinstance(results.get("artifacts"), dict) else {}
        evidence["runs"].append({
            "run_id": run["run_id"], "status": str(run["status"]),
            "dataset": f"{run['dataset_id']}@{run['dataset_version']}", "suite": f"{run['suite_id']}@{run['suite_version']}",
            "dataset_content_hash": content_hash, "suite_definition_hash": definition_hash,
            "metrics_hash": run["metrics_hash"], "predictions_hash": run["predictions_hash"],
            "curves_png": artifacts.get("curves_png"),
        })
    return evidence


def _ledgered(bind) -> tuple[dict[str, tuple[int, str]], set[int], set[int], set[int]]:
    """Each name's chain head (sequence, hash), and the ids of decisions, overrides and promotions with an entry."""
    heads: dict[str, tuple[int, str]] = {}
    decisions: set[int] = set()
    overrides: set[int] = set()
    promotions: set[int] = set()
    rows = bind.execute(sa.select(_LEDGER.c.model_name, _LEDGER.c.sequence, _LEDGER.c.kind, _LEDGER.c.evidence,
                                  _LEDGER.c.entry_hash).order_by(_LEDGER.c.model_name, _LEDGER.c.sequence)).mappings()
    for row in rows:
        heads[row["model_name"]] = (row["sequence"], row["entry_hash"])
        evidence = row["evidence"] if isinstance(row["evidence"], dict) else {}
        if row["kind"] == "gate_decision" and evidence.get("gate_decision_id") is not None:
            decisions.add(int(evidence["gate_decision_id"]))
        if evidence.get("override_id") is not None:
            overrides.add(int(evidence["override_id"]))
        if evidence.get("promotion_id") is not None:
            promotions.add(int(evidence["promotion_id"]))
    return heads, decisions, overrides, promotions


def _missing_events(bind) -> list[dict]:
    """Every decision, override and promotion without an entry, as the entry it gets (without its chain fields)."""
    _, decided, overridden, promoted = _ledgered(bind)
    scopes = {}
    events = []
    for row in bind.execute(sa.select(_DECISIONS).where(_DECISIONS.c.scope != "run")).mappings():
        scopes[row["id"]] = row["scope"]
        if row["id"] in decided:
            continue
        events.append({"at": row["decided_at"], "kind": "gate_decision", "id": row["id"], "name": row["model_name"],
                       "version": row["model_version"], "actor": "gate", "reason": f"{row['scope']} gate: {row['decision']}",
                       "evidence": (row["id"], {"scope": row["scope"], "decision": row["decision"]})})
    for row in bind.execute(sa.select(_OVERRIDES)).mappings():
        if row["id"] in overridden:
            continue
        events.append({"at": row["created_at"], "kind": "override", "id": row["id"], "name": row["model_name"],
                       "version": row["model_version"], "actor": row["approver"], "reason": row["reason"],
                       "evidence": (row["gate_decision_id"], {
                           "override_id": row["id"], "scope": scopes.get(row["gate_decision_id"], "model_version"),
                           "overridden_decision": row["overridden_decision"], "suites": list(row["suites"] or [])})})
    for row in bind.execute(sa.select(_PROMOTIONS)).mappings():
        if row["id"] in promoted:
            continue
        reason = row["reason"] or ""
        if row["model_version"] is None:
            kind, reason = "demotion", reason.removeprefix("demotion: ")
        elif reason.startswith("rollback: "):
            kind, reason = "rollback", reason.removeprefix("rollback: ")
        else:
            kind = "promotion"
        events.append({"at": row["promoted_at"], "kind": kind, "id": row["id"], "name": row["model_name"],
                       "version": row["model_version"], "actor": row["promoted_by"], "reason": reason,
                       "evidence": (row["gate_decision_id"], {"promotion_id": row["id"]})})
    events.sort(key=lambda e: (e["name"], _aware(e["at"]), _KIND_ORDER[e["kind"]], e["id"]))
    return events


def upgrade() -> None:
    bind = op.get_bind()
    heads, _, _, _ = _ledgered(bind)
    for event in _missing_events(bind):
        sequence, previous = heads.get(event["name"], (0, GENESIS))
        decision_id, extra = event["evidence"]
        entry = SimpleNamespace(model_name=event["name"], sequence=sequence + 1, model_version=event["version"],
                                kind=event["kind"], actor=(event["actor"] or "")[:200], reason=event["reason"] or "",
                                recorded_at=event["at"], evidence=_evidence(bind, event["name"], event["version"], decision_id, **extra),
                                previous_hash=previous)
        entry.entry_hash = entry_hash(entry)  # type: ignore[arg-type]
        bind.execute(sa.insert(_LEDGER).values(
            model_name=entry.model_name, sequence=entry.sequence, model_version=entry.model_version, kind=entry.kind,
            actor=entry.actor, reason=entry.reason, recorded_at=entry.recorded_at, evidence=entry.evidence,
            previous_hash=entry.previous_hash, entry_hash=entry.entry_hash))
        heads[event["name"]] = (entry.sequence, entry.entry_hash)


def downgrade() -> None:
    pass  # append-only: the back-filled entries stay (see the module's docstring)
