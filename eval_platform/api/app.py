"""The platform's HTTP API (FastAPI): what CI pipelines and notebooks call.

``create_app(platform=None, home=None)`` builds the app on an installation; ``evalp serve`` runs it with
uvicorn. The API records requests and reads the registry; it never runs an evaluation itself:
``POST /v1/eval-runs`` records a queued run that the Dagster sensor launches, so the request returns in
milliseconds whatever Dagster is doing and the queue time is measurable.

JSON is camelCase. Errors are RFC 9457 problem details (:mod:`eval_platform.api.problems`) naming the
field, and every check runs before the first write. Every route but ``/healthz`` and the OpenAPI document
needs a team token (:mod:`eval_platform.api.auth`); what a team may read of a restricted dataset follows
its access policy (:mod:`eval_platform.registry.access`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, File, Form, Header, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import and_, bindparam, func, or_, select, true, tuple_
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

import eval_platform
from eval_platform.api.auth import bearer, current_principal
from eval_platform.api.experiments import add_experiment_routes
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import (
    PROBLEM_JSON,
    Problem,
    ProblemError,
    database_unavailable,
    install,
    problem_response,
    problem_responses,
    respond,
    retry_after_seconds,
)
from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.failures import database_unreachable
from eval_platform.core.hashing import json_hash
from eval_platform.core.installation import NotAllowed
from eval_platform.core.keys import (
    ID_OR_KEY_PATTERN,
    ID_PATTERN,
    KEY_PATTERN,
    validate_id,
)
from eval_platform.core.records import iso
from eval_platform.core.store import DATASETS as DATASETS_KIND
from eval_platform.core.store import METRIC_TABLES
from eval_platform.core.store import PREDICTIONS as PREDICTIONS_KIND
from eval_platform.core.tasks import LABEL_POLICIES, PURPOSES, TASK_TYPES
from eval_platform.evaluation.metric_table import evaluation_frame, metric_columns
from eval_platform.gates.releases import effective_decision, override_gate, request_promotion
from eval_platform.governance.incidents import invalidate_dataset, mark_metric_buggy, request_recompute
from eval_platform.governance.observability import HttpStats, collect, render_prometheus
from eval_platform.metrics.catalog import all_metrics
from eval_platform.models.files import MODEL_KINDS
from eval_platform.platform import aggregates
from eval_platform.platform.service import (
    QUEUED,
    SUCCEEDED,
    EvalPlatform,
    split_key,
)
from eval_platform.registry import (
    EvalDataset,
    EvalRun,
    GateDecisionRecord,
    MetricSuite,
    Model,
    Promotion,
    access,
)
from eval_platform.registry.access import (
    AGGREGATE_READ,
    EXAMPLES,
    GRANTED,
    PREDICTIONS,
    REGRESSIONS,
    ROWS,
    Principal,
)
from eval_platform.registry.api_schema import ApiToken, IdempotencyRecord, RunPurge
from eval_platform.registry.schema import utcnow
from eval_platform.stats.comparison import paired_bootstrap

log = logging.getLogger("eval_platform.api")
API_VERSION = "1"
MAX_PAGE = 1000
#: Above this many rows a comparison against an arbitrary baseline is not computed inside a request.
ADHOC_COMPARISON_MAX_ROWS = 100_000
DEFAULT_MAX_UPLOAD_BYTES = 1 << 30
_WRITE_RETRIES = 5
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


# helpers ---------------------------------------------------------------------------------------------
def _camel_keys(mapping: dict | None, deep: bool = False) -> dict | None:
    if mapping is None:
        return None
    out = {}
    for key, value in mapping.items():
        if deep and isinstance(value, dict):
            value = _camel_keys(value, deep)
        elif deep and isinstance(value, list):
            value = [_camel_keys(v, deep) if isinstance(v, dict) else v for v in value]
        out[to_camel(str(key))] = value
    return out


@contextmanager
def fields_named(names: dict[str, str]):
    """Report the platform's field names as the API's (``dataset_id`` -> ``datasetId``)."""
    try:
        yield
    except access.Forbidden as error:
        if error.field in names:
            error.field = names[error.field]
        raise
    except InvalidInput as error:
        head, dot, rest = error.field.partition(".")
        kind = NotAllowed if isinstance(error, NotAllowed) else InvalidInput  # an operator's refusal stays one
        if error.field in names:
            raise kind(names[error.field], error.problem) from error
        if dot and head in names:
            raise kind(names[head] + "." + rest, error.problem) from error
        raise


def _lookup(field: str, load):
    """A record named by a request field: unknown or malformed is a 422 naming that field."""
    try:
        return load()
    except NotFound as error:
        raise InvalidInput(field, f"{error.key!r}: no such {error.kind}") from error
    except InvalidInput as error:
        raise InvalidInput(field, error.problem) from error


def _lost_race(error: Exception) -> bool:
    """A unique key taken by a concurrent writer, or SQLite's lock held by one: worth running again."""
    if isinstance(error, sa_exc.IntegrityError):
        return getattr(error.orig, "pgcode", None) == "23505" or "UNIQUE constraint failed" in str(error.orig)
    return isinstance(error, sa_exc.OperationalError) and "locked" in str(error.orig)


def _retrying(work):
    """Run a registry write again when a concurrent writer won a race (unique key) or held the lock."""
    for attempt in range(_WRITE_RETRIES):
        try:
            return work()
        except (sa_exc.IntegrityError, sa_exc.OperationalError) as error:
            if attempt == _WRITE_RETRIES - 1 or not _lost_race(error):
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


def _page(offset: int, limit: int, total: int) -> dict:
    return {"offset": offset, "limit": limit, "total": total}


#: The list routes that answer a JSON array (datasets, metric suites, models) give their page's place in
#: headers, so the body keeps its shape: ``X-Total-Count`` (all matching items), ``X-Offset``, ``X-Limit``.
def _page_headers(offset: int, limit: int, total: int) -> dict:
    return {"X-Total-Count": str(total), "X-Offset": str(offset), "X-Limit": str(limit)}


_PAGE_HEADERS_DOC = {200: {"description": "One page, in key order (``offset``/``limit``)", "headers": {
    "X-Total-Count": {"description": "How many items match, over all pages", "schema": {"type": "integer"}},
    "X-Offset": {"description": "The page's offset", "schema": {"type": "integer"}},
    "X-Limit": {"description": "The page's size limit", "schema": {"type": "integer"}}}}}


def _model_states(session, models: list) -> dict[tuple[str, int], tuple[str | None, bool]]:
    """``(gate decision, promoted)`` of each model version of a page, in two statements whatever the page's
    size: the newest non-superseded ``model_version`` decision per version (index on name, version and
    scope; one version range per name of the page) and the newest promotion per name."""
    if not models:
        return {}
    ranges: dict[str, list[int]] = {}
    for model in models:
        ranges.setdefault(model.name, []).append(model.version)
    decisions = GateDecisionRecord.__table__.c
    in_page = or_(*(and_(decisions.model_name == name, decisions.model_version.between(min(v), max(v)))
                    for name, v in ranges.items()))
    newest = (select(func.max(decisions.id)).where(in_page, decisions.scope == "model_version", decisions.superseded.is_(False))
              .group_by(decisions.model_name, decisions.model_version))
    gates = {(n, v): d for n, v, d in session.execute(
        select(decisions.model_name, decisions.model_version, decisions.decision).where(decisions.id.in_(newest)))}
    promotions = Promotion.__table__.c
    newest_promotion = select(func.max(promotions.id)).where(promotions.model_name.in_(list(ranges))).group_by(promotions.model_name)
    promoted = dict(session.execute(select(promotions.model_name, promotions.model_version).where(promotions.id.in_(newest_promotion))).all())
    return {(m.name, m.version): (gates.get((m.name, m.version)), promoted.get(m.name) == m.version) for m in models}


# request and response models (the OpenAPI document) ----------------------------------------------------
class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class EvalRunRequest(Camel):
    model_version: str = Field(min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION of a registered model",
                               examples=["breast-cancer-detector@2"])
    dataset_id: str = Field(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                            description="DATASET_ID (newest usable version) or DATASET_ID@VERSION")
    metric_suite_id: str = Field(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                                 description="SUITE_ID (newest version) or SUITE_ID@VERSION")
    baseline: str | None = Field(None, min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION to compare "
                                 "against (default: the model name's promoted version). With a live run of the same versions: "
                                 "a queued run without a baseline takes it; a run compared with another baseline is a 409")
    recompute: bool = Field(False, description="Supersede the live run of the same versions (not a running one) with a new run")


class EvalRunCreated(Camel):
    run_id: str
    status: str
    created: bool = Field(description="False: an existing live run of the same model, dataset and suite versions (its "
                          "requestedBaseline may differ from the one asked for: compare with GET .../comparison?baseline=)")
    model_version: str
    dataset_id: str
    metric_suite_id: str
    requested_baseline: str | None = None


class Gate(Camel):
    model_config = ConfigDict(extra="allow")
    decision: str
    reasons: list[dict[str, Any]]
    decided_at: str | None = None


class EvalRunOut(Camel):
    model_config = ConfigDict(extra="allow")
    run_id: str
    status: str
    status_reason: str | None = None
    model_version: str
    dataset_id: str
    metric_suite_id: str
    attempt: int
    trigger: str
    requested_baseline: str | None = None
    baseline_run_id: str | None = None
    requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    queue_seconds: float | None = None
    metric_seconds: float | None = None
    cost: float | None = Field(None, description="What the run's LLM calls cost (candidate and judges), once it finished; 0 without LLM calls")
    predictions_hash: str | None = None
    metrics_hash: str | None = None
    predictions_purged_at: str | None = None
    results: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    gate: Gate | None = None
    redacted: bool = False


