"""Perplexity from an OpenAI-compatible endpoint's token log-probabilities: the local server's deterministic
language model (over real HTTP, the real openai client), the client and its cache, and whole eval runs."""

import functools
import json
import math
from collections import Counter
from importlib import resources as package_files

import numpy as np
import openai
import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.evaluation import predicting, runner
from eval_platform.llm import (
    BudgetExceeded,
    CandidateSpec,
    Decoding,
    Endpoint,
    Limits,
    LLMClient,
    MemoryCache,
    PromptTemplate,
)
from eval_platform.llm.cache import CachedCall, LLMCache, encode_logprobs
from eval_platform.llm.calls import LLMCallsFailed
from eval_platform.llm.generate import candidate_request, generate_predictions, score_references
from eval_platform.llm.server import LocalLLMServer
from eval_platform.metrics.perplexity import perplexity_per_example
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import Registry
from tests.evaluation.test_runner import evaluate

QA = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]


@functools.cache
def bigram_counts() -> tuple[Counter, Counter]:
    """Byte bigrams of the knowledge base's questions, answers and aliases, each text read from a start symbol."""
    pairs, contexts = Counter(), Counter()
    for record in QA:
        for training_text in (record["question"], record["answer"], *record.get("aliases", [])):
            data = training_text.encode()
            for a, b in zip(("<s>", *data), data, strict=False):
                pairs[(a, b)] += 1
                contexts[a] += 1
    return pairs, contexts


def reference_logprob(text: str, previous: int | None = None) -> float:
    """log p(text) under the documented model, computed here from its definition: the bigram counts above,
    add-one smoothed over 256 bytes."""
    pairs, contexts = bigram_counts()
    total, before = 0.0, "<s>" if previous is None else previous
    for byte in text.encode():
        total += math.log((pairs[(before, byte)] + 1) / (contexts[before] + 256))
        before = byte
    return total


@pytest.fixture(scope="module")
def server():
    local = LocalLLMServer()
    local.start()
    yield local
    local.stop()


@pytest.fixture
def endpoint(server, monkeypatch):
    monkeypatch.setenv("EVAL_LLM_BASE_URL", server.base_url)
    return Endpoint("local-kb", "${EVAL_LLM_BASE_URL}")


def spec(model="kb-qa-verbose", logprobs=True):
    return CandidateSpec(Endpoint("local-kb", "${EVAL_LLM_BASE_URL}"), model, "1",
                         PromptTemplate("qa-short", "1", "Question: {prompt}\nAnswer briefly."),
                         Decoding(max_tokens=32, logprobs=logprobs))


def examples(n=6):
    return pd.DataFrame({"example_id": [r["id"] for r in QA[:n]], "prompt": [r["question"] for r in QA[:n]],
                         "reference": [r["answer"] for r in QA[:n]]})


# the server -----------------------------------------------------------------------------------------------


def test_chat_logprobs_are_the_documented_bigram_model_and_add_up_to_the_reply(server):
    client = openai.OpenAI(base_url=server.base_url, api_key="x")
    question = QA[0]["question"]
    reply = client.chat.completions.create(model="kb-qa-verbose", messages=[{"role": "user", "content": question}],
                                           logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    text = reply.choices[0].message.content
    assert text == f"The answer is {QA[0]['answer']}." and "".join(t.token for t in content) == text
    assert sum(t.logprob for t in content) == pytest.approx(reference_logprob(text), abs=1e-9)
    assert content[1].token == " answer"
    assert content[1].logprob == pytest.approx(reference_logprob(" answer", ord("e")), abs=1e-12)
    assert all(len(t.top_logprobs) == 3 and all(a.logprob <= 0 for a in t.top_logprobs) for t in content)
    again = client.chat.completions.create(model="kb-qa-verbose", messages=[{"role": "user", "content": question}],
                                           logprobs=True)
    assert [t.logprob for t in again.choices[0].logprobs.content] == [t.logprob for t in content]  # deterministic
    plain = client.chat.completions.create(model="kb-qa-verbose", messages=[{"role": "user", "content": question}])
    assert plain.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model="kb-qa-v1", messages=[{"role": "user", "content": "x"}], top_logprobs=2)


def test_completions_echo_scores_a_given_text_with_no_value_for_its_first_token(server):
    client = openai.OpenAI(base_url=server.base_url, api_key="x")
    prompt = "Question: what? Paris is big"
    reply = client.completions.create(model="kb-qa-v1", prompt=prompt, echo=True, max_tokens=0, logprobs=1)
    logprobs = reply.choices[0].logprobs
    assert reply.choices[0].text == prompt and "".join(logprobs.tokens) == prompt
    assert logprobs.tokens[0] == "Question" and logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert [prompt[o:o + len(t)] for o, t in zip(logprobs.text_offset, logprobs.tokens, strict=True)] == logprobs.tokens
    # every other token conditioned on the byte before it: together, log p(text) minus its first token's
    assert sum(logprobs.token_logprobs[1:]) == pytest.approx(reference_logprob(prompt) - reference_logprob("Question"), abs=1e-9)
    assert all(len(top) == 1 for top in logprobs.top_logprobs[1:])
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.completions.create(model="kb-qa-v1", prompt=prompt, echo=True, max_tokens=0, logprobs=6)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="rule-judge-1", prompt=prompt, echo=True, max_tokens=0, logprobs=0)


