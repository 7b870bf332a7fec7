"""What Dagster says of a launch: the sensor layer's side of :mod:`eval_platform.evaluation.launches`.

A launch is found by its tag (``eval_platform/launch``), which Dagster copies onto every retry of the run;
a claimed row names the Dagster run that claimed it, whose retry chain (Dagster's run group) is looked at
as a whole: the launch is in progress while any run of the chain is, or while a failed run announces a
retry (``dagster/will_retry``) that the retry daemon has not yet created (bounded by the grace period).
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import WILL_RETRY_TAG

from eval_platform.core.failures import describe_run_failure
from eval_platform.evaluation.launches import LaunchObservation, LaunchState, RetryPolicy

#: Tag of every run a sensor launches for queued eval runs (and of the runs of a recompute backfill).
LAUNCH_TAG = "eval_platform/launch"

def failure_cause(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The cause of a failed run in one line: its step errors when a step raised, else the run's failure."""
    step_errors, run_failure = [], ""
    for entry in instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error if event.step_failure_data else None
            while error is not None and (error.cause or error.context) is not None and \
                    error.cls_name in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"):
                error = error.cause or error.context  # Dagster's wrapper: the user code's own error says what happened
            step_errors.append(f"{event.step_key}: {error.message.strip() if error else entry.message}")
        else:
            run_failure = event.message or entry.message or ""
    if step_errors:  # a step raised: its error is the cause
        return f"Dagster run {run.run_id}: {'; '.join(step_errors)}"[:1500]
    # no step error: the worker died or the run never started; name the signal when the worker was killed
    return f"Dagster run {run.run_id}: {describe_run_failure(run_failure or f'the run {run.status.value.lower()}')}"[:1500]


def _chain(instance: dg.DagsterInstance, records: list, policy: RetryPolicy) -> LaunchObservation:
    if not records:
        return LaunchObservation(LaunchState.MISSING)
    if any(not record.dagster_run.is_finished for record in records):
        return LaunchObservation(LaunchState.IN_PROGRESS)
    last = max(records, key=lambda record: record.create_timestamp)
    run = last.dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return LaunchObservation(LaunchState.SUCCEEDED, f"Dagster run {run.run_id} succeeded without evaluating it")
    if run.status == dg.DagsterRunStatus.CANCELED:
        return LaunchObservation(LaunchState.CANCELED, f"Dagster run {run.run_id} was canceled")
    ended_at = last.end_time or last.update_timestamp.timestamp()
    if run.tags.get(WILL_RETRY_TAG) == "true" and time.time() - ended_at < policy.launch_grace_seconds:
        return LaunchObservation(LaunchState.IN_PROGRESS)  # Dagster's retry daemon is about to re-execute it
    return LaunchObservation(LaunchState.FAILED, failure_cause(instance, run))


def observe_launch(instance: dg.DagsterInstance, launch_key: str, policy: RetryPolicy) -> LaunchObservation:
    return _chain(instance, list(instance.get_run_records(dg.RunsFilter(tags={LAUNCH_TAG: launch_key}))), policy)


def retry_chain(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The ids of a run's retry chain (the run itself, the run it retried, ...)."""
    group = instance.get_run_group(run_id) if instance.get_run_by_id(run_id) else None
    return [run.run_id for run in group[1]] if group else [run_id]


def observe_dagster_run(instance: dg.DagsterInstance, run_id: str, policy: RetryPolicy) -> LaunchObservation:
    ids = retry_chain(instance, run_id)
    return _chain(instance, list(instance.get_run_records(dg.RunsFilter(run_ids=ids))), policy)
