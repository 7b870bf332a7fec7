"""``POST /v1/eval-runs``'s work: the hot path CI pipelines call (and retry).

One registry read authenticates the token and finds the run an earlier request with the same
``Idempotency-Key`` recorded; only a new key opens a write transaction, which runs every check, then records
the run (or finds the live run of the same versions: :meth:`EvalPlatform.queue_or_find_run`) and the key,
or nothing. Model and suite versions never change: read through the platform once (a missing one is a 422
naming the field), then kept. The newest dataset and suite versions, and a dataset's status, are read on
every request: in the write transaction, a few columns (the platform's lookups would take two more pooled
connections and whole records, some 1 ms of CPU a request, a third of the route's). What is the API's own
runs here too: the access checks, in the order that keeps a dataset the team may know nothing of
indistinguishable from an absent one, and the idempotency record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import and_, bindparam, insert, select
from sqlalchemy import exc as sa_exc

from eval_platform.api.field_names import fields_named, record_named_by
from eval_platform.api.schemas import EvalRunRequest
from eval_platform.api.visibility import refuse_hidden_dataset
from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.core.keys import VersionedKey
from eval_platform.platform import aggregates
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, MetricSuite, Model, access
from eval_platform.registry.access import AGGREGATE_READ, Principal
from eval_platform.registry.api_schema import ApiToken, IdempotencyRecord
from eval_platform.registry.schema import utcnow

WRITE_RETRIES = 5
#: how many model and suite versions a server keeps in memory (they never change once registered)
CACHED_VERSIONS_MAX = 100_000
Result = TypeVar("Result")

# statements built once (building one costs more than running it): the token and, for an Idempotency-Key the
# team used before, the request hash and run it recorded, in one indexed read
_tokens, _keys, _runs = ApiToken.__table__.c, IdempotencyRecord.__table__.c, EvalRun.__table__.c
_REPLAY_COLUMNS = (_keys.request_hash, _runs.run_id, _runs.status, _runs.model_name, _runs.model_version, _runs.dataset_id,
                   _runs.dataset_version, _runs.suite_id, _runs.suite_version, _runs.requested_baseline)
_TOKEN_AND_REPLAY = (select(*access.TOKEN_COLUMNS, *_REPLAY_COLUMNS)
                     .select_from(ApiToken.__table__
                                  .outerjoin(IdempotencyRecord.__table__, and_(_keys.team == _tokens.team, _keys.key == bindparam("key")))
                                  .outerjoin(EvalRun.__table__, _runs.run_id == _keys.run_id))
                     .where(_tokens.token_hash == bindparam("digest")))
_INSERT_KEY = insert(IdempotencyRecord)
_datasets, _suites = EvalDataset.__table__.c, MetricSuite.__table__.c
_DATASET_COLUMNS = (_datasets.dataset_id, _datasets.version, _datasets.task_type, _datasets.status, _datasets.access_policy)
_DATASET_VERSION = select(*_DATASET_COLUMNS).where(_datasets.dataset_id == bindparam("name"), _datasets.version == bindparam("version"))
_NEWEST_DATASET = (select(*_DATASET_COLUMNS).where(_datasets.dataset_id == bindparam("name"), _datasets.status == "active")
                   .order_by(_datasets.version.desc()).limit(1))
_NEWEST_SUITE = (select(_suites.suite_id, _suites.version, _suites.task_type).where(_suites.suite_id == bindparam("name"))
                 .order_by(_suites.version.desc()).limit(1))


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """What the checks of ``POST /v1/eval-runs`` read of a dataset version (stands in for :class:`EvalDataset`)."""

    dataset_id: str
    version: int
    task_type: str
    status: str
    access_policy: dict

    @property
    def key(self) -> str:
        return f"{self.dataset_id}@{self.version}"


@dataclass(frozen=True, slots=True)
class SuiteRef:
    """The newest version of a suite named without a version (stands in for :class:`MetricSuite`)."""

    suite_id: str
    version: int
    task_type: str

    @property
    def key(self) -> str:
        return f"{self.suite_id}@{self.version}"


class ReplayedRun:
    """The columns of a run a replayed ``POST /v1/eval-runs`` answers with (a row, not an ORM record: cheaper)."""

    __slots__ = ("run_id", "status", "model_key", "dataset_key", "suite_key", "requested_baseline")

    def __init__(self, row):
        self.run_id, self.status, self.requested_baseline = row.run_id, row.status, row.requested_baseline
        self.model_key = f"{row.model_name}@{row.model_version}"
        self.dataset_key = f"{row.dataset_id}@{row.dataset_version}"
        self.suite_key = f"{row.suite_id}@{row.suite_version}"


@dataclass(frozen=True, slots=True)
class Replay:
    """What an earlier request with the same Idempotency-Key recorded: its body's hash and its run."""

    request_hash: str
    run: Any  # an EvalRun, or the ReplayedRun columns of one


