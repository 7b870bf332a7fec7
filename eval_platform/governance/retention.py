"""Retention of model outputs, tied to the classification of the dataset they were computed on.

Model outputs are the prediction artifacts in the store (what ``eval_runs.predictions_hash`` and the
``prediction_sets`` cache rows point at), the judge verdict artifacts (``results["judge"]["verdicts"]``,
the pairwise judge's ``results["judge_pairwise"]`` and ``comparison["pairwise"][...]["verdicts"]``) and
the cached LLM calls behind them (``llm_call_cache`` rows: candidate answers and judge verdict samples,
which hold the model's text). Each artifact is kept for the retention of its dataset's access level
(restricted 30 days, internal 365, public forever, by default; :class:`RetentionPolicy`), counted from
its newest production still live: a run already purged of it (its predictions unlinked, or named with it
in the purge log) no longer dates it, and a run that produced it again (a recompute's identical verdicts or
shards) dates it from then; a run served by the prediction cache did not produce it (the cache row dates it).
An artifact shared by datasets of different levels (the same content registered twice) follows the strictest
of them.

:func:`purge_expired` (run daily by the Dagster schedule in ``jobs/retention.py``, or ``evalp retention
purge``) deletes expired artifacts from the store and their cache rows from the registry, records each
in ``purge_log``, marks the runs that used them in ``eval_run_purges`` and clears their
``predictions_hash``. A purged verdict artifact is logged (kind ``judge_verdicts``, with its runs) but the
run's results still name it: results are not rewritten. The LLM calls deleted with an artifact are the
ones its rows were answered from (their keys are in its log entry); LLM calls of a dataset older than its
retention that no artifact names any more (e.g. of a run stopped midway) are deleted too, logged as kind
``llm_calls``. A ``predictions``-kind model file uploaded through the API (outputs computed elsewhere,
copied under ``<home>/models/`` at registration) is a model output too: it is kept for the strictest
retention of the datasets in its model's eval plan and runs, counted from its registration, then deleted
and logged (kind :data:`MODEL_FILES`, with the model's runs); the model version stays registered, and
uploading the same file again restores it. The shards a sharded run's predictions and verdicts were merged from
(``evaluation/shards.py``: store kinds ``prediction_shards`` and ``judgment_shards``, each named by
``shard_index`` entries; their use by each run is recorded in ``eval_run_shards``) are the same model outputs: a
shard artifact goes when no run that used it holds it any more, logged under its kind with those runs, the
strictest classification of their datasets and the shard keys of its index entries (its ``cache_keys``). A run
holds its shards while its own age is within its dataset's retention and its merged predictions (verdicts, for
judgment shards), if it has them, are stored, not purged from it and not expiring (so purging a run's merged
artifact purges its shards; a run stopped before its merge keeps them for its own retention). Shards are
content-addressed and shared between runs: bytes a kept run still uses stay. The index entries go before the
bytes; an index entry whose artifact is gone is never trusted (the shard is computed again).
Results, metric tables, comparisons, gate decisions and lineage are left as they are. A purged run is recomputed from its
lineage by requesting it again with ``recompute=True`` (same model file, dataset content and suite: the same
numbers; an LLM's calls are made again, its shards computed again); a later comparison against a purged
baseline reproduces the baseline's predictions and verdicts by itself.

The registry is changed first and the bytes deleted after the commit: a crash in between leaves
unreferenced bytes that the next purge deletes (``purge_log.store_deleted`` is false until then), never
a run pointing at missing bytes; bytes whose purge is pending are not logged again (one entry per deletion),
and an artifact is logged with the runs losing it then, not those purged of it before (unless only they name
bytes written again since). Artifacts of queued or running runs are left for the next purge.
Idempotency keys of the API older than a day are deleted too.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session

from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.core.states import RunStatus
from eval_platform.core.store import JUDGE_VERDICTS, PREDICTIONS
from eval_platform.evaluation.shards import JUDGMENT_SHARDS, PREDICTION_SHARDS, SHARD_INDEX
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    EvalDataset,
    EvalPlanEntry,
    EvalRun,
    Model,
    PredictionSet,
)
from eval_platform.registry.api_schema import IdempotencyRecord, PurgeLogEntry, RunPurge, RunShard
from eval_platform.registry.llm_schema import LLMCallRecord
from eval_platform.registry.schema import utcnow

#: Days model outputs are kept per dataset access level (None: forever).
DEFAULT_RETENTION_DAYS: dict[str, int | None] = {"restricted": 30, "internal": 365, "public": None}
#: ``restricted=30,internal=365,public=forever`` overrides the defaults.
RETENTION_ENV = "EVAL_PLATFORM_RETENTION_DAYS"
IDEMPOTENCY_HOURS = 24.0
#: Purge-log kind of LLM calls deleted because their dataset's retention passed (no artifact names them).
LLM_CALLS = "llm_calls"
#: Purge-log kind of a ``predictions``-kind model file copied under the home (its ``artifact_hash`` is the file's hash).
MODEL_FILES = "model_files"
#: Store kinds of shard artifacts (their purge-log ``cache_keys`` are the keys of their ``shard_index`` entries).
SHARD_KINDS = (PREDICTION_SHARDS, JUDGMENT_SHARDS)
_STRICTNESS = ("restricted", "internal", "public")  # strictest first
log = logging.getLogger("eval_platform.governance.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each data classification keeps model outputs (None: kept), and hours an idempotency key lives."""

    days: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION_DAYS))
    idempotency_hours: float = IDEMPOTENCY_HOURS

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
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
    def from_env(cls) -> RetentionPolicy:
        return cls.parse(os.environ.get(RETENTION_ENV, ""))

    def for_level(self, level: str) -> int | None:
        return self.days.get(level, self.days["internal"])


