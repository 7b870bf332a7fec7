"""Jobs the sensors launch: validate a dataset version; evaluate a model version."""

import dagster as dg

from assets.experiments import online_gate, online_gate_passed

from assets import comparison, eval_dataset, gate_decision, gate_passed, judgments, metric_table, predictions, promotion

evaluate_model_version = dg.define_asset_job(
    "evaluate_model_version",
    # the gate's blocking check guards promotions; here a failing gate is a result, not a failed run
    selection=dg.AssetSelection.assets(predictions, judgments, metric_table, comparison, gate_decision).without_checks()
    | dg.AssetSelection.checks_for_assets(metric_table),
    description="Predictions, judgments, metric table, comparison and gate decision of one model version.",
    # the steps run one after another; one process saves re-importing the stack for every step
    executor_def=dg.in_process_executor,
)

validate_dataset_version = dg.define_asset_job(
    "validate_dataset_version",
    selection=dg.AssetSelection.assets(eval_dataset),
    description="Materialize a dataset version and run its Great Expectations checks.",
    executor_def=dg.in_process_executor,
)

release_model_version = dg.define_asset_job(
    "release_model_version",
    selection=dg.AssetSelection.assets(gate_decision, online_gate, promotion) | dg.AssetSelection.checks(gate_passed, online_gate_passed),
    description=("Decide the offline and the online gate again, then promote: their blocking checks stop the promotion "
                 "unless both let it through."),
    executor_def=dg.in_process_executor,
)

__all__ = ["evaluate_model_version", "release_model_version", "validate_dataset_version"]
