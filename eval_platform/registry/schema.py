"""Registry tables (SQLAlchemy 2 ORM). Alembic migrations in ``eval_platform/registry/migrations`` create them.

Versioned things (datasets, suites, models) are immutable rows: a change of content is a new row with the
next version number, and ``*_hash`` columns make re-registering identical content return the existing row.
Requests to evaluate are rows too (``eval_runs`` with status ``queued``): the Dagster sensor turns them into
runs, so the CLI and the API never wait for the orchestrator and queue time is measurable.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every registry table (the metadata Alembic migrates)."""


class EvalDataset(Base):
    """A registered, immutable version of an evaluation dataset: content hash, schema, task type and policies."""

    __tablename__ = "eval_datasets"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_version"),
        UniqueConstraint("dataset_id", "version_hash", name="uq_dataset_version_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    task_type: Mapped[str] = mapped_column(String(64))
    label_policy: Mapped[str] = mapped_column(String(64))
    access_policy: Mapped[dict] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(80))
    version_hash: Mapped[str] = mapped_column(String(80))
    row_count: Mapped[int] = mapped_column(Integer)
    schema: Mapped[dict] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the team that registered the name first (every version carries it); NULL: unowned (admins only)
    owner_team: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: :class:`~eval_platform.core.states.DatasetRole`: standard, or a golden/canary set the schedule re-evaluates
    role: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    #: where the version came from, when the platform made it (a review-queue publish: parent version, review
    #: item ids, reviewers); None for an uploaded version. Not part of the version hash.
    lineage: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    @property
    def key(self) -> str:
        return f"{self.dataset_id}@{self.version}"


