"""The Dagster layer on real instances: definitions, sensors, runs, asset checks, Postgres storage."""

import shutil

import dagster as dg
import pytest

from eval_platform.datasets.validation import CHECKS
from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster import definitions
from eval_platform_dagster.assets import REQUESTED_TAG, dataset_versions, model_versions
from eval_platform_dagster.jobs import decide_gate, evaluate_eval_cell, validate_dataset_version
from eval_platform_dagster.sensors import dataset_version_sensor, eval_request_sensor
from tests.conftest import ROOT
from tests.dagster_helpers import execute, resources, tick

PLAN = [("bc", "breast-cancer-release")]


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(definitions.defs)
    graph = definitions.defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    # (other groups, e.g. online experiments, add their own assets)
    assert {"eval_dataset", "predictions", "judgments", "metric_table", "comparison", "gate_decision", "promotion"} <= keys
    # judge calls are limited across runs by their own pool, candidate calls by theirs
    assert graph.get(dg.AssetKey("judgments")).pools == {"judge"}
    assert graph.get(dg.AssetKey("predictions")).pools == {"model_inference"}
    assert graph.get(dg.AssetKey("metric_table")).parent_keys == {dg.AssetKey("judgments")}
    assert graph.get(dg.AssetKey("metric_table")).code_version  # metric code version drives staleness


@pytest.fixture
def installation(tmp_path, breast_cancer, release_suite, db_url):
    service = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    _, _, frame = breast_cancer
    service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                             slice_columns=["tumour_size"])
    service.register_suite(release_suite)
    yield service
    service.close()


def _resources(service):
    return resources(service)


def _tick(sensor, instance, service):
    return tick(sensor, instance, service)


def _execute(job, instance, service, request: dg.RunRequest, raise_on_error=True):
    return execute(job.name, instance, service, request.partition_key, request.tags, raise_on_error=raise_on_error)


def test_sensor_turns_registrations_into_runs(installation, model_files):
    with dg.instance_for_test() as instance:
        assert _tick(eval_request_sensor, instance, installation).run_requests == []
        installation.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
        first = _tick(eval_request_sensor, instance, installation)
        assert [r.partition_key for r in first.run_requests] == ["bc@1|detector@1"]  # the eval cell: dataset|model
        assert first.run_requests[0].tags[REQUESTED_TAG] == "true"
        assert instance.get_dynamic_partitions(model_versions.name) == ["detector@1"]
        again = _tick(eval_request_sensor, instance, installation)
        assert again.run_requests == []  # the launch is recorded on the queued rows: no second run while it is pending

        # the eval cell's dataset version got its partition with the launch; it is validated all the same
        assert instance.get_dynamic_partitions(dataset_versions.name) == ["bc@1"]
        datasets = _tick(dataset_version_sensor, instance, installation)
        assert [r.partition_key for r in datasets.run_requests] == ["bc@1"]
        assert tick(dataset_version_sensor, instance, installation, cursor=datasets.cursor).run_requests == []


