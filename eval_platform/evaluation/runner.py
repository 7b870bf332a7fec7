"""The eval runner: the steps of one eval run, each a function of the registry and the store.

The Dagster assets call these in order (predictions, metric table, comparison, gate decision); each step
reads what the previous one recorded on the eval run, so any step can be rematerialized on its own.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from eval_platform.core.states import CANARY_TRIGGER, BaselineState, DatasetStatus, GateScope, RunStatus, SuitePurpose, Verdict
from eval_platform.core.store import CURVES, METRIC_TABLES, PLOTS
from eval_platform.evaluation.baselines import find_baseline
from eval_platform.evaluation.judge_license import license_blocker
from eval_platform.evaluation.judging import (
    attach_judge_columns,
    evaluation_columns,
    judgments_of,
    needs_judge,
    pairwise_for,
    pairwise_metrics,
    sampled_estimates,
    sampled_judge_metrics,
)
from eval_platform.evaluation.metric_table import compute_metric_table, metric_columns, metric_estimates
from eval_platform.evaluation.predicting import produce_predictions
from eval_platform.evaluation.results import (
    Comparison,
    MetricTableReport,
    Record,
    metric_comparison,
)
from eval_platform.evaluation.review_queue import enqueue_from_run
from eval_platform.gates.blockers import Blocker, BlockerKind
from eval_platform.gates.rules import (
    CORRECTNESS_METRICS,
    DATASET_DRIFT,
    DRIFT_MEASURES,
    OVERALL,
    PREDICTION_DRIFT,
    DriftObservation,
    DriftRule,
    GateDecision,
    Observation,
    StatisticsSettings,
    combine,
    decide,
)
from eval_platform.metrics.curves import curves_png, pr_curve_table, roc_curve_table
from eval_platform.metrics.perplexity import perplexity_reports
from eval_platform.platform.dataset_drift import drift_from_previous
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun
from eval_platform.registry.schema import utcnow
from eval_platform.stats import bootstrap, power
from eval_platform.stats.comparison import mcnemar_exact, paired_bootstrap, point_delta, prediction_drift


# step 2: metric table -----------------------------------------------------------------------------------
def compute_metrics(platform: EvalPlatform, run: EvalRun) -> MetricTableReport:
    """Every metric of the run's suite, overall and per slice (judge metrics on the judge's verdicts, estimated
    when the judge sampled), stored as a content-addressed table and recorded as the run's ``results``."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    dataset = platform.dataset(run.dataset_key)
    frame, schema = evaluation_columns(platform, run)
    run = platform.run(run.run_id)
    judged, verdicts = judgments_of(platform, run, suite, frame, schema)
    if judged is not None:
        attach_judge_columns(suite, frame, schema, verdicts, run.dataset_key)
    table = compute_metric_table(suite, frame, schema, dataset.task_type)
    metric_table = table.table
    estimates: dict[str, Record] = {}
    if judged is not None and judged.get("sampling"):
        metric_table, estimates = sampled_estimates(suite, frame, metric_table, judged["sampling"])
        table.table = metric_table
    estimates.update(metric_estimates(suite, frame, schema, dataset.task_type))
    digest = platform.store.put_table(METRIC_TABLES, metric_table)
    results = {"metrics": table.overall(), "n_examples": table.counts(),
               "slices": _slice_summary(metric_table), "artifacts": _curve_artifacts(platform, frame, schema, dataset.task_type)}
    if infinite := table.infinities():
        results["infinite_metrics"] = infinite  # only when some: a run without them stores what it stored before
    if judged:
        results["judge"] = judged
    if estimates:
        results["estimates"] = estimates
    pairwise = (run.results or {}).get("judge_pairwise")
    if pairwise:
        results["judge_pairwise"] = pairwise
    if dataset.task_type == "generation" and (perplexity := perplexity_reports(suite.metrics, metric_columns(frame, schema, "generation"))):
        results["perplexity"] = perplexity  # tokens scored and examples excluded (no scored token) per perplexity metric
    leakage = _leakage(platform, run)
    if leakage is not None:
        results["leakage"] = leakage
    platform.update_run(run.run_id, metrics_hash=digest, results=results, metric_seconds=table.seconds)
    if judged is not None:  # examples the judge and its samples or the reference metric disagree on, and an audit sample
        enqueue_from_run(platform, run, suite, frame, schema, verdicts)
    return MetricTableReport(run.run_id, digest, table.seconds, metric_table, results)


