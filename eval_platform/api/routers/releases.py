"""A model name's release ledger: what served when and on what evidence, and the governed rollback and
demotion (an approver of the owner team, or an admin). Another team's token is answered as for a model name
that does not exist (404): the ledger's evidence names datasets and runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import Field

from eval_platform.api.dependencies import Caller, PlatformDep
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import Camel
from eval_platform.core.keys import ID_PATTERN
from eval_platform.core.records import iso
from eval_platform.gates.ledger import demote, history, rollback, serving_at
from eval_platform.registry import ReleaseLedgerEntry
from eval_platform.registry.schema import utcnow

router = APIRouter(tags=["releases"], route_class=LimitedJSONRoute)

ModelName = Annotated[str, Path(alias="modelName", min_length=1, max_length=200, pattern=ID_PATTERN, description="a model name")]


class RollbackBody(Camel):
    """Which earlier promoted version serves again, and why."""

    to_version: int = Field(ge=1, le=999_999_999)
    reason: str = Field(min_length=1, max_length=4000)


class DemoteBody(Camel):
    """Why nothing of the model name serves any more."""

    reason: str = Field(min_length=1, max_length=4000)


def entry_json(entry: ReleaseLedgerEntry) -> dict:
    return {"sequence": entry.sequence, "kind": entry.kind, "modelVersion": entry.model_version, "actor": entry.actor,
            "reason": entry.reason, "recordedAt": iso(entry.recorded_at), "evidence": entry.evidence,
            "previousHash": entry.previous_hash, "entryHash": entry.entry_hash}


@router.get("/v1/releases/{modelName}/serving", responses=problem_responses(404, 422))
def get_serving(model_name: ModelName, principal: Caller, platform: PlatformDep,
                at: Annotated[str | None, Query(max_length=64, description="ISO 8601 time (default: now)")] = None):
    """The version serving at ``at`` and the ledger entries it served on."""
    serving = serving_at(platform, model_name, at if at is not None else utcnow(), principal)
    return respond({"modelName": serving.model_name, "at": iso(serving.time), "serving": serving.model_key,
                    "entry": entry_json(serving.entry) if serving.entry else None,
                    "supporting": [entry_json(e) for e in serving.supporting]})


@router.get("/v1/releases/{modelName}/history", responses=problem_responses(404, 422))
def get_history(model_name: ModelName, principal: Caller, platform: PlatformDep):
    """Every ledger entry of the model name, oldest first."""
    return respond([entry_json(e) for e in history(platform, model_name, principal)])


@router.post("/v1/releases/{modelName}/rollback", status_code=201, responses=problem_responses(403, 404, 409, 422))
def post_rollback(model_name: ModelName, body: RollbackBody, principal: Caller, platform: PlatformDep):
    """Serve an earlier promoted version again, when its evidence still holds."""
    entry = rollback(platform, model_name, body.to_version, by=principal.label, reason=body.reason, principal=principal)
    return respond(entry_json(entry), 201)


@router.post("/v1/releases/{modelName}/demote", status_code=201, responses=problem_responses(403, 404, 409, 422))
def post_demote(model_name: ModelName, body: DemoteBody, principal: Caller, platform: PlatformDep):
    """Stop serving the model name: nothing serves until a promotion or a rollback."""
    entry = demote(platform, model_name, by=principal.label, reason=body.reason, principal=principal)
    return respond(entry_json(entry), 201)
