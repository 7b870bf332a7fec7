"""LLM evals against the bundled OpenAI-compatible server, over real HTTP with the real ``openai`` client."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.llm import (
    BudgetExceeded,
    CandidateSpec,
    Decoding,
    Endpoint,
    Limits,
    LLMCache,
    LLMClient,
    MemoryCache,
    Price,
    PriceTable,
    PromptTemplate,
    RetryPolicy,
    SamplingPlan,
    SuiteBudget,
    check_run_budget,
    default_judge,
    estimate_run,
    generate_predictions,
    judge_predictions,
)
from eval_platform.llm.budget import strata_from_metric, stratified_sample
from eval_platform.llm.judge import JudgeParseError, judge_pairwise, parse_verdict
from eval_platform.llm.server import (
    DEFAULT_CANDIDATES,
    FaultPlan,
    JudgeModel,
    LocalLLMServer,
    qa_dataset,
)
from eval_platform.registry import Registry

PROMPT = PromptTemplate("qa-short", "1", "Answer with only the answer.\nQuestion: {prompt}\nAnswer:")
FAST_RETRY = RetryPolicy(max_attempts=6, timeout=2.0, base_backoff=0.01, max_backoff=0.05)
PRICES = PriceTable({"kb-qa-v1": Price(1.0, 2.0), "kb-qa-v2": Price(1.0, 2.0), "rule-judge-1": Price(0.5, 1.0)})


@pytest.fixture
def server():
    with LocalLLMServer(latency=0.002) as running:
        yield running


@pytest.fixture
def cache(tmp_path):
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    yield LLMCache(registry)
    registry.dispose()


@pytest.fixture(scope="module")
def qa():
    return qa_dataset()


def candidate(server, model="kb-qa-v1", version="1", prompt=PROMPT, endpoint="local", **decoding) -> CandidateSpec:
    return CandidateSpec(Endpoint(endpoint, server.base_url), model, version, prompt,
                         Decoding(**{"max_tokens": 16, **decoding}))


def run(spec, examples, cache, **kwargs):
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("concurrency", 4)
    return generate_predictions(spec, examples, cache, **kwargs)


def completions(server) -> int:
    return server.stats()["completions"]


# caching ---------------------------------------------------------------------------------------------------


def test_cache_keys_distinguish_model_prompt_version_and_decoding(server, cache, qa):
    examples = qa.head(10)
    base, report = run(candidate(server), examples, cache)
    assert (report.calls, report.cache_hits, completions(server)) == (10, 0, 10)
    assert (base["status"] == "ok").all() and base["prediction"].tolist() == examples["reference"].tolist()

    again, report = run(candidate(server), examples, cache)
    assert (report.calls, report.cache_hits, completions(server)) == (0, 10, 10)  # zero calls on a rerun
    pd.testing.assert_frame_equal(again, base)  # identical table: same content hash for the runner

    variants = {
        "model": candidate(server, model="kb-qa-v2"),
        "model_version": candidate(server, version="2"),
        "prompt_version": candidate(server, prompt=PromptTemplate("qa-short", "2", PROMPT.text)),
        "temperature": candidate(server, temperature=0.5),
        "max_tokens": candidate(server, max_tokens=17),
        "seed": candidate(server, seed=7),
        "endpoint": candidate(server, endpoint="other-deployment"),
    }
    keys = {name: set(run(spec, examples, cache)[0]["cache_key"]) for name, spec in variants.items()}
    assert completions(server) == 10 + 10 * len(variants)  # every variant missed on every example
    all_keys = [set(base["cache_key"]), *keys.values()]
    assert sum(len(k) for k in all_keys) == len(set().union(*all_keys))  # no key shared between variants

    # model B is never served model A's answers
    v2 = run(candidate(server, model="kb-qa-v2"), qa, cache)[0]
    assert (v2["prediction"] != qa["reference"]).any()

    # an edited example misses for that example only; the same endpoint name on another URL is the same endpoint
    edited = examples.copy()
    edited.loc[3, "prompt"] = "What is the capital city of Peru?"
    before = completions(server)
    _, report = run(candidate(server), edited, cache)
    assert (report.calls, report.cache_hits, completions(server) - before) == (1, 9, 1)
    moved = CandidateSpec(Endpoint("local", server.base_url.replace("127.0.0.1", "localhost")), "kb-qa-v1", "1", PROMPT,
                          Decoding(max_tokens=16))
    assert run(moved, examples, cache)[1].calls == 0


def test_a_pinned_prompt_version_cannot_change_its_text(server, cache, qa):
    run(candidate(server), qa.head(2), cache)
    edited = PromptTemplate("qa-short", "1", "Q: {prompt}\nA:")
    with pytest.raises(Conflict, match="qa-short@1"):
        run(candidate(server, prompt=edited), qa.head(2), cache)
    assert cache.template("qa-short", "1").text == PROMPT.text
    with pytest.raises(InvalidInput, match="question"):
        run(candidate(server, prompt=PromptTemplate("q", "1", "{question}")), qa.head(2), cache)


def test_a_stopped_run_resumes_paying_only_for_what_is_missing(server, db_url, qa):
    registry = Registry.open(db_url)  # SQLite, and PostgreSQL when the server is there
    cache = LLMCache(registry)
    examples = qa.head(30)

    def stop_midway(done, total):
        if done >= 8:
            raise KeyboardInterrupt("operator stopped the run")

    with pytest.raises(KeyboardInterrupt):
        run(candidate(server), examples, cache, concurrency=2, progress=stop_midway)
    paid = completions(server)
    assert 8 <= paid < 30
    assert cache.count("candidate") == paid  # every reply that arrived was written before the run stopped

    predictions, report = run(candidate(server), examples, cache)
    assert (report.cache_hits, report.calls) == (paid, 30 - paid)
    assert completions(server) == 30  # nothing paid twice
    assert (predictions["status"] == "ok").all()
    registry.dispose()


# budgets ---------------------------------------------------------------------------------------------------


def test_estimate_over_budget_refuses_to_start(server, cache, qa):
    examples = qa.head(20)
    spec = candidate(server)
    with pytest.raises(BudgetExceeded) as refused:
        run(spec, examples, cache, budget=SuiteBudget(candidate=Limits(max_tokens=200)))
    assert refused.value.field == "budget.candidate.max_tokens"
    assert "20 uncached candidate call(s)" in refused.value.problem
    with pytest.raises(BudgetExceeded) as refused:
        run(spec, examples, cache, prices=PRICES, budget={"candidate": {"max_cost": 0.01}})
    assert refused.value.field == "budget.candidate.max_cost"
    with pytest.raises(BudgetExceeded, match="no price"):  # a money budget needs prices
        run(spec, examples, cache, budget={"candidate": {"max_cost": 100.0}})
    assert server.stats()["requests"] == 0 and cache.count() == 0  # nothing called, nothing written

    run(spec, examples, cache)  # once cached, the estimate of a rerun is zero and fits any budget
    _, report = run(spec, examples, cache, budget=SuiteBudget(candidate=Limits(max_tokens=0, max_cost=0.0)), prices=PRICES)
    assert report.calls == 0 and report.estimate["calls"] == 0

    with pytest.raises(InvalidInput, match="budget.judge"):
        SuiteBudget.from_dict({"judge": {"max_tokens": -1}})
    with pytest.raises(InvalidInput, match="unknown"):
        SuiteBudget.from_dict({"candidates": {}})


def test_budget_stops_a_run_midway_and_reports_budget_exceeded(cache, qa):
    # The server counts three times the tokens the client estimates (a sub-word tokenizer): the estimate
    # fits, the real spend does not; the run stops at the budget instead of overspending.
    examples = qa.head(30)
    with LocalLLMServer(latency=0.002, token_scale=3.0) as server:
        spec = candidate(server)
        limit = 1500
        predictions, report = run(spec, examples, cache, budget=SuiteBudget(candidate=Limits(max_tokens=limit)), concurrency=2)
        assert report.budget_exceeded and report.budget_field == "budget.candidate.max_tokens"
        assert 0 < report.calls < 30 and report.skipped == 30 - report.calls
        assert report.estimate["worst_case_tokens"] <= limit  # the pre-run check had let it start
        assert report.total_tokens <= limit + 2 * (70 * 3)  # at most the calls in flight went over
        assert set(predictions["status"]) == {"ok", "skipped_budget"}
        assert predictions["prediction"].isna().sum() == report.skipped
        assert "BUDGET EXCEEDED" in report.summary()

        # a larger budget resumes: only the skipped examples are paid for
        before = completions(server)
        _, resumed = run(spec, examples, cache, budget=SuiteBudget(candidate=Limits(max_tokens=100_000)))
        assert (resumed.calls, resumed.cache_hits, completions(server) - before) == (report.skipped, report.calls, report.skipped)
        assert not resumed.budget_exceeded

        # money budgets stop a run the same way
        _, by_money = run(candidate(server, model="kb-qa-v2"), examples, cache, prices=PRICES, concurrency=1,
                          budget=SuiteBudget(candidate=Limits(max_cost=1.9)))
        assert by_money.budget_exceeded and by_money.budget_field == "budget.candidate.max_cost" and by_money.skipped > 0


def test_without_the_pre_run_check_the_run_stops_within_the_budget(server, cache, qa):
    # every call reserves its worst case before it is sent: with an exact estimate the spend never passes the limit
    predictions, report = run(candidate(server), qa.head(30), cache, check_budget=False,
                              budget=SuiteBudget(candidate=Limits(max_tokens=500)))
    assert report.budget_exceeded and 0 < report.calls < 30 and report.total_tokens <= 500
    assert (predictions["status"] == "skipped_budget").sum() == report.skipped == 30 - report.calls


def test_endpoint_url_from_the_environment_keeps_the_spec_stable(server, cache, qa, monkeypatch):
    monkeypatch.setenv("EVAL_LLM_BASE_URL", server.base_url)
    spec = CandidateSpec.from_dict({"endpoint": {"name": "local", "base_url": "${EVAL_LLM_BASE_URL}"},
                                    "model": "kb-qa-v1", "model_version": "1", "prompt": PROMPT.record(),
                                    "decoding": {"max_tokens": 16}})
    _, first = run(spec, qa.head(3), cache)
    _, second = run(candidate(server), qa.head(3), cache)  # the literal URL: the same endpoint, the same calls
    assert (first.calls, second.calls) == (3, 0)
    monkeypatch.delenv("EVAL_LLM_BASE_URL")
    with pytest.raises(InvalidInput, match="EVAL_LLM_BASE_URL"):
        run(spec, qa.head(3), cache)
    with pytest.raises(InvalidInput, match="candidate.decoding|decoding"):
        CandidateSpec.from_dict({**spec.record(), "decoding": {"temprature": 0}})


def test_estimate_run_covers_the_judge_and_names_the_judge_budget(server, cache, qa):
    examples = qa.head(6)
    spec = candidate(server)
    judge = default_judge(Endpoint("local", server.base_url))
    before = estimate_run(spec, examples, cache, judge, n=2, prices=PRICES)
    assert before["candidate"].calls == 6 and before["judge"].calls == 12
    run(spec, examples, cache, prices=PRICES)
    after = estimate_run(spec, examples, cache, judge, n=2, prices=PRICES)
    assert after["candidate"].calls == 0 and after["judge"].calls == 12
    assert after["judge"].prompt_tokens < before["judge"].prompt_tokens  # the real (short) answers are known now
    with pytest.raises(BudgetExceeded) as refused:
        check_run_budget(after, {"judge": {"max_cost": 0.001}})
    assert refused.value.field == "budget.judge.max_cost"


# faults ----------------------------------------------------------------------------------------------------


def test_injected_429_500_and_timeouts_are_retried_and_the_run_completes(cache, qa):
    faults = FaultPlan(schedule=("429", "500", "timeout", "429", "500"), rate_429=0.1, rate_500=0.1,
                       retry_after=0.05, hang_seconds=3.0, seed=4)
    with LocalLLMServer(latency=0.002, faults=faults) as server:
        retry = RetryPolicy(max_attempts=10, timeout=0.5, base_backoff=0.01, max_backoff=0.05)
        predictions, report = run(candidate(server), qa.head(24), cache, retry=retry)
        assert (predictions["status"] == "ok").all() and report.errors == 0
        assert predictions["prediction"].tolist() == qa.head(24)["reference"].tolist()
        assert report.retries >= 5 and report.attempts == report.calls + report.retries
        assert {"rate_limit", "server_error", "timeout"} <= set(report.retry_causes)
        faults_seen = server.stats()["faults"]
        assert faults_seen["429"] >= 2 and faults_seen["500"] >= 2 and faults_seen["timeout"] >= 1


def test_retry_after_is_honoured_and_client_errors_are_not_retried(qa):
    with LocalLLMServer(faults=FaultPlan(schedule=("429",), retry_after=0.3)) as server:
        waits = []
        client = LLMClient(Endpoint("local", server.base_url), FAST_RETRY, sleep=lambda s: waits.append(s) or time.sleep(s))
        result = client.complete("kb-qa-v1", [{"role": "user", "content": "What is 7 times 8?"}], Decoding(max_tokens=8))
        assert result.ok and result.text == "56" and result.attempts == 2
        assert len(waits) == 1 and waits[0] >= 0.3
        missing = client.complete("no-such-model", [{"role": "user", "content": "hi"}], Decoding())
        assert missing.error_kind == "client_error" and missing.attempts == 1 and "404" in missing.error
        client.close()


def test_calls_that_keep_failing_are_errors_and_are_not_cached(cache, qa):
    with LocalLLMServer(faults=FaultPlan(rate_500=1.0)) as server:
        retry = RetryPolicy(max_attempts=2, timeout=1.0, base_backoff=0.01, max_backoff=0.01)
        predictions, report = run(candidate(server), qa.head(4), cache, retry=retry)
        assert (predictions["status"] == "error").all() and report.errors == 4 and report.attempts == 8
        assert predictions["error"].str.contains("500").all() and cache.count() == 0
        server.set_faults(None)
        predictions, report = run(candidate(server), qa.head(4), cache, retry=retry)
        assert (predictions["status"] == "ok").all() and report.calls == 4


# judges ----------------------------------------------------------------------------------------------------


def judged_frame(server, cache, qa, model="kb-qa-v2", rows=16):
    examples = qa.head(rows)
    predictions, _ = run(candidate(server, model=model), examples, cache)
    return examples.merge(predictions[["example_id", "prediction"]], on="example_id")


def test_judge_verdicts_carry_the_pinned_judge_and_rerun_makes_no_calls(server, cache, qa):
    frame = judged_frame(server, cache, qa)
    judge = default_judge(Endpoint("local", server.base_url), "rule-judge-1", "2024-01")
    result = judge_predictions(frame, judge, cache, prices=PRICES)
    correct = (frame["prediction"] == frame["reference"]).to_numpy()
    assert np.array_equal(result.verdicts["score"].to_numpy() == 1.0, correct)
    assert result.report.calls == 16 and result.report.cost > 0
    assert math.isclose(result.summary["mean"], correct.mean())
    assert set(result.verdicts["judge_config_hash"]) == {judge.config_hash}
    assert set(result.verdicts["judge_model"]) == {"local/rule-judge-1@2024-01"}
    assert result.summary["judge"]["rubric"] == judge.rubric and result.summary["judge"]["prompt"]["version"] == "1"
    assert result.summary["judge_prompt_version"] == "qa-correctness-judge@1"

    before = completions(server)
    again = judge_predictions(frame, judge, cache, prices=PRICES)
    assert again.report.calls == 0 and completions(server) == before
    pd.testing.assert_frame_equal(again.verdicts, result.verdicts)

    stricter = default_judge(Endpoint("local", server.base_url), "rule-judge-1", "2024-01", rubric="Be very strict.")
    assert judge_predictions(frame, stricter, cache).report.calls == 16  # another rubric is another judge
    pass_fail = default_judge(Endpoint("local", server.base_url), "rule-judge-1", "2024-01", output="pass_fail")
    verdicts = judge_predictions(frame, pass_fail, cache).verdicts
    assert verdicts["label"].tolist() == ["pass" if c else "fail" for c in correct]


def test_unparsable_judge_reply_is_a_recorded_error_never_a_score(cache, qa):
    judges = [JudgeModel("always-prose", unparsable_rate=1.0), JudgeModel("sometimes-prose", unparsable_rate=0.4, seed=5)]
    with LocalLLMServer(candidates=DEFAULT_CANDIDATES, judges=judges) as server:
        frame = judged_frame(server, cache, qa, model="kb-qa-v1", rows=8)
        endpoint = Endpoint("local", server.base_url)
        broken = judge_predictions(frame, default_judge(endpoint, "always-prose"), cache)
        assert (broken.verdicts["status"] == "judge_error").all() and broken.verdicts["score"].isna().all()
        assert broken.summary["n_judge_errors"] == 8 and broken.summary["mean"] is None
        assert broken.summary["judge_errors"] == frame["example_id"].tolist()
        assert all("unparsable judge reply" in e for e in json.loads(broken.verdicts.loc[0, "errors"]))

        partial = judge_predictions(frame, default_judge(endpoint, "sometimes-prose"), cache, n=3)
        assert partial.summary["n_sample_errors"] > 0
        ok = partial.verdicts[partial.verdicts["status"] == "ok"]
        assert (ok["n_valid"] + ok["n_errors"] == 3).all() and (ok["score"] == 1.0).all()  # errors are not zeros

    assert parse_verdict('```json\n{"score": 0.5, "rationale": "half"}\n```', "score")["score"] == 0.5
    for reply in ('{"score": 1.5, "rationale": ""}', '{"score": true, "rationale": ""}', "Score: 1",
                  '{"verdict": "maybe", "rationale": ""}', "[1]"):
        with pytest.raises(JudgeParseError):
            parse_verdict(reply, "pass_fail" if "verdict" in reply else "score")


def test_n_sample_judging_reports_disagreement(server, cache, qa):
    frame = judged_frame(server, cache, qa, rows=20)
    endpoint = Endpoint("local", server.base_url)
    noisy = default_judge(endpoint, "rule-judge-noisy")
    result = judge_predictions(frame, noisy, cache, n=5)
    assert result.report.calls == 100
    disagreeing = result.verdicts[result.verdicts["disagree"]]
    assert len(disagreeing) > 0 and result.summary["disagreements"] == disagreeing["example_id"].tolist()
    assert (disagreeing["agreement"] < 1).all() and result.summary["agreement"] < 1
    samples = json.loads(disagreeing.iloc[0]["samples"])
    assert len({s["label"] for s in samples}) == 2 and len({s["cache_key"] for s in samples}) == 5

    more = judge_predictions(frame, noisy, cache, n=7)  # samples 0-4 are reused, 5 and 6 are new calls
    assert (more.report.calls, more.report.cache_hits) == (40, 100)

    clean = judge_predictions(frame, default_judge(endpoint, "rule-judge-1"), cache, n=3)
    assert clean.summary["disagreements"] == [] and clean.summary["agreement"] == 1.0


def test_pairwise_judging_runs_both_orders_and_cancels_position_bias(server, cache, qa):
    examples = qa.head(12)
    a = run(candidate(server, model="kb-qa-v1"), examples, cache)[0]
    b = run(candidate(server, model="kb-qa-v2"), examples, cache)[0]
    frame = examples.assign(prediction=a["prediction"].to_numpy(), baseline_prediction=b["prediction"].to_numpy())
    endpoint = Endpoint("local", server.base_url)
    fair = judge_predictions(frame, default_judge(endpoint, "rule-judge-1", output="pairwise"), cache, pairwise=True)
    differ = (frame["prediction"] != frame["baseline_prediction"]).to_numpy()
    assert differ.any()
    # every example in both orders (where A and B are the same text, both orders are one call)
    assert fair.report.calls == 2 * differ.sum() + (~differ).sum()
    assert (fair.verdicts.loc[differ, "label"] == "A").all() and (fair.verdicts.loc[~differ, "label"] == "tie").all()
    assert fair.verdicts["position_consistent"].all() and fair.summary["wins_a"] == differ.sum()

    biased = judge_pairwise(frame.assign(answer_a=frame["prediction"], answer_b=frame["prediction"]),
                            default_judge(endpoint, "rule-judge-biased", output="pairwise"), cache=cache,
                            columns={"question": "prompt"})
    # the judge always prefers the first answer it sees; both orders cancel it out into a tie
    assert (biased.verdicts["label"] == "tie").all() and (biased.verdicts["preference_a"] == 0.5).all()
    assert not biased.verdicts["position_consistent"].any() and biased.summary["first_position_rate"] == 1.0
    assert biased.summary["disagreements"] == examples["example_id"].tolist()


def test_stratified_judging_reports_the_estimate_and_its_interval(server, cache, qa):
    frame = judged_frame(server, cache, qa, rows=len(qa))
    judge = default_judge(Endpoint("local", server.base_url))
    full = judge_predictions(frame, judge, cache)
    before = completions(server)
    sampled = judge_predictions(frame, judge, MemoryCache(),
                                sample=SamplingPlan(size=24, strata="category", seed=0))
    assert sampled.report.calls == 24 and completions(server) - before == 24
    estimate = sampled.summary["estimate"]
    assert estimate["n_population"] == len(qa) and estimate["ci_low"] <= full.summary["mean"] <= estimate["ci_high"]
    assert {s["stratum"] for s in estimate["strata"]} == set(qa["category"])
    assert sampled.summary["sample"]["population"] == qa["category"].value_counts().to_dict()

    # strata from a cheaper metric (exact match) instead of a column
    exact = (frame["prediction"] == frame["reference"]).astype(float)
    by_metric = judge_predictions(frame, judge, cache, sample=SamplingPlan(size=20, strata=strata_from_metric(exact), seed=1))
    assert by_metric.report.calls == 0  # every sampled verdict was already judged above
    assert by_metric.summary["estimate"]["standard_error"] == pytest.approx(0.0, abs=1e-12)  # judge == EM per stratum


def test_stratified_estimate_and_label_efficiency_by_hand():
    from eval_platform.llm.budget import label_efficiency, stratified_estimate
    from eval_platform.metrics.judge_defs import stratified_judge_score

    # two strata of 60 and 40 examples; 4 judged in each
    values = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    strata = ["a"] * 4 + ["b"] * 4
    estimate = stratified_estimate(values, strata, {"a": 60, "b": 40})
    mean = 0.6 * 0.75 + 0.4 * 0.25
    variance = 0.6 ** 2 * (1 - 4 / 60) * 0.25 / 4 + 0.4 ** 2 * (1 - 4 / 40) * 0.25 / 4  # s_h^2 = 0.25 in both
    assert estimate.mean == pytest.approx(mean) and estimate.standard_error == pytest.approx(np.sqrt(variance))
    efficiency = label_efficiency(estimate)
    srs = (1 - 8 / 100) * (0.6 * 0.25 + 0.4 * 0.25 + 0.6 * (0.75 - mean) ** 2 + 0.4 * (0.25 - mean) ** 2) / 8
    assert efficiency["srs_standard_error"] == pytest.approx(np.sqrt(srs))
    assert efficiency["label_efficiency"] == pytest.approx(srs / variance) and efficiency["label_efficiency"] > 1
    assert efficiency["effective_sample_size"] == pytest.approx(8 * srs / variance) and efficiency["judged_share"] == 0.08

    # the judge metric's estimate on all rows (judged or not) is the same number
    rows_strata = np.array(["a"] * 60 + ["b"] * 40, dtype=object)
    scores = np.full(100, np.nan)
    sampled = np.zeros(100, dtype=bool)
    scores[[0, 1, 2, 3, 60, 61, 62, 63]], sampled[[0, 1, 2, 3, 60, 61, 62, 63]] = values, True
    assert stratified_judge_score(scores, rows_strata, sampled) == pytest.approx(mean)
    scores[1] = np.nan  # a judge error among the judged: undefined, never dropped
    assert np.isnan(stratified_judge_score(scores, rows_strata, sampled))

    # a stratum judged once (of several) has an unknown variance: no interval, no efficiency
    once = stratified_estimate([1.0, 1.0, 0.0, 1.0], ["a", "a", "a", "b"], {"a": 60, "b": 40})
    assert np.isnan(once.standard_error) and np.isnan(once.ci_low) and label_efficiency(once)["label_efficiency"] is None
    # ... unless that one example is the whole stratum
    whole = stratified_estimate([1.0, 1.0, 0.0, 1.0], ["a", "a", "a", "b"], {"a": 60, "b": 1})
    assert np.isfinite(whole.ci_low)


def test_stratified_sample_allocation():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 3
    drawn = stratified_sample(labels, size=20, seed=3, min_per_stratum=2)
    counts = pd.Series(drawn.strata).value_counts().to_dict()
    assert drawn.size == 20 and counts["c"] >= 2 and counts["a"] > counts["b"]
    assert np.array_equal(drawn.positions, stratified_sample(labels, size=20, seed=3).positions)  # seeded
    assert stratified_sample(labels, size=500).size == len(labels)
    with pytest.raises(InvalidInput, match="sample.size"):
        stratified_sample(labels, size=4, min_per_stratum=2)


# the server ------------------------------------------------------------------------------------------------


def test_server_runs_as_a_script(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "eval_platform.llm.server", "--port", "0", "--latency", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        client = LLMClient(Endpoint("script", base_url), FAST_RETRY)
        result = client.complete("kb-qa-v1", [{"role": "user", "content": "What is the chemical symbol of the element gold?"}],
                                 Decoding(max_tokens=4))
        assert result.text == "Au" and result.prompt_tokens > 0 and result.completion_tokens == 1
        client.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


def test_qa_dataset_is_a_valid_generation_dataset(qa):
    from eval_platform.core.tasks import get_task_type
    from eval_platform.datasets.validation import validate_frame

    assert 50 <= len(qa) <= 100 and qa["example_id"].is_unique and qa["prompt"].is_unique
    validate_frame(qa, get_task_type("generation")).raise_for_failures()


def test_migration_creates_exactly_the_llm_tables(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from eval_platform.registry.schema import Base

    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    with registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "llm_" in str(d)] == []
    registry.dispose()