class EvalRunPage(Camel):
    items: list[EvalRunOut]
    offset: int
    limit: int
    total: int


class Comparison(Camel):
    model_config = ConfigDict(extra="allow")
    run_id: str
    source: Literal["recorded", "computed"]
    baseline: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    slices: dict[str, dict[str, dict[str, Any]]]
    regressions: dict[str, list[Any]] | None = None
    regression_counts: dict[str, int]
    gate: Gate | None = None
    redacted: bool = False


class RowsPage(Camel):
    offset: int
    limit: int
    total: int
    columns: list[str]
    rows: list[dict[str, Any]]


class AccessPolicy(Camel):
    level: str
    teams: list[str] = []
    allow_aggregates: bool = False
    #: the smallest slice shown to a team with aggregates-only access (eval_platform.platform.aggregates)
    min_slice_size: int


class DatasetOut(Camel):
    model_config = ConfigDict(extra="allow")
    dataset_id: str
    version: int
    key: str
    task_type: str
    label_policy: str
    access_policy: AccessPolicy
    row_count: int
    content_hash: str
    status: str
    status_reason: str | None = None
    description: str = ""
    created_at: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    created: bool | None = None


class SuiteOut(Camel):
    suite_id: str
    version: int
    key: str
    purpose: str
    task_type: str
    definition_hash: str
    definition: dict[str, Any]
    created_at: str | None = None
    created: bool | None = None


class ModelOut(Camel):
    name: str
    version: int
    key: str
    kind: str
    file_hash: str
    trusted_types: list[str]
    description: str = ""
    registered_at: str | None = None
    gate: str | None = None
    promoted: bool = False
    created: bool | None = None
    queued_runs: list[str] | None = None


class GateOut(Camel):
    model_version: str
    decision: str = Field(description="pass, fail, no_decision or overridden (the effective decision)")
    recorded_decision: str | None = None
    decided_at: str | None = None
    reasons: list[dict[str, Any]]
    override: dict[str, Any] | None = None
    promoted: bool = False


class ReasonBody(Camel):
    reason: str = Field(min_length=1, max_length=4000)


class PromoteBody(Camel):
    reason: str = Field("", max_length=4000)


class RecomputeBody(Camel):
    affected_by: str = Field(min_length=1, max_length=400, description="NAME@VERSION of a metric marked buggy, or a contaminated DATASET_ID@VERSION")
    reason: str = Field("", max_length=4000)


class OverrideOut(Camel):
    id: int
    model_version: str
    overridden_decision: str
    suites: list[str]
    approver: str
    reason: str
    created_at: str | None = None


class RequestOut(Camel):
    request_id: int
    kind: str
    partitions: list[str]
    requested_by: str
    status: str
    requested_at: str | None = None


class MetricOut(Camel):
    metric: str
    name: str
    version: int
    direction: str
    task_types: list[str]
    params: list[str]
    unit: str
    requires_judge: bool
    buggy: bool
    description: str


class ImpactOut(Camel):
    incident_id: int
    kind: str
    target: str
    reason: str
    reported_by: str
    affected_runs: list[str]
    affected_models: list[str]


class RecomputeOut(Camel):
    queued_runs: list[str]
    backfill_request_id: int | None = None
    partitions: list[str]


class Health(Camel):
    status: str
    schema_revision: str | None = None
    version: str


# record -> JSON ----------------------------------------------------------------------------------------
#: what the document says of a suite definition: its required fields, their types and enums, and no other
#: top-level field (what parse_suite checks first), so a generated "valid" suite is not refused for its shape
SUITE_BODY_SCHEMA = {
    "required": ["suite_id", "purpose", "task_type", "metrics"],
    "additionalProperties": False,
    "properties": {
        "suite_id": {"type": "string", "pattern": ID_PATTERN, "maxLength": 128},
        "purpose": {"enum": list(PURPOSES)},
        "task_type": {"enum": list(TASK_TYPES)},
        "metrics": {"type": "array", "minItems": 1, "items": {"anyOf": [
            {"type": "string", "description": "NAME@VERSION of a catalog metric"},
            {"type": "object", "required": ["metric"], "properties": {"metric": {"type": "string"}, "name": {"type": "string"},
                                                                     "params": {"type": "object"}}}]}},
        "slices": {"type": "array", "items": {"type": "string"}},
        "min_slice_size": {"type": "integer", "minimum": 1},
        "comparison": {"type": "object"}, "gate": {"type": "object"}, "description": {"type": "string"},
        "llm": {"type": "object"}, "online": {"type": "object"},
    },
}


def _dataset_json(record: EvalDataset, created: bool | None = None) -> dict:
    policy = record.access_policy or {"level": "internal"}
    schema = record.schema or {}
    out = {
        "datasetId": record.dataset_id, "version": record.version, "key": record.key, "taskType": record.task_type,
        "labelPolicy": record.label_policy,
        "accessPolicy": {"level": policy.get("level"), "teams": policy.get("teams", []), "allowAggregates": bool(policy.get("allow_aggregates")),
                         "minSliceSize": aggregates.min_slice_size(policy)},
        "rowCount": record.row_count, "contentHash": record.content_hash, "status": record.status,
        "statusReason": record.status_reason, "description": record.description or "", "createdAt": iso(record.created_at),
        "schema": {"idColumns": schema.get("id_columns", []), "labelColumn": schema.get("label_column"),
                   "featureColumns": schema.get("feature_columns", []), "sliceColumns": schema.get("slice_columns", []),
                   "columns": schema.get("columns", {})},
    }
    if created is not None:
        out["created"] = created
    return out


def _suite_json(record: MetricSuite, created: bool | None = None) -> dict:
    out = {"suiteId": record.suite_id, "version": record.version, "key": record.key, "purpose": record.purpose,
           "taskType": record.task_type, "definitionHash": record.definition_hash, "definition": record.metric_defs,
           "createdAt": iso(record.created_at)}
    if created is not None:
        out["created"] = created
    return out


def _results_json(results: dict | None) -> dict | None:
    if results is None:
        return None
    out = {to_camel(k): v for k, v in results.items() if k not in ("metrics", "n_examples", "slices", "artifacts")}
    out.update(metrics=results.get("metrics") or {}, nExamples=results.get("n_examples") or {},
               slices=[_camel_keys(s) for s in results.get("slices") or []], artifacts=results.get("artifacts") or {})
    return out


def _lineage_json(lineage: dict | None) -> dict | None:
    if lineage is None:
        return None
    out = {}
    for key, value in lineage.items():
        if key == "metrics":
            out["metrics"] = value  # metric names are the suite's, not ours to rename
        elif key == "model" and isinstance(value, dict) and value.get("uri"):
            # the file's name: where the server keeps it is not the caller's to know (its hash identifies it)
            out["model"] = _camel_keys({**value, "uri": Path(str(value["uri"])).name}, deep=True)
        elif isinstance(value, dict):
            out[to_camel(key)] = _camel_keys(value, deep=True)
        else:
            out[to_camel(key)] = value
    return out


def _gate_json(record: GateDecisionRecord | None, reasons: list | None = None) -> dict | None:
    if record is None:
        return None
    return {"decision": record.decision, "reasons": [_camel_keys(r, deep=True) for r in (reasons if reasons is not None else record.reasons)],
            "decidedAt": iso(record.decided_at)}


def _strip_regressions(reasons: list) -> list:
    """Gate reasons without example ids (for teams that may see aggregates but not rows)."""
    out = []
    for reason in reasons:
        reason = dict(reason)
        if "reasons" in reason:
            reason["reasons"] = _strip_regressions(reason["reasons"])
        if reason.get("kind") == "max_regressions" or "regressions" in reason:
            regressed = reason.pop("regressions", None)
            if regressed is not None:
                reason["regression_count"] = len(regressed)
                reason["message"] = f"{len(regressed)} example(s) regressed (example ids withheld by the dataset's access policy)"
        out.append(reason)
    return out


def _has_regressions(reasons: list) -> bool:
    return any(r.get("regressions") or _has_regressions(r.get("reasons") or []) for r in reasons)


def _run_json(run: EvalRun, purge: RunPurge | None = None, gate: dict | None = None, visible: str = ROWS,
              with_lineage: bool = True, view: aggregates.AggregateView | None = None) -> dict:
    """``view`` filters the results of a team with aggregates-only access (none given: every slice withheld)."""
    if visible == access.AGGREGATES and view is None:
        view = aggregates.AggregateView(visible)
    out = {
        "runId": run.run_id, "status": run.status, "statusReason": run.status_reason, "modelVersion": run.model_key,
        "datasetId": run.dataset_key, "metricSuiteId": run.suite_key, "attempt": run.attempt, "trigger": run.trigger,
        "requestedBaseline": run.requested_baseline, "baselineRunId": run.baseline_run_id,
        "requestedAt": iso(run.requested_at), "startedAt": iso(run.started_at), "finishedAt": iso(run.finished_at),
        "queueSeconds": (run.started_at - run.requested_at).total_seconds() if run.started_at and run.requested_at else None,
        "metricSeconds": run.metric_seconds, "cost": run.cost, "predictionsHash": run.predictions_hash, "metricsHash": run.metrics_hash,
        "predictionsPurgedAt": iso(purge.purged_at) if purge is not None and run.predictions_hash is None else None,
        "results": _results_json(view.results(run.results) if view is not None else run.results) if visible != access.NOTHING else None,
        "redacted": visible == access.NOTHING,
    }
    if with_lineage:
        out["lineage"] = _lineage_json(run.lineage)
    if gate is not None:
        out["gate"] = gate
    return out


