"""Eval cells on a real instance, through Dagster's own daemon iterations: each cell (model version x dataset
version) depends on exactly its dataset version in Dagster's asset graph; an incident turns exactly the
checks of the cells it touched red; ``evalp recompute --affected-by`` is one backfill of exactly the cells it
recomputes, after which the gates are decided (and materialized) again."""

from __future__ import annotations

import contextlib
import io
import json
import re

import dagster as dg
import pytest
from dagster._core.definitions.events import AssetKeyPartitionKey

from eval_platform.cli.main import main
from eval_platform.core.keys import KEY_PATTERN
from eval_platform.governance import incidents
from eval_platform_dagster import definitions
from eval_platform_dagster.assets.partitions import RESERVED_KEY_CHARACTERS, cell_key, split_cell
from tests.conftest import installation_with_breast_cancer
from tests.daemon_harness import daemon

PLAN = [("bc", "breast-cancer-release")]
EVAL_ASSETS = ("predictions", "judgments", "metric_table", "comparison")


@pytest.fixture
def service(tmp_path, breast_cancer, release_suite, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'registry.db'}"
    platform = installation_with_breast_cancer(tmp_path / "home", db_url, breast_cancer, release_suite, monkeypatch)
    yield platform
    platform.close()


def _cli_output(argv: list[str]) -> str:
    """``evalp argv``'s standard output. Not capsys: a Dagster log handler created while capsys holds sys.stderr
    keeps writing to it after the test, which breaks the next test when this one runs first (``-m slow``)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _check_status(instance, asset: str, check: str, resolved: bool = True) -> dict[str, str]:
    """Each partition's latest check status; ``resolved``: as the UI shows it, where a result that does not
    target the partition's latest materialization is "missing" (so every result the sensors report must be
    current to be seen red or green)."""
    infos = instance.event_log_storage.get_asset_check_partition_info([dg.AssetCheckKey(dg.AssetKey(asset), check)])
    return {info.partition_key: info.latest_execution_status.value if info.is_current or not resolved else "NOT CURRENT"
            for info in infos}


def test_key_grammar_stays_inside_dagster_multi_partition_keys():
    for character in RESERVED_KEY_CHARACTERS:  # no '|', ',', '[' or ']' in a key: refused at every entry
        assert re.fullmatch(KEY_PATTERN, f"a{character}b@1") is None and re.fullmatch(KEY_PATTERN, "a-b.c_d@1")
    cell = cell_key("detector@1", "bc@2")
    assert str(cell) == "bc@2|detector@1" and split_cell(cell) == split_cell(str(cell)) == ("detector@1", "bc@2")


# slow (about 40 s idle, 80 s on a busy machine): `make test-slow` and .ci/run run it; the default run keeps the
# shorter recompute-backfill tests of tests/dagster/test_ops_loop.py
@pytest.mark.slow
def test_cells_lineage_incident_checks_and_recompute_backfill(service, model_files, breast_cancer):
    _, _, frame = breast_cancer
    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)  # on bc@1
    service.register_model("other", model_files["gradient_boosting"], eval_plan=PLAN)  # on bc@1
    with daemon() as harness:
        harness.tick()
        service.register_dataset("bc", frame.iloc[1:], task_type="binary_classification", label_policy="human_reviewed",
                                 slice_columns=["tumour_size"])  # bc@2
        service.register_model("detector", model_files["decision_stump"])  # detector@2, on bc@2 (the plan's newest)
        harness.tick()
        harness.tick()  # the gate sensor: each model version's cells are done
        instance = harness.instance
        assert sorted(instance.get_dynamic_partitions("dataset_versions")) == ["bc@1", "bc@2"]
        assert sorted(instance.get_dynamic_partitions("model_versions")) == ["detector@1", "detector@2", "other@1"]
        evaluated = {"bc@1|detector@1", "bc@1|other@1", "bc@2|detector@2"}
        for asset in EVAL_ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == evaluated  # only the cells asked for
        assert instance.get_materialized_partitions(dg.AssetKey("gate_decision")) == {"detector@1", "detector@2", "other@1"}

        # Dagster's own asset graph: each cell's upstream is exactly its dataset version, evaluated or not
        graph = definitions.defs.resolve_asset_graph()
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            cells = {str(key) for key in graph.get(dg.AssetKey("predictions")).partitions_def.get_partition_keys()}
            assert cells == {f"{d}|{m}" for d in ("bc@1", "bc@2") for m in ("detector@1", "detector@2", "other@1")}
            for cell in cells:
                parents = graph.get_parents_partitions(dg.AssetKey("predictions"), cell)
                assert parents.parent_partitions == {AssetKeyPartitionKey(dg.AssetKey("eval_dataset"), cell.split("|")[0])}
                assert not parents.required_but_nonexistent_parents_partitions
            # the gate of a model version depends on its cells, on every dataset version
            gate_parents = graph.get_parents_partitions(dg.AssetKey("gate_decision"), "other@1").parent_partitions
            assert gate_parents == {AssetKeyPartitionKey(dg.AssetKey("comparison"), f"{d}|other@1") for d in ("bc@1", "bc@2")}

        assert _check_status(instance, "metric_table", "inputs_valid") == {cell: "SUCCEEDED" for cell in evaluated}
        # contaminating bc@1 turns red exactly its dataset partition, its cells and their model versions' gates
        incidents.invalidate_dataset(service, "bc@1", reason="labels leaked into the training set", reported_by="ops")
        harness.tick()
        assert _check_status(instance, "eval_dataset", "not_contaminated") == {"bc@1": "FAILED", "bc@2": "SUCCEEDED"}
        assert _check_status(instance, "metric_table", "inputs_valid") == {
            "bc@1|detector@1": "FAILED", "bc@1|other@1": "FAILED", "bc@2|detector@2": "SUCCEEDED"}
        harness.tick()
        gates = _check_status(instance, "gate_decision", "gate_status")
        assert gates["detector@1"] == gates["other@1"] == "FAILED"  # no_decision now
        decided_before = {m: service.gate_decision(m).id for m in ("detector@1", "other@1")}

        # evalp recompute --affected-by: one backfill of exactly the clean version's cells of the affected models
        assert _cli_output(["recompute", "--affected-by", "bc@1", "--by", "ops"]).find("bc@2|detector@1, bc@2|other@1") >= 0
        harness.tick()
        [backfill] = instance.get_backfills()
        assert {(key.asset_key.to_user_string(), key.partition_key)
                for key in backfill.asset_backfill_data.target_subset.iterate_asset_partitions()} == {
            (asset, cell) for asset in EVAL_ASSETS for cell in ("bc@2|detector@1", "bc@2|other@1")}
        for _ in range(12):
            harness.backfills()
            if instance.get_backfill(backfill.backfill_id).status.value != "REQUESTED":
                break
        assert instance.get_backfill(backfill.backfill_id).status.value == "COMPLETED_SUCCESS"
        harness.tick()  # the gate sensor decides the recomputed model versions' gates
        for model_key in ("detector@1", "other@1"):
            decision = service.gate_decision(model_key)
            assert decision.id != decided_before[model_key] and decision.decision in ("pass", "fail")
            [event] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("gate_decision"), asset_partitions=[model_key]), limit=1).records
            assert event.asset_materialization.metadata["gate_decision_id"].value == decision.id
        assert _check_status(instance, "metric_table", "inputs_valid") == {
            "bc@1|detector@1": "FAILED", "bc@1|other@1": "FAILED", "bc@2|detector@2": "SUCCEEDED",
            "bc@2|detector@1": "SUCCEEDED", "bc@2|other@1": "SUCCEEDED"}
        runs = {run.run_id: run for run in service.runs() if run.status != "superseded"}
        assert {(run.model_key, run.dataset_key) for run in runs.values()} == {
            ("detector@1", "bc@2"), ("other@1", "bc@2"), ("detector@2", "bc@2")}
        # `evalp runs lineage` links the recomputed run to its cell, its Dagster run (of the backfill) and the request
        [recomputed] = [run for run in runs.values() if run.model_key == "detector@1"]
        links = json.loads(_cli_output(["runs", "lineage", recomputed.run_id, "--json"]))["dagster"]
        assert links["eval_cell"] == "bc@2|detector@1" and links["cell_url"].endswith("partition=bc%402%7Cdetector%401")
        assert instance.get_run_by_id(links["run_url"].rpartition("/")[2]).tags["dagster/backfill"] == backfill.backfill_id
        assert links["recompute_request"]["reason"] == "recompute runs affected by bc@1"


def test_an_installation_from_before_eval_cells_is_carried_over_once(service, model_files):
    """An instance whose evaluation assets were partitioned by model version, with an incident recorded then:
    the migration sensor records the old partitions in their eval cells (no recompute) and shows the incident
    on the partitioned checks; the gate sensor shows each gate's status; the old keys stay in the history."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    from eval_platform_dagster.assets.partitions import eval_cells
    from tests.evaluation.test_runner import evaluate

    service.register_model("detector", model_files["logistic_regression"], eval_plan=PLAN)
    evaluate(service, "detector@1", dagster_run_id="before-eval-cells")
    incidents.invalidate_dataset(service, "bc@1", reason="labels leaked", reported_by="ops")
    with daemon() as harness:
        instance = harness.instance
        instance.add_dynamic_partitions("model_versions", ["detector@1"])
        instance.add_dynamic_partitions("dataset_versions", ["bc@1"])
        for asset in (*EVAL_ASSETS, "gate_decision"):  # what the old scheme materialized
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition="detector@1"))
        harness.tick()
        for asset in EVAL_ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {"detector@1", "bc@1|detector@1"}
            # the partition grid shows the cell; the old key stays in the history, outside the grid
            status = get_and_update_asset_status_cache_value(instance, dg.AssetKey(asset), eval_cells)
            assert set(status.deserialize_materialized_partition_subsets(eval_cells).get_partition_keys()) == {"bc@1|detector@1"}
        [event] = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("metric_table"), asset_partitions=["bc@1|detector@1"]), limit=5).records
        assert event.asset_materialization.metadata["migrated_from"].value == "detector@1"
        assert _check_status(instance, "metric_table", "inputs_valid") == {"bc@1|detector@1": "FAILED"}
        # Not as the UI resolves it: in this one tick the dataset's validation run materializes bc@1 while the
        # migration reports the incident, and when the report runs first (no materialization to target yet) it
        # still counts as the latest result (Dagster orders results by the row the validation run planned
        # earlier), so the UI shows bc@1 "missing" until the next report: a known race, left open.
        assert _check_status(instance, "eval_dataset", "not_contaminated", resolved=False) == {"bc@1": "FAILED"}
        assert _check_status(instance, "gate_decision", "gate_status") == {"detector@1": "FAILED"}  # no_decision
        assert not harness.run_records(job_name="decide_gate")  # shown as it stands, not re-decided wholesale
        harness.tick()  # once
        assert len(instance.fetch_materializations(dg.AssetKey("metric_table"), limit=10).records) == 2


