"""Turn registry rows into Dagster runs.

Registering a model version queues its eval runs in the registry; this sensor adds the version's
partition and launches one run per model version with queued work. The run key is derived from the
queued run ids, so a tick that sees the same requests again launches nothing new.
"""


import dagster as dg

from assets import REQUESTED_TAG, dataset_versions, model_versions
from eval_platform import runner
from eval_platform.hashing import json_hash, short
from jobs import evaluate_model_version, validate_dataset_version
from resources import EvalPlatformResource

SENSOR_INTERVAL_SECONDS = 5


@dg.sensor(job=evaluate_model_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def eval_request_sensor(context: dg.SensorEvaluationContext, platform: EvalPlatformResource) -> dg.SensorResult:
    """Launch the evaluation of every model version with queued eval runs."""
    service = platform.get()
    known = set(context.instance.get_dynamic_partitions(model_versions.name))
    new_partitions = [model.key for model in service.models() if model.key not in known]
    requests = [
        dg.RunRequest(
            run_key=f"eval:{model_key}:{short(json_hash(sorted(run.run_id for run in runs)), 16)}",
            partition_key=model_key,
            tags={REQUESTED_TAG: "true", "eval_platform/model": model_key},
        )
        for model_key, runs in sorted(service.queued_runs().items())
    ]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[model_versions.build_add_request(new_partitions)] if new_partitions else [],
        skip_reason=None if requests or new_partitions else "no queued eval runs",
    )


@dg.sensor(job=validate_dataset_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def dataset_version_sensor(context: dg.SensorEvaluationContext, platform: EvalPlatformResource) -> dg.SensorResult:
    """Add a partition for each new dataset version and materialize it (running its checks) once."""
    known = set(context.instance.get_dynamic_partitions(dataset_versions.name))
    new = [record.key for record in platform.get().datasets() if record.key not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"dataset:{key}", partition_key=key) for key in new],
        dynamic_partitions_requests=[dataset_versions.build_add_request(new)] if new else [],
        skip_reason=None if new else "no new dataset versions",
    )


@dg.run_failure_sensor(monitored_jobs=[evaluate_model_version], default_status=dg.DefaultSensorStatus.RUNNING)
def eval_run_failure_sensor(context: dg.RunFailureSensorContext, platform: EvalPlatformResource) -> None:
    """A Dagster run that died (even without reaching the assets' own error handling) fails its eval runs."""
    message = context.failure_event.message if context.failure_event else "Dagster run failed"
    service = platform.get()
    if service.fail_runs_of(context.dagster_run.run_id, message or "Dagster run failed"):
        partition = context.dagster_run.tags.get("dagster/partition")
        if partition:
            runner.decide_model_version(service, partition)
