"""Who may call the platform, and who may read what of a dataset.

**Tokens.** Every API request carries a team's bearer token. A token is 32 random bytes shown once when
created (``evalp tokens create --team T``); the registry keeps only its SHA-256, so a copy of the
registry gives nobody a usable token. A revoked token stops working at once in new processes and within
:data:`TOKEN_CACHE_SECONDS` in a running server.

**Dataset access policy** (``eval_datasets.access_policy``):

============  =====================================  ==========================================
level         rows: examples, predictions,           aggregates: metrics, slices, comparisons,
              per-example results (regressions)      gate reasons
============  =====================================  ==========================================
public        every authenticated team               every authenticated team
internal      every authenticated team               every authenticated team
restricted    the policy's ``teams`` only            the policy's ``teams``, or every team when
                                                     ``allow_aggregates`` is true
============  =====================================  ==========================================

A request outside the policy is refused with :class:`Forbidden` (HTTP 403) before anything is read, so
the refusal says nothing about the rows. Every read of restricted rows, and every refusal, is recorded in
``access_log`` (team, token, what, which dataset or run, how many rows, when).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from eval_platform.errors import EvalPlatformError, InvalidInput, NotFound
from eval_platform.registry.api_schema import AccessLogEntry, ApiToken
from eval_platform.registry.schema import EvalDataset, utcnow

TOKEN_PREFIX = "evalp_"
TOKEN_CACHE_SECONDS = 30.0

PUBLIC, INTERNAL, RESTRICTED = "public", "internal", "restricted"
#: What a team may see of a dataset: everything, aggregates only, or nothing.
ROWS, AGGREGATES, NOTHING = "rows", "aggregates", "nothing"
#: The kinds of read recorded in the access log.
EXAMPLES, PREDICTIONS, REGRESSIONS, AGGREGATE_READ = "examples", "predictions", "regressions", "aggregates"
GRANTED, DENIED = "granted", "denied"


class Unauthenticated(EvalPlatformError):
    """No token, or a token that is unknown or revoked (HTTP 401)."""


class Forbidden(EvalPlatformError):
    """The team's token is valid but the dataset's access policy does not let it read this (HTTP 403)."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a team, through one of its tokens."""

    team: str
    token_id: int | None = None


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_team(team: str) -> str:
    team = (team or "").strip()
    if not team or len(team) > 200 or any(c.isspace() for c in team):
        raise InvalidInput("team", "must be a non-empty team name without spaces (at most 200 characters)")
    return team