@dataclass(frozen=True, slots=True)
class Queued:
    """The run a request queued (``created``) or found live for the same versions."""

    run: EvalRun
    created: bool


def _lost_race(error: Exception) -> bool:
    """A unique key taken by a concurrent writer, or SQLite's lock held by one: worth running again."""
    if isinstance(error, sa_exc.IntegrityError):
        return getattr(error.orig, "pgcode", None) == "23505" or "UNIQUE constraint failed" in str(error.orig)
    return isinstance(error, sa_exc.OperationalError) and "locked" in str(error.orig)


def retrying_lost_races(work: Callable[[int], Result]) -> Result:
    """Run a registry write (given its attempt, from 1) again when a concurrent writer won a race (unique key) or held the lock."""
    for attempt in range(WRITE_RETRIES):
        try:
            return work(attempt + 1)
        except (sa_exc.IntegrityError, sa_exc.OperationalError) as error:
            if attempt == WRITE_RETRIES - 1 or not _lost_race(error):
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


class EvalRunRequests:
    """``POST /v1/eval-runs`` on one installation, with the model and suite versions it has read (they never change)."""

    def __init__(self, platform: EvalPlatform):
        self.platform = platform
        self._versions: dict[str, Any] = {}  # "model:NAME@VERSION" or "suite:ID@VERSION" -> record

    def authenticate_and_replay(self, token: str | None, key: str | None) -> tuple[Principal, Replay | None]:
        """The calling team (its token checked now: a revoked token is refused at once) and, for a key this
        team used before, the recorded request hash and run; one indexed read, no write transaction."""
        digest = access.token_digest(token)
        with self.platform.registry.engine.connect() as connection:
            row = connection.execute(_TOKEN_AND_REPLAY, {"digest": digest, "key": key or ""}).first()
        principal = access.principal_of(row)  # refuses an unknown token (no row)
        if row is None or key is None or row.run_id is None:
            return principal, None
        return principal, Replay(row.request_hash, ReplayedRun(row))

    def queue(self, body: EvalRunRequest, principal: Principal, key: str | None, request_hash: str) -> Queued | Replay:
        """One transaction: every check, then the run and the idempotency record (or nothing). Run again when a
        concurrent request won a race (the same key, or the same evaluation), and then finds its work."""

        def attempt(number: int) -> Queued | Replay:
            with self.platform.registry.write_session() as session:
                if key is not None and number > 1:  # the first attempt's read found no record
                    existing = session.get(IdempotencyRecord, (principal.team, key))
                    if existing is not None:
                        return Replay(existing.request_hash, session.get(EvalRun, existing.run_id))
                model, dataset, suite = self._checked_versions(session, body, principal)
                # nothing was written before this line; queue_or_find_run reads the versions' ids, keys and status
                run, created = self.platform.queue_or_find_run(session, model, cast(EvalDataset, dataset), cast(MetricSuite, suite),
                                                               trigger="api", baseline=body.baseline, recompute=body.recompute)
                if key is not None:
                    session.flush()  # the run before the record that refers to it
                    session.execute(_INSERT_KEY, {"team": principal.team, "key": key, "request_hash": request_hash, "run_id": run.run_id,
                                                  "status_code": 201 if created else 200, "created_at": utcnow()})
                return Queued(run, created)  # committed when the block ends; a lost race raises and is retried

        return retrying_lost_races(attempt)

    def _checked_versions(self, session, body: EvalRunRequest, principal: Principal) -> tuple[Model, DatasetRef, MetricSuite | SuiteRef]:
        """The versions the request names, once every check passed. A dataset the team may know nothing of is
        refused as an absent one before anything else is said of the request."""
        model = self._model(body.model_version, "modelVersion")
        dataset = self._dataset(session, body.dataset_id)
        refuse_hidden_dataset(self.platform, principal, dataset.key, dataset.access_policy, "datasetId", body.dataset_id)
        if not access.may_act_on(principal, model.owner_team):  # read again: the cached record may predate `evalp owners set`
            access.check_owner(principal, access.MODEL, model.name, *access.owner_of(session, access.MODEL, model.name),
                               "request evaluations of it", "modelVersion", self.platform)
        suite = self._suite(session, body.metric_suite_id, "metricSuiteId")
        if dataset.task_type != suite.task_type:
            raise InvalidInput("metricSuiteId", f"suite {suite.key} is for {suite.task_type}, dataset {dataset.key} is {dataset.task_type}")
        if body.baseline is not None:
            self._model(body.baseline, "baseline")
        # queue_or_find_run refuses it too, but only after the checks below (a file read among them) have run
        if dataset.status != "active":
            raise Conflict(f"dataset {dataset.key} is {dataset.status}: no new runs may use it")
        self._check_dataset_use(principal, model, dataset, suite)
        return model, dataset, suite

    def _check_dataset_use(self, principal: Principal, model: Model, dataset: DatasetRef, suite: MetricSuite | SuiteRef) -> None:
        """What the team may do with the dataset's rows: require reads only the policy; the rarer checks read whole records."""
        platform = self.platform
        if access.require(platform, principal, cast(EvalDataset, dataset), AGGREGATE_READ) == access.AGGREGATES:
            # aggregates only: no LLM may be sent the rows, no slice on a column the owner did not declare
            aggregates.check_aggregate_use(platform, principal, platform.dataset(dataset.key),
                                           platform.suite_definition(platform.suite(suite.key)), model.kind)
        if model.kind == "predictions":  # its file must cover this dataset (a file read: only for this kind)
            with fields_named({"model_file": "modelVersion"}):
                platform.check_predictions_cover(model, platform.dataset(dataset.key))

    def _dataset(self, session, dataset_id: str) -> DatasetRef:
        """The dataset version a request names (its newest active version without ``@``): the columns the checks read."""
        if "@" in dataset_id:
            name, version = record_named_by("datasetId", lambda: VersionedKey.parse(dataset_id, "datasetId"))
            row = session.execute(_DATASET_VERSION, {"name": name, "version": version}).first()
        else:
            row = session.execute(_NEWEST_DATASET, {"name": dataset_id}).first()
        if row is None:  # the words of platform.dataset and platform.latest_dataset
            raise InvalidInput("datasetId", f"{dataset_id!r}: no such {'dataset' if '@' in dataset_id else 'usable dataset'}")
        return DatasetRef(row.dataset_id, row.version, row.task_type, row.status, row.access_policy)

    def _model(self, key: str, field: str) -> Model:
        """A model version named by a request field (``NAME@VERSION``)."""
        return self._cached(f"model:{key}", lambda: record_named_by(field, lambda: self.platform.model(key)))

    def _suite(self, session, key: str, field: str) -> MetricSuite | SuiteRef:
        """A suite version named by a request field: ``SUITE_ID@VERSION``, or the newest version of ``SUITE_ID``."""
        if "@" not in key:  # a newer version may be registered: read every time
            row = session.execute(_NEWEST_SUITE, {"name": key}).first()
            if row is None:  # the words of platform.latest_suite
                raise InvalidInput(field, f"{key!r}: no such metric suite")
            return SuiteRef(row.suite_id, row.version, row.task_type)
        return self._cached(f"suite:{key}", lambda: record_named_by(field, lambda: self.platform.suite(key)))

    def _cached(self, name: str, load: Callable[[], Result]) -> Result:
        cached = self._versions.get(name)
        if cached is not None:
            return cached
        record = load()
        if len(self._versions) < CACHED_VERSIONS_MAX:
            self._versions[name] = record  # detached: safe to share between requests
        return record
