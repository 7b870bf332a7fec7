"""The job the promotion sensor launches: release one model version through its gates' blocking checks."""

import dagster as dg

from eval_platform_dagster.assets import gate_passed, promotion
from eval_platform_dagster.assets.evaluation import RELEASE_JOB
from eval_platform_dagster.assets.experiments import online_gate, online_gate_passed

release_model_version = dg.define_asset_job(
    RELEASE_JOB,
    # gate_decision itself is not rematerialized: its partition keeps the evaluation's lineage; the blocking
    # check decides the gate again and stops the promotion unless it lets it through
    selection=dg.AssetSelection.assets(online_gate, promotion) | dg.AssetSelection.checks(gate_passed, online_gate_passed),
    description=("Check the offline gate (decided again) and decide the online gate, then promote: their blocking "
                 "checks stop the promotion unless both let it through."),
    executor_def=dg.in_process_executor,
)