def test_a_partition_check_is_reported_again_by_a_run_not_runless(service):
    """Why the sensors report check results through runs (jobs/checks.py): Dagster refuses a second runless
    result of the same partition of a partitioned check (unique per run id and partition), while each run
    may report it again."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

    from eval_platform_dagster.jobs.checks import CheckReport, report_request
    from tests.dagster_helpers import resources

    with dg.instance_for_test() as instance:
        def runless(passed):
            instance.report_runless_asset_event(AssetCheckEvaluation(
                asset_key=dg.AssetKey("metric_table"), check_name="inputs_valid", passed=passed, partition="bc@1|m@1"))

        runless(False)
        with pytest.raises(Exception, match="(?i)unique"):
            runless(True)
        job = definitions.defs.resolve_job_def("report_check_results")
        for passed in (True, False, True):
            request = report_request([CheckReport("metric_table", "inputs_valid", "bc@1|m@1", passed, {"why": "test"})], "k")
            assert job.execute_in_process(instance=instance, run_config=request.run_config, resources=resources(service)).success
        assert _check_status(instance, "metric_table", "inputs_valid") == {"bc@1|m@1": "SUCCEEDED"}


# slow (about 50 s of CPU: the backfill's steps each start an interpreter of their own): `make test-slow` and .ci/run
# run it
@pytest.mark.slow
def test_a_ui_backfill_of_the_evaluation_group_with_a_failing_gate_succeeds(service, model_files):
    """A gate that does not pass is a result: the operator's backfill of the evaluation group (cells and gate,
    with their checks) succeeds, every run succeeds, and the gate's status check is red."""
    service.register_model("stump", model_files["decision_stump"], eval_plan=PLAN)
    with daemon() as harness:
        harness.tick()
        assert service.gate_decision("stump@1").decision == "fail"
        status = harness.ui_backfill("evaluationgroup", {(asset, "bc@1|stump@1") for asset in EVAL_ASSETS}
                                     | {("gate_decision", "stump@1")})
        assert status == "COMPLETED_SUCCESS"
        runs = harness.run_records(tags={"dagster/backfill": "evaluationgroup"})
        assert len(runs) == 2 and {r.dagster_run.status.value for r in runs} == {"SUCCESS"}  # the cell, then the gate
        assert {r.dagster_run.tags["eval_platform/decision"] for r in runs} == {"fail"}
        assert service.gate_decision("stump@1").decision == "fail"
        assert _check_status(harness.instance, "gate_decision", "gate_status") == {"stump@1": "FAILED"}
