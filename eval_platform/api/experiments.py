"""Online experiments over HTTP: register, ingest batches (Parquet or CSV), queue and read analyses, read a
model version's online gate and the offline-online agreement.

Like the rest of the API nothing is computed in the request: an ingest validates and registers the batch
as a dataset version and queues the analysis, which the experiment sensor runs. An experiment's access
policy is its ingests' policy: a team outside a restricted experiment does not see it listed and gets 403
for its data and its analysis (aggregates follow ``allow_aggregates``); every granted read of a restricted
experiment's analysis and every refusal is logged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, File, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from eval_platform.api.auth import current_principal
from eval_platform.api.problems import problem_responses, respond
from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import ID_PATTERN, KEY_PATTERN
from eval_platform.online import experiments as ex
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import access
from eval_platform.registry.access import (
    AGGREGATE_READ,
    EXAMPLES,
    GRANTED,
    Principal,
)

Team = Annotated[Principal, Depends(current_principal)]
ExperimentId = Annotated[str, PathParam(alias="experimentId", min_length=1, max_length=128, pattern=ID_PATTERN)]
ModelKey = Annotated[str, PathParam(alias="modelKey", min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION")]


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ExperimentOut(_Out):
    experiment_id: str
    mode: Literal["ab", "shadow"]
    status: str
    config: dict[str, Any]
    control_model: str
    candidate_models: list[str]
    offline_metric: str | None = None
    offline_gate: dict[str, Any]
    access_policy: dict[str, Any]
    description: str = ""
    created_by: str
    created_at: str
    created: bool | None = None
    ingests: int = 0
    latest_analysis: dict[str, Any] | None = None


class IngestOut(_Out):
    id: int
    experiment_id: str
    dataset_key: str
    content_hash: str
    row_count: int
    ingested_by: str
    ingested_at: str
    created: bool


class AnalysisRequestOut(_Out):
    request_id: int
    experiment_id: str
    status: str


class OnlineGateOut(_Out):
    model_version: str
    decision: str
    effective_decision: str
    gate_decision_id: int
    reasons: list[dict[str, Any]]


class AgreementOut(_Out):
    n: int
    pearson: float | None = None
    spearman: float | None = None
    sign_agreement: float | None = None
    sign_agreement_n: int
    records: list[dict[str, Any]]
    excluded: list[dict[str, Any]] = Field(default_factory=list)


#: what the document says of an experiment: its id (required, the id grammar) and its mode; the rest is checked
#: by eval_platform.online.experiments, each problem naming its field
EXPERIMENT_BODY_SCHEMA = {
    "required": ["experimentId"],
    "properties": {
        "experimentId": {"type": "string", "pattern": ID_PATTERN, "maxLength": 117,
                         "description": "the experiment's id (its events are registered as dataset experiment-ID)"},
        "experiment_id": {"type": "string", "pattern": ID_PATTERN, "maxLength": 117, "description": "the same, snake_case"},
        "mode": {"enum": ["ab", "shadow"]},
        "description": {"type": "string"},
        "access_policy": {"type": "object"},
    },
}


def _analysis_json(record) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"analysisId": record.id, "status": record.status, "statusReason": record.status_reason,
                    "inputs": record.inputs, "codeVersion": record.code_version, "trustworthy": record.trustworthy,
                    "guardrailVerdict": record.guardrail_verdict, "agreement": record.agreement, "result": record.result,
                    "createdAt": record.created_at.isoformat(), "dagsterRunId": record.dagster_run_id}


def _experiment_json(platform: EvalPlatform, record, created: bool | None = None, analysis: bool = True) -> dict[str, Any]:
    return ExperimentOut(
        experiment_id=record.experiment_id, mode=record.mode, status=record.status, config=record.config,
        control_model=record.control_model, candidate_models=record.candidate_models, offline_metric=record.offline_metric,
        offline_gate=record.offline_gate, access_policy=record.access_policy, description=record.description,
        created_by=record.created_by, created_at=record.created_at.isoformat(), created=created,
        ingests=len(ex.ingests(platform, record.experiment_id)),
        latest_analysis=_analysis_json(ex.latest_analysis(platform, record.experiment_id)) if analysis else None,
    ).model_dump(by_alias=True, mode="json")


def _read_batch(upload: UploadFile):
    import pandas as pd

    head = upload.file.read(4)
    upload.file.seek(0)
    try:
        if head == b"PAR1":
            return pd.read_parquet(upload.file)
        if (upload.filename or "").lower().endswith((".parquet", ".pq")):
            raise InvalidInput("file", "is named .parquet but is not a Parquet file")
        return pd.read_csv(upload.file)
    except InvalidInput:
        raise
    except Exception as error:  # the parser's words name the line; the rows are not echoed
        raise InvalidInput("file", f"could not be read as Parquet or CSV ({type(error).__name__}: {str(error)[:300]})") from error


def _names(reason: dict, experiment_id: str) -> bool:
    """Whether a gate reason is drawn from (or names) the experiment."""
    import json

    return reason.get("experiment") == experiment_id or experiment_id in json.dumps(reason, default=str)


def add_experiment_routes(app: FastAPI, platform: EvalPlatform) -> None:  # noqa: C901 - one closure per route
    def _experiment(experiment_id: str, principal: Principal, action: str):
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

    @app.post("/v1/experiments", tags=["online experiments"], status_code=201, response_model=ExperimentOut,
              responses={200: {"model": ExperimentOut, "description": "The same spec again: the existing experiment"},
                         **problem_responses(409, 422)})
    def register_experiment(principal: Team, body: Annotated[dict[str, Any], Body(
            description="The experiment: experimentId... as in `evalp experiments register` (snake_case keys)",
            json_schema_extra=EXPERIMENT_BODY_SCHEMA)]):
        """Record an A/B or shadow experiment (arms name registered model versions; control = baseline)."""
        spec = {("experiment_id" if k == "experimentId" else k): v for k, v in body.items()}
        result = ex.register_experiment(platform, spec, created_by=principal.label, principal=principal)
        return respond(_experiment_json(platform, result.record, result.created, analysis=False),
                       201 if result.created else 200, headers={"Location": f"/v1/experiments/{result.record.experiment_id}"})

    @app.get("/v1/experiments", tags=["online experiments"], response_model=list[ExperimentOut])
    def list_experiments(principal: Team):
        """The experiments the team may know of (without their analyses)."""
        return respond([_experiment_json(platform, r, analysis=False) for r in ex.experiments(platform)
                        if access.may_know(r.access_policy, principal.team)])

    @app.get("/v1/experiments/{experimentId}", tags=["online experiments"], response_model=ExperimentOut,
             responses=problem_responses(403, 404, 422))
    def get_experiment(experiment_id: ExperimentId, principal: Team):
        """The experiment and its latest analysis (aggregates: readable per its access policy)."""
        record = _experiment(experiment_id, principal, AGGREGATE_READ)
        if access.is_restricted(record.access_policy):
            access.record_access(platform, principal, AGGREGATE_READ, f"experiment:{experiment_id}", GRANTED, detail="analysis")
        return respond(_experiment_json(platform, record))

    @app.post("/v1/experiments/{experimentId}/ingests", tags=["online experiments"], status_code=201, response_model=IngestOut,
              responses={200: {"model": IngestOut, "description": "The same batch again: the existing ingest"},
                         **problem_responses(403, 404, 409, 413, 422)})
    def ingest(experiment_id: ExperimentId, principal: Team, file: Annotated[UploadFile, File(description="Parquet or CSV")]):
        """Validate a batch of online data, register it as a dataset version and queue the analysis."""
        _experiment(experiment_id, principal, EXAMPLES)
        row, created = ex.ingest(platform, experiment_id, _read_batch(file), ingested_by=principal.label, principal=principal)
        out = IngestOut(id=row.id, experiment_id=row.experiment_id, dataset_key=row.dataset_key, content_hash=row.content_hash,
                        row_count=row.row_count, ingested_by=row.ingested_by, ingested_at=row.ingested_at.isoformat(),
                        created=created)
        return respond(out.model_dump(by_alias=True, mode="json"), 201 if created else 200)

    @app.post("/v1/experiments/{experimentId}/analyses", tags=["online experiments"], status_code=202,
              response_model=AnalysisRequestOut, responses=problem_responses(403, 404, 422))
    def request_analysis(experiment_id: ExperimentId, principal: Team):
        """Queue an analysis (the experiment sensor runs it)."""
        _experiment(experiment_id, principal, AGGREGATE_READ)
        request = ex.request_analysis(platform, experiment_id, requested_by=principal.team, reason="API request")
        return respond(AnalysisRequestOut(request_id=request.id, experiment_id=experiment_id, status=request.status)
                       .model_dump(by_alias=True), 202)

    @app.get("/v1/models/{modelKey}/online-gate", tags=["online experiments"], response_model=OnlineGateOut,
             responses=problem_responses(404, 422))
    def online_gate(model_key: ModelKey, principal: Team):
        """The model version's online gate, decided now from the latest analyses. Reasons drawn from an experiment
        the team may not read the aggregates of are withheld (and the refusal logged); granted reads of a
        restricted experiment's estimates are logged."""
        app.state.visible_model(model_key, principal)  # a model the team may not know of answers as absent
        try:
            state, record, _ = ex.online_state(platform, model_key)
        except InvalidInput as error:
            raise InvalidInput("modelKey", error.problem) from error
        reasons = list(record.reasons)
        for experiment in ex.experiments(platform):
            if model_key not in experiment.candidate_models or not access.is_restricted(experiment.access_policy):
                continue
            which = f"experiment:{experiment.experiment_id}"
            if access.can_read_aggregates(experiment.access_policy, principal.team):
                access.record_access(platform, principal, AGGREGATE_READ, which, GRANTED, detail=f"online gate of {model_key}")
                continue
            access.record_access(platform, principal, AGGREGATE_READ, which, access.DENIED, detail=f"online gate of {model_key}")
            reasons = [{"rule": r.get("rule"), "outcome": r.get("outcome"), "message": "(withheld)", "redacted": True}
                       if _names(r, experiment.experiment_id) else r for r in reasons]
        return respond(OnlineGateOut(model_version=model_key, decision=record.decision, effective_decision=state,
                                     gate_decision_id=record.id, reasons=reasons).model_dump(by_alias=True))

    @app.get("/v1/online/agreement", tags=["online experiments"], response_model=AgreementOut)
    def agreement(principal: Team):
        """Offline deltas beside online deltas across the A/B experiments the team may read."""
        report = ex.agreement_report(platform, lambda record: access.can_read_aggregates(record.access_policy, principal.team))
        return respond(AgreementOut(**{k: report[k] for k in AgreementOut.model_fields}).model_dump(by_alias=True))
