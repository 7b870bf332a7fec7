"""The job the dataset sensor launches: validate one dataset version."""

import dagster as dg

from eval_platform_dagster.assets import eval_dataset

validate_dataset_version = dg.define_asset_job(
    "validate_dataset_version",
    selection=dg.AssetSelection.assets(eval_dataset),
    description="Materialize a dataset version and run its Great Expectations checks.",
    executor_def=dg.in_process_executor,
)