class _RunRef:
    """The columns of a run a replayed ``POST /v1/eval-runs`` answers with (a row, not an ORM record: cheaper)."""

    __slots__ = ("run_id", "status", "model_key", "dataset_key", "suite_key", "requested_baseline")

    def __init__(self, row):
        self.run_id, self.status, self.requested_baseline = row.run_id, row.status, row.requested_baseline
        self.model_key = f"{row.model_name}@{row.model_version}"
        self.dataset_key = f"{row.dataset_id}@{row.dataset_version}"
        self.suite_key = f"{row.suite_id}@{row.suite_version}"


@dataclass(frozen=True, slots=True)
class _Recorded:
    request_hash: str


@dataclass(frozen=True, slots=True)
class _DatasetRef:
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
class _SuiteRef:
    """The newest version of a suite named without a version (stands in for :class:`MetricSuite`)."""

    suite_id: str
    version: int
    task_type: str

    @property
    def key(self) -> str:
        return f"{self.suite_id}@{self.version}"


def _created_json(run: EvalRun, created: bool) -> dict:
    return {"runId": run.run_id, "status": run.status, "created": created, "modelVersion": run.model_key,
            "datasetId": run.dataset_key, "metricSuiteId": run.suite_key, "requestedBaseline": run.requested_baseline}


def _model_json(platform: EvalPlatform, record: Model, created: bool | None = None, queued: list[str] | None = None,
                state: tuple[str | None, bool] | None = None) -> dict:
    """``state``: the version's ``(gate decision, promoted)`` when already read (a listing batches them)."""
    if state is None:
        decision = platform.gate_decision(record.key)
        state = (decision.decision if decision else None, platform.promoted_version(record.name) == record.version)
    out = {"name": record.name, "version": record.version, "key": record.key, "kind": record.kind, "fileHash": record.file_hash,
           "trustedTypes": record.trusted_types or [], "description": record.description or "",
           "registeredAt": iso(record.registered_at), "gate": state[0], "promoted": state[1]}
    if created is not None:
        out["created"] = created
    if queued is not None:
        out["queuedRuns"] = queued
    return out


def _impact_json(impact) -> dict:
    incident = impact.incident
    return {"incidentId": incident.id, "kind": incident.kind, "target": incident.target, "reason": incident.reason,
            "reportedBy": incident.reported_by, "affectedRuns": [r.run_id for r in impact.runs], "affectedModels": list(impact.models)}


def _request_json(record) -> dict:
    return {"requestId": record.id, "kind": record.kind, "partitions": record.partitions, "requestedBy": record.requested_by,
            "status": record.status, "requestedAt": iso(record.requested_at)}


def _rows_json(frame, offset: int, limit: int) -> dict:
    page = frame.iloc[offset:offset + limit]
    rows = json.loads(page.to_json(orient="records", date_format="iso", default_handler=str)) if len(page) else []
    return {"offset": offset, "limit": limit, "total": int(len(frame)), "columns": [str(c) for c in frame.columns], "rows": rows}


def _page_of_table(platform: EvalPlatform, kind: str, digest: str, offset: int, limit: int) -> dict:
    """One page of a stored table, reading only the Parquet row groups it spans (datasets reach millions of rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = platform.store._path(kind, digest, ".parquet")
    if not platform.store.fs.exists(path):
        raise NotFound(f"{kind} artifact", digest)
    with platform.store.fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        total = parquet.metadata.num_rows
        groups, start, first_row = [], 0, None
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if start + rows > offset and start < offset + limit:
                groups.append(index)
                first_row = start if first_row is None else first_row
            start += rows
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    if first_row is not None:
        table = table.slice(offset - first_row, limit)
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    result = _rows_json(frame, 0, limit)
    result.update(offset=offset, total=int(total))
    return result


# the app ---------------------------------------------------------------------------------------------
class _Observe:
    """Pure ASGI middleware: request id, per-route figures for /metrics, one JSON access-log line."""

    def __init__(self, app, stats: HttpStats):
        self.app, self.stats = app, stats

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = [500]

        async def send_with_id(message):
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
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.stats.observe(scope["method"], route, status[0], seconds)
            if log.isEnabledFor(logging.INFO):
                # path template, not the URL: no query strings, no ids of restricted rows, never a header
                log.info("request", extra={"fields": {"request_id": request_id, "method": scope["method"], "route": route,
                                                      "status": status[0], "ms": round(seconds * 1000, 2),
                                                      "team": (scope.get("state") or {}).get("team")}})


class _LimitBody:
    """Refuse a request body over ``limit`` bytes with a 413 problem: at once when its Content-Length says so,
    else as soon as the streamed body passes it (before it fills a disk)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            from starlette.requests import Request

            response = problem_response(Request(scope), 413, "too-large", "Upload too large", f"at most {self.limit} bytes", field="file")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ProblemError(413, "too-large", "Upload too large", f"at most {self.limit} bytes", field="file")
            return message

        await self.app(scope, counted, send)


