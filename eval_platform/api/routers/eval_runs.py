"""``/v1/eval-runs``: request an evaluation (queued for the Dagster sensor, never run here), list and read runs,
their comparison with a baseline and their predictions, as far as each dataset's access policy lets the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, true, tuple_
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from eval_platform.api.auth import BearerCredentials
from eval_platform.api.comparisons import comparison_payload
from eval_platform.api.dependencies import Caller, Limit, Offset, PlatformDep, RunId
from eval_platform.api.eval_run_requests import EvalRunRequests, Replay
from eval_platform.api.field_names import record_named_by
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.pages import page_fields, page_of_table
from eval_platform.api.problems import Problem, ProblemError, problem_responses, respond
from eval_platform.api.schemas import Comparison, EvalRunCreated, EvalRunOut, EvalRunPage, EvalRunRequest, RowsPage
from eval_platform.api.serializers import created_run_json, gate_json, run_json
from eval_platform.api.visibility import dataset_of_run, dataset_policies, log_results_read, visible_gate_reasons
from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import RunStatus
from eval_platform.core.store import PREDICTIONS as PREDICTIONS_KIND
from eval_platform.platform import aggregates
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, GateDecisionRecord, access
from eval_platform.registry.access import AGGREGATE_READ, GRANTED, PREDICTIONS, REGRESSIONS, ROWS, Principal
from eval_platform.registry.api_schema import RunPurge

router = APIRouter(tags=["eval runs"], route_class=LimitedJSONRoute)


# POST /v1/eval-runs ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IdempotentCaller:
    """Who asks, with which Idempotency-Key, and what an earlier request with that key recorded."""

    principal: Principal
    key: str | None
    replay: Replay | None


async def get_eval_run_requests(request: Request) -> EvalRunRequests:
    return request.app.state.eval_run_requests


EvalRunRequestsDep = Annotated[EvalRunRequests, Depends(get_eval_run_requests)]


async def idempotent_caller(request: Request, credentials: BearerCredentials, requests: EvalRunRequestsDep,
                            idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                                                          description="Retries with the same key and body return "
                                                                          "the same run; a different body is a 409")] = None) -> IdempotentCaller:
    """The dependency of ``POST /v1/eval-runs``: solved before the body is validated, so a request without
    a valid token is a 401 whatever its body."""
    token = credentials.credentials if credentials else None
    principal, replay = await run_in_threadpool(requests.authenticate_and_replay, token, idempotency_key)
    request.state.team = principal.team  # for the access log line of this request
    return IdempotentCaller(principal, idempotency_key, replay)


def replayed(replay: Replay, request_hash: str) -> JSONResponse:
    """The answer an earlier request with the same key got, if this one has the same body (a 409 otherwise)."""
    if replay.request_hash != request_hash:
        raise ProblemError(409, "idempotency-key-reused", "Idempotency key reused",
                           "this Idempotency-Key was used with a different request body", field="Idempotency-Key")
    return respond(created_run_json(replay.run, False), 200,
                   headers={"Idempotent-Replayed": "true", "Location": f"/v1/eval-runs/{replay.run.run_id}"})


@router.post("/v1/eval-runs", status_code=201, response_model=EvalRunCreated,
             responses={200: {"model": EvalRunCreated, "description": "An existing run (a live run of the same model, dataset and "
                              "suite versions, or a replay of the same Idempotency-Key)"}, **problem_responses(403, 409, 422)})
async def request_eval_run(body: EvalRunRequest, caller: Annotated[IdempotentCaller, Depends(idempotent_caller)],
                           requests: EvalRunRequestsDep):
    """Record an eval request; the Dagster sensor starts it (the API never runs evals itself)."""
    request_hash = json_hash(body.model_dump())
    if caller.replay is not None:  # a retry
        return replayed(caller.replay, request_hash)
    outcome = await run_in_threadpool(requests.queue, body, caller.principal, caller.key, request_hash)
    if isinstance(outcome, Replay):  # a concurrent request with the same key committed first
        return replayed(outcome, request_hash)
    return respond(created_run_json(outcome.run, outcome.created), 201 if outcome.created else 200,
                   headers={"Location": f"/v1/eval-runs/{outcome.run.run_id}"})


# reads -------------------------------------------------------------------------------------------------------
def _filtered_runs_query(model: str | None, status: list[str] | None, dataset_id: str | None, metric_suite_id: str | None):
    query = select(EvalRun)
    if model:
        name, version = record_named_by("model", lambda: VersionedKey.parse(model, "model"))
        query = query.where(EvalRun.model_name == name, EvalRun.model_version == version)
    if status:
        query = query.where(EvalRun.status.in_(status))
    for value, id_column, version_column in ((dataset_id, EvalRun.dataset_id, EvalRun.dataset_version),
                                             (metric_suite_id, EvalRun.suite_id, EvalRun.suite_version)):
        if value:
            name, sep, version_text = value.rpartition("@")
            if sep and version_text.isdigit():
                query = query.where(id_column == name, version_column == int(version_text))
            else:
                query = query.where(id_column == value)
    return query


def _log_listed_restricted_runs(platform: EvalPlatform, principal: Principal, shown: dict[str, list[str]]) -> None:
    for dataset_key, run_ids in shown.items():
        access.record_access(platform, principal, AGGREGATE_READ, dataset_key, GRANTED, rows=len(run_ids),
                             run_id=run_ids[0] if len(run_ids) == 1 else None, detail="run listing: " + " ".join(run_ids))


@router.get("/v1/eval-runs", response_model=EvalRunPage, responses=problem_responses(422))
def list_eval_runs(principal: Caller, platform: PlatformDep, offset: Offset = 0, limit: Limit = 100,
                   model: Annotated[str | None, Query(max_length=400, description="NAME@VERSION")] = None,
                   status: Annotated[list[str] | None, Query(max_length=10)] = None,
                   dataset_id: Annotated[str | None, Query(alias="datasetId", max_length=400)] = None,
                   metric_suite_id: Annotated[str | None, Query(alias="metricSuiteId", max_length=400)] = None):
    """Eval runs, newest first; results of datasets the team may see only in part are withheld
    (``redacted``), and runs on datasets the team may not know of are not listed at all."""
    policies = dataset_policies(platform)
    hidden = [VersionedKey.parse(key, "dataset") for key, policy in policies.items() if not access.may_know(policy, principal.team)]
    query = _filtered_runs_query(model, status, dataset_id, metric_suite_id)
    with platform.registry.session() as session:
        # counted as all matching runs minus those of hidden datasets: two counts over indexes, where
        # counting "not in the hidden ones" would read every row
        counted = select(func.count()).select_from(EvalRun).where(query.whereclause if query.whereclause is not None else true())
        total = session.scalar(counted) or 0
        if hidden:
            in_hidden = tuple_(EvalRun.dataset_id, EvalRun.dataset_version).in_(hidden)
            total -= session.scalar(counted.where(in_hidden)) or 0
            query = query.where(~in_hidden)
        runs = list(session.scalars(query.order_by(EvalRun.requested_at.desc(), EvalRun.run_id).offset(offset).limit(limit)))
        purges = {m.run_id: m for m in session.scalars(select(RunPurge).where(RunPurge.run_id.in_([r.run_id for r in runs])))} if runs else {}
    items = []
    shown: dict[str, list[str]] = {}  # restricted datasets whose runs' results this page shows -> those runs
    for r in runs:
        seen = access.visibility(policies.get(r.dataset_key), principal.team)
        items.append(run_json(r, purges.get(r.run_id), visible=seen, with_lineage=False))
        if seen != access.NOTHING and access.is_restricted(policies.get(r.dataset_key)):
            shown.setdefault(r.dataset_key, []).append(r.run_id)
    _log_listed_restricted_runs(platform, principal, shown)
    return respond({"items": items, **page_fields(offset, limit, total)})


def run_gate_decision(platform: EvalPlatform, run: EvalRun) -> GateDecisionRecord | None:
    """The run's own gate decision (scope ``run``), the newest not superseded."""
    with platform.registry.session() as session:
        return session.scalar(select(GateDecisionRecord).where(
            GateDecisionRecord.scope == "run", GateDecisionRecord.eval_run_id == run.run_id,
            GateDecisionRecord.superseded.is_(False)).order_by(GateDecisionRecord.id.desc()).limit(1))