def _leakage(platform: EvalPlatform, run: EvalRun) -> dict | None:
    """The leakage counts of the run's model version on its dataset version, kept with the results (lineage:
    the gate reads them from there); None when the model declares neither a cutoff nor a manifest."""
    model = platform.model(run.model_key)
    if model.training_cutoff is None and not model.training_manifest_hash:
        return None
    return platform.leakage_of(model, platform.dataset(run.dataset_key)).to_record()


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
    cand_frame, schema = evaluation_columns(platform, run)
    base_frame, _ = evaluation_columns(platform, baseline)
    baseline = platform.run(baseline.run_id)  # its predictions may just have been reproduced
    ids = schema["id_columns"]
    if needs_judge(suite):  # judge scores of both runs, for the judge metrics' paired comparison
        _attach_judge_scores(platform, run, suite, cand_frame, schema)
        _attach_judge_scores(platform, baseline, suite, base_frame, schema, record_lineage=False)
    base_frame = cand_frame[ids].merge(base_frame, on=ids, how="left", validate="one_to_one")
    cand = metric_columns(cand_frame, schema, dataset.task_type)
    base = metric_columns(base_frame, schema, dataset.task_type)
    metrics = _metric_deltas(run, baseline, suite, dataset.task_type, cand, base)
    pairwise = None
    if pairwise_metrics(suite):
        record = pairwise_for(platform, run, suite, cand_frame, schema, baseline)
        pairwise = {metric.name: record for metric in pairwise_metrics(suite)}
        metrics.update({name: _preference_comparison(record) for name in pairwise})
    return replace(comparison, metrics=metrics, pairwise=pairwise,
                   slices=_compare_slices(platform, suite, run, baseline, cand_frame, base_frame, schema, dataset.task_type),
                   regressions=_regressions(suite, cand_frame, ids, cand, base),
                   prediction_drift=_prediction_drift(suite, cand_frame, base_frame, dataset.task_type))


def _drift_rules(suite) -> set[str]:
    return {rule.kind for rule in suite.rules if isinstance(rule, DriftRule)}


def _prediction_drift(suite, cand_frame: pd.DataFrame, base_frame: pd.DataFrame, task_type: str) -> Record | None:
    """The candidate's scores (or classes) against the baseline's on the same examples, row for row; only for
    a suite with a ``prediction_drift`` rule, so the stored comparison of any other suite is unchanged."""
    if PREDICTION_DRIFT not in _drift_rules(suite):
        return None
    if "score" in cand_frame.columns and "score" in base_frame.columns:
        return prediction_drift(cand_frame["score"].to_numpy(np.float64), base_frame["score"].to_numpy(np.float64))
    if task_type == "multiclass_classification":
        return prediction_drift(cand_frame["prediction"].to_numpy(dtype=object), base_frame["prediction"].to_numpy(dtype=object),
                                categorical=True, column="prediction")
    return {"column": None, "note": f"no prediction score to compare for task type {task_type}"}


def _attach_judge_scores(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
                         record_lineage: bool = True) -> None:
    _, verdicts = judgments_of(platform, run, suite, frame, schema, record_lineage=record_lineage)
    if verdicts is not None:
        attach_judge_columns(suite, frame, schema, verdicts, run.dataset_key)


def _correct(columns: dict, threshold: float) -> np.ndarray:
    """Per example: the classifier's decision at ``threshold`` is the label."""
    return (columns["score"] >= threshold) == (columns["label"] == 1)


def _metric_deltas(run: EvalRun, baseline: EvalRun, suite, task_type: str, cand: dict, base: dict) -> dict[str, Record]:
    """Candidate minus baseline of every metric but the pairwise ones: a paired bootstrap (one pass for every
    binary metric), the difference of the estimates for a sampled judge metric, McNemar's test for accuracy."""
    fast: dict[str, Record] = {}
    if task_type == "binary_classification":
        # one sort per model and weighted running sums: every binary metric of the suite at once
        supported = [(m.name, m.definition.key, m.params) for m in suite.metrics
                     if m.bootstrap and bootstrap.supports(m.definition.key)]
        fast = bootstrap.paired_bootstrap_binary(supported, cand["label"], cand["score"], base["score"],
                                                 suite.bootstrap_resamples, suite.confidence, suite.seed)
    sampled = {m.name for m in sampled_judge_metrics(suite)}
    deltas: dict[str, Record] = {}
    for metric in suite.metrics:
        if metric.definition.comparison_only:
            continue  # the pairwise judge's preference: compared by _compare_runs
        if metric.name in sampled:
            deltas[metric.name] = _estimate_difference(run, baseline, metric.name, suite.confidence)
            continue
        if not metric.bootstrap:
            deltas[metric.name] = point_delta(metric.definition, metric.params, cand, base)
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
    """Why a run cannot be decided at all: invalid inputs, a failed run, a frozen metric, an unpinned judge, a
    judge without a license (release-blocking suites only), examples the model may have trained on
    (release-blocking suites only)."""

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
    unlicensed = license_blocker(platform, platform.suite(run.suite_key))
    if unlicensed is not None:
        blockers.append(unlicensed)
    leakage = (run.results or {}).get("leakage") or {}
    # an exploratory suite only reports the counts (in the run's results); a release decision cannot rest on them
    if leakage.get("leaked") and platform.suite(run.suite_key).purpose == SuitePurpose.RELEASE_BLOCKING:
        blockers.append(Blocker(BlockerKind.TRAINING_LEAKAGE, f"training leakage: {leakage.get('message')}"))
    return blockers