def create_app(platform: EvalPlatform | None = None, home=None, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               threads: int | None = None) -> FastAPI:
    """The API on ``platform`` (or the installation at ``home``, opened now and closed with the app).

    ``threads`` bounds the worker threads that run the (synchronous) routes: default
    ``$EVAL_PLATFORM_API_THREADS`` or 8."""
    owns = platform is None
    threads = threads or int(os.environ.get("EVAL_PLATFORM_API_THREADS") or 8)
    platform = platform or EvalPlatform.open(home)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        # few threads: requests are short and hold the GIL; more threads only lengthen the tail (bench/bench_api.py)
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        # the modules loaded (pandas, SQLAlchemy, pydantic...) leave some 500k long-lived objects that every full
        # garbage collection would walk: a stop-the-world pause of 50-150 ms, the API's worst tail latency.
        # Move them out of the collector's sight once; what requests allocate is still collected as usual.
        gc.collect()
        gc.freeze()
        yield
        if owns:
            platform.close()

    app = FastAPI(
        title="Eval platform API", version=eval_platform.__version__, lifespan=lifespan,
        description=API_DESCRIPTION,
        responses=problem_responses(400, 401, 503),  # 503: the registry database is unreachable
    )

    app.router.route_class = LimitedJSONRoute  # JSON bodies with bounded size and nesting (routes added below)
    app.state.platform = platform
    app.state.http_stats = HttpStats()
    app.state.max_upload_bytes = max_upload_bytes
    install(app)
    app.add_middleware(_LimitBody, limit=max_upload_bytes + (1 << 20))  # the file plus the form's other fields
    app.add_middleware(_Observe, stats=app.state.http_stats)
    _routes(app, platform)

    add_experiment_routes(app, platform)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """The generated document, with errors as problem+json only."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in list((Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs") or {}).items()):
        schema["components"]["schemas"][name] = sub
    schema["components"]["schemas"]["Problem"].pop("$defs", None)
    for key in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(key, None)
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.get("responses", {})
            if path == "/healthz":
                responses.pop("401", None)
            if method == "get":
                responses.pop("400", None)  # no body to parse
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
                    if status == "422":
                        response["description"] = "Invalid input (the problem names the field)"
    app.openapi_schema = schema
    return schema


Team = Annotated[Principal, Depends(current_principal)]
RunId = Annotated[str, PathParam(alias="runId", min_length=1, max_length=40, description="An eval run id (run-...)")]
DatasetKey = Annotated[str, PathParam(alias="datasetKey", min_length=1, max_length=400, pattern=KEY_PATTERN,
                                      description="DATASET_ID@VERSION")]
ModelKey = Annotated[str, PathParam(alias="modelKey", min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION")]
Offset = Annotated[int, Query(ge=0, le=2_000_000_000)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _routes(app: FastAPI, platform: EvalPlatform) -> None:  # noqa: C901 - one closure per route
    # service --------------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["service"], responses=problem_responses(503))
    def healthz(request: Request):
        try:
            revision = platform.registry.schema_revision()
        except Exception as error:  # not healthy, whatever the cause: 503, as every route answers an outage
            if database_unreachable(error):
                return database_unavailable(request, error)
            raise ProblemError(503, "unavailable", "Service unavailable", "the registry does not answer",
                               headers={"Retry-After": str(retry_after_seconds())}) from None
        return respond({"status": "ok", "schemaRevision": revision, "version": eval_platform.__version__})

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
    def metrics(principal: Team):
        text = render_prometheus(collect(platform), app.state.http_stats)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    # eval runs -------------------------------------------------------------------------------------
    immutable: dict[tuple[str, str], object] = {}  # model and suite versions never change: cache them

    # statements built once (building one costs more than running it); rows become plain, detached records
    datasets_t, suites_t = EvalDataset.__table__, MetricSuite.__table__
    dataset_columns = (datasets_t.c.dataset_id, datasets_t.c.version, datasets_t.c.task_type, datasets_t.c.status,
                       datasets_t.c.access_policy)
    dataset_version = select(*dataset_columns).where(datasets_t.c.dataset_id == bindparam("name"), datasets_t.c.version == bindparam("version"))
    newest_dataset = (select(*dataset_columns).where(datasets_t.c.dataset_id == bindparam("name"), datasets_t.c.status == "active")
                      .order_by(datasets_t.c.version.desc()).limit(1))
    newest_suite = (select(suites_t.c.suite_id, suites_t.c.version, suites_t.c.task_type).where(suites_t.c.suite_id == bindparam("name"))
                    .order_by(suites_t.c.version.desc()).limit(1))
    versions = {Model: select(Model).where(Model.name == bindparam("name"), Model.version == bindparam("version")),
                MetricSuite: select(MetricSuite).where(MetricSuite.suite_id == bindparam("name"), MetricSuite.version == bindparam("version"))}

    def _versioned(session, kind, key: str, field: str):
        """A model or suite version named by a request field (``NAME@VERSION``, or the newest suite by name)."""
        cached = immutable.get((kind.__name__, key))
        if cached is not None:
            return cached
        label = "model" if kind is Model else "metric suite"
        if kind is MetricSuite and "@" not in key:
            row = session.execute(newest_suite, {"name": key}).first()
            if row is None:
                raise InvalidInput(field, f"{key!r}: no such {label}")
            return _SuiteRef(row.suite_id, row.version, row.task_type)
        name, version = _lookup(field, lambda: split_key(key, field))
        record = session.scalar(versions[kind], {"name": name, "version": version})
        if record is None:
            raise InvalidInput(field, f"{key!r}: no such {label}")
        session.expunge(record)  # detached: safe to share between requests
        if len(immutable) < 100_000:
            immutable[(kind.__name__, key)] = record
        return record

    def _refuse_hidden(principal: Principal, dataset: EvalDataset, field: str, named: str) -> None:
        """A request names a dataset the team may know nothing of: the very answer an absent dataset gets (so its
        existence does not leak); the attempt is logged."""
        if not access.may_know(dataset.access_policy, principal.team):
            access.record_access(platform, principal, AGGREGATE_READ, dataset.key, access.DENIED, detail=f"named in {field}")
            raise InvalidInput(field, f"{named!r}: no such {'dataset' if '@' in named else 'usable dataset'}")

    def _dataset_in(session, dataset_id: str) -> EvalDataset:
        """The dataset version a request names (its newest active version without ``@``): the columns the checks read."""
        if "@" in dataset_id:
            name, version = _lookup("datasetId", lambda: split_key(dataset_id, "datasetId"))
            row = session.execute(dataset_version, {"name": name, "version": version}).first()
        else:
            row = session.execute(newest_dataset, {"name": dataset_id}).first()
        if row is None:
            raise InvalidInput("datasetId", f"{dataset_id!r}: no such {'dataset' if '@' in dataset_id else 'usable dataset'}")
        return _DatasetRef(row.dataset_id, row.version, row.task_type, row.status, row.access_policy)

    # POST /v1/eval-runs is the hot path (CI pipelines retry it): one registry read authenticates the token
    # and finds the run an earlier request with the same Idempotency-Key recorded; only a new key opens a
    # write transaction
    tokens, keys, runs = ApiToken.__table__, IdempotencyRecord.__table__, EvalRun.__table__
    replay_columns = (keys.c.request_hash, runs.c.run_id, runs.c.status, runs.c.model_name, runs.c.model_version, runs.c.dataset_id,
                      runs.c.dataset_version, runs.c.suite_id, runs.c.suite_version, runs.c.requested_baseline)
    token_and_replay = (select(*access.TOKEN_COLUMNS, *replay_columns)
                        .select_from(tokens.outerjoin(keys, and_(keys.c.team == tokens.c.team, keys.c.key == bindparam("key")))
                                     .outerjoin(runs, runs.c.run_id == keys.c.run_id))
                        .where(tokens.c.token_hash == bindparam("digest")))

    insert_key = keys.insert()

    def _authenticate_and_replay(token: str | None, key: str | None):
        """The calling team (its token checked now: a revoked token is refused at once) and, for a key this
        team used before, the recorded request hash and run; one indexed read, no write transaction."""
        digest = access.token_digest(token)
        with platform.registry.engine.connect() as connection:
            row = connection.execute(token_and_replay, {"digest": digest, "key": key or ""}).first()
        principal = access.principal_of(row)
        if key is None or row.run_id is None:
            return principal, None
        return principal, (_Recorded(row.request_hash), _RunRef(row))

    def _queue(body: EvalRunRequest, principal: Principal, key: str | None, request_hash: str):
        """One transaction: every check, then the run and the idempotency record (or nothing). Run again when a
        concurrent request won a race (the same key, or the same evaluation), and then finds its work."""
        attempts = [0]

        def work():
            attempts[0] += 1
            with platform.registry.write_session() as session:
                if key is not None and attempts[0] > 1:  # the first attempt's read found no record
                    existing = session.get(IdempotencyRecord, (principal.team, key))
                    if existing is not None:
                        return (existing, session.get(EvalRun, existing.run_id)), None
                model = _versioned(session, Model, body.model_version, "modelVersion")
                dataset = _dataset_in(session, body.dataset_id)
                _refuse_hidden(principal, dataset, "datasetId", body.dataset_id)
                if not access.may_act_on(principal, model.owner_team):  # read again: the cached record may predate `evalp owners set`
                    access.check_owner(principal, access.MODEL, model.name, *access.owner_of(session, access.MODEL, model.name),
                                       "request evaluations of it", "modelVersion", platform)
                suite = _versioned(session, MetricSuite, body.metric_suite_id, "metricSuiteId")
                if dataset.task_type != suite.task_type:
                    raise InvalidInput("metricSuiteId", f"suite {suite.key} is for {suite.task_type}, dataset {dataset.key} is {dataset.task_type}")
                if body.baseline is not None:
                    _versioned(session, Model, body.baseline, "baseline")
                if dataset.status != "active":
                    raise Conflict(f"dataset {dataset.key} is {dataset.status}: no new runs may use it")
                if access.require(platform, principal, dataset, AGGREGATE_READ) == access.AGGREGATES:
                    # aggregates only: no LLM may be sent the rows, no slice on a column the owner did not declare
                    aggregates.check_aggregate_use(platform, principal, platform.dataset(dataset.key),
                                                   platform.suite_definition(platform.suite(suite.key)), model.kind)
                if model.kind == "predictions":  # its file must cover this dataset (a file read: only for this kind)
                    with fields_named({"model_file": "modelVersion"}):
                        platform.check_predictions_cover(model, platform.dataset(dataset.key))
                # nothing was written before this line
                run, created = platform.queue_or_find_run(session, model, dataset, suite, trigger="api", baseline=body.baseline,
                                                          recompute=body.recompute)
                if key is not None:
                    session.flush()  # the run before the record that refers to it
                    session.execute(insert_key, {"team": principal.team, "key": key, "request_hash": request_hash, "run_id": run.run_id,
                                                 "status_code": 201 if created else 200, "created_at": utcnow()})
                return run, created  # committed when the block ends; a lost race raises and is retried

        return _retrying(work)

    async def _caller_and_replay(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                                 idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                                                               description="Retries with the same key and body return "
                                                                               "the same run; a different body is a 409")] = None):
        """The dependency of ``POST /v1/eval-runs``: solved before the body is validated, so a request without
        a valid token is a 401 whatever its body."""
        token = credentials.credentials if credentials else None
        principal, recorded = await run_in_threadpool(_authenticate_and_replay, token, idempotency_key)
        request.state.team = principal.team  # for the access log line of this request
        return principal, idempotency_key, recorded

    def _replay(record: IdempotencyRecord | _Recorded, run: EvalRun | _RunRef, request_hash: str) -> JSONResponse:
        if record.request_hash != request_hash:
            raise ProblemError(409, "idempotency-key-reused", "Idempotency key reused",
                               "this Idempotency-Key was used with a different request body", field="Idempotency-Key")
        return respond(_created_json(run, False), 200,
                       headers={"Idempotent-Replayed": "true", "Location": f"/v1/eval-runs/{run.run_id}"})

    @app.post("/v1/eval-runs", tags=["eval runs"], status_code=201, response_model=EvalRunCreated,
              responses={200: {"model": EvalRunCreated, "description": "An existing run (a live run of the same model, dataset and "
                               "suite versions, or a replay of the same Idempotency-Key)"}, **problem_responses(403, 409, 422)})
    async def request_eval_run(body: EvalRunRequest, caller: tuple = Depends(_caller_and_replay)):  # noqa: B008
        """Record an eval request; the Dagster sensor starts it (the API never runs evals itself)."""
        principal, key, recorded = caller
        request_hash = json_hash(body.model_dump())
        if recorded is not None:  # a retry
            return _replay(*recorded, request_hash)
        outcome, created = await run_in_threadpool(_queue, body, principal, key, request_hash)
        if created is None:  # a concurrent request with the same key committed first
            return _replay(*outcome, request_hash)
        return respond(_created_json(outcome, created), 201 if created else 200, headers={"Location": f"/v1/eval-runs/{outcome.run_id}"})

    def _policies() -> dict[str, dict]:
        with platform.registry.session() as session:
            return {f"{d}@{v}": p for d, v, p in session.execute(select(EvalDataset.dataset_id, EvalDataset.version, EvalDataset.access_policy))}

    @app.get("/v1/eval-runs", tags=["eval runs"], response_model=EvalRunPage, responses=problem_responses(422))
    def list_eval_runs(principal: Team, offset: Offset = 0, limit: Limit = 100,
                       model: Annotated[str | None, Query(max_length=400, description="NAME@VERSION")] = None,
                       status: Annotated[list[str] | None, Query(max_length=10)] = None,
                       dataset_id: Annotated[str | None, Query(alias="datasetId", max_length=400)] = None,
                       metric_suite_id: Annotated[str | None, Query(alias="metricSuiteId", max_length=400)] = None):
        """Eval runs, newest first; results of datasets the team may see only in part are withheld
        (``redacted``), and runs on datasets the team may not know of are not listed at all."""
        policies = _policies()
        hidden = [split_key(key, "dataset") for key, policy in policies.items() if not access.may_know(policy, principal.team)]
        query = select(EvalRun)
        if model:
            name, version = _lookup("model", lambda: split_key(model, "model"))
            query = query.where(EvalRun.model_name == name, EvalRun.model_version == version)
        if status:
            query = query.where(EvalRun.status.in_(status))
        for value, id_column, version_column in ((dataset_id, EvalRun.dataset_id, EvalRun.dataset_version),
                                                 (metric_suite_id, EvalRun.suite_id, EvalRun.suite_version)):
            if value:
                name, sep, version = value.rpartition("@")
                if sep and version.isdigit():
                    query = query.where(id_column == name, version_column == int(version))
                else:
                    query = query.where(id_column == value)
        with platform.registry.session() as session:
            # counted as all matching runs minus those of hidden datasets: two counts over indexes, where
            # counting "not in the hidden ones" would read every row
            counted = select(func.count()).select_from(EvalRun).where(query.whereclause if query.whereclause is not None else true())
            total = session.scalar(counted)
            if hidden:
                in_hidden = tuple_(EvalRun.dataset_id, EvalRun.dataset_version).in_(hidden)
                total -= session.scalar(counted.where(in_hidden))
                query = query.where(~in_hidden)
            runs = list(session.scalars(query.order_by(EvalRun.requested_at.desc(), EvalRun.run_id).offset(offset).limit(limit)))
            purges = {m.run_id: m for m in session.scalars(select(RunPurge).where(RunPurge.run_id.in_([r.run_id for r in runs])))} if runs else {}
        items, shown = [], {}  # restricted datasets whose runs' results this page shows -> those runs
        for r in runs:
            seen = access.visibility(policies.get(r.dataset_key), principal.team)
            items.append(_run_json(r, purges.get(r.run_id), visible=seen, with_lineage=False))
            if seen != access.NOTHING and access.is_restricted(policies.get(r.dataset_key)):
                shown.setdefault(r.dataset_key, []).append(r.run_id)
        for dataset_key, run_ids in shown.items():
            access.record_access(platform, principal, AGGREGATE_READ, dataset_key, GRANTED, rows=len(run_ids),
                                 run_id=run_ids[0] if len(run_ids) == 1 else None, detail="run listing: " + " ".join(run_ids))
        return respond({"items": items, **_page(offset, limit, total)})

    def _run_gate(run: EvalRun) -> GateDecisionRecord | None:
        with platform.registry.session() as session:
            return session.scalar(select(GateDecisionRecord).where(
                GateDecisionRecord.scope == "run", GateDecisionRecord.eval_run_id == run.run_id,
                GateDecisionRecord.superseded.is_(False)).order_by(GateDecisionRecord.id.desc()).limit(1))

    def _visible_reasons(principal: Principal, dataset: EvalDataset, reasons: list, seen: str, run_id: str | None,
                         view: aggregates.AggregateView) -> list:
        if seen != ROWS:  # aggregates only: no example ids, no per-slice reason on a slice it may not see
            return _strip_regressions(view.reasons(reasons))
        if access.is_restricted(dataset.access_policy) and _has_regressions(reasons):
            access.record_access(platform, principal, REGRESSIONS, dataset.key, GRANTED, run_id=run_id, detail="gate reasons")
        return reasons

    def _log_results_read(principal: Principal, dataset: EvalDataset, run: EvalRun, view: aggregates.AggregateView, what: str) -> None:
        """Log a read of a run's results as what it was: an aggregate read, unless the team (with row access) was
        shown slices an aggregates-only team would not be (per example, below the minimum size): a read of rows."""
        if not view.filtered and access.is_restricted(dataset.access_policy):
            strict = aggregates.view_of_run(platform, run, dataset, access.AGGREGATES)
            rows = {s.get("slice") for s in (run.results or {}).get("slices") or [] if not strict.slice_ok(s.get("slice"))}
            if rows:
                access.record_read(platform, principal, EXAMPLES, dataset, rows=len(rows), run_id=run.run_id,
                                   detail=f"{what}: slices on undeclared columns or below the minimum size")
                return
        access.record_read(platform, principal, AGGREGATE_READ, dataset, run_id=run.run_id,
                           detail=what + (" (aggregates only: small and undeclared slices suppressed)" if view.filtered else ""))

    def _dataset_of_run(principal: Principal, run: EvalRun, action: str) -> EvalDataset:
        """The run's dataset; a run of a dataset the team may know nothing of answers as an absent run (logged)."""
        dataset = platform.dataset(run.dataset_key)
        if not access.may_know(dataset.access_policy, principal.team):
            access.record_access(platform, principal, action, dataset.key, access.DENIED, run_id=run.run_id)
            raise NotFound("eval run", run.run_id)
        return dataset

    @app.get("/v1/eval-runs/{runId}", tags=["eval runs"], response_model=EvalRunOut, responses=problem_responses(403, 404, 422))
    def get_eval_run(run_id: RunId, principal: Team):
        """Status, results (aggregate metrics and slices), the run's gate decision, and its lineage."""
        run = platform.run(run_id)
        dataset = _dataset_of_run(principal, run, AGGREGATE_READ)
        seen = access.require(platform, principal, dataset, AGGREGATE_READ, run_id=run.run_id)
        view = aggregates.view_of_run(platform, run, dataset, seen)
        record = _run_gate(run)
        gate = _gate_json(record, _visible_reasons(principal, dataset, record.reasons, seen, run.run_id, view)) if record else None
        with platform.registry.session() as session:
            purge = session.get(RunPurge, run.run_id)
        _log_results_read(principal, dataset, run, view, "run results")
        return respond(_run_json(run, purge, gate, seen, view=view))

    @app.get("/v1/eval-runs/{runId}/comparison", tags=["eval runs"], response_model=Comparison,
             responses=problem_responses(403, 404, 409, 422))
    def get_comparison(run_id: RunId, principal: Team,
                       baseline: Annotated[str | None, Query(min_length=1, max_length=400,
                                                             description="NAME@VERSION or a run id; default: the run's recorded baseline")] = None):
        """Candidate minus baseline per metric (paired-bootstrap intervals), per slice, and the gate's reasons."""
        run = platform.run(run_id)
        dataset = _dataset_of_run(principal, run, AGGREGATE_READ)
        seen = access.require(platform, principal, dataset, AGGREGATE_READ, run_id=run.run_id)
        if baseline is not None and baseline.startswith("run-"):  # a run of a hidden dataset is no run
            other = _lookup("baseline", lambda: platform.run(baseline))
            if not access.may_know(platform.dataset(other.dataset_key).access_policy, principal.team):
                access.record_access(platform, principal, AGGREGATE_READ, other.dataset_key, access.DENIED, run_id=other.run_id,
                                     detail="named as a comparison baseline")
                raise InvalidInput("baseline", f"{baseline!r}: no such eval run")
        if run.status not in (SUCCEEDED,) and not run.comparison:
            raise Conflict(f"run {run.run_id} is {run.status}: it has no comparison yet")
        payload = _comparison(platform, run, dataset, baseline)
        view = aggregates.view_of_run(platform, run, dataset, seen)
        payload["slices"] = {metric: view.slice_map(by_slice) for metric, by_slice in payload["slices"].items()}
        regressions = payload.pop("regressions")
        payload["regressionCounts"] = {k: len(v) for k, v in regressions.items()}
        if seen == ROWS:
            payload["regressions"] = regressions
            if access.is_restricted(dataset.access_policy) and any(regressions.values()):
                access.record_access(platform, principal, REGRESSIONS, dataset.key, GRANTED, rows=sum(map(len, regressions.values())),
                                     run_id=run.run_id, detail="comparison")
        else:
            payload["regressions"] = None
            payload["redacted"] = True
        record = _run_gate(run)
        payload["gate"] = _gate_json(record, _visible_reasons(principal, dataset, record.reasons, seen, None, view)) if record else None
        _log_results_read(principal, dataset, run, view, f"comparison ({payload['source']}, baseline {payload['baseline'].get('runId')})")
        return respond(payload)

    @app.get("/v1/eval-runs/{runId}/predictions", tags=["eval runs"], response_model=RowsPage,
             responses={**problem_responses(403, 404, 409, 422), 410: {"model": Problem, "description": "Purged by the retention policy"}})
    def get_predictions(run_id: RunId, principal: Team, offset: Offset = 0, limit: Limit = 100):
        """The run's per-example predictions (rows: readable only by teams the dataset's policy allows)."""
        run = platform.run(run_id)
        dataset = _dataset_of_run(principal, run, PREDICTIONS)
        access.require(platform, principal, dataset, PREDICTIONS, run_id=run.run_id)
        if run.predictions_hash is None:
            with platform.registry.session() as session:
                purge = session.get(RunPurge, run.run_id)
            if purge is not None:
                raise ProblemError(410, "purged", "Purged", f"the predictions of run {run.run_id} were deleted on "
                                   f"{purge.purged_at.date().isoformat()} by the retention policy of dataset {dataset.key}; "
                                   "request the run again with recompute to reproduce them")
            raise Conflict(f"run {run.run_id} is {run.status}: it has no predictions yet")
        payload = _page_of_table(platform, PREDICTIONS_KIND, run.predictions_hash, offset, limit)
        access.record_read(platform, principal, PREDICTIONS, dataset, rows=len(payload["rows"]), run_id=run.run_id,
                           detail=f"offset={offset} limit={limit}")
        return respond(payload)

    # datasets --------------------------------------------------------------------------------------
    dataset_fields = {"dataset_id": "datasetId", "task_type": "taskType", "label_policy": "labelPolicy",
                      "access_policy.level": "accessLevel", "access_policy.teams": "teams", "access_policy": "accessLevel",
                      "slice_columns": "sliceColumns", "access_policy.min_slice_size": "minSliceSize", "feature_columns": "featureColumns", "data": "file", "description": "description"}

    def _read_upload(upload: UploadFile):
        import pandas as pd

        size = upload.size if upload.size is not None else None
        if size is not None and size > app.state.max_upload_bytes:
            raise ProblemError(413, "too-large", "Upload too large", f"at most {app.state.max_upload_bytes} bytes", field="file")
        handle = upload.file
        head = handle.read(4)
        handle.seek(0)
        name = (upload.filename or "").lower()
        try:
            if head == b"PAR1":
                return pd.read_parquet(handle)
            if name.endswith((".parquet", ".pq")):
                raise InvalidInput("file", "is named .parquet but is not a Parquet file")
            return pd.read_csv(handle, sep="\t" if name.endswith(".tsv") else ",")
        except InvalidInput:
            raise
        except Exception as error:  # the parser's words name the line; the rows are not echoed
            raise InvalidInput("file", f"could not be read as Parquet or CSV ({type(error).__name__}: {str(error)[:300]})") from error

    @app.post("/v1/datasets", tags=["datasets"], status_code=201, response_model=DatasetOut,
              responses={200: {"model": DatasetOut, "description": "Identical content and metadata: the existing version"},
                         **problem_responses(413, 422)})
    def register_dataset(
        principal: Team,
        file: Annotated[UploadFile, File(description="Parquet or CSV")],
        dataset_id: Annotated[str, Form(alias="datasetId", min_length=1, max_length=128, pattern=ID_PATTERN)],
        task_type: Annotated[Literal[tuple(TASK_TYPES)], Form(alias="taskType")],  # the enums, in the document too
        label_policy: Annotated[Literal[LABEL_POLICIES], Form(alias="labelPolicy")],
        access_level: Annotated[Literal["public", "internal", "restricted"], Form(alias="accessLevel")] = "internal",
        teams: Annotated[list[str], Form(description="teams allowed to read a restricted dataset's rows")] = [],  # noqa: B006
        allow_aggregates: Annotated[bool, Form(alias="allowAggregates")] = False,
        # an int (not int | None): a multipart form has no null, and the document should not offer one
        min_slice_size: Annotated[int, Form(alias="minSliceSize", ge=1, le=1_000_000,
                                                   description="the smallest slice a team with aggregates-only access is "
                                                   f"shown (default {aggregates.DEFAULT_MIN_SLICE_SIZE})")] = None,  # type: ignore[assignment]
        slice_columns: Annotated[list[str], Form(alias="sliceColumns")] = [],  # noqa: B006
        feature_columns: Annotated[list[str] | None, Form(alias="featureColumns")] = None,
        description: Annotated[str, Form(max_length=4000)] = "",
    ):
        """Validate and register a dataset version (a new version only when content or metadata changed)."""
        frame = _read_upload(file)
        teams = [t for team in teams for t in team.split(",") if t.strip()]
        policy = {"level": access_level, "teams": [t.strip() for t in teams], "allow_aggregates": allow_aggregates}
        if min_slice_size is not None:
            policy["min_slice_size"] = min_slice_size
        with fields_named(dataset_fields):
            result = platform.register_dataset(dataset_id, frame, task_type=task_type, label_policy=label_policy, access_policy=policy,
                                               slice_columns=[c for c in slice_columns if c], feature_columns=feature_columns or None,
                                               description=description, principal=principal)
        log.info("dataset registered", extra={"fields": {"dataset": result.record.key, "created": result.created, "team": principal.team}})
        return respond(_dataset_json(result.record, result.created), 201 if result.created else 200,
                       headers={"Location": f"/v1/datasets/{result.record.key}"})

    @app.get("/v1/datasets", tags=["datasets"], response_model=list[DatasetOut], responses=_PAGE_HEADERS_DOC)
    def list_datasets(principal: Team, dataset_id: Annotated[str | None, Query(alias="datasetId", max_length=200)] = None,
                      offset: Offset = 0, limit: Limit = 100):
        """The dataset versions the team may know of (metadata only: rows are read through ``/examples``). A
        restricted dataset whose policy gives the team neither rows nor aggregates is left out entirely.
        One page in key order; ``X-Total-Count`` says how many there are."""
        datasets = EvalDataset.__table__.c
        policies = select(datasets.id, datasets.access_policy).order_by(datasets.dataset_id, datasets.version)
        if dataset_id:
            policies = policies.where(datasets.dataset_id == dataset_id)
        with platform.registry.session() as session:
            # who may know of a dataset is its policy's say (evaluated here): the policies, then the page's rows
            known = [i for i, policy in session.execute(policies) if access.may_know(policy, principal.team)]
            page = known[offset:offset + limit]
            records = list(session.scalars(select(EvalDataset).where(EvalDataset.id.in_(page))
                                           .order_by(EvalDataset.dataset_id, EvalDataset.version))) if page else []
        return respond([_dataset_json(d) for d in records], headers=_page_headers(offset, limit, len(known)))

    def _dataset(key: str, principal: Principal | None = None, action: str = "metadata") -> EvalDataset:
        """The dataset version a path names. To a team that may know nothing of it (a restricted dataset outside
        its policy, aggregates not allowed) it answers exactly as an absent version (404); the attempt is logged."""
        try:
            split_key(key, "datasetKey")
        except InvalidInput as error:
            raise InvalidInput("datasetKey", error.problem) from error
        dataset = platform.dataset(key)
        if principal is not None and not access.may_know(dataset.access_policy, principal.team):
            access.record_access(platform, principal, action, dataset.key, access.DENIED)
            raise NotFound("dataset", key)  # word for word what platform.dataset says of an absent version
        return dataset

    @app.get("/v1/datasets/{datasetKey}", tags=["datasets"], response_model=DatasetOut, responses=problem_responses(403, 404, 422))
    def get_dataset(dataset_key: DatasetKey, principal: Team):
        """A dataset version's metadata (a restricted dataset the team may know nothing of answers as absent: 404)."""
        return respond(_dataset_json(_dataset(dataset_key, principal)))

    @app.get("/v1/datasets/{datasetKey}/examples", tags=["datasets"], response_model=RowsPage,
             responses=problem_responses(403, 404, 422))
    def get_examples(dataset_key: DatasetKey, principal: Team, offset: Offset = 0, limit: Limit = 100):
        """The dataset's rows (readable only by teams its access policy allows; restricted reads are logged)."""
        dataset = _dataset(dataset_key, principal, EXAMPLES)
        access.require(platform, principal, dataset, EXAMPLES)
        payload = _page_of_table(platform, DATASETS_KIND, dataset.content_hash, offset, limit)
        access.record_read(platform, principal, EXAMPLES, dataset, rows=len(payload["rows"]), detail=f"offset={offset} limit={limit}")
        return respond(payload)

    @app.post("/v1/datasets/{datasetKey}/invalidate", tags=["datasets"], response_model=ImpactOut,
              responses=problem_responses(403, 404, 409, 422))
    def invalidate(dataset_key: DatasetKey, body: ReasonBody, principal: Team):
        """Mark a dataset version contaminated: no new runs, its runs invalid, their gates undecided."""

        dataset = _dataset(dataset_key, principal, "invalidate")
        access.require(platform, principal, dataset, AGGREGATE_READ)
        impact = invalidate_dataset(platform, dataset.key, reason=body.reason, reported_by=principal.label, principal=principal)
        return respond(_impact_json(impact))

    # metric suites ---------------------------------------------------------------------------------
    @app.post("/v1/metric-suites", tags=["metric suites"], status_code=201, response_model=SuiteOut,
              responses={200: {"model": SuiteOut, "description": "Identical definition: the existing version"}, **problem_responses(422)})
    def register_suite(principal: Team, body: Annotated[dict[str, Any], Body(description="The suite definition (as in the YAML files)",
                                                                              json_schema_extra=SUITE_BODY_SCHEMA)]):
        result = platform.register_suite(body, principal=principal)
        return respond(_suite_json(result.record, result.created), 201 if result.created else 200,
                       headers={"Location": f"/v1/metric-suites/{result.record.key}"})

    @app.get("/v1/metric-suites", tags=["metric suites"], response_model=list[SuiteOut], responses=_PAGE_HEADERS_DOC)
    def list_suites(principal: Team, offset: Offset = 0, limit: Limit = 100):
        """Metric suite versions, one page in key order; ``X-Total-Count`` says how many there are."""
        with platform.registry.session() as session:
            total = session.scalar(select(func.count()).select_from(MetricSuite))
            suites = list(session.scalars(select(MetricSuite).order_by(MetricSuite.suite_id, MetricSuite.version)
                                          .offset(offset).limit(limit)))
        return respond([_suite_json(s) for s in suites], headers=_page_headers(offset, limit, total))

    @app.get("/v1/metric-suites/{suiteKey}", tags=["metric suites"], response_model=SuiteOut, responses=problem_responses(404, 422))
    def get_suite(suite_key: Annotated[str, PathParam(alias="suiteKey", min_length=1, max_length=400, pattern=KEY_PATTERN)],
                  principal: Team):
        try:
            split_key(suite_key, "suiteKey")
        except InvalidInput as error:
            raise InvalidInput("suiteKey", error.problem) from error
        return respond(_suite_json(platform.suite(suite_key)))

    # models ----------------------------------------------------------------------------------------
    def _store_model_file(upload: UploadFile) -> tuple[Path, bool]:
        """Write the upload under ``<home>/models/`` named by its SHA-256; True if this call created it."""
        directory = platform.config.home / "models"
        directory.mkdir(parents=True, exist_ok=True)
        suffix = Path(upload.filename or "").suffix.lower()
        suffix = suffix if suffix in (".skops", ".parquet", ".csv", ".jsonl") else ".skops"
        temporary = directory / f".upload-{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        try:
            with open(temporary, "wb") as out:
                while chunk := upload.file.read(1 << 20):
                    size += len(chunk)
                    if size > app.state.max_upload_bytes:
                        raise ProblemError(413, "too-large", "Upload too large", f"at most {app.state.max_upload_bytes} bytes", field="file")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise InvalidInput("file", "the uploaded file is empty")
            final = directory / f"sha256-{digest.hexdigest()}{suffix}"
            if final.exists():
                return final, False
            os.replace(temporary, final)
            return final, True
        finally:
            temporary.unlink(missing_ok=True)

    @app.post("/v1/models", tags=["models"], status_code=201, response_model=ModelOut,
              responses={200: {"model": ModelOut, "description": "The same file: the existing version"}, **problem_responses(403, 413, 422)})
    def register_model(
        principal: Team,
        file: Annotated[UploadFile, File(description="A skops file (pickles are refused)")],
        name: Annotated[str, Form(min_length=1, max_length=128, pattern=ID_PATTERN)],
        kind: Annotated[Literal[MODEL_KINDS], Form()] = "sklearn",
        trusted_types: Annotated[list[str], Form(alias="trustedTypes", description="types the skops file may be loaded "
                                                 "with, within the installation's skops.trusted_types")] = [],  # noqa: B006
        eval_plan: Annotated[list[str], Form(alias="evalPlan", description="DATASET_ID:SUITE_ID entries added to the name's eval plan")] = [],  # noqa: B006
        description: Annotated[str, Form(max_length=4000)] = "",
    ):
        """Register a model file as the next version of ``name`` and queue the evals of its plan."""
        plan = []
        for entry in eval_plan:
            dataset_id, sep, suite_id = entry.partition(":")
            if not sep or not dataset_id or not suite_id:
                raise InvalidInput("evalPlan", f"{entry!r} must be DATASET_ID:SUITE_ID")
            dataset = _lookup("evalPlan", lambda d=dataset_id: platform.latest_dataset(d))
            _refuse_hidden(principal, dataset, "evalPlan", dataset_id)
            access.require(platform, principal, dataset, AGGREGATE_READ)
            plan.append((dataset_id, suite_id))
        try:
            # the operator's list, before the upload is even stored: a caller may only narrow it
            platform.installation.check_trusted_types(trusted_types, "trustedTypes")
        except NotAllowed as refusal:
            access.record_access(platform, principal, "model_file", "", access.DENIED, detail=str(refusal))
            raise
        validate_id(name, "name")
        # another team's name is refused before the upload is written (register_model checks again, with the plan)
        access.require_owner(platform, principal, access.MODEL, name, "register a version of it or change its eval plan", "name")
        path, created_file = _store_model_file(file)
        try:
            with fields_named({"model_file": "file", "eval_plan": "evalPlan", "kind": "kind", "name": "name",
                               "trusted_types": "trustedTypes"}):
                result = platform.register_model(name, path, kind=kind, trusted_types=[t for t in trusted_types if t],
                                                 eval_plan=plan, description=description, principal=principal)
        except NotAllowed as refusal:  # an endpoint or a variable of an openai_chat file the operator does not allow
            if created_file:
                path.unlink(missing_ok=True)
            access.record_access(platform, principal, "model_file", "", access.DENIED, detail=str(refusal))
            raise
        except BaseException:
            if created_file:
                path.unlink(missing_ok=True)
            raise
        queued = [r.run_id for r in platform.runs(result.record.key, [QUEUED])]
        return respond(_model_json(platform, result.record, result.created, queued), 201 if result.created else 200,
                       headers={"Location": f"/v1/models/{result.record.key}"})

    @app.get("/v1/models", tags=["models"], response_model=list[ModelOut], responses=_PAGE_HEADERS_DOC)
    def list_models(principal: Team, name: Annotated[str | None, Query(max_length=200)] = None,
                    offset: Offset = 0, limit: Limit = 100):
        """Model versions with their gate decision and whether promoted, one page in key order (name, then
        version); ``X-Total-Count`` says how many there are. A model evaluated only on datasets the team may
        not know of (unless its own) is not listed."""
        query = select(Model)
        if name:
            query = query.where(Model.name == name)
        hidden = _hidden_models(principal)
        if hidden:
            query = query.where(~tuple_(Model.name, Model.version).in_(sorted(hidden)))
        with platform.registry.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            models = list(session.scalars(query.order_by(Model.name, Model.version).offset(offset).limit(limit)))
            states = _model_states(session, models)
        return respond([_model_json(platform, m, state=states[(m.name, m.version)]) for m in models],
                       headers=_page_headers(offset, limit, total))

    def _hidden_models(principal: Principal) -> set[tuple[str, int]]:
        """Versions of other teams' models all of whose eval runs are on datasets the team may not know of.

        Only models with a run on such a dataset are looked at (indexed lookups), so a listing costs nothing
        more when the team may know of every dataset, whatever the number of runs."""
        hidden_datasets = [tuple(key.rsplit("@", 1)) for key, policy in _policies().items()
                           if not access.may_know(policy, principal.team)]
        if not hidden_datasets:
            return set()
        on_hidden = tuple_(EvalRun.dataset_id, EvalRun.dataset_version).in_([(d, int(v)) for d, v in hidden_datasets])
        with platform.registry.session() as session:
            candidates = set(session.execute(
                select(EvalRun.model_name, EvalRun.model_version).distinct()
                .join(Model, and_(Model.name == EvalRun.model_name, Model.version == EvalRun.model_version))
                .where(on_hidden, or_(Model.owner_team.is_(None), Model.owner_team != principal.team))).tuples())
            if not candidates:
                return set()
            known = set(session.execute(
                select(EvalRun.model_name, EvalRun.model_version).distinct()
                .where(tuple_(EvalRun.model_name, EvalRun.model_version).in_(sorted(candidates)), ~on_hidden)).tuples())
        return candidates - known

    def _model(key: str, principal: Principal | None = None) -> Model:
        """The model version a path names; one the team may not know of (:func:`_hidden_models`) answers as absent."""
        try:
            split_key(key, "modelKey")
        except InvalidInput as error:
            raise InvalidInput("modelKey", error.problem) from error
        model = platform.model(key)
        if principal is not None and (model.name, model.version) in _hidden_models(principal):
            raise NotFound("model", key)
        return model

    app.state.visible_model = _model

    @app.get("/v1/models/{modelKey}/gate", tags=["gates"], response_model=GateOut, responses=problem_responses(404, 422))
    def get_gate(model_key: ModelKey, principal: Team):
        """The model version's effective gate decision and its reasons per release-blocking run."""

        model = _model(model_key, principal)
        state, decision, override = effective_decision(platform, model.key)
        reasons = decision.reasons if decision else []
        policies, runs = _policies(), {r.run_id: r for r in platform.runs(model.key)}
        shown = []
        for group in reasons:
            run = runs.get(str(group.get("run", "")).split(" ", 1)[0])
            if run is None:
                shown.append(group)
                continue
            seen = access.visibility(policies.get(run.dataset_key), principal.team)
            if seen == access.NOTHING:  # not the run, its dataset nor its suite: only that a withheld run decided so
                access.record_access(platform, principal, AGGREGATE_READ, run.dataset_key, access.DENIED, run_id=run.run_id,
                                     detail=f"gate reasons of {model.key}")
                shown.append({"run": "(withheld)", "outcome": group.get("outcome"), "redacted": True})
            else:
                dataset = platform.dataset(run.dataset_key)
                view = aggregates.view_of_run(platform, run, dataset, seen)
                shown.append(_visible_reasons(principal, dataset, [group], seen, run.run_id, view)[0])
                access.record_read(platform, principal, AGGREGATE_READ, dataset, run_id=run.run_id, detail=f"gate reasons of {model.key}")
        return respond({
            "modelVersion": model.key, "decision": state, "recordedDecision": decision.decision if decision else None,
            "decidedAt": iso(decision.decided_at) if decision else None, "reasons": [_camel_keys(r, deep=True) for r in shown],
            "override": ({"approver": override.approver, "reason": override.reason, "overriddenDecision": override.overridden_decision,
                          "suites": override.suites, "createdAt": iso(override.created_at)} if override else None),
            "promoted": platform.promoted_version(model.name) == model.version,
        })

    @app.post("/v1/models/{modelKey}/gate/override", tags=["gates"], status_code=201, response_model=OverrideOut,
              responses=problem_responses(404, 409, 422))
    def override(model_key: ModelKey, body: ReasonBody, principal: Team):
        """Let a failed or undecided gate through: the calling team must be an approver of every
        release-blocking suite behind the decision."""
        return _override(model_key, body, principal, "model_version")

    def _override(model_key: str, body: ReasonBody, principal: Principal, scope: str):

        model = _model(model_key, principal)
        with fields_named({"approver": "Authorization"}):
            record = override_gate(platform, model.key, approver=principal.label, reason=body.reason, scope=scope, principal=principal)
        return respond({"id": record.id, "modelVersion": f"{record.model_name}@{record.model_version}",
                        "overriddenDecision": record.overridden_decision, "suites": record.suites, "approver": record.approver,
                        "reason": record.reason, "createdAt": iso(record.created_at)}, 201)

    @app.post("/v1/models/{modelKey}/online-gate/override", tags=["gates"], status_code=201, response_model=OverrideOut,
              responses=problem_responses(404, 409, 422))
    def override_online(model_key: ModelKey, body: ReasonBody, principal: Team):
        """Let a failed or undecided online gate through (approvers of every release-blocking suite only)."""
        return _override(model_key, body, principal, "online")

    @app.post("/v1/models/{modelKey}/promote", tags=["gates"], status_code=202, response_model=RequestOut,
              responses=problem_responses(404, 409, 422))
    def promote(model_key: ModelKey, principal: Team, body: PromoteBody | None = None):
        """Ask for a release: the promotion sensor runs the release job, whose gate check guards it."""

        model = _model(model_key, principal)
        record = request_promotion(platform, model.key, requested_by=principal.label, reason=(body.reason if body else ""),
                                   principal=principal)
        return respond(_request_json(record), 202)

    # metrics and incidents -------------------------------------------------------------------------
    @app.get("/v1/metrics", tags=["metrics"], response_model=list[MetricOut])
    def list_metrics(principal: Team):
        """The metric catalog, with the versions marked buggy."""

        buggy = platform.buggy_metrics()
        return respond([{"metric": m.key, "name": m.name, "version": m.version, "direction": str(m.direction),
                         "taskTypes": sorted(m.task_types), "params": list(m.params), "unit": m.unit,
                         "requiresJudge": m.requires_judge, "buggy": m.key in buggy, "description": m.description}
                        for m in all_metrics()])

    @app.post("/v1/metrics/{metricKey}/mark-buggy", tags=["metrics"], response_model=ImpactOut,
              responses=problem_responses(404, 409, 422))
    def mark_buggy(metric_key: Annotated[str, PathParam(alias="metricKey", min_length=1, max_length=200, description="NAME@VERSION")],
                   body: ReasonBody, principal: Team):
        """Freeze every gate that used this metric version (they become no_decision until recomputed)."""

        if metric_key not in {m.key for m in all_metrics()}:
            raise NotFound("metric", metric_key)
        access.require_role(principal, access.ADMIN, "marking a metric buggy (it freezes every team's gates)", "Authorization",
                            platform, f"metric:{metric_key}")
        impact = mark_metric_buggy(platform, metric_key, reason=body.reason, reported_by=principal.label, principal=principal)
        # even an admin is not told of runs (nor models) of datasets it may not know of
        policies = _policies()
        runs = [r for r in impact.runs if access.may_know(policies.get(r.dataset_key), principal.team)]
        return respond(_impact_json(type(impact)(impact.incident, runs, sorted({r.model_key for r in runs}))))

    @app.post("/v1/recompute", tags=["metrics"], status_code=202, response_model=RecomputeOut,
              responses=problem_responses(409, 422))
    def recompute(body: RecomputeBody, principal: Team):
        """Queue again the runs a buggy metric or a contaminated dataset touched; a sensor backfills them."""

        with fields_named({"affected_by": "affectedBy"}):
            queued, request = request_recompute(platform, body.affected_by, requested_by=principal.label, reason=body.reason,
                                                principal=principal)
        return respond({"queuedRuns": [r.run_id for r in queued], "backfillRequestId": request.id if request else None,
                        "partitions": request.partitions if request else []}, 202)


