"""Dagster assets: the dataset, prediction set, metric table, comparison and gate decision."""

from assets.datasets import eval_dataset
from assets.evaluation import comparison, gate_decision, metric_table, predictions
from assets.partitions import REQUESTED_TAG, dataset_versions, model_versions

__all__ = ["REQUESTED_TAG", "comparison", "dataset_versions", "eval_dataset", "gate_decision", "metric_table",
           "model_versions", "predictions"]
