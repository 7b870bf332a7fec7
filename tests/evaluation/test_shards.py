"""Sharded predictions and judgments (eval_platform/evaluation/shards.py): the plan, and the merged shards
against the single-step code on the project's local OpenAI-compatible server (real HTTP, real cache).

The expected artifacts come from the single-step code (``predicting.produce_predictions``,
``judging.judge_outputs``), which knows nothing of shards; the sharded run goes first, so its shards make the
calls and the single step is served from the cache they filled."""

import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.core.store import JUDGE_VERDICTS, PREDICTIONS
from eval_platform.evaluation import judging, predicting, runner, shards
from eval_platform.llm.judge import JudgeConfig
from tests.llm.test_llm_runs import _service, candidate_file, judge_config, judged_suite


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    yield from _service(tmp_path, server, monkeypatch, None)


def test_shard_bounds_are_contiguous_in_order_and_at_most_the_size():
    assert shards.shard_bounds(20, 6) == [(0, 6), (6, 12), (12, 18), (18, 20)]
    assert shards.shard_bounds(20, 2000) == [(0, 20)]  # a small dataset stays one shard
    assert shards.shard_bounds(12, 6) == [(0, 6), (6, 12)]
    assert shards.shard_bounds(0, 6) == [(0, 0)]


def test_the_shard_size_is_the_operators_setting_and_a_bad_one_names_the_variable(monkeypatch):
    monkeypatch.delenv(shards.SHARD_SIZE_VARIABLE, raising=False)
    assert shards.shard_size() == 2000
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, "7")
    assert shards.shard_size() == 7
    for bad in ("0", "-3", "many", "2.5"):
        monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, bad)
        with pytest.raises(InvalidInput) as caught:
            shards.shard_size()
        assert caught.value.field == shards.SHARD_SIZE_VARIABLE


def _sharded(platform, runs, size):
    """Plan, run every shard and merge, predictions then judgments, as the Dagster steps do."""
    planned = shards.plan_predictions(platform, runs, size)
    results = [shards.run_prediction_shard(platform, shard, "test:0") for shard in planned]
    produced = [shards.merge_predictions(platform, run, results) for run in runs]
    planned_judge = shards.plan_judgments(platform, runs, size)
    judged_results = [shards.run_judgment_shard(platform, shard, "test:0") for shard in planned_judge]
    judged = [shards.merge_judgments(platform, run, judged_results) for run in runs]
    return planned, results, produced, planned_judge, judged_results, judged


@pytest.mark.parametrize("sample", [None, {"size": 9, "strata": {"column": "category"}, "seed": 3, "min_per_stratum": 1}])
def test_merged_shards_are_exactly_the_single_step_artifacts(service, server, tmp_path, sample):
    local, _ = server
    suite = judged_suite()
    if sample is not None:
        suite["llm"]["judge_sample"] = sample
    service.register_suite(suite)
    model = "kb-qa-v1" if sample is None else "kb-qa-v2"
    service.register_model("qa-bot", candidate_file(tmp_path, model=model), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()

    [run] = service.claim_runs("qa-bot@1", "sharded", requested=True)
    planned, results, produced, planned_judge, judged_results, _ = _sharded(service, [run], 6)
    assert [(s.start, s.stop) for s in planned] == [(0, 6), (6, 12), (12, 18), (18, 20)]
    assert [s.mapping_key for s in planned] == ["r0_s0", "r0_s1", "r0_s2", "r0_s3"]
    assert len({s.key for s in planned + planned_judge}) == 8  # each shard its own key
    assert all(r.calls > 0 and not r.reused for r in results)
    sharded = service.run(run.run_id)
    judge_samples = 3 * (20 if sample is None else sample["size"])
    assert local.stats()["completions"] == 20 + judge_samples  # every call once, across the shards
    assert produced[0].rows == 20 and produced[0].calls == 20

    runner.compute_metrics(service, sharded)
    runner.compare_with_baseline(service, sharded)
    runner.finish_runs(service, "qa-bot@1", [sharded])

    # the single-step code on a new attempt: served from the cache, it writes the very same artifacts
    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    [single] = service.claim_runs("qa-bot@1", "single", requested=True)
    report = predicting.produce_predictions(service, single)
    assert report.calls == 0
    judging.judge_outputs(service, single)
    single = service.run(single.run_id)
    assert local.stats()["completions"] == 20 + judge_samples
    assert sharded.predictions_hash == single.predictions_hash
    assert service.store.get_table(PREDICTIONS, sharded.predictions_hash)["prediction"].notna().all()
    ours, theirs = sharded.results["judge"], single.results["judge"]
    assert ours["verdicts"] == theirs["verdicts"]
    verdicts = service.store.get_table(JUDGE_VERDICTS, ours["verdicts"])
    assert len(verdicts) == (20 if sample is None else sample["size"])
    skip = {"budget_exceeded", "budget_field"}
    assert {k: v for k, v in ours["summary"].items() if k not in skip} == \
        {k: v for k, v in theirs["summary"].items() if k not in skip}
    assert ours.get("sampling") == theirs.get("sampling")
    assert sharded.lineage["judge_config_hash"] == JudgeConfig.from_dict(judge_config()).config_hash

    # a shard already stored is not computed again (a rerun of the whole plan makes no call and reads the artifacts)
    again = [shards.run_prediction_shard(service, shard, "test:1") for shard in planned]
    assert all(r.reused and r.calls == 0 for r in again)
    assert [r.artifact for r in again] == [r.artifact for r in results]
    judged_again = [shards.run_judgment_shard(service, shard, "test:1") for shard in planned_judge]
    assert [r.artifact for r in judged_again] == [r.artifact for r in judged_results]
    assert all(r.reused for r in judged_again if r.artifact)


def test_one_shard_is_the_single_step_computation(service, server, tmp_path):
    service.register_suite(judged_suite())
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v1", prompt_version="9"), kind="openai_chat",
                           eval_plan=[("qa", "qa")])
    [run] = service.claim_runs("qa-bot@1", "sharded", requested=True)
    planned = shards.plan_predictions(service, [run], 2000)
    assert [(s.start, s.stop, s.count) for s in planned] == [(0, 20, 1)]
    _sharded(service, [run], 2000)
    assert service.run(run.run_id).predictions_hash
