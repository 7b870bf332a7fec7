"""Retention: a daily job that purges model outputs past their dataset's retention (see eval_platform.governance.retention)."""

import dagster as dg

from eval_platform.governance.retention import purge_expired
from eval_platform_dagster.resources import EvalPlatformResource


@dg.op(description="Delete predictions, judge verdicts (with their shards) and cached LLM calls past their dataset's retention; "
                   "metric tables and lineage stay.")
def purge_expired_predictions(context: dg.OpExecutionContext, platform: EvalPlatformResource) -> dict:
    report = purge_expired(platform.get())
    context.log.info(f"purge {report.purge_id}: {len(report.purged)} artifact(s) of {len(report.runs_marked)} run(s) purged, "
                     f"{report.cache_rows_deleted} cache row(s) and {report.llm_calls_deleted} LLM call(s) deleted, "
                     f"{len(report.deferred)} deferred (runs in progress)")
    context.add_output_metadata({
        "purged_artifacts": len(report.purged),
        "runs_marked": len(report.runs_marked),
        "cache_rows_deleted": report.cache_rows_deleted,
        "llm_calls_deleted": report.llm_calls_deleted,
        "judgments_purged": len(report.judgments_purged),
        "shard_artifacts_purged": report.shard_artifacts,
        "shard_index_entries_deleted": report.shard_index_entries,
        "deferred": len(report.deferred),
        "idempotency_keys_deleted": report.idempotency_keys_deleted,
        "report": dg.MetadataValue.json(report.as_dict()),
    })
    return report.as_dict()


@dg.job(description="Purge expired model outputs (predictions, judge verdicts, LLM calls) by dataset classification.",
        executor_def=dg.in_process_executor)
def retention_job():
    purge_expired_predictions()


retention_schedule = dg.ScheduleDefinition(
    name="daily_retention_purge",
    job=retention_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily purge of predictions past their retention (restricted 30 days, internal 365, public kept).",
)

__all__ = ["purge_expired_predictions", "retention_job", "retention_schedule"]
