"""An eval run's judgments: a pinned LLM judge's verdicts on the run's outputs (every example or a stratified
sample), and pairwise preferences against the baseline's outputs; recorded with the run and turned into
judge metrics by the metric table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.records import json_safe
from eval_platform.core.states import BaselineState
from eval_platform.core.store import JUDGE_VERDICTS, PREDICTIONS
from eval_platform.evaluation.baselines import find_baseline
from eval_platform.evaluation.metric_table import evaluation_frame, metric_columns
from eval_platform.evaluation.predicting import LLMRunStopped, llm_client, llm_settings, produce_predictions
from eval_platform.evaluation.results import (
    JudgeReport,
    JudgmentReport,
    PairwiseReport,
    Record,
)
from eval_platform.llm.budget import SuiteBudget, label_efficiency, strata_from_metric, stratified_estimate
from eval_platform.llm.calls import raise_if_calls_failed
from eval_platform.llm.generate import judge_predictions
from eval_platform.llm.judge import JUDGED, JudgeConfig, JudgeResult, SamplingPlan
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun


def evaluation_columns(platform: EvalPlatform, run: EvalRun) -> tuple[pd.DataFrame, dict]:
    dataset = platform.dataset(run.dataset_key)
    predictions_hash = run.predictions_hash or produce_predictions(platform, run).predictions_hash
    frame = evaluation_frame(platform.load_dataset(dataset), platform.store.get_table(PREDICTIONS, predictions_hash),
                             dataset.schema, dataset.task_type)
    return frame, dataset.schema


# step 2a: judgments -------------------------------------------------------------------------------------
def needs_judge(suite) -> bool:
    return any("judge_score" in m.definition.required_columns for m in suite.metrics)


def pairwise_metrics(suite) -> list:
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
    if not needs_judge(suite) and not pairwise_metrics(suite):
        return JudgmentReport(run.run_id)
    frame, schema = evaluation_columns(platform, run)
    run = platform.run(run.run_id)  # the predictions may just have been produced
    judge = _judge_and_record(platform, run, suite, frame, schema) if needs_judge(suite) else None
    if not pairwise_metrics(suite):
        return JudgmentReport(run.run_id, judge=judge)
    state, pairwise = pairwise_if_baseline_known(platform, platform.run(run.run_id), suite, frame, schema)
    return JudgmentReport(run.run_id, judge=judge, pairwise=pairwise, pairwise_state=state)


def _record_result(platform: EvalPlatform, run_id: str, key: str, record: Record) -> None:
    """One more entry of the run's ``results``, beside those already recorded."""
    platform.update_run(run_id, results={**(platform.run(run_id).results or {}), key: record})


def _judge_and_record(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict) -> JudgeReport:
    record, _ = _run_judge(platform, run, suite, frame, schema)
    return record_judge_result(platform, run.run_id, record)


def record_judge_result(platform: EvalPlatform, run_id: str, record: Record) -> JudgeReport:
    """The judge's record kept as the run's ``results["judge"]``."""
    _record_result(platform, run_id, "judge", record)
    return JudgeReport.from_record(record)


