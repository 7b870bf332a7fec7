"""Queued eval runs to Dagster runs, and every one of them ends.

Registering a model version queues its eval runs in the registry; ``eval_request_sensor`` reconciles the
queue with what Dagster did (:mod:`eval_platform.evaluation.launches`): rows of a launch that failed, was canceled or
never started go back to the queue after a backoff or fail with the cause once their attempts are spent,
and due rows get one new launch per eval cell, under a run key of their own (a relaunch is never
skipped as "already requested"). ``eval_run_failure_sensor`` settles the rows of any failed run at once,
UI materializations included.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from eval_platform.evaluation import launches, runner
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.assets import REQUESTED_TAG, dataset_versions, model_versions
from eval_platform_dagster.assets.partitions import cell_key
from eval_platform_dagster.jobs.evaluation import evaluate_eval_cell
from eval_platform_dagster.resources import EvalPlatformResource
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import SENSOR_INTERVAL_SECONDS
from eval_platform_dagster.sensors.launch_state import LAUNCH_TAG, failure_cause, observe_dagster_run, observe_launch, retry_chain


@dg.sensor(job=evaluate_eval_cell, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def eval_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch the evaluation of every eval cell (model version x dataset version) with due queued eval runs;
    retry or fail the rows of launches that ended without evaluating them."""
    platform = sensor_platform(context)
    policy = launches.RetryPolicy.from_env()
    instance = sensor_instance(context)
    known = known_partitions(instance, model_versions)
    new_partitions = [model.key for model in platform.models() if model.key not in known]
    known_datasets = known_partitions(instance, dataset_versions)
    outcome = launches.reconcile(platform, lambda key: observe_launch(instance, key, policy),
                                 lambda run_id: observe_dagster_run(instance, run_id, policy), policy)
    for model_key in sorted(outcome.models_to_decide):
        runner.decide_model_version(platform, model_key)  # no_decision while retrying, or with the failure's cause
    requests = [
        dg.RunRequest(run_key=f"eval:{launch.model_key}:{launch.dataset_key}:{launch.key}",
                      partition_key=cell_key(launch.model_key, launch.dataset_key),
                      tags={REQUESTED_TAG: "true", "eval_platform/model": launch.model_key,
                            "eval_platform/dataset": launch.dataset_key, LAUNCH_TAG: launch.key,
                            "eval_platform/launch_attempt": str(launch.attempt)})
        for launch in outcome.launches
    ]
    # a cell's dataset version is normally added by the dataset sensor; a launch may come first
    new_datasets = sorted({launch.dataset_key for launch in outcome.launches} - known_datasets)
    if outcome.retrying or outcome.failed:
        context.log.info(f"requeued {len(outcome.retrying)} eval run(s) after a failed launch, failed "
                         f"{len(outcome.failed)} whose attempts were spent: {outcome.failed}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=([model_versions.build_add_request(new_partitions)] if new_partitions else [])
        + ([dataset_versions.build_add_request(new_datasets)] if new_datasets else []),
        skip_reason=None if requests or new_partitions else (
            f"{len(outcome.waiting)} eval run(s) in progress or backing off" if outcome.waiting else "no queued eval runs"),
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def eval_run_failure_sensor(context: dg.RunFailureSensorContext, platform: EvalPlatformResource) -> None:
    """Any failed run of this code location (the sensors' launches, a backfill, a materialization from the
    UI) settles the eval runs it claimed or carried: requeued for another attempt, or failed with the
    cause, and the model version's gate decided again. A run Dagster will retry is left to its retry."""
    run = context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) != "true":
        _settle_failed_run(platform.get(), context.instance, run)


def _settle_failed_run(platform: EvalPlatform, instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """The rows the failed run (or its retry chain) claimed or carried, requeued or failed; their gates decided again."""
    outcome = launches.settle_dagster_run(platform, retry_chain(instance, run.run_id), run.tags.get(LAUNCH_TAG),
                                          failure_cause(instance, run))
    for model_key in sorted(outcome.models_to_decide):
        runner.decide_model_version(platform, model_key)
