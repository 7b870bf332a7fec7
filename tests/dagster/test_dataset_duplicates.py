"""The ``no_exact_duplicates`` asset check of the eval dataset asset, on a real Dagster instance: a warning with the
counts (within the version, between slices, shared with an earlier version), never blocking the materialization."""

import dagster as dg
import pandas as pd
import pytest

from eval_platform_dagster.assets.datasets import NO_EXACT_DUPLICATES
from eval_platform_dagster.jobs import validate_dataset_version
from eval_platform_dagster.sensors import dataset_version_sensor
from tests.dagster_helpers import execute, tick


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the registry is not what is tested here
def test_duplicates_are_a_warning_with_their_counts(platform, breast_cancer):
    frame = breast_cancer[2]
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                              slice_columns=["tumour_size"])
    # version 2: version 1's rows plus one row repeating row 0's features under a new id and another size slice
    other_size = next(s for s in ("small", "medium", "large") if s != frame["tumour_size"].iloc[0])
    copy = frame.iloc[[0]].assign(example_id=10**9, tumour_size=other_size)
    platform.register_dataset("bc", pd.concat([frame, copy], ignore_index=True), task_type="binary_classification",
                              label_policy="human_reviewed", slice_columns=["tumour_size"])
    with dg.instance_for_test() as instance:
        requests = tick(dataset_version_sensor, instance, platform).run_requests
        assert sorted(r.partition_key for r in requests) == ["bc@1", "bc@2"]
        request = next(r for r in requests if r.partition_key == "bc@2")
        result = execute(validate_dataset_version.name, instance, platform, request.partition_key, request.tags)
        assert result.success  # non-blocking: the dataset is materialized all the same
        (second,) = [c for c in result.get_asset_check_evaluations() if c.check_name == NO_EXACT_DUPLICATES]
    assert not platform.duplicates_of(platform.dataset("bc@1")).any  # what the check of version 1 reports: nothing
    assert not second.passed and second.severity == dg.AssetCheckSeverity.WARN
    metadata = {k: v.value for k, v in second.metadata.items()}
    assert metadata["within_version"] == 2 and metadata["between_slices/tumour_size"] == 2
    # all of version 1's 228 rows, and the copy of row 0, have their content in version 1
    assert metadata["shared_with/bc@1"] == len(frame) + 1
    assert str(frame["example_id"].iloc[0]) in metadata["example_ids"]
