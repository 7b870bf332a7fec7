"""The judge_license asset and its sensor on a real Dagster instance: a suite asking a license makes the sensor add
the judge version's partition and request its run; the materialization shows the figures and the drift, its check
says whether the judge is licensed, and the gate waiting on the judge is decided again (and shown by the gate sensor)."""

import json

import dagster as dg

from eval_platform.evaluation.judge_license import judge_key
from eval_platform.llm.judge import JudgeConfig
from eval_platform_dagster import definitions
from eval_platform_dagster.assets.judge_licenses import JUDGE_LICENSED, judge_license
from eval_platform_dagster.jobs.checks import reports_of
from eval_platform_dagster.sensors import gate_sensor, incident_sensor, judge_license_sensor
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


def test_a_contaminated_calibration_version_makes_the_sensor_license_the_judge_on_the_older_version(service, server, tmp_path):  # noqa: F811
    from eval_platform.governance.incidents import invalidate_dataset

    register_calibration(service)  # @1: humans label as the rule judge does
    service.register_suite(judged_suite(judge_license=license_requirement()))
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    key = judge_key(JudgeConfig.from_dict(judge_config()))
    on_first = f"license:{key}:{CALIBRATION_ID}@1/kappa/0.95"

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("model_versions", ["qa-bot@1"])
        first = tick(judge_license_sensor, instance, service)
        [request] = first.run_requests
        assert request.run_key == on_first
        assert execute("license_judge", instance, service, request.partition_key, request.tags).success
        register_calibration(service, start=24, stop=84)  # @2: the judge agrees with these humans too
        second = tick(judge_license_sensor, instance, service, cursor=first.cursor)
        [request] = second.run_requests
        assert request.run_key == f"license:{key}:{CALIBRATION_ID}@2/kappa/0.95"
        assert execute("license_judge", instance, service, request.partition_key, request.tags).success
        assert evaluate(service, "qa-bot@1").decision == "pass"
        gates = tick(gate_sensor, instance, service)

        impact = invalidate_dataset(service, f"{CALIBRATION_ID}@2", reason="leaked into the judge's training data", reported_by="ops")
        gate = service.gate_decision("qa-bot@1")
        assert gate.decision == "no_decision"
        assert f"calibration version {CALIBRATION_ID}@2 contaminated: leaked into the judge's training data" in str(gate.reasons)
        [gate_run] = tick(gate_sensor, instance, service, cursor=gates.cursor).run_requests
        assert gate_run.partition_key == "qa-bot@1" and gate_run.tags["eval_platform/decision"] == "no_decision"
        # the incident sensor shows the judge's check red: its license on the contaminated version was invalidated
        [shown] = tick(incident_sensor, instance, service).run_requests
        [report] = [r for r in reports_of(shown) if r.asset == "judge_license"]
        assert (report.check, report.partition, report.passed) == (JUDGE_LICENSED, key, False)
        assert report.metadata["invalidated_licenses"] == str(impact.licenses[0].id)
        reported = definitions.defs.resolve_job_def("report_check_results").execute_in_process(
            instance=instance, run_config=shown.run_config, tags=shown.tags, resources=resources(service))
        assert (JUDGE_LICENSED, key, False) in [(e.check_name, e.partition, e.passed) for e in reported.get_asset_check_evaluations()]

        # the sensor asks for a check on @1, which is the newest active version again; not the run key of the
        # first check on @1 (a launched run key is never launched again), since that check no longer counts
        third = tick(judge_license_sensor, instance, service, cursor=second.cursor)
        [request] = third.run_requests
        assert request.run_key == f"{on_first}:after-incident-{impact.incident.id}" != on_first
        assert request.partition_key == key and request.tags["eval_platform/calibration"] == f"{CALIBRATION_ID}@1/kappa/0.95"
        assert not tick(judge_license_sensor, instance, service, cursor=third.cursor).run_requests  # nothing new
        # a cursor of the sensor from before it read incidents starts after the newest one: no re-license for old ones
        older = {k: v for k, v in json.loads(second.cursor).items() if k != "incident"}
        assert not tick(judge_license_sensor, instance, service, cursor=json.dumps(older)).run_requests

        result = execute("license_judge", instance, service, request.partition_key, request.tags)
        [materialization] = result.asset_materializations_for_node("judge_license")
        assert "| qa-calibration@1 | kappa (95%) | 1.000 |" in materialization.metadata["licenses"].value
        assert materialization.metadata["gates_redecided"].value == "qa-bot@1"
        [check] = result.get_asset_check_evaluations()
        assert check.passed
        assert service.gate_decision("qa-bot@1").decision == "pass"

        # the last active version contaminated: nothing left to license on, no run requested, the blocker says so
        invalidate_dataset(service, f"{CALIBRATION_ID}@1", reason="the same leak", reported_by="ops")
        fourth = tick(judge_license_sensor, instance, service, cursor=third.cursor)
        assert not fourth.run_requests and "no active calibration version" in fourth.skip_message
        assert "has no active calibration version left" in str(service.gate_decision("qa-bot@1").reasons)
