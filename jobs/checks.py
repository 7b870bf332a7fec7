"""Check results the sensors report: one run per batch, so each is an execution Dagster keeps per partition.

Why a run and not a runless report (``SensorResult(asset_events=[AssetCheckEvaluation(...)])``): Dagster
(1.13) stores a runless check evaluation under the empty run id, and its asset-check executions table is
unique per (asset, check, run id, partition), so the second runless result of the same partition of a
partitioned check fails the sensor's tick with a unique-constraint error (an unpartitioned check has a NULL
partition, which the index lets repeat). An incident touching a cell a former incident touched, or a second
override of a gate, would then stop the sensor for good. Inside a run every report has a run id of its own.
"""


import json
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluation,
    AssetCheckEvaluationTargetMaterializationData,
)


@dataclass(frozen=True)
class CheckReport:
    """One partitioned check result to show: the asset, the check, the partition, passed or not, and why."""

    asset: str
    check: str
    partition: str
    passed: bool
    metadata: dict

    def as_config(self) -> dict:
        return {"asset": self.asset, "check": self.check, "partition": self.partition, "passed": self.passed,
                "metadata_json": json.dumps(self.metadata, default=str, sort_keys=True)}


class CheckResultConfig(dg.Config):
    """One check result as the run config of ``report_check_results`` carries it."""

    asset: str
    check: str
    partition: str
    passed: bool
    metadata_json: str = "{}"


class CheckReportsConfig(dg.Config):
    """The check results one run of ``report_check_results`` records."""

    results: list[CheckResultConfig]


def latest_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey,
                           partition: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization, as the target of a check result about it.

    Why: Dagster's check status of a materialized partition (the check's Partitions tab, the partition
    grids) counts only a result that targets the partition's latest materialization; any other result is
    resolved as "missing" (``AssetCheckPartitionInfo.is_current``). Without a target, a contaminated
    cell's failed ``inputs_valid`` showed as a grey "missing" cell, red only in the execution history."""
    [*records] = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]),
                                                 limit=1).records
    if not records:
        return None  # never materialized (a gate not decided yet): the result is current as it is
    return AssetCheckEvaluationTargetMaterializationData(storage_id=records[0].storage_id, run_id=records[0].run_id,
                                                         timestamp=records[0].timestamp)


@dg.op(description="Record the given partitioned check results (from the incident, gate and migration sensors).")
def report_check_results_op(context: dg.OpExecutionContext, config: CheckReportsConfig) -> None:
    for result in config.results:
        asset_key = dg.AssetKey(result.asset)
        # Dagster records a check evaluation logged by an op, though log_event's annotation omits the type
        context.log_event(AssetCheckEvaluation(  # type: ignore[arg-type]
            asset_key=asset_key, check_name=result.check, passed=result.passed, partition=result.partition,
            metadata=json.loads(result.metadata_json),
            target_materialization_data=latest_materialization(context.instance, asset_key, result.partition)))


@dg.job(executor_def=dg.in_process_executor,
        description="Show check results of asset partitions that changed outside a materialization: an incident, "
                    "an override, an installation carried over to eval cells.")
def report_check_results():
    report_check_results_op()


def report_request(reports: list[CheckReport], run_key: str, tags: dict | None = None) -> dg.RunRequest:
    """One run of ``report_check_results`` for the reports (the last one of a partition wins)."""
    unique = {(r.asset, r.check, r.partition): r for r in reports}
    return dg.RunRequest(run_key=run_key, job_name=report_check_results.name, tags=tags or {}, run_config={
        "ops": {report_check_results_op.name: {"config": {"results": [r.as_config() for r in unique.values()]}}}})


def reports_of(request: dg.RunRequest) -> list[CheckReport]:
    """The reports a run request carries."""
    results = request.run_config["ops"][report_check_results_op.name]["config"]["results"]
    return [CheckReport(r["asset"], r["check"], r["partition"], r["passed"], json.loads(r["metadata_json"])) for r in results]
