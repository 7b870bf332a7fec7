"""Sensors: the bridge from registry requests to Dagster runs."""

from sensors.requests import dataset_version_sensor, eval_request_sensor, eval_run_failure_sensor

__all__ = ["dataset_version_sensor", "eval_request_sensor", "eval_run_failure_sensor"]
