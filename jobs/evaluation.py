"""Jobs of the evaluation: one eval cell's steps, and one model version's gate decision. (Dagster asset jobs hold
assets of one partitions definition: the cells' assets and the per-model-version gate are two jobs; a backfill
may span both.)"""

import dagster as dg

from eval_platform_dagster.assets import comparison, gate_decision, judgments, metric_table, predictions
from eval_platform_dagster.assets.canaries import canary_metrics
from eval_platform_dagster.assets.evaluation import GATE_STATUS
from eval_platform_dagster.jobs.executors import deployment_executor

#: in-process by default; Celery workers when the deployment says so (jobs/executors.py)
EXECUTOR = deployment_executor()

evaluate_eval_cell = dg.define_asset_job(
    "evaluate_eval_cell",
    selection=dg.AssetSelection.assets(predictions, judgments, metric_table, comparison).without_checks()
    | dg.AssetSelection.checks_for_assets(metric_table)
    # materialized only by a cell run that evaluated canary runs (assets/canaries.py)
    | dg.AssetSelection.assets(canary_metrics),
    description="Predictions, judgments, metric table and comparison of one eval cell (a model version on a dataset version).",
    # in-process by default: the steps run one after another, and one process saves re-importing the stack for
    # every step; under the Celery profile each step runs on a worker of its kind's queue
    executor_def=EXECUTOR,
)

decide_gate = dg.define_asset_job(
    "decide_gate",
    # the gate's blocking check guards promotions; here a failing gate is a result (gate_status), not a failed run
    selection=dg.AssetSelection.assets(gate_decision).without_checks()
    | dg.AssetSelection.checks(dg.AssetCheckKey(gate_decision.key, GATE_STATUS)),
    description="The gate decision of one model version over its eval cells, with its at-a-glance status check.",
    executor_def=EXECUTOR,
)
