"""Registry table of judge licenses: the append-only history of every check of a judge against a calibration set.

One row per check (:func:`eval_platform.evaluation.judge_license.compute_license`): which judge (its key and
config hash), on which calibration dataset version (and its content hash), what was measured (kappa or
accuracy, the estimate and its interval at ``confidence``, on ``n`` examples, ``n_judge_errors`` of them
judge errors), whether it met ``min_lower_bound``, the judge's verdict per example (the next judge version's
drift is measured against them) and the drift against the previous licensed judge. Rows are never updated
or deleted (on PostgreSQL a trigger of migration 0012 refuses it): the current license of a judge on a
calibration dataset is the newest row on the dataset's newest active version.

A license whose calibration version is found contaminated is not edited either: an invalidation row
(``judge_license_invalidations``, append-only as well, migration 0015) records it, with the incident.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eval_platform.registry.schema import Base, utcnow


class JudgeLicenseRecord(Base):
    """One check of a pinned judge's agreement with the human labels of a calibration dataset version."""

    __tablename__ = "judge_licenses"
    __table_args__ = (Index("ix_judge_licenses_lookup", "judge_config_hash", "calibration_dataset_id", "calibration_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: readable judge version (model@version.prompt@version.hash8), the Dagster partition key
    judge_key: Mapped[str] = mapped_column(String(300), index=True)
    judge_config_hash: Mapped[str] = mapped_column(String(80))
    judge_model: Mapped[str] = mapped_column(String(300))
    judge_prompt_version: Mapped[str] = mapped_column(String(300))
    #: the pinned judge's record (JudgeConfig.record())
    judge_config: Mapped[dict] = mapped_column(JSON)
    calibration_dataset_id: Mapped[str] = mapped_column(String(200))
    calibration_version: Mapped[int] = mapped_column(Integer)
    calibration_content_hash: Mapped[str] = mapped_column(String(80))
    measure: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    min_lower_bound: Mapped[float] = mapped_column(Float)
    estimate: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer)
    n_judge_errors: Mapped[int] = mapped_column(Integer)
    pass_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    licensed: Mapped[bool] = mapped_column(Boolean)
    #: the judge's label per example id (``pass``, ``fail`` or ``error``)
    verdicts: Mapped[dict] = mapped_column(JSON)
    #: against the previous judge licensed on the same calibration dataset (None: there was none)
    drift: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: the judge calls the check made (calls, cache hits, tokens, cost)
    calls: Mapped[dict] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    computed_by: Mapped[str] = mapped_column(String(200), default="")


class JudgeLicenseInvalidationRecord(Base):
    """A license that no longer counts: its calibration version was found contaminated (one row per license)."""

    __tablename__ = "judge_license_invalidations"
    __table_args__ = (Index("ix_judge_license_invalidations_lookup", "judge_config_hash", "calibration_dataset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    license_id: Mapped[int] = mapped_column(ForeignKey("judge_licenses.id"), unique=True)
    #: the license's judge and calibration version (copied: the gate reads them without a join)
    judge_config_hash: Mapped[str] = mapped_column(String(80))
    calibration_dataset_id: Mapped[str] = mapped_column(String(200))
    calibration_version: Mapped[int] = mapped_column(Integer)
    #: the contamination incident that invalidated it
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    invalidated_by: Mapped[str] = mapped_column(String(200))
    invalidated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
