"""A registered dataset version's drift is measured against the previous *active* version of its dataset id."""

from eval_platform.governance.incidents import invalidate_dataset
from eval_platform.platform.dataset_drift import drift_from_previous, previous_version


def test_the_previous_active_version_is_the_reference(platform, breast_cancer):
    _, _, frame = breast_cancer
    register = lambda rows, dataset_id="bc": platform.register_dataset(  # noqa: E731
        dataset_id, rows, task_type="binary_classification", label_policy="human_reviewed", slice_columns=["tumour_size"]).record
    first = register(frame)
    other = register(frame.assign(mean_radius=frame["mean_radius"] * 2), "other")  # another dataset id is never a reference
    assert previous_version(platform, first) is None and previous_version(platform, other) is None
    assert drift_from_previous(platform, first).previous_key is None
    shifted = register(frame.assign(mean_radius=frame["mean_radius"] * 1.3))
    report = drift_from_previous(platform, shifted)
    assert report.previous_key == "bc@1" and report.current_key == "bc@2" and not report.passed
    assert {c.column for c in report.drifted} == {"mean_radius"}

    # a contaminated version is no reference: v3 (v1 without one row) is compared with v1, and passes
    invalidate_dataset(platform, "bc@2", "leaked into training", reported_by="tester")
    third = register(frame.iloc[1:])
    assert previous_version(platform, third).key == "bc@1"
    assert drift_from_previous(platform, third).passed
