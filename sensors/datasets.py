"""Dataset versions to validation runs: each new version validated once, a validation whose run died retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from eval_platform.evaluation import launches
from eval_platform_dagster.assets import dataset_versions
from eval_platform_dagster.jobs.datasets import validate_dataset_version
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import SENSOR_INTERVAL_SECONDS
from eval_platform_dagster.sensors.launch_state import failure_cause

#: Tag of a dataset validation run: the dataset version it validates (on Dagster's retries too).
DATASET_TAG = "eval_platform/dataset_version"


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
    known = known_partitions(instance, dataset_versions)
    # cursor: the last registry id validated, and the update time of the last ended validation run looked at.
    # (A partition may exist before its validation: the eval-request sensor adds a cell's dataset version too.)
    state: dict[str, Any]
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
