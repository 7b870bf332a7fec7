"""The metric catalog, marking a metric version buggy (its gates frozen until recomputed; admins only) and
recomputing what a buggy metric or a contaminated dataset touched."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from eval_platform.api.dependencies import Caller, PlatformDep
from eval_platform.api.field_names import fields_named
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import (
    ImpactOut,
    MetricOut,
    ModelCostOut,
    ReasonBody,
    RecomputeBody,
    RecomputeEstimateBody,
    RecomputeEstimateOut,
    RecomputeOut,
)
from eval_platform.api.serializers import impact_json
from eval_platform.api.visibility import dataset_policies
from eval_platform.core.errors import NotFound
from eval_platform.governance.incidents import mark_metric_buggy, recompute_within_budget
from eval_platform.governance.recompute_cost import RecomputeEstimate, estimate_for
from eval_platform.metrics.catalog import all_metrics
from eval_platform.registry import access

router = APIRouter(tags=["metrics"], route_class=LimitedJSONRoute)


@router.get("/v1/metrics", response_model=list[MetricOut])
def list_metrics(principal: Caller, platform: PlatformDep):
    """The metric catalog, with the versions marked buggy."""
    buggy = platform.buggy_metrics()
    return respond([{"metric": m.key, "name": m.name, "version": m.version, "direction": str(m.direction),
                     "taskTypes": sorted(m.task_types), "params": list(m.params), "unit": m.unit,
                     "requiresJudge": m.requires_judge, "buggy": m.key in buggy, "description": m.description}
                    for m in all_metrics()])


@router.post("/v1/metrics/{metricKey}/mark-buggy", response_model=ImpactOut, responses=problem_responses(404, 409, 422))
def mark_buggy(metric_key: Annotated[str, PathParam(alias="metricKey", min_length=1, max_length=200, description="NAME@VERSION")],
               body: ReasonBody, principal: Caller, platform: PlatformDep):
    """Freeze every gate that used this metric version (they become no_decision until recomputed)."""
    if metric_key not in {m.key for m in all_metrics()}:
        raise NotFound("metric", metric_key)
    access.require_role(principal, access.ADMIN, "marking a metric buggy (it freezes every team's gates)", "Authorization",
                        platform, f"metric:{metric_key}")
    impact = mark_metric_buggy(platform, metric_key, reason=body.reason, reported_by=principal.label, principal=principal)
    # even an admin is not told of runs (nor models) of datasets it may not know of
    policies = dataset_policies(platform)
    runs = [r for r in impact.runs if access.may_know(policies.get(r.dataset_key), principal.team)]
    return respond(impact_json(type(impact)(impact.incident, runs, sorted({r.model_key for r in runs}))))


@router.post("/v1/recompute", status_code=202, response_model=RecomputeOut, responses=problem_responses(409, 422))
def recompute(body: RecomputeBody, principal: Caller, platform: PlatformDep):
    """Queue again the runs a buggy metric or a contaminated dataset touched; a sensor backfills them. A recompute
    whose estimate is over budget needs ``confirmOverBudget`` (an admin's), else a 422 naming the budgets."""
    with fields_named({"affected_by": "affectedBy", "confirm_over_budget": "confirmOverBudget"}):
        queued, request, _ = recompute_within_budget(platform, body.affected_by, requested_by=principal.label, reason=body.reason,
                                                     principal=principal, confirm_over_budget=body.confirm_over_budget)
    return respond({"queuedRuns": [r.run_id for r in queued], "backfillRequestId": request.id if request else None,
                    "partitions": request.partitions if request else []}, 202)


@router.post("/v1/recompute/estimate", response_model=RecomputeEstimateOut, responses=problem_responses(409, 422))
def recompute_estimate(body: RecomputeEstimateBody, principal: Caller, platform: PlatformDep):
    """The dry run of a recompute: the runs it would queue, their LLM calls, cache hits, misses and worst-case cost,
    and the budgets it is over. Nothing is queued or changed."""
    with fields_named({"affected_by": "affectedBy"}):
        estimate = estimate_for(platform, body.affected_by, principal)
    return respond(_estimate_json(estimate, dataset_policies(platform), principal))


def _estimate_json(estimate: RecomputeEstimate, policies: dict, principal) -> dict:
    """The estimate, a run on a dataset the caller may not know of named ``(withheld)`` (its calls still count:
    the recompute pays them)."""
    data = estimate.to_dict()
    runs = []
    for run in data["runs"]:
        hidden = not access.may_know(policies.get(run["dataset"]), principal.team)
        names = {k: "(withheld)" for k in ("run_id", "model", "dataset", "suite")} if hidden else {}
        if hidden and run["error"]:
            names["error"] = "(withheld)"
        runs.append({**run, **names})
    totals = data["totals"]
    return {"affectedBy": estimate.affected_by,
            "runs": [{"runId": r["run_id"], "model": r["model"], "dataset": r["dataset"], "suite": r["suite"], "calls": r["calls"],
                      "cacheHits": r["cache_hits"], "misses": r["misses"], "unknownAnswers": r["unknown_answers"],
                      "estimatedCost": r["estimated_cost"], "error": r["error"]} for r in runs],
            "calls": totals["calls"], "cacheHits": totals["cache_hits"], "misses": totals["misses"],
            "unknownAnswers": totals["unknown_answers"], "estimatedCost": totals["estimated_cost"], "exact": data["exact"],
            "byModel": [ModelCostOut.model_validate(m).model_dump(by_alias=True) for m in data["by_model"]],
            "overBudget": data["over_budget"]}
