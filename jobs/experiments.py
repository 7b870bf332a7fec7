"""The job the experiment sensor launches: one experiment's analysis."""

import dagster as dg

from eval_platform_dagster.assets.experiments import experiment_analysis

analyze_experiment_job = dg.define_asset_job(
    "analyze_experiment",
    selection=dg.AssetSelection.assets(experiment_analysis),
    description="Analyse one online experiment from the dataset versions of its ingests.",
    executor_def=dg.in_process_executor,
)
