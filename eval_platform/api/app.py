"""The platform's HTTP API (FastAPI): what CI pipelines and notebooks call.

``create_app(platform=None, home=None)`` builds the app on an installation; ``evalp serve`` runs it with
uvicorn. The API records requests and reads the registry; it never runs an evaluation itself:
``POST /v1/eval-runs`` records a queued run that the Dagster sensor launches, so the request returns in
milliseconds whatever Dagster is doing and the queue time is measurable.

JSON is camelCase. Errors are RFC 9457 problem details (:mod:`eval_platform.api.problems`) naming the
field, and every check runs before the first write. Every route but ``/healthz`` and the OpenAPI document
needs a team token (:mod:`eval_platform.api.auth`); what a team may read of a restricted dataset follows
its access policy (:mod:`eval_platform.registry.access`).

The routes live in :mod:`eval_platform.api.routers`, one router per resource; they reach the installation
through :data:`eval_platform.api.dependencies.PlatformDep` (``app.state.platform``).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from contextlib import asynccontextmanager
from typing import cast

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import eval_platform
from eval_platform.api.comparisons import ADHOC_COMPARISON_MAX_ROWS
from eval_platform.api.eval_run_requests import EvalRunRequests
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.middleware import BodySizeLimit, RequestObserver
from eval_platform.api.problems import PROBLEM_JSON, Problem, install, problem_responses, respond
from eval_platform.api.routers import datasets, eval_runs, experiments, gates, judges, metrics, models, releases, service, suites
from eval_platform.api.routers import review as review_router
from eval_platform.api.schemas import SUITE_SCHEMA_COMPONENTS
from eval_platform.governance.observability import HttpStats
from eval_platform.platform.service import EvalPlatform

DEFAULT_MAX_UPLOAD_BYTES = 1 << 30
#: the routers, in the order their routes were declared when they lived in one module
ROUTERS = (service.router, eval_runs.router, datasets.router, suites.router, models.router, gates.router, metrics.router,
           experiments.router, releases.router, judges.router, review_router.router)
API_DESCRIPTION = """Repeatable evaluations, lineage and release gates for ML models and LLM features.

* **Evaluations are queued, not run here.** `POST /v1/eval-runs` records the request and returns at once; the
  orchestrator (a Dagster sensor) starts it. Send an `Idempotency-Key` header to retry safely: the same key and
  body return the same run (`Idempotent-Replayed: true`), the same key with another body is a 409.
* **Authentication.** Every route except `/healthz` and this document needs a principal's token:
  `Authorization: Bearer <token>` (`evalp tokens create --team TEAM [--principal NAME --role ROLE]`); an unknown,
  revoked or expired token is a 401.
* **Roles and ownership.** Names (dataset ids, suite ids, model names, experiment ids) belong to the team that
  registered them first: only its members (or an admin) change them, only its approvers named in a suite override;
  marking a metric buggy and recomputing need the admin role. Anything else is a 403 naming the field.
* **Access control.** A dataset's access policy decides who reads its rows (examples, predictions, per-example
  results) and its aggregates; outside it is a 403 that says nothing about the rows, a dataset the team may know
  nothing of answers as an absent one (404/422), and every read of restricted rows is logged.
* **Errors** are RFC 9457 problem details (`application/problem+json`) whose `field` names the offending input;
  a rejected request writes nothing.
* JSON is camelCase; model, dataset and suite versions are written `NAME@VERSION`.
"""


def create_app(platform: EvalPlatform | None = None, home=None, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               threads: int | None = None) -> FastAPI:
    """The API on ``platform`` (or the installation at ``home``, opened now and closed with the app).

    ``threads`` bounds the worker threads that run the (synchronous) routes: default
    ``$EVAL_PLATFORM_API_THREADS`` or 8."""
    owns = platform is None
    threads = threads or int(os.environ.get("EVAL_PLATFORM_API_THREADS") or 8)
    served = platform or EvalPlatform.open(home)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # few threads: requests are short and hold the GIL; more threads only lengthen the tail (bench/bench_api.py)
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        # the modules loaded (pandas, SQLAlchemy, pydantic...) leave some 500k long-lived objects that every full
        # garbage collection would walk: a stop-the-world pause of 50-150 ms, the API's worst tail latency.
        # Move them out of the collector's sight once; what requests allocate is still collected as usual.
        gc.collect()
        gc.freeze()
        yield
        if owns:
            served.close()

    app = FastAPI(
        title="Eval platform API", version=eval_platform.__version__, lifespan=lifespan,
        description=API_DESCRIPTION,
        responses=problem_responses(400, 401, 503),  # 503: the registry database is unreachable
    )
    app.router.route_class = LimitedJSONRoute  # JSON bodies with bounded size and nesting (routes added to the app too)
    app.state.platform = served
    app.state.eval_run_requests = EvalRunRequests(served)
    app.state.http_stats = HttpStats()
    app.state.max_upload_bytes = max_upload_bytes
    install(app)
    app.add_middleware(BodySizeLimit, limit=max_upload_bytes + (1 << 20))  # the file plus the form's other fields
    app.add_middleware(RequestObserver, stats=app.state.http_stats)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: openapi_of(app)  # type: ignore[method-assign]  # FastAPI's documented way to customise the document
    return app


def openapi_of(app: FastAPI) -> dict:
    """The generated document, with errors as problem+json only."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _publish_problem_schema(schema)
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            _problem_responses_only(path, method, operation.get("responses", {}))
    app.openapi_schema = schema
    return schema


def _publish_problem_schema(schema: dict) -> None:
    """``Problem`` (and what it refers to) among the components, FastAPI's own validation error schemas not."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components["Problem"] = problem
    for name, sub in list((Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs") or {}).items()):
        components[name] = sub
    components["Problem"].pop("$defs", None)
    components.update(SUITE_SCHEMA_COMPONENTS)
    for key in ("HTTPValidationError", "ValidationError"):
        components.pop(key, None)


def _problem_responses_only(path: str, method: str, responses: dict) -> None:
    """An operation's error responses as problem+json; no 401 for the open ``/healthz``, no 400 for a GET (no body)."""
    if path == "/healthz":
        responses.pop("401", None)
    if method == "get":
        responses.pop("400", None)  # no body to parse
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            if status == "422":
                response["description"] = "Invalid input (the problem names the field)"


class _Unopened:
    """Stands in for an installation when only the OpenAPI document is wanted (building it opens nothing)."""


def openapi_document() -> dict:
    """The app's OpenAPI document, without an installation."""
    return create_app(platform=cast(EvalPlatform, _Unopened())).openapi()


def openapi_json(document: dict | None = None) -> str:
    """The document as checked in at the repository root (``openapi.json``)."""
    return json.dumps(document if document is not None else openapi_document(), indent=2, sort_keys=True) + "\n"


__all__ = ["ADHOC_COMPARISON_MAX_ROWS", "create_app", "openapi_document", "openapi_json", "respond"]


if __name__ == "__main__":  # python -m eval_platform.api.app > openapi.json
    sys.stdout.write(openapi_json())
