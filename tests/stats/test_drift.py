"""PSI, Jensen-Shannon distance and the two-sample KS test against hand-computed values and scipy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from eval_platform.core.errors import InvalidInput
from eval_platform.stats.drift import (
    DriftBins,
    drift_bins,
    homogeneity_test,
    jensen_shannon_distance,
    ks_two_sample,
    population_stability_index,
)


def test_psi_of_two_categories_matches_the_hand_computed_value():
    # shares 0.5/0.5 -> 0.9/0.1: (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5) = 0.4 ln 1.8 + 0.4 ln 5
    expected = 0.4 * math.log(1.8) + 0.4 * math.log(5)
    result = population_stability_index(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10, categorical=True, epsilon=1e-12)
    assert result.value == pytest.approx(expected, rel=1e-9)
    assert result.bins.labels == ("a", "b") and result.bins.current_counts == (90, 10)


def test_psi_smooths_an_empty_bin_with_epsilon():
    # reference {a: 1.0, b: 0}, current {a: 0.5, b: 0.5}; with k = 2 bins s = (share + eps) / (1 + 2 eps)
    eps = 0.01
    r = np.array([1 + eps, eps]) / (1 + 2 * eps)
    c = np.array([0.5 + eps, 0.5 + eps]) / (1 + 2 * eps)
    expected = float(np.sum((c - r) * np.log(c / r)))
    result = population_stability_index(["a"] * 10, ["a", "b"] * 5, categorical=True, epsilon=eps)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(population_stability_index(["a"] * 10, ["b"] * 10, categorical=True).value)


def test_numeric_bins_are_the_reference_quantiles_open_at_both_ends():
    reference = np.arange(1, 11)  # quartiles of 1..10, each the reference value at or below it: 3, 5, 7
    current = [0, 3, 6, 10, 11, 12]
    binned = drift_bins(reference, current, bins=4)
    assert binned.labels == ("<= 3", "(3, 5]", "(5, 7]", "> 7")
    assert binned.reference_counts == (3, 2, 2, 3)
    assert binned.current_counts == (2, 0, 1, 3)  # 0 and 12 fall in the open-ended outer bins
    # hand-computed PSI over those four bins (eps 1e-4)
    eps, k = 1e-4, 4
    r = (np.array([3, 2, 2, 3]) / 10 + eps) / (1 + k * eps)
    c = (np.array([2, 0, 1, 3]) / 6 + eps) / (1 + k * eps)
    assert population_stability_index(reference, current, bins=4).value == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)


def test_a_constant_reference_still_sees_a_shift():
    assert population_stability_index([0.0] * 100, [1.0] * 100).value > 5
    assert population_stability_index([0.0] * 100, [-1.0] * 100).value > 5
    assert population_stability_index([0.0] * 100, [0.0] * 100).value == 0


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=5000)
    same = population_stability_index(reference, rng.normal(size=5000)).value
    shifted = population_stability_index(reference, rng.normal(0.5, size=5000)).value
    assert same < 0.02 < 0.1 < shifted


@pytest.mark.parametrize("current", [["a", "b", "b", "c"], ["c"] * 7, ["a", "a"]])
def test_jensen_shannon_matches_scipy_base_2(current):
    reference = ["a", "a", "b", "d", "d", "d"]
    result = jensen_shannon_distance(reference, current)
    expected = jensenshannon(result.bins.reference_shares, result.bins.current_shares, base=2)
    assert result.value == pytest.approx(expected, abs=1e-12)
    assert result.divergence == pytest.approx(expected**2, abs=1e-12)


def test_jensen_shannon_extremes_and_numeric_bins():
    assert jensen_shannon_distance(["x"] * 3, ["y"] * 4).value == pytest.approx(1.0)
    assert jensen_shannon_distance(["x", "y"], ["y", "x"]).value == 0.0
    rng = np.random.default_rng(4)
    reference, current = rng.normal(size=1000), rng.normal(1.0, size=800)
    result = jensen_shannon_distance(reference, current, categorical=False)
    assert result.value == pytest.approx(jensenshannon(result.bins.reference_shares, result.bins.current_shares, base=2), abs=1e-12)


@pytest.mark.parametrize(("n", "m", "shift", "integers"), [(50, 70, 0.0, False), (1000, 800, 0.2, False),
                                                           (9, 7, 1.0, False), (300, 200, 0.0, True)])
def test_ks_matches_scipy(n, m, shift, integers):
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.normal(shift, size=m)
    if integers:  # many ties
        a, b = np.round(a * 2), np.round(b * 2)
    ours = ks_two_sample(a, b)
    assert ours.statistic == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(ks_2samp(a, b, method="asymp").pvalue, rel=1e-9)
    assert (ours.n_reference, ours.n_current) == (n, m)


def test_ks_rejects_at_about_its_level_under_the_null():
    rng = np.random.default_rng(5)
    p_values = np.array([ks_two_sample(rng.normal(size=200), rng.normal(size=150)).p_value for _ in range(400)])
    rate = float(np.mean(p_values < 0.05))
    assert 0.02 <= rate <= 0.08  # nominal 0.05; 400 draws: standard error ~0.011


def test_ks_extremes():
    assert ks_two_sample([1, 2, 3], [1, 2, 3]).p_value == 1.0
    assert ks_two_sample([1, 2, 3], [4, 5, 6]).statistic == 1.0


@pytest.mark.parametrize(("call", "field"), [
    (lambda: ks_two_sample([], [1.0]), "reference"),
    (lambda: ks_two_sample([1.0], [1.0, float("nan")]), "current"),
    (lambda: ks_two_sample([1.0, float("inf")], [1.0]), "reference"),
    (lambda: ks_two_sample(["a"], [1.0]), "reference"),
    (lambda: ks_two_sample("abc", [1.0]), "reference"),
    (lambda: ks_two_sample(np.zeros((2, 2)), [1.0]), "reference"),
    (lambda: population_stability_index([1.0], [1.0], bins=0), "bins"),
    (lambda: population_stability_index([1.0], [1.0], bins=True), "bins"),
    (lambda: population_stability_index([1.0], [1.0], epsilon=0), "epsilon"),
    (lambda: population_stability_index(["a", None], ["a"], categorical=True), "reference"),
    (lambda: jensen_shannon_distance(pd.Series([], dtype=float), ["a"]), "reference"),
])
def test_bad_input_names_the_argument(call, field):
    with pytest.raises(InvalidInput) as error:
        call()
    assert error.value.field == field


def test_missing_value_error_names_the_row():
    with pytest.raises(InvalidInput, match="row 2"):
        ks_two_sample([1.0, 2.0, float("nan")], [1.0])


@pytest.mark.parametrize("current", [[3, 1, 8, 0], [5, 5, 5, 5], [0, 0, 0, 9]])
def test_homogeneity_matches_scipy_chi2_contingency(current):
    from scipy.stats import chi2_contingency

    bins = DriftBins(("a", "b", "c", "d"), (4, 6, 5, 0), tuple(current))
    ours = homogeneity_test(bins)
    table = np.array([bins.reference_counts, current])
    table = table[:, table.sum(axis=0) > 0]
    reference = chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(reference.statistic) and ours.p_value == pytest.approx(reference.pvalue)
    assert ours.dof == reference.dof


def test_homogeneity_of_a_single_bin_is_no_evidence():
    assert homogeneity_test(DriftBins(("a",), (5,), (7,))).p_value == 1.0


def test_prediction_drift_of_scores_and_of_classes():
    from eval_platform.stats.comparison import prediction_drift

    rng = np.random.default_rng(9)
    baseline, candidate = rng.beta(2, 5, 300), rng.beta(3, 3, 300)
    candidate[:4] = np.nan  # examples the candidate did not score are left out of both
    record = prediction_drift(candidate, baseline)
    reference = ks_2samp(baseline[4:], candidate[4:], method="asymp")
    assert record["ks_statistic"] == pytest.approx(reference.statistic) and record["ks_p_value"] == pytest.approx(reference.pvalue)
    assert (record["n_examples"], record["n_missing"], record["kind"]) == (296, 4, "numeric")
    assert record["psi"] == pytest.approx(population_stability_index(baseline[4:], candidate[4:]).value)

    classes = prediction_drift(np.array(["a"] * 90 + ["b"] * 10, dtype=object), np.array(["a", "b"] * 50, dtype=object),
                               categorical=True, column="prediction")
    assert classes["psi"] == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5), rel=1e-3) and classes["ks_statistic"] is None
    with pytest.raises(InvalidInput) as error:
        prediction_drift(np.zeros(3), np.zeros(4))
    assert error.value.field == "baseline"
    assert prediction_drift(np.full(3, np.nan), np.zeros(3))["psi"] is None


def test_a_binary_feature_gets_two_bins_however_skewed():
    assert drift_bins([0] * 70 + [1] * 30, [0] * 30 + [1] * 70).labels == ("<= 0", "> 0")
    skewed = drift_bins([0] * 5 + [1] * 95, [0] * 50 + [1] * 50)
    assert skewed.reference_counts == (5, 95) and skewed.current_counts == (50, 50)
    assert population_stability_index([0] * 5 + [1] * 95, [0] * 50 + [1] * 50).value > 1
