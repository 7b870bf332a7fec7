"""Who may call the platform, and who may read what of a dataset.

**Tokens.** Every API request carries a team's bearer token. A token is 32 random bytes shown once when
created (``evalp tokens create --team T``); the registry keeps only its SHA-256, so a copy of the
registry gives nobody a usable token. (A single SHA-256 is the right hash here: the token is 256 random bits,
not a password, so there is nothing to brute-force and a slow hash would only slow every request down.)
Every request looks its token up in the registry (one read by a unique index, no cache), so a revoked
token is refused on the very next request, in every server process and on every host.

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
the refusal says nothing about the rows. Every granted read of a restricted dataset's rows *and* of its
aggregates (a run's results, a comparison, gate reasons), and every refusal, is recorded in ``access_log``
(team, token, what, which dataset or run, how many rows, when): :func:`record_read`.

**Metadata.** A team that may see nothing of a restricted dataset (not in its ``teams``, no
``allow_aggregates``) is not shown its metadata either: listings (of datasets and of eval runs) leave it
out, and a request that names it (its metadata, its rows, an eval run or eval plan on it) gets the same 403
as any request outside the policy, without its size or schema (:func:`may_know`). A team that may read its
aggregates sees its metadata, like any other dataset's.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from eval_platform.errors import EvalPlatformError, InvalidInput, NotFound
from eval_platform.registry.api_schema import AccessLogEntry, ApiToken
from eval_platform.registry.schema import EvalDataset, utcnow

TOKEN_PREFIX = "evalp_"

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
    """Revoke a token: the next request carrying it is refused, in every server process (no cache)."""
    with platform.registry.session() as session:
        record = session.get(ApiToken, token_id)
        if record is None:
            raise NotFound("api token", str(token_id))
        if record.revoked_at is None:
            record.revoked_at = utcnow()
    return record


def token_digest(token: str | None) -> str:
    """The stored form of a bearer token; :class:`Unauthenticated` for none or a malformed one."""
    if not token:
        raise Unauthenticated("this request needs a team token: send 'Authorization: Bearer <token>'")
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("the token is not valid")
    return hash_token(token)


#: the columns :func:`principal_of` reads, by the token's hash (a unique index)
TOKEN_COLUMNS = (ApiToken.id.label("token_id"), ApiToken.team.label("token_team"), ApiToken.revoked_at.label("token_revoked_at"))
_TOKEN_QUERY = select(*TOKEN_COLUMNS).where(ApiToken.token_hash == bindparam("digest"))


def principal_of(row) -> Principal:
    """The principal of a row with :data:`TOKEN_COLUMNS` (None: no such token); refuses a revoked token."""
    if row is None or row.token_revoked_at is not None:
        raise Unauthenticated("the token is not valid (unknown or revoked)")
    return Principal(row.token_team, row.token_id)


def authenticate(platform, token: str | None) -> Principal:
    """The principal a bearer token stands for; :class:`Unauthenticated` for none, unknown or revoked.

    Asks the registry every time (one indexed read, no transaction held), so revocation is immediate."""
    digest = token_digest(token)
    with platform.registry.engine.connect() as connection:
        row = connection.execute(_TOKEN_QUERY, {"digest": digest}).first()
    return principal_of(row)


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


def may_know(policy: dict | None, team: str) -> bool:
    """Whether ``team`` may learn that a dataset with this policy exists (and see its metadata): every team
    for public and internal datasets; for a restricted one, the teams that may read its rows or aggregates."""
    return visibility(policy, team) != NOTHING


def record_read(platform, principal: Principal, action: str, dataset: EvalDataset, rows: int = 0, run_id: str | None = None,
                detail: str = "") -> None:
    """Log a granted read of ``dataset`` (rows or aggregates) when the dataset is restricted."""
    if is_restricted(dataset.access_policy):
        record_access(platform, principal, action, dataset.key, GRANTED, rows=rows, run_id=run_id, detail=detail)


def require(platform, principal: Principal, dataset: EvalDataset, action: str, run_id: str | None = None) -> str:
    """Refuse (and log the refusal) unless ``principal`` may do ``action`` on ``dataset``.

    ``action`` is one of the row reads (:data:`EXAMPLES`, :data:`PREDICTIONS`, :data:`REGRESSIONS`) or
    :data:`AGGREGATE_READ`. Returns the principal's visibility of the dataset. A granted read is not logged
    here (the caller logs it with :func:`record_read` once it knows what it returned).
    """
    seen = visibility(dataset.access_policy, principal.team)
    allowed = seen == ROWS if action != AGGREGATE_READ else seen in (ROWS, AGGREGATES)
    if not allowed:
        record_access(platform, principal, action, dataset.key, DENIED, run_id=run_id)
        what = "aggregate results" if action == AGGREGATE_READ else action
        # a team that may know nothing of the dataset is not told which dataset it is
        which = f"dataset {dataset.key}" if seen != NOTHING else "this dataset"
        raise Forbidden(f"team {principal.team!r} may not read the {what} of {which} (restricted by its access policy)")
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
    "REGRESSIONS", "ROWS", "TOKEN_COLUMNS", "Unauthenticated", "access_log", "authenticate", "can_read_aggregates", "can_read_rows",
    "create_token", "hash_token", "is_restricted", "list_tokens", "may_know", "principal_of", "record_access", "record_read", "require",
    "revoke_token", "token_digest", "visibility",
]
