"""The brief's failure modes end to end on a real Dagster instance: metric bug, contamination, judge
drift, overrides and promotion through the gate's blocking check."""

import dagster as dg
import pytest

from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.gates import releases
from eval_platform.governance import incidents
from eval_platform.metrics import classification as clf
from eval_platform.metrics.base import MetricDefinition, Param
from eval_platform.metrics.catalog import all_metrics, register_metric
from eval_platform.platform.requests import get_request
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.jobs.checks import reports_of
from eval_platform_dagster.sensors import eval_request_sensor, gate_sensor, incident_sensor, promotion_request_sensor, recompute_request_sensor
from tests.dagster_helpers import execute, run_requests, tick

BINARY = frozenset({"binary_classification"})


def _register_test_metrics():
    """A metric version with a bug (AUC shifted down by 0.2), its fix, and a model-as-judge metric."""
    known = {m.key for m in all_metrics()}
    metrics = [
        MetricDefinition("toy_auc", 1, "higher", BINARY, ("label", "score"),
                         lambda c: clf.roc_auc(c["label"], c["score"]) - 0.2, description="buggy on purpose"),
        MetricDefinition("toy_auc", 2, "higher", BINARY, ("label", "score"),
                         lambda c: clf.roc_auc(c["label"], c["score"]), description="the fix"),
        MetricDefinition("toy_judge", 1, "higher", BINARY, ("label", "score"),
                         lambda c, judge_model=None, judge_prompt_version=None: clf.accuracy_at(c["label"], c["score"]),
                         params={"judge_model": Param(str), "judge_prompt_version": Param(str)}, requires_judge=True),
    ]
    for metric in metrics:
        if metric.key not in known:
            register_metric(metric)


_register_test_metrics()


def execute_job(job_name, instance, service, request):
    """Run an unpartitioned job's request (its run config) on the instance."""
    from eval_platform_dagster import definitions
    from tests.dagster_helpers import resources

    return definitions.defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags, resources=resources(service))


def toy_suite(metric="toy_auc@1", **gate):
    return {"suite_id": "toy-release", "purpose": "release_blocking", "task_type": "binary_classification",
            "metrics": [{"name": "auc", "metric": metric}],
            "gate": {"require_baseline": False, "approvers": ["rita"], "rules": [{"metric": "auc", "min": 0.9}], **gate}}


