"""RFC 9457 problem details for every error the API returns (``application/problem+json``).

``InvalidInput`` -> 422 naming the field, request validation -> 422 listing each field, ``NotFound`` ->
404, ``Conflict`` (and a reused ``Idempotency-Key``) -> 409, a missing, bad or expired token -> 401, a request
outside the caller's roles, its team's names or a dataset's access policy -> 403, the registry database
unreachable -> 503 with ``Retry-After`` (connection refused, the server gone, the pool exhausted:
:func:`eval_platform.core.failures.database_unreachable`), anything else unexpected -> 500 without internals. Every
check runs before the first write, so an error response means nothing was written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from eval_platform.api.schemas import docstring_kept_out_of_openapi
from eval_platform.core.errors import (
    Conflict,
    EvalPlatformError,
    InvalidInput,
    NotFound,
)
from eval_platform.core.failures import database_unreachable, describe_failure
from eval_platform.core.records import json_safe
from eval_platform.registry.access import Forbidden, Unauthenticated

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:evalp:problem:"
log = logging.getLogger("eval_platform.api")


class FieldProblem(BaseModel):
    """One offending field of a request and what is wrong with it."""

    model_config = ConfigDict(json_schema_extra=docstring_kept_out_of_openapi)
    field: str
    problem: str


class Problem(BaseModel):
    """An RFC 9457 problem; ``field`` names the offending input when there is one."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI identifying the problem type", examples=["urn:evalp:problem:invalid-input"])
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    field: str | None = None
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    """Raise from a route to answer with a problem (used for HTTP-level errors such as idempotency)."""

    def __init__(self, status: int, slug: str, title: str, detail: str, field: str | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.field, self.headers = status, slug, title, detail, field, headers


def problem_response(request: Request | None, status: int, slug: str, title: str, detail: str = "", field: str | None = None,
                     errors: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_of(location: tuple | list) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_message(error: dict) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "missing":
        return "is required"
    if error.get("type") == "extra_forbidden":
        return "is not a known field"
    return message


async def _request_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field_of(e.get("loc", ())), "problem": _validation_message(e)} for e in error.errors()]
    first = errors[0] if errors else {"field": "body", "problem": "invalid request"}
    return problem_response(request, 422, "invalid-input", "Invalid input", f"{first['field']}: {first['problem']}",
                            field=first["field"], errors=errors)


async def _invalid_input(request: Request, error: InvalidInput) -> JSONResponse:
    return problem_response(request, 422, "invalid-input", "Invalid input", str(error), field=error.field,
                            errors=[{"field": error.field, "problem": error.problem}])


async def _not_found(request: Request, error: NotFound) -> JSONResponse:
    return problem_response(request, 404, "not-found", "Not found", str(error))


async def _conflict(request: Request, error: Conflict) -> JSONResponse:
    return problem_response(request, 409, "conflict", "Conflict", str(error))


async def _unauthenticated(request: Request, error: Unauthenticated) -> JSONResponse:
    return problem_response(request, 401, "unauthenticated", "Unauthenticated", str(error),
                            headers={"WWW-Authenticate": 'Bearer realm="evalp"'})


async def _forbidden(request: Request, error: Forbidden) -> JSONResponse:
    return problem_response(request, 403, "forbidden", "Forbidden", str(error), field=error.field)


async def _problem(request: Request, error: ProblemError) -> JSONResponse:
    return problem_response(request, error.status, error.slug, error.title, error.detail, field=error.field, headers=error.headers)


async def _platform_error(request: Request, error: EvalPlatformError) -> JSONResponse:
    # an error of the platform that is none of the above (a corrupt artifact): the server's fault
    log.error("platform error", extra={"fields": {"path": request.url.path, "error": type(error).__name__}})
    return problem_response(request, 500, "internal", "Internal error", f"{type(error).__name__}: the server could not complete the request")


#: the app's routes, those of its included routers too (FastAPI >= 0.16x includes a router as one route of the
#: app: its routes are reached through their contexts); an older FastAPI copies them into the app's routes
_every_route = getattr(fastapi_routing, "iter_route_contexts", iter)


