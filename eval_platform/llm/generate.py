"""Entry points the runner calls for an LLM evaluation: the candidate's answers, the judge's verdicts, the
worst case of the whole run.

* :func:`generate_predictions` — a candidate's answers to a generation dataset (``example_id``, ``prompt``
  and any other columns the prompt template names) -> ``(predictions_df, CallReport)``.
* :func:`judge_predictions` — a pinned judge's verdicts on those answers -> :class:`~eval_platform.llm.judge.JudgeResult`.
* :func:`estimate_run` / :func:`check_run_budget` — the whole run's worst case (candidate and judge) before
  anything is called.

The calls themselves (cache, budget, concurrency, retries) are made by :func:`~eval_platform.llm.calls.execute_calls`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.llm.budget import (
    BudgetTracker,
    CallCost,
    CostEstimate,
    Limits,
    PriceTable,
    SuiteBudget,
    as_limits,
    check_estimate,
    estimate_cost,
)
from eval_platform.llm.cache import CallCache
from eval_platform.llm.calls import (
    SCORE,
    CallOutcome,
    CallReport,
    CallRequest,
    endpoint_client,
    execute_calls,
    make_request,
)
from eval_platform.llm.client import LLMClient, RetryPolicy
from eval_platform.llm.judge import JudgeConfig, JudgeResult, SamplingPlan, judge_pairwise, verdict_requests
from eval_platform.llm.judge import judge as judge_examples  # the parameter ``judge`` (a judge config) shadows the name
from eval_platform.llm.specs import CandidateSpec, Decoding
from eval_platform.metrics.perplexity import logprob_totals

# candidates -----------------------------------------------------------------------------------------------


def candidate_request(candidate: CandidateSpec, values: Mapping[str, Any]) -> CallRequest:
    """The call that answers one example (``values``: the example's columns)."""
    return make_request("candidate", candidate.endpoint, candidate.model, candidate.model_version, candidate.prompt.id,
                        candidate.prompt.version, candidate.prompt.render(values), candidate.decoding)


def example_rows(examples: pd.DataFrame, id_column: str) -> list[dict]:
    """The examples as row dicts, in order; refuses a non-frame, a missing or duplicated id, or no rows."""
    if not isinstance(examples, pd.DataFrame):
        raise InvalidInput("examples", "must be a pandas DataFrame")
    if id_column not in examples.columns:
        raise InvalidInput("examples", f"has no {id_column!r} column")
    if len(examples) == 0:
        raise InvalidInput("examples", "has no rows")
    if examples[id_column].duplicated().any():
        duplicated = examples.loc[examples[id_column].duplicated(), id_column].head(3).tolist()
        raise InvalidInput(id_column, f"has duplicated ids, e.g. {duplicated}")
    return examples.to_dict("records")


def candidate_requests(candidate: CandidateSpec, examples: pd.DataFrame, id_column: str = "example_id") -> list[CallRequest]:
    return [candidate_request(candidate, row) for row in example_rows(examples, id_column)]


def estimate_generation(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache,
                        prices: PriceTable | None = None, id_column: str = "example_id") -> CostEstimate:
    """Worst case of the candidate calls the cache cannot answer (prompt tokens + ``max_tokens`` each)."""
    requests = {r.key: r for r in candidate_requests(candidate, examples, id_column)}
    cached = cache.get_many(requests)
    return estimate_cost("candidate", (r.cost() for k, r in requests.items() if k not in cached), prices, len(cached))


def generate_predictions(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache,
                         budget: SuiteBudget | Limits | Mapping | None = None, *, client: LLMClient | None = None,
                         prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
                         id_column: str = "example_id", dataset: str | None = None, check_budget: bool = True,
                         cancel: threading.Event | None = None,
                         progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, CallReport]:
    """The candidate's answer to every example, from the cache where it already answered.

    Refuses to start (:class:`~eval_platform.llm.budget.BudgetExceeded`) when the worst case of the
    uncached calls is over ``budget.candidate``. Returns one row per example, in order: ``example_id``,
    ``prediction`` (``None`` unless ``status == "ok"``), ``status`` (``ok``, ``error``, ``skipped_budget``,
    ``cancelled``), ``error``, ``cache_key``, ``prompt_tokens``, ``completion_tokens``, ``cost``,
    ``finish_reason``, ``latency_seconds``; when the candidate's decoding asks for ``logprobs``, also
    ``logprob_sum`` and ``logprob_tokens`` (the answer's token log-probabilities, summed, and how many:
    :mod:`eval_platform.metrics.perplexity`). Every value of an ``ok`` row comes from the cache row, so an
    unchanged rerun returns an identical table (same content hash) with zero calls.
    """
    started = time.perf_counter()
    rows = example_rows(examples, id_column)
    requests = [candidate_request(candidate, row) for row in rows]
    cache.pin_template(candidate.prompt, "candidate")
    client, owned = endpoint_client(candidate.endpoint, client, prices, retry)
    try:
        prices = client.prices
        limits = as_limits(budget, "candidate")
        report = CallReport(phase="candidate", examples=len(rows))
        unique = {r.key: r for r in requests}
        cached = cache.get_many(unique)
        estimate = estimate_cost("candidate", (r.cost() for k, r in unique.items() if k not in cached), prices, len(cached))
        report.estimate = estimate.to_dict()
        if check_budget:
            check_estimate(estimate, limits)
        tracker = BudgetTracker("candidate", limits, prices)
        outcomes, report = execute_calls(requests, cache, client, phase="candidate", tracker=tracker,
                                         concurrency=concurrency, dataset=dataset, cancel=cancel, progress=progress,
                                         report=report)
    finally:
        if owned:
            client.close()
    frame = pd.DataFrame([_prediction_row(row[id_column], outcomes[request.key], candidate.decoding.logprobs)
                          for row, request in zip(rows, requests, strict=True)])
    frame = frame.rename(columns={"example_id": id_column}) if id_column != "example_id" else frame
    report.wall_seconds = time.perf_counter() - started
    return frame, report


def _prediction_row(example_id: Any, outcome: CallOutcome, logprobs: bool = False) -> dict:
    record = outcome.record
    row = _prediction_values(example_id, outcome)
    if logprobs:  # the perplexity metrics' per-example totals (metrics.perplexity), from the cached reply
        token_logprobs = record.token_logprobs() if record is not None else None
        if token_logprobs is None:
            row.update(logprob_sum=float("nan"), logprob_tokens=0)
        else:
            sums, counts = logprob_totals([token_logprobs])
            row.update(logprob_sum=float(sums[0]), logprob_tokens=int(counts[0]))
    return row


def _prediction_values(example_id: Any, outcome: CallOutcome) -> dict:
    record = outcome.record
    return {"example_id": example_id,
            "prediction": record.response_text if record is not None else None,
            "status": outcome.status, "error": outcome.error, "cache_key": outcome.request.key,
            "prompt_tokens": record.prompt_tokens if record else 0,
            "completion_tokens": record.completion_tokens if record else 0,
            "cost": record.cost if record else None,
            "finish_reason": record.finish_reason if record else None,
            "latency_seconds": record.latency_seconds if record else None}


# reference scoring (perplexity of the reference under the candidate) -----------------------------------------

#: Decoding of a scoring call: nothing is generated (``max_tokens: 0`` is sent); 1 is what the budget reserves.
SCORE_DECODING = Decoding(temperature=0.0, max_tokens=1)


def score_messages(candidate: CandidateSpec, values: Mapping[str, Any], text: Any) -> list[dict]:
    """``[context, continuation]`` of scoring ``text`` after the candidate's prompt for one example: the context
    is the rendered prompt (its messages' contents joined by a blank line, trailing whitespace removed), the
    continuation a space and the text, so no token of the servers' tokenizers spans the two."""
    context = "\n\n".join(m["content"] for m in candidate.prompt.render(values)).rstrip()
    if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
        raise InvalidInput("reference", f"has no text to score for example {values.get('example_id')!r}")
    return [{"role": "user", "content": context}, {"role": "assistant", "content": f" {str(text).strip()}"}]


def score_request(candidate: CandidateSpec, values: Mapping[str, Any], text: Any) -> CallRequest:
    """The call that scores ``text`` under the candidate for one example (cached like every call)."""
    return make_request(SCORE, candidate.endpoint, candidate.model, candidate.model_version, candidate.prompt.id,
                        candidate.prompt.version, score_messages(candidate, values, text), SCORE_DECODING)


def score_references(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache,
                     budget: SuiteBudget | Limits | Mapping | None = None, *, client: LLMClient | None = None,
                     prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
                     id_column: str = "example_id", reference_column: str = "reference", dataset: str | None = None,
                     cancel: threading.Event | None = None) -> tuple[pd.DataFrame, CallReport]:
    """The token log-probabilities of each example's reference under the candidate, conditioned on its prompt
    (:meth:`~eval_platform.llm.client.LLMClient.score`), from the cache where already scored; charged to the
    candidate's budget. One row per example: ``example_id``, ``reference_logprob_sum``,
    ``reference_logprob_tokens`` (:mod:`eval_platform.metrics.perplexity`), ``status``, ``error``, ``cache_key``."""
    rows = example_rows(examples, id_column)
    if reference_column not in examples.columns:
        raise InvalidInput("examples", f"has no {reference_column!r} column to score")
    requests = [score_request(candidate, row, row[reference_column]) for row in rows]
    cache.pin_template(candidate.prompt, "candidate")
    client, owned = endpoint_client(candidate.endpoint, client, prices, retry)
    try:
        limits = as_limits(budget, "candidate")
        report = CallReport(phase="reference_scoring", examples=len(rows))
        unique = {r.key: r for r in requests}
        cached = cache.get_many(unique)
        # phase "candidate" in the budget: a refusal names the suite's field it is charged to, budget.candidate
        estimate = estimate_cost("candidate", (r.cost() for k, r in unique.items() if k not in cached), client.prices, len(cached))
        report.estimate = estimate.to_dict()
        check_estimate(estimate, limits)
        tracker = BudgetTracker("candidate", limits, client.prices)
        outcomes, report = execute_calls(requests, cache, client, phase="reference_scoring", tracker=tracker,
                                         concurrency=concurrency, dataset=dataset, cancel=cancel, report=report)
    finally:
        if owned:
            client.close()
    out = []
    for row, request in zip(rows, requests, strict=True):
        outcome = outcomes[request.key]
        token_logprobs = outcome.record.token_logprobs() if outcome.record is not None else None
        sums, counts = logprob_totals([token_logprobs or []])
        out.append({id_column: row[id_column],
                    "reference_logprob_sum": float(sums[0]) if token_logprobs is not None else float("nan"),
                    "reference_logprob_tokens": int(counts[0]), "status": outcome.status, "error": outcome.error,
                    "cache_key": request.key})
    return pd.DataFrame(out), report


# judges and whole runs ------------------------------------------------------------------------------------


def check_run_budget(estimates: Mapping[str, CostEstimate], budget: SuiteBudget | Mapping | None) -> None:
    """Refuse the run when a phase's worst case is over its budget (the error names the field)."""
    for phase, estimate in estimates.items():
        check_estimate(estimate, as_limits(budget, phase))


def judge_predictions(frame: pd.DataFrame, judge: JudgeConfig, cache: CallCache, budget: SuiteBudget | Limits | Mapping | None = None,
                      *, n: int = 1, pairwise: bool = False, sample: SamplingPlan | None = None, client: LLMClient | None = None,
                      prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
                      id_column: str = "example_id", question_column: str = "prompt",
                      reference_column: str = "reference", answer_column: str = "prediction",
                      baseline_column: str = "baseline_prediction", dataset: str | None = None,
                      check_budget: bool = True, cancel: threading.Event | None = None,
                      progress: Callable[[int, int], None] | None = None, only: tuple[int, int] | None = None) -> JudgeResult:
    """A pinned judge's verdicts on the evaluation frame (the dataset joined with the predictions).

    With ``pairwise``, the candidate's answer (``answer_column``) is compared with ``baseline_column``
    in both orders. ``sample`` (a :class:`~eval_platform.llm.judge.SamplingPlan`) judges a stratified
    sample and reports the estimate with its confidence interval. ``only=(start, stop)`` judges one shard: the
    selected examples at those row positions (not with ``pairwise``). Returns a
    :class:`~eval_platform.llm.judge.JudgeResult` (``.verdicts``, ``.summary``, ``.report``).
    """
    columns = {"question": question_column, "reference": reference_column}
    if pairwise:
        if only is not None:
            raise InvalidInput("only", "a pairwise judge is not run by shards")
        return judge_pairwise(frame, judge, n=n, cache=cache, budget=budget, client=client, prices=prices, retry=retry,
                              concurrency=concurrency, sample=sample, columns={**columns, "answer_a": answer_column,
                                                                                "answer_b": baseline_column},
                              id_column=id_column, dataset=dataset, check_budget=check_budget, cancel=cancel, progress=progress)
    return judge_examples(frame, judge, n=n, cache=cache, budget=budget, client=client, prices=prices, retry=retry,
                          concurrency=concurrency, sample=sample, columns={**columns, "answer": answer_column},
                          id_column=id_column, dataset=dataset, check_budget=check_budget, cancel=cancel,
                          progress=progress, only=only)


def estimate_run(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache, judge: JudgeConfig | None = None, *, n: int = 1,
                 judged_examples: int | None = None, prices: PriceTable | None = None, judge_prices: PriceTable | None = None,
                 id_column: str = "example_id", question_column: str = "prompt",
                 reference_column: str = "reference") -> dict[str, CostEstimate]:
    """Worst case of a whole run before it starts: the candidate's uncached calls, and ``n`` judge samples
    per judged example (``judged_examples``: a sample size, default all). Where the candidate's answer is
    already cached the judge prompt is rendered exactly (and looked up in the judge cache); otherwise the
    answer is counted as ``max_tokens`` tokens long."""
    estimates = {"candidate": estimate_generation(candidate, examples, cache, prices, id_column)}
    if judge is None:
        return estimates

    rows = example_rows(examples, id_column)
    requests = [candidate_request(candidate, row) for row in rows]
    answers = cache.get_many({r.key for r in requests})
    judge_calls: list[CallCost] = []
    judge_cached = 0
    exact: list[CallRequest] = []
    share = 1.0 if judged_examples is None else min(judged_examples / len(rows), 1.0)
    for row, request in zip(rows, requests, strict=True):
        record = answers.get(request.key)
        values = {"question": row.get(question_column, ""), "reference": row.get(reference_column, ""),
                  "answer": record.response_text if record else ""}
        judge_requests = verdict_requests(judge, values, n)
        if record is not None:
            exact.extend(judge_requests)
        else:
            for r in judge_requests:
                cost = r.cost()
                judge_calls.append(CallCost(cost.endpoint, cost.model, cost.prompt_tokens + candidate.decoding.max_tokens,
                                            cost.max_completion_tokens))
    if exact:
        known = cache.get_many({r.key for r in exact})
        judge_cached = sum(1 for r in exact if r.key in known)
        judge_calls.extend(r.cost() for r in exact if r.key not in known)
    if share < 1.0:  # a stratified sample judges about this share of the examples
        keep = int(math.ceil(len(judge_calls) * share))
        judge_calls = sorted(judge_calls, key=lambda c: -c.prompt_tokens)[:keep]  # still a worst case
    estimates["judge"] = estimate_cost("judge", judge_calls, judge_prices or prices, judge_cached)
    return estimates
