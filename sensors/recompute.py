"""Recompute requests to Dagster backfills over exactly the eval cells they recompute."""

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey

from eval_platform.core.keys import CELL_SEPARATOR, split_cell_name
from eval_platform.core.states import RequestKind, RunStatus
from eval_platform.platform import requests
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import DagsterRequest
from eval_platform_dagster.assets import REQUESTED_TAG, dataset_versions, model_versions
from eval_platform_dagster.assets.partitions import cell_key
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import BACKGROUND_SENSOR_INTERVAL_SECONDS
from eval_platform_dagster.sensors.launch_state import LAUNCH_TAG

#: Assets a recompute rematerializes in each eval cell it recomputes (the gate follows, by the gate sensor).
RECOMPUTED_ASSETS = ("predictions", "judgments", "metric_table", "comparison")


# ``asset_selection``, not ``target``: a sensor that yields backfills (RunRequests with an asset graph subset)
# must declare the assets it may backfill, or the daemon rejects every tick.
@dg.sensor(minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
           asset_selection=list(RECOMPUTED_ASSETS))
def recompute_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch one Dagster backfill per recompute request, over exactly the eval cells it recomputes (the
    cursor, committed with the tick, is the last request launched). The backfill is on the Backfills page
    with its partitions; the gate sensor then materializes each model version's gate once its cells are done."""
    platform = sensor_platform(context)
    instance = sensor_instance(context)
    known_models, known_datasets = known_partitions(instance, model_versions), known_partitions(instance, dataset_versions)
    cursor = int(context.cursor or 0)
    backfills, new_models, new_datasets = [], [], []
    for request in requests.pending_requests(platform, RequestKind.BACKFILL, after_id=cursor):
        cursor = request.id
        cells = recompute_cells(platform, request.partitions)
        if not cells:
            continue
        new_models += [m for m, _ in cells if m not in known_models and m not in new_models]
        new_datasets += [d for _, d in cells if d not in known_datasets and d not in new_datasets]
        backfills.append(_backfill(context, instance, request, cells))
    return dg.SensorResult(
        run_requests=backfills, cursor=str(cursor),
        dynamic_partitions_requests=([model_versions.build_add_request(new_models)] if new_models else [])
        + ([dataset_versions.build_add_request(new_datasets)] if new_datasets else []),
        skip_reason=None if backfills else "no recompute requests")


def _backfill(context: dg.SensorEvaluationContext, instance: dg.DagsterInstance, request: DagsterRequest,
              cells: list[tuple[str, str]]) -> dg.RunRequest:
    """The backfill of a recompute request: the recomputed assets of each of its cells."""
    if context.repository_def is None:
        raise ValueError("a sensor of the code location is evaluated with its repository")
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        subset = AssetGraphSubset.from_asset_partition_set(
            {AssetKeyPartitionKey(dg.AssetKey(asset), cell_key(model_key, dataset_key))
             for asset in RECOMPUTED_ASSETS for model_key, dataset_key in cells}, context.repository_def.asset_graph)
    tags = {REQUESTED_TAG: "true", "eval_platform/recompute_request": str(request.id)}
    if request.launch_key:
        tags[LAUNCH_TAG] = request.launch_key
    return dg.RunRequest.for_asset_graph_subset(subset, tags=tags)


def recompute_cells(platform: EvalPlatform, partitions: list[str]) -> list[tuple[str, str]]:
    """``(model_key, dataset_key)`` of each cell a recompute request names. A request recorded before eval
    cells (a model version's key, the old scheme) stands for the cells of that model version's queued runs."""
    cells: dict[tuple[str, str], None] = {}
    for partition in partitions:
        if CELL_SEPARATOR in partition:
            cells[split_cell_name(partition)] = None
        else:
            for run in platform.runs(partition, statuses=[RunStatus.QUEUED]):
                cells[(run.model_key, run.dataset_key)] = None
    return list(cells)
