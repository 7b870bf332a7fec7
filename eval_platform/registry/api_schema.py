"""Registry tables of the HTTP API, access control and retention (migration 0003).

They share ``Base.metadata`` with :mod:`eval_platform.registry.schema`, so Alembic autogenerate sees them
as long as this module is imported (``eval_platform/registry/migrations/env.py`` should import it).

* ``api_tokens``: one row per token of a team's principal (person or service) with its roles and expiry
  (migration 0007); only the SHA-256 of the token is stored, the token itself is shown once when created.
* ``access_log``: who read which restricted rows (examples, predictions, per-example results) when, and
  every refused request for rows or aggregates.
* ``idempotency_keys``: ``POST /v1/eval-runs`` requests by ``Idempotency-Key`` (per team), so a retried
  request returns the run the first one created; expired by the retention purge after a day.
* ``purge_log``: every prediction artifact the retention purge deleted, with the runs and cache rows it
  belonged to; ``eval_run_purges`` marks each run whose predictions were purged (its metric table,
  results and lineage stay).
* ``eval_run_shards`` (migration 0016): which shard artifact (``prediction_shards``, ``judgment_shards``) and
  shard index key each run used, written when the shard runs (computed or reused), so retention purges a
  shard with the runs it is part of and keeps it while a run whose outputs are kept still uses it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eval_platform.registry.schema import Base, utcnow


class ApiToken(Base):
    """A bearer token of the API: the team, principal and roles it stands for, stored as its hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: ``sha256:<hex>`` of the token: a leaked registry does not leak usable tokens
    token_hash: Mapped[str] = mapped_column(String(80), unique=True)
    #: the token's first characters, to tell tokens apart in listings
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: the person or service of the team the token stands for (migration 0007: ``<team>`` for older tokens)
    principal: Mapped[str] = mapped_column(String(200), default="")
    #: ``person`` or ``service``
    principal_kind: Mapped[str] = mapped_column(String(16), default="service")
    #: ``member``, ``approver``, ``admin`` (migration 0007: ``["member"]`` for older tokens)
    roles: Mapped[list] = mapped_column(JSON, default=lambda: ["member"])
    #: refused from this moment on (None: never expires)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AccessLogEntry(Base):
    """One read of per-example data or aggregates through the API, granted or denied (the audit trail)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(200), index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"), nullable=True)
    #: ``examples``, ``predictions``, ``regressions`` (per-example results) or ``aggregates``
    action: Mapped[str] = mapped_column(String(32))
    dataset_key: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: ``granted`` or ``denied``
    outcome: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class IdempotencyRecord(Base):
    """A client's ``Idempotency-Key`` for a run request: a retried request gets the run the first one created."""

    __tablename__ = "idempotency_keys"

    team: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(80))
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.run_id"))
    #: the status code of the first response (201 created, 200 an existing run)
    status_code: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class PurgeLogEntry(Base):
    """One artifact a retention purge deleted, with the runs, cache keys and datasets that referred to it."""

    __tablename__ = "purge_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: one id per purge (all artifacts one call of ``purge_expired`` deleted)
    purge_id: Mapped[str] = mapped_column(String(40), index=True)
    #: the artifact store kind (``predictions``)
    kind: Mapped[str] = mapped_column(String(32))
    artifact_hash: Mapped[str] = mapped_column(String(80), index=True)
    classification: Mapped[str] = mapped_column(String(32))
    retention_days: Mapped[int] = mapped_column(Integer)
    produced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_ids: Mapped[list] = mapped_column(JSON, default=list)
    cache_keys: Mapped[list] = mapped_column(JSON, default=list)
    datasets: Mapped[list] = mapped_column(JSON, default=list)
    #: False until the bytes are gone from the store (a failed delete is retried by the next purge)
    store_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    purged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunPurge(Base):
    """A run whose predictions were purged: the run keeps its results, metric table and lineage."""

    __tablename__ = "eval_run_purges"

    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.run_id"), primary_key=True)
    predictions_hash: Mapped[str] = mapped_column(String(80))
    purge_log_id: Mapped[int] = mapped_column(ForeignKey("purge_log.id"))
    purged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RunShard(Base):
    """One shard a run used: its artifact (content-addressed, possibly shared with other runs) and index key."""

    __tablename__ = "eval_run_shards"

    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.run_id"), primary_key=True)
    shard_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    artifact_hash: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)
    #: the store kind of the artifact (``prediction_shards`` or ``judgment_shards``)
    kind: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


__all__ = ["AccessLogEntry", "ApiToken", "IdempotencyRecord", "PurgeLogEntry", "RunPurge", "RunShard"]
