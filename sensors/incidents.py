"""Recovery paths on the asset graph: promotions, recompute backfills, and incidents shown in the UI."""

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey

from assets import PROMOTION_REQUEST_TAG, REQUESTED_TAG, dataset_versions, model_versions
from assets.datasets import NOT_CONTAMINATED
from assets.evaluation import INPUTS_VALID
from eval_platform import incidents, releases
from jobs import release_model_version
from sensors.instance import sensor_instance, sensor_platform
from sensors.launch_state import LAUNCH_TAG
from sensors.requests import BACKGROUND_SENSOR_INTERVAL_SECONDS, SENSOR_INTERVAL_SECONDS

#: Assets a recompute rematerializes: the whole evaluation of each affected model version.
RECOMPUTED_ASSETS = ("predictions", "judgments", "metric_table", "comparison", "gate_decision")


@dg.sensor(job=release_model_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def promotion_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Run the release job (gate decision, then the promotion it guards) for each promotion request.

    The cursor (the last request launched) is committed with the tick, so a tick that fails launches
    nothing and forgets nothing; the promotion asset marks its request done."""
    service = sensor_platform(context)
    cursor = int(context.cursor or 0)
    requests = []
    for request in releases.pending_requests(service, releases.PROMOTION, after_id=cursor):
        requests.append(dg.RunRequest(run_key=f"promotion:{request.id}", partition_key=request.partitions[0],
                                      tags={PROMOTION_REQUEST_TAG: str(request.id)}))
        cursor = request.id
    return dg.SensorResult(run_requests=requests, cursor=str(cursor), skip_reason=None if requests else "no promotion requests")


# ``asset_selection``, not ``target``: a sensor that yields backfills (RunRequests with an asset graph subset)
# must declare the assets it may backfill, or the daemon rejects every tick.
@dg.sensor(minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
           asset_selection=list(RECOMPUTED_ASSETS))
def recompute_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch one Dagster backfill per recompute request, over exactly the affected model-version partitions
    (the cursor, committed with the tick, is the last request launched)."""
    service = sensor_platform(context)
    asset_graph = context.repository_def.asset_graph
    known = set(sensor_instance(context).get_dynamic_partitions(model_versions.name))
    cursor = int(context.cursor or 0)
    requests, new_partitions = [], []
    for request in releases.pending_requests(service, incidents.BACKFILL, after_id=cursor):
        new_partitions += [key for key in request.partitions if key not in known and key not in new_partitions]
        subset = AssetGraphSubset.from_asset_partition_set(
            {AssetKeyPartitionKey(dg.AssetKey(asset), key) for asset in RECOMPUTED_ASSETS for key in request.partitions},
            asset_graph)
        tags = {REQUESTED_TAG: "true", "eval_platform/recompute_request": str(request.id)}
        if request.launch_key:
            tags[LAUNCH_TAG] = request.launch_key
        requests.append(dg.RunRequest.for_asset_graph_subset(subset, tags=tags))
        cursor = request.id
    return dg.SensorResult(
        run_requests=requests, cursor=str(cursor),
        dynamic_partitions_requests=[model_versions.build_add_request(new_partitions)] if new_partitions else [],
        skip_reason=None if requests else "no recompute requests")


@dg.sensor(minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def incident_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Show each new incident on the lineage: failing checks on the dataset asset and on the metric table,
    one evaluation per affected partition (named in its metadata; the checks are not partitioned because
    partitioned asset checks are still a Dagster preview feature)."""
    service = sensor_platform(context)
    cursor = int(context.cursor or 0)
    events = []
    instance = sensor_instance(context)
    known_models = set(instance.get_dynamic_partitions(model_versions.name))
    known_datasets = set(instance.get_dynamic_partitions(dataset_versions.name))
    for incident in incidents.incidents(service):
        if incident.id <= cursor:
            continue
        cursor = incident.id
        metadata = {"incident": incident.kind, "target": incident.target, "reason": incident.reason,
                    "reported_by": incident.reported_by, "affected_runs": ", ".join(incident.affected_runs) or "none"}
        if incident.kind == incidents.DATASET_CONTAMINATION and incident.target in known_datasets:
            events.append(AssetCheckEvaluation(asset_key=dg.AssetKey("eval_dataset"), check_name=NOT_CONTAMINATED,
                                               passed=False, metadata={**metadata, "partition": incident.target}))
        for model_key in incident.affected_models:
            if model_key in known_models:
                events.append(AssetCheckEvaluation(asset_key=dg.AssetKey("metric_table"), check_name=INPUTS_VALID,
                                                   passed=False, metadata={**metadata, "partition": model_key}))
    incidents.mark_reported(service, cursor)
    return dg.SensorResult(asset_events=events, cursor=str(cursor), skip_reason=None if events else "no new incidents")