def create_token(platform, team: str, name: str = "") -> str:
    """A new token for ``team``; the returned string is the only copy of it (store it in a secret)."""
    team = _check_team(team)
    if len(name) > 200:
        raise InvalidInput("name", "at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with platform.registry.session() as session:
        session.add(ApiToken(team=team, name=name, token_hash=hash_token(token), prefix=token[:12]))
    return token


def list_tokens(platform, team: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if team:
        query = query.where(ApiToken.team == team)
    with platform.registry.session() as session:
        return list(session.scalars(query))


def revoke_token(platform, token_id: int) -> ApiToken:
    with platform.registry.session() as session:
        record = session.get(ApiToken, token_id)
        if record is None:
            raise NotFound("api token", str(token_id))
        if record.revoked_at is None:
            record.revoked_at = utcnow()
    _CACHE.clear()
    return record


class _TokenCache:
    """Token hash -> principal for a few seconds, so a busy API does not look every token up each time."""

    def __init__(self):
        self._entries: dict[tuple[int, str], tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, scope: int, digest: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get((scope, digest))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, scope: int, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[(scope, digest)] = (time.monotonic() + TOKEN_CACHE_SECONDS, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHE = _TokenCache()


def cached_principal(platform, token: str | None) -> Principal | None:
    """The principal of a token checked in the last :data:`TOKEN_CACHE_SECONDS`, without the registry."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return _CACHE.get(id(platform), hash_token(token))


def authenticate(platform, token: str | None, use_cache: bool = True) -> Principal:
    """The principal a bearer token stands for; :class:`Unauthenticated` for none, unknown or revoked."""
    if not token:
        raise Unauthenticated("this request needs a team token: send 'Authorization: Bearer <token>'")
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("the token is not valid")
    digest = hash_token(token)
    scope = id(platform)
    if use_cache:
        cached = _CACHE.get(scope, digest)
        if cached is not None:
            return cached
    with platform.registry.session() as session:
        record = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if record is None or record.revoked_at is not None:
        raise Unauthenticated("the token is not valid (unknown or revoked)")
    principal = Principal(record.team, record.id)
    if use_cache:
        _CACHE.put(scope, digest, principal)
    return principal


# the dataset access policy ----------------------------------------------------------------------------
def visibility(policy: dict | None, team: str) -> str:
    """``rows``, ``aggregates`` or ``nothing``: what ``team`` may see of a dataset with this policy."""
    policy = policy or {"level": INTERNAL}
    level = policy.get("level", INTERNAL)
    if level in (PUBLIC, INTERNAL):
        return ROWS
    if team in (policy.get("teams") or []):
        return ROWS
    if policy.get("allow_aggregates"):
        return AGGREGATES
    return NOTHING


def is_restricted(policy: dict | None) -> bool:
    return (policy or {}).get("level") == RESTRICTED


def can_read_rows(policy: dict | None, team: str) -> bool:
    return visibility(policy, team) == ROWS


def can_read_aggregates(policy: dict | None, team: str) -> bool:
    return visibility(policy, team) in (ROWS, AGGREGATES)


def record_access(platform, principal: Principal, action: str, dataset_key: str, outcome: str, rows: int = 0,
                  run_id: str | None = None, detail: str = "") -> None:
    with platform.registry.session() as session:
        session.add(AccessLogEntry(team=principal.team, token_id=principal.token_id, action=action, dataset_key=dataset_key,
                                   run_id=run_id, outcome=outcome, rows=rows, detail=detail[:2000]))


def require(platform, principal: Principal, dataset: EvalDataset, action: str, run_id: str | None = None) -> str:
    """Refuse (and log the refusal) unless ``principal`` may do ``action`` on ``dataset``.

    ``action`` is one of the row reads (:data:`EXAMPLES`, :data:`PREDICTIONS`, :data:`REGRESSIONS`) or
    :data:`AGGREGATE_READ`. Returns the principal's visibility of the dataset.
    """
    seen = visibility(dataset.access_policy, principal.team)
    allowed = seen == ROWS if action != AGGREGATE_READ else seen in (ROWS, AGGREGATES)
    if not allowed:
        record_access(platform, principal, action, dataset.key, DENIED, run_id=run_id)
        what = "aggregate results" if action == AGGREGATE_READ else action
        raise Forbidden(f"team {principal.team!r} may not read the {what} of dataset {dataset.key} "
                        "(restricted by its access policy)")
    return seen


def access_log(platform, team: str | None = None, dataset_key: str | None = None, limit: int = 1000) -> list[AccessLogEntry]:
    query = select(AccessLogEntry).order_by(AccessLogEntry.id.desc()).limit(limit)
    if team:
        query = query.where(AccessLogEntry.team == team)
    if dataset_key:
        query = query.where(AccessLogEntry.dataset_key == dataset_key)
    with platform.registry.session() as session:
        return list(session.scalars(query))


__all__ = [
    "AGGREGATES", "AGGREGATE_READ", "DENIED", "EXAMPLES", "Forbidden", "GRANTED", "NOTHING", "PREDICTIONS", "Principal",
    "REGRESSIONS", "ROWS", "Unauthenticated", "access_log", "authenticate", "cached_principal", "can_read_aggregates", "can_read_rows",
    "create_token", "hash_token", "is_restricted", "list_tokens", "record_access", "require", "revoke_token", "visibility",
]
