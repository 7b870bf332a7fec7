"""Authentication of API requests: every ``/v1`` route and ``/metrics`` needs a principal's bearer token.

The token is checked against the registry's hashes (:func:`eval_platform.registry.access.authenticate`): unknown,
revoked and expired tokens are a 401. The principal (a named person or service of a team, with its roles)
is what the API records as the author of overrides, promotions, incident reports and restricted reads
(``TEAM`` or ``TEAM:NAME``), never a name from the request body, so a request cannot claim to come from
someone else. What it may change follows its roles and its team's names (:mod:`eval_platform.registry.access`).
``/healthz`` and the OpenAPI document are open.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from eval_platform.registry.access import Principal, authenticate

bearer = HTTPBearer(auto_error=False, scheme_name="teamToken",
                    description="A token of a team's principal created with `evalp tokens create --team TEAM [--principal NAME --role ROLE]`, "
                                                "sent as `Authorization: Bearer <token>`.")

#: the bearer token of a request, if it sent one (the routes answer a missing one with a 401 problem)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """The calling principal: its token is looked up in the registry on every request (outside the event loop),
    so a revoked or expired token is refused at once by every server process."""
    principal = await run_in_threadpool(authenticate, request.app.state.platform, credentials.credentials if credentials else None)
    request.state.team = principal.team  # for the access log line of this request
    return principal


__all__ = ["BearerCredentials", "bearer", "current_principal"]
