"""Online experiments over HTTP: register, ingest batches (Parquet or CSV), queue and read analyses, read a
model version's online gate and the offline-online agreement.

Like the rest of the API nothing is computed in the request: an ingest validates and registers the batch
as a dataset version and queues the analysis, which the experiment sensor runs. An experiment's access
policy is its ingests' policy: a team outside a restricted experiment does not see it listed and gets 403
for its data and its analysis (aggregates follow ``allow_aggregates``); every granted read of a restricted
experiment's analysis and every refusal is logged.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, File, UploadFile
from fastapi import Path as PathParam

from eval_platform.api.dependencies import Caller, ModelKey, PlatformDep
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import (
    EXPERIMENT_BODY_SCHEMA,
    AgreementOut,
    AnalysisRequestOut,
    ExperimentOut,
    IngestOut,
    OnlineGateOut,
)
from eval_platform.api.serializers import experiment_json
from eval_platform.api.uploads import read_experiment_batch
from eval_platform.api.visibility import visible_model
from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import ID_PATTERN
from eval_platform.online import experiments as ex
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import access
from eval_platform.registry.access import AGGREGATE_READ, EXAMPLES, GRANTED, Principal
from eval_platform.registry.online_schema import Experiment

router = APIRouter(tags=["online experiments"], route_class=LimitedJSONRoute)

ExperimentId = Annotated[str, PathParam(alias="experimentId", min_length=1, max_length=128, pattern=ID_PATTERN)]


def readable_experiment(platform: EvalPlatform, experiment_id: str, principal: Principal, action: str):
    """The experiment, if the team may do ``action`` on its data (403 otherwise, logged); one the team may
    know nothing of answers as an absent one (404)."""
    record = ex.experiment(platform, experiment_id)
    visible = access.visibility(record.access_policy, principal.team)
    if visible == access.NOTHING:
        access.record_access(platform, principal, action, f"experiment:{experiment_id}", access.DENIED)
        raise NotFound("experiment", experiment_id)
    if not (visible == access.ROWS or (action == AGGREGATE_READ and visible == access.AGGREGATES)):
        access.record_access(platform, principal, action, f"experiment:{experiment_id}", access.DENIED)
        what = "aggregate results" if action == AGGREGATE_READ else "data"
        raise access.Forbidden(f"team {principal.team!r} may not read the {what} of this experiment (restricted by its access policy)")
    return record


def reason_names_experiment(reason: dict, experiment_id: str) -> bool:
    """Whether a gate reason is drawn from (or names) the experiment."""
    return reason.get("experiment") == experiment_id or experiment_id in json.dumps(reason, default=str)


def online_gate_reasons_shown(platform: EvalPlatform, principal: Principal, model_key: str, reasons: list) -> list:
    """Reasons drawn from a restricted experiment whose aggregates the team may not read are withheld; every
    read of a restricted experiment's estimates (granted or refused) is logged."""
    for experiment in ex.experiments(platform):
        if model_key not in experiment.candidate_models or not access.is_restricted(experiment.access_policy):
            continue
        which = f"experiment:{experiment.experiment_id}"
        if access.can_read_aggregates(experiment.access_policy, principal.team):
            access.record_access(platform, principal, AGGREGATE_READ, which, GRANTED, detail=f"online gate of {model_key}")
            continue
        access.record_access(platform, principal, AGGREGATE_READ, which, access.DENIED, detail=f"online gate of {model_key}")
        reasons = [{"rule": r.get("rule"), "outcome": r.get("outcome"), "message": "(withheld)", "redacted": True}
                   if reason_names_experiment(r, experiment.experiment_id) else r for r in reasons]
    return reasons


@router.post("/v1/experiments", status_code=201, response_model=ExperimentOut,
             responses={200: {"model": ExperimentOut, "description": "The same spec again: the existing experiment"},
                        **problem_responses(409, 422)})
def register_experiment(principal: Caller, platform: PlatformDep, body: Annotated[dict[str, Any], Body(
        description="The experiment: experimentId... as in `evalp experiments register` (snake_case keys)",
        json_schema_extra=EXPERIMENT_BODY_SCHEMA)]):
    """Record an A/B or shadow experiment (arms name registered model versions; control = baseline)."""
    spec = {("experiment_id" if k == "experimentId" else k): v for k, v in body.items()}
    result = ex.register_experiment(platform, spec, created_by=principal.label, principal=principal)
    record = cast(Experiment, result.record)
    return respond(experiment_json(platform, record, result.created, analysis=False),
                   201 if result.created else 200, headers={"Location": f"/v1/experiments/{record.experiment_id}"})