@dataclass
class PurgedArtifact:
    """One artifact a purge deleted (or would delete): why (classification, retention) and what named it."""

    kind: str
    artifact_hash: str
    classification: str
    retention_days: int
    produced_at: str
    run_ids: list[str]
    #: registry cache rows deleted with it: ``prediction_sets`` keys, and the ``llm_call_cache`` keys its
    #: rows were answered from (candidate answers, judge verdict samples)
    cache_keys: list[str]
    datasets: list[str]
    store_deleted: bool = False


@dataclass
class PurgeReport:
    """What one purge did, or would do on a dry run."""

    purge_id: str
    now: str
    dry_run: bool
    purged: list[PurgedArtifact] = field(default_factory=list)
    #: expired artifacts left for the next purge because a queued or running run uses them
    deferred: list[str] = field(default_factory=list)
    kept: int = 0
    runs_marked: list[str] = field(default_factory=list)
    #: runs whose judge verdicts (pointwise or pairwise) were purged
    judgments_purged: list[str] = field(default_factory=list)
    cache_rows_deleted: int = 0
    #: shard artifacts purged (among ``purged``), and the ``shard_index`` entries naming them deleted (would be, on a dry run)
    shard_artifacts: int = 0
    shard_index_entries: int = 0
    #: ``llm_call_cache`` rows deleted (those of purged artifacts and those past their dataset's retention)
    llm_calls_deleted: int = 0
    #: bytes deleted now for purges whose store delete had failed before
    retried_deletes: int = 0
    idempotency_keys_deleted: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: the registry writes UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _artifact_path(platform: EvalPlatform, kind: str, digest: str) -> str:
    return platform.store._path(kind, digest, ".parquet")


def delete_artifact(platform: EvalPlatform, kind: str, digest: str) -> bool:
    """Delete one table artifact from the store; False when it was not there."""
    path = _artifact_path(platform, kind, digest)
    if not platform.store.fs.exists(path):
        return False
    platform.store.fs.rm(path)
    return True


def _copied_model_files(platform: EvalPlatform) -> dict[str, list[Path]]:
    """``predictions``-kind model files the API copied under ``<home>/models/`` and still there, by file hash
    (a file given to the library by path is the caller's, not the platform's to delete)."""
    home_models = (platform.config.home / "models").resolve()
    with platform.registry.session() as session:
        rows = list(session.execute(select(Model.file_hash, Model.uri).where(Model.kind == "predictions")))
    files: dict[str, list[Path]] = defaultdict(list)
    for row in rows:
        path = Path(row.uri).resolve()
        if path.parent == home_models and path.is_file() and path not in files[row.file_hash]:
            files[row.file_hash].append(path)
    return files


def _delete_model_file(platform: EvalPlatform, digest: str) -> bool:
    deleted = False
    for path in _copied_model_files(platform).get(digest, []):
        path.unlink(missing_ok=True)
        deleted = True
    return deleted


def verdict_hashes(results: dict | None, comparison: dict | None) -> set[str]:
    """The judge verdict artifacts a run's records name: pointwise, and pairwise (judge step and comparison)."""
    found = {((results or {}).get(key) or {}).get("verdicts") for key in ("judge", "judge_pairwise")}
    found |= {(record or {}).get("verdicts") for record in ((comparison or {}).get("pairwise") or {}).values()}
    return {digest for digest in found if digest}


