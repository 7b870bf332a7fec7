"""``/v1/datasets``: register dataset versions (Parquet or CSV uploads), list and read them, read their rows
(as their access policy allows, restricted reads logged) and mark a version contaminated."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, File, Form, Query, UploadFile
from sqlalchemy import select

from eval_platform.api.dependencies import Caller, DatasetKey, Limit, MaxUploadBytes, Offset, PlatformDep
from eval_platform.api.field_names import fields_named
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.pages import PAGE_HEADERS_DOC, page_headers, page_of_table
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import DatasetOut, ImpactOut, LabelPolicyName, ReasonBody, RowsPage, TaskTypeName
from eval_platform.api.serializers import dataset_json, impact_json
from eval_platform.api.uploads import read_dataset_upload
from eval_platform.api.visibility import visible_dataset
from eval_platform.core.keys import ID_PATTERN
from eval_platform.core.store import DATASETS as DATASETS_KIND
from eval_platform.core.yamlsafe import load_json
from eval_platform.governance.incidents import invalidate_dataset
from eval_platform.platform import aggregates
from eval_platform.registry import EvalDataset, access
from eval_platform.registry.access import AGGREGATE_READ, EXAMPLES

router = APIRouter(tags=["datasets"], route_class=LimitedJSONRoute)
log = logging.getLogger("eval_platform.api")

#: the platform's field names of a dataset registration, as the form names them
DATASET_FORM_FIELDS = {"dataset_id": "datasetId", "task_type": "taskType", "label_policy": "labelPolicy",
                       "access_policy.level": "accessLevel", "access_policy.teams": "teams", "access_policy": "accessLevel",
                       "slice_columns": "sliceColumns", "access_policy.min_slice_size": "minSliceSize", "feature_columns": "featureColumns",
                       "data": "file", "description": "description", "role": "role",
                       "time_column": "timeColumn", "rating_columns": "ratingColumns", "rating_scale": "ratingScale"}


def access_policy_of_form(access_level: str, teams: list[str], allow_aggregates: bool, min_slice_size: int | None) -> dict[str, Any]:
    """The access policy the form's fields describe (``teams`` may be repeated or comma-separated)."""
    teams = [t for team in teams for t in team.split(",") if t.strip()]
    policy: dict[str, Any] = {"level": access_level, "teams": [t.strip() for t in teams], "allow_aggregates": allow_aggregates}
    if min_slice_size is not None:
        policy["min_slice_size"] = min_slice_size
    return policy


def ratings_of_form(rating_columns: list[str], rating_scale: str) -> dict[str, Any]:
    """The human-rating declaration the form's fields describe; nothing when neither is given (so a dataset
    without raters is registered exactly as before)."""
    columns = [c for c in rating_columns if c]
    if not columns and not rating_scale:
        return {}
    # parsed with the platform's limits (depth, size): a deeply nested scale is a 422, not a RecursionError
    scale = load_json(rating_scale, field="ratingScale") if rating_scale else None
    return {"rating_columns": columns or None, "rating_scale": scale}


@router.post("/v1/datasets", status_code=201, response_model=DatasetOut,
             responses={200: {"model": DatasetOut, "description": "Identical content and metadata: the existing version"},
                        **problem_responses(413, 422)})
