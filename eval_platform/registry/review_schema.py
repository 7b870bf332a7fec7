"""Registry tables of the review queue (:mod:`eval_platform.evaluation.review_queue`).

``review_items`` holds one row per (eval run, example, reason) a judged run put up for human review: which run,
dataset, model and suite version, which example (its id only: the rows stay in the artifact store, under their
dataset's access policy and retention), why, and what the judge said. ``review_labels`` is the append-only
history of reviewers' labels of an item (the newest counts); on PostgreSQL a trigger refuses any ``UPDATE`` or
``DELETE`` of a label (migration 0013), and the code has no such path.

Migration ``0013_review_queue`` creates both, and the ``lineage`` column of ``eval_datasets``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from eval_platform.registry.schema import Base, utcnow


class ReviewItem(Base):
    """One example of one judged eval run put up for review, for one reason (unique per run, example, reason)."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("run_id", "example_id", "reason", name="uq_review_item"),
        Index("ix_review_items_dataset_status", "dataset_id", "dataset_version", "status"),
        Index("ix_review_items_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40))
    dataset_id: Mapped[str] = mapped_column(String(200))
    dataset_version: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[int] = mapped_column(Integer)
    suite_id: Mapped[str] = mapped_column(String(200))
    suite_version: Mapped[int] = mapped_column(Integer)
    #: the example's id as text (a generation dataset's ``example_id``)
    example_id: Mapped[str] = mapped_column(String(400))
    #: :class:`~eval_platform.evaluation.review_queue.ReviewReason`
    reason: Mapped[str] = mapped_column(String(32))
    #: the judge's majority label (pass/fail) over its valid samples, its mean score and the samples' agreement
    judge_label: Mapped[str | None] = mapped_column(String(16), nullable=True)
    judge_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    judge_agreement: Mapped[float | None] = mapped_column(Float, nullable=True)
    judge_config_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    #: the suite's reference metric and its per-example value (None: the suite has no per-example reference metric)
    reference_metric: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: :class:`~eval_platform.evaluation.review_queue.ReviewStatus`
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the dataset version (``ID@VERSION``) the item's label was published in
    published_in: Mapped[str | None] = mapped_column(String(220), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def dataset_key(self) -> str:
        return f"{self.dataset_id}@{self.dataset_version}"

    @property
    def model_key(self) -> str:
        return f"{self.model_name}@{self.model_version}"


class ReviewLabel(Base):
    """One reviewer's label of an item (append-only: a relabel is a new row; the newest row counts)."""

    __tablename__ = "review_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), index=True)
    label: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(Text, default="")
    #: the principal's label (``TEAM`` or ``TEAM:NAME``; the command line's ``--by``)
    reviewer: Mapped[str] = mapped_column(String(200))
    labelled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
