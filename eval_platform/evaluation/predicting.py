"""An eval run's first step: the model's predictions on the dataset version, cached by content (a
scikit-learn model, a predictions file, or an LLM candidate called through the platform's cache and budget);
and what every step records with its results: the platform's code version and the run's lineage.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import eval_platform
from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.core.records import iso
from eval_platform.core.states import CANARY_TRIGGER
from eval_platform.core.store import PREDICTIONS
from eval_platform.evaluation.results import (
    PredictionReport,
)
from eval_platform.gates.rules import GATE_CODE_VERSION
from eval_platform.llm.budget import Limits, PriceTable, SuiteBudget
from eval_platform.llm.cache import CallCache, FreshCalls, LLMCache
from eval_platform.llm.calls import raise_if_calls_failed
from eval_platform.llm.client import LLMClient
from eval_platform.llm.generate import generate_predictions, score_references
from eval_platform.llm.specs import CandidateSpec
from eval_platform.metrics.perplexity import perplexity_sources
from eval_platform.models.files import PREDICTION_CODE_VERSION, predict
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, Model, PredictionSet


@lru_cache(maxsize=1)
def platform_code_version() -> str:
    """The platform's version, with the git commit when running from a checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(eval_platform.__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{eval_platform.__version__}+{commit}" if commit else eval_platform.__version__


def lineage(platform: EvalPlatform, run: EvalRun) -> dict:
    """Every input of a run's results: walk back from any number to what produced it."""
    dataset = platform.dataset(run.dataset_key)
    suite = platform.suite(run.suite_key)
    model = platform.model(run.model_key)
    model_facts = {"name": model.name, "version": model.version, "kind": model.kind, "file_hash": model.file_hash, "uri": model.uri}
    if model.training_cutoff is not None or model.training_manifest_hash:  # what the leakage counts were computed from
        model_facts |= {"training_cutoff": iso(model.training_cutoff),
                        "training_manifest_hash": model.training_manifest_hash}
    return {
        "dataset": {"id": dataset.dataset_id, "version": dataset.version, "content_hash": dataset.content_hash,
                    "label_policy": dataset.label_policy, "task_type": dataset.task_type, "rows": dataset.row_count},
        "model": model_facts,
        "suite": {"id": suite.suite_id, "version": suite.version, "purpose": suite.purpose, "definition_hash": suite.definition_hash},
        "metrics": {m["name"]: m["metric"] for m in suite.metric_defs["metrics"]},
        "prompt_version": None,
        "judge": None,
        "code": {"platform": platform_code_version(), "predictions": PREDICTION_CODE_VERSION, "gate": GATE_CODE_VERSION},
    }


# step 1: predictions ------------------------------------------------------------------------------------
def prediction_cache_key(model_file_hash: str, dataset_content_hash: str) -> str:
    return json_hash({"model": model_file_hash, "dataset": dataset_content_hash, "code": PREDICTION_CODE_VERSION})


def produce_predictions(platform: EvalPlatform, run: EvalRun) -> PredictionReport:
    """Predictions of the run's model on its dataset, from the cache when this model file already
    predicted this dataset content (a rerun pays for no inference already done). A canary run predicts
    afresh: it re-measures the released model in today's environment, so nothing is served from a cache."""
    dataset = platform.dataset(run.dataset_key)
    model = platform.model(run.model_key)
    if model.kind == "openai_chat":
        return _generate_with_llm(platform, run, dataset, model)
    key = prediction_cache_key(model.file_hash, dataset.content_hash)
    fresh = run.trigger == CANARY_TRIGGER
    with platform.registry.session() as session:
        cached = None if fresh else session.get(PredictionSet, key)
    if cached is not None and platform.store.has_table(PREDICTIONS, cached.artifact_hash):
        platform.update_run(run.run_id, predictions_hash=cached.artifact_hash, lineage=lineage(platform, run))
        return PredictionReport(run.run_id, cached.artifact_hash, cache_hit=True, rows=cached.row_count, seconds=0.0)
    started = time.perf_counter()
    frame = platform.load_dataset(dataset)
    estimator = platform.load_model(model)
    predictions = predict(estimator, frame, dataset.schema, dataset.task_type)
    seconds = time.perf_counter() - started
    digest = platform.store.put_table(PREDICTIONS, predictions)
    with platform.registry.session() as session:
        if not fresh and session.get(PredictionSet, key) is None:
            session.add(PredictionSet(cache_key=key, model_name=model.name, model_version=model.version,
                                      model_file_hash=model.file_hash, dataset_content_hash=dataset.content_hash,
                                      artifact_hash=digest, row_count=len(predictions), compute_seconds=seconds))
    platform.update_run(run.run_id, predictions_hash=digest, lineage=lineage(platform, run))
    return PredictionReport(run.run_id, digest, cache_hit=False, rows=len(predictions), seconds=seconds)


class LLMRunStopped(InvalidInput):
    """An LLM candidate's run stopped: over budget, or calls that failed after their retries."""


def _generate_with_llm(platform: EvalPlatform, run: EvalRun, dataset: EvalDataset, model: Model) -> PredictionReport:
    """A chat model's answers through the LLM call cache: every call already paid for is served from it,
    so a rerun, or a run resumed after a stop, pays only for what is missing."""

    suite = platform.suite_definition(platform.suite(run.suite_key))
    budget = SuiteBudget.from_dict((suite.llm or {}).get("budget"))
    # a canary run's cache answers nothing: its reference scores are fresh calls too
    predictions, report, scoring, spec = llm_candidate_predictions(platform, run, platform.load_dataset(dataset), budget)
    digest = platform.store.put_table(PREDICTIONS, predictions)
    platform.update_run(run.run_id, predictions_hash=digest, lineage=llm_lineage(platform, run, spec, report, scoring))
    raise_if_llm_run_stopped(report, scoring)
    reports = [report] if scoring is None else [report, scoring]  # the reference scoring's calls are the candidate's too
    calls_made = sum(r.calls for r in reports)
    return PredictionReport(run.run_id, digest, cache_hit=calls_made == 0, rows=len(predictions),
                            seconds=sum(r.wall_seconds for r in reports), calls=calls_made,
                            cache_hits=sum(r.cache_hits for r in reports),
                            tokens=sum(r.prompt_tokens + r.completion_tokens for r in reports), cost=sum(r.cost for r in reports))


