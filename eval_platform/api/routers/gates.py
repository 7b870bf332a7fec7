"""A model version's release gate: read its effective decision, override a failed or undecided (offline or
online) gate as an approver of its suites, and ask for a promotion (the release job's gate check guards it)."""

from __future__ import annotations

from fastapi import APIRouter

from eval_platform.api.dependencies import Caller, ModelKey, PlatformDep
from eval_platform.api.field_names import fields_named
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import GateOut, OverrideOut, PromoteBody, ReasonBody, RequestOut
from eval_platform.api.serializers import camel_keys, override_json, request_json
from eval_platform.api.visibility import dataset_policies, visible_gate_reasons, visible_model
from eval_platform.core.records import iso
from eval_platform.gates.releases import effective_decision, override_gate, request_promotion
from eval_platform.gates.waiting import gate_status
from eval_platform.platform import aggregates
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun, Model, access
from eval_platform.registry.access import AGGREGATE_READ, Principal

router = APIRouter(tags=["gates"], route_class=LimitedJSONRoute)


def gate_reasons_shown(platform: EvalPlatform, principal: Principal, model: Model, reasons: list) -> list:
    """The gate's reasons per run as the team may see them: a run of a dataset it may know nothing of is only
    said to exist (the refusal logged); a restricted dataset's granted read is logged."""
    policies, runs = dataset_policies(platform), {r.run_id: r for r in platform.runs(model.key)}
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
            shown.append(_run_reasons_shown(platform, principal, model, run, group, seen))
    return shown


def _run_reasons_shown(platform: EvalPlatform, principal: Principal, model: Model, run: EvalRun, group: dict, seen: str) -> dict:
    dataset = platform.dataset(run.dataset_key)
    view = aggregates.view_of_run(platform, run, dataset, seen)
    reasons = visible_gate_reasons(platform, principal, dataset, [group], seen, run.run_id, view)[0]
    access.record_read(platform, principal, AGGREGATE_READ, dataset, run_id=run.run_id, detail=f"gate reasons of {model.key}")
    return reasons


@router.get("/v1/models/{modelKey}/gate", response_model=GateOut, responses=problem_responses(404, 422))
def get_gate(model_key: ModelKey, principal: Caller, platform: PlatformDep):
    """The model version's effective gate decision and its reasons per release-blocking run."""
    model = visible_model(platform, model_key, principal)
    status = gate_status(platform, model.key)
    state, decision, override = effective_decision(platform, model.key)
    shown = gate_reasons_shown(platform, principal, model, decision.reasons if decision else [])
    return respond({
        "modelVersion": model.key, "decision": state, "recordedDecision": decision.decision if decision else None,
        "decidedAt": iso(decision.decided_at) if decision else None, "reasons": [camel_keys(r, deep=True) for r in shown],
        "override": ({"approver": override.approver, "reason": override.reason, "overriddenDecision": override.overridden_decision,
                      "suites": override.suites, "createdAt": iso(override.created_at)} if override else None),
        "promoted": platform.promoted_version(model.name) == model.version,
        "settled": status.settled, "pendingRuns": status.pending_runs,
    })


def record_override(platform: EvalPlatform, model_key: str, body: ReasonBody, principal: Principal, scope: str):
    """Record the caller's override of the model version's ``scope`` gate (``model_version`` or ``online``): a 201."""
    model = visible_model(platform, model_key, principal)
    with fields_named({"approver": "Authorization"}):
        record = override_gate(platform, model.key, approver=principal.label, reason=body.reason, scope=scope, principal=principal)
    return respond(override_json(record), 201)


@router.post("/v1/models/{modelKey}/gate/override", status_code=201, response_model=OverrideOut, responses=problem_responses(404, 409, 422))
def override(model_key: ModelKey, body: ReasonBody, principal: Caller, platform: PlatformDep):
    """Let a failed or undecided gate through: the calling team must be an approver of every
    release-blocking suite behind the decision."""
    return record_override(platform, model_key, body, principal, "model_version")


@router.post("/v1/models/{modelKey}/online-gate/override", status_code=201, response_model=OverrideOut,
             responses=problem_responses(404, 409, 422))
def override_online(model_key: ModelKey, body: ReasonBody, principal: Caller, platform: PlatformDep):
    """Let a failed or undecided online gate through (approvers of every release-blocking suite only)."""
    return record_override(platform, model_key, body, principal, "online")


@router.post("/v1/models/{modelKey}/promote", status_code=202, response_model=RequestOut, responses=problem_responses(404, 409, 422))
def promote(model_key: ModelKey, principal: Caller, platform: PlatformDep, body: PromoteBody | None = None):
    """Ask for a release: the promotion sensor runs the release job, whose gate check guards it."""
    model = visible_model(platform, model_key, principal)
    record = request_promotion(platform, model.key, requested_by=principal.label, reason=(body.reason if body else ""),
                               principal=principal)
    return respond(request_json(record), 202)
