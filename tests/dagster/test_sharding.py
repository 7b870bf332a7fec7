"""Sharded predictions and judgments under Dagster, on a real instance with the in-process executor: a
generation eval whose 20 examples run in 4 shards of 5; the local OpenAI-compatible server starts failing
halfway through the predictions (after 10 answers), so two shards fail and fail the eval run with the cause;
the server recovers and Dagster's own re-execution from the failure redoes only the failed shards. Calls are
counted at the server: every unique call answered exactly once, and the decision equals the single-step
code's (the library's unsharded path, run on a new attempt afterwards: served from the cache)."""

import dagster as dg
import pytest

from eval_platform.core.store import JUDGE_VERDICTS
from eval_platform.evaluation import judging, predicting, runner
from eval_platform.evaluation.shards import SHARD_SIZE_VARIABLE
from eval_platform.llm.server import FaultPlan
from eval_platform_dagster import definitions
from eval_platform_dagster.sensors import eval_request_sensor
from tests.conftest import local_llm_server
from tests.dagster_helpers import execute, tick
from tests.judge_calibration import judge_license, license_judge
from tests.llm.test_llm_runs import _service, candidate_file, judge_config, judged_suite

CELL_JOB = "evaluate_eval_cell"
#: 20 answers and 3 judge samples of each: the unique calls of the evaluation
UNIQUE_CALLS = 20 + 3 * 20


def eval_cell_job() -> dg.JobDefinition:
    """The eval-cell job as the code location defines it (reconstructable: Dagster's re-execution loads it)."""
    return definitions.defs.resolve_job_def(CELL_JOB)


@pytest.fixture
def server():
    """A server of each test's own: the tests change its faults."""
    yield from local_llm_server()


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    monkeypatch.setenv(SHARD_SIZE_VARIABLE, "5")
    # the endpoint's breaker opens while the server fails; a short cooldown lets the re-execution probe it at once
    monkeypatch.setenv("EVAL_PLATFORM_LLM_BREAKER_COOLDOWN", "0.05")
    for platform in _service(tmp_path, server, monkeypatch, None):
        # the code location's `platform` resource reads the installation from the environment (as a daemon's runs do)
        monkeypatch.setenv("EVAL_PLATFORM_HOME", str(platform.config.home))
        monkeypatch.setenv("EVAL_PLATFORM_DB_URL", platform.config.db_url)
        monkeypatch.setenv("EVAL_PLATFORM_STORE", platform.config.store_url)
        yield platform


def _started_steps(instance, run_id: str) -> list[str]:
    return [entry.step_key for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]


def _failures(instance, run_id: str) -> list[str]:
    """The run's step failures, with their causes (a failed assertion shows them)."""
    failures = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = getattr(entry.dagster_event.event_specific_data, "error", None)
        failures.append(f"{entry.step_key}: {error.to_string() if error else entry.message}")
    return failures


def _step_keys(instance, run_id: str, event_type) -> set[str]:
    return {entry.step_key for entry in instance.all_logs(run_id, of_type=event_type)}


@pytest.mark.slow  # about a minute: the failing shard's calls retry with backoff until the breaker opens
def test_failed_shards_fail_the_run_and_a_reexecution_redoes_only_them_paying_no_call_twice(service, server, tmp_path):
    local, _ = server
    # a release-blocking judge gates only with a license, checked (on other answers) before the counting starts
    license_judge(service, judge_config())
    # one call at a time: the first after the recovery is the breaker's probe
    service.register_suite(judged_suite(concurrency=1, judge_license=judge_license()))
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    local.set_faults(FaultPlan(schedule=("ok",) * 10, rate_500=1.0))  # 10 answers, then every request fails
    with dg.instance_for_test() as instance:
        [request] = tick(eval_request_sensor, instance, service).run_requests
        first = execute(CELL_JOB, instance, service, request.partition_key, request.tags, raise_on_error=False)
        assert not first.success
        shard_steps = [f"predictions.predict_shard[r0_s{i}]" for i in range(4)]
        assert _step_keys(instance, first.run_id, dg.DagsterEventType.STEP_SUCCESS) >= {"predictions.plan_prediction_shards",
                                                                                      *shard_steps[:2]}
        assert _step_keys(instance, first.run_id, dg.DagsterEventType.STEP_FAILURE) == set(shard_steps[2:])
        [run] = service.runs("qa-bot@1")
        assert run.status == "failed" and "candidate call" in run.status_reason, run.status_reason  # the cause
        assert local.stats()["completions"] == 10

        local.set_faults(None)  # the server recovers
        # as the UI's "re-execute from failure" and the daemon's run retries do: the parent's tags (its partition) carried over
        parent_tags = {k: v for k, v in first.dagster_run.tags.items() if not k.startswith(("dagster/root_run", "dagster/parent_run"))}
        again = dg.execute_job(dg.reconstructable(eval_cell_job), instance=instance, tags=parent_tags,
                               reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance))
        assert again.success, _failures(instance, again.run_id)
        started = _started_steps(instance, again.run_id)
        # only the shards without an artifact ran again; the plan and the finished shards were not re-run
        assert set(shard_steps[2:]) <= set(started) and not set(shard_steps[:2]) & set(started)
        assert "predictions.plan_prediction_shards" not in started
        assert {f"judgments.judge_shard[r0_s{i}]" for i in range(4)} <= set(started), started

    stats = local.stats()
    assert stats["completions"] == UNIQUE_CALLS, stats  # every unique call answered once: none paid twice
    [run] = service.runs("qa-bot@1")
    assert run.status == "succeeded", run.status_reason
    assert run.dagster_run_id == again.run_id  # the re-execution took the failed run back and finished it
    decision = service.gate_decision("qa-bot@1")
    assert decision.decision == "pass", decision.reasons

    # the single-step code on a new attempt (served from the cache) writes the same artifacts and decides the same
    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    [single] = service.claim_runs("qa-bot@1", "single-step", requested=True)
    predicting.produce_predictions(service, single)
    judging.judge_outputs(service, single)
    runner.compute_metrics(service, service.run(single.run_id))
    runner.compare_with_baseline(service, service.run(single.run_id))
    runner.finish_runs(service, "qa-bot@1", [service.run(single.run_id)])
    single = service.run(single.run_id)
    assert local.stats()["completions"] == UNIQUE_CALLS
    assert single.predictions_hash == run.predictions_hash
    assert single.results["judge"]["verdicts"] == run.results["judge"]["verdicts"]
    assert len(service.store.get_table(JUDGE_VERDICTS, run.results["judge"]["verdicts"])) == 20
    assert single.results["metrics"] == run.results["metrics"]
    assert service.gate_decision("qa-bot@1").decision == decision.decision
