"""Driving the real Dagster definitions on a real instance, as the daemon would."""

import dagster as dg

from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster import definitions
from eval_platform_dagster.resources import EvalPlatformResource


def resources(service: EvalPlatform) -> dict:
    return {"platform": EvalPlatformResource(home=str(service.config.home), db_url=service.config.db_url,
                                             store_url=service.config.store_url)}


def tick(sensor, instance, service, cursor=None):
    """Evaluate a sensor once through Dagster's own tick evaluation (which validates what it returns, as the
    daemon does: a result the daemon would reject raises here) and apply its partition requests."""
    repository = definitions.defs.get_repository_def()
    # built as the code server builds it for the daemon (from the instance's ref, which is what lets a run
    # request name a partition the same tick adds)
    with dg.SensorEvaluationContext(instance.get_ref(), last_tick_completion_time=None, last_run_key=None, cursor=cursor,
                                    log_key=None, repository_name=repository.name, repository_def=repository,
                                    sensor_name=sensor.name, resources=resources(service)) as context:
        result = sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def execute(job_name: str, instance, service, partition_key: str, tags=None, raise_on_error=True, selection=None):
    job = definitions.defs.resolve_job_def(job_name)
    if selection is not None:
        job = job.get_subset(asset_selection=set(selection))
    return job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags or {},
                                  resources=resources(service), raise_on_error=raise_on_error)


def run_requests(sensor, instance, service, job_name="evaluate_eval_cell"):
    """Tick the sensor and execute every run it requests; returns the requests."""
    requests = tick(sensor, instance, service).run_requests
    for request in requests:
        execute(job_name, instance, service, request.partition_key, request.tags)
    return requests
