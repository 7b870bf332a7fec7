"""Generation datasets answering "42" or "NA" (issue 17, items 1 and 2), registered from CSV and JSONL files
through ``evalp``, evaluated by Dagster on a real instance: the eval-request sensor's tick, the eval-cell job's
materializations, the metric equal to the hand count (0.5 and 2/3)."""

import json

import dagster as dg
import pytest

from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.sensors import eval_request_sensor
from tests.cli.test_cli import evalp
from tests.cli.test_text_columns import NA, NUMERIC, SUITE, write_csv, write_jsonl
from tests.dagster_helpers import execute, tick


@pytest.mark.parametrize("data, writer, suffix, expected", [(NUMERIC, write_csv, ".csv", 0.5), (NA, write_jsonl, ".jsonl", 2 / 3)])
def test_text_answers_evaluate_exactly_through_dagster(capsys, tmp_path, data, writer, suffix, expected):
    home = str(tmp_path / "home")
    writer(tmp_path / f"qa{suffix}", data, ["example_id", "prompt", "reference"])
    writer(tmp_path / f"answers{suffix}", data, ["example_id", "prediction"])
    (tmp_path / "suite.json").write_text(json.dumps(SUITE))
    for command in (["datasets", "register", "qa", "--file", str(tmp_path / f"qa{suffix}"), "--task-type", "generation",
                     "--label-policy", "synthetic"],
                    ["suites", "register", str(tmp_path / "suite.json")],
                    ["models", "register", "bot", "--file", str(tmp_path / f"answers{suffix}"), "--kind", "predictions", "--eval", "qa:qa"]):
        code, _, err = evalp(capsys, "--home", home, *command)
        assert code == 0, err
    service = EvalPlatform.open(home)
    try:
        with dg.instance_for_test() as instance:
            [request] = tick(eval_request_sensor, instance, service).run_requests
            result = execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags)
            assert result.success
            assert instance.get_materialized_partitions(dg.AssetKey("metric_table")) == {"qa@1|bot@1"}
        [run] = service.runs("bot@1")
        assert run.status == "succeeded" and run.results["metrics"]["exact_match"] == expected
        assert service.load_dataset(service.dataset("qa@1"))["reference"].tolist() == data["reference"]
    finally:
        service.close()
