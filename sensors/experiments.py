"""Online data to Dagster runs: each analysis request (queued by an ingest, a manual request or a
contaminated ingest) becomes a run of the experiment's analysis partition."""


import dagster as dg

from eval_platform.online import experiments as online
from eval_platform_dagster.assets.partitions import EXPERIMENT_REQUEST_TAG, experiments
from eval_platform_dagster.jobs.experiments import analyze_experiment_job
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import BACKGROUND_SENSOR_INTERVAL_SECONDS


@dg.sensor(job=analyze_experiment_job, minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def experiment_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch one analysis run per pending request, adding the experiment's partition when it is new.

    Several requests of one experiment queued between two ticks need one analysis: one run carries them
    all (its tag lists their ids; the asset marks each done). The cursor, committed with the tick, is the
    last request launched."""
    platform = sensor_platform(context)
    known = known_partitions(sensor_instance(context), experiments)
    cursor = int(context.cursor or 0)
    by_experiment: dict[str, list[int]] = {}
    for request in online.pending_analysis_requests(platform, after_id=cursor):
        by_experiment.setdefault(request.partitions[0], []).append(request.id)
        cursor = request.id
    new_partitions = sorted(key for key in by_experiment if key not in known)
    requests = [dg.RunRequest(run_key=f"experiment-analysis:{ids[-1]}", partition_key=experiment_id,
                              tags={EXPERIMENT_REQUEST_TAG: ",".join(map(str, ids))})
                for experiment_id, ids in sorted(by_experiment.items())]
    return dg.SensorResult(
        run_requests=requests, cursor=str(cursor),
        dynamic_partitions_requests=[experiments.build_add_request(new_partitions)] if new_partitions else [],
        skip_reason=None if requests else "no experiment analysis requests")
