"""Golden and canary datasets over time: ``canary_metrics``, one partition per eval cell (a promoted model
version on a golden or canary dataset version), and its check ``canary_within_bounds``.

The canary schedule queues canary runs (:mod:`eval_platform.evaluation.canaries`); the eval-request sensor
launches their cells like any other, and after ``comparison`` ended them this asset records the cell's canary
series: the latest value of every metric as numeric metadata (``SUITE/METRIC``, so the UI plots the series
across materializations), and the check, red when a metric bounded by the suite's ``canary.bounds`` moved
beyond its bound from the reference run. A cell run that evaluated no canary run materializes nothing here.
"""

import dagster as dg

from eval_platform.core.states import CANARY_TRIGGER
from eval_platform.evaluation.canaries import CanaryCheck, canary_series, canary_suites, check_canary
from eval_platform_dagster.assets.evaluation import _earlier_runs, comparison
from eval_platform_dagster.assets.partitions import REQUESTED_TAG, eval_cells, split_cell
from eval_platform_dagster.assets.platform import PLATFORM, platform_of

#: Fails when a bounded metric of a canary series moved beyond its bound from the reference run.
CANARY_WITHIN_BOUNDS = "canary_within_bounds"


@dg.multi_asset(
    specs=[dg.AssetSpec("canary_metrics", deps=[comparison], group_name="canaries", skippable=True,
                        description="The canary series of a promoted model version on a golden or canary dataset version.")],
    partitions_def=eval_cells,
    # a multi-asset, for its optional output and check: a cell run without canary runs materializes nothing here
    can_subset=True,
    check_specs=[dg.AssetCheckSpec(CANARY_WITHIN_BOUNDS, asset="canary_metrics", partitions_def=eval_cells, description=(
        "Every metric the suite bounds (canary.bounds) is within its bound of the reference run (the first canary "
        "run of this promoted model version on this dataset version): |current - reference| <= bound."))],
    required_resource_keys=PLATFORM,
)
def canary_metrics(context: dg.AssetExecutionContext):
    """The canary series of the cell: reference and current value of every metric, per suite version."""
    platform = platform_of(context)
    model_key, dataset_key = split_cell(context.partition_key)
    claimed = platform.runs_of_dagster_run(context.run.run_id, model_key, _earlier_runs(context), dataset_key=dataset_key)
    by_hand = context.run.tags.get(REQUESTED_TAG) != "true"  # a materialization from the UI shows the series as it is
    if not by_hand and not any(run.trigger == CANARY_TRIGGER for run in claimed):
        context.log.info(f"no canary run of {model_key} on {dataset_key} in this run: nothing to track")
        return
    checks = [check_canary(platform, canary_series(platform, model_key, dataset_key, suite_key))
              for suite_key in canary_suites(platform, model_key, dataset_key)]
    checks = [check for check in checks if check.series_length]
    if not checks:
        context.log.info(f"{model_key} has no succeeded canary run on {dataset_key}")
        return
    yield dg.MaterializeResult(asset_key="canary_metrics", metadata=_series_metadata(checks), check_results=[_within_bounds(checks)])


def _series_metadata(checks: list[CanaryCheck]) -> dict:
    metadata: dict = {}
    for check in checks:
        suite_id = check.suite_key.split("@")[0]
        for drift in check.metrics:
            if drift.current is not None:
                metadata[f"{suite_id}/{drift.metric}"] = drift.current
        metadata[f"{suite_id}/series_length"] = check.series_length
        metadata[f"{suite_id}/reference_run"] = check.reference_run_id or "-"
        metadata[f"{suite_id}/current_run"] = check.current_run_id or "-"
    metadata["series"] = dg.MetadataValue.md(_table(checks))
    return metadata


def _within_bounds(checks: list[CanaryCheck]) -> dg.AssetCheckResult:
    drifted = [f"{check.suite_key} {drift.describe()}" for check in checks for drift in check.drifted]
    bounded = {f"{check.suite_key} {drift.metric}": dg.MetadataValue.json(
        {"metric": drift.metric, "reference": drift.reference, "current": drift.current, "change": drift.change,
         "bound": drift.bound, "beyond_bound": drift.beyond_bound, "series_length": check.series_length})
        for check in checks for drift in check.metrics if drift.bound is not None}
    unbounded = [check.suite_key for check in checks if not check.bounds_stated]
    return dg.AssetCheckResult(
        asset_key="canary_metrics", check_name=CANARY_WITHIN_BOUNDS, passed=not drifted,
        metadata={"drifted": "; ".join(drifted) or "none", "drifted_metrics": ", ".join(
                      sorted({d.metric for c in checks for d in c.drifted})) or "none",
                  "series_length": max(check.series_length for check in checks),
                  "suites_without_bounds": ", ".join(unbounded) or "none", **bounded,
                  "series": dg.MetadataValue.md(_table(checks))})


def _table(checks: list[CanaryCheck]) -> str:
    lines = ["| suite | metric | reference | current | change | bound | beyond bound | runs |", "|---|---|---|---|---|---|---|---|"]
    for check in checks:
        for drift in check.metrics:
            change = "-" if drift.change is None else f"{drift.change:+.4g}"
            lines.append(f"| {check.suite_key} | {drift.metric} | {_shown(drift.reference)} | {_shown(drift.current)} | {change} | "
                         f"{'-' if drift.bound is None else drift.bound} | {'yes' if drift.beyond_bound else 'no'} | {check.series_length} |")
    return "\n".join(lines)


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"
