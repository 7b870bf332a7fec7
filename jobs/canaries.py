"""The canary schedule: golden and canary datasets re-evaluated on the promoted model versions.

Each evaluation queues canary runs in the registry (:func:`eval_platform.evaluation.canaries.queue_canary_runs`)
and launches nothing itself: queued rows are requests, which the eval-request sensor turns into eval-cell runs
and ends (a run, or a recorded failure after its attempts), as it does for every queued row. It runs daily at
05:00 UTC; the operator sets another cron with ``EVAL_PLATFORM_CANARY_CRON`` (read when the code location loads).
"""

import os

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from eval_platform.evaluation.canaries import queue_canary_runs
from eval_platform_dagster.jobs.evaluation import evaluate_eval_cell
from eval_platform_dagster.resources import EvalPlatformResource

CANARY_CRON_ENV = "EVAL_PLATFORM_CANARY_CRON"
DEFAULT_CANARY_CRON = "0 5 * * *"


def canary_cron() -> str:
    """The operator's cron for the canary schedule (``EVAL_PLATFORM_CANARY_CRON``), else daily at 05:00 UTC."""
    cron = os.environ.get(CANARY_CRON_ENV, "").strip() or DEFAULT_CANARY_CRON
    if not is_valid_cron_string(cron):
        raise ValueError(f"{CANARY_CRON_ENV} must be a cron expression such as {DEFAULT_CANARY_CRON!r}, got {cron!r}")
    return cron


@dg.schedule(name="canary_schedule", cron_schedule=canary_cron(), execution_timezone="UTC", job=evaluate_eval_cell,
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Queue a fresh canary eval run of every promoted model version on each golden or canary dataset "
                         "of its eval plan; the eval-request sensor launches them and canary_metrics tracks the series.")
def canary_schedule(context: dg.ScheduleEvaluationContext, platform: EvalPlatformResource) -> dg.SkipReason:
    """Queue the canary runs (as the operator: every team's datasets and models) and launch nothing here."""
    outcome = queue_canary_runs(platform.get())
    for reason in outcome.skipped:
        context.log.info(f"no canary run: {reason}")
    shown = outcome.run_ids[:20] + (["..."] if len(outcome.run_ids) > 20 else [])
    return dg.SkipReason(f"queued {len(outcome.queued)} canary run(s) for the eval-request sensor: "
                         f"{', '.join(shown) or 'none'}; passed over {len(outcome.skipped)}")


__all__ = ["CANARY_CRON_ENV", "DEFAULT_CANARY_CRON", "canary_cron", "canary_schedule"]