def pairwise_if_baseline_known(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame,
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


def _run_judge(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
               record_lineage: bool = True) -> tuple[dict, pd.DataFrame]:
    """Ask the suite's pinned judge about every example, or about the stratified sample of
    ``llm.judge_sample`` (through the LLM call cache); the verdicts are kept as an artifact and the record
    holds the judge's summary (agreement, disagreements, errors, calls, tokens, cost) and the sampling."""

    result, plan = run_judge_calls(platform, run, suite, frame, schema, SuiteBudget.from_dict((suite.llm or {}).get("budget")))
    return record_judge(platform, run, suite, result, plan, record_lineage)


def run_judge_calls(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict, budget: SuiteBudget,
                    only: tuple[int, int] | None = None, fail_on_call_errors: bool = False) -> tuple[JudgeResult, SamplingPlan | None]:
    """The judge's calls on the run's examples (all, or the shard at row positions ``only``) within
    ``budget``; stops the run at the budget, or when every call failed. ``fail_on_call_errors``: any call
    that failed after its retries stops it too (a shard is kept only complete: the rerun asks again)."""
    llm, cache, _, prices = llm_settings(platform, suite)
    config = JudgeConfig.from_dict(llm["judge"])
    plan = _sampling_plan(suite, _judge_strata(suite, frame, schema, run.dataset_key))
    with llm_client(platform, config.endpoint, prices) as client:
        result = judge_predictions(frame, config, cache, budget, n=llm.get("judge_samples", 1), sample=plan, client=client,
                                   concurrency=llm.get("concurrency", 8), dataset=run.dataset_key,
                                   reference_column=schema["label_column"], only=only)
    if result.report.budget_exceeded:
        raise LLMRunStopped(result.report.budget_field or "budget", "budget_exceeded: the judge stopped at its budget")
    _raise_if_judge_calls_failed(result.report)
    if fail_on_call_errors and result.report.errors:
        raise LLMRunStopped("judge", f"{result.report.errors} judge call(s) failed after their retries: "
                                     f"{result.report.error_samples[:3]}")
    return result, plan


def record_judge(platform: EvalPlatform, run: EvalRun, suite, result: JudgeResult, plan: SamplingPlan | None,
                 record_lineage: bool = True) -> tuple[dict, pd.DataFrame]:
    """The judge's verdicts stored as an artifact, and its record (summary, calls, sampling) for the run."""
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


def judge_sampling_plan(suite, frame: pd.DataFrame, schema: dict, dataset_key: str) -> SamplingPlan | None:
    """The suite's stratified sample of the judged examples (None: every example)."""
    return _sampling_plan(suite, _judge_strata(suite, frame, schema, dataset_key))


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


def judgments_of(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
                  record_lineage: bool = True) -> tuple[dict, pd.DataFrame] | tuple[None, None]:
    """The run's judge record and verdicts: those of the judge step when they are for these predictions
    and this judge and still stored, else judged now (from the cache: a purged or skipped step costs only
    what is no longer cached)."""
    if not needs_judge(suite):
        return None, None

    record = (run.results or {}).get("judge")
    config_hash = JudgeConfig.from_dict(suite.llm["judge"]).config_hash
    if (record and record.get("predictions_hash") == run.predictions_hash
            and record.get("summary", {}).get("judge_config_hash") == config_hash
            and platform.store.has_table(JUDGE_VERDICTS, record["verdicts"])):
        return record, platform.store.get_table(JUDGE_VERDICTS, record["verdicts"])
    return _run_judge(platform, run, suite, frame, schema, record_lineage=record_lineage)


def attach_judge_columns(suite, frame: pd.DataFrame, schema: dict, verdicts: pd.DataFrame, dataset_key: str) -> None:
    """``judge_score`` per example (NaN unless judged without error); on a stratified sample also the
    stratum of every example and whether it was judged, which the judge metric's estimate needs."""

    by_example = verdicts.set_index("example_id")
    frame["judge_score"] = frame["example_id"].map(by_example["score"].where(by_example["status"] == JUDGED)).astype(np.float64)
    if (suite.llm or {}).get("judge_sample") is not None:
        labels = _judge_strata(suite, frame, schema, dataset_key)
        frame["judge_stratum"] = labels if labels is not None else "all"
        frame["judge_sampled"] = frame["example_id"].isin(by_example.index).to_numpy()


def sampled_judge_metrics(suite) -> list:
    if (suite.llm or {}).get("judge_sample") is None:
        return []
    # a metric with its own estimate (judge-human agreement) reads the unjudged examples as missing ratings
    return [m for m in suite.metrics if "judge_score" in m.definition.required_columns and m.definition.estimate is None]


def sampled_estimates(suite, frame: pd.DataFrame, table: pd.DataFrame, sampling: dict) -> tuple[pd.DataFrame, dict]:
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
    for metric in sampled_judge_metrics(suite):
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


    llm, cache, budget, prices = llm_settings(platform, suite)
    config = JudgeConfig.from_dict(llm["pairwise_judge"])
    ids = schema["id_columns"]
    base_frame, _ = evaluation_columns(platform, baseline)
    joined = frame.merge(base_frame[[*ids, "prediction"]].rename(columns={"prediction": "baseline_prediction"}), on=ids,
                         how="left", validate="one_to_one")
    with llm_client(platform, config.endpoint, prices) as client:
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


def pairwise_for(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict, baseline: EvalRun) -> dict:
    """The judge step's pairwise record when it judged against this very baseline run, else judged now."""

    record = (run.results or {}).get("judge_pairwise")
    config_hash = JudgeConfig.from_dict(suite.llm["pairwise_judge"]).config_hash
    if (record and record.get("baseline_run_id") == baseline.run_id and record.get("predictions_hash") == run.predictions_hash
            and record.get("judge", {}).get("judge_config_hash") == config_hash):
        return record
    # e.g. the baseline was re-evaluated by this comparison: the judge calls run here, outside pool "judge"
    return _run_pairwise(platform, run, suite, frame, schema, baseline)