def _llm_call_keys(platform: EvalPlatform, kind: str, digest: str) -> list[str]:
    """Keys of the LLM calls an artifact's rows were answered from (read before its bytes go)."""
    import json

    if not platform.store.has_table(kind, digest):
        return []
    table = platform.store.get_table(kind, digest)
    if kind == PREDICTIONS and "cache_key" in table.columns:  # an LLM candidate's answers
        return sorted({k for k in table["cache_key"].dropna()})
    if kind == JUDGE_VERDICTS and "samples" in table.columns:
        return sorted({s["cache_key"] for samples in table["samples"].dropna() for s in json.loads(samples) if s.get("cache_key")})
    return []


#: what retention knows of one artifact: the runs and cache rows naming it, the datasets (and their
#: classification) it was computed on, when it was produced (``times``: its live productions), whether a queued
#: or running run uses it, and the runs already purged of it (``gone``, with their times) that still name it
Usage = dict[str, Any]
#: (kind, artifact) -> the runs already purged of it
PurgedOf = dict[tuple[str, str], set[str]]
_BUSY = (RunStatus.QUEUED, RunStatus.RUNNING)


def _usage() -> Usage:
    return {"runs": [], "cache": [], "datasets": {}, "times": [], "busy": False, "gone": [], "gone_times": []}


def _purged_of(session: Session) -> PurgedOf:
    """The runs already purged of each artifact, which neither date it, hold it nor keep its bytes (the one rule
    for every kind): for predictions the runs marked purged of them and not linked to them again (a comparison
    reproduces a purged baseline's predictions); for the kinds a run keeps naming once purged (verdicts in its
    results, shards in ``eval_run_shards``) the runs of their purge-log entries."""
    purged: PurgedOf = defaultdict(set)
    for entry in session.execute(select(PurgeLogEntry.kind, PurgeLogEntry.artifact_hash, PurgeLogEntry.run_ids)
                                 .where(PurgeLogEntry.kind.in_((JUDGE_VERDICTS, *SHARD_KINDS)))):
        purged[(entry.kind, entry.artifact_hash)].update(entry.run_ids or ())
    for marker in session.execute(select(RunPurge.run_id, RunPurge.predictions_hash, EvalRun.predictions_hash.label("linked"))
                                  .join(EvalRun, EvalRun.run_id == RunPurge.run_id)):
        if marker.linked != marker.predictions_hash:
            purged[(PREDICTIONS, marker.predictions_hash)].add(marker.run_id)
    return purged


def _pending_purges(session: Session) -> set[tuple[str, str]]:
    """Artifacts logged as purged whose bytes are not deleted yet: the next delete pass settles them (deleted, or
    kept for a run that produced them again), so they are never logged twice."""
    return {(e.kind, e.artifact_hash) for e in session.execute(select(PurgeLogEntry.kind, PurgeLogEntry.artifact_hash)
                                                               .where(PurgeLogEntry.store_deleted.is_(False)))}


def _dated(usage: Usage) -> datetime | None:
    """When an artifact counts as produced: its newest live production. Without one (only runs already purged of
    it name it, and its bytes were written again, e.g. by a comparison judging a purged baseline again) the
    newest of those runs: it goes at the next purge."""
    live = [t for t in usage["times"] if t is not None]
    return max(live or [t for t in usage["gone_times"] if t is not None], default=None)


def _logged_runs(usage: Usage) -> list[str]:
    """The runs an expired artifact is logged with: those losing it now (those purged of it before, when none)."""
    return sorted(set(usage["runs"] or usage["gone"]))


def _expired_artifacts(platform: EvalPlatform, now: datetime,
                       policy: RetentionPolicy) -> tuple[list[PurgedArtifact], list[str], int, dict[tuple[str, int], str]]:
    """``(expired, deferred, kept, level_of)`` over predictions, judge verdicts and copied model files."""
    with platform.registry.session() as session:
        datasets = list(session.execute(select(EvalDataset.dataset_id, EvalDataset.version, EvalDataset.content_hash,
                                               EvalDataset.access_policy)))
    level_of = {(d.dataset_id, d.version): (d.access_policy or {}).get("level", "internal") for d in datasets}
    by_content: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in datasets:
        by_content[d.content_hash].append((f"{d.dataset_id}@{d.version}", level_of[(d.dataset_id, d.version)]))
    with platform.registry.session() as session:
        purged, pending = _purged_of(session), _pending_purges(session)

    def candidates(kind: str, found: dict[str, Usage]) -> dict[str, Usage]:
        return {digest: usage for digest, usage in found.items() if (kind, digest) not in pending}

    expired: list[PurgedArtifact] = []
    deferred: list[str] = []
    kept = 0
    for kind, found in ((PREDICTIONS, _prediction_usage(platform, by_content, level_of)),
                        (JUDGE_VERDICTS, _verdict_usage(platform, level_of, purged)), (MODEL_FILES, _model_file_usage(platform, level_of))):
        more = _expire(kind, candidates(kind, found), now, policy)
        expired += more[0]
        deferred += more[1]
        kept += more[2]
    merged_expired = {(a.kind, a.artifact_hash) for a in expired}
    for kind, found in _shard_usage(platform, now, policy, level_of, merged_expired, purged).items():
        more = _expire_shards(kind, candidates(kind, found), policy)
        expired += more[0]
        deferred += more[1]
        kept += more[2]
    return expired, deferred, kept, level_of