class MetricSuite(Base):
    """A registered, immutable version of a metric suite, identified by the hash of its normalised definition."""

    __tablename__ = "metric_suites"
    __table_args__ = (
        UniqueConstraint("suite_id", "version", name="uq_suite_version"),
        UniqueConstraint("suite_id", "definition_hash", name="uq_suite_definition_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    suite_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32))
    task_type: Mapped[str] = mapped_column(String(64))
    metric_defs: Mapped[dict] = mapped_column(JSON)
    definition_hash: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the team that registered the name first (every version carries it); NULL: unowned (admins only)
    owner_team: Mapped[str | None] = mapped_column(String(200), nullable=True)

    @property
    def key(self) -> str:
        return f"{self.suite_id}@{self.version}"


class Model(Base):
    """A registered version of a model: its kind, the stored file (by hash) and the types trusted to load it."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_version"),
        UniqueConstraint("name", "file_hash", name="uq_model_file_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    file_hash: Mapped[str] = mapped_column(String(80))
    trusted_types: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the team that registered the name first (every version carries it); NULL: unowned (admins only)
    owner_team: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: the newest example time the model was trained on (leakage: eval examples at or before it are counted)
    training_cutoff: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: content hash of the stored manifest of training examples' hashes (leakage by identical examples)
    training_manifest_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


class EvalPlanEntry(Base):
    """A (dataset, suite) pair every version of a model name is evaluated on."""

    __tablename__ = "model_eval_plans"
    __table_args__ = (UniqueConstraint("model_name", "dataset_id", "suite_id", name="uq_eval_plan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    dataset_id: Mapped[str] = mapped_column(String(200))
    suite_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Promotion(Base):
    """A model version released for its name; the newest row of a name is the serving version and the current
    baseline. A rollback is a new row for the earlier version; a demotion a row without a version (nothing serves)."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    #: NULL: a demotion (nothing of the name serves)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gate_decision_id: Mapped[int | None] = mapped_column(ForeignKey("gate_decisions.id"), nullable=True)
    promoted_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    promoted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalRun(Base):
    """One evaluation of a model version on a dataset version with a suite version: status, results and lineage."""

    __tablename__ = "eval_runs"
    __table_args__ = (
        UniqueConstraint(
            "model_name", "model_version", "dataset_id", "dataset_version", "suite_id", "suite_version", "attempt",
            name="uq_eval_run_attempt",
        ),
        # every lookup path (migration 0006): by request time (listings, and the /metrics window, whose
        # aggregated columns the index holds too, so the figures never read the rows and their wide JSON),
        # the queue (oldest queued first), a model version's runs by status, a dataset's or suite's runs
        Index("ix_eval_runs_requested_at", "requested_at", "status", "finished_at", "queue_seconds", "metric_seconds", "cost"),
        Index("ix_eval_runs_status_requested_at", "status", "requested_at"),
        Index("ix_eval_runs_model_version_status", "model_name", "model_version", "status"),
        Index("ix_eval_runs_dataset_version", "dataset_id", "dataset_version"),
        Index("ix_eval_runs_suite_version", "suite_id", "suite_version"),
    )

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    dataset_id: Mapped[str] = mapped_column(String(200))
    dataset_version: Mapped[int] = mapped_column(Integer)
    suite_id: Mapped[str] = mapped_column(String(200))
    suite_version: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    baseline_run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_baseline: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True, default="queued")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[str] = mapped_column(String(32))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    predictions_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    metrics_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    results: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    comparison: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    lineage: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    metric_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``started_at - requested_at`` in seconds, written with ``started_at`` (the /metrics queue time)
    queue_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: What the run's LLM calls cost (candidate and judges, as their call reports say), written when the
    #: run finishes (see :func:`recorded_call_cost`); 0 for a run without LLM calls, None while unfinished.
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``comparison["stale_baseline_run_id"]`` mirrored whenever the comparison is written, so counting
    #: stale baselines is an indexed count instead of reading every run's comparison JSON.
    stale_baseline_run_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The orchestrator's attempts at this row: how many Dagster launches carried it, the key of the last one
    # (a tag on its runs and on their retries) and when it may be launched again. The reconciler in
    # eval_platform/evaluation/launches.py bounds them, so a queued row always ends in a run or a recorded failure.
    launch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    launch_key: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_launch_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def model_key(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    @property
    def dataset_key(self) -> str:
        return f"{self.dataset_id}@{self.dataset_version}"

    @property
    def suite_key(self) -> str:
        return f"{self.suite_id}@{self.suite_version}"


#: Statuses at which a run's cost is recorded: the run is over and its calls are paid for.
COSTED_STATUSES = ("succeeded", "failed")


def _report_cost(report) -> float:
    cost = report.get("cost") if isinstance(report, dict) else None
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost) else 0.0


def recorded_call_cost(results: dict | None, lineage: dict | None, comparison: dict | None) -> float:
    """What a run's LLM calls cost, as their call reports say (each report's ``cost`` counts only the calls
    it sent, not its cache hits): the candidate's calls (``lineage["candidate_calls"]``), the judge's
    (``results["judge"]["report"]``) and the pairwise judge's, recorded by the judge step
    (``results["judge_pairwise"]``) or by the comparison (``comparison["pairwise"]``, one record per
    pairwise metric). A pairwise record appears under several keys: each counts once (by its verdicts)."""
    results, lineage, comparison = results or {}, lineage or {}, comparison or {}
    total = _report_cost(lineage.get("candidate_calls"))
    judge = results.get("judge")
    if isinstance(judge, dict):
        total += _report_cost(judge.get("report"))
    pairwise: dict[str, float] = {}
    records = [results.get("judge_pairwise"), *((comparison.get("pairwise") or {}).values())]
    for record in records:
        if isinstance(record, dict):
            # the same verdicts judged twice: the second time came from the call cache (cost 0)
            key = str(record.get("verdicts"))
            pairwise[key] = max(pairwise.get(key, 0.0), _report_cost(record.get("report")))
    return total + sum(pairwise.values())


def _as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive (they are UTC); new ones are aware."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _current_or_cleared(state, name: str):
    """An attribute's value, or the value it had when this flush clears it (a failed run's results are
    cleared as it fails; what its calls cost was still spent)."""
    value = getattr(state.obj(), name)
    if value is None:
        deleted = state.attrs[name].history.deleted
        value = deleted[0] if deleted else None
    return value


@event.listens_for(EvalRun, "before_insert")
@event.listens_for(EvalRun, "before_update")
def _derived_run_columns(mapper, connection, run: EvalRun) -> None:
    """Keep the columns /metrics aggregates in SQL in step with what they are derived from, on every ORM
    write of a run (whoever writes it): its queue time, the stale baseline of its comparison, and its cost
    once finished."""
    state = inspect(run)
    inserting = not state.has_identity

    def changed(name: str) -> bool:
        return inserting or state.attrs[name].history.has_changes()

    if inserting and run.requested_at is None:
        run.requested_at = utcnow()  # the column's default, needed now for the queue time
    if changed("started_at") or changed("requested_at"):
        started, requested = _as_utc(run.started_at), _as_utc(run.requested_at)
        run.queue_seconds = (started - requested).total_seconds() if started and requested else None
    if changed("comparison"):
        stale = (run.comparison or {}).get("stale_baseline_run_id") if isinstance(run.comparison, dict) else None
        run.stale_baseline_run_id = str(stale)[:40] if stale else None
    if run.status in COSTED_STATUSES and any(changed(n) for n in ("status", "results", "lineage", "comparison")):
        run.cost = recorded_call_cost(*(_current_or_cleared(state, n) for n in ("results", "lineage", "comparison")))


class PredictionSet(Base):
    """Cache of deterministic predictions: one model file on one dataset content, computed once."""

    __tablename__ = "prediction_sets"

    cache_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[int] = mapped_column(Integer)
    model_file_hash: Mapped[str] = mapped_column(String(80))
    dataset_content_hash: Mapped[str] = mapped_column(String(80))
    artifact_hash: Mapped[str] = mapped_column(String(80))
    row_count: Mapped[int] = mapped_column(Integer)
    compute_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GateDecisionRecord(Base):
    """A gate decision, for one eval run (scope ``run``) or for a model version (scope ``model_version``)."""

    __tablename__ = "gate_decisions"
    __table_args__ = (
        # a model version's current decision (its gate, the model listing) and a run's decision
        Index("ix_gate_decisions_model_version_scope", "model_name", "model_version", "scope"),
        Index("ix_gate_decisions_eval_run_id", "eval_run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    eval_run_id: Mapped[str | None] = mapped_column(ForeignKey("eval_runs.run_id"), nullable=True)
    decision: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list] = mapped_column(JSON)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Incident(Base):
    """A failure mode of the brief, recorded once: a buggy metric version or a contaminated dataset version.

    ``affected_runs`` and ``affected_models`` are what it touched when recorded; ``reported`` flips when
    the Dagster sensor has shown it on the asset graph (failing asset checks on the affected partitions).
    """

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("kind", "target", name="uq_incident_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(200))
    affected_runs: Mapped[list] = mapped_column(JSON, default=list)
    affected_models: Mapped[list] = mapped_column(JSON, default=list)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GateOverride(Base):
    """An approver's override of a ``fail`` or ``no_decision``: a new record, never an edit of the decision."""

    __tablename__ = "gate_overrides"
    __table_args__ = (Index("ix_gate_overrides_gate_decision_id", "gate_decision_id"),)  # the override of a decision

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gate_decision_id: Mapped[int] = mapped_column(ForeignKey("gate_decisions.id"))
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    overridden_decision: Mapped[str] = mapped_column(String(32))
    suites: Mapped[list] = mapped_column(JSON)
    approver: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DagsterRequest(Base):
    """A request for the orchestrator that is not an eval run: a promotion, or a recompute (backfill).

    The sensors turn pending rows into Dagster runs or backfills and record what they launched.
    """

    __tablename__ = "dagster_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    partitions: Mapped[list] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    launched_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: the launch key of a recompute: set on its queued eval runs and tagged on the backfill's runs
    launch_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReleaseLedgerEntry(Base):
    """One append-only entry of a model name's release ledger (:mod:`eval_platform.registry.ledger`): a gate
    decision, override, promotion, rollback or demotion, who made it and why, the lineage hashes of its evidence,
    and a hash chain (``entry_hash`` covers ``previous_hash``) that makes an edited or deleted entry detectable.
    No code path updates or deletes a row."""

    __tablename__ = "release_ledger"
    # one chain per model name: two writers appending at once collide here and one transaction rolls back
    __table_args__ = (UniqueConstraint("model_name", "sequence", name="uq_release_ledger_sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: what the entry rests on: the gate decision (id, decision), the model file hash, dataset content hashes,
    #: suite definition hashes, metric table and prediction artifact hashes of the runs behind it
    evidence: Mapped[dict] = mapped_column(JSON)
    previous_hash: Mapped[str] = mapped_column(String(80))
    entry_hash: Mapped[str] = mapped_column(String(80))
