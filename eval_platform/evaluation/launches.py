"""Every queued eval run ends: in a run, or in a recorded failure.

The registry's queued rows are requests; the orchestrator turns them into launches. A launch can fail to
start (the run coordinator refused it, the code server timed out), die before it claims its rows (a worker
killed while waiting for a pool slot), die after (an out-of-memory kill, a canceled run), or succeed
without evaluating them (a partial materialization). This module decides, from what the orchestrator
reports about each launch, what happens to the rows it carried: wait, launch again after a backoff, or fail
with the cause once the attempts are spent (the model version's gate then says ``no_decision`` with that
cause). It knows nothing of Dagster: the sensor layer observes the launches and applies the plan.

Bounds: at most ``max_attempts`` launches per row; between two, ``backoff_seconds`` doubled per attempt
(capped); a launch the orchestrator has no trace of after ``launch_grace_seconds`` counts as failed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

from sqlalchemy import select

from eval_platform.core.states import RunStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun
from eval_platform.registry.schema import utcnow


class LaunchState(StrEnum):
    """What the orchestrator says of one launch (a run and the retries it made of it)."""

    IN_PROGRESS = "in_progress"  # queued, starting or running: wait
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    MISSING = "missing"  # no run carries the launch (yet): the launch request never reached the orchestrator


@dataclass(frozen=True)
class LaunchObservation:
    """What the orchestrator reported of a launch or of one of its runs."""

    state: LaunchState
    cause: str = ""  # why the launch's last run ended, as the orchestrator reported it

    @property
    def ended(self) -> bool:
        return self.state in (LaunchState.SUCCEEDED, LaunchState.FAILED, LaunchState.CANCELED)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a row whose launch ended without evaluating it is launched again."""

    max_attempts: int = 3
    backoff_seconds: float = 15.0
    max_backoff_seconds: float = 600.0
    launch_grace_seconds: float = 300.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The operator's settings: ``EVAL_PLATFORM_MAX_LAUNCH_ATTEMPTS``, ``EVAL_PLATFORM_RETRY_BACKOFF_SECONDS``,
        ``EVAL_PLATFORM_LAUNCH_GRACE_SECONDS``."""
        def number(name: str, default: float) -> float:
            raw = os.environ.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = float(raw)
            except ValueError as error:
                raise ValueError(f"{name} must be a number, got {raw!r}") from error
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {raw!r}")
            return value

        return cls(max_attempts=max(1, int(number("EVAL_PLATFORM_MAX_LAUNCH_ATTEMPTS", cls.max_attempts))),
                   backoff_seconds=number("EVAL_PLATFORM_RETRY_BACKOFF_SECONDS", cls.backoff_seconds),
                   launch_grace_seconds=number("EVAL_PLATFORM_LAUNCH_GRACE_SECONDS", cls.launch_grace_seconds))

    def backoff(self, attempts_made: int) -> timedelta:
        """Wait before launch ``attempts_made + 1``: the base doubled per attempt already made, capped."""
        seconds = self.backoff_seconds * (2 ** max(0, attempts_made - 1))
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


@dataclass(frozen=True)
class Launch:
    """One orchestrator launch to make: the queued rows of one eval cell (a model version on a dataset version)."""

    key: str  # unique per attempt: the run key and a tag on the launched run (and on its retries)
    model_key: str
    dataset_key: str
    run_ids: tuple[str, ...]
    attempt: int  # the highest launch attempt among its rows


@dataclass
class Reconciliation:
    """The plan of one pass over the unfinished rows: what to launch, and what was requeued, failed or left waiting."""

    launches: list[Launch] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)  # rows back in the queue, waiting for their backoff
    failed: list[str] = field(default_factory=list)  # rows whose attempts are spent, failed with the cause
    waiting: list[str] = field(default_factory=list)  # rows of launches still in progress, or backing off
    models_to_decide: set[str] = field(default_factory=set)  # model versions whose gate must be decided again


def new_launch_key() -> str:
    return f"launch-{uuid.uuid4().hex[:16]}"


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back (they are stored in UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _requeue_or_fail(run: EvalRun, cause: str, policy: RetryPolicy, now: datetime, outcome: Reconciliation) -> None:
    """A launch carrying ``run`` ended without finishing it: back to the queue after a backoff, or failed
    with the cause when no attempt is left."""
    attempts = max(run.launch_attempts or 0, 1)  # a row claimed by a hand-launched run made one attempt
    run.launch_key, run.dagster_run_id = None, None
    run.results = run.comparison = None
    run.metrics_hash = None
    if attempts >= policy.max_attempts:
        run.status, run.finished_at = RunStatus.FAILED, now
        run.status_reason = (f"not evaluated after {attempts} launch attempt(s); the last ended: {cause}")[:2000]
        outcome.failed.append(run.run_id)
        outcome.models_to_decide.add(run.model_key)
        return
    run.status = RunStatus.QUEUED
    run.next_launch_at = now + policy.backoff(attempts)
    run.status_reason = (f"launch attempt {attempts} of {policy.max_attempts} ended: {cause}; "
                         f"next attempt after {run.next_launch_at:%Y-%m-%d %H:%M:%S} UTC")[:2000]
    outcome.retrying.append(run.run_id)
    outcome.models_to_decide.add(run.model_key)


def settle_dagster_run(platform: EvalPlatform, dagster_run_ids: Iterable[str], launch_key: str | None, cause: str,
                       policy: RetryPolicy | None = None, now: datetime | None = None) -> Reconciliation:
    """An orchestrator run ended for good (failed with no retry coming, or was canceled): the rows it
    claimed (running under any run of its retry chain) and the rows its launch carried that it never
    claimed (still queued under ``launch_key``) are requeued or failed."""
    policy, now = policy or RetryPolicy.from_env(), now or utcnow()
    outcome = Reconciliation()
    ids = [run_id for run_id in dagster_run_ids if run_id]
    with platform.registry.session() as session:
        claimed = list(session.scalars(select(EvalRun).where(EvalRun.dagster_run_id.in_(ids), EvalRun.status == RunStatus.RUNNING))) if ids else []
        carried = (list(session.scalars(select(EvalRun).where(EvalRun.launch_key == launch_key, EvalRun.status == RunStatus.QUEUED)))
                   if launch_key else [])
        for run in [*claimed, *carried]:
            _requeue_or_fail(run, cause, policy, now, outcome)
    return outcome


def reconcile(platform: EvalPlatform, observe_launch: Callable[[str], LaunchObservation],
              observe_dagster_run: Callable[[str], LaunchObservation], policy: RetryPolicy | None = None,
              now: datetime | None = None) -> Reconciliation:
    """One pass over the unfinished rows, in one transaction: the plan the sensor carries out.

    * running rows whose orchestrator run has ended without finishing them are requeued or failed;
    * queued rows whose launch ended (or never reached the orchestrator within the grace period) are
      requeued after a backoff, or failed when their attempts are spent;
    * queued rows that are due (never launched, or past their backoff) get one new launch per eval cell.
    """
    policy, now = policy or RetryPolicy.from_env(), now or utcnow()
    outcome = Reconciliation()
    # each launch and each orchestrator run observed once per pass, however many rows it carries
    observe_launch, observe_dagster_run = cache(observe_launch), cache(observe_dagster_run)
    with platform.registry.session() as session:
        unfinished = list(session.scalars(select(EvalRun).where(EvalRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)))
                                          .order_by(EvalRun.requested_at, EvalRun.run_id).with_for_update()))
        due: dict[tuple[str, str], list[EvalRun]] = {}
        for run in unfinished:
            if run.status == RunStatus.RUNNING:
                _settle_running(run, observe_dagster_run, policy, now, outcome)
            elif not _waits_for_launch(run, observe_launch, policy, now, outcome) and not _backing_off(run, now, outcome):
                due.setdefault((run.model_key, run.dataset_key), []).append(run)
        outcome.launches += [_launch(model_key, dataset_key, runs, now) for (model_key, dataset_key), runs in sorted(due.items())]
    return outcome


def _settle_running(run: EvalRun, observe_dagster_run: Callable[[str], LaunchObservation], policy: RetryPolicy,
                    now: datetime, outcome: Reconciliation) -> None:
    """A running row whose orchestrator run ended without finishing it, or never showed up within the grace
    period, is requeued or failed."""
    if not run.dagster_run_id:
        return
    seen = observe_dagster_run(run.dagster_run_id)
    started_at = _aware(run.started_at) or now
    if seen.ended or (seen.state == LaunchState.MISSING and now - started_at >= timedelta(seconds=policy.launch_grace_seconds)):
        _requeue_or_fail(run, seen.cause or f"Dagster run {run.dagster_run_id} {seen.state} without finishing it", policy, now, outcome)


def _waits_for_launch(run: EvalRun, observe_launch: Callable[[str], LaunchObservation], policy: RetryPolicy,
                      now: datetime, outcome: Reconciliation) -> bool:
    """Whether a queued row is kept out of this pass's launches by its last launch: still in progress (it
    waits), or ended without evaluating it with no attempt left (failed). A launch that ended with attempts
    left requeues the row, which then waits for its backoff."""
    if not run.launch_key:
        return False
    seen = observe_launch(run.launch_key)
    launched_at = _aware(run.launched_at) or now
    if seen.state == LaunchState.IN_PROGRESS or (
            seen.state == LaunchState.MISSING and now - launched_at < timedelta(seconds=policy.launch_grace_seconds)):
        outcome.waiting.append(run.run_id)
        return True
    cause = seen.cause or {
        LaunchState.SUCCEEDED: "its run succeeded without evaluating this eval run",
        LaunchState.MISSING: f"no orchestrator run started within {policy.launch_grace_seconds:.0f} s",
    }.get(seen.state, f"its run {seen.state}")
    _requeue_or_fail(run, cause, policy, now, outcome)
    return run.status != RunStatus.QUEUED


def _backing_off(run: EvalRun, now: datetime, outcome: Reconciliation) -> bool:
    """Whether a queued row waits for its backoff after a failed launch."""
    next_at = _aware(run.next_launch_at)
    if next_at is not None and next_at > now:
        outcome.waiting.append(run.run_id)
        return True
    return False


def _launch(model_key: str, dataset_key: str, runs: list[EvalRun], now: datetime) -> Launch:
    """One new launch of an eval cell's due rows, recorded on each of them."""
    key = new_launch_key()
    for run in runs:
        run.launch_attempts = (run.launch_attempts or 0) + 1
        run.launch_key, run.launched_at, run.next_launch_at = key, now, None
    return Launch(key=key, model_key=model_key, dataset_key=dataset_key, run_ids=tuple(r.run_id for r in runs),
                  attempt=max(r.launch_attempts for r in runs))


__all__ = ["Launch", "LaunchObservation", "LaunchState", "Reconciliation", "RetryPolicy", "new_launch_key", "reconcile",
           "settle_dagster_run"]
