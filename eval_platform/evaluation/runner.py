"""The eval runner: the steps of one eval run, each a function of the registry and the store.

The Dagster assets call these in order (predictions, metric table, comparison, gate decision); each step
reads what the previous one recorded on the eval run, so any step can be rematerialized on its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

import eval_platform
from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.core.keys import VersionedKey
from eval_platform.core.records import json_safe
from eval_platform.core.states import BaselineState, DatasetStatus, GateScope, RunStatus, SuitePurpose, Verdict
from eval_platform.core.store import CURVES, JUDGE_VERDICTS, METRIC_TABLES, PLOTS, PREDICTIONS
from eval_platform.evaluation.metric_table import compute_metric_table, evaluation_frame, metric_columns
from eval_platform.evaluation.results import (
    Comparison,
    JudgeReport,
    JudgmentReport,
    MetricTableReport,
    PairwiseReport,
    PredictionReport,
    Record,
    metric_comparison,
)
from eval_platform.gates.blockers import Blocker, BlockerKind
from eval_platform.gates.rules import CORRECTNESS_METRICS, GATE_CODE_VERSION, OVERALL, GateDecision, Observation, combine, decide
from eval_platform.llm.budget import PriceTable, SuiteBudget, label_efficiency, strata_from_metric, stratified_estimate
from eval_platform.llm.cache import LLMCache
from eval_platform.llm.calls import raise_if_calls_failed
from eval_platform.llm.client import LLMClient
from eval_platform.llm.generate import generate_predictions, judge_predictions
from eval_platform.llm.judge import JUDGED, JudgeConfig, SamplingPlan
from eval_platform.metrics.curves import curves_png, pr_curve_table, roc_curve_table
from eval_platform.models.files import PREDICTION_CODE_VERSION, predict
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, Model, PredictionSet
from eval_platform.registry.schema import utcnow
from eval_platform.stats import bootstrap
from eval_platform.stats.comparison import mcnemar_exact, paired_bootstrap


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
    return {
        "dataset": {"id": dataset.dataset_id, "version": dataset.version, "content_hash": dataset.content_hash,
                    "label_policy": dataset.label_policy, "task_type": dataset.task_type, "rows": dataset.row_count},
        "model": {"name": model.name, "version": model.version, "kind": model.kind, "file_hash": model.file_hash, "uri": model.uri},
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
    predicted this dataset content (a rerun pays for no inference already done)."""
    dataset = platform.dataset(run.dataset_key)
    model = platform.model(run.model_key)
    if model.kind == "openai_chat":
        return _generate_with_llm(platform, run, dataset, model)
    key = prediction_cache_key(model.file_hash, dataset.content_hash)
    with platform.registry.session() as session:
        cached = session.get(PredictionSet, key)
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
        if session.get(PredictionSet, key) is None:
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

    spec = platform.load_model(model)
    llm = platform.suite_definition(platform.suite(run.suite_key)).llm or {}
    with _llm_client(platform, spec.endpoint, PriceTable.from_dict(llm.get("prices"))) as client:
        predictions, report = generate_predictions(
            spec, platform.load_dataset(dataset), LLMCache.from_platform(platform), SuiteBudget.from_dict(llm.get("budget")),
            client=client, concurrency=llm.get("concurrency", 8), dataset=run.dataset_key)
    digest = platform.store.put_table(PREDICTIONS, predictions)
    calls = report.to_dict()
    record = lineage(platform, run) | {"prompt_version": spec.prompt.key, "candidate": spec.record(), "candidate_calls": calls}
    platform.update_run(run.run_id, predictions_hash=digest, lineage=record)
    if report.budget_exceeded:
        raise LLMRunStopped(report.budget_field or "budget", f"budget_exceeded: the run stopped at its budget after "
                            f"{report.calls} call(s); {report.skipped} example(s) were not answered")
    if report.errors:

        raise_if_calls_failed(report)  # every call failed, or the endpoint's breaker opened: that is the cause
        raise LLMRunStopped("candidate", f"{report.errors} call(s) failed after their retries: {report.error_samples[:3]}")
    return PredictionReport(run.run_id, digest, cache_hit=report.calls == 0, rows=len(predictions), seconds=report.wall_seconds,
                            calls=report.calls, cache_hits=report.cache_hits,
                            tokens=report.prompt_tokens + report.completion_tokens, cost=report.cost)


def _columns_for(platform: EvalPlatform, run: EvalRun) -> tuple[pd.DataFrame, dict]:
    dataset = platform.dataset(run.dataset_key)
    predictions_hash = run.predictions_hash or produce_predictions(platform, run).predictions_hash
    frame = evaluation_frame(platform.load_dataset(dataset), platform.store.get_table(PREDICTIONS, predictions_hash),
                             dataset.schema, dataset.task_type)
    return frame, dataset.schema


# step 2a: judgments -------------------------------------------------------------------------------------
def _needs_judge(suite) -> bool:
    return any("judge_score" in m.definition.required_columns for m in suite.metrics)


def _pairwise_metrics(suite) -> list:
    return [m for m in suite.metrics if "judge_preference" in m.definition.required_columns]


