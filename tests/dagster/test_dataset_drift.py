"""The eval_dataset asset's drift check on a real instance: a second dataset version compared with the first."""

import dagster as dg

from eval_platform_dagster.assets.datasets import NO_DRIFT
from eval_platform_dagster.jobs import validate_dataset_version
from tests.dagster_helpers import execute


def _drift_check(instance, service, partition_key):
    result = execute(validate_dataset_version.name, instance, service, partition_key)
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == NO_DRIFT]
    materialization = result.asset_materializations_for_node("eval_dataset")[0]
    return check, materialization.metadata


def test_a_second_version_is_compared_with_the_previous_active_one(platform, breast_cancer):
    _, _, frame = breast_cancer
    register = lambda rows: platform.register_dataset("bc", rows, task_type="binary_classification",  # noqa: E731
                                                      label_policy="human_reviewed", slice_columns=["tumour_size"])
    register(frame)
    # v2: the same rows with mean_radius measured 30 % larger (a recalibrated instrument)
    register(frame.assign(mean_radius=frame["mean_radius"] * 1.3))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("dataset_versions", ["bc@1", "bc@2"])
        first, first_metadata = _drift_check(instance, platform, "bc@1")
        assert first.passed and first.metadata["previous_version"].value == "none"
        assert "first version" in first.metadata["note"].value
        assert first_metadata["drift_previous_version"].value == "none (first version)"

        second, metadata = _drift_check(instance, platform, "bc@2")
        assert not second.passed and second.severity == dg.AssetCheckSeverity.WARN  # a warning: it does not block
        assert second.metadata["previous_version"].value == "bc@1"
        drifted = second.metadata["drifted"].value
        assert any(d.startswith("mean_radius:") for d in drifted)
        assert not any(d.startswith("mean_texture") for d in drifted)  # unchanged columns are not flagged
        assert second.metadata["max_psi_where"].value.startswith("mean_radius")
        table = second.metadata["drift"].value
        assert "bc@2 against bc@1" in table and "| mean_radius | feature | numeric | all |" in table
        assert "tumour_size=small" in table  # per slice value too
        assert metadata["drift_previous_version"].value == "bc@1"
        assert metadata["drift_max_psi_column"].value == "mean_radius"