@router.get("/v1/experiments", response_model=list[ExperimentOut])
def list_experiments(principal: Caller, platform: PlatformDep):
    """The experiments the team may know of (without their analyses)."""
    return respond([experiment_json(platform, r, analysis=False) for r in ex.experiments(platform)
                    if access.may_know(r.access_policy, principal.team)])


@router.get("/v1/experiments/{experimentId}", response_model=ExperimentOut, responses=problem_responses(403, 404, 422))
def get_experiment(experiment_id: ExperimentId, principal: Caller, platform: PlatformDep):
    """The experiment and its latest analysis (aggregates: readable per its access policy)."""
    record = readable_experiment(platform, experiment_id, principal, AGGREGATE_READ)
    if access.is_restricted(record.access_policy):
        access.record_access(platform, principal, AGGREGATE_READ, f"experiment:{experiment_id}", GRANTED, detail="analysis")
    return respond(experiment_json(platform, record))


@router.post("/v1/experiments/{experimentId}/ingests", status_code=201, response_model=IngestOut,
             responses={200: {"model": IngestOut, "description": "The same batch again: the existing ingest"},
                        **problem_responses(403, 404, 409, 413, 422)})
def ingest(experiment_id: ExperimentId, principal: Caller, platform: PlatformDep, file: Annotated[UploadFile, File(description="Parquet or CSV")]):
    """Validate a batch of online data, register it as a dataset version and queue the analysis."""
    readable_experiment(platform, experiment_id, principal, EXAMPLES)
    row, created = ex.ingest(platform, experiment_id, read_experiment_batch(file), ingested_by=principal.label, principal=principal)
    out = IngestOut(id=row.id, experiment_id=row.experiment_id, dataset_key=row.dataset_key, content_hash=row.content_hash,
                    row_count=row.row_count, ingested_by=row.ingested_by, ingested_at=row.ingested_at.isoformat(),
                    created=created)
    return respond(out.model_dump(by_alias=True, mode="json"), 201 if created else 200)


@router.post("/v1/experiments/{experimentId}/analyses", status_code=202, response_model=AnalysisRequestOut,
             responses=problem_responses(403, 404, 422))
def request_analysis(experiment_id: ExperimentId, principal: Caller, platform: PlatformDep):
    """Queue an analysis (the experiment sensor runs it)."""
    readable_experiment(platform, experiment_id, principal, AGGREGATE_READ)
    request = ex.request_analysis(platform, experiment_id, requested_by=principal.team, reason="API request")
    return respond(AnalysisRequestOut(request_id=request.id, experiment_id=experiment_id, status=request.status)
                   .model_dump(by_alias=True), 202)


@router.get("/v1/models/{modelKey}/online-gate", response_model=OnlineGateOut, responses=problem_responses(404, 422))
def online_gate(model_key: ModelKey, principal: Caller, platform: PlatformDep):
    """The model version's online gate, decided now from the latest analyses. Reasons drawn from an experiment
    the team may not read the aggregates of are withheld (and the refusal logged); granted reads of a
    restricted experiment's estimates are logged."""
    visible_model(platform, model_key, principal)  # a model the team may not know of answers as absent
    try:
        state, record, _ = ex.online_state(platform, model_key)
    except InvalidInput as error:
        raise InvalidInput("modelKey", error.problem) from error
    reasons = online_gate_reasons_shown(platform, principal, model_key, list(record.reasons))
    return respond(OnlineGateOut(model_version=model_key, decision=record.decision, effective_decision=state,
                                 gate_decision_id=record.id, reasons=reasons).model_dump(by_alias=True))


@router.get("/v1/online/agreement", response_model=AgreementOut)
def agreement(principal: Caller, platform: PlatformDep):
    """Offline deltas beside online deltas across the A/B experiments the team may read."""
    report = ex.agreement_report(platform, lambda record: access.can_read_aggregates(record.access_policy, principal.team))
    return respond(AgreementOut(**{k: report[k] for k in AgreementOut.model_fields}).model_dump(by_alias=True))
