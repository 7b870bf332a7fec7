"""Installations from before eval cells: their evaluation partitions, carried over once.

Before eval cells, predictions, judgments, metric table and comparison were partitioned by model version
(``detector@1``), and the incident checks were not partitioned. Dagster keeps those materializations in the
event log (the asset's history still lists them) but leaves keys outside the new partitions out of the
partition grid. ``partition_migration_sensor`` runs once per instance: each model-version partition
materialized under the old scheme is recorded again, as a runless materialization, in the eval cells of the
model version's evaluated runs (metadata ``migrated_from`` names the old key; nothing is recomputed), and
each recorded incident is shown on the partitioned checks. The gate keeps its partitions (model versions).
"""

from __future__ import annotations

import dagster as dg

from eval_platform.core.keys import CELL_SEPARATOR
from eval_platform.core.states import RunStatus
from eval_platform.governance import incidents
from eval_platform_dagster.assets.partitions import cell_key, dataset_versions, model_versions
from eval_platform_dagster.jobs.checks import CheckReport, report_check_results, report_request
from eval_platform_dagster.sensors.incidents import incident_check_reports
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.recompute import RECOMPUTED_ASSETS

#: The cursor once the instance is migrated: later ticks do nothing.
MIGRATED = "eval-cells-1"
#: A sensor's first tick comes as soon as the daemon sees it; after that this one has nothing to do, so it
#: ticks rarely (each tick costs the idle daemon CPU).
MIGRATION_SENSOR_INTERVAL_SECONDS = 3600


@dg.sensor(job=report_check_results, minimum_interval_seconds=MIGRATION_SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def partition_migration_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Carry model-version partitions of the evaluation assets over to eval cells, once per instance."""
    if context.cursor == MIGRATED:
        return dg.SensorResult(skip_reason="partitions already carried over to eval cells")
    platform = sensor_platform(context)
    instance = sensor_instance(context)
    known_models, known_datasets = known_partitions(instance, model_versions), known_partitions(instance, dataset_versions)
    events: list = []
    new_datasets: list[str] = []
    for asset in RECOMPUTED_ASSETS:
        old_keys = sorted(key for key in instance.get_materialized_partitions(dg.AssetKey(asset)) if CELL_SEPARATOR not in key)
        for model_key in old_keys:
            cells: dict[tuple[str, str], list[str]] = {}
            for run in platform.runs(model_key, statuses=[RunStatus.SUCCEEDED, RunStatus.INVALID]):  # evaluated (invalid: since contaminated)
                cells.setdefault((run.model_key, run.dataset_key), []).append(run.run_id)
            for (cell_model, dataset_key), run_ids in cells.items():
                if dataset_key not in known_datasets and dataset_key not in new_datasets:
                    new_datasets.append(dataset_key)
                events.append(dg.AssetMaterialization(asset_key=asset, partition=str(cell_key(cell_model, dataset_key)), metadata={
                    "migrated_from": model_key, "eval_runs": ", ".join(run_ids),
                    "note": "materialized under the model-version partition before eval cells; recorded here, not recomputed"}))
    reports: list[CheckReport] = []
    for incident in incidents.incidents(platform):
        reports += incident_check_reports(platform, incident, known_models, known_datasets | set(new_datasets))
    if events or reports:
        context.log.info(f"carried {len(events)} materialization(s) and {len(reports)} check result(s) over to eval cells")
    return dg.SensorResult(asset_events=events, cursor=MIGRATED,
                           run_requests=[report_request(reports, run_key=f"migration:{MIGRATED}")] if reports else [],
                           dynamic_partitions_requests=[dataset_versions.build_add_request(new_datasets)] if new_datasets else [],
                           skip_reason=None if events or reports else "nothing to carry over to eval cells")
