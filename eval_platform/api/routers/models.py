"""``/v1/models``: register model files (skops, predictions tables, LLM candidate specs) as versions of a name,
queueing the evals of its plan, and list model versions with their gate decision."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, cast

from fastapi import APIRouter, File, Form, Query, UploadFile
from sqlalchemy import and_, func, or_, select, tuple_

from eval_platform.api.dependencies import Caller, Limit, MaxUploadBytes, Offset, PlatformDep
from eval_platform.api.field_names import fields_named, record_named_by
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.pages import PAGE_HEADERS_DOC, page_headers
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import ModelKindName, ModelOut
from eval_platform.api.serializers import model_json
from eval_platform.api.uploads import read_upload_bytes, store_model_file
from eval_platform.api.visibility import hidden_models, refuse_hidden_dataset
from eval_platform.core.errors import InvalidInput
from eval_platform.core.installation import NotAllowed
from eval_platform.core.keys import ID_PATTERN, validate_id
from eval_platform.core.states import RunStatus
from eval_platform.datasets.leakage import parse_cutoff, read_training_manifest
from eval_platform.platform.service import EvalPlatform, Registered
from eval_platform.registry import GateDecisionRecord, Model, Promotion, access
from eval_platform.registry.access import AGGREGATE_READ, Principal

router = APIRouter(tags=["models"], route_class=LimitedJSONRoute)

#: the platform's field names of a model registration, as the form names them
MODEL_FORM_FIELDS = {"model_file": "file", "eval_plan": "evalPlan", "kind": "kind", "name": "name", "trusted_types": "trustedTypes",
                     "training_cutoff": "trainingCutoff", "training_manifest": "trainingManifest"}


def checked_eval_plan(platform: EvalPlatform, principal: Principal, eval_plan: list[str]) -> list[tuple[str, str]]:
    """The ``DATASET_ID:SUITE_ID`` entries as pairs, each dataset one the team may use (checked before the upload is stored)."""
    plan = []
    for entry in eval_plan:
        dataset_id, sep, suite_id = entry.partition(":")
        if not sep or not dataset_id or not suite_id:
            raise InvalidInput("evalPlan", f"{entry!r} must be DATASET_ID:SUITE_ID")
        dataset = record_named_by("evalPlan", partial(platform.latest_dataset, dataset_id))
        refuse_hidden_dataset(platform, principal, dataset.key, dataset.access_policy, "evalPlan", dataset_id)
        access.require(platform, principal, dataset, AGGREGATE_READ)
        plan.append((dataset_id, suite_id))
    return plan


def check_trusted_types_allowed(platform: EvalPlatform, principal: Principal, trusted_types: list[str]) -> None:
    """The operator's list, before the upload is even stored: a caller may only narrow it (a refusal is logged)."""
    try:
        platform.installation.check_trusted_types(trusted_types, "trustedTypes")
    except NotAllowed as refusal:
        access.record_access(platform, principal, "model_file", "", access.DENIED, detail=str(refusal))
        raise


def register_stored_file(platform: EvalPlatform, principal: Principal, name: str, path: Path, created_file: bool, kind: str,
                         trusted_types: list[str], plan: list[tuple[str, str]], description: str,
                         training_cutoff: str | None = None, training_manifest: bytes | None = None) -> Registered:
    """Register the stored file; a refused registration removes the file if this request stored it."""
    try:
        with fields_named(MODEL_FORM_FIELDS):
            return platform.register_model(name, path, kind=kind, trusted_types=[t for t in trusted_types if t],
                                           eval_plan=plan, description=description, principal=principal,
                                           training_cutoff=training_cutoff, training_manifest=training_manifest)
    except NotAllowed as refusal:  # an endpoint or a variable of an openai_chat file the operator does not allow
        if created_file:
            path.unlink(missing_ok=True)
        access.record_access(platform, principal, "model_file", "", access.DENIED, detail=str(refusal))
        raise
    except BaseException:
        if created_file:
            path.unlink(missing_ok=True)
        raise