def _used_by_run(usage: Usage, run_id: str, produced: datetime | None, dataset: tuple[str, int], status: str,
                 level_of: dict[tuple[str, int], str], gone: bool = False) -> None:
    """A run naming the artifact: a live use (``produced``: when it produced it, None when it did not), or, ``gone``,
    a run already purged of it, which neither dates it nor is logged with it again."""
    usage["gone" if gone else "runs"].append(run_id)
    usage["gone_times" if gone else "times"].append(_aware(produced))
    usage["datasets"][f"{dataset[0]}@{dataset[1]}"] = level_of.get(dataset, "internal")
    usage["busy"] |= status in _BUSY


def _prediction_usage(platform: EvalPlatform, by_content: dict[str, list[tuple[str, str]]],
                      level_of: dict[tuple[str, int], str]) -> dict[str, Usage]:
    """Prediction artifacts: named by prediction-cache rows (on every dataset version of that content) and by runs."""
    with platform.registry.session() as session:
        cache_rows = list(session.execute(select(PredictionSet.cache_key, PredictionSet.artifact_hash,
                                                 PredictionSet.dataset_content_hash, PredictionSet.created_at)))
        runs = list(session.execute(select(EvalRun.run_id, EvalRun.predictions_hash, EvalRun.dataset_id, EvalRun.dataset_version,
                                           EvalRun.status, EvalRun.started_at, EvalRun.requested_at)
                                    .where(EvalRun.predictions_hash.is_not(None))))
    artifacts: dict[str, Usage] = defaultdict(_usage)
    cached_since: dict[str, datetime] = {}
    for cached in cache_rows:
        usage = artifacts[cached.artifact_hash]
        usage["cache"].append(cached.cache_key)
        usage["times"].append(_aware(cached.created_at))
        usage["datasets"].update(dict(by_content.get(cached.dataset_content_hash, [])))
        created = _aware(cached.created_at)
        if created is not None:
            cached_since[cached.artifact_hash] = min(created, cached_since.get(cached.artifact_hash, created))
    for run in runs:  # a purged run is unlinked from its predictions: every run here is a live use
        started = _aware(run.started_at or run.requested_at)
        since = cached_since.get(run.predictions_hash)
        served = since is not None and started is not None and started >= since  # by the cache row: not a production
        _used_by_run(artifacts[run.predictions_hash], run.run_id, None if served else started,
                     (run.dataset_id, run.dataset_version), run.status, level_of)
    return artifacts


def _verdict_usage(platform: EvalPlatform, level_of: dict[tuple[str, int], str], purged: PurgedOf) -> dict[str, Usage]:
    """Judge verdict artifacts: named by the records (results, comparison) of the runs that judged (each wrote
    them: a production; results are not rewritten by a purge, so the runs purged of them are told apart)."""
    with platform.registry.session() as session:
        judged_runs = list(session.execute(select(EvalRun.run_id, EvalRun.results, EvalRun.comparison, EvalRun.dataset_id,
                                                  EvalRun.dataset_version, EvalRun.status, EvalRun.started_at,
                                                  EvalRun.requested_at)))
    verdicts: dict[str, Usage] = defaultdict(_usage)
    for run in judged_runs:
        for digest in verdict_hashes(run.results, run.comparison):
            _used_by_run(verdicts[digest], run.run_id, run.started_at or run.requested_at, (run.dataset_id, run.dataset_version),
                         run.status, level_of, gone=run.run_id in purged.get((JUDGE_VERDICTS, digest), ()))
    # results still name purged verdicts: those whose bytes are gone are not purged (and logged) again
    return {digest: usage for digest, usage in verdicts.items() if platform.store.has_table(JUDGE_VERDICTS, digest)}


