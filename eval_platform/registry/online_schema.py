"""Registry tables of online experiments: the experiments, their ingests and their analyses.

* ``experiments``: one row per experiment (A/B or shadow), with its validated configuration (arms and the
  model version of each, traffic split, primary and guardrail metrics) and the offline gate decision of the
  treatment it followed. An experiment is immutable once registered, except for its ``status``.
* ``experiment_ingests``: one row per batch of online data. The rows themselves are a dataset version
  like any other (``eval_datasets``, content-hashed Parquet in the store, Great Expectations checks);
  the experiment's data is the union of its ingests whose dataset version is still active.
* ``experiment_analyses``: one row per analysis, with the dataset versions and hashes it read (lineage),
  the analysis code version, the whole result and the offline-online agreement record. A contaminated
  ingest marks the analyses that read it ``invalid``; a new analysis supersedes the previous one.

Migration ``0005_online_experiments`` creates them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eval_platform.registry.schema import Base, utcnow


class Experiment(Base):
    """An online experiment (A/B or shadow): its configuration, arms and the offline gate its candidates passed."""

    __tablename__ = "experiments"

    experiment_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # ab | shadow
    #: ab: ``ExperimentConfig.as_dict()``; shadow: ``{candidate, production, kind, k}``
    config: Mapped[dict] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(80))
    #: model versions of the treatment arms (ab) or the shadow candidate, for lookups by model version
    candidate_models: Mapped[list] = mapped_column(JSON)
    control_model: Mapped[str] = mapped_column(String(200))
    #: the offline metric whose delta is recorded beside the online one (offline-online agreement)
    offline_metric: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: by candidate model version: the id and outcome of its offline gate decision when the experiment began
    offline_gate: Mapped[dict] = mapped_column(JSON)
    access_policy: Mapped[dict] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | stopped
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the team that registered the experiment id (migration 0007: its ``created_by``); NULL: unowned (admins only)
    owner_team: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ExperimentIngest(Base):
    """One batch of online events or shadow logs ingested for an experiment, by content hash."""

    __tablename__ = "experiment_ingests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(200), index=True)
    dataset_key: Mapped[str] = mapped_column(String(220))
    content_hash: Mapped[str] = mapped_column(String(80))
    row_count: Mapped[int] = mapped_column(Integer)
    ingested_by: Mapped[str] = mapped_column(String(200))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExperimentAnalysisRecord(Base):
    """One analysis of an experiment over the ingests it read: result, guardrails and offline-online agreement."""

    __tablename__ = "experiment_analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(200), index=True)
    #: ``[{dataset, content_hash, rows}]`` of the ingests read
    inputs: Mapped[list] = mapped_column(JSON)
    inputs_hash: Mapped[str] = mapped_column(String(80))
    code_version: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(JSON)
    trustworthy: Mapped[bool] = mapped_column(Boolean)
    guardrail_verdict: Mapped[str] = mapped_column(String(32))
    #: ``[{candidate, offline_metric, offline_delta, online_metric, online_delta, online_significant}]``
    agreement: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="valid", index=True)  # valid | invalid | superseded
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
