"""``GET /v1/eval-runs/{runId}/comparison``'s payload: the comparison recorded with the run, or one computed now
against another baseline on the same dataset and suite versions (paired bootstrap; small datasets only)."""

from __future__ import annotations

from pydantic.alias_generators import to_camel
from sqlalchemy import select

from eval_platform.api.field_names import record_named_by
from eval_platform.core.errors import Conflict
from eval_platform.core.states import CANARY_TRIGGER, RunStatus
from eval_platform.core.store import METRIC_TABLES
from eval_platform.core.store import PREDICTIONS as PREDICTIONS_KIND
from eval_platform.evaluation.metric_table import evaluation_frame, metric_columns
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun
from eval_platform.stats.comparison import paired_bootstrap

#: Above this many rows a comparison against an arbitrary baseline is not computed inside a request.
ADHOC_COMPARISON_MAX_ROWS = 100_000


def comparison_payload(platform: EvalPlatform, run: EvalRun, dataset: EvalDataset, baseline: str | None) -> dict:
    """The run's comparison with ``baseline`` (a run id or NAME@VERSION; None: the recorded baseline), every
    slice and every regression included: the route withholds what the caller may not see."""
    recorded = run.comparison or {}
    baseline_run = None
    if baseline is not None:
        baseline_run = _baseline_run(platform, run, baseline)
        if baseline_run.run_id == recorded.get("baseline_run_id"):
            baseline_run = None  # the recorded comparison is against this very run
    if baseline_run is None:
        payload, intervals, base = _recorded_comparison(platform, run)
    else:
        payload, intervals, base = _computed_comparison(platform, run, dataset, baseline_run), {}, baseline_run
    slices: dict[str, dict[str, dict]] = {}
    if base is not None:
        cand_values, base_values = _metric_table_values(platform, run), _metric_table_values(platform, base)
        for (metric, slice_name), value in sorted(cand_values.items()):
            base_value = base_values.get((metric, slice_name), float("nan"))
            slices.setdefault(metric, {})[slice_name] = {"candidate": value, "baseline": base_value, "delta": value - base_value,
                                                         "ciLow": None, "ciHigh": None}
    for metric, by_slice in intervals.items():
        for slice_name, entry in by_slice.items():
            slices.setdefault(metric, {})[slice_name] = _camel_entry(entry)
    payload["slices"] = slices
    payload["redacted"] = False
    return payload


def _metric_table_values(platform: EvalPlatform, run: EvalRun) -> dict[tuple[str, str], float]:
    if not run.metrics_hash:
        return {}
    table = platform.store.get_table(METRIC_TABLES, run.metrics_hash)
    return {(r.metric, f"{r.slice_column}={r.slice_value}"): float(r.value) for r in table.itertuples() if r.slice_column != ""}


def _camel_entry(entry: dict) -> dict:
    return {to_camel(k): v for k, v in entry.items()}


def _baseline_run(platform: EvalPlatform, run: EvalRun, baseline: str) -> EvalRun:
    """The run ``baseline`` names: itself, or the newest succeeded run of that model version on the run's versions."""
    if baseline.startswith("run-"):
        return record_named_by("baseline", lambda: platform.run(baseline))
    model = record_named_by("baseline", lambda: platform.model(baseline))
    with platform.registry.session() as session:
        found = session.scalar(select(EvalRun).where(
            EvalRun.model_name == model.name, EvalRun.model_version == model.version, EvalRun.dataset_id == run.dataset_id,
            EvalRun.dataset_version == run.dataset_version, EvalRun.suite_id == run.suite_id, EvalRun.suite_version == run.suite_version,
            EvalRun.status == RunStatus.SUCCEEDED, EvalRun.trigger != CANARY_TRIGGER)  # a canary run is never a baseline
        .order_by(EvalRun.finished_at.desc()).limit(1))
    if found is None:
        raise Conflict(f"baseline {model.key} has no succeeded run on {run.dataset_key} with {run.suite_key}: request one with "
                       f"POST /v1/eval-runs (or a candidate run with baseline {model.key})")
    return found