def _shard_usage(platform: EvalPlatform, now: datetime, policy: RetentionPolicy, level_of: dict[tuple[str, int], str],
                 merged_expired: set[tuple[str, str]], purged: PurgedOf) -> dict[str, dict[str, Usage]]:
    """Shard artifacts by kind: used by the runs that recorded them (their cache keys: the shard keys of the
    index entries), ``held`` while one of those runs still keeps what the shard is part of (see :func:`_holds_shard`)."""
    with platform.registry.session() as session:
        rows = list(session.execute(select(RunShard.kind, RunShard.artifact_hash, RunShard.shard_key, EvalRun.run_id,
                                           EvalRun.predictions_hash, EvalRun.results, EvalRun.dataset_id, EvalRun.dataset_version,
                                           EvalRun.status, EvalRun.started_at, EvalRun.requested_at, RunPurge.run_id.label("marked"))
                                    .join(EvalRun, EvalRun.run_id == RunShard.run_id)
                                    .outerjoin(RunPurge, RunPurge.run_id == RunShard.run_id)))
    stored: dict[str, bool] = {}  # verdict artifact -> still in the store (read once)

    def verdicts_stored(digest: str) -> bool:
        if digest not in stored:
            stored[digest] = platform.store.has_table(JUDGE_VERDICTS, digest)
        return stored[digest]

    found: dict[str, dict[str, Usage]] = {kind: defaultdict(lambda: {**_usage(), "held": False}) for kind in SHARD_KINDS}
    for row in rows:
        if row.kind not in found:
            continue
        usage = found[row.kind][row.artifact_hash]
        gone = row.run_id in purged.get((row.kind, row.artifact_hash), ())  # purged of it before: neither dates nor holds it
        _used_by_run(usage, row.run_id, row.started_at or row.requested_at, (row.dataset_id, row.dataset_version), row.status,
                     level_of, gone=gone)
        if row.shard_key not in usage["cache"]:
            usage["cache"].append(row.shard_key)
        usage["held"] |= not gone and _holds_shard(row, now, policy, level_of, merged_expired, purged, verdicts_stored)
    # a shard whose bytes are gone (purged before; its index entries went first) has nothing left to purge
    return {kind: {digest: usage for digest, usage in artifacts.items() if platform.store.has_table(kind, digest)}
            for kind, artifacts in found.items()}


def _holds_shard(row: Any, now: datetime, policy: RetentionPolicy, level_of: dict[tuple[str, int], str],
                 merged_expired: set[tuple[str, str]], purged: PurgedOf, verdicts_stored: Callable[[str], bool]) -> bool:
    """Whether the run still keeps what the shard is part of: its merged predictions (for a prediction shard) or
    judge verdicts (for a judgment shard), if it has them, stored, not purged from it and not expiring now, and
    its own age within its dataset's retention (counted from the run: a shard is dated from its newest live
    production like any artifact, so another run's later identical merged artifact does not keep it)."""
    if row.kind == PREDICTION_SHARDS:
        merged_kind, merged = PREDICTIONS, row.predictions_hash
        if merged is None and row.marked is not None:
            return False  # its predictions were purged (unlinked, the run marked)
    else:
        merged_kind, merged = JUDGE_VERDICTS, ((row.results or {}).get("judge") or {}).get("verdicts")
    if isinstance(merged, str):
        if row.run_id in purged.get((merged_kind, merged), ()) or (merged_kind == JUDGE_VERDICTS and not verdicts_stored(merged)):
            return False  # purged from it
        if (merged_kind, merged) in merged_expired:
            return False
    days = policy.for_level(level_of.get((row.dataset_id, row.dataset_version), "internal"))
    produced = _aware(row.started_at or row.requested_at)
    return days is None or produced is None or now < produced + timedelta(days=days)


def _expire_shards(kind: str, artifacts: dict[str, Usage], policy: RetentionPolicy) -> tuple[list[PurgedArtifact], list[str], int]:
    """``(expired, deferred, kept)`` of one kind of shard artifact: expired when no run using it holds it (each
    run's merged artifact expired or purged, or its own age passed); deferred while a run using it is queued or
    running. Logged with the strictest classification of those runs' datasets and its newest live production."""
    expired: list[PurgedArtifact] = []
    deferred: list[str] = []
    kept = 0
    for digest, entry in sorted(artifacts.items()):
        if entry["held"]:
            kept += 1
            continue
        if entry["busy"]:
            deferred.append(digest)
            continue
        levels = set(entry["datasets"].values()) or {"internal"}
        classification = next(level for level in (*_STRICTNESS, *sorted(levels)) if level in levels)
        finite = [days for days in (policy.for_level(level) for level in levels) if days is not None]
        produced = _dated(entry) or utcnow()
        expired.append(PurgedArtifact(kind, digest, classification, min(finite, default=0), produced.isoformat(),
                                      _logged_runs(entry), sorted(entry["cache"]), sorted(entry["datasets"])))
    return expired, deferred, kept


