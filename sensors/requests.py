"""Turn registry rows into Dagster runs, and make sure each of them ends.

Registering a model version queues its eval runs in the registry; ``eval_request_sensor`` reconciles the
queue with what Dagster did (:mod:`eval_platform.evaluation.launches`): rows of a launch that failed, was canceled or
never started go back to the queue after a backoff or fail with the cause once their attempts are spent,
and due rows get one new launch per model version, under a run key of their own (a relaunch is never
skipped as "already requested"). ``eval_run_failure_sensor`` settles the rows of any failed run at once,
UI materializations included; ``dataset_version_sensor`` validates each new dataset version and retries a
validation whose run died.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from assets import REQUESTED_TAG, dataset_versions, model_versions
from assets.partitions import cell_key
from eval_platform.evaluation import launches, runner
from jobs import evaluate_eval_cell, validate_dataset_version
from resources import EvalPlatformResource
from sensors.instance import sensor_instance, sensor_platform
from sensors.launch_state import LAUNCH_TAG, failure_cause, observe_dagster_run, observe_launch, retry_chain

#: Sensors of requests somebody waits on (an eval, a dataset validation, a promotion, a gate): every pass of the
#: sensor daemon, which runs every 5 s and evaluates the due sensors one after another. Under 5 s on purpose: at
#: exactly 5 s a sensor evaluated later in one pass than in the previous one is not yet due and waits a whole
#: pass (bench/bench_cycle.py saw registrations wait up to 9.4 s for their run). Each such sensor costs the idle
#: daemon and code server about 0.4 CPU-s a minute.
SENSOR_INTERVAL_SECONDS = 4
#: Sensors of background work (incidents shown on the lineage, recomputes, experiment analyses).
BACKGROUND_SENSOR_INTERVAL_SECONDS = 14  # every third pass (under 15 s: see above)
#: Tag of a dataset validation run: the dataset version it validates (on Dagster's retries too).
DATASET_TAG = "eval_platform/dataset_version"


@dg.sensor(job=evaluate_eval_cell, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def eval_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Launch the evaluation of every eval cell (model version x dataset version) with due queued eval runs;
    retry or fail the rows of launches that ended without evaluating them."""
    service = sensor_platform(context)
    policy = launches.RetryPolicy.from_env()
    instance = sensor_instance(context)
    known = set(instance.get_dynamic_partitions(model_versions.name))
    new_partitions = [model.key for model in service.models() if model.key not in known]
    known_datasets = set(instance.get_dynamic_partitions(dataset_versions.name))
    outcome = launches.reconcile(service, lambda key: observe_launch(instance, key, policy),
                                 lambda run_id: observe_dagster_run(instance, run_id, policy), policy)
    for model_key in sorted(outcome.models_to_decide):
        runner.decide_model_version(service, model_key)  # no_decision while retrying, or with the failure's cause
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


def _validation_runs(instance: dg.DagsterInstance, dataset_key: str) -> list[dg.DagsterRun]:
    return [record.dagster_run for record in instance.get_run_records(dg.RunsFilter(tags={DATASET_TAG: dataset_key}))]


@dg.sensor(job=validate_dataset_version, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def dataset_version_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Add a partition for each new dataset version and materialize it (running its checks); relaunch a
    validation whose runs all ended failed or canceled, up to the retry policy's attempts.

    The cursor is the last dataset record validated and the update time of the last ended validation run
    looked at, so a tick reads only the versions registered and the validation runs that ended since."""
    instance = sensor_instance(context)
    policy = launches.RetryPolicy.from_env()
    known = set(instance.get_dynamic_partitions(dataset_versions.name))
    # cursor: the last registry id validated, and the update time of the last ended validation run looked at.
    # (A partition may exist before its validation: the eval-request sensor adds a cell's dataset version too.)
    if not context.cursor:
        state = {"ended": 0.0, "validated": 0}
    elif context.cursor.startswith("{"):
        state = json.loads(context.cursor)
    else:  # a cursor of before eval cells, the time alone: the versions without a partition are the new ones, once
        state = {"ended": float(context.cursor), "validated": None}
    records = sensor_platform(context).datasets()
    validated = state["validated"]
    new = [record.key for record in records if (record.key not in known if validated is None else record.id > validated)]
    requests = [dg.RunRequest(run_key=f"dataset:{key}", partition_key=key, tags={DATASET_TAG: key}) for key in new]
    cursor = float(state["ended"] or 0)
    ended = instance.get_run_records(dg.RunsFilter(
        job_name=validate_dataset_version.name, statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        updated_after=datetime.fromtimestamp(cursor, tz=UTC) if cursor else None))
    newest = cursor
    for record in ended:
        stamp = record.update_timestamp.timestamp()
        newest = max(newest, stamp)
        run = record.dagster_run
        key = run.tags.get(DATASET_TAG) or run.tags.get("dagster/partition")
        if stamp <= cursor or not key or run.tags.get(WILL_RETRY_TAG) == "true" or key in new:
            continue
        attempts = _validation_runs(instance, key)
        if any(not r.is_finished or r.status == dg.DagsterRunStatus.SUCCESS for r in attempts):
            continue
        if len(attempts) >= policy.max_attempts:
            context.log.warning(f"dataset version {key}: validation failed {len(attempts)} time(s), not retried; last: "
                                f"{failure_cause(instance, run)}")
            continue
        requests.append(dg.RunRequest(run_key=f"dataset:{key}:{len(attempts) + 1}", partition_key=key, tags={DATASET_TAG: key}))
    to_add = [key for key in new if key not in known]
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"ended": newest, "validated": max([record.id for record in records], default=validated or 0)}),
        dynamic_partitions_requests=[dataset_versions.build_add_request(to_add)] if to_add else [],
        skip_reason=None if requests else "no new dataset versions",
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def eval_run_failure_sensor(context: dg.RunFailureSensorContext, platform: EvalPlatformResource) -> None:
    """Any failed run of this code location (the sensors' launches, a backfill, a materialization from the
    UI) settles the eval runs it claimed or carried: requeued for another attempt, or failed with the
    cause, and the model version's gate decided again. A run Dagster will retry is left to its retry."""
    run = context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return
    service = platform.get()
    outcome = launches.settle_dagster_run(service, retry_chain(context.instance, run.run_id), run.tags.get(LAUNCH_TAG),
                                          failure_cause(context.instance, run))
    for model_key in sorted(outcome.models_to_decide):
        runner.decide_model_version(service, model_key)