def judge_outputs(platform: EvalPlatform, run: EvalRun) -> JudgmentReport:
    """The suite's judges on the run's predictions, before the metric table (the Dagster ``judgments``
    asset, in pool ``judge``, so judge calls are limited across runs).

    * ``llm.judge``: verdicts on every example (or on the stratified sample of ``llm.judge_sample``),
      recorded as ``results["judge"]`` (verdict artifact, summary, calls, sampling);
    * ``llm.pairwise_judge``: when the baseline's run is already known (``find_baseline`` says ``ok``), the
      candidate's answers against the baseline's, both orders, recorded as ``results["judge_pairwise"]``.
      Otherwise the comparison judges after resolving the baseline (a stale baseline re-evaluated), or
      the pairwise metric stays missing and the gate has no decision.

    Every call goes through the LLM call cache, so a rerun costs nothing. Returns what was done, per judge.
    """
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    if not _needs_judge(suite) and not _pairwise_metrics(suite):
        return JudgmentReport(run.run_id)
    frame, schema = _columns_for(platform, run)
    run = platform.run(run.run_id)  # the predictions may just have been produced
    judge = _judge_and_record(platform, run, suite, frame, schema) if _needs_judge(suite) else None
    if not _pairwise_metrics(suite):
        return JudgmentReport(run.run_id, judge=judge)
    state, pairwise = _pairwise_if_baseline_known(platform, platform.run(run.run_id), suite, frame, schema)
    return JudgmentReport(run.run_id, judge=judge, pairwise=pairwise, pairwise_state=state)


def _record_result(platform: EvalPlatform, run_id: str, key: str, record: Record) -> None:
    """One more entry of the run's ``results``, beside those already recorded."""
    platform.update_run(run_id, results={**(platform.run(run_id).results or {}), key: record})


def _judge_and_record(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict) -> JudgeReport:
    record, _ = _run_judge(platform, run, suite, frame, schema)
    _record_result(platform, run.run_id, "judge", record)
    return JudgeReport.from_record(record)


def _pairwise_if_baseline_known(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame,
                                schema: dict) -> tuple[BaselineState, PairwiseReport | None]:
    """The pairwise judge against the baseline's run when it is known (``ok``), else nothing yet."""
    state, baseline, _ = find_baseline(platform, run)
    if state != BaselineState.OK or baseline is None:
        return state, None
    record = _run_pairwise(platform, run, suite, frame, schema, baseline)
    _record_result(platform, run.run_id, "judge_pairwise", record)
    return state, PairwiseReport.from_record(record)


def _judge_strata(suite, frame: pd.DataFrame, schema: dict, dataset_key: str) -> np.ndarray | None:
    """The stratum of every example under ``llm.judge_sample.strata`` (None: one stratum)."""

    strata = ((suite.llm or {}).get("judge_sample") or {}).get("strata")
    if strata is None:
        return None
    if "column" in strata:
        if strata["column"] not in frame.columns:
            raise InvalidInput("llm.judge_sample.strata.column", f"{strata['column']!r} is not a column of dataset {dataset_key}")
        return frame[strata["column"]].astype(str).to_numpy(dtype=object)
    metric = suite.metric(strata["metric"])
    _, values = metric.definition.per_unit(metric_columns(frame, schema, "generation"), **metric.params)
    bins = strata["bins"]
    return strata_from_metric(values, bins if isinstance(bins, int) else tuple(bins))


def _sampling_plan(suite, labels: np.ndarray | None):

    config = (suite.llm or {}).get("judge_sample")
    if config is None:
        return None
    return SamplingPlan(size=config["size"], strata=None if labels is None else list(labels), seed=config["seed"],
                        min_per_stratum=config["min_per_stratum"], confidence=config["confidence"])


def _llm_client(platform: EvalPlatform, endpoint, prices):
    """A client for ``endpoint``, checked against this installation's allow-lists right before its calls
    (the operator may have changed them since the model or suite was registered)."""

    return LLMClient(endpoint, prices=prices, installation=platform.installation)


def _llm_settings(platform: EvalPlatform, suite):

    llm = suite.llm or {}
    return llm, LLMCache.from_platform(platform), SuiteBudget.from_dict(llm.get("budget")), PriceTable.from_dict(llm.get("prices"))


def _run_judge(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
               record_lineage: bool = True) -> tuple[dict, pd.DataFrame]:
    """Ask the suite's pinned judge about every example, or about the stratified sample of
    ``llm.judge_sample`` (through the LLM call cache); the verdicts are kept as an artifact and the record
    holds the judge's summary (agreement, disagreements, errors, calls, tokens, cost) and the sampling."""

    llm, cache, budget, prices = _llm_settings(platform, suite)
    config = JudgeConfig.from_dict(llm["judge"])
    plan = _sampling_plan(suite, _judge_strata(suite, frame, schema, run.dataset_key))
    with _llm_client(platform, config.endpoint, prices) as client:
        result = judge_predictions(frame, config, cache, budget, n=llm.get("judge_samples", 1), sample=plan, client=client,
                                   concurrency=llm.get("concurrency", 8), dataset=run.dataset_key,
                                   reference_column=schema["label_column"])
    if result.report.budget_exceeded:
        raise LLMRunStopped(result.report.budget_field or "budget", "budget_exceeded: the judge stopped at its budget")
    _raise_if_judge_calls_failed(result.report)
    verdicts = result.verdicts.astype({"score": np.float64})
    digest = platform.store.put_table(JUDGE_VERDICTS, verdicts)
    record = {"verdicts": digest, "predictions_hash": run.predictions_hash, **json_safe(result.to_dict())}
    if plan is not None:
        record["sampling"] = _sampling_record(suite, verdicts, record["summary"])
    if record_lineage:
        current = platform.run(run.run_id).lineage or {}
        platform.update_run(run.run_id, lineage={**current, "judge": record["summary"]["judge"],
                                                 "judge_config_hash": record["summary"]["judge_config_hash"]})
    return record, verdicts


