"""The judge_license asset and its sensor on a real Dagster instance: a suite asking a license makes the sensor add
the judge version's partition and request its run; the materialization shows the figures and the drift, its check
says whether the judge is licensed, and the gate waiting on the judge is decided again (and shown by the gate sensor)."""

import json

import dagster as dg

from eval_platform.evaluation.judge_license import judge_key
from eval_platform.llm.judge import JudgeConfig
from eval_platform_dagster import definitions
from eval_platform_dagster.assets.judge_licenses import JUDGE_LICENSED, judge_license
from eval_platform_dagster.sensors import gate_sensor, judge_license_sensor
from tests.dagster_helpers import execute, resources, tick
from tests.evaluation.test_runner import evaluate
from tests.judge_calibration import CALIBRATION_ID, register_calibration
from tests.judge_calibration import judge_license as license_requirement
from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite, service  # noqa: F401 (fixtures)

FLIPPED = frozenset(range(0, 60, 3))


def test_the_sensor_licenses_a_new_judge_and_the_waiting_gate_is_decided_again(service, server, tmp_path):  # noqa: F811
    local, _ = server
    register_calibration(service)  # humans label as the rule judge does: licensed
    service.register_suite(judged_suite(judge_license=license_requirement()))
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    assert evaluate(service, "qa-bot@1").decision == "no_decision"  # never checked yet
    key = judge_key(JudgeConfig.from_dict(judge_config()))
    assert definitions.defs.get_sensor_def(judge_license_sensor.name) is not None

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("model_versions", ["qa-bot@1"])
        gates = tick(gate_sensor, instance, service)  # the first tick: the gate as it stands
        first = tick(judge_license_sensor, instance, service)
        [request] = first.run_requests
        assert request.partition_key == key and request.run_key == f"license:{key}:{CALIBRATION_ID}@1/kappa/0.95"
        assert instance.get_dynamic_partitions("judge_versions") == [key]
        assert not tick(judge_license_sensor, instance, service, cursor=first.cursor).run_requests  # nothing new

        result = execute("license_judge", instance, service, request.partition_key, request.tags)
        assert result.success
        [materialization] = result.asset_materializations_for_node("judge_license")
        metadata = materialization.metadata
        assert metadata["licensed"].value is True and metadata["judge_key"].value == key
        assert "| qa-calibration@1 | kappa (95%) | 1.000 | 1.000 | 1.000 | 0.60 | 60 | 0 | 0.500 | yes |" in metadata["licenses"].value
        assert "none licensed before" in metadata["drift"].value
        assert metadata["gates_redecided"].value == "qa-bot@1"
        [check] = result.get_asset_check_evaluations()
        assert check.check_name == JUDGE_LICENSED and check.passed
        assert service.gate_decision("qa-bot@1").decision == "pass"
        # the gate sensor sees the new decision and launches the model version's gate run
        [gate_run] = tick(gate_sensor, instance, service, cursor=gates.cursor).run_requests
        assert gate_run.partition_key == "qa-bot@1" and gate_run.tags["eval_platform/decision"] == "pass"

        # the next calibration version, whose humans disagree with the judge on a third: the judge loses its license
        register_calibration(service, flipped=FLIPPED)
        [again] = tick(judge_license_sensor, instance, service, cursor=first.cursor).run_requests
        assert again.run_key == f"license:{key}:{CALIBRATION_ID}@2/kappa/0.95"
        local.reset_stats()
        rechecked = dg.materialize([judge_license], partition_key=key, instance=instance, resources=resources(service))
        # the same answers with other human labels: the judge's verdicts all come from the call cache
        assert local.stats()["completions"] == 0
        [check] = rechecked.get_asset_check_evaluations()
        assert not check.passed and "kappa 0.33" in check.metadata["figures"].value
        assert service.gate_decision("qa-bot@1").decision == "no_decision"
        details = json.loads(json.dumps(rechecked.asset_materializations_for_node("judge_license")[0].metadata["details"].value))
        assert details[0]["calibration_dataset"] == f"{CALIBRATION_ID}@2" and details[0]["licensed"] is False