def _model_file_usage(platform: EvalPlatform, level_of: dict[tuple[str, int], str]) -> dict[str, Usage]:
    """Copied predictions files: computed on every version of the datasets of their model name's plan."""
    model_files: dict[str, Usage] = defaultdict(_usage)
    copied = _copied_model_files(platform)
    if not copied:
        return model_files
    with platform.registry.session() as session:
        models = list(session.execute(select(Model.name, Model.version, Model.file_hash, Model.registered_at)
                                      .where(Model.kind == "predictions", Model.file_hash.in_(list(copied)))))
        plans: dict[str, set[str]] = defaultdict(set)
        for plan_entry in session.execute(select(EvalPlanEntry.model_name, EvalPlanEntry.dataset_id)
                                          .where(EvalPlanEntry.model_name.in_({m.name for m in models}))):
            plans[plan_entry.model_name].add(plan_entry.dataset_id)
        model_runs = list(session.execute(select(EvalRun.run_id, EvalRun.model_name, EvalRun.model_version, EvalRun.dataset_id,
                                                 EvalRun.dataset_version, EvalRun.status)
                                          .where(EvalRun.model_name.in_({m.name for m in models}))))
    for model in models:
        usage = model_files[model.file_hash]
        usage["times"].append(_aware(model.registered_at))
        for dataset_id in plans[model.name]:  # every version of a plan dataset: its rows are what the file answers
            usage["datasets"].update({f"{d}@{v}": level for (d, v), level in level_of.items() if d == dataset_id})
        for run in model_runs:
            if (run.model_name, run.model_version) == (model.name, model.version):
                usage["runs"].append(run.run_id)
                usage["datasets"][f"{run.dataset_id}@{run.dataset_version}"] = level_of.get((run.dataset_id, run.dataset_version), "internal")
                usage["busy"] |= run.status in _BUSY
    return model_files


def _expire(kind: str, artifacts: dict[str, Usage], now: datetime, policy: RetentionPolicy) -> tuple[list[PurgedArtifact], list[str], int]:
    """``(expired, deferred, kept)`` of one kind of artifact: expired when its newest live production (see
    :func:`_dated`) is older than the strictest retention of the datasets it was computed on; deferred while a
    run using it is queued or running."""
    expired: list[PurgedArtifact] = []
    deferred: list[str] = []
    kept = 0
    for digest, entry in sorted(artifacts.items()):
        levels = set(entry["datasets"].values()) or {"internal"}
        classification = next(level for level in (*_STRICTNESS, *sorted(levels)) if level in levels)
        retentions = [policy.for_level(level) for level in levels]
        finite = [days for days in retentions if days is not None]
        if not finite:
            kept += 1
            continue
        days = min(finite)
        produced = _dated(entry)
        if produced is None or now < produced + timedelta(days=days):
            kept += 1
            continue
        if entry["busy"]:
            deferred.append(digest)
            continue
        expired.append(PurgedArtifact(kind, digest, classification, days, produced.isoformat(), _logged_runs(entry),
                                      sorted(entry["cache"]), sorted(entry["datasets"])))
    return expired, deferred, kept


def _expired_llm_calls(platform: EvalPlatform, now: datetime, policy: RetentionPolicy, level_of: dict) -> list[str]:
    """``llm_call_cache`` rows whose dataset's retention has passed since they were made."""
    with platform.registry.session() as session:
        rows = list(session.execute(select(LLMCallRecord.cache_key, LLMCallRecord.dataset, LLMCallRecord.created_at)
                                    .where(LLMCallRecord.dataset.is_not(None))))
    expired = []
    for row in rows:
        dataset_id, _, version = row.dataset.rpartition("@")
        level = level_of.get((dataset_id, int(version))) if version.isdigit() else None
        days = policy.for_level(level or "internal")
        created_at = _aware(row.created_at)
        if days is not None and created_at is not None and now >= created_at + timedelta(days=days):
            expired.append(row.cache_key)
    return sorted(expired)