def _raise_if_judge_calls_failed(report) -> None:
    """A judge whose every call failed (or whose endpoint's breaker opened) judged nothing: the run fails with
    that cause instead of succeeding with every verdict a judge error."""

    raise_if_calls_failed(report)


def _sampling_record(suite, verdicts: pd.DataFrame, summary: dict) -> dict:
    """What the suite sampled and what it bought: strata source, seed, sizes, the estimate and its interval
    (judge errors left out; the metric itself is undefined when there are any), and the label efficiency."""

    config = suite.llm["judge_sample"]
    population = summary["sample"]["population"]
    values = verdicts["score"].where(verdicts["status"] == JUDGED).to_numpy(dtype=np.float64)
    estimate = stratified_estimate(values, verdicts["stratum"].to_numpy(), population, config["confidence"])
    return json_safe({"strata": config["strata"], "seed": config["seed"], "size": config["size"],
                       "min_per_stratum": config["min_per_stratum"], "confidence": config["confidence"],
                       "n_sampled": int(len(verdicts)), "n_population": int(sum(population.values())),
                       "population": population, "sampled": summary["sample"]["sampled"],
                       "estimate": estimate.to_dict(), "label_efficiency": label_efficiency(estimate)})


def _judgments_of(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
                  record_lineage: bool = True) -> tuple[dict, pd.DataFrame] | tuple[None, None]:
    """The run's judge record and verdicts: those of the judge step when they are for these predictions
    and this judge and still stored, else judged now (from the cache: a purged or skipped step costs only
    what is no longer cached)."""
    if not _needs_judge(suite):
        return None, None

    record = (run.results or {}).get("judge")
    config_hash = JudgeConfig.from_dict(suite.llm["judge"]).config_hash
    if (record and record.get("predictions_hash") == run.predictions_hash
            and record.get("summary", {}).get("judge_config_hash") == config_hash
            and platform.store.has_table(JUDGE_VERDICTS, record["verdicts"])):
        return record, platform.store.get_table(JUDGE_VERDICTS, record["verdicts"])
    return _run_judge(platform, run, suite, frame, schema, record_lineage=record_lineage)


def _attach_judge_columns(suite, frame: pd.DataFrame, schema: dict, verdicts: pd.DataFrame, dataset_key: str) -> None:
    """``judge_score`` per example (NaN unless judged without error); on a stratified sample also the
    stratum of every example and whether it was judged, which the judge metric's estimate needs."""

    by_example = verdicts.set_index("example_id")
    frame["judge_score"] = frame["example_id"].map(by_example["score"].where(by_example["status"] == JUDGED)).astype(np.float64)
    if (suite.llm or {}).get("judge_sample") is not None:
        labels = _judge_strata(suite, frame, schema, dataset_key)
        frame["judge_stratum"] = labels if labels is not None else "all"
        frame["judge_sampled"] = frame["example_id"].isin(by_example.index).to_numpy()


def _sampled_judge_metrics(suite) -> list:
    if (suite.llm or {}).get("judge_sample") is None:
        return []
    return [m for m in suite.metrics if "judge_score" in m.definition.required_columns]


def _sampled_estimates(suite, frame: pd.DataFrame, table: pd.DataFrame, sampling: dict) -> tuple[pd.DataFrame, dict]:
    """For each judge metric on a stratified sample: the metric table's example counts become the judged
    counts (what the estimate rests on), and ``results["estimates"]`` holds the estimate with its interval
    overall and per slice (post-stratified within the slice), the sample size, strata, seed and efficiency."""

    confidence = sampling["confidence"]

    def estimate(part: pd.DataFrame) -> dict:
        population = part["judge_stratum"].astype(str).value_counts().to_dict()
        judged = part[part["judge_sampled"]]
        values = judged["judge_score"].to_numpy(dtype=np.float64)
        if np.isnan(values).any():  # a judge error leaves the metric undefined: so is its interval
            return {"ci_low": None, "ci_high": None, "n_sampled": int(len(judged)), "n_population": int(len(part))}
        result = stratified_estimate(values, judged["judge_stratum"].to_numpy(), population, confidence).to_dict()
        return json_safe({k: result[k] for k in ("mean", "standard_error", "ci_low", "ci_high", "n_sampled", "n_population")})

    table = table.copy()
    estimates: dict[str, Record] = {}
    for metric in _sampled_judge_metrics(suite):
        overall = estimate(frame)
        slices = {}
        for column in suite.slices:
            for value, part in frame.groupby(column, sort=True, dropna=False):
                slices[f"{column}={value}"] = estimate(part)
                rows = (table["metric"] == metric.name) & (table["slice_column"] == column) & (table["slice_value"] == str(value))
                table.loc[rows, "n_examples"] = int(part["judge_sampled"].sum())
        table.loc[(table["metric"] == metric.name) & (table["slice_column"] == ""), "n_examples"] = int(frame["judge_sampled"].sum())
        estimates[metric.name] = {**overall, "confidence": confidence, "strata": sampling["strata"], "seed": sampling["seed"],
                                  "size": sampling["size"], "label_efficiency": sampling["label_efficiency"]["label_efficiency"],
                                  "slices": slices}
    return table, estimates