def test_end_to_end_from_registration_to_gate(installation, model_files):
    with dg.instance_for_test() as instance:
        installation.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
        for request in _tick(dataset_version_sensor, instance, installation).run_requests:
            result = _execute(validate_dataset_version, instance, installation, request)
            checks = result.get_asset_check_evaluations()
            assert len(checks) == len(CHECKS) + 3 and all(c.passed for c in checks)  # + not_contaminated, no_exact_duplicates, no_drift_from_previous
        request = _tick(eval_request_sensor, instance, installation).run_requests[0]
        assert _execute(evaluate_eval_cell, instance, installation, request).success

        run = installation.runs("detector@1")[0]
        assert run.status == "succeeded" and run.dagster_run_id
        assert run.results["metrics"]["roc_auc"] > 0.95
        assert run.lineage["dataset"]["content_hash"] == installation.dataset("bc@1").content_hash
        assert run.lineage["model"]["file_hash"] == installation.model("detector@1").file_hash
        assert run.lineage["metrics"]["roc_auc"] == "roc_auc@1"
        assert installation.gate_decision("detector@1").decision == "pass"
        for asset in ("predictions", "judgments", "metric_table", "comparison"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {"bc@1|detector@1"}
        assert instance.get_run_by_id(run.dagster_run_id).tags["eval_platform/decision"] == "pass"
        gate = execute(decide_gate.name, instance, installation, "detector@1")
        assert gate.success and gate.dagster_run.tags["eval_platform/decision"] == "pass"
        event = instance.get_latest_materialization_event(dg.AssetKey("gate_decision"))
        assert event.asset_materialization.metadata["decision"].value == "pass"
        assert event.asset_materialization.metadata["passes"].value == 1.0
        # the gate's lineage is the model version's runs, readable as a table
        assert run.run_id in event.asset_materialization.metadata["inputs"].value
        table = instance.get_latest_materialization_event(dg.AssetKey("metric_table")).asset_materialization
        assert isinstance(table.metadata["breast-cancer-release/roc_auc"].value, float)  # plotted across versions
        plot = installation.store.get_blob("plots", run.results["artifacts"]["curves_png"], ".png")
        assert plot.startswith(b"\x89PNG")
        table = instance.get_latest_materialization_event(dg.AssetKey("metric_table")).asset_materialization
        assert "data:image/png;base64," in table.metadata["metrics"].value  # the curves, shown in the UI

        # the candidate is compared with the promoted baseline; its predictions of v1 are not recomputed
        releases.promote(installation, "detector@1", promoted_by="tester")
        installation.register_model("detector", model_files["gradient_boosting"])
        request = _tick(eval_request_sensor, instance, installation).run_requests[0]
        assert request.partition_key == "bc@1|detector@2"
        assert _execute(evaluate_eval_cell, instance, installation, request).success
        candidate = installation.runs("detector@2")[0]
        assert candidate.comparison["baseline_state"] == "ok"
        assert candidate.comparison["baseline_run_id"] == run.run_id
        roc = candidate.comparison["metrics"]["roc_auc"]
        assert roc["ci_low"] <= roc["delta"] <= roc["ci_high"] and roc["seed"] == 0
        assert installation.gate_decision("detector@2").decision in ("pass", "fail")


def test_rematerializing_from_the_ui_recomputes_without_new_inference(installation, model_files):
    with dg.instance_for_test() as instance:
        installation.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
        request = _tick(eval_request_sensor, instance, installation).run_requests[0]
        assert _execute(evaluate_eval_cell, instance, installation, request).success
        first = installation.runs("detector@1")[0]
        # a run launched by hand (no sensor tag), as from the Dagster UI or a backfill
        manual = _execute(evaluate_eval_cell, instance, installation, dg.RunRequest(partition_key="bc@1|detector@1", tags={}))
        assert manual.success
        runs = installation.runs("detector@1")
        assert [r.status for r in runs] == ["superseded", "succeeded"]
        assert runs[1].attempt == 2 and runs[1].results == first.results
        predictions = [e for e in manual.get_asset_materialization_events()
                       if e.asset_key == dg.AssetKey("predictions")][0]
        assert predictions.materialization.metadata["inference_calls"].value == 0


def test_a_failing_step_fails_its_eval_runs_and_the_gate_does_not_pass(installation, model_files, tmp_path):
    model_path = tmp_path / "model.skops"
    shutil.copy(model_files["logistic_regression"], model_path)
    with dg.instance_for_test() as instance:
        installation.register_model("detector", model_path, eval_plan=PLAN)
        model_path.write_bytes(model_files["gradient_boosting"].read_bytes())  # swapped after registration
        request = _tick(eval_request_sensor, instance, installation).run_requests[0]
        result = _execute(evaluate_eval_cell, instance, installation, request, raise_on_error=False)
        assert not result.success
        run = installation.runs("detector@1")[0]
        assert run.status == "failed" and "changed after registration" in run.status_reason
        assert run.results is None and run.metrics_hash is None
        assert not instance.get_materialized_partitions(dg.AssetKey("metric_table"))
        decision = installation.gate_decision("detector@1")
        assert decision.decision == "no_decision" and "changed after registration" in str(decision.reasons)


@pytest.mark.postgres
def test_dagster_postgres_instance_from_the_shipped_config(installation, model_files, postgres_url, tmp_path, monkeypatch):
    """dagster.postgres.yaml, as shipped, runs the sensor and the eval job on dagster-postgres storage."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster.postgres.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url.replace("postgresql+psycopg2://", "postgresql://"))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        installation.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
        request = _tick(eval_request_sensor, instance, installation).run_requests[0]
        assert _execute(evaluate_eval_cell, instance, installation, request).success
        assert instance.get_materialized_partitions(dg.AssetKey("metric_table")) == {"bc@1|detector@1"}
    assert installation.gate_decision("detector@1").decision == "pass"


def test_embedded_default_config_is_sqlite(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