# comparisons -------------------------------------------------------------------------------------------
def _metric_table_values(platform: EvalPlatform, run: EvalRun) -> dict[tuple[str, str], float]:
    if not run.metrics_hash:
        return {}
    table = platform.store.get_table(METRIC_TABLES, run.metrics_hash)
    return {(r.metric, f"{r.slice_column}={r.slice_value}"): float(r.value) for r in table.itertuples() if r.slice_column != ""}


def _comparison_entry(entry: dict) -> dict:
    return {to_camel(k): v for k, v in entry.items()}


def _resolve_baseline(platform: EvalPlatform, run: EvalRun, baseline: str) -> EvalRun:
    if baseline.startswith("run-"):
        return _lookup("baseline", lambda: platform.run(baseline))
    model = _lookup("baseline", lambda: platform.model(baseline))
    with platform.registry.session() as session:
        found = session.scalar(select(EvalRun).where(
            EvalRun.model_name == model.name, EvalRun.model_version == model.version, EvalRun.dataset_id == run.dataset_id,
            EvalRun.dataset_version == run.dataset_version, EvalRun.suite_id == run.suite_id, EvalRun.suite_version == run.suite_version,
            EvalRun.status == SUCCEEDED).order_by(EvalRun.finished_at.desc()).limit(1))
    if found is None:
        raise Conflict(f"baseline {model.key} has no succeeded run on {run.dataset_key} with {run.suite_key}: request one with "
                       f"POST /v1/eval-runs (or a candidate run with baseline {model.key})")
    return found


