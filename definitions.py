"""The one Definitions object of the platform's Dagster code location (loaded by workspace.yaml)."""

import dagster as dg

from assets import comparison, eval_dataset, gate_decision, metric_table, predictions
from jobs import evaluate_model_version, validate_dataset_version
from resources import EvalPlatformResource
from sensors import dataset_version_sensor, eval_request_sensor, eval_run_failure_sensor

defs = dg.Definitions(
    assets=[eval_dataset, predictions, metric_table, comparison, gate_decision],
    jobs=[evaluate_model_version, validate_dataset_version],
    sensors=[eval_request_sensor, dataset_version_sensor, eval_run_failure_sensor],
    resources={"platform": EvalPlatformResource()},
)