def purge_expired(platform: EvalPlatform, now: datetime | None = None, policy: RetentionPolicy | None = None,
                  dry_run: bool = False) -> PurgeReport:
    """Delete the model outputs whose retention has passed; see the module docstring."""
    now = _aware(now) or utcnow()
    policy = policy or RetentionPolicy.from_env()
    expired, deferred, kept, level_of = _expired_artifacts(platform, now, policy)
    report = PurgeReport(purge_id=f"purge-{uuid.uuid4().hex[:12]}", now=now.isoformat(), dry_run=dry_run,
                         purged=expired, deferred=deferred, kept=kept)
    named, orphans = _expired_llm_call_keys(platform, now, policy, level_of, expired, deferred)
    report.judgments_purged = sorted({r for a in expired if a.kind == JUDGE_VERDICTS for r in a.run_ids})
    report.shard_artifacts = sum(1 for a in expired if a.kind in SHARD_KINDS)
    if dry_run:
        report.runs_marked = sorted(r for a in expired if a.kind == PREDICTIONS for r in a.run_ids)
        report.cache_rows_deleted = sum(len(a.cache_keys) for a in expired if a.kind == PREDICTIONS)
        report.llm_calls_deleted = len(named | set(orphans))
        report.shard_index_entries = sum(1 for a in expired if a.kind in SHARD_KINDS for key in a.cache_keys
                                         if platform.store.index_entry(SHARD_INDEX, key) == a.artifact_hash)
        return report
    with platform.registry.session() as session:
        for artifact in expired:
            _log_and_unlink(session, report, artifact, now)
        if orphans:
            session.add(PurgeLogEntry(purge_id=report.purge_id, kind=LLM_CALLS, artifact_hash=json_hash(orphans),
                                      classification="", retention_days=0, produced_at=now, run_ids=[], cache_keys=orphans,
                                      datasets=[], store_deleted=True, purged_at=now))  # rows only: no bytes to delete
            report.llm_calls_deleted += _delete_llm_calls(session, orphans)
        cutoff = now - timedelta(hours=policy.idempotency_hours)
        report.idempotency_keys_deleted = _deleted_rows(session, delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    deleted = _delete_unreferenced_bytes(platform, report)
    for artifact in expired:
        artifact.store_deleted = (artifact.kind, artifact.artifact_hash) in deleted
    report.runs_marked.sort()
    log.info("retention purge", extra={"fields": {"purge_id": report.purge_id, "purged": len(expired), "deferred": len(deferred),
                                                  "runs_marked": len(report.runs_marked)}})
    return report


def _expired_llm_call_keys(platform: EvalPlatform, now: datetime, policy: RetentionPolicy, level_of: dict[tuple[str, int], str],
                           expired: list[PurgedArtifact], deferred: list[str]) -> tuple[set[str], list[str]]:
    """``(named, orphans)``: the LLM calls behind each expired artifact (added to its cache keys, read while its
    bytes are still there), and the calls no expired artifact names but past their dataset's retention (the
    calls of a busy run wait)."""
    # by kind and hash: a run of one shard has a shard artifact and merged predictions of the same content
    llm_keys = {(a.kind, a.artifact_hash): _llm_call_keys(platform, a.kind, a.artifact_hash) if a.kind != MODEL_FILES else [] for a in expired}
    for artifact in expired:
        artifact.cache_keys = sorted(set(artifact.cache_keys) | set(llm_keys[(artifact.kind, artifact.artifact_hash)]))
    named = {k for keys in llm_keys.values() for k in keys}
    busy_keys = {k for digest in deferred for k in _llm_call_keys(platform, PREDICTIONS, digest) + _llm_call_keys(platform, JUDGE_VERDICTS, digest)}
    orphans = [k for k in _expired_llm_calls(platform, now, policy, level_of) if k not in named and k not in busy_keys]
    return named, orphans


def _log_and_unlink(session: Session, report: PurgeReport, artifact: PurgedArtifact, now: datetime) -> None:
    """Log the purge of an artifact (its bytes go last), unlink it from its runs (marked purged) and delete the
    cache rows and LLM calls that name it."""
    entry = PurgeLogEntry(purge_id=report.purge_id, kind=artifact.kind, artifact_hash=artifact.artifact_hash,
                          classification=artifact.classification, retention_days=artifact.retention_days,
                          produced_at=datetime.fromisoformat(artifact.produced_at), run_ids=artifact.run_ids,
                          cache_keys=artifact.cache_keys, datasets=artifact.datasets, store_deleted=False, purged_at=now)
    session.add(entry)
    session.flush()
    for run_id in artifact.run_ids if artifact.kind == PREDICTIONS else ():
        if _mark_run_purged(session, run_id, artifact.artifact_hash, entry.id, now):
            report.runs_marked.append(run_id)
    if artifact.cache_keys and artifact.kind not in SHARD_KINDS:  # a shard's keys name its index entries: they go with its bytes
        report.cache_rows_deleted += _deleted_rows(session, delete(PredictionSet).where(PredictionSet.cache_key.in_(artifact.cache_keys)))
        report.llm_calls_deleted += _delete_llm_calls(session, artifact.cache_keys)


def _mark_run_purged(session: Session, run_id: str, digest: str, log_id: int, now: datetime) -> bool:
    """A run whose predictions are the purged artifact loses them, with a marker saying so; False when the run
    is gone or has other predictions since."""
    run = session.get(EvalRun, run_id)
    if run is None or run.predictions_hash != digest:
        return False
    run.predictions_hash = None
    marker = session.get(RunPurge, run_id)
    if marker is None:
        session.add(RunPurge(run_id=run_id, predictions_hash=digest, purge_log_id=log_id, purged_at=now))
    else:
        marker.predictions_hash, marker.purge_log_id, marker.purged_at = digest, log_id, now
    return True


def _delete_unreferenced_bytes(platform: EvalPlatform, report: PurgeReport) -> set[tuple[str, str]]:
    """Bytes last, and only those nothing refers to any more (a run may have reproduced them meanwhile); a
    delete that failed in an earlier purge is retried. Returns the artifacts (kind, hash) whose bytes are gone."""
    with platform.registry.session() as session:
        pending = list(session.scalars(select(PurgeLogEntry).where(PurgeLogEntry.store_deleted.is_(False))))
        verdict_users = _verdict_users(session) if any(e.kind == JUDGE_VERDICTS for e in pending) else {}
        purged = _purged_of(session) if pending else {}
        for entry in pending:
            if _reproduced(session, entry, verdict_users, purged):
                entry.store_deleted = True  # reproduced by a later run: the bytes belong to it now
                continue
            if not _delete_bytes(platform, entry, report):
                continue  # left for the next purge
            entry.store_deleted = True
            if entry.purge_id != report.purge_id:
                report.retried_deletes += 1
    return {(e.kind, e.artifact_hash) for e in pending if e.store_deleted}


def _reproduced(session: Session, entry: PurgeLogEntry, verdict_users: dict[str, list[str]], purged: PurgedOf) -> bool:
    """Whether the artifact is in live use again (a run produced it again since, e.g. a recompute's identical
    verdicts or shards): a prediction-cache row names it, or a run not purged of it (:func:`_purged_of`, this
    purge's entries included) does, the same rule that dates it."""
    if entry.kind == MODEL_FILES:
        return False  # a file uploaded again after its purge is found expired (and logged) again
    digest = entry.artifact_hash
    if entry.kind == JUDGE_VERDICTS:
        users = set(verdict_users.get(digest, ()))
    elif entry.kind in SHARD_KINDS:
        users = set(session.scalars(select(RunShard.run_id).where(RunShard.kind == entry.kind, RunShard.artifact_hash == digest)))
    else:
        if session.scalar(select(PredictionSet.cache_key).where(PredictionSet.artifact_hash == digest).limit(1)) is not None:
            return True
        users = set(session.scalars(select(EvalRun.run_id).where(EvalRun.predictions_hash == digest)))
    return bool(users - purged.get((entry.kind, digest), set()))


def _delete_bytes(platform: EvalPlatform, entry: PurgeLogEntry, report: PurgeReport) -> bool:
    try:
        if entry.kind == MODEL_FILES:
            _delete_model_file(platform, entry.artifact_hash)
        else:
            index_keys = (entry.cache_keys or []) if entry.kind in SHARD_KINDS else []
            for key in index_keys:  # a shard's index entries first: none is left naming missing bytes
                report.shard_index_entries += platform.store.delete_index_entry(SHARD_INDEX, key, entry.artifact_hash)
            delete_artifact(platform, entry.kind, entry.artifact_hash)
    except OSError as error:
        log.warning("retention: could not delete %s artifact", entry.kind,
                    extra={"fields": {"artifact": entry.artifact_hash, "error": type(error).__name__}})
        return False
    return True


def _deleted_rows(session: Session, statement: Delete) -> int:
    """How many rows a DELETE removed (its result is a cursor's, which counts them)."""
    result = session.execute(statement)
    return (result.rowcount or 0) if isinstance(result, CursorResult) else 0


def _delete_llm_calls(session: Session, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), 500):  # bounded IN lists
        deleted += _deleted_rows(session, delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(keys[start:start + 500])))
    return deleted


