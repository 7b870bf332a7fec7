"""The ops loop as Dagster's daemon runs it: sensors evaluated by the sensor daemon's own iteration, runs
through the run queue, backfills through the backfill daemon; failures caused for real (a queued run
canceled, a run failed by the monitor before it started). Every queued eval run ends in a run or in a
recorded failure."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster import DagsterRunStatus

from eval_platform.gates.ledger import history as ledger_history
from eval_platform.governance import incidents
from eval_platform.platform.requests import get_request
from eval_platform_dagster.sensors.launch_state import LAUNCH_TAG
from tests.conftest import installation_with_breast_cancer
from tests.daemon_harness import daemon

PLAN = [("bc", "breast-cancer-release")]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """Both databases by default; the tests of one more failure path run on SQLite only (``SQLITE_ONLY``):
    the reconciliation's queries are the same on both, and each test costs a full evaluation."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
#: the recompute backfill's steps each start an interpreter of their own (Dagster's multiprocess executor), about
#: 50 s of CPU per database: the default run keeps it on SQLite, `make test-slow` (and .ci/run) runs it on PostgreSQL too
SQLITE_BY_DEFAULT = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])], indirect=True)


@pytest.fixture
def service(tmp_path, breast_cancer, release_suite, db_url, monkeypatch):
    monkeypatch.setenv("EVAL_PLATFORM_RETRY_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("EVAL_PLATFORM_MAX_LAUNCH_ATTEMPTS", "2")
    platform = installation_with_breast_cancer(tmp_path / "home", db_url, breast_cancer, release_suite, monkeypatch)
    yield platform
    platform.close()


def _launched(harness, status=None):
    records = harness.run_records(job_name="evaluate_eval_cell", **({"statuses": [status]} if status else {}))
    return sorted(records, key=lambda record: record.create_timestamp)


def test_registration_to_gate_through_the_sensor_daemon(service, model_files):
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        ticks = harness.tick()
        assert {"eval_request_sensor", "dataset_version_sensor", "recompute_request_sensor",
                "eval_run_failure_sensor"} <= set(ticks)
        [run] = service.runs("detector@1")
        assert run.status == "succeeded" and run.launch_attempts == 1
        [record] = _launched(harness)
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags[LAUNCH_TAG] == run.launch_key
        assert service.gate_decision("detector@1").decision == "pass"
        assert harness.run_records(job_name="validate_dataset_version")[0].dagster_run.status == DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags["dagster/partition"] == "bc@1|detector@1"
        assert harness.instance.get_run_by_id(record.dagster_run.run_id).tags["eval_platform/decision"] == "pass"
        harness.tick()  # the gate sensor: the model version's cells are done, its gate is materialized
        assert len(_launched(harness)) == 1  # nothing left to launch: no second run
        [gate] = harness.run_records(job_name="decide_gate")
        assert gate.dagster_run.status == DagsterRunStatus.SUCCESS and gate.dagster_run.tags["eval_platform/decision"] == "pass"
        assert harness.instance.get_materialized_partitions(dg.AssetKey("gate_decision")) == {"detector@1"}
        harness.tick()
        assert len(harness.run_records(job_name="decide_gate")) == 1  # decided once


@SQLITE_BY_DEFAULT
def test_recompute_is_one_backfill_of_exactly_the_affected_partitions(service, model_files, breast_cancer):
    _, _, frame = breast_cancer
    service.register_dataset("holdout", frame.iloc[::2], task_type="binary_classification", label_policy="human_reviewed")
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    service.register_model("other", model_files["gradient_boosting"], eval_plan=[("holdout", "breast-cancer-release")])
    with daemon() as harness:
        harness.tick()
        evaluations = len(_launched(harness))
        assert evaluations == 2 and service.gate_decision("detector@1").decision == "pass"

        incidents.invalidate_dataset(service, "bc@1", reason="labels leaked into the training set", reported_by="ops")
        assert service.gate_decision("detector@1").decision == "no_decision"
        service.register_dataset("bc", frame.iloc[1:], task_type="binary_classification", label_policy="human_reviewed",
                                 slice_columns=["tumour_size"])  # the clean version, bc@2
        queued, request = incidents.request_recompute(service, "bc@1", requested_by="ops")
        # the clean version's cell of each affected model version
        assert [run.dataset_key for run in queued] == ["bc@2"] and request.partitions == ["bc@2|detector@1"]
        ticks = harness.tick()  # the recompute sensor's backfill passes Dagster's validation
        assert ticks["recompute_request_sensor"].status.value == "SUCCESS"
        [backfill] = harness.instance.get_backfills()
        subset = backfill.asset_backfill_data.target_subset
        assert {(key.asset_key.to_user_string(), key.partition_key) for key in subset.iterate_asset_partitions()} == {
            (asset, "bc@2|detector@1") for asset in ("predictions", "judgments", "metric_table", "comparison")}
        assert len(_launched(harness)) == evaluations  # the eval-request sensor left the backfill's rows to it

        for _ in range(12):
            harness.backfills()
            if harness.instance.get_backfill(backfill.backfill_id).status.value != "REQUESTED":
                break
        assert harness.instance.get_backfill(backfill.backfill_id).status.value == "COMPLETED_SUCCESS"
        [recomputed] = [run for run in service.runs("detector@1") if run.status != "superseded"]
        assert recomputed.run_id == queued[0].run_id and recomputed.status == "succeeded"
        assert recomputed.lineage["dataset"]["version"] == 2
        assert service.gate_decision("detector@1").decision == "pass"  # decided again, on the clean version
        harness.tick()  # and its partition says so
        gate = harness.instance.get_latest_materialization_event(dg.AssetKey("gate_decision")).asset_materialization
        assert gate.partition == "detector@1" and gate.metadata["effective_decision"].value == "pass"
        assert [run.status for run in service.runs("other@1")] == ["succeeded"]  # untouched


def test_a_canceled_launch_is_relaunched_under_a_new_key_then_failed_with_its_cause(service, model_files):
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick(run_queue=False)
        [first] = _launched(harness)
        assert first.dagster_run.status == DagsterRunStatus.QUEUED  # waiting in Dagster's run queue
        harness.instance.report_run_canceled(first.dagster_run, message="terminated from the UI")
        harness.tick(run_queue=False)
        launches = _launched(harness)
        assert len(launches) == 2 and launches[1].dagster_run.tags[LAUNCH_TAG] != first.dagster_run.tags[LAUNCH_TAG]
        [run] = service.runs("detector@1")
        assert run.status == "queued" and run.launch_attempts == 2
        assert "launch attempt 1 of 2 ended" in run.status_reason and "canceled" in run.status_reason

        harness.instance.report_run_canceled(launches[1].dagster_run, message="terminated again")
        harness.tick(run_queue=False)
        [run] = service.runs("detector@1")
        assert run.status == "failed"
        assert run.status_reason.startswith("not evaluated after 2 launch attempt(s)") and "canceled" in run.status_reason
        gate = service.gate_decision("detector@1")
        assert gate.decision == "no_decision" and "not evaluated after 2 launch attempt(s)" in str(gate.reasons)
        harness.tick(run_queue=False)
        assert len(_launched(harness)) == 2  # attempts spent: nothing launched again, nothing left queued


@SQLITE_ONLY
def test_backoff_is_waited_for_before_the_next_launch(service, model_files, monkeypatch):
    monkeypatch.setenv("EVAL_PLATFORM_RETRY_BACKOFF_SECONDS", "3600")
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick(run_queue=False)
        [first] = _launched(harness)
        harness.instance.report_run_canceled(first.dagster_run)
        harness.tick(run_queue=False)
        assert len(_launched(harness)) == 1
        [run] = service.runs("detector@1")
        assert run.status == "queued" and "next attempt after" in run.status_reason
        ticks = harness.tick(run_queue=False)
        assert "backing off" in ticks["eval_request_sensor"].skip_reason


@SQLITE_ONLY
def test_a_run_failed_before_it_started_is_retried_and_the_eval_completes(service, model_files):
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick(run_queue=False)
        [first] = _launched(harness)
        # what run monitoring does to a run that did not start in time
        harness.instance.report_run_failed(first.dagster_run, message="Run timed out due to taking longer than 300 seconds to start.")
        harness.tick(run_queue=False)  # the failure sensor requeues its rows; the eval-request sensor launches them again
        harness.tick(run_queue=False)
        pending = _launched(harness, DagsterRunStatus.QUEUED)
        assert len(pending) == 1 and pending[0].dagster_run.tags[LAUNCH_TAG] != first.dagster_run.tags[LAUNCH_TAG]
        harness.run_queue()
        [run] = service.runs("detector@1")
        assert run.status == "succeeded" and run.launch_attempts == 2 and run.status_reason is None
        assert service.gate_decision("detector@1").decision == "pass"


@SQLITE_ONLY
def test_a_failed_attempt_is_superseded_by_the_rerun_that_succeeds(service, model_files):
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        for _ in range(2):  # both attempts canceled: the run fails
            harness.tick(run_queue=False)
            harness.instance.report_run_canceled(_launched(harness, DagsterRunStatus.QUEUED)[0].dagster_run)
        harness.tick(run_queue=False)
        [failed] = service.runs("detector@1")
        assert failed.status == "failed" and service.gate_decision("detector@1").decision == "no_decision"
        rerun = service.request_eval("detector@1", "bc", "breast-cancer-release")  # `evalp runs request`
        harness.tick()
        harness.run_queue()
        assert service.run(rerun.run_id).status == "succeeded"
        assert service.run(failed.run_id).status == "superseded"
        assert service.gate_decision("detector@1").decision == "pass"  # decided from the live runs


@SQLITE_ONLY
def test_promotion_and_incident_sensors_through_the_daemon(service, model_files):
    """The release job launched by the promotion sensor promotes a passing version; an incident turns the
    dataset's and the metric table's checks red; the retention schedule's tick asks for its job."""
    from dagster import AssetKey, build_schedule_context

    from eval_platform.gates import releases
    from eval_platform_dagster.jobs.retention import retention_schedule

    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick()
        assert service.gate_decision("detector@1").decision == "pass"
        request = releases.request_promotion(service, "detector@1", requested_by="rita", reason="release 1")
        harness.tick()
        assert service.promoted_version("detector") == 1 and get_request(service, request.id).status == "done"
        # the release job's promotion is in the release ledger, by the requester, with its gate decision's id
        promotion = [e for e in ledger_history(service, "detector") if e.kind == "promotion"]
        assert [(e.model_version, e.actor, e.reason) for e in promotion] == [(1, "rita", "release 1")]
        assert promotion[0].evidence["gate_decision_id"] == service.gate_decision("detector@1").id
        [release] = harness.run_records(job_name="release_model_version")
        assert release.dagster_run.status == DagsterRunStatus.SUCCESS

        # the release job checks the gate without rematerializing it: the evaluation's lineage stays
        assert harness.instance.get_latest_materialization_event(AssetKey("gate_decision")).run_id != release.dagster_run.run_id

        incidents.invalidate_dataset(service, "bc@1", reason="labels leaked", reported_by="ops")
        harness.tick()
        storage = harness.instance.event_log_storage
        checks = {(info.check_key.name, info.partition_key): info.latest_execution_status.value
                  for info in storage.get_asset_check_partition_info(
                      [dg.AssetCheckKey(AssetKey("eval_dataset"), "not_contaminated"),
                       dg.AssetCheckKey(AssetKey("metric_table"), "inputs_valid")])}
        assert checks == {("not_contaminated", "bc@1"): "FAILED", ("inputs_valid", "bc@1|detector@1"): "FAILED"}
        # the gate of the promoted version turned no_decision: its partition and its status check say so
        harness.tick()
        gate = harness.instance.get_latest_materialization_event(AssetKey("gate_decision")).asset_materialization
        assert gate.metadata["effective_decision"].value == "no_decision"
        [status] = storage.get_asset_check_partition_info([dg.AssetCheckKey(AssetKey("gate_decision"), "gate_status")])
        assert (status.partition_key, status.latest_execution_status.value) == ("detector@1", "FAILED")

    with build_schedule_context(scheduled_execution_time=None) as context:
        assert [request.job_name or retention_schedule.job_name for request in
                retention_schedule.evaluate_tick(context).run_requests] == ["retention_job"]


# slow (about 40 s of CPU: the backfill's steps each start an interpreter of their own): `make test-slow` and .ci/run
# run it; the default run keeps the recompute backfill through the sensor (the other door) above
@pytest.mark.slow
@SQLITE_ONLY
def test_a_backfill_started_in_the_ui_recomputes_the_affected_run_on_the_clean_version(service, model_files, breast_cancer):
    """The other door: an operator selects the affected partition in the Dagster UI and launches a backfill
    of the evaluation assets (no platform tags). The contaminated run is recomputed on the dataset's clean
    version, as `evalp recompute --affected-by` would, and the gate is decided again."""
    from eval_platform_dagster.sensors.recompute import RECOMPUTED_ASSETS

    _, _, frame = breast_cancer
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick()
        [contaminated] = service.runs("detector@1")
        incidents.invalidate_dataset(service, "bc@1", reason="labels leaked into the training set", reported_by="ops")
        service.register_dataset("bc", frame.iloc[1:], task_type="binary_classification", label_policy="human_reviewed",
                                 slice_columns=["tumour_size"])
        harness.tick()  # the clean version gets its partition (and its validation)
        # the clean version's cell, selected in the grid
        status = harness.ui_backfill("fromtheui", {(asset, "bc@2|detector@1") for asset in RECOMPUTED_ASSETS})
        assert status == "COMPLETED_SUCCESS"
        [live] = [run for run in service.runs("detector@1") if run.status != "superseded"]
        assert live.dataset_key == "bc@2" and live.status == "succeeded"
        assert service.run(contaminated.run_id).status == "superseded"
        assert service.gate_decision("detector@1").decision == "pass"
