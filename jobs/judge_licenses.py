"""The job the judge-license sensor launches: check one judge version against its calibration datasets."""

import dagster as dg

from eval_platform_dagster.assets.judge_licenses import judge_license

license_judge = dg.define_asset_job(
    "license_judge",
    selection=dg.AssetSelection.assets(judge_license),
    description="Grade the calibration datasets with one judge version, record its licenses, re-decide the gates waiting on it.",
    executor_def=dg.in_process_executor,
)
