"""Registry tables (SQLAlchemy 2 ORM). Alembic migrations in ``eval_platform/migrations`` create them.

Versioned things (datasets, suites, models) are immutable rows: a change of content is a new row with the
next version number, and ``*_hash`` columns make re-registering identical content return the existing row.
Requests to evaluate are rows too (``eval_runs`` with status ``queued``): the Dagster sensor turns them into
runs, so the CLI and the API never wait for the orchestrator and queue time is measurable.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class EvalDataset(Base):
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

    @property
    def key(self) -> str:
        return f"{self.dataset_id}@{self.version}"


class MetricSuite(Base):
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
    """A model version released for its name; the newest row of a name is the current baseline."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[int] = mapped_column(Integer)
    gate_decision_id: Mapped[int | None] = mapped_column(ForeignKey("gate_decisions.id"), nullable=True)
    promoted_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    promoted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalRun(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (
        UniqueConstraint(
            "model_name", "model_version", "dataset_id", "dataset_version", "suite_id", "suite_version", "attempt",
            name="uq_eval_run_attempt",
        ),
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
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def model_key(self) -> str:
        return f"{self.model_name}@{self.model_version}"

    @property
    def dataset_key(self) -> str:
        return f"{self.dataset_id}@{self.dataset_version}"

    @property
    def suite_key(self) -> str:
        return f"{self.suite_id}@{self.suite_version}"


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
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
