"""Who may call the platform, what each caller may change, and who may read what of a dataset.

**Tokens and principals.** Every API request carries a bearer token. A token belongs to a named
*principal* (a person or a service) of a team, with roles (``evalp tokens create --team T --principal NAME
--role member --role approver --expires-in 30d``):

=========  ===========================================================================================
role       may
=========  ===========================================================================================
member     register and evaluate under the team's names (dataset ids, suite ids, model names,
           experiment ids the team registered first), request promotions of the team's models
approver   override a gate of the team's model where the suite's ``gate.approvers`` names the
           principal (``NAME`` or ``TEAM:NAME``) or its team (``TEAM``)
admin      platform-wide operations: mark a metric buggy, recompute across teams; and act on any
           team's names (an admin does *not* read restricted rows outside a dataset's policy)
reviewer   label review-queue items of datasets whose rows the team may read, and publish them into
           a calibration dataset (:mod:`eval_platform.evaluation.review_queue`)
=========  ===========================================================================================

A token may expire (``expires_at``); an expired token is refused like a revoked one (401). Tokens made
before principals existed (migration 0007) stand for principal ``<team>`` with role ``member``. The
``evalp`` command line acts as the local operator (:data:`LOCAL_OPERATOR`, an admin): whoever runs it
already holds the registry's credentials.

**Ownership of names** (``owner_team`` on every version row): a dataset id, suite id, model name or
experiment id belongs to the team that registered it first; only that team's members (or an admin)
register new versions of it, change its eval plan, invalidate it, override its gate or promote it
(:func:`require_owner`). Rows registered before ownership existed, and names first registered by the
local operator, have no owner (``NULL``): only an admin may change them.

A token is 32 random bytes shown once when
created; the registry keeps only its SHA-256, so a copy of the
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

What a team with aggregates only is shown of them (slices on the owner's declared slice columns only, none
below the dataset's ``min_slice_size``, no per-example results, no LLM sent the rows) is
:mod:`eval_platform.platform.aggregates`.

A request outside the policy is refused with :class:`Forbidden` (HTTP 403) before anything is read, so
the refusal says nothing about the rows. Every granted read of a restricted dataset's rows *and* of its
aggregates (a run's results, a comparison, gate reasons), and every refusal, is recorded in ``access_log``
(team, token, what, which dataset or run, how many rows, when): :func:`record_read`.

**Metadata.** A team that may see nothing of a restricted dataset (not in its ``teams``, no
``allow_aggregates``) is not shown its metadata either: listings (of datasets, eval runs, models evaluated
only on it, experiments) leave it out, and a request that names it (its metadata, its rows, an eval run or
eval plan on it) answers exactly as if it did not exist (the same 404 or 422 as an absent one), so not even
its existence leaks (:func:`may_know`); the attempt is logged as denied. A team that may read its
aggregates sees its metadata, like any other dataset's, and gets a 403 for its rows.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select

from eval_platform.core.errors import Conflict, EvalPlatformError, InvalidInput, NotFound
from eval_platform.registry.api_schema import AccessLogEntry, ApiToken
from eval_platform.registry.online_schema import Experiment
from eval_platform.registry.schema import EvalDataset, MetricSuite, Model, utcnow

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


MEMBER, APPROVER, ADMIN = "member", "approver", "admin"
#: labels review-queue items and publishes them into calibration datasets (eval_platform.evaluation.review_queue)
REVIEWER = "reviewer"
ROLES = (MEMBER, APPROVER, ADMIN, REVIEWER)
PERSON, SERVICE = "person", "service"
#: what a name is, for ownership: the table and the column holding the name
DATASET, SUITE, MODEL, EXPERIMENT = "dataset", "suite", "model", "experiment"


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a named person or service of a team, with roles, through one of its tokens.

    ``name`` defaults to the team (the principal every token made before principals stands for)."""

    team: str
    token_id: int | None = None
    name: str = ""
    kind: str = SERVICE
    roles: tuple[str, ...] = (MEMBER,)
    #: True only for :data:`LOCAL_OPERATOR` (the command line): names it registers first have no owner
    operator: bool = dataclass_field(default=False, compare=False)

    def __post_init__(self):
        if not self.name:
            object.__setattr__(self, "name", self.team)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def label(self) -> str:
        """How records name the principal: ``TEAM`` for a team's default principal, else ``TEAM:NAME``."""
        return self.team if self.name == self.team else f"{self.team}:{self.name}"

    def named_in(self, names) -> bool:
        """Whether a list of approvers names this principal (``NAME`` or ``TEAM:NAME``) or its team."""
        names = set(names or ())
        return bool(names & {self.team, self.name, f"{self.team}:{self.name}"})


