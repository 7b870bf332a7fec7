"""The eval dataset asset: one partition per registered dataset version, validated by asset checks."""


import dagster as dg

from eval_platform.core.states import DatasetStatus
from eval_platform.core.tasks import get_task_type
from eval_platform.datasets.leakage import DuplicateReport
from eval_platform.datasets.validation import CHECKS, VALIDATION_VERSION, validate_frame
from eval_platform.platform.dataset_drift import drift_from_previous
from eval_platform_dagster.assets.partitions import dataset_versions
from eval_platform_dagster.assets.platform import PLATFORM, platform_of
from eval_platform_dagster.assets.rendering import drift_summary, render_dataset_drift

_CHECK_DESCRIPTIONS = {
    "required_columns": "The columns the task type needs are present.",
    "unique_non_null_ids": "Example ids are non-null and unique.",
    "labels_not_null": "No label is null.",
    "label_domain": "Every label is inside the task type's label domain.",
    "finite_values": "No feature value (nor a numeric label) is infinite.",
}
#: Fails when the dataset version is marked contaminated (also reported by the incident sensor).
NOT_CONTAMINATED = "not_contaminated"
#: Warns (never blocks) on exact duplicate examples: within the version, between slices, with earlier versions.
NO_EXACT_DUPLICATES = "no_exact_duplicates"
#: Warns when the version's features, labels, prevalence or slices drifted from the previous active version.
NO_DRIFT = "no_drift_from_previous"


@dg.asset(
    partitions_def=dataset_versions,
    group_name="datasets",
    code_version=VALIDATION_VERSION,
    kinds={"parquet", "great_expectations"},
    check_specs=[
        dg.AssetCheckSpec(name, asset="eval_dataset", description=_CHECK_DESCRIPTIONS[name], blocking=True,
                          partitions_def=dataset_versions)
        for name in CHECKS
    ] + [dg.AssetCheckSpec(NOT_CONTAMINATED, asset="eval_dataset", partitions_def=dataset_versions,
                           description="The dataset version has not been marked contaminated (re-evaluated by the "
                                       "incident sensor when it is).")]
    + [dg.AssetCheckSpec(NO_EXACT_DUPLICATES, asset="eval_dataset", partitions_def=dataset_versions, blocking=False,
                           description="No two examples have the same content hash (input columns): within the version, "
                                       "between values of a slice column, or with an earlier version of the dataset.")]
    + [dg.AssetCheckSpec(NO_DRIFT, asset="eval_dataset", partitions_def=dataset_versions, blocking=False,
                         description="Features, label, prevalence and slices match the previous active version of the "
                                     "dataset (PSI, Jensen-Shannon, two-sample KS; eval_platform.stats.dataset_drift).")],
    required_resource_keys=PLATFORM,
)
def eval_dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A versioned, content-hashed eval dataset, checked with the same Great Expectations suite that
    validated it at registration."""
    platform = platform_of(context)
    record = platform.dataset(context.partition_key)
    report = validate_frame(platform.load_dataset(record), get_task_type(record.task_type),
                            feature_columns=record.schema.get("feature_columns", ()))
    checks = [
        dg.AssetCheckResult(
            check_name=name,
            passed=all(o.success for o in outcomes),
            metadata={o.column: ("ok" if o.success else o.problem) for o in outcomes} or {"note": "nothing to check"},
        )
        for name, outcomes in report.by_check().items()
    ]
    checks.append(dg.AssetCheckResult(check_name=NOT_CONTAMINATED, passed=record.status == DatasetStatus.ACTIVE,
                                      metadata={"status": str(record.status), "reason": record.status_reason or "-"}))
    checks.append(_no_exact_duplicates(platform.duplicates_of(record)))
    drift = drift_from_previous(platform, record)
    checks.append(dg.AssetCheckResult(check_name=NO_DRIFT, passed=drift.passed, severity=dg.AssetCheckSeverity.WARN,
                                      metadata=render_dataset_drift(drift)))
    return dg.MaterializeResult(
        metadata={
            "dataset": record.key,
            "content_hash": record.content_hash,
            "task_type": record.task_type,
            "label_policy": record.label_policy,
            "access_level": record.access_policy["level"],
            "status": str(record.status),
            "dagster/row_count": record.row_count,
            "artifact": dg.MetadataValue.path(platform.store.uri("datasets", record.content_hash)),
            "columns": dg.MetadataValue.json(record.schema),
            **drift_summary(drift),
        },
        check_results=checks,
        data_version=dg.DataVersion(record.content_hash),
    )


def _no_exact_duplicates(report: DuplicateReport) -> dg.AssetCheckResult:
    """The duplicate report as a warning-level check: counts per kind, and a few example ids."""
    slices = {f"between_slices/{s.slice_column}": s.examples for s in report.between_slices}
    versions = {f"shared_with/{key}": count for key, count in report.across_versions.items()}
    return dg.AssetCheckResult(
        check_name=NO_EXACT_DUPLICATES, passed=not report.any, severity=dg.AssetCheckSeverity.WARN,
        metadata={"within_version": report.within_version, **slices, **versions,
                  "content_columns": ", ".join(report.content_columns) or "none (nothing to compare)",
                  "example_ids": ", ".join(report.example_ids) or "-"})