def llm_candidate_predictions(platform: EvalPlatform, run: EvalRun, frame, budget: SuiteBudget):
    """The candidate's answers to the examples of ``frame`` (a run's whole dataset, or one shard of its rows:
    :mod:`eval_platform.evaluation.shards`) within ``budget``, with the references' scores when the suite
    has a perplexity metric of the reference. Returns ``(predictions, report, scoring report or None, spec)``."""
    suite = platform.suite_definition(platform.suite(run.suite_key))
    spec = with_logprobs_if_needed(platform.load_model(platform.model(run.model_key)), suite)
    dataset = platform.dataset(run.dataset_key)
    llm = suite.llm or {}
    cache = candidate_cache(platform, run)
    scoring = None
    with llm_client(platform, spec.endpoint, PriceTable.from_dict(llm.get("prices"))) as client:
        predictions, report = generate_predictions(spec, frame, cache, budget, client=client,
                                                   concurrency=llm.get("concurrency", 8), dataset=run.dataset_key)
        if scores_references(suite) and not report.errors and not report.budget_exceeded:
            predictions, scoring = _with_reference_scores(predictions, spec, frame, dataset, run, cache,
                                                          _left_over(budget.candidate, report), client, llm)
    return predictions, report, scoring, spec


def llm_lineage(platform: EvalPlatform, run: EvalRun, spec: CandidateSpec, report, scoring) -> dict:
    """The run's lineage with the candidate and what its calls did."""
    record = lineage(platform, run) | {"prompt_version": spec.prompt.key, "candidate": spec.record(), "candidate_calls": report.to_dict()}
    if scoring is not None:
        record["reference_scoring_calls"] = scoring.to_dict()
    return record


def raise_if_llm_run_stopped(report, scoring) -> None:
    """:class:`LLMRunStopped` (or the calls' own failure) when the candidate's calls, or the references'
    scoring, stopped at the budget or failed after their retries."""
    if scoring is not None and (scoring.budget_exceeded or scoring.errors):
        report = scoring  # the candidate's own calls went well: what stops the run is the scoring
    if report.budget_exceeded:
        raise LLMRunStopped(report.budget_field or "budget", f"budget_exceeded: the run stopped at its budget after "
                            f"{report.calls} call(s); {report.skipped} example(s) were not answered")
    if report.errors:
        raise_if_calls_failed(report)  # every call failed, or the endpoint's breaker opened: that is the cause
        raise LLMRunStopped("candidate", f"{report.errors} call(s) failed after their retries: {report.error_samples[:3]}")


def scores_references(suite) -> bool:
    """The suite has a perplexity metric of the dataset's reference under the candidate."""
    return "reference" in perplexity_sources(suite.metrics)


def _left_over(limits: Limits, report) -> Limits:
    """What the candidate's budget has left after its answers: scoring the references is charged to it too."""
    return Limits(None if limits.max_tokens is None else max(limits.max_tokens - report.total_tokens, 0),
                  None if limits.max_cost is None else max(limits.max_cost - report.cost, 0.0))


def _with_reference_scores(predictions, spec: CandidateSpec, frame, dataset: EvalDataset, run: EvalRun, cache, limits: Limits,
                           client, llm: dict):
    """The predictions with each reference's token log-probability totals under the candidate (through the cache)."""
    scores, scoring = score_references(spec, frame, cache, limits, client=client, concurrency=llm.get("concurrency", 8),
                                       reference_column=dataset.schema["label_column"], dataset=run.dataset_key)
    columns = ["example_id", "reference_logprob_sum", "reference_logprob_tokens"]
    return predictions.merge(scores[columns], on="example_id", how="left", validate="one_to_one"), scoring


def with_logprobs_if_needed(spec: CandidateSpec, suite) -> CandidateSpec:
    """The candidate asking for its answers' token log-probabilities when the suite has a perplexity metric
    of the generation (they are then part of each call's cache key and of its cached reply)."""
    needed = "generation" in perplexity_sources(suite.metrics)
    return replace(spec, decoding=replace(spec.decoding, logprobs=True)) if needed else spec


def candidate_cache(platform: EvalPlatform, run: EvalRun) -> CallCache:
    """The LLM call cache of a run's candidate calls: none for a canary run (the endpoint itself is what it
    watches); judge calls keep the cache, as the judge is pinned and a changed answer misses it anyway."""
    cache = LLMCache.from_platform(platform)
    return FreshCalls(cache) if run.trigger == CANARY_TRIGGER else cache


def llm_client(platform: EvalPlatform, endpoint, prices):
    """A client for ``endpoint``, checked against this installation's allow-lists right before its calls
    (the operator may have changed them since the model or suite was registered)."""

    return LLMClient(endpoint, prices=prices, installation=platform.installation)


def llm_settings(platform: EvalPlatform, suite):

    llm = suite.llm or {}
    return llm, LLMCache.from_platform(platform), SuiteBudget.from_dict(llm.get("budget")), PriceTable.from_dict(llm.get("prices"))
