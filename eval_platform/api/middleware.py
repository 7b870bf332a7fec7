"""The app's ASGI middleware: one access-log line and per-route figures per request, and a bound on request bodies.

Both are pure ASGI middleware (no ``BaseHTTPMiddleware``): they see every request, streamed bodies included,
without buffering them.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eval_platform.api.problems import ProblemError, problem_response
from eval_platform.governance.observability import HttpStats

log = logging.getLogger("eval_platform.api")


class RequestObserver:
    """Gives each request an id (``X-Request-Id``), counts it per route for ``/metrics`` and logs one JSON line."""

    def __init__(self, app: ASGIApp, stats: HttpStats):
        self.app, self.stats = app, stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = [500]  # what an exception that escapes the app becomes (Starlette's error middleware answers it)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # no return in here: it would swallow an unhandled exception of the route, which must reach
            # Starlette's error middleware (a 500 problem, logged)
            self._record(scope, request_id, status[0], time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self.stats.observe(scope["method"], route, status, seconds)
        if log.isEnabledFor(logging.INFO):
            # path template, not the URL: no query strings, no ids of restricted rows, never a header
            log.info("request", extra={"fields": {"request_id": request_id, "method": scope["method"], "route": route,
                                                  "status": status, "ms": round(seconds * 1000, 2),
                                                  "team": (scope.get("state") or {}).get("team")}})


class BodySizeLimit:
    """Refuse a request body over ``limit`` bytes with a 413 problem: at once when its Content-Length says so,
    else as soon as the streamed body passes it (before it fills a disk)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = problem_response(Request(scope), 413, "too-large", "Upload too large", f"at most {self.limit} bytes", field="file")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ProblemError(413, "too-large", "Upload too large", f"at most {self.limit} bytes", field="file")
            return message

        await self.app(scope, counted, send)