@router.get("/v1/eval-runs/{runId}", response_model=EvalRunOut, responses=problem_responses(403, 404, 422))
def get_eval_run(run_id: RunId, principal: Caller, platform: PlatformDep):
    """Status, results (aggregate metrics and slices), the run's gate decision, and its lineage."""
    run = platform.run(run_id)
    dataset = dataset_of_run(platform, principal, run, AGGREGATE_READ)
    seen = access.require(platform, principal, dataset, AGGREGATE_READ, run_id=run.run_id)
    view = aggregates.view_of_run(platform, run, dataset, seen)
    record = run_gate_decision(platform, run)
    gate = gate_json(record, visible_gate_reasons(platform, principal, dataset, record.reasons, seen, run.run_id, view)) if record else None
    with platform.registry.session() as session:
        purge = session.get(RunPurge, run.run_id)
    log_results_read(platform, principal, dataset, run, view, "run results")
    return respond(run_json(run, purge, gate, seen, view=view))


def _refuse_hidden_baseline_run(platform: EvalPlatform, principal: Principal, baseline: str) -> None:
    """A baseline run of a dataset the team may know nothing of is no run (the attempt is logged)."""
    other = record_named_by("baseline", lambda: platform.run(baseline))
    if not access.may_know(platform.dataset(other.dataset_key).access_policy, principal.team):
        access.record_access(platform, principal, AGGREGATE_READ, other.dataset_key, access.DENIED, run_id=other.run_id,
                             detail="named as a comparison baseline")
        raise InvalidInput("baseline", f"{baseline!r}: no such eval run")