def _comparison(platform: EvalPlatform, run: EvalRun, dataset: EvalDataset, baseline: str | None) -> dict:
    recorded = run.comparison or {}
    baseline_run = None
    if baseline is not None:
        baseline_run = _resolve_baseline(platform, run, baseline)
        if baseline_run.run_id == recorded.get("baseline_run_id"):
            baseline_run = None  # the recorded comparison is against this very run
    if baseline_run is None:
        if not recorded:
            raise Conflict(f"run {run.run_id} has no recorded comparison yet")
        base = platform.run(recorded["baseline_run_id"]) if recorded.get("baseline_run_id") else None
        payload = {
            "runId": run.run_id, "source": "recorded",
            "baseline": {"modelVersion": recorded.get("baseline_model"), "runId": recorded.get("baseline_run_id"),
                         "state": recorded.get("baseline_state"), "reevaluated": bool(recorded.get("baseline_reevaluated")),
                         "staleBaselineRunId": recorded.get("stale_baseline_run_id")},
            "metrics": {name: _comparison_entry(entry) for name, entry in (recorded.get("metrics") or {}).items()},
            "regressions": dict(recorded.get("regressions") or {}),
        }
        intervals = recorded.get("slices") or {}
    else:
        payload, intervals = _compute_comparison(platform, run, dataset, baseline_run), {}
        base = baseline_run
    slices: dict[str, dict[str, dict]] = {}
    if base is not None:
        cand_values, base_values = _metric_table_values(platform, run), _metric_table_values(platform, base)
        for (metric, slice_name), value in sorted(cand_values.items()):
            base_value = base_values.get((metric, slice_name), float("nan"))
            slices.setdefault(metric, {})[slice_name] = {"candidate": value, "baseline": base_value, "delta": value - base_value,
                                                         "ciLow": None, "ciHigh": None}
    for metric, by_slice in intervals.items():
        for slice_name, entry in by_slice.items():
            slices.setdefault(metric, {})[slice_name] = _comparison_entry(entry)
    payload["slices"] = slices
    payload["redacted"] = False
    return payload


