"""The one Definitions object of the platform's Dagster code location (loaded by workspace.yaml)."""

import dagster as dg

from assets import comparison, eval_dataset, gate_decision, gate_passed, metric_table, predictions, promotion
from jobs import evaluate_model_version, release_model_version, validate_dataset_version
from jobs.retention import retention_job, retention_schedule
from resources import EvalPlatformResource
from sensors import (
    dataset_version_sensor,
    eval_request_sensor,
    eval_run_failure_sensor,
    incident_sensor,
    promotion_request_sensor,
    recompute_request_sensor,
)

defs = dg.Definitions(
    assets=[eval_dataset, predictions, metric_table, comparison, gate_decision, promotion],
    asset_checks=[gate_passed],
    jobs=[evaluate_model_version, validate_dataset_version, release_model_version, retention_job],
    schedules=[retention_schedule],
    sensors=[eval_request_sensor, dataset_version_sensor, eval_run_failure_sensor, promotion_request_sensor,
             recompute_request_sensor, incident_sensor],
    resources={"platform": EvalPlatformResource()},
)