#: the ``evalp`` command line on the registry's host: an admin acting for nobody's team
LOCAL_OPERATOR = Principal(team="", name="local-operator", kind=SERVICE, roles=(MEMBER, APPROVER, ADMIN), operator=True)


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_team(team: str) -> str:
    team = (team or "").strip()
    if not team or len(team) > 200 or any(c.isspace() for c in team):
        raise InvalidInput("team", "must be a non-empty team name without spaces (at most 200 characters)")
    return team


_PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, field: str = "expires_in") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` -> a positive timedelta."""
    match = _DURATION.fullmatch((text or "").strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(field, f"must be a positive number followed by m, h, d or w (for example 30d), got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def create_token(platform, team: str, name: str = "", principal: str | None = None, kind: str = SERVICE,
                 roles=(MEMBER,), expires_in: timedelta | str | None = None) -> str:
    """A new token of ``principal`` (default: the team itself) in ``team`` with ``roles``; the returned
    string is the only copy of it (store it in a secret). ``name`` says what the token is for."""
    team = _check_team(team)
    if len(name) > 200:
        raise InvalidInput("name", "at most 200 characters")
    principal = team if principal is None else principal
    if not isinstance(principal, str) or not _PRINCIPAL_NAME.fullmatch(principal):
        raise InvalidInput("principal", "must be 1-128 ASCII letters, digits, '-', '_' or '.', not starting with '-', '_' or '.'")
    if kind not in (PERSON, SERVICE):
        raise InvalidInput("kind", f"must be person or service, got {kind!r}")
    roles = sorted(set(roles or ()))
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise InvalidInput("role", f"must be one or more of {', '.join(ROLES)}, got {unknown or 'none'}")
    if isinstance(expires_in, str):
        expires_in = parse_duration(expires_in)
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("expires_in", "must be positive")
    expires_at = utcnow() + expires_in if expires_in is not None else None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with platform.registry.session() as session:
        session.add(ApiToken(team=team, name=name, token_hash=hash_token(token), prefix=token[:12], principal=principal,
                             principal_kind=kind, roles=roles, expires_at=expires_at))
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
TOKEN_COLUMNS = (ApiToken.id.label("token_id"), ApiToken.team.label("token_team"), ApiToken.revoked_at.label("token_revoked_at"),
                 ApiToken.principal.label("token_principal"), ApiToken.principal_kind.label("token_principal_kind"),
                 ApiToken.roles.label("token_roles"), ApiToken.expires_at.label("token_expires_at"))
_TOKEN_QUERY = select(*TOKEN_COLUMNS).where(ApiToken.token_hash == bindparam("digest"))


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; the registry writes UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def principal_of(row) -> Principal:
    """The principal of a row with :data:`TOKEN_COLUMNS` (None: no such token); refuses a revoked or expired token."""
    if row is None or row.token_revoked_at is not None:
        raise Unauthenticated("the token is not valid (unknown or revoked)")
    if row.token_expires_at is not None and _aware(row.token_expires_at) <= utcnow():
        raise Unauthenticated("the token has expired: ask for a new one (evalp tokens create)")
    roles = row.token_roles
    if isinstance(roles, str):  # a JSON column read through a plain select on some drivers
        import json

        roles = json.loads(roles)
    return Principal(row.token_team, row.token_id, name=row.token_principal or row.token_team,
                     kind=row.token_principal_kind or SERVICE, roles=tuple(roles or (MEMBER,)))


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


# roles and ownership -----------------------------------------------------------------------------------
#: the access log's ``action`` of a refused change (a role or a name it lacks); its ``dataset_key`` is ``KIND:NAME``
CHANGE = "change"


def require_role(principal: Principal | None, role: str, what: str, field: str | None = None, platform=None,
                 target: str = "platform") -> None:
    """Refuse (403, logged when ``platform`` is given) unless the principal has ``role`` (an admin has every
    role); ``None`` is the local operator."""
    if principal is None or principal.is_admin or principal.has(role):
        return
    if platform is not None:
        record_access(platform, principal, CHANGE, target[:200], DENIED, detail=f"{what}: needs the {role} role")
    raise Forbidden(f"{what} needs the {role} role; principal {principal.label!r} has {', '.join(principal.roles) or 'none'}",
                    field=field)


def _name_column(kind: str):

    if kind == DATASET:
        return EvalDataset, EvalDataset.dataset_id, EvalDataset.version
    if kind == SUITE:
        return MetricSuite, MetricSuite.suite_id, MetricSuite.version
    if kind == MODEL:
        return Model, Model.name, Model.version
    if kind == EXPERIMENT:

        return Experiment, Experiment.experiment_id, None
    raise ValueError(kind)


def owner_of(session, kind: str, name: str) -> tuple[bool, str | None]:
    """``(registered, owner team)`` of a name: the owner of its first version (``None``: unowned)."""
    table, column, version = _name_column(kind)
    query = select(table.owner_team).where(column == name)
    if version is not None:
        query = query.order_by(version).limit(1)
    row = session.execute(query).first()
    return (row is not None), (row.owner_team if row is not None else None)


def may_act_on(principal: Principal | None, owner: str | None) -> bool:
    """Whether the principal may change a name owned by ``owner`` (None: unowned, admins only)."""
    if principal is None or principal.is_admin:
        return True
    return owner is not None and owner == principal.team and principal.has(MEMBER)


def check_owner(principal: Principal | None, kind: str, name: str, registered: bool, owner: str | None, what: str,
                field: str, platform=None, role: str = MEMBER) -> None:
    """Refuse (403 naming ``field``; logged when ``platform`` is given) unless the principal may ``what`` on the
    name: a principal of its owner team with ``role`` (a member; an approver for overrides), or an admin. A
    name not registered yet is free (the caller's team will own it)."""
    if principal is None or principal.is_admin:
        return
    require_role(principal, role, what, field, platform, target=f"{kind}:{name}")
    if not registered or owner == principal.team:
        return
    if platform is not None:
        record_access(platform, principal, CHANGE, f"{kind}:{name}"[:200], DENIED, detail=f"{what}: owned by {owner or 'no team'}")
    whose = "another team" if owner is not None else "no team (registered before ownership; only an admin may change it)"
    raise Forbidden(f"{kind} {name!r} belongs to {whose}: team {principal.team!r} may not {what}", field=field)


def require_owner(platform, principal: Principal | None, kind: str, name: str, what: str, field: str,
                  role: str = MEMBER) -> str | None:
    """:func:`check_owner` reading the owner from the registry; returns the team that owns (or will own) the name."""
    with platform.registry.session() as session:
        registered, owner = owner_of(session, kind, name)
    check_owner(principal, kind, name, registered, owner, what, field, platform, role)
    return owner if registered else new_owner(principal)


def set_owner(platform, kind: str, name: str, team: str) -> None:
    """Give an unowned name (registered before ownership, or first by the local operator) to a team: an
    operator's act (``evalp owners set``), never the API's. A name another team owns is not taken from it."""
    from sqlalchemy import update


    team = _check_team(team)
    table, column, _ = _name_column(kind)
    with platform.registry.session() as session:
        registered, owner = owner_of(session, kind, name)
        if not registered:
            raise NotFound(kind, name)
        if owner is not None and owner != team:
            # taking a name from a team is not bookkeeping: it hands over its gates and its data
            raise Conflict(f"{kind} {name!r} belongs to team {owner!r}; only an unowned name can be given to a team")
        session.execute(update(table).where(column == name).values(owner_team=team))


def new_owner(principal: Principal | None) -> str | None:
    """The owner of a name the principal registers first: its team (the local operator's names have none)."""
    return None if principal is None or principal.operator else principal.team


def access_log(platform, team: str | None = None, dataset_key: str | None = None, limit: int = 1000) -> list[AccessLogEntry]:
    query = select(AccessLogEntry).order_by(AccessLogEntry.id.desc()).limit(limit)
    if team:
        query = query.where(AccessLogEntry.team == team)
    if dataset_key:
        query = query.where(AccessLogEntry.dataset_key == dataset_key)
    with platform.registry.session() as session:
        return list(session.scalars(query))


__all__ = [
    "ADMIN", "AGGREGATES", "AGGREGATE_READ", "APPROVER", "CHANGE", "DATASET", "DENIED", "EXAMPLES", "EXPERIMENT", "Forbidden", "GRANTED",
    "LOCAL_OPERATOR", "MEMBER", "MODEL", "NOTHING", "PERSON", "PREDICTIONS", "Principal", "REGRESSIONS", "REVIEWER", "ROLES", "ROWS", "SERVICE",
    "SUITE", "TOKEN_COLUMNS", "Unauthenticated", "access_log", "authenticate", "can_read_aggregates", "can_read_rows",
    "check_owner", "create_token", "hash_token", "is_restricted", "list_tokens", "may_act_on", "may_know", "new_owner", "owner_of",
    "parse_duration", "principal_of", "record_access", "record_read", "require", "require_owner", "require_role", "revoke_token",
    "set_owner", "token_digest", "visibility",
]