def _compute_comparison(platform: EvalPlatform, run: EvalRun, dataset: EvalDataset, baseline: EvalRun) -> dict:
    """Candidate vs an arbitrary baseline run on the same dataset and suite versions (read-only)."""

    if (baseline.dataset_id, baseline.dataset_version, baseline.suite_id, baseline.suite_version) != (
            run.dataset_id, run.dataset_version, run.suite_id, run.suite_version):
        raise Conflict(f"baseline run {baseline.run_id} used {baseline.dataset_key} with {baseline.suite_key}, the candidate "
                       f"{run.dataset_key} with {run.suite_key}: a comparison needs the same versions")
    for which in (run, baseline):
        if which.status != SUCCEEDED:
            raise Conflict(f"run {which.run_id} is {which.status}: only succeeded runs are compared")
        if not which.predictions_hash:
            raise Conflict(f"the predictions of run {which.run_id} were purged by the retention policy: recompute it first")
    if dataset.row_count > ADHOC_COMPARISON_MAX_ROWS:
        raise Conflict(f"{dataset.key} has {dataset.row_count} rows: request a run with this baseline (POST /v1/eval-runs with "
                       "baseline) instead of an ad hoc comparison")
    suite = platform.suite_definition(platform.suite(run.suite_key))
    frame = platform.load_dataset(dataset)
    schema, task = dataset.schema, dataset.task_type
    cand_frame = evaluation_frame(frame, platform.store.get_table(PREDICTIONS_KIND, run.predictions_hash), schema, task)
    base_frame = evaluation_frame(frame, platform.store.get_table(PREDICTIONS_KIND, baseline.predictions_hash), schema, task)
    ids = schema["id_columns"]
    base_frame = cand_frame[ids].merge(base_frame, on=ids, how="left", validate="one_to_one")
    cand, base = metric_columns(cand_frame, schema, task), metric_columns(base_frame, schema, task)
    metrics = {m.name: _comparison_entry(paired_bootstrap(m.definition, m.params, cand, base, suite.bootstrap_resamples,
                                                          suite.confidence, suite.seed)) for m in suite.metrics}
    regressions = {}
    for rule in suite.rules:
        if rule.kind == "max_regressions":
            threshold = suite.metric(rule.metric).params.get("threshold", 0.5)
            cand_right = (cand["score"] >= threshold) == (cand["label"] == 1)
            base_right = (base["score"] >= threshold) == (base["label"] == 1)
            regressed = cand_frame.loc[base_right & ~cand_right, ids]
            regressions[rule.metric] = [row[0] if len(ids) == 1 else "/".join(map(str, row)) for row in regressed.itertuples(index=False)]
    return {"runId": run.run_id, "source": "computed",
            "baseline": {"modelVersion": baseline.model_key, "runId": baseline.run_id, "state": "ok", "reevaluated": False,
                         "staleBaselineRunId": None},
            "metrics": metrics, "regressions": regressions}


class _Unopened:
    """Stands in for an installation when only the OpenAPI document is wanted (building it opens nothing)."""


def openapi_document() -> dict:
    """The app's OpenAPI document, without an installation."""
    return create_app(platform=_Unopened()).openapi()  # type: ignore[arg-type]


def openapi_json(document: dict | None = None) -> str:
    """The document as checked in at the repository root (``openapi.json``)."""
    return json.dumps(document if document is not None else openapi_document(), indent=2, sort_keys=True) + "\n"


__all__ = ["ADHOC_COMPARISON_MAX_ROWS", "create_app", "openapi_document", "openapi_json", "respond"]


if __name__ == "__main__":  # python -m eval_platform.api.app > openapi.json
    import sys

    sys.stdout.write(openapi_json())
