"""Dagster assets: the dataset, prediction set, judgments, metric table, comparison and gate decision."""

from eval_platform_dagster.assets.datasets import eval_dataset
from eval_platform_dagster.assets.evaluation import comparison, gate_decision, gate_passed, judgments, metric_table, predictions, promotion
from eval_platform_dagster.assets.partitions import PROMOTION_REQUEST_TAG, REQUESTED_TAG, dataset_versions, eval_cells, model_versions

__all__ = ["PROMOTION_REQUEST_TAG", "REQUESTED_TAG", "comparison", "dataset_versions", "eval_cells", "eval_dataset", "gate_decision",
           "gate_passed", "judgments", "metric_table", "model_versions", "predictions", "promotion"]
