"""Requests to the orchestrator as registry rows (``dagster_requests``): a promotion, an experiment analysis,
a recompute backfill. Whoever asks writes a row; a sensor turns each pending row into a Dagster run and the
run marks it done. Rows of eval runs themselves are the ``eval_runs`` table (see ``service``)."""

from __future__ import annotations

from sqlalchemy import select

from eval_platform.core.errors import NotFound
from eval_platform.core.states import RequestStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import DagsterRequest
from eval_platform.registry.schema import utcnow


def pending_requests(platform: EvalPlatform, kind: str, after_id: int = 0) -> list[DagsterRequest]:
    """Requests of a kind not yet carried out, oldest first; ``after_id`` skips those a sensor already launched."""
    with platform.registry.session() as session:
        return list(session.scalars(select(DagsterRequest).where(DagsterRequest.kind == kind, DagsterRequest.status == RequestStatus.PENDING,
                                                                 DagsterRequest.id > after_id).order_by(DagsterRequest.id)))


def mark_done(platform: EvalPlatform, request_id: int, dagster_run_id: str) -> None:
    """The Dagster run that carried the request out (a promotion records itself when it has happened)."""
    with platform.registry.session() as session:
        request = session.get(DagsterRequest, request_id)
        if request is None:
            raise NotFound("request", str(request_id))
        request.status, request.launched_id, request.launched_at = RequestStatus.DONE, dagster_run_id, utcnow()


def get_request(platform: EvalPlatform, request_id: int) -> DagsterRequest | None:
    with platform.registry.session() as session:
        return session.get(DagsterRequest, request_id)
