"""The one Definitions object of the platform's Dagster code location (loaded by workspace.yaml)."""

import dagster as dg

from eval_platform_dagster.assets import comparison, eval_dataset, gate_decision, gate_passed, judgments, metric_table, predictions, promotion
from eval_platform_dagster.assets.canaries import canary_metrics
from eval_platform_dagster.assets.experiments import experiment_analysis, online_gate, online_gate_passed
from eval_platform_dagster.assets.judge_licenses import judge_license
from eval_platform_dagster.jobs import decide_gate, evaluate_eval_cell, release_model_version, validate_dataset_version
from eval_platform_dagster.jobs.canaries import canary_schedule
from eval_platform_dagster.jobs.checks import report_check_results
from eval_platform_dagster.jobs.experiments import analyze_experiment_job
from eval_platform_dagster.jobs.judge_licenses import license_judge
from eval_platform_dagster.jobs.retention import retention_job, retention_schedule
from eval_platform_dagster.resources import PLATFORM_RESOURCE
from eval_platform_dagster.sensors import (
    dataset_version_sensor,
    eval_request_sensor,
    eval_run_failure_sensor,
    experiment_request_sensor,
    gate_sensor,
    incident_sensor,
    judge_license_sensor,
    partition_migration_sensor,
    promotion_request_sensor,
    recompute_request_sensor,
)

defs = dg.Definitions(
    assets=[eval_dataset, predictions, judgments, metric_table, comparison, gate_decision, promotion,
            experiment_analysis, online_gate, canary_metrics, judge_license],
    asset_checks=[gate_passed, online_gate_passed],
    jobs=[evaluate_eval_cell, decide_gate, validate_dataset_version, release_model_version, analyze_experiment_job,
          retention_job, report_check_results, license_judge],
    schedules=[retention_schedule, canary_schedule],
    sensors=[eval_request_sensor, dataset_version_sensor, eval_run_failure_sensor, promotion_request_sensor,
             recompute_request_sensor, incident_sensor, gate_sensor, experiment_request_sensor,
             partition_migration_sensor, judge_license_sensor],
    resources={"platform": PLATFORM_RESOURCE},
)