def _run_pairwise(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict, baseline: EvalRun) -> dict:
    """The suite's pinned pairwise judge on the candidate's answer (A) against the baseline run's answer (B)
    to each example, each sample in both orders (position bias cancels in the mean).

    Per example the preference for the candidate is 1 (wins), 0 (loses) or 0.5 (tie), averaged over both
    orders and the samples. ``preference`` is its mean over the examples, with a normal interval
    ``mean +- z * sd / sqrt(n)``; it is undefined (None) when any example lacks a verdict in either order (a
    reply that does not parse is a recorded judge error, never a score) or fewer than 2 examples were judged.
    ``win_rate``/``loss_rate``/``tie_rate`` count examples by their overall winner; ``first_position_rate``
    is the share of decisive verdicts that chose whichever answer was shown first (0.5 = no position bias);
    ``order_disagreements`` lists the examples whose winner changed with the order."""
    from scipy.stats import norm


    llm, cache, budget, prices = _llm_settings(platform, suite)
    config = JudgeConfig.from_dict(llm["pairwise_judge"])
    ids = schema["id_columns"]
    base_frame, _ = _columns_for(platform, baseline)
    joined = frame.merge(base_frame[[*ids, "prediction"]].rename(columns={"prediction": "baseline_prediction"}), on=ids,
                         how="left", validate="one_to_one")
    with _llm_client(platform, config.endpoint, prices) as client:
        result = judge_predictions(joined, config, cache, budget, n=llm.get("pairwise_samples", 1), pairwise=True,
                                   client=client, concurrency=llm.get("concurrency", 8), dataset=run.dataset_key,
                                   reference_column=schema["label_column"])
    if result.report.budget_exceeded:
        raise LLMRunStopped(result.report.budget_field or "budget", "budget_exceeded: the pairwise judge stopped at its budget")
    _raise_if_judge_calls_failed(result.report)
    verdicts = result.verdicts
    digest = platform.store.put_table(JUDGE_VERDICTS, verdicts)
    complete = (verdicts["status"] == JUDGED) & (verdicts["n_errors"] == 0)
    preference = verdicts["preference_a"].where(complete).to_numpy(dtype=np.float64)
    n = len(preference)
    value = ci_low = ci_high = None
    if n and not np.isnan(preference).any():
        value = float(preference.mean())
        if n > 1:
            half = float(norm.ppf(0.5 + suite.confidence / 2)) * float(preference.std(ddof=1)) / np.sqrt(n)
            ci_low, ci_high = value - half, value + half
    summary = result.summary
    labels = verdicts.loc[verdicts["status"] == JUDGED, "label"]
    scored = max(len(labels), 1)
    errors = verdicts[verdicts["n_errors"] > 0]
    return json_safe({
        "baseline_run_id": baseline.run_id, "baseline_model": baseline.model_key, "predictions_hash": run.predictions_hash,
        "verdicts": digest, "preference": value, "ci_low": ci_low, "ci_high": ci_high, "confidence": suite.confidence,
        "n_examples": int(n), "n_scored": int(len(labels)),
        "wins": int((labels == "A").sum()), "losses": int((labels == "B").sum()), "ties": int((labels == "tie").sum()),
        "win_rate": float((labels == "A").sum() / scored), "loss_rate": float((labels == "B").sum() / scored),
        "tie_rate": float((labels == "tie").sum() / scored),
        "first_position_rate": summary.get("first_position_rate"),
        "order_disagreements": [e for e in verdicts.loc[~verdicts["position_consistent"] & (verdicts["status"] == JUDGED), "example_id"].tolist()],
        "n_judge_errors": int(len(errors)),
        "judge_errors": [{"example_id": e, "errors": json.loads(t)} for e, t in zip(errors["example_id"], errors["errors"], strict=True)][:100],
        "n_no_answer": int(summary.get("n_no_answer", 0)),
        "judge": {k: summary[k] for k in ("judge_model", "judge_prompt_version", "judge_config_hash")}, "samples": summary["n"],
        "report": result.report.to_dict(),
    })


def _pairwise_for(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict, baseline: EvalRun) -> dict:
    """The judge step's pairwise record when it judged against this very baseline run, else judged now."""

    record = (run.results or {}).get("judge_pairwise")
    config_hash = JudgeConfig.from_dict(suite.llm["pairwise_judge"]).config_hash
    if (record and record.get("baseline_run_id") == baseline.run_id and record.get("predictions_hash") == run.predictions_hash
            and record.get("judge", {}).get("judge_config_hash") == config_hash):
        return record
    # e.g. the baseline was re-evaluated by this comparison: the judge calls run here, outside pool "judge"
    return _run_pairwise(platform, run, suite, frame, schema, baseline)