def _drift_observations(platform: EvalPlatform, run: EvalRun, suite, comparison: Comparison) -> dict[str, DriftObservation]:
    """What the suite's drift rules decide on (nothing is measured for a suite without one): the run's dataset
    version against its previous active version, the candidate's predictions against the baseline's."""
    kinds = _drift_rules(suite)
    observations = {}
    if DATASET_DRIFT in kinds:
        report = drift_from_previous(platform, platform.dataset(run.dataset_key))
        observations[DATASET_DRIFT] = DriftObservation(report.previous_key, {
            measure: (float(getattr(worst, measure)), worst.where) for measure in DRIFT_MEASURES
            if (worst := report.worst_beyond_noise(measure)) is not None}, report.measured())
    if PREDICTION_DRIFT in kinds and comparison.prediction_drift is not None:
        record = comparison.prediction_drift
        observations[PREDICTION_DRIFT] = DriftObservation(comparison.baseline_run_id, {
            measure: (float(record[measure]), f"predictions ({record['column']})") for measure in DRIFT_MEASURES
            if record.get(measure) is not None}, frozenset(m for m in DRIFT_MEASURES if record.get(m) is not None))
    return observations


def decide_run(platform: EvalPlatform, run: EvalRun) -> GateDecision:
    """The gate of one run: its suite's rules on what it measured and how it compares, unless a blocker stops it."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    comparison = Comparison.from_record(run.run_id, run.comparison or {})
    blockers = [blocker.message for blocker in gate_blockers(platform, run)]
    decision = decide(suite.rules, {m.name: m.definition for m in suite.metrics}, _observations(run),
                      comparison.baseline_state, suite.require_baseline, blockers, _drift_observations(platform, run, suite, comparison),
                      StatisticsSettings(suite.confidence, suite.target_power, suite.multiple_comparisons, power,
                                         suite.require_power))
    platform.record_gate(GateScope.RUN, run.model_key, decision.decision, decision.reasons, eval_run_id=run.run_id)
    return decision


def finish_runs(platform: EvalPlatform, model_key: str, runs: list[EvalRun]) -> GateDecision:
    """Mark the runs finished, then decide each run's gate and the model version's gate."""
    for run in runs:
        if platform.run(run.run_id).status == RunStatus.RUNNING:
            platform.update_run(run.run_id, status=RunStatus.SUCCEEDED, finished_at=utcnow())
    return decide_model_version(platform, model_key)


def decide_model_version(platform: EvalPlatform, model_key: str) -> GateDecision:
    """Pass only when every current release-blocking run of the model version passed (canary runs are not
    the version's evaluation: they never enter its gate)."""
    decisions = []
    for run in platform.runs(model_key):
        if run.status == RunStatus.SUPERSEDED or run.trigger == CANARY_TRIGGER \
                or platform.suite(run.suite_key).purpose != SuitePurpose.RELEASE_BLOCKING:
            continue  # a canary run watches a released version for drift: the canary check says it, never the gate
        if run.status in (RunStatus.SUCCEEDED, RunStatus.RUNNING):
            decision = decide_run(platform, run)
        else:
            decision = GateDecision(Verdict.NO_DECISION, [{"rule": "precondition", "outcome": Verdict.NO_DECISION,
                                                           "message": f"eval run {run.run_id} is {run.status}: {run.status_reason or ''}"}])
        decisions.append((f"{run.run_id} ({run.dataset_key}, {run.suite_key})", decision))
    combined = combine(decisions)
    platform.record_gate(GateScope.MODEL_VERSION, model_key, combined.decision, combined.reasons)
    return combined
