"""LLM candidates as eval runs: an OpenAI-compatible endpoint (the shipped local server, over real HTTP
with the real openai client) evaluated through the runner and Dagster, cached and budgeted."""

import json
from importlib import resources as package_files

import dagster as dg
import pandas as pd
import pytest

from eval_platform.llm.server import LocalLLMServer
from eval_platform.platform import EvalPlatform
from sensors import eval_request_sensor
from tests.dagster_helpers import execute, tick
from tests.test_runner import evaluate


@pytest.fixture(scope="module")
def server():
    local = LocalLLMServer()
    base_url = local.start()
    yield local, base_url
    local.stop()


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    _, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:20]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    platform.register_dataset("qa", frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                              label_policy="human_reviewed", slice_columns=["category"])
    yield platform
    platform.close()


def suite(**llm):
    return {"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation",
            "metrics": ["exact_match@1", "token_f1@1"], "min_slice_size": 1,
            "llm": {"budget": {"candidate": {"max_tokens": 100_000}}, "concurrency": 4, **llm},
            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.8}]}}


def candidate_file(tmp_path, model="kb-qa-v1", prompt_version="1", temperature=0.0):
    spec = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": model, "model_version": "1",
            "prompt": {"id": "qa-short", "version": prompt_version, "text": "Question: {prompt}\nAnswer briefly."},
            "decoding": {"temperature": temperature, "max_tokens": 32}}
    path = tmp_path / f"{model}-{prompt_version}-{temperature}.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_chat_model_is_evaluated_and_a_rerun_makes_no_call(service, server, tmp_path):
    local, _ = server
    service.register_suite(suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    assert evaluate(service, "qa-bot@1").decision == "pass"
    assert local.stats()["completions"] == 20
    run = service.runs("qa-bot@1")[0]
    assert run.lineage["prompt_version"] == "qa-short@1"
    assert run.lineage["candidate_calls"]["calls"] == 20

    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    rerun = service.runs("qa-bot@1")[-1]
    assert rerun.attempt == 2 and rerun.lineage["candidate_calls"]["calls"] == 0
    assert rerun.lineage["candidate_calls"]["cache_hits"] == 20
    assert local.stats()["completions"] == 20  # nothing new was paid for
    assert rerun.results["metrics"] == run.results["metrics"]

    # a new prompt version is a new model version and misses the cache for every example
    service.register_model("qa-bot", candidate_file(tmp_path, prompt_version="2"), kind="openai_chat")
    evaluate(service, "qa-bot@2")
    assert local.stats()["completions"] == 40


def test_over_budget_the_run_fails_and_the_gate_has_no_decision(service, server, tmp_path):
    service.register_suite(suite(budget={"candidate": {"max_tokens": 50}}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat", eval_plan=[("qa", "qa")])
    with dg.instance_for_test() as instance:
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        result = execute("evaluate_model_version", instance, service, request.partition_key, request.tags, raise_on_error=False)
    assert not result.success
    run = service.runs("qa-bot@1")[0]
    assert run.status == "failed" and "budget" in run.status_reason
    decision = service.gate_decision("qa-bot@1")
    assert decision.decision == "no_decision" and "budget" in str(decision.reasons)


def judge_config():
    return {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}


def judged_suite(pin=True, **llm):
    from eval_platform.llm.judge import JudgeConfig

    params = {k: v for k, v in JudgeConfig.from_dict(judge_config()).pin().items() if k != "judge_config_hash"} if pin else {}
    raw = suite(judge=judge_config(), judge_samples=3, **llm)
    raw["metrics"] = ["exact_match@1", {"name": "judge", "metric": "judge_score@1", "params": params}]
    raw["gate"]["rules"].append({"metric": "judge", "min": 0.8})
    return raw


def test_a_pinned_judge_scores_each_example_and_is_recorded(service, server, tmp_path):
    local, _ = server
    service.register_suite(judged_suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    assert evaluate(service, "qa-bot@1").decision == "pass"
    run = service.runs("qa-bot@1")[0]
    judge = run.results["judge"]
    assert judge["summary"]["n"] == 3 and judge["summary"]["n_scored"] == 20
    assert run.results["metrics"]["judge"] == pytest.approx(judge["summary"]["mean"])
    assert run.lineage["judge"]["model"] == "rule-judge-1" and run.lineage["judge_config_hash"].startswith("sha256:")
    verdicts = service.store.get_table("judge_verdicts", judge["verdicts"])
    assert len(verdicts) == 20 and set(verdicts["judge_model"]) == {"local-kb/rule-judge-1@1"}
    assert local.stats()["completions"] == 20 + 60  # 20 answers, 3 judge samples each

    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    assert local.stats()["completions"] == 80  # the rerun is served from the cache: zero calls


def test_judge_pins_must_match_and_an_unpinned_judge_blocks(service, tmp_path):
    from eval_platform.errors import InvalidInput

    wrong = judged_suite()
    wrong["metrics"][1]["params"]["judge_model"] = "someone-else@9"
    with pytest.raises(InvalidInput, match="judge.params.judge_model"):
        service.register_suite(wrong)
    service.register_suite(judged_suite(pin=False))
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    decision = evaluate(service, "qa-bot@1")
    assert decision.decision == "no_decision" and "judge of judge is not pinned" in str(decision.reasons)