def _verdict_users(session: Session) -> dict[str, list[str]]:
    """Verdict artifact -> the runs whose records name it."""
    users: dict[str, list[str]] = defaultdict(list)
    for row in session.execute(select(EvalRun.run_id, EvalRun.results, EvalRun.comparison)):
        for digest in verdict_hashes(row.results, row.comparison):
            users[digest].append(row.run_id)
    return users


def purge_log(platform: EvalPlatform, limit: int = 1000) -> list[PurgeLogEntry]:
    with platform.registry.session() as session:
        return list(session.scalars(select(PurgeLogEntry).order_by(PurgeLogEntry.id.desc()).limit(limit)))


def run_purges(platform: EvalPlatform, run_ids: list[str]) -> dict[str, RunPurge]:
    """The purge markers of these runs (only runs whose predictions are currently purged)."""
    if not run_ids:
        return {}
    with platform.registry.session() as session:
        return {m.run_id: m for m in session.scalars(select(RunPurge).where(RunPurge.run_id.in_(run_ids)))}


__all__ = ["DEFAULT_RETENTION_DAYS", "LLM_CALLS", "MODEL_FILES", "SHARD_KINDS", "PurgeReport", "PurgedArtifact", "RetentionPolicy", "delete_artifact",
           "purge_expired", "purge_log", "run_purges", "verdict_hashes"]