# the client and the cache ---------------------------------------------------------------------------------


def test_logprobs_are_cached_with_the_answer_and_are_part_of_the_key(server, endpoint):
    cache = MemoryCache()
    server.reset_stats()
    with LLMClient(endpoint) as client:
        plain, _ = generate_predictions(spec(logprobs=False), examples(), cache, client=client)
        scored, report = generate_predictions(spec(), examples(), cache, client=client)
        assert report.calls == 6 and report.cache_hits == 0  # the answers cached without logprobs are not reused
        again, report = generate_predictions(spec(), examples(), cache, client=client)
    assert report.calls == 0 and report.cache_hits == 6 and server.stats()["completions"] == 12
    assert "logprob_sum" not in plain.columns and (plain["prediction"] == scored["prediction"]).all()
    pd.testing.assert_frame_equal(scored.drop(columns="latency_seconds"), again.drop(columns="latency_seconds"))
    assert candidate_request(spec(), examples().iloc[0]).key != candidate_request(spec(logprobs=False), examples().iloc[0]).key
    for row in scored.itertuples():
        assert row.logprob_sum == pytest.approx(reference_logprob(row.prediction), abs=1e-9)
        assert row.logprob_tokens == len(row.prediction.replace(".", " .").split())  # words and the full stop


def test_references_are_scored_under_the_candidate_after_its_prompt(server, endpoint):
    cache = MemoryCache()
    frame = examples(3)
    with LLMClient(endpoint) as client:
        scores, report = score_references(spec(), frame, cache, client=client)
        assert report.calls == 3 and report.phase == "reference_scoring"
        _, report = score_references(spec(), frame, cache, client=client)
        assert report.calls == 0 and report.cache_hits == 3
    for row, scored in zip(frame.itertuples(), scores.itertuples(), strict=True):
        context = f"Question: {row.prompt}\nAnswer briefly."
        assert scored.status == "ok"
        assert scored.reference_logprob_sum == pytest.approx(reference_logprob(f" {row.reference}", ord(context[-1])), abs=1e-9)
        assert scored.reference_logprob_tokens == len(row.reference.split())
    with pytest.raises(InvalidInput, match="no text to score"):
        score_references(spec(), frame.assign(reference=["x", None, "y"]), cache)
    calls_before = server.stats()["completions"]
    with pytest.raises(BudgetExceeded) as over:  # scoring is charged to the candidate's budget, checked before any call
        score_references(spec(), examples(5), cache, Limits(max_tokens=20))
    assert over.value.field == "budget.candidate.max_tokens" and server.stats()["completions"] == calls_before


@pytest.mark.parametrize(("mode", "message"), [
    ("missing", "returned no token log-probabilities (choices[0].logprobs.content)"),
    ("malformed", "malformed log-probabilities: choices[0].logprobs.content.logprob[0]"),
])
def test_an_endpoint_without_valid_logprobs_fails_the_call_naming_endpoint_and_field(mode, message, monkeypatch):
    with LocalLLMServer(logprobs_mode=mode) as bad:
        monkeypatch.setenv("EVAL_LLM_BASE_URL", bad.base_url)
        cache = MemoryCache()
        predictions, report = generate_predictions(spec(), examples(2), cache)
        assert report.errors == 2 and len(cache) == 0  # nothing half-written: the next run asks again
        assert (predictions["status"] == "error").all()
        assert "endpoint local-kb" in predictions["error"][0] and message in predictions["error"][0]
        scores, report = score_references(spec(), examples(2), cache)
        assert report.errors == 2 and (scores["status"] == "error").all()
        assert "endpoint local-kb" in scores["error"][0]
        # the echoed prompt's first token has no value (None): the first malformed one is the second
        assert ("no echoed token log-probabilities" if mode == "missing" else "choices[0].logprobs.token_logprobs[1]") \
            in scores["error"][0]


# whole eval runs ------------------------------------------------------------------------------------------


def perplexity_suite(rules=None):
    return {"suite_id": "qa-ppl", "purpose": "release_blocking", "task_type": "generation", "min_slice_size": 1,
            "metrics": ["exact_match@1", {"name": "ppl", "metric": "perplexity@1"},
                        {"name": "ref_ppl", "metric": "perplexity@1", "params": {"source": "reference"}}],
            "slices": ["category"], "llm": {"budget": {"candidate": {"max_tokens": 100_000}}, "concurrency": 4},
            "gate": {"require_baseline": False, "rules": rules or [{"metric": "ppl", "max": 1e9}]}}


