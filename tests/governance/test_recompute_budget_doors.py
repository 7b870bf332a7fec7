"""The recompute budget holds at every door, not only ``evalp recompute`` and the API: a direct
``incidents.request_recompute`` and a rematerialization of an eval cell started by hand in the Dagster UI (run
here through Dagster's ``materialize()`` on a real instance, without the sensor's tag, as the UI launches it).

Over budget without a confirmation the request ends as a recorded failure (the access log's denied
``recompute_over_budget``; the exception, or the failed step, naming the estimate, the budget and how to
confirm) with nothing queued and no call paid (counted at the local LLM server). Confirmed, the rematerialization
makes exactly the calls the dry run estimated, counted at the server after the real Dagster run."""

import dagster as dg
import pytest
from sqlalchemy import select

from eval_platform.governance import incidents
from eval_platform.governance.recompute_cost import OverBudget, estimate_for
from eval_platform.registry import DagsterRequest
from eval_platform.registry.api_schema import AccessLogEntry
from eval_platform_dagster.assets.evaluation import comparison, judgments, metric_table, predictions
from tests.dagster_helpers import resources
from tests.governance import test_recompute_cost as cost_tests
from tests.governance.test_recompute_cost import _contaminate_and_forget_judge_calls, _row_counts

# the installation of test_recompute_cost (qa@1 evaluated by an LLM candidate with a pinned judge, at the local server:
# tests/conftest.py's module-scoped ``server``)
evaluated = cost_tests.evaluated
EVAL_CELL_ASSETS = [predictions, judgments, metric_table, comparison]


def _refusals(platform) -> list[AccessLogEntry]:
    with platform.registry.session() as session:
        return list(session.scalars(select(AccessLogEntry).where(AccessLogEntry.action == "recompute_over_budget")
                                    .order_by(AccessLogEntry.id)))


def test_a_direct_request_recompute_over_budget_is_refused_and_recorded(evaluated, monkeypatch):
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "0.01")
    cost = estimate_for(platform, "qa@1").cost
    assert cost is not None and cost > 0.01
    before = _row_counts(platform)

    with pytest.raises(OverBudget) as refused:
        incidents.request_recompute(platform, "qa@1", requested_by="alice")
    message = str(refused.value)
    assert "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in message and f"{cost:.6g}" in message and "limit 0.01" in message
    assert "--confirm-over-budget" in message
    after = _row_counts(platform)
    assert {k: v for k, v in after.items() if k != "access_log"} == {k: v for k, v in before.items() if k != "access_log"}
    [entry] = _refusals(platform)
    assert entry.outcome == "denied" and "asked by alice" in entry.detail and "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in entry.detail

    queued, request = incidents.request_recompute(platform, "qa@1", requested_by="alice", confirm_over_budget=True)
    assert [r.dataset_key for r in queued] == ["qa@2"] and request is not None
    with platform.registry.session() as session:
        assert "over budget, confirmed by alice" in session.get_one(DagsterRequest, request.id).reason


def _materialize_cell(platform, instance, tags: dict) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("model_versions", ["qa-bot@1"])
    instance.add_dynamic_partitions("dataset_versions", ["qa@2"])
    return dg.materialize(EVAL_CELL_ASSETS, partition_key="qa@2|qa-bot@1", instance=instance, tags=tags,
                          resources=resources(platform), raise_on_error=False)


def test_a_ui_rematerialization_over_budget_fails_recorded_and_confirmed_pays_the_estimate(evaluated, monkeypatch):
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "0.01")
    estimate = estimate_for(platform, "qa@1")
    [invalid] = platform.runs("qa-bot@1")
    assert invalid.status == "invalid" and estimate.misses == 21  # hand count: test_recompute_cost's first test

    with dg.instance_for_test() as instance:
        local.reset_stats()
        refused = _materialize_cell(platform, instance, tags={})
        assert not refused.success
        [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
        error, cause = "", failure.step_failure_data.error
        while cause is not None:  # the step's error and its causes, as the UI shows them
            error, cause = error + cause.message, cause.cause
        assert "over budget" in error and "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in error and f"{estimate.cost:.6g}" in error
        assert incidents.CONFIRM_OVER_BUDGET_TAG in error
        # nothing queued, nothing superseded, nothing paid; the refusal is in the access log
        assert [(r.run_id, r.status) for r in platform.runs("qa-bot@1")] == [(invalid.run_id, "invalid")]
        assert local.stats()["requests"] == 0
        [entry] = _refusals(platform)
        assert entry.outcome == "denied" and "rematerialization:qa-bot@1 on qa@2" == entry.dataset_key

        # confirmed by the run tag: the cell is recomputed, and the server counts exactly the estimated misses
        local.reset_stats()
        confirmed = _materialize_cell(platform, instance, tags={incidents.CONFIRM_OVER_BUDGET_TAG: "ops-oncall"})
        assert confirmed.success
    stats = local.stats()
    assert stats["requests"] == stats["completions"] == estimate.misses
    assert stats["completions_by_model"] == {"kb-qa-v1": 5, "rule-judge-1": 16}
    runs = platform.runs("qa-bot@1")
    assert [(r.dataset_key, r.status) for r in runs] == [("qa@1", "superseded"), ("qa@2", "succeeded")]
    assert "over budget, confirmed by ops-oncall" in runs[0].status_reason
    granted = _refusals(platform)[-1]
    assert granted.outcome == "granted" and "confirmed by ops-oncall" in granted.detail


def test_a_rematerialization_within_budget_needs_no_confirmation(evaluated, monkeypatch):
    """No budget is over (the installation's is generous): the UI's rematerialization runs as before."""
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "1000")
    with dg.instance_for_test() as instance:
        assert _materialize_cell(platform, instance, tags={}).success
    assert [r.status for r in platform.runs("qa-bot@1")] == ["superseded", "succeeded"]
    assert _refusals(platform) == []
