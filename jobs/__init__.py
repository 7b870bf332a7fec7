"""Jobs the sensors launch: validate a dataset version; evaluate a model version."""

import dagster as dg

from assets import comparison, eval_dataset, gate_decision, metric_table, predictions

evaluate_model_version = dg.define_asset_job(
    "evaluate_model_version",
    selection=dg.AssetSelection.assets(predictions, metric_table, comparison, gate_decision),
    description="Predictions, metric table, comparison and gate decision of one model version.",
)

validate_dataset_version = dg.define_asset_job(
    "validate_dataset_version",
    selection=dg.AssetSelection.assets(eval_dataset),
    description="Materialize a dataset version and run its Great Expectations checks.",
)

__all__ = ["evaluate_model_version", "validate_dataset_version"]