def register(tmp_path, base_url, monkeypatch, model="kb-qa-verbose"):
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    frame = pd.DataFrame(QA[:6]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    platform.register_dataset("qa", frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                              label_policy="human_reviewed", slice_columns=["category"])
    platform.register_suite(perplexity_suite())
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps({"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": model,
                                "model_version": "1",
                                "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\nAnswer briefly."},
                                "decoding": {"temperature": 0, "max_tokens": 32}}))
    platform.register_model("qa-bot", path, kind="openai_chat", eval_plan=[("qa", "qa-ppl")])
    return platform, frame


def test_an_eval_run_reports_perplexity_per_example_and_corpus_and_a_rerun_makes_no_call(server, tmp_path, monkeypatch):
    platform, frame = register(tmp_path, server.base_url, monkeypatch)
    try:
        server.reset_stats()
        assert evaluate(platform, "qa-bot@1").decision == "pass"
        assert server.stats()["completions"] == 12  # 6 answers with their logprobs, 6 references scored
        run = platform.runs("qa-bot@1")[0]
        predictions = platform.store.get_table("predictions", run.predictions_hash)
        # per example, against the model's definition computed here
        expected_sums = [reference_logprob(p) for p in predictions["prediction"]]
        np.testing.assert_allclose(predictions["logprob_sum"], expected_sums, rtol=0, atol=1e-9)
        tokens = predictions["logprob_tokens"].to_numpy()
        per_example = np.exp(-np.asarray(expected_sums) / tokens)
        np.testing.assert_allclose(perplexity_per_example(predictions["logprob_sum"], tokens), per_example, rtol=1e-12)
        # corpus: token-weighted, by hand
        corpus = math.exp(-sum(expected_sums) / tokens.sum())
        assert run.results["metrics"]["ppl"] == pytest.approx(corpus, rel=1e-12)
        assert run.results["metrics"]["ppl"] != pytest.approx(per_example.mean(), rel=1e-3)
        assert run.results["perplexity"]["ppl"] == {"source": "generation", "value": pytest.approx(corpus, rel=1e-12),
                                                    "n_tokens": int(tokens.sum()), "n_examples": 6, "n_excluded": 0}
        contexts = [f"Question: {q}\nAnswer briefly." for q in frame["prompt"]]
        ref_sums = [reference_logprob(f" {r}", ord(c[-1])) for r, c in zip(frame["reference"], contexts, strict=True)]
        ref_tokens = sum(len(r.split()) for r in frame["reference"])
        assert run.results["metrics"]["ref_ppl"] == pytest.approx(math.exp(-sum(ref_sums) / ref_tokens), rel=1e-12)
        assert run.lineage["candidate"]["decoding"]["logprobs"] is True
        assert run.lineage["reference_scoring_calls"]["calls"] == 6
        assert {s["metric"] for s in run.results["slices"]} >= {"ppl", "ref_ppl"}

        platform.request_eval("qa-bot@1", "qa", "qa-ppl", recompute=True)
        evaluate(platform, "qa-bot@1", dagster_run_id="again")
        rerun = platform.runs("qa-bot@1")[-1]
        assert server.stats()["completions"] == 12  # everything from the cache: no new call reached the server
        assert rerun.lineage["candidate_calls"]["cache_hits"] == 6 and rerun.lineage["reference_scoring_calls"]["cache_hits"] == 6
        assert rerun.results["metrics"] == run.results["metrics"]
    finally:
        platform.close()


def test_an_endpoint_without_logprobs_fails_the_run_and_the_gate_has_no_decision(tmp_path, monkeypatch):
    with LocalLLMServer(logprobs_mode="missing") as bad:
        platform, _ = register(tmp_path, bad.base_url, monkeypatch)
        try:
            runs = platform.claim_runs("qa-bot@1", "local", requested=True)
            with pytest.raises(LLMCallsFailed, match=r"endpoint local-kb.*logprobs\.content") as failed:
                predicting.produce_predictions(platform, runs[0])
            platform.fail_runs_of("local", str(failed.value))  # what the Dagster run's failure does
            decision = runner.finish_runs(platform, "qa-bot@1", runs)
            assert decision.decision == "no_decision" and "logprobs.content" in str(decision.reasons)
        finally:
            platform.close()


def test_the_registry_cache_keeps_token_logprobs_and_minus_infinity(db_url):
    registry = Registry.open(db_url)  # SQLite, and PostgreSQL (whose JSON has no -Infinity) when the server is there
    try:
        cache = LLMCache(registry)
        record = CachedCall("k1", "candidate", "local-kb", "http://x/v1", "m", "1", "p", "1", {"messages": []}, "a b", "stop",
                            3, 2, None, 0.01, 1, logprobs=encode_logprobs(["a", " b"], [-0.25, -math.inf]))
        plain = CachedCall("k2", "candidate", "local-kb", "http://x/v1", "m", "1", "p", "1", {"messages": []}, "a", "stop",
                           3, 1, None, 0.01, 1)
        assert cache.put_many([record, plain]) == 2
        found = cache.get_many(["k1", "k2"])
        assert found["k1"].token_logprobs() == [-0.25, -math.inf] and found["k1"].logprobs["tokens"] == ["a", " b"]
        assert found["k2"].logprobs is None and found["k2"].token_logprobs() is None
    finally:
        registry.dispose()
