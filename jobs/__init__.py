"""Jobs the sensors launch: validate a dataset version; evaluate an eval cell; decide a model version's gate;
release a model version. (Dagster asset jobs hold assets of one partitions definition: the cells' assets and
the per-model-version gate are two jobs; a backfill may span both.)"""

import dagster as dg

from assets import comparison, eval_dataset, gate_decision, gate_passed, judgments, metric_table, predictions, promotion
from assets.evaluation import GATE_STATUS
from assets.experiments import online_gate, online_gate_passed

evaluate_eval_cell = dg.define_asset_job(
    "evaluate_eval_cell",
    selection=dg.AssetSelection.assets(predictions, judgments, metric_table, comparison).without_checks()
    | dg.AssetSelection.checks_for_assets(metric_table),
    description="Predictions, judgments, metric table and comparison of one eval cell (a model version on a dataset version).",
    # the steps run one after another; one process saves re-importing the stack for every step
    executor_def=dg.in_process_executor,
)

decide_gate = dg.define_asset_job(
    "decide_gate",
    # the gate's blocking check guards promotions; here a failing gate is a result (gate_status), not a failed run
    selection=dg.AssetSelection.assets(gate_decision).without_checks()
    | dg.AssetSelection.checks(dg.AssetCheckKey(gate_decision.key, GATE_STATUS)),
    description="The gate decision of one model version over its eval cells, with its at-a-glance status check.",
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
    # gate_decision itself is not rematerialized: its partition keeps the evaluation's lineage; the blocking
    # check decides the gate again and stops the promotion unless it lets it through
    selection=dg.AssetSelection.assets(online_gate, promotion) | dg.AssetSelection.checks(gate_passed, online_gate_passed),
    description=("Check the offline gate (decided again) and decide the online gate, then promote: their blocking "
                 "checks stop the promotion unless both let it through."),
    executor_def=dg.in_process_executor,
)

__all__ = ["decide_gate", "evaluate_eval_cell", "release_model_version", "validate_dataset_version"]
