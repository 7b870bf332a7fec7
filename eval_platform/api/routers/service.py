"""The service's own routes: ``/healthz`` (open: load balancers call it) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from starlette.requests import Request

import eval_platform
from eval_platform.api.dependencies import Caller, HttpStatsDep, PlatformDep
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import ProblemError, database_unavailable, problem_responses, respond, retry_after_seconds
from eval_platform.api.schemas import Health
from eval_platform.core.failures import database_unreachable
from eval_platform.governance.observability import collect, render_prometheus

router = APIRouter(tags=["service"], route_class=LimitedJSONRoute)


@router.get("/healthz", response_model=Health, responses=problem_responses(503))
def healthz(request: Request, platform: PlatformDep):
    try:
        revision = platform.registry.schema_revision()
    except Exception as error:  # not healthy, whatever the cause: 503, as every route answers an outage
        if database_unreachable(error):
            return database_unavailable(request, error)
        raise ProblemError(503, "unavailable", "Service unavailable", "the registry does not answer",
                           headers={"Retry-After": str(retry_after_seconds())}) from None
    return respond({"status": "ok", "schemaRevision": revision, "version": eval_platform.__version__})


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
def metrics(principal: Caller, platform: PlatformDep, http_stats: HttpStatsDep):
    text = render_prometheus(collect(platform), http_stats)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
