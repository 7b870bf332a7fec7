"""Retention of model outputs, tied to the classification of the dataset they were computed on.

Model outputs are the prediction artifacts in the store (what ``eval_runs.predictions_hash`` and the
``prediction_sets`` cache rows point at). Each is kept for the retention of its dataset's access level
(restricted 30 days, internal 365, public forever, by default; :class:`RetentionPolicy`), counted from
when it was produced. An artifact shared by datasets of different levels (the same content registered
twice) follows the strictest of them.

:func:`purge_expired` (run daily by the Dagster schedule in ``jobs/retention.py``, or ``evalp retention
purge``) deletes expired artifacts from the store and their cache rows from the registry, records each
in ``purge_log``, marks the runs that used them in ``eval_run_purges`` and clears their
``predictions_hash``. Results, metric tables, comparisons, gate decisions and lineage are left as they
are. A purged run is recomputed from its lineage by requesting it again with ``recompute=True`` (same
model file, dataset content and suite: the same numbers); a later comparison against a purged baseline
reproduces the baseline's predictions by itself.

The registry is changed first and the bytes deleted after the commit: a crash in between leaves
unreferenced bytes that the next purge deletes (``purge_log.store_deleted`` is false until then), never
a run pointing at missing bytes. Artifacts of queued or running runs are left for the next purge.
Idempotency keys of the API older than a day are deleted too.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from eval_platform.errors import InvalidInput
from eval_platform.platform import PREDICTIONS, QUEUED, RUNNING, EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, PredictionSet
from eval_platform.registry.api_schema import IdempotencyRecord, PurgeLogEntry, RunPurge
from eval_platform.registry.schema import utcnow

#: Days model outputs are kept per dataset access level (None: forever).
DEFAULT_RETENTION_DAYS: dict[str, int | None] = {"restricted": 30, "internal": 365, "public": None}
#: ``restricted=30,internal=365,public=forever`` overrides the defaults.
RETENTION_ENV = "EVAL_PLATFORM_RETENTION_DAYS"
IDEMPOTENCY_HOURS = 24.0
_STRICTNESS = ("restricted", "internal", "public")  # strictest first
log = logging.getLogger("eval_platform.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    days: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))
    idempotency_hours: float = IDEMPOTENCY_HOURS

    @classmethod
    def parse(cls, text: str) -> "RetentionPolicy":
        days = dict(DEFAULT_RETENTION_DAYS)
        for part in filter(None, (p.strip() for p in text.split(","))):
            level, sep, value = part.partition("=")
            level, value = level.strip(), value.strip().lower()
            if not sep or level not in DEFAULT_RETENTION_DAYS:
                raise InvalidInput(RETENTION_ENV, f"{part!r}: write LEVEL=DAYS with LEVEL one of {', '.join(DEFAULT_RETENTION_DAYS)}")
            if value in ("forever", "none", "inf"):
                days[level] = None
            elif value.isdigit():
                days[level] = int(value)
            else:
                raise InvalidInput(RETENTION_ENV, f"{part!r}: DAYS must be a whole number or 'forever'")
        return cls(days)

    @classmethod
    def from_env(cls) -> "RetentionPolicy":
        return cls.parse(os.environ.get(RETENTION_ENV, ""))

    def for_level(self, level: str) -> int | None:
        return self.days.get(level, self.days["internal"])


@dataclass
class PurgedArtifact:
    kind: str
    artifact_hash: str
    classification: str
    retention_days: int
    produced_at: str
    run_ids: list[str]
    cache_keys: list[str]
    datasets: list[str]
    store_deleted: bool = False


@dataclass
class PurgeReport:
    purge_id: str
    now: str
    dry_run: bool
    purged: list[PurgedArtifact] = field(default_factory=list)
    #: expired artifacts left for the next purge because a queued or running run uses them
    deferred: list[str] = field(default_factory=list)
    kept: int = 0
    runs_marked: list[str] = field(default_factory=list)
    cache_rows_deleted: int = 0
    #: bytes deleted now for purges whose store delete had failed before
    retried_deletes: int = 0
    idempotency_keys_deleted: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: the registry writes UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _artifact_path(platform: EvalPlatform, kind: str, digest: str) -> str:
    return platform.store._path(kind, digest, ".parquet")


def delete_artifact(platform: EvalPlatform, kind: str, digest: str) -> bool:
    """Delete one table artifact from the store; False when it was not there."""
    path = _artifact_path(platform, kind, digest)
    if not platform.store.fs.exists(path):
        return False
    platform.store.fs.rm(path)
    return True


def _still_referenced(session, digest: str) -> bool:
    return (session.scalar(select(EvalRun.run_id).where(EvalRun.predictions_hash == digest).limit(1)) is not None
            or session.scalar(select(PredictionSet.cache_key).where(PredictionSet.artifact_hash == digest).limit(1)) is not None)


def _expired_artifacts(platform: EvalPlatform, now: datetime, policy: RetentionPolicy):
    with platform.registry.session() as session:
        datasets = list(session.execute(select(EvalDataset.dataset_id, EvalDataset.version, EvalDataset.content_hash,
                                               EvalDataset.access_policy)))
        cache_rows = list(session.execute(select(PredictionSet.cache_key, PredictionSet.artifact_hash,
                                                 PredictionSet.dataset_content_hash, PredictionSet.created_at)))
        runs = list(session.execute(select(EvalRun.run_id, EvalRun.predictions_hash, EvalRun.dataset_id, EvalRun.dataset_version,
                                           EvalRun.status, EvalRun.started_at, EvalRun.requested_at)
                                    .where(EvalRun.predictions_hash.is_not(None))))
    level_of = {(d.dataset_id, d.version): (d.access_policy or {}).get("level", "internal") for d in datasets}
    by_content: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in datasets:
        by_content[d.content_hash].append((f"{d.dataset_id}@{d.version}", level_of[(d.dataset_id, d.version)]))

    artifacts: dict[str, dict] = defaultdict(lambda: {"runs": [], "cache": [], "datasets": {}, "times": [], "busy": False})
    for row in cache_rows:
        entry = artifacts[row.artifact_hash]
        entry["cache"].append(row.cache_key)
        entry["times"].append(_aware(row.created_at))
        entry["datasets"].update(dict(by_content.get(row.dataset_content_hash, [])))
    for row in runs:
        entry = artifacts[row.predictions_hash]
        entry["runs"].append(row.run_id)
        entry["times"].append(_aware(row.started_at or row.requested_at))
        entry["datasets"][f"{row.dataset_id}@{row.dataset_version}"] = level_of.get((row.dataset_id, row.dataset_version), "internal")
        entry["busy"] |= row.status in (QUEUED, RUNNING)

    expired, deferred, kept = [], [], 0
    for digest, entry in sorted(artifacts.items()):
        levels = set(entry["datasets"].values()) or {"internal"}
        classification = next(level for level in (*_STRICTNESS, *sorted(levels)) if level in levels)
        retentions = [policy.for_level(level) for level in levels]
        finite = [days for days in retentions if days is not None]
        if not finite:
            kept += 1
            continue
        days = min(finite)
        produced = min(t for t in entry["times"] if t is not None)
        if now < produced + timedelta(days=days):
            kept += 1
            continue
        if entry["busy"]:
            deferred.append(digest)
            continue
        expired.append(PurgedArtifact(PREDICTIONS, digest, classification, days, produced.isoformat(), sorted(entry["runs"]),
                                      sorted(entry["cache"]), sorted(entry["datasets"])))
    return expired, deferred, kept


def purge_expired(platform: EvalPlatform, now: datetime | None = None, policy: RetentionPolicy | None = None,
                  dry_run: bool = False) -> PurgeReport:
    """Delete the model outputs whose retention has passed; see the module docstring."""
    now = _aware(now) or utcnow()
    policy = policy or RetentionPolicy.from_env()
    expired, deferred, kept = _expired_artifacts(platform, now, policy)
    report = PurgeReport(purge_id=f"purge-{uuid.uuid4().hex[:12]}", now=now.isoformat(), dry_run=dry_run,
                         purged=expired, deferred=deferred, kept=kept)
    if dry_run:
        report.runs_marked = sorted(r for a in expired for r in a.run_ids)
        report.cache_rows_deleted = sum(len(a.cache_keys) for a in expired)
        return report

    log_ids: dict[str, int] = {}
    with platform.registry.session() as session:
        for artifact in expired:
            entry = PurgeLogEntry(purge_id=report.purge_id, kind=artifact.kind, artifact_hash=artifact.artifact_hash,
                                  classification=artifact.classification, retention_days=artifact.retention_days,
                                  produced_at=datetime.fromisoformat(artifact.produced_at), run_ids=artifact.run_ids,
                                  cache_keys=artifact.cache_keys, datasets=artifact.datasets, store_deleted=False, purged_at=now)
            session.add(entry)
            session.flush()
            log_ids[artifact.artifact_hash] = entry.id
            for run_id in artifact.run_ids:
                run = session.get(EvalRun, run_id)
                if run is None or run.predictions_hash != artifact.artifact_hash:
                    continue
                run.predictions_hash = None
                marker = session.get(RunPurge, run_id)
                if marker is None:
                    session.add(RunPurge(run_id=run_id, predictions_hash=artifact.artifact_hash, purge_log_id=entry.id, purged_at=now))
                else:
                    marker.predictions_hash, marker.purge_log_id, marker.purged_at = artifact.artifact_hash, entry.id, now
                report.runs_marked.append(run_id)
            if artifact.cache_keys:
                report.cache_rows_deleted += session.execute(
                    delete(PredictionSet).where(PredictionSet.cache_key.in_(artifact.cache_keys))).rowcount or 0
        cutoff = now - timedelta(hours=policy.idempotency_hours)
        report.idempotency_keys_deleted = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)).rowcount or 0

    # bytes last, and only those nothing refers to any more (a run may have reproduced them meanwhile)
    with platform.registry.session() as session:
        pending = list(session.scalars(select(PurgeLogEntry).where(PurgeLogEntry.store_deleted.is_(False))))
        for entry in pending:
            if _still_referenced(session, entry.artifact_hash):
                entry.store_deleted = True  # reproduced by a later run: the bytes belong to it now
                continue
            try:
                delete_artifact(platform, entry.kind, entry.artifact_hash)
            except OSError as error:  # left for the next purge
                log.warning("retention: could not delete %s artifact", entry.kind,
                            extra={"fields": {"artifact": entry.artifact_hash, "error": type(error).__name__}})
                continue
            entry.store_deleted = True
            if entry.purge_id != report.purge_id:
                report.retried_deletes += 1
    deleted = {e.artifact_hash for e in pending if e.store_deleted}
    for artifact in expired:
        artifact.store_deleted = artifact.artifact_hash in deleted
    report.runs_marked.sort()
    log.info("retention purge", extra={"fields": {"purge_id": report.purge_id, "purged": len(expired), "deferred": len(deferred),
                                                  "runs_marked": len(report.runs_marked)}})
    return report


def purge_log(platform: EvalPlatform, limit: int = 1000) -> list[PurgeLogEntry]:
    with platform.registry.session() as session:
        return list(session.scalars(select(PurgeLogEntry).order_by(PurgeLogEntry.id.desc()).limit(limit)))


def run_purges(platform: EvalPlatform, run_ids: list[str]) -> dict[str, RunPurge]:
    """The purge markers of these runs (only runs whose predictions are currently purged)."""
    if not run_ids:
        return {}
    with platform.registry.session() as session:
        return {m.run_id: m for m in session.scalars(select(RunPurge).where(RunPurge.run_id.in_(run_ids)))}


__all__ = ["DEFAULT_RETENTION_DAYS", "PurgeReport", "PurgedArtifact", "RetentionPolicy", "delete_artifact", "purge_expired",
           "purge_log", "run_purges"]