@router.post("/v1/models", status_code=201, response_model=ModelOut,
             responses={200: {"model": ModelOut, "description": "The same file: the existing version"}, **problem_responses(403, 409, 413, 422)})
def register_model(
    principal: Caller,
    platform: PlatformDep,
    max_upload_bytes: MaxUploadBytes,
    file: Annotated[UploadFile, File(description="A skops file (pickles are refused)")],
    name: Annotated[str, Form(min_length=1, max_length=128, pattern=ID_PATTERN)],
    kind: Annotated[ModelKindName, Form()] = "sklearn",
    trusted_types: Annotated[list[str], Form(alias="trustedTypes", description="types the skops file may be loaded "
                                             "with, within the installation's skops.trusted_types")] = [],  # noqa: B006
    eval_plan: Annotated[list[str], Form(alias="evalPlan", description="DATASET_ID:SUITE_ID entries added to the name's eval plan")] = [],  # noqa: B006
    description: Annotated[str, Form(max_length=4000)] = "",
    training_cutoff: Annotated[str, Form(alias="trainingCutoff", max_length=64, description="ISO 8601 time of the newest "
                                         "training example (naive: UTC); eval examples at or before it are counted")] = "",
    training_manifest: Annotated[UploadFile | None, File(alias="trainingManifest", description="the training examples' "
                                                         "content hashes: Parquet with an example_hash column, or one a line")] = None,
):
    """Register a model file as the next version of ``name`` and queue the evals of its plan."""
    plan = checked_eval_plan(platform, principal, eval_plan)
    check_trusted_types_allowed(platform, principal, trusted_types)
    validate_id(name, "name")
    # another team's name is refused before the upload is written (register_model checks again, with the plan)
    access.require_owner(platform, principal, access.MODEL, name, "register a version of it or change its eval plan", "name")
    # the cutoff and the manifest are checked before the upload is stored (register_model checks them again)
    manifest = read_upload_bytes(training_manifest, max_upload_bytes, "trainingManifest") if training_manifest is not None else None
    with fields_named(MODEL_FORM_FIELDS):
        parse_cutoff(training_cutoff or None)
        if manifest is not None:
            read_training_manifest(manifest)
    path, created_file = store_model_file(platform, file, max_upload_bytes)
    result = register_stored_file(platform, principal, name, path, created_file, kind, trusted_types, plan, description,
                                  training_cutoff or None, manifest)
    record = cast(Model, result.record)
    queued = [r.run_id for r in platform.runs(record.key, [RunStatus.QUEUED])]
    return respond(model_json(platform, record, result.created, queued), 201 if result.created else 200,
                   headers={"Location": f"/v1/models/{record.key}"})


def model_states(session, models: list[Model]) -> dict[tuple[str, int], tuple[str | None, bool]]:
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


@router.get("/v1/models", response_model=list[ModelOut], responses=PAGE_HEADERS_DOC)
def list_models(principal: Caller, platform: PlatformDep, name: Annotated[str | None, Query(max_length=200)] = None,
                offset: Offset = 0, limit: Limit = 100):
    """Model versions with their gate decision and whether promoted, one page in key order (name, then
    version); ``X-Total-Count`` says how many there are. A model evaluated only on datasets the team may
    not know of (unless its own) is not listed."""
    query = select(Model)
    if name:
        query = query.where(Model.name == name)
    hidden = hidden_models(platform, principal)
    if hidden:
        query = query.where(~tuple_(Model.name, Model.version).in_(sorted(hidden)))
    with platform.registry.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        models = list(session.scalars(query.order_by(Model.name, Model.version).offset(offset).limit(limit)))
        states = model_states(session, models)
    return respond([model_json(platform, m, state=states[(m.name, m.version)]) for m in models],
                   headers=page_headers(offset, limit, total))