def _recorded_comparison(platform: EvalPlatform, run: EvalRun) -> tuple[dict, dict, EvalRun | None]:
    """The comparison the run recorded: its payload, its slice intervals and its baseline run (if any)."""
    recorded = run.comparison or {}
    if not recorded:
        raise Conflict(f"run {run.run_id} has no recorded comparison yet")
    base = platform.run(recorded["baseline_run_id"]) if recorded.get("baseline_run_id") else None
    payload = {
        "runId": run.run_id, "source": "recorded",
        "baseline": {"modelVersion": recorded.get("baseline_model"), "runId": recorded.get("baseline_run_id"),
                     "state": recorded.get("baseline_state"), "reevaluated": bool(recorded.get("baseline_reevaluated")),
                     "staleBaselineRunId": recorded.get("stale_baseline_run_id")},
        "metrics": {name: _camel_entry(entry) for name, entry in (recorded.get("metrics") or {}).items()},
        "regressions": dict(recorded.get("regressions") or {}),
    }
    return payload, recorded.get("slices") or {}, base


def _check_comparable(run: EvalRun, dataset: EvalDataset, baseline: EvalRun) -> None:
    if (baseline.dataset_id, baseline.dataset_version, baseline.suite_id, baseline.suite_version) != (
            run.dataset_id, run.dataset_version, run.suite_id, run.suite_version):
        raise Conflict(f"baseline run {baseline.run_id} used {baseline.dataset_key} with {baseline.suite_key}, the candidate "
                       f"{run.dataset_key} with {run.suite_key}: a comparison needs the same versions")
    for which in (run, baseline):
        if which.status != RunStatus.SUCCEEDED:
            raise Conflict(f"run {which.run_id} is {which.status}: only succeeded runs are compared")
        if not which.predictions_hash:
            raise Conflict(f"the predictions of run {which.run_id} were purged by the retention policy: recompute it first")
    if dataset.row_count > ADHOC_COMPARISON_MAX_ROWS:
        raise Conflict(f"{dataset.key} has {dataset.row_count} rows: request a run with this baseline (POST /v1/eval-runs with "
                       "baseline) instead of an ad hoc comparison")


def _computed_comparison(platform: EvalPlatform, run: EvalRun, dataset: EvalDataset, baseline: EvalRun) -> dict:
    """Candidate vs an arbitrary baseline run on the same dataset and suite versions (read-only)."""
    _check_comparable(run, dataset, baseline)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    frame = platform.load_dataset(dataset)
    schema, task = dataset.schema, dataset.task_type
    cand_frame = evaluation_frame(frame, platform.store.get_table(PREDICTIONS_KIND, str(run.predictions_hash)), schema, task)
    base_frame = evaluation_frame(frame, platform.store.get_table(PREDICTIONS_KIND, str(baseline.predictions_hash)), schema, task)
    ids = schema["id_columns"]
    base_frame = cand_frame[ids].merge(base_frame, on=ids, how="left", validate="one_to_one")
    cand, base = metric_columns(cand_frame, schema, task), metric_columns(base_frame, schema, task)
    metrics = {m.name: _camel_entry(paired_bootstrap(m.definition, m.params, cand, base, suite.bootstrap_resamples,
                                                     suite.confidence, suite.seed)) for m in suite.metrics}
    regressions = {}
    for rule in suite.rules:
        if rule.kind == "max_regressions":
            measured = suite.metric(rule.metric)
            assert measured is not None, "parse_suite refuses a rule on a metric the suite does not measure"
            threshold = measured.params.get("threshold", 0.5)
            cand_right = (cand["score"] >= threshold) == (cand["label"] == 1)
            base_right = (base["score"] >= threshold) == (base["label"] == 1)
            regressed = cand_frame.loc[base_right & ~cand_right, ids]
            regressions[rule.metric] = [row[0] if len(ids) == 1 else "/".join(map(str, row)) for row in regressed.itertuples(index=False)]
    return {"runId": run.run_id, "source": "computed",
            "baseline": {"modelVersion": baseline.model_key, "runId": baseline.run_id, "state": "ok", "reevaluated": False,
                         "staleBaselineRunId": None},
            "metrics": metrics, "regressions": regressions}