def _allowed_methods(request: Request) -> str | None:
    """Every method of every route matching the path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in _every_route(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return ", ".join(sorted(methods)) if methods else None


async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    slugs = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}
    headers = dict(getattr(error, "headers", None) or {})
    if error.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
    return problem_response(request, error.status_code, slugs.get(error.status_code, "http-error"),
                            str(error.detail) if error.status_code != 404 else "Not found",
                            str(error.detail), headers=headers or None)


def retry_after_seconds() -> int:
    """What a 503 tells clients to wait (``$EVAL_PLATFORM_RETRY_AFTER_SECONDS``, default 5): long enough
    not to hammer a registry that is restarting, short enough to notice it is back."""
    try:
        return max(int(os.environ.get("EVAL_PLATFORM_RETRY_AFTER_SECONDS") or 5), 1)
    except ValueError:
        return 5


def database_unavailable(request: Request | None, error: BaseException) -> JSONResponse:
    """503 for a registry the server cannot reach: the client should retry later; the request wrote nothing
    (its transaction never committed)."""
    cause = describe_failure(error)
    log.warning("registry database unreachable", extra={"fields": {"path": request.url.path if request else None,
                                                                   "cause": cause}})
    # the cause (host, port, driver's words) goes to the server's log only: clients, /healthz's anonymous
    # ones included, learn that it is an outage and when to retry, not where the database lives
    return problem_response(request, 503, "database-unavailable", "Service unavailable",
                            "the registry database is unreachable; retry later",
                            headers={"Retry-After": str(retry_after_seconds())})


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    if database_unreachable(error):
        return database_unavailable(request, error)
    return await _unexpected(request, error)  # bad SQL, a missing table: the server's fault, 500


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    if database_unreachable(error):  # raised through another error (``raise ... from``)
        return database_unavailable(request, error)
    log.error("unhandled error", exc_info=error, extra={"fields": {"path": request.url.path, "method": request.method}})
    return problem_response(request, 500, "internal", "Internal error", "the server could not complete the request")


#: the problem each error becomes; Starlette looks handlers up by the error's class (its most specific one first)
_HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = {
    RequestValidationError: _request_validation,
    InvalidInput: _invalid_input,
    NotFound: _not_found,
    Conflict: _conflict,
    Unauthenticated: _unauthenticated,
    Forbidden: _forbidden,
    ProblemError: _problem,
    EvalPlatformError: _platform_error,
    StarletteHTTPException: _http,
    # before the catch-all: SQLAlchemy's errors are looked up by class, so an outage never becomes a 500
    SQLAlchemyError: _database_error,
    Exception: _unexpected,
}


def install(app: FastAPI) -> None:
    """Answer every error of the app's routes with a problem (:data:`_HANDLERS`)."""
    for error_class, handler in _HANDLERS.items():
        app.add_exception_handler(error_class, handler)


def _content() -> dict:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


#: OpenAPI ``responses`` entries for the problems a route may answer with.
def problem_responses(*statuses: int) -> dict[int | str, dict]:
    descriptions = {400: "Bad request", 401: "Missing or invalid token",
                    403: "Outside the caller's roles, its team's names or a dataset's access policy", 404: "Not found",
                    409: "Conflicts with the registry's state", 413: "Upload too large",
                    422: "Invalid input (the problem names the field)",
                    503: "The registry database is unreachable: retry after the Retry-After header's seconds"}
    return {status: {"model": Problem, "description": descriptions.get(status, "Error"), "content": _content()} for status in statuses}


def respond(payload: Any, status: int = 200, headers: dict | None = None) -> JSONResponse:
    """A JSON response of any payload the registry returns (datetimes, numpy numbers and NaN made JSON-safe;
    +inf/-inf as ``"inf"``/``"-inf"``, NaN as ``null``)."""
    return JSONResponse(json_safe(payload, infinities_as_text=True), status_code=status, headers=headers)
