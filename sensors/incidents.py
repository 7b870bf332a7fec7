"""Recovery paths on the asset graph: promotions, recompute backfills, and incidents shown in the UI."""

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey

from assets import PROMOTION_REQUEST_TAG, REQUESTED_TAG, dataset_versions, model_versions
from assets.datasets import NOT_CONTAMINATED
from assets.evaluation import INPUTS_VALID
from assets.partitions import cell_key
from eval_platform.core.errors import NotFound
from eval_platform.core.keys import CELL_SEPARATOR, split_cell_name
from eval_platform.gates import releases
from eval_platform.governance import incidents
from eval_platform.platform.requests import pending_requests
from eval_platform.platform.service import QUEUED, EvalPlatform
from jobs import release_model_version
from jobs.checks import CheckReport, report_check_results, report_request
from sensors.instance import sensor_instance, sensor_platform
from sensors.launch_state import LAUNCH_TAG
from sensors.requests import BACKGROUND_SENSOR_INTERVAL_SECONDS, SENSOR_INTERVAL_SECONDS

#: Assets a recompute rematerializes in each eval cell it recomputes (the gate follows, by the gate sensor).
RECOMPUTED_ASSETS = ("predictions", "judgments", "metric_table", "comparison")


@dg.sensor(job=release_model_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def promotion_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Run the release job (gate decision, then the promotion it guards) for each promotion request.

    The cursor (the last request launched) is committed with the tick, so a tick that fails launches
    nothing and forgets nothing; the promotion asset marks its request done."""
    service = sensor_platform(context)
    cursor = int(context.cursor or 0)
    requests = []
    for request in pending_requests(service, releases.PROMOTION, after_id=cursor):
        requests.append(dg.RunRequest(run_key=f"promotion:{request.id}", partition_key=request.partitions[0],
                                      tags={PROMOTION_REQUEST_TAG: str(request.id)}))
        cursor = request.id
    return dg.SensorResult(run_requests=requests, cursor=str(cursor), skip_reason=None if requests else "no promotion requests")


# ``asset_selection``, not ``target``: a sensor that yields backfills (RunRequests with an asset graph subset)
# must declare the assets it may backfill, or the daemon rejects every tick.
@dg.sensor(minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
           asset_selection=list(RECOMPUTED_ASSETS))
def recompute_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch one Dagster backfill per recompute request, over exactly the eval cells it recomputes (the
    cursor, committed with the tick, is the last request launched). The backfill is on the Backfills page
    with its partitions; the gate sensor then materializes each model version's gate once its cells are done."""
    service = sensor_platform(context)
    asset_graph = context.repository_def.asset_graph
    instance = sensor_instance(context)
    known_models = set(instance.get_dynamic_partitions(model_versions.name))
    known_datasets = set(instance.get_dynamic_partitions(dataset_versions.name))
    cursor = int(context.cursor or 0)
    requests, new_models, new_datasets = [], [], []
    for request in pending_requests(service, incidents.BACKFILL, after_id=cursor):
        cursor = request.id
        cells = recompute_cells(service, request.partitions)
        if not cells:
            continue
        new_models += [m for m, _ in cells if m not in known_models and m not in new_models]
        new_datasets += [d for _, d in cells if d not in known_datasets and d not in new_datasets]
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            subset = AssetGraphSubset.from_asset_partition_set(
                {AssetKeyPartitionKey(dg.AssetKey(asset), cell_key(model_key, dataset_key))
                 for asset in RECOMPUTED_ASSETS for model_key, dataset_key in cells}, asset_graph)
        tags = {REQUESTED_TAG: "true", "eval_platform/recompute_request": str(request.id)}
        if request.launch_key:
            tags[LAUNCH_TAG] = request.launch_key
        requests.append(dg.RunRequest.for_asset_graph_subset(subset, tags=tags))
    return dg.SensorResult(
        run_requests=requests, cursor=str(cursor),
        dynamic_partitions_requests=([model_versions.build_add_request(new_models)] if new_models else [])
        + ([dataset_versions.build_add_request(new_datasets)] if new_datasets else []),
        skip_reason=None if requests else "no recompute requests")


def recompute_cells(service: EvalPlatform, partitions: list[str]) -> list[tuple[str, str]]:
    """``(model_key, dataset_key)`` of each cell a recompute request names. A request recorded before eval
    cells (a model version's key, the old scheme) stands for the cells of that model version's queued runs."""
    cells: dict[tuple[str, str], None] = {}
    for partition in partitions:
        if CELL_SEPARATOR in partition:
            cells[split_cell_name(partition)] = None
        else:
            for run in service.runs(partition, statuses=[QUEUED]):
                cells[(run.model_key, run.dataset_key)] = None
    return list(cells)


def _cells_of(service: EvalPlatform, run_ids: list[str]) -> list[tuple[str, str]]:
    cells: dict[tuple[str, str], None] = {}
    for run_id in run_ids:
        try:
            run = service.run(run_id)
        except NotFound:
            continue
        cells[(run.model_key, run.dataset_key)] = None
    return list(cells)


def incident_check_reports(service: EvalPlatform, incident, known_models: set[str], known_datasets: set[str]) -> list[CheckReport]:
    """The failing partitioned checks an incident shows: ``not_contaminated`` of the contaminated dataset
    version, ``inputs_valid`` of each eval cell whose runs it touched (partitions Dagster knows of)."""
    metadata = {"incident": incident.kind, "target": incident.target, "reason": incident.reason,
                "reported_by": incident.reported_by, "incident_id": incident.id}
    reports = []
    if incident.kind == incidents.DATASET_CONTAMINATION and incident.target in known_datasets:
        reports.append(CheckReport("eval_dataset", NOT_CONTAMINATED, incident.target, False,
                                   {**metadata, "affected_runs": ", ".join(incident.affected_runs) or "none"}))
    affected = set(incident.affected_runs)
    for model_key, dataset_key in _cells_of(service, incident.affected_runs):
        if model_key in known_models and dataset_key in known_datasets:
            runs = [run.run_id for run in service.runs(model_key) if run.dataset_key == dataset_key and run.run_id in affected]
            reports.append(CheckReport("metric_table", INPUTS_VALID, str(cell_key(model_key, dataset_key)), False,
                                       {**metadata, "affected_runs": ", ".join(runs) or "none"}))
    return reports


@dg.sensor(job=report_check_results, minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def incident_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Show each new incident on the lineage, partition by partition: a failing ``not_contaminated`` on the
    contaminated dataset version, a failing ``inputs_valid`` on exactly the eval cells whose runs it touched
    (one run of ``report_check_results`` per tick: see jobs/checks.py for why not runless). The gates it
    changed are re-evaluated by the gate sensor (the incident recorded new decisions)."""
    service = sensor_platform(context)
    previous = cursor = int(context.cursor or 0)
    reports: list[CheckReport] = []
    instance = sensor_instance(context)
    known_models = set(instance.get_dynamic_partitions(model_versions.name))
    known_datasets = set(instance.get_dynamic_partitions(dataset_versions.name))
    for incident in incidents.incidents(service):
        if incident.id <= cursor:
            continue
        cursor = incident.id
        reports += incident_check_reports(service, incident, known_models, known_datasets)
    incidents.mark_reported(service, cursor)
    requests = [report_request(reports, run_key=f"incidents:{previous + 1}-{cursor}",
                               tags={"eval_platform/incidents": f"{previous + 1}-{cursor}"})] if reports else []
    return dg.SensorResult(run_requests=requests, cursor=str(cursor), skip_reason=None if requests else "no new incidents")
