"""Promotion requests to release runs: each request row becomes one run of the release job."""

import dagster as dg

from eval_platform.core.states import RequestKind
from eval_platform.platform import requests
from eval_platform_dagster.assets import PROMOTION_REQUEST_TAG
from eval_platform_dagster.jobs.release import release_model_version
from eval_platform_dagster.sensors.instance import sensor_platform
from eval_platform_dagster.sensors.intervals import SENSOR_INTERVAL_SECONDS


@dg.sensor(job=release_model_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def promotion_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Run the release job (gate decision, then the promotion it guards) for each promotion request.

    The cursor (the last request launched) is committed with the tick, so a tick that fails launches
    nothing and forgets nothing; the promotion asset marks its request done."""
    platform = sensor_platform(context)
    cursor = int(context.cursor or 0)
    run_requests = []
    for request in requests.pending_requests(platform, RequestKind.PROMOTION, after_id=cursor):
        run_requests.append(dg.RunRequest(run_key=f"promotion:{request.id}", partition_key=request.partitions[0],
                                          tags={PROMOTION_REQUEST_TAG: str(request.id)}))
        cursor = request.id
    return dg.SensorResult(run_requests=run_requests, cursor=str(cursor),
                           skip_reason=None if run_requests else "no promotion requests")
