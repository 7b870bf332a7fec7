"""A dataset version compared with the previous one: per column, label, prevalence and slice, with bounds."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from eval_platform.core.errors import InvalidInput
from eval_platform.stats.dataset_drift import DriftBounds, compare_dataset_versions, first_version

SCHEMA = {"feature_columns": ["x", "y"], "label_column": "label", "slice_columns": ["segment"]}


def frame(rng, n, x_shift=0.0, positives=0.3, segment_b=0.5):
    return pd.DataFrame({
        "example_id": np.arange(n),
        "x": rng.normal(x_shift, 1.0, n),
        "y": rng.normal(0.0, 1.0, n),
        "label": (rng.random(n) < positives).astype("int64"),
        "segment": np.where(rng.random(n) < segment_b, "b", "a"),
    })


def by(report, column, slice_column="", slice_value=""):
    [found] = [c for c in report.columns if (c.column, c.slice_column, c.slice_value) == (column, slice_column, slice_value)]
    return found


def test_same_distribution_passes_and_every_comparison_is_reported():
    rng = np.random.default_rng(0)
    report = compare_dataset_versions(frame(rng, 2000), frame(rng, 2000), SCHEMA, current_key="d@2", previous_key="d@1")
    assert report.passed and report.previous_key == "d@1"
    # overall: x, y, label, segment; per segment value a and b: x, y, label
    assert len(report.columns) == 4 + 2 * 3
    assert {(c.column, c.kind) for c in report.columns} == {("x", "numeric"), ("y", "numeric"), ("label", "categorical"),
                                                           ("segment", "categorical")}
    # Bonferroni over every test: KS and chi-square for x and y, chi-square for label and segment, overall (6);
    # per segment value the same for x, y and label (2 x 5); the prevalence overall and per segment (3)
    assert report.test_level == pytest.approx(0.01 / 19)
    assert [(p.slice_column, p.slice_value) for p in report.prevalence] == [("", ""), ("segment", "a"), ("segment", "b")]


def test_measures_match_the_references():
    rng = np.random.default_rng(1)
    before, after = frame(rng, 1500), frame(rng, 1200, x_shift=0.6)
    report = compare_dataset_versions(before, after, SCHEMA)
    x = by(report, "x")
    reference = ks_2samp(before["x"], after["x"], method="asymp")
    assert x.ks_statistic == pytest.approx(reference.statistic) and x.ks_p_value == pytest.approx(reference.pvalue, rel=1e-9)
    # PSI of the label, by hand: shares of 0 and 1 in both versions, smoothed by 1e-4 over 2 bins
    r = np.array([(before.label == 0).mean(), (before.label == 1).mean()])
    c = np.array([(after.label == 0).mean(), (after.label == 1).mean()])
    r, c = (r + 1e-4) / (1 + 2e-4), (c + 1e-4) / (1 + 2e-4)
    assert by(report, "label").psi == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-9)
    segment_shares = [before.segment.value_counts(normalize=True).sort_index(), after.segment.value_counts(normalize=True).sort_index()]
    assert by(report, "segment").js == pytest.approx(jensenshannon(*segment_shares, base=2), abs=1e-12)
    # x moved by 0.6 sd: KS and PSI both flag it, overall and in both segments; y did not move
    assert x.drifted and any("PSI" in r for r in x.reasons) and any("KS" in r for r in x.reasons)
    assert by(report, "x", "segment", "a").drifted and by(report, "x", "segment", "b").drifted
    assert not by(report, "y").drifted
    assert report.worst("psi").column == "x"
    assert not report.passed


def test_prevalence_and_slice_composition_shifts_are_flagged():
    rng = np.random.default_rng(2)
    report = compare_dataset_versions(frame(rng, 2000), frame(rng, 2000, positives=0.6, segment_b=0.95), SCHEMA)
    overall = report.prevalence[0]
    assert overall.drifted and overall.delta == pytest.approx(0.3, abs=0.05)
    assert by(report, "segment").drifted  # 50/50 -> 5/95
    assert by(report, "label").drifted


def test_a_small_shift_on_a_large_dataset_is_not_drift():
    # KS is highly significant at n = 50k, but its statistic stays under 0.1: a change too small to flag
    rng = np.random.default_rng(3)
    report = compare_dataset_versions(frame(rng, 50_000), frame(rng, 50_000, x_shift=0.05), SCHEMA)
    x = by(report, "x")
    assert x.ks_p_value < report.test_level and x.ks_statistic < 0.1 and not x.drifted


def test_bounds_are_the_callers():
    rng = np.random.default_rng(4)
    before, after = frame(rng, 5000), frame(rng, 5000, x_shift=0.15)
    assert not by(compare_dataset_versions(before, after, SCHEMA), "x").drifted
    strict = DriftBounds(psi=0.01, js=1.0, ks_statistic=1.0)
    assert by(compare_dataset_versions(before, after, SCHEMA, bounds=strict), "x").drifted


def test_too_few_rows_are_reported_not_judged():
    rng = np.random.default_rng(5)
    before, after = frame(rng, 100, segment_b=0.1), frame(rng, 100, x_shift=3.0, segment_b=0.1)
    report = compare_dataset_versions(before, after, SCHEMA)
    small = by(report, "x", "segment", "b")
    assert small.psi is None and not small.drifted and "fewer than 30" in small.reasons[0]
    assert by(report, "x").drifted


def test_missing_values_free_text_and_new_columns():
    rng = np.random.default_rng(6)
    before, after = frame(rng, 300), frame(rng, 300)
    after.loc[:149, "y"] = np.nan
    before["note"], after["note"] = [f"text {i}" for i in range(300)], [f"other {i}" for i in range(300)]
    after["z"] = 1.0
    schema = {**SCHEMA, "feature_columns": ["x", "y", "z", "note"]}
    report = compare_dataset_versions(before, after, schema)
    y = by(report, "y")
    assert y.missing_current == 0.5 and y.n_current == 300 and y.ks_statistic is not None
    assert "z: not in the previous version" in report.skipped
    assert "note: free text or lists, not compared" in report.skipped


def test_a_first_version_has_nothing_to_compare():
    report = first_version("d@1")
    assert report.passed and report.previous_key is None and report.columns == ()


@pytest.mark.parametrize(("call", "field"), [
    (lambda f: compare_dataset_versions(f, f.to_dict(), SCHEMA), "current_frame"),
    (lambda f: compare_dataset_versions(f, f, {**SCHEMA, "feature_columns": ["nope"]}), "schema.feature_columns"),
    (lambda f: compare_dataset_versions(f, f, {**SCHEMA, "feature_columns": "x"}), "schema.feature_columns"),
    (lambda f: compare_dataset_versions(f, f, {**SCHEMA, "label_column": 3}), "schema.label_column"),
    (lambda f: compare_dataset_versions(f, f, {**SCHEMA, "slice_columns": ["gone"]}), "schema.slice_columns"),
    (lambda f: DriftBounds(psi=-1), "bounds.psi"),
    (lambda f: DriftBounds(psi=math.inf), "bounds.psi"),
    (lambda f: DriftBounds(alpha=1.0), "bounds.alpha"),
    (lambda f: DriftBounds(min_rows=0), "bounds.min_rows"),
    (lambda f: first_version("d@1").worst("auc"), "measure"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InvalidInput) as error:
        call(frame(np.random.default_rng(7), 50))
    assert error.value.field == field


def test_no_drift_rarely_raises_a_false_alarm():
    # a family-wise level of 0.01 over every test of a report: 30 reports of two samples of one distribution
    # (small slices of ~60 rows, where PSI alone is large by chance) should almost never flag anything
    rng = np.random.default_rng(8)
    alarms = sum(not compare_dataset_versions(frame(rng, 120), frame(rng, 120), SCHEMA).passed for _ in range(30))
    assert alarms <= 2
