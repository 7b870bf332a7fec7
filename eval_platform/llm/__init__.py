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

The local OpenAI-compatible server for demos and tests is :class:`eval_platform.llm.server.LocalLLMServer`.
"""

from eval_platform.llm.budget import (
    BudgetExceeded,
    BudgetTracker,
    CostEstimate,
    Limits,
    Price,
    PriceTable,
    StratifiedEstimate,
    SuiteBudget,
    count_tokens,
    strata_from_metric,
    stratified_estimate,
    stratified_sample,
)
from eval_platform.llm.cache import (
    CachedCall,
    LLMCache,
    MemoryCache,
    call_key,
)
from eval_platform.llm.client import (
    LLM_CALL_CODE_VERSION,
    CallResult,
    CandidateSpec,
    CircuitBreaker,
    Decoding,
    Endpoint,
    LLMClient,
    PromptTemplate,
    RetryPolicy,
    circuit_breaker,
)
from eval_platform.llm.generate import (
    CallReport,
    LLMCallsFailed,
    calls_failure,
    check_run_budget,
    estimate_generation,
    execute_calls,
    generate_predictions,
    raise_if_calls_failed,
)
from eval_platform.llm.judge import (
    PAIRWISE_JUDGE_PROMPT,
    QA_JUDGE_PROMPT,
    JudgeConfig,
    JudgeParseError,
    JudgeResult,
    SamplingPlan,
    default_judge,
    estimate_run,
    judge,
    judge_pairwise,
    judge_predictions,
    parse_verdict,
)

__all__ = [
    "BudgetExceeded", "BudgetTracker", "CachedCall", "CallReport", "CallResult", "CandidateSpec", "CircuitBreaker", "CostEstimate",
    "Decoding", "Endpoint", "JudgeConfig", "JudgeParseError", "JudgeResult", "LLMCache", "LLMCallsFailed", "LLMClient",
    "LLM_CALL_CODE_VERSION", "Limits", "MemoryCache", "PAIRWISE_JUDGE_PROMPT", "Price", "PriceTable",
    "PromptTemplate", "QA_JUDGE_PROMPT", "RetryPolicy", "SamplingPlan", "StratifiedEstimate", "SuiteBudget",
    "call_key", "calls_failure", "check_run_budget", "circuit_breaker", "count_tokens", "default_judge", "estimate_generation", "estimate_run",
    "execute_calls", "generate_predictions", "judge", "judge_pairwise", "judge_predictions", "parse_verdict",
    "raise_if_calls_failed", "stratified_estimate", "stratified_sample", "strata_from_metric",
]