# step 2: metric table -----------------------------------------------------------------------------------
def compute_metrics(platform: EvalPlatform, run: EvalRun) -> MetricTableReport:
    """Every metric of the run's suite, overall and per slice (judge metrics on the judge's verdicts, estimated
    when the judge sampled), stored as a content-addressed table and recorded as the run's ``results``."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    dataset = platform.dataset(run.dataset_key)
    frame, schema = _columns_for(platform, run)
    run = platform.run(run.run_id)
    judged, verdicts = _judgments_of(platform, run, suite, frame, schema)
    if judged is not None:
        _attach_judge_columns(suite, frame, schema, verdicts, run.dataset_key)
    table = compute_metric_table(suite, frame, schema, dataset.task_type)
    metric_table = table.table
    estimates: dict[str, Record] = {}
    if judged is not None and judged.get("sampling"):
        metric_table, estimates = _sampled_estimates(suite, frame, metric_table, judged["sampling"])
        table.table = metric_table
    digest = platform.store.put_table(METRIC_TABLES, metric_table)
    results = {"metrics": table.overall(), "n_examples": table.counts(),
               "slices": _slice_summary(metric_table), "artifacts": _curve_artifacts(platform, frame, schema, dataset.task_type)}
    if judged:
        results["judge"] = judged
    if estimates:
        results["estimates"] = estimates
    pairwise = (run.results or {}).get("judge_pairwise")
    if pairwise:
        results["judge_pairwise"] = pairwise
    platform.update_run(run.run_id, metrics_hash=digest, results=results, metric_seconds=table.seconds)
    return MetricTableReport(run.run_id, digest, table.seconds, metric_table, results)


def _curve_artifacts(platform: EvalPlatform, frame: pd.DataFrame, schema: dict, task_type: str) -> dict:
    """ROC and PR curves of a binary classifier, kept as tables and drawn as one PNG."""
    if task_type != "binary_classification":
        return {}
    columns = metric_columns(frame, schema, task_type)
    if len(np.unique(columns["label"])) < 2:
        return {}  # curves are undefined without both classes
    roc = roc_curve_table(columns["label"], columns["score"])
    pr = pr_curve_table(columns["label"], columns["score"])
    return {"roc_curve": platform.store.put_table(CURVES, roc), "pr_curve": platform.store.put_table(CURVES, pr),
            "curves_png": platform.store.put_blob(PLOTS, curves_png(roc=roc, pr=pr), ".png")}


def _slice_summary(table: pd.DataFrame) -> list[dict]:
    rows = table[table["slice_column"] != ""]
    return [{"metric": r.metric, "slice": f"{r.slice_column}={r.slice_value}", "value": r.value if pd.notna(r.value) else None,
             "n_examples": int(r.n_examples), "flagged": bool(r.flagged)} for r in rows.itertuples()]


# step 3: comparison with the baseline -------------------------------------------------------------------
def find_baseline(platform: EvalPlatform, run: EvalRun) -> tuple[BaselineState, EvalRun | None, str | None]:
    """``(state, baseline_run, baseline_model_key)``; state is ``ok``, ``none`` (no baseline model),
    ``missing`` (the baseline has no finished run on this dataset and suite) or ``stale`` (its run used
    another dataset, suite or metric version than the candidate's)."""
    if run.requested_baseline:
        baseline_key = run.requested_baseline
    else:
        promoted = platform.promoted_version(run.model_name)
        if promoted is None or promoted == run.model_version:
            return BaselineState.NONE, None, None
        baseline_key = f"{run.model_name}@{promoted}"
    name, version = VersionedKey.parse(baseline_key, "baseline")
    with platform.registry.session() as session:
        candidates = list(session.scalars(select(EvalRun).where(
            EvalRun.model_name == name, EvalRun.model_version == version, EvalRun.dataset_id == run.dataset_id,
            EvalRun.suite_id == run.suite_id, EvalRun.status == RunStatus.SUCCEEDED).order_by(EvalRun.finished_at.desc())))
    exact = [c for c in candidates if c.dataset_version == run.dataset_version and c.suite_version == run.suite_version]
    if exact:
        return BaselineState.OK, exact[0], baseline_key
    if candidates:
        return BaselineState.STALE, candidates[0], baseline_key
    return BaselineState.MISSING, None, baseline_key


def _reevaluate_baseline(platform: EvalPlatform, run: EvalRun, baseline_key: str) -> EvalRun:
    """Evaluate the baseline model on the candidate's dataset and suite versions, inside this run
    (its predictions come from the cache when the baseline already predicted this dataset content)."""
    baseline = platform.request_eval(baseline_key, run.dataset_key, run.suite_key, trigger="baseline_reevaluation")
    if baseline.status == RunStatus.QUEUED:
        platform.update_run(baseline.run_id, status=RunStatus.RUNNING, dagster_run_id=run.dagster_run_id, started_at=utcnow())
    if baseline.status != RunStatus.SUCCEEDED:
        produce_predictions(platform, baseline)
        compute_metrics(platform, baseline)
        platform.update_run(baseline.run_id, status=RunStatus.SUCCEEDED, finished_at=utcnow())
    return platform.run(baseline.run_id)


def _slice_values(platform: EvalPlatform, run: EvalRun) -> dict[tuple[str, str, str], tuple[float, int]]:
    table = platform.store.get_table(METRIC_TABLES, run.metrics_hash or "")  # a compared run has its metric table
    return {(r.metric, r.slice_column, r.slice_value): (float(r.value), int(r.n_examples)) for r in table.itertuples()}


def compare_with_baseline(platform: EvalPlatform, run: EvalRun) -> Comparison:
    """Candidate minus baseline for every metric (paired bootstrap), per slice, and the examples that
    regressed for the suite's regression-suite rules."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    comparison = _resolve_baseline(platform, run, suite)
    if comparison.baseline_state == BaselineState.OK and comparison.baseline_run_id is not None:
        comparison = _compare_runs(platform, run, platform.run(comparison.baseline_run_id), suite, comparison)
    platform.update_run(run.run_id, comparison=comparison.to_record(), baseline_run_id=comparison.baseline_run_id)
    return comparison


def _resolve_baseline(platform: EvalPlatform, run: EvalRun, suite) -> Comparison:
    """The comparison before any number: which baseline run, in what state; a stale baseline is re-evaluated
    on the candidate's dataset and suite versions when the suite asks for it."""
    state, baseline, baseline_key = find_baseline(platform, run)
    if state != BaselineState.STALE or baseline is None or baseline_key is None:
        return Comparison(run.run_id, baseline_key, state, baseline.run_id if baseline is not None else None)
    if suite.stale_baseline != "reevaluate":
        return Comparison(run.run_id, baseline_key, state, baseline.run_id, stale_baseline_run_id=baseline.run_id)
    reevaluated = _reevaluate_baseline(platform, run, baseline_key)
    return Comparison(run.run_id, baseline_key, BaselineState.OK, reevaluated.run_id, stale_baseline_run_id=baseline.run_id,
                      baseline_reevaluated=True)


def _compare_runs(platform: EvalPlatform, run: EvalRun, baseline: EvalRun, suite, comparison: Comparison) -> Comparison:
    """The numbers of a comparison whose baseline run is known: metric deltas, pairwise preferences, slice
    deltas and regressed examples, each on the candidate's examples."""
    dataset = platform.dataset(run.dataset_key)
    cand_frame, schema = _columns_for(platform, run)
    base_frame, _ = _columns_for(platform, baseline)
    baseline = platform.run(baseline.run_id)  # its predictions may just have been reproduced
    ids = schema["id_columns"]
    if _needs_judge(suite):  # judge scores of both runs, for the judge metrics' paired comparison
        _attach_judge_scores(platform, run, suite, cand_frame, schema)
        _attach_judge_scores(platform, baseline, suite, base_frame, schema, record_lineage=False)
    base_frame = cand_frame[ids].merge(base_frame, on=ids, how="left", validate="one_to_one")
    cand = metric_columns(cand_frame, schema, dataset.task_type)
    base = metric_columns(base_frame, schema, dataset.task_type)
    metrics = _metric_deltas(run, baseline, suite, dataset.task_type, cand, base)
    pairwise = None
    if _pairwise_metrics(suite):
        record = _pairwise_for(platform, run, suite, cand_frame, schema, baseline)
        pairwise = {metric.name: record for metric in _pairwise_metrics(suite)}
        metrics.update({name: _preference_comparison(record) for name in pairwise})
    return replace(comparison, metrics=metrics, pairwise=pairwise,
                   slices=_compare_slices(platform, suite, run, baseline, cand_frame, base_frame, schema, dataset.task_type),
                   regressions=_regressions(suite, cand_frame, ids, cand, base))


def _attach_judge_scores(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
                         record_lineage: bool = True) -> None:
    _, verdicts = _judgments_of(platform, run, suite, frame, schema, record_lineage=record_lineage)
    if verdicts is not None:
        _attach_judge_columns(suite, frame, schema, verdicts, run.dataset_key)


def _correct(columns: dict, threshold: float) -> np.ndarray:
    """Per example: the classifier's decision at ``threshold`` is the label."""
    return (columns["score"] >= threshold) == (columns["label"] == 1)


def _metric_deltas(run: EvalRun, baseline: EvalRun, suite, task_type: str, cand: dict, base: dict) -> dict[str, Record]:
    """Candidate minus baseline of every metric but the pairwise ones: a paired bootstrap (one pass for every
    binary metric), the difference of the estimates for a sampled judge metric, McNemar's test for accuracy."""
    fast: dict[str, Record] = {}
    if task_type == "binary_classification":
        # one sort per model and weighted running sums: every binary metric of the suite at once
        supported = [(m.name, m.definition.key, m.params) for m in suite.metrics if bootstrap.supports(m.definition.key)]
        fast = bootstrap.paired_bootstrap_binary(supported, cand["label"], cand["score"], base["score"],
                                                 suite.bootstrap_resamples, suite.confidence, suite.seed)
    sampled = {m.name for m in _sampled_judge_metrics(suite)}
    deltas: dict[str, Record] = {}
    for metric in suite.metrics:
        if metric.definition.comparison_only:
            continue  # the pairwise judge's preference: compared by _compare_runs
        if metric.name in sampled:
            deltas[metric.name] = _estimate_difference(run, baseline, metric.name, suite.confidence)
            continue
        deltas[metric.name] = fast.get(metric.name) or paired_bootstrap(
            metric.definition, metric.params, cand, base, suite.bootstrap_resamples, suite.confidence, suite.seed)
        if metric.definition.name in CORRECTNESS_METRICS and task_type == "binary_classification":
            threshold = metric.params.get("threshold", 0.5)
            deltas[metric.name]["mcnemar"] = mcnemar_exact(_correct(cand, threshold), _correct(base, threshold))
    return deltas


def _regressions(suite, cand_frame: pd.DataFrame, ids: list[str], cand: dict, base: dict) -> dict[str, list[str]]:
    """Per ``max_regressions`` rule: the examples the baseline got right and the candidate got wrong."""
    regressions = {}
    for rule in suite.rules:
        if rule.kind == "max_regressions":
            threshold = suite.metric(rule.metric).params.get("threshold", 0.5)
            regressed = cand_frame.loc[_correct(base, threshold) & ~_correct(cand, threshold), ids]
            regressions[rule.metric] = [
                row[0] if len(ids) == 1 else "/".join(map(str, row)) for row in regressed.itertuples(index=False)]
    return regressions


def _estimate_difference(run: EvalRun, baseline: EvalRun, name: str, confidence: float) -> Record:
    """Candidate minus baseline of a judge metric estimated on stratified samples: ``delta = m_c - m_b``
    with ``se = sqrt(se_c^2 + se_b^2)`` (the two samples taken as independent, which is conservative when
    they share examples) and the normal interval ``delta +- z * se``. Undefined (None) parts when either
    estimate or its interval is."""
    from scipy.stats import norm

    cand = ((run.results or {}).get("estimates") or {}).get(name) or {}
    base = ((baseline.results or {}).get("estimates") or {}).get(name) or {}
    entry: Record = {"candidate": cand.get("mean"), "baseline": base.get("mean"), "delta": None, "ci_low": None, "ci_high": None,
             "confidence": confidence, "method": "difference of stratified estimates", "unit": "example",
             "n_units": cand.get("n_sampled")}
    cand_mean, base_mean, cand_se, base_se = cand.get("mean"), base.get("mean"), cand.get("standard_error"), base.get("standard_error")
    if cand_mean is None or base_mean is None or cand_se is None or base_se is None:
        return entry
    delta = cand_mean - base_mean
    half = float(norm.ppf(0.5 + confidence / 2)) * float(np.hypot(cand_se, base_se))
    entry.update(delta=delta, ci_low=delta - half, ci_high=delta + half)
    return entry


def _preference_comparison(record: dict) -> dict:
    """The pairwise preference as a comparison: the baseline against itself is 0.5 by symmetry, so
    ``delta = preference - 0.5`` and its interval is the preference's shifted by 0.5."""
    value, low, high = record.get("preference"), record.get("ci_low"), record.get("ci_high")
    shift = (lambda v: None if v is None else v - 0.5)
    return {"candidate": value, "baseline": 0.5, "delta": shift(value), "ci_low": shift(low), "ci_high": shift(high),
            "confidence": record.get("confidence"), "method": "pairwise judge, both orders", "unit": "example",
            "n_units": record.get("n_examples")}


def _compare_slices(platform: EvalPlatform, suite, run: EvalRun, baseline: EvalRun, cand_frame: pd.DataFrame,
                    base_frame: pd.DataFrame, schema: dict, task_type: str) -> dict[str, dict[str, Record]]:
    """Per-slice deltas for the metrics the suite's guardrails check on slices; bootstrap intervals
    where a non-inferiority guardrail needs them (resampling inside each slice)."""
    slices: dict[str, dict[str, Record]] = {}
    guarded = {(r.metric, r.slice) for r in suite.rules if r.slice}
    if not guarded:
        return slices
    cand_values, base_values = _slice_values(platform, run), _slice_values(platform, baseline)
    needs_interval = {(r.metric, r.slice) for r in suite.rules if r.slice and r.kind == "non_inferiority"}
    for key, (value, _) in sorted(cand_values.items()):
        name, column, slice_value = key
        if (name, column) not in guarded:
            continue
        base_value = base_values.get(key, (float("nan"), 0))[0]
        entry = {"candidate": value, "baseline": base_value, "delta": value - base_value,
                 "ci_low": float("nan"), "ci_high": float("nan")}
        if (name, column) in needs_interval:
            mask = (cand_frame[column].astype(str) == slice_value).to_numpy()
            metric = suite.metric(name)
            cand = metric_columns(cand_frame[mask], schema, task_type)
            base = metric_columns(base_frame[mask], schema, task_type)
            entry = paired_bootstrap(metric.definition, metric.params, cand, base, suite.bootstrap_resamples,
                                     suite.confidence, suite.seed)
        slices.setdefault(name, {})[f"{column}={slice_value}"] = entry
    return slices


def stale_baseline_count(platform: EvalPlatform) -> int:
    """Comparisons that found a stale baseline (re-evaluated or not): the brief's stale-baseline count
    (an indexed count of the column the comparison's ``stale_baseline_run_id`` is mirrored into)."""
    with platform.registry.session() as session:
        return session.scalar(select(func.count()).where(EvalRun.stale_baseline_run_id.is_not(None))) or 0


# step 4: gate decision ----------------------------------------------------------------------------------
def _observations(run: EvalRun) -> dict[tuple[str, str, str], Observation]:
    results, comparison = run.results or {}, run.comparison or {}

    def as_comparison(c):
        return metric_comparison(c) if c else None

    def number(value):
        return float("nan") if value is None else value

    def interval(entry):  # an estimate's interval; None where the value is not an estimate
        return None if entry is None else (number(entry.get("ci_low")), number(entry.get("ci_high")))

    estimates = results.get("estimates") or {}
    observations = {}
    for name, value in (results.get("metrics") or {}).items():
        regressions = (comparison.get("regressions") or {}).get(name)
        observations[(name, *OVERALL)] = Observation(
            number(value), (results.get("n_examples") or {}).get(name), as_comparison((comparison.get("metrics") or {}).get(name)),
            tuple(regressions) if regressions is not None else None, interval(estimates.get(name)))
    for name, record in (comparison.get("pairwise") or {}).items():
        observations[(name, *OVERALL)] = Observation(number(record.get("preference")), record.get("n_examples"),
                                                     as_comparison(comparison["metrics"].get(name)), None, interval(record))
    for entry in results.get("slices") or []:
        column, _, value = entry["slice"].partition("=")
        slice_comparison = (comparison.get("slices") or {}).get(entry["metric"], {}).get(entry["slice"])
        slice_interval = None
        if entry["metric"] in estimates:  # a sampled judge metric: no interval for the slice is an undefined one
            found = estimates[entry["metric"]].get("slices", {}).get(entry["slice"])
            slice_interval = interval(found) if found else (float("nan"), float("nan"))
        observations[(entry["metric"], column, value)] = Observation(number(entry["value"]), entry["n_examples"],
                                                                     as_comparison(slice_comparison), None, slice_interval)
    return observations


def gate_blockers(platform: EvalPlatform, run: EvalRun) -> list[Blocker]:
    """Why a run cannot be decided at all: invalid inputs, a failed run, a frozen metric, an unpinned judge."""

    definition = platform.suite_definition(platform.suite(run.suite_key))
    dataset = platform.dataset(run.dataset_key)
    blockers = []
    if dataset.status != DatasetStatus.ACTIVE:
        blockers.append(Blocker(BlockerKind.INVALID_DATASET,
                                f"dataset {dataset.key} is {dataset.status}: {dataset.status_reason or 'no reason given'}"))
    if run.status not in (RunStatus.RUNNING, RunStatus.SUCCEEDED):
        blockers.append(Blocker(BlockerKind.FAILED_RUN, f"eval run {run.run_id} is {run.status}: {run.status_reason or ''}".rstrip(": ")))
    if not (run.results or {}).get("metrics"):
        blockers.append(Blocker(BlockerKind.NO_METRICS, "the run has no metric results"))
    for key, incident in sorted(platform.buggy_metrics().items()):
        if any(m.definition.key == key for m in definition.metrics):
            blockers.append(Blocker(BlockerKind.FROZEN_METRIC,
                                    f"frozen: metric {key} is marked buggy ({incident.reason}); recompute with the fixed version"))
    for metric in definition.metrics:
        if metric.definition.requires_judge and not (metric.params.get("judge_model") and metric.params.get("judge_prompt_version")):
            blockers.append(Blocker(BlockerKind.UNPINNED_JUDGE,
                                    f"judge of {metric.name} is not pinned (judge_model and judge_prompt_version are required)"))
    return blockers


def decide_run(platform: EvalPlatform, run: EvalRun) -> GateDecision:
    """The gate of one run: its suite's rules on what it measured and how it compares, unless a blocker stops it."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    comparison = Comparison.from_record(run.run_id, run.comparison or {})
    blockers = [blocker.message for blocker in gate_blockers(platform, run)]
    decision = decide(suite.rules, {m.name: m.definition for m in suite.metrics}, _observations(run),
                      comparison.baseline_state, suite.require_baseline, blockers)
    platform.record_gate(GateScope.RUN, run.model_key, decision.decision, decision.reasons, eval_run_id=run.run_id)
    return decision


def finish_runs(platform: EvalPlatform, model_key: str, runs: list[EvalRun]) -> GateDecision:
    """Mark the runs finished, then decide each run's gate and the model version's gate."""
    for run in runs:
        if platform.run(run.run_id).status == RunStatus.RUNNING:
            platform.update_run(run.run_id, status=RunStatus.SUCCEEDED, finished_at=utcnow())
    return decide_model_version(platform, model_key)


def decide_model_version(platform: EvalPlatform, model_key: str) -> GateDecision:
    """Pass only when every current release-blocking run of the model version passed."""
    decisions = []
    for run in platform.runs(model_key):
        if run.status == RunStatus.SUPERSEDED or platform.suite(run.suite_key).purpose != SuitePurpose.RELEASE_BLOCKING:
            continue
        if run.status in (RunStatus.SUCCEEDED, RunStatus.RUNNING):
            decision = decide_run(platform, run)
        else:
            decision = GateDecision(Verdict.NO_DECISION, [{"rule": "precondition", "outcome": Verdict.NO_DECISION,
                                                           "message": f"eval run {run.run_id} is {run.status}: {run.status_reason or ''}"}])
        decisions.append((f"{run.run_id} ({run.dataset_key}, {run.suite_key})", decision))
    combined = combine(decisions)
    platform.record_gate(GateScope.MODEL_VERSION, model_key, combined.decision, combined.reasons)
    return combined