@pytest.fixture
def service(tmp_path, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home")
    _, _, frame = breast_cancer
    for dataset_id in ("bc", "bc-holdout"):
        platform.register_dataset(dataset_id, frame if dataset_id == "bc" else frame.iloc[::2], task_type="binary_classification",
                                  label_policy="human_reviewed", slice_columns=["tumour_size"])
    yield platform
    platform.close()


def test_metric_bug_freezes_gates_and_recompute_backfills_only_affected_partitions(service, model_files, release_suite):
    service.register_suite(toy_suite())
    service.register_suite(release_suite)
    service.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "toy-release")])
    service.register_model("other", model_files["gradient_boosting"], eval_plan=[("bc", "breast-cancer-release")])
    with dg.instance_for_test() as instance:
        run_requests(eval_request_sensor, instance, service)
        buggy_run = service.runs("detector@1")[0]
        assert buggy_run.results["metrics"]["auc"] < 0.9  # the bug makes a good model fail
        assert service.gate_decision("detector@1").decision == "fail"
        assert service.gate_decision("other@1").decision == "pass"

        impact = incidents.mark_metric_buggy(service, "toy_auc@1", reason="subtracts 0.2", reported_by="ops")
        assert [r.run_id for r in impact.runs] == [buggy_run.run_id] and impact.models == ["detector@1"]
        frozen = service.gate_decision("detector@1")
        assert frozen.decision == "no_decision"
        assert "frozen: metric toy_auc@1 is marked buggy" in str(frozen.reasons)
        assert service.gate_decision("other@1").decision == "pass"  # untouched

        [shown] = tick(incident_sensor, instance, service).run_requests
        # the check of exactly the cell whose run used the buggy metric, reported by a run
        assert [(r.check, r.passed, r.partition) for r in reports_of(shown)] == [("inputs_valid", False, "bc@1|detector@1")]
        reported = execute_job("report_check_results", instance, service, shown)
        assert [(e.check_name, e.partition, e.passed) for e in reported.get_asset_check_evaluations()] == [
            ("inputs_valid", "bc@1|detector@1", False)]

        queued, request = incidents.request_recompute(service, "toy_auc@1", requested_by="ops")
        assert request.partitions == ["bc@1|detector@1"]
        assert [r.suite_key for r in queued] == ["toy-release@2"]
        ticked = tick(recompute_request_sensor, instance, service)
        backfill = ticked.run_requests
        assert len(backfill) == 1
        subset = backfill[0].asset_graph_subset
        assert {(k.asset_key.to_user_string(), k.partition_key) for k in subset.iterate_asset_partitions()} == {
            (asset, "bc@1|detector@1") for asset in ("predictions", "judgments", "metric_table", "comparison")}
        assert tick(recompute_request_sensor, instance, service, cursor=ticked.cursor).run_requests == []  # launched once
        # the backfill's run for the partition, with the backfill's tags
        assert execute("evaluate_eval_cell", instance, service, "bc@1|detector@1", backfill[0].tags).success

        runs = service.runs("detector@1")
        assert [(r.suite_key, r.status) for r in runs] == [("toy-release@1", "superseded"), ("toy-release@2", "succeeded")]
        assert runs[1].results["metrics"]["auc"] == pytest.approx(buggy_run.results["metrics"]["auc"] + 0.2)
        assert runs[1].lineage["metrics"]["auc"] == "toy_auc@2"
        assert service.gate_decision("detector@1").decision == "pass"  # decided again, with the fixed metric
        assert [r.status for r in service.runs("other@1")] == ["succeeded"]


def test_contamination_invalidates_exactly_its_dependent_runs(service, model_files, release_suite):
    service.register_suite(release_suite)
    service.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "breast-cancer-release")])
    service.register_model("holdout-model", model_files["gradient_boosting"], eval_plan=[("bc-holdout", "breast-cancer-release")])
    with dg.instance_for_test() as instance:
        tick_and_validate = tick  # dataset partitions must exist for the dataset check to be shown
        from eval_platform_dagster.sensors import dataset_version_sensor

        for request in tick_and_validate(dataset_version_sensor, instance, service).run_requests:
            execute("validate_dataset_version", instance, service, request.partition_key)
        run_requests(eval_request_sensor, instance, service)
        assert service.gate_decision("detector@1").decision == "pass"

        impact = incidents.invalidate_dataset(service, "bc@1", reason="test labels leaked into training", reported_by="ops")
        assert impact.models == ["detector@1"]
        assert [r.status for r in service.runs("detector@1")] == ["invalid"]
        assert [r.status for r in service.runs("holdout-model@1")] == ["succeeded"]
        assert service.dataset("bc@1").status == "contaminated"
        decision = service.gate_decision("detector@1")
        assert decision.decision == "no_decision" and "contaminated" in str(decision.reasons)
        assert service.gate_decision("holdout-model@1").decision == "pass"
        with pytest.raises(Conflict, match="contaminated"):
            service.request_eval("detector@1", "bc@1", "breast-cancer-release", recompute=True)
        [shown] = tick(incident_sensor, instance, service).run_requests
        assert sorted((r.check, r.partition) for r in reports_of(shown)) == [
            ("inputs_valid", "bc@1|detector@1"), ("not_contaminated", "bc@1")]
        assert tick(incident_sensor, instance, service, cursor="2").run_requests == []
        with pytest.raises(Conflict, match="already marked contaminated"):
            incidents.invalidate_dataset(service, "bc@1", reason="again", reported_by="ops")


