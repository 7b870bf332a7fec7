"""Sensors: the bridge from registry requests to Dagster runs, backfills and asset-check results."""

from eval_platform_dagster.sensors.datasets import dataset_version_sensor
from eval_platform_dagster.sensors.evaluations import eval_request_sensor, eval_run_failure_sensor
from eval_platform_dagster.sensors.experiments import experiment_request_sensor
from eval_platform_dagster.sensors.gates import gate_sensor
from eval_platform_dagster.sensors.incidents import incident_sensor
from eval_platform_dagster.sensors.judge_licenses import judge_license_sensor
from eval_platform_dagster.sensors.migrations import partition_migration_sensor
from eval_platform_dagster.sensors.promotions import promotion_request_sensor
from eval_platform_dagster.sensors.recompute import recompute_request_sensor

__all__ = ["dataset_version_sensor", "eval_request_sensor", "eval_run_failure_sensor", "experiment_request_sensor", "gate_sensor",
           "incident_sensor", "judge_license_sensor", "partition_migration_sensor", "promotion_request_sensor", "recompute_request_sensor"]
