"""LLM and generation evals: OpenAI-compatible candidates, pinned judges, a content-addressed call cache
and per-suite budgets. Plain data in, plain data out; nothing here knows about Dagster.

What the runner calls::

    from eval_platform.llm import (CandidateSpec, JudgeConfig, LLMCache, SuiteBudget, PriceTable,
                                   estimate_run, check_run_budget, generate_predictions, judge_predictions)

    cache = LLMCache.from_platform(platform)
    check_run_budget(estimate_run(candidate, dataset_frame, cache, judge, n=3, prices=prices), budget)
    predictions, candidate_report = generate_predictions(candidate, dataset_frame, cache, budget, prices=prices)
    frame = dataset_frame.merge(predictions[["example_id", "prediction"]], on="example_id")
    judged = judge_predictions(frame, judge, cache, budget, n=3, prices=prices)
    # judged.verdicts (per example), judged.summary (mean, agreement, disagreements, pinned judge),
    # judged.report and candidate_report (calls, cache hits, tokens, cost, retries, errors, budget_exceeded)

The package exports what a run needs (above, plus the specifications, prices, caches and the client); the
rest is in its modules: ``specs`` (endpoints, decoding, prompts, candidates), ``client`` (the retrying client
and its circuit breaker),
``calls`` (the engine that makes cached, budgeted, concurrent calls), ``generate`` (the entry points above),
``judge`` (pinned judges, verdicts, sampling), ``budget`` (token counts, prices, budgets, stratified estimates),
``cache`` (the content-addressed call cache). The local OpenAI-compatible server for demos and tests is
:class:`eval_platform.llm.server.LocalLLMServer`.
"""

from eval_platform.llm.budget import BudgetExceeded, Limits, Price, PriceTable, SuiteBudget
from eval_platform.llm.cache import LLMCache, MemoryCache
from eval_platform.llm.calls import CallReport, LLMCallsFailed
from eval_platform.llm.client import LLMClient, RetryPolicy
from eval_platform.llm.generate import check_run_budget, estimate_run, generate_predictions, judge_predictions
from eval_platform.llm.judge import JudgeConfig, JudgeResult, SamplingPlan, default_judge
from eval_platform.llm.specs import CandidateSpec, Decoding, Endpoint, PromptTemplate

__all__ = [
    "BudgetExceeded", "CallReport", "CandidateSpec", "Decoding", "Endpoint", "JudgeConfig", "JudgeResult", "LLMCache",
    "LLMCallsFailed", "LLMClient", "Limits", "MemoryCache", "Price", "PriceTable", "PromptTemplate", "RetryPolicy",
    "SamplingPlan", "SuiteBudget", "check_run_budget", "default_judge", "estimate_run", "generate_predictions",
    "judge_predictions",
]