def test_unpinned_judge_blocks_the_gate(service, model_files):
    judged = {"suite_id": "judged", "purpose": "release_blocking", "task_type": "binary_classification",
              "metrics": [{"name": "judge", "metric": "toy_judge@1"}],
              "gate": {"require_baseline": False, "rules": [{"metric": "judge", "min": 0.5}]}}
    service.register_suite(judged)
    service.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "judged")])
    with dg.instance_for_test() as instance:
        run_requests(eval_request_sensor, instance, service)
    decision = service.gate_decision("detector@1")
    assert decision.decision == "no_decision" and "judge of judge is not pinned" in str(decision.reasons)
    pinned = dict(judged, metrics=[{"name": "judge", "metric": "toy_judge@1",
                                    "params": {"judge_model": "judge-v3", "judge_prompt_version": "rubric-7"}}])
    suite = service.register_suite(pinned).record
    run = service.request_eval("detector@1", "bc", suite.key)
    with dg.instance_for_test() as instance:
        run_requests(eval_request_sensor, instance, service)
    assert service.run(run.run_id).status == "succeeded"
    run_decision = [r for r in service.gate_decision("detector@1").reasons if suite.key in r["run"]][0]
    assert run_decision["outcome"] == "pass"


def test_overrides_and_promotion_through_the_blocking_check(service, model_files):
    service.register_suite(toy_suite())  # the buggy metric makes this model fail
    service.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "toy-release")])
    with dg.instance_for_test() as instance:
        first = tick(gate_sensor, instance, service)  # the gate sensor's first tick: nothing decided yet
        assert first.asset_events == [] and first.run_requests == []
        run_requests(eval_request_sensor, instance, service)
        assert service.gate_decision("detector@1").decision == "fail"
        with pytest.raises(Conflict, match=r"release fail \(offline gate fail, online gate not_required\)"):
            releases.request_promotion(service, "detector@1", requested_by="ml-engineer")
        # promotion asked for from the UI: the gate's blocking check stops it
        blocked = execute("release_model_version", instance, service, "detector@1", raise_on_error=False)
        assert not blocked.success
        assert service.promoted_version("detector") is None

        with pytest.raises(InvalidInput, match="'mallory' is not an approver"):
            releases.override_gate(service, "detector@1", approver="mallory", reason="ship it")
        with pytest.raises(InvalidInput, match="written reason"):
            releases.override_gate(service, "detector@1", approver="rita", reason=" ")
        before = tick(gate_sensor, instance, service, cursor=first.cursor)
        assert [r.partition_key for r in before.run_requests] == ["detector@1"]  # the gate's partition: fail, a result
        assert before.run_requests[0].tags["eval_platform/decision"] == "fail"
        gate = execute("decide_gate", instance, service, "detector@1", before.run_requests[0].tags)
        assert gate.success and [(c.check_name, c.passed) for c in gate.get_asset_check_evaluations()] == [("gate_status", False)]
        override = releases.override_gate(service, "detector@1", approver="rita", reason="AUC bug, see INC-42")
        # the override is shown at once: the gate's status check turns green, without a run
        [after] = tick(gate_sensor, instance, service, cursor=before.cursor).run_requests
        assert after.job_name == "report_check_results"  # no gate run: the decision did not change
        assert [(r.check, r.partition, r.passed, r.metadata["effective_decision"]) for r in reports_of(after)] == [
            ("gate_status", "detector@1", True, "overridden")]
        original = service.gate_decision("detector@1")
        assert original.decision == "fail" and override.overridden_decision == "fail"  # the decision stays as it was
        assert releases.override_counts(service) == {"toy-release@1": 1}

        request = releases.request_promotion(service, "detector@1", requested_by="rita", reason="override INC-42")
        ticked = tick(promotion_request_sensor, instance, service)
        launched = ticked.run_requests
        assert [r.partition_key for r in launched] == ["detector@1"]
        assert execute("release_model_version", instance, service, "detector@1", launched[0].tags).success
        assert service.promoted_version("detector") == 1
        assert get_request(service, request.id).status == "done"
        assert tick(promotion_request_sensor, instance, service, cursor=ticked.cursor).run_requests == []
        materialization = instance.get_latest_materialization_event(dg.AssetKey("promotion")).asset_materialization
        assert materialization.metadata["promoted_by"].value == "rita"
