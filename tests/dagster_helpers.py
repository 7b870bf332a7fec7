"""Driving the real Dagster definitions on a real instance, as the daemon would."""

import dagster as dg

import definitions
from eval_platform.platform import EvalPlatform
from resources import EvalPlatformResource


def resources(service: EvalPlatform) -> dict:
    return {"platform": EvalPlatformResource(home=str(service.config.home), db_url=service.config.db_url,
                                             store_url=service.config.store_url)}


def tick(sensor, instance, service, cursor=None):
    """Evaluate a sensor once and apply its partition requests, as the sensor daemon does."""
    context = dg.build_sensor_context(instance=instance, definitions=definitions.defs, resources=resources(service),
                                      cursor=cursor)
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def execute(job_name: str, instance, service, partition_key: str, tags=None, raise_on_error=True, selection=None):
    job = definitions.defs.resolve_job_def(job_name)
    if selection is not None:
        job = job.get_subset(asset_selection=set(selection))
    return job.execute_in_process(instance=instance, partition_key=partition_key, tags=tags or {},
                                  resources=resources(service), raise_on_error=raise_on_error)


def run_requests(sensor, instance, service, job_name="evaluate_model_version"):
    """Tick the sensor and execute every run it requests; returns the requests."""
    requests = tick(sensor, instance, service).run_requests
    for request in requests:
        execute(job_name, instance, service, request.partition_key, request.tags)
    return requests