def register_dataset(
    principal: Caller,
    platform: PlatformDep,
    max_upload_bytes: MaxUploadBytes,
    file: Annotated[UploadFile, File(description="Parquet or CSV")],
    dataset_id: Annotated[str, Form(alias="datasetId", min_length=1, max_length=128, pattern=ID_PATTERN)],
    task_type: Annotated[TaskTypeName, Form(alias="taskType")],  # the enums, in the document too
    label_policy: Annotated[LabelPolicyName, Form(alias="labelPolicy")],
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
    # a str (not str | None): a multipart form has no null; empty is none
    time_column: Annotated[str, Form(alias="timeColumn", max_length=200, description="the column of each example's time "
                                     "(timestamps or ISO 8601 text, no nulls): examples at or before a model's training "
                                     "cutoff are counted as leakage")] = "",
    role: Annotated[Literal["standard", "golden", "canary", "calibration"], Form(
        description="golden or canary: re-evaluated on the promoted model versions by the canary schedule; "
                    "calibration: human verdicts (prompt, reference, answer, human_label) that license a judge")] = "standard",
    rating_columns: Annotated[list[str], Form(alias="ratingColumns", description="one column per human rater")] = [],  # noqa: B006
    rating_scale: Annotated[str, Form(alias="ratingScale", max_length=10_000, description=(
        'the raters\' scale as JSON: {"type": "likert", "levels": [1, 2, 3, 4, 5]}, ordinal or nominal levels, '
        'or {"type": "preference"}'))] = "",
):
    """Validate and register a dataset version (a new version only when content or metadata changed)."""
    frame = read_dataset_upload(file, max_upload_bytes, task_type)
    policy = access_policy_of_form(access_level, teams, allow_aggregates, min_slice_size)
    ratings = ratings_of_form(rating_columns, rating_scale)
    with fields_named(DATASET_FORM_FIELDS):
        result = platform.register_dataset(dataset_id, frame, task_type=task_type, label_policy=label_policy, access_policy=policy,
                                           slice_columns=[c for c in slice_columns if c], feature_columns=feature_columns or None,
                                           description=description, principal=principal, time_column=time_column or None,
                                           role=role, **ratings)
    record = cast(EvalDataset, result.record)
    log.info("dataset registered", extra={"fields": {"dataset": record.key, "created": result.created, "team": principal.team}})
    return respond(dataset_json(record, result.created), 201 if result.created else 200, headers={"Location": f"/v1/datasets/{record.key}"})


@router.get("/v1/datasets", response_model=list[DatasetOut], responses=PAGE_HEADERS_DOC)
def list_datasets(principal: Caller, platform: PlatformDep, dataset_id: Annotated[str | None, Query(alias="datasetId", max_length=200)] = None,
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
    return respond([dataset_json(d) for d in records], headers=page_headers(offset, limit, len(known)))


@router.get("/v1/datasets/{datasetKey}", response_model=DatasetOut, responses=problem_responses(403, 404, 422))
def get_dataset(dataset_key: DatasetKey, principal: Caller, platform: PlatformDep):
    """A dataset version's metadata (a restricted dataset the team may know nothing of answers as absent: 404)."""
    return respond(dataset_json(visible_dataset(platform, dataset_key, principal)))


@router.get("/v1/datasets/{datasetKey}/examples", response_model=RowsPage, responses=problem_responses(403, 404, 422))
def get_examples(dataset_key: DatasetKey, principal: Caller, platform: PlatformDep, offset: Offset = 0, limit: Limit = 100):
    """The dataset's rows (readable only by teams its access policy allows; restricted reads are logged)."""
    dataset = visible_dataset(platform, dataset_key, principal, EXAMPLES)
    access.require(platform, principal, dataset, EXAMPLES)
    payload = page_of_table(platform, DATASETS_KIND, dataset.content_hash, offset, limit)
    access.record_read(platform, principal, EXAMPLES, dataset, rows=len(payload["rows"]), detail=f"offset={offset} limit={limit}")
    return respond(payload)


@router.post("/v1/datasets/{datasetKey}/invalidate", response_model=ImpactOut, responses=problem_responses(403, 404, 409, 422))
def invalidate(dataset_key: DatasetKey, body: ReasonBody, principal: Caller, platform: PlatformDep):
    """Mark a dataset version contaminated: no new runs, its runs invalid, their gates undecided."""
    dataset = visible_dataset(platform, dataset_key, principal, "invalidate")
    access.require(platform, principal, dataset, AGGREGATE_READ)
    impact = invalidate_dataset(platform, dataset.key, reason=body.reason, reported_by=principal.label, principal=principal)
    return respond(impact_json(impact))