def _withhold_regressions(platform: EvalPlatform, principal: Principal, dataset: EvalDataset, run: EvalRun, payload: dict, seen: str) -> None:
    """The regressed examples' ids for a team with row access (a restricted dataset's read logged), their counts for every team."""
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


@router.get("/v1/eval-runs/{runId}/comparison", response_model=Comparison, responses=problem_responses(403, 404, 409, 422))
def get_comparison(run_id: RunId, principal: Caller, platform: PlatformDep,
                   baseline: Annotated[str | None, Query(min_length=1, max_length=400,
                                                         description="NAME@VERSION or a run id; default: the run's recorded baseline")] = None):
    """Candidate minus baseline per metric (paired-bootstrap intervals), per slice, and the gate's reasons."""
    run = platform.run(run_id)
    dataset = dataset_of_run(platform, principal, run, AGGREGATE_READ)
    seen = access.require(platform, principal, dataset, AGGREGATE_READ, run_id=run.run_id)
    if baseline is not None and baseline.startswith("run-"):  # a run of a hidden dataset is no run
        _refuse_hidden_baseline_run(platform, principal, baseline)
    if run.status not in (RunStatus.SUCCEEDED,) and not run.comparison:
        raise Conflict(f"run {run.run_id} is {run.status}: it has no comparison yet")
    payload = comparison_payload(platform, run, dataset, baseline)
    view = aggregates.view_of_run(platform, run, dataset, seen)
    payload["slices"] = {metric: view.slice_map(by_slice) for metric, by_slice in payload["slices"].items()}
    _withhold_regressions(platform, principal, dataset, run, payload, seen)
    record = run_gate_decision(platform, run)
    payload["gate"] = gate_json(record, visible_gate_reasons(platform, principal, dataset, record.reasons, seen, None, view)) if record else None
    log_results_read(platform, principal, dataset, run, view, f"comparison ({payload['source']}, baseline {payload['baseline'].get('runId')})")
    return respond(payload)


@router.get("/v1/eval-runs/{runId}/predictions", response_model=RowsPage,
            responses={**problem_responses(403, 404, 409, 422), 410: {"model": Problem, "description": "Purged by the retention policy"}})
def get_predictions(run_id: RunId, principal: Caller, platform: PlatformDep, offset: Offset = 0, limit: Limit = 100):
    """The run's per-example predictions (rows: readable only by teams the dataset's policy allows)."""
    run = platform.run(run_id)
    dataset = dataset_of_run(platform, principal, run, PREDICTIONS)
    access.require(platform, principal, dataset, PREDICTIONS, run_id=run.run_id)
    if run.predictions_hash is None:
        with platform.registry.session() as session:
            purge = session.get(RunPurge, run.run_id)
        if purge is not None:
            raise ProblemError(410, "purged", "Purged", f"the predictions of run {run.run_id} were deleted on "
                               f"{purge.purged_at.date().isoformat()} by the retention policy of dataset {dataset.key}; "
                               "request the run again with recompute to reproduce them")
        raise Conflict(f"run {run.run_id} is {run.status}: it has no predictions yet")
    payload = page_of_table(platform, PREDICTIONS_KIND, run.predictions_hash, offset, limit)
    access.record_read(platform, principal, PREDICTIONS, dataset, rows=len(payload["rows"]), run_id=run.run_id,
                       detail=f"offset={offset} limit={limit}")
    return respond(payload)
