"""Classification metrics: equal to scikit-learn on seeded random data, decided edge cases, validation.

Random data covers sizes 1..10_000, heavy score ties (scores rounded to 1 or 2 decimals, or drawn from a
handful of values) and imbalanced labels (prevalence down to 1%). Every comparison is to ``TOL = 1e-9``.
"""

from __future__ import annotations

import io
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as clf
from eval_platform.metrics import curves, multiclass
from eval_platform.metrics.catalog import get_metric

TOL = 1e-9
SIZES = [1, 2, 3, 7, 50, 500, 10_000]
TIES = ["none", "round2", "round1", "few"]
PREVALENCES = [0.01, 0.2, 0.5]


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning and friends from the reference
        yield


def binary_data(seed: int, n: int, ties: str, prevalence: float):
    """Labels with the given prevalence and informative scores in [0, 1], tied as asked:
    ``none`` (continuous), ``round2``/``round1`` (rounded to 2/1 decimals), ``few`` (5 distinct values)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    if ties == "round2":
        s = np.round(s, 2)
    elif ties == "round1":
        s = np.round(s, 1)
    elif ties == "few":
        s = np.round(s * 4) / 4
    return y, s


def same(a: float, b: float, tol: float = TOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


CASES = [(seed, n, ties, prev) for seed, (n, ties, prev) in enumerate(
    [(n, t, p) for n in SIZES for t in TIES for p in PREVALENCES]
)]


# ------------------------------------------------------------------------------------------------------
# Binary metrics vs scikit-learn


@pytest.mark.parametrize("seed,n,ties,prevalence", CASES)
def test_binary_metrics_equal_sklearn(seed, n, ties, prevalence):
    y, s = binary_data(seed, n, ties, prevalence)
    both = 0 < y.sum() < n
    if both:
        assert same(clf.roc_auc(y, s), skm.roc_auc_score(y, s))
    else:
        assert math.isnan(clf.roc_auc(y, s))
    if y.sum() > 0:
        assert same(clf.average_precision(y, s), skm.average_precision_score(y, s))
    else:
        assert math.isnan(clf.average_precision(y, s))
    for threshold in (0.3, 0.5, float(np.median(s))):
        pred = (s >= threshold).astype(int)
        assert same(clf.precision_at(y, s, threshold), skm.precision_score(y, pred, zero_division=0))
        assert same(clf.f1_at(y, s, threshold), skm.f1_score(y, pred, zero_division=0))
        assert same(clf.accuracy_at(y, s, threshold), skm.accuracy_score(y, pred))
        if y.sum() > 0:
            assert same(clf.recall_at(y, s, threshold), skm.recall_score(y, pred, zero_division=0))
        else:
            assert math.isnan(clf.recall_at(y, s, threshold))
        if (y == 0).any():
            tn, fp, _, _ = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
            assert same(clf.false_positive_rate_at(y, s, threshold), fp / (fp + tn))
        else:
            assert math.isnan(clf.false_positive_rate_at(y, s, threshold))
    assert same(clf.log_loss(y, s), skm.log_loss(y, s, labels=[0, 1]))
    assert same(clf.brier_score(y, s), skm.brier_score_loss(y, s, pos_label=1) if both else float(np.mean((s - y) ** 2)))


def brute_force_operating_point(y, s, min_precision):
    """Scan every point of sklearn's precision_recall_curve: best recall with precision >= target,
    and the largest threshold reaching it."""
    precision, recall, thresholds = skm.precision_recall_curve(y, s, drop_intermediate=False)
    best, best_threshold = 0.0, math.inf
    for p, r, t in zip(precision[:-1], recall[:-1], thresholds, strict=True):
        if p >= min_precision and (r > best or (r == best and best > 0 and t > best_threshold)):
            best, best_threshold = r, t
    if best == 0.0:
        # nothing reached the precision with recall > 0 (or only recall 0 did): flag nothing
        return 0.0, math.inf
    return float(best), float(best_threshold)


@pytest.mark.parametrize("seed,n,ties,prevalence", [c for c in CASES if c[1] >= 3])
@pytest.mark.parametrize("min_precision", [0.0, 0.3, 0.6, 0.9, 1.0])
def test_recall_at_precision_equals_brute_force_scan(seed, n, ties, prevalence, min_precision):
    y, s = binary_data(seed, n, ties, prevalence)
    if y.sum() == 0:
        assert math.isnan(clf.recall_at_precision(y, s, min_precision))
        return
    expected = brute_force_operating_point(y, s, min_precision)
    got = clf.operating_point_at_precision(y, s, min_precision)
    assert same(got[0], expected[0]) and same(got[1], expected[1]), (got, expected)
    # the operating point reproduces with the thresholded functions
    if math.isfinite(got[1]):
        assert clf.precision_at(y, s, got[1]) >= min_precision
        assert same(clf.recall_at(y, s, got[1]), got[0])


def test_recall_at_precision_hand_example():
    # scores 0.9 0.8 0.7 0.6 0.5 with labels 1 1 0 1 0: precision at each threshold 1, 1, 2/3, 3/4, 3/5
    y = [1, 1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert clf.operating_point_at_precision(y, s, 0.75) == (1.0, 0.6)  # 3/3 positives at precision 3/4
    assert clf.operating_point_at_precision(y, s, 0.8) == (2 / 3, 0.8)
    assert clf.operating_point_at_precision([0, 1], [0.9, 0.1], 0.5) == (1.0, 0.1)  # precision 1/2 at 0.1
    assert clf.operating_point_at_precision([0, 0, 1], [0.9, 0.8, 0.1], 0.5) == (0.0, math.inf)


# ------------------------------------------------------------------------------------------------------
# Expected calibration error


def test_ece_hand_worked_example():
    # n_bins = 4, bins [0, .25) [.25, .5) [.5, .75) [.75, 1]
    # p = 0.10 y=0  -> bin 0
    # p = 0.20 y=1  -> bin 0    bin 0: sum(y) - sum(p) = 1 - 0.30 = 0.70
    # p = 0.25 y=0  -> bin 1 (an edge goes right)             bin 1: 0 - 0.25 = -0.25
    # p = 0.60 y=1  -> bin 2
    # p = 0.70 y=1  -> bin 2    bin 2: 2 - 1.30 = 0.70
    # p = 0.75 y=1  -> bin 3 (edge)
    # p = 1.00 y=0  -> bin 3 (1.0 is in the last bin)          bin 3: 1 - 1.75 = -0.75
    # ECE = (|0.70| + |-0.25| + |0.70| + |-0.75|) / 7 = 2.40 / 7
    y = [0, 1, 0, 1, 1, 1, 0]
    p = [0.10, 0.20, 0.25, 0.60, 0.70, 0.75, 1.00]
    assert clf.expected_calibration_error(y, p, n_bins=4) == pytest.approx(2.40 / 7, abs=1e-12)
    # one bin: |sum(y) - sum(p)| / n = |4 - 3.60| / 7
    assert clf.expected_calibration_error(y, p, n_bins=1) == pytest.approx(0.40 / 7, abs=1e-12)
    # perfectly calibrated within bins: 0 and 1 predicted exactly
    assert clf.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def reference_ece(y, p, n_bins):
    """Exact-arithmetic reference: bin b holds p with fl(b/n) <= p < fl((b+1)/n) (fl = nearest float)."""
    edges = [Fraction(k / n_bins) for k in range(n_bins + 1)]
    sums = [Fraction(0)] * n_bins
    for label, prob in zip(y, p, strict=True):
        b = max(k for k in range(n_bins) if Fraction(prob) >= edges[k])
        sums[b] += label - Fraction(prob)
    return float(sum(abs(v) for v in sums) / len(y))


@pytest.mark.parametrize("n_bins", [1, 3, 10, 15, 22, 45])
def test_ece_equals_exact_reference_including_bin_edges(n_bins):
    rng = np.random.default_rng(n_bins)
    edges_as_typed = [k / n_bins for k in range(n_bins + 1)]  # e.g. 15/22, which floor(p*22) puts in bin 14
    p = np.r_[rng.random(300), edges_as_typed, np.round(rng.random(100), 1)]
    y = (rng.random(p.size) < p).astype(int)
    assert clf.expected_calibration_error(y, p, n_bins) == pytest.approx(reference_ece(y, p, n_bins), abs=1e-12)


def test_ece_every_typed_edge_goes_right():
    # p1 = k/n (as typed, y=1) and p2 = (k - 0.5)/n (y=0) straddle the edge k/n: in separate bins the
    # ECE is (|1 - p1| + |0 - p2|) / 2; in one bin it would be |1 - p1 - p2| / 2. floor(p * n) misplaces
    # some edges (15/22 * 22 == 14.999999999999998), which this scan over every edge up to n = 50 catches.
    for n_bins in range(2, 51):
        for k in range(1, n_bins):
            p1, p2 = k / n_bins, (k - 0.5) / n_bins
            got = clf.expected_calibration_error([1, 0], [p1, p2], n_bins)
            assert got == pytest.approx(((1 - p1) + p2) / 2, abs=1e-15), (n_bins, k)


# ------------------------------------------------------------------------------------------------------
# Binary suite: the one-sort fast path equals the single functions exactly


def singles(y, s, threshold, min_precision, n_bins):
    return {
        "roc_auc": clf.roc_auc(y, s),
        "average_precision": clf.average_precision(y, s),
        "precision": clf.precision_at(y, s, threshold),
        "recall": clf.recall_at(y, s, threshold),
        "f1": clf.f1_at(y, s, threshold),
        "accuracy": clf.accuracy_at(y, s, threshold),
        "false_positive_rate": clf.false_positive_rate_at(y, s, threshold),
        "recall_at_precision": clf.recall_at_precision(y, s, min_precision),
        "threshold_at_precision": clf.threshold_at_precision(y, s, min_precision),
        "log_loss": clf.log_loss(y, s),
        "brier_score": clf.brier_score(y, s),
        "expected_calibration_error": clf.expected_calibration_error(y, s, n_bins),
    }


def assert_identical(got: dict, expected: dict):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert (math.isnan(value) and math.isnan(got[key])) or got[key] == value, (key, got[key], value)


@pytest.mark.parametrize("seed,n,ties,prevalence", CASES[::3])
def test_binary_suite_equals_single_functions(seed, n, ties, prevalence):
    y, s = binary_data(seed, n, ties, prevalence)
    rng = np.random.default_rng(seed)
    threshold = float(rng.choice([0.5, 0.3, s[0], 0.0, 1.0, 1.5]))
    min_precision = float(rng.choice([0.0, 0.5, 0.9, 1.0]))
    n_bins = int(rng.choice([1, 10, 22]))
    assert_identical(clf.binary_suite(y, s, threshold, min_precision, n_bins), singles(y, s, threshold, min_precision, n_bins))


@pytest.mark.parametrize("y,s", [
    ([0, 0, 0], [0.1, 0.5, 0.9]),  # no positives
    ([1, 1, 1], [0.1, 0.5, 0.9]),  # all positives
    ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]),  # all ties
    ([1], [0.7]),  # single example
    ([0], [0.0]),
    ([1, 0, 1, 0], [0.0, -0.0, 1.0, 1.0]),  # signed zero ties with zero
])
def test_binary_suite_equals_single_functions_on_edge_cases(y, s):
    assert_identical(clf.binary_suite(y, s, 0.5, 0.9, 10), singles(y, s, 0.5, 0.9, 10))


def test_binary_suite_without_calibration_accepts_any_scores():
    y = [0, 1, 1, 0]
    s = [-3.0, 2.5, np.inf, -np.inf]
    out = clf.binary_suite(y, s, threshold=0.0, calibration=False)
    assert "log_loss" not in out and out["roc_auc"] == 1.0 and out["precision"] == 1.0
    with pytest.raises(InvalidInput) as error:
        clf.binary_suite(y, s)
    assert error.value.field == "score"


# ------------------------------------------------------------------------------------------------------
# Binary edge cases (decided values)


def test_no_positives():
    y, s = [0, 0, 0], [0.2, 0.6, 0.9]
    assert math.isnan(clf.roc_auc(y, s))
    assert math.isnan(clf.average_precision(y, s))
    assert math.isnan(clf.recall_at(y, s))
    assert clf.precision_at(y, s) == 0.0 and clf.f1_at(y, s) == 0.0
    assert clf.false_positive_rate_at(y, s) == 2 / 3
    assert clf.accuracy_at(y, s) == 1 / 3
    assert math.isnan(clf.recall_at_precision(y, s, 0.5)) and math.isnan(clf.threshold_at_precision(y, s, 0.5))


def test_all_one_class_positive():
    y, s = [1, 1, 1], [0.2, 0.6, 0.9]
    assert math.isnan(clf.roc_auc(y, s))
    assert clf.average_precision(y, s) == 1.0
    assert math.isnan(clf.false_positive_rate_at(y, s))
    assert clf.recall_at(y, s) == 2 / 3
    assert clf.operating_point_at_precision(y, s, 1.0) == (1.0, 0.2)


def test_all_ties():
    y, s = [0, 1, 1, 0, 1], [0.4] * 5
    assert clf.roc_auc(y, s) == 0.5  # one diagonal step
    assert clf.average_precision(y, s) == pytest.approx(3 / 5)  # one point: recall 1 at precision 3/5
    assert clf.operating_point_at_precision(y, s, 0.6) == (1.0, 0.4)
    assert clf.operating_point_at_precision(y, s, 0.61) == (0.0, math.inf)
    fps, tps, thresholds = clf.binary_curve(y, s)
    assert fps.tolist() == [2] and tps.tolist() == [3] and thresholds.tolist() == [0.4]


def test_single_example():
    assert math.isnan(clf.roc_auc([1], [0.3]))
    assert clf.average_precision([1], [0.3]) == 1.0
    assert clf.recall_at([1], [0.3]) == 0.0 and clf.precision_at([1], [0.3]) == 0.0
    assert clf.accuracy_at([0], [0.3]) == 1.0
    assert clf.log_loss([1], [1.0]) == pytest.approx(-math.log(1 - np.finfo(float).eps))


def test_repeated_infinite_scores_are_one_tie_group():
    # np.diff(inf, inf) is nan, which a diff-based tie detection would count as a new threshold
    fps, tps, thresholds = clf.binary_curve([1, 0, 1, 0], [np.inf, np.inf, -np.inf, -np.inf])
    assert thresholds.tolist() == [np.inf, -np.inf] and tps.tolist() == [1, 2] and fps.tolist() == [1, 2]
    assert clf.roc_auc([1, 0, 1, 0], [np.inf, np.inf, -np.inf, -np.inf]) == 0.5


def test_boolean_labels_accepted():
    assert clf.roc_auc(np.array([True, False, True]), [0.9, 0.1, 0.8]) == 1.0


# ------------------------------------------------------------------------------------------------------
# Validation at the boundary


BINARY_FUNCTIONS = [
    clf.roc_auc, clf.average_precision, clf.precision_at, clf.recall_at, clf.f1_at, clf.accuracy_at,
    clf.false_positive_rate_at, clf.recall_at_precision, clf.threshold_at_precision, clf.log_loss,
    clf.brier_score, clf.expected_calibration_error, clf.binary_suite, clf.binary_curve,
    curves.roc_curve_table, curves.pr_curve_table,
]


@pytest.mark.parametrize("fn", BINARY_FUNCTIONS, ids=lambda f: f.__name__)
def test_empty_input_rejected(fn):
    with pytest.raises(InvalidInput) as error:
        fn([], [])
    assert error.value.field == "label" and "empty" in error.value.problem


@pytest.mark.parametrize("fn", BINARY_FUNCTIONS, ids=lambda f: f.__name__)
def test_nan_score_rejected_naming_the_row(fn):
    with pytest.raises(InvalidInput) as error:
        fn([0, 1, 0, 1], [0.1, 0.2, np.nan, 0.4])
    assert error.value.field == "score" and "row 2" in error.value.problem


def test_other_binary_validation():
    with pytest.raises(InvalidInput, match="row 1 is 2"):
        clf.roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InvalidInput, match="different lengths"):
        clf.roc_auc([0, 1], [0.1])
    with pytest.raises(InvalidInput, match="one-dimensional"):
        clf.roc_auc([[0, 1]], [[0.1, 0.2]])
    for fn in (clf.log_loss, clf.brier_score, clf.expected_calibration_error):
        with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
            fn([0, 1], [0.5, 1.5])
    with pytest.raises(InvalidInput) as error:
        clf.precision_at([0, 1], [0.1, 0.2], threshold=float("nan"))
    assert error.value.field == "threshold"
    with pytest.raises(InvalidInput) as error:
        clf.recall_at_precision([0, 1], [0.1, 0.2], 1.5)
    assert error.value.field == "min_precision"
    with pytest.raises(InvalidInput) as error:
        clf.expected_calibration_error([0, 1], [0.1, 0.2], n_bins=0)
    assert error.value.field == "n_bins"
    with pytest.raises(InvalidInput) as error:
        clf.binary_suite([0, 1], [0.1, 0.2], n_bins=0)
    assert error.value.field == "n_bins"


# ------------------------------------------------------------------------------------------------------
# False-positive rate per segment


@pytest.mark.parametrize("seed", range(4))
def test_false_positive_rate_by_segment_equals_sklearn_per_segment(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 40, 3000]))
    y, s = binary_data(seed, n, "round2", 0.3)
    segments = rng.choice(["video", "text", "image", "all_positive"], size=n)
    y = np.where(segments == "all_positive", 1, y)
    table = clf.false_positive_rate_by_segment(y, s, segments, threshold=0.55)
    assert list(table.columns) == ["fpr", "n_negatives", "n"]
    assert list(table.index) == sorted(set(segments.tolist()))
    for segment, row in table.iterrows():
        mask = segments == segment
        tn, fp, _, _ = skm.confusion_matrix(y[mask], (s[mask] >= 0.55).astype(int), labels=[0, 1]).ravel()
        assert row["n"] == mask.sum() and row["n_negatives"] == tn + fp
        assert same(row["fpr"], fp / (fp + tn) if tn + fp else float("nan"))
        assert same(row["fpr"], clf.false_positive_rate_at(y[mask], s[mask], 0.55))


def test_false_positive_rate_by_segment_missing_values_and_validation():
    table = clf.false_positive_rate_by_segment([0, 0, 1, 0], [0.9, 0.1, 0.9, 0.9], np.array(["a", None, "a", None], dtype=object))
    assert table.loc["a", "fpr"] == 1.0 and table.loc["a", "n"] == 2
    missing = table[table.index.isna()]
    assert len(missing) == 1 and missing["fpr"].iloc[0] == 0.5 and missing["n_negatives"].iloc[0] == 2
    with pytest.raises(InvalidInput) as error:
        clf.false_positive_rate_by_segment([0, 1], [0.1, 0.2], ["a"])
    assert error.value.field == "segment"


# ------------------------------------------------------------------------------------------------------
# Multi-class vs scikit-learn


def multiclass_data(seed: int, n: int, k: int, ties: bool, labels: str = "str"):
    rng = np.random.default_rng(seed)
    prior = np.r_[0.6, 0.25, np.full(k - 2, 0.15 / (k - 2))] if k > 2 else np.array([0.8, 0.2])
    codes = rng.choice(k, size=n, p=prior)
    if ties:  # a handful of distinct probability vectors: ties in the argmax and in every column
        palette = rng.dirichlet(np.ones(k), size=4)
        palette[0] = 1.0 / k  # an all-tied row: argmax goes to the first column
        proba = palette[rng.integers(0, 4, size=n)]
    else:
        proba = rng.dirichlet(np.ones(k), size=n)
        proba[np.arange(n), codes] += rng.random(n)  # informative
        proba /= proba.sum(axis=1, keepdims=True)
    classes = np.array([f"c{j}" for j in range(k)]) if labels == "str" else np.arange(10, 10 + k)
    return classes[codes], proba, classes


MC_CASES = [(seed, n, k, ties) for seed, (n, k, ties) in enumerate(
    [(n, k, t) for n in (1, 2, 9, 200, 10_000) for k in (2, 3, 7) for t in (False, True)]
)]


@pytest.mark.parametrize("seed,n,k,ties", MC_CASES)
def test_multiclass_prf_and_confusion_equal_sklearn(seed, n, k, ties):
    y, proba, classes = multiclass_data(seed, n, k, ties, labels="str" if seed % 2 else "int")
    pred = classes[np.argmax(proba, axis=1)]
    present = classes[np.isin(classes, y)]
    for average in ("macro", "micro", "weighted"):
        labels = present if average == "macro" else classes
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)
        assert same(multiclass.multiclass_precision(y, proba, classes, average), p)
        assert same(multiclass.multiclass_recall(y, proba, classes, average), r)
        assert same(multiclass.multiclass_f1(y, proba, classes, average), f)
    assert same(multiclass.multiclass_accuracy(y, proba, classes), skm.accuracy_score(y, pred))
    matrix = multiclass.confusion_matrix(y, proba, classes)
    np.testing.assert_array_equal(matrix.to_numpy(), skm.confusion_matrix(y, pred, labels=classes))
    assert list(matrix.index) == list(classes) and list(matrix.columns) == list(classes)
    table = multiclass.per_class_metrics(y, proba, classes)
    p, r, f, support = skm.precision_recall_fscore_support(y, pred, labels=classes, average=None, zero_division=0)
    np.testing.assert_allclose(table["precision"], p, atol=TOL, rtol=0)
    np.testing.assert_allclose(table["f1"], f, atol=TOL, rtol=0)
    np.testing.assert_array_equal(table["support"], support)
    has = support > 0
    np.testing.assert_allclose(table["recall"].to_numpy()[has], r[has], atol=TOL, rtol=0)
    assert table["recall"].to_numpy()[~has].size == 0 or np.isnan(table["recall"].to_numpy()[~has]).all()
    for position, label in enumerate(classes):
        assert same(multiclass.class_metric(y, proba, classes, label, "precision"), p[position])
        assert same(multiclass.class_metric(y, proba, classes, str(label), "f1"), f[position])


@pytest.mark.parametrize("seed,n,k,ties", [c for c in MC_CASES if c[1] >= 9])
def test_multiclass_roc_auc_ovr_and_log_loss_equal_sklearn(seed, n, k, ties):
    y, proba, classes = multiclass_data(seed, n, k, ties)
    assert same(multiclass.multiclass_log_loss(y, proba, classes), skm.log_loss(y, proba, labels=classes))
    defined = [j for j, c in enumerate(classes) if 0 < np.sum(y == c) < n]
    if k == 2 and len(defined) == 2:  # sklearn treats two classes as binary: the score of classes[1]
        expected = skm.roc_auc_score(y == classes[1], proba[:, 1])
        assert same(multiclass.multiclass_roc_auc_ovr(y, proba, classes), expected)
    elif len(defined) == k:  # sklearn needs every class present
        for average in ("macro", "weighted"):
            expected = skm.roc_auc_score(y, proba, multi_class="ovr", average=average, labels=classes)
            assert same(multiclass.multiclass_roc_auc_ovr(y, proba, classes, average), expected)
    # always: the mean / support-weighted mean of the defined one-vs-rest binary AUCs
    aucs = [skm.roc_auc_score(y == classes[j], proba[:, j]) for j in defined]
    support = [np.sum(y == classes[j]) for j in defined]
    assert same(multiclass.multiclass_roc_auc_ovr(y, proba, classes), float(np.mean(aucs)) if aucs else float("nan"))
    assert same(multiclass.multiclass_roc_auc_ovr(y, proba, classes, "weighted"),
                float(np.average(aucs, weights=support)) if aucs else float("nan"))


def test_multiclass_edge_cases():
    classes = np.array(["a", "b", "c"])
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [1 / 3, 1 / 3, 1 / 3]])
    y = np.array(["a", "a", "a"])  # all one class
    assert math.isnan(multiclass.multiclass_roc_auc_ovr(y, proba, classes))  # no class has both sides
    assert multiclass.multiclass_recall(y, proba, classes) == 2 / 3  # macro over the one class present
    assert multiclass.multiclass_precision(y, proba, classes) == 1.0
    assert multiclass.multiclass_accuracy(y, proba, classes) == 2 / 3
    assert multiclass.multiclass_predictions(proba, classes).tolist() == ["a", "b", "a"]  # tie: first column
    table = multiclass.per_class_metrics(y, proba, classes)
    assert math.isnan(table.loc["b", "recall"]) and table.loc["b", "precision"] == 0.0
    assert table.loc["c", "f1"] == 0.0 and table.loc["c", "n_predicted"] == 0
    one = multiclass.confusion_matrix(["b"], [[0.1, 0.9, 0.0]], classes)  # single example
    assert one.loc["b", "b"] == 1 and one.to_numpy().sum() == 1
    assert math.isnan(multiclass.multiclass_roc_auc_ovr(["b"], [[0.1, 0.9, 0.0]], classes))
    assert multiclass.multiclass_log_loss(["b"], [[0.1, 0.9, 0.0]], classes) == pytest.approx(-math.log(0.9))


def test_multiclass_validation():
    classes = ["a", "b"]
    with pytest.raises(InvalidInput, match="empty"):
        multiclass.multiclass_f1([], np.zeros((0, 2)), classes)
    with pytest.raises(InvalidInput) as error:
        multiclass.multiclass_f1(["a", "b", "a"], [[0.5, 0.5], [0.1, np.nan], [1, 0]], classes)
    assert error.value.field == "proba" and "row 1" in error.value.problem
    with pytest.raises(InvalidInput) as error:
        multiclass.multiclass_f1(["a", "z"], [[0.5, 0.5], [0.1, 0.9]], classes)
    assert error.value.field == "label" and "row 1" in error.value.problem and "'z'" in error.value.problem
    with pytest.raises(InvalidInput, match="3 columns"):
        multiclass.multiclass_f1(["a"], [[0.2, 0.3, 0.5]], classes)
    with pytest.raises(InvalidInput, match="duplicates"):
        multiclass.multiclass_f1(["a"], [[0.5, 0.5]], ["a", "a"])
    with pytest.raises(InvalidInput, match="different lengths"):
        multiclass.multiclass_f1(["a", "b"], [[0.5, 0.5]], classes)
    with pytest.raises(InvalidInput) as error:
        multiclass.multiclass_log_loss(["a", "b"], [[0.5, 0.5], [0.5, 0.6]], classes)
    assert "row 1" in error.value.problem
    with pytest.raises(InvalidInput) as error:
        multiclass.multiclass_f1(["a"], [[0.5, 0.5]], classes, average="samples")
    assert error.value.field == "average"
    with pytest.raises(InvalidInput) as error:
        multiclass.class_metric(["a"], [[0.5, 0.5]], classes, "q")
    assert error.value.field == "class_label"


# ------------------------------------------------------------------------------------------------------
# Multi-label vs scikit-learn


@pytest.mark.parametrize("seed,n", [(s, n) for s, n in enumerate([1, 5, 60, 2000, 10_000])])
def test_multilabel_equal_sklearn(seed, n):
    rng = np.random.default_rng(100 + seed)
    prevalence = np.array([0.01, 0.3, 0.6, 0.0])  # the last label never occurs
    y = (rng.random((n, 4)) < prevalence).astype(np.int64)
    scores = np.round(np.clip(0.4 * y + 0.6 * rng.random((n, 4)), 0, 1), 1)  # heavy ties
    thresholds = np.array([0.5, 0.3, 0.6, 0.5])
    classes = np.array(["spam", "nsfw", "ads", "never"])
    pred = (scores >= thresholds).astype(np.int64)
    present = np.flatnonzero(y.sum(axis=0) > 0)
    for average in ("macro", "micro", "weighted"):
        if average == "macro" and present.size == 0:
            assert math.isnan(multiclass.multilabel_f1(y, scores, classes, thresholds, average))
            continue
        if average != "macro" and y.sum() == 0:
            continue  # sklearn returns 0 (ours: recall nan, F1/precision still comparable below)
        labels = present if average == "macro" else np.arange(4)
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)
        assert same(multiclass.multilabel_precision(y, scores, classes, thresholds, average), p)
        assert same(multiclass.multilabel_recall(y, scores, classes, thresholds, average), r)
        assert same(multiclass.multilabel_f1(y, scores, classes, thresholds, average), f)
    table = multiclass.multilabel_per_label_metrics(y, scores, classes, dict(zip(classes, thresholds, strict=True)))
    p, r, f, support = skm.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    np.testing.assert_allclose(table["precision"], p, atol=TOL, rtol=0)
    np.testing.assert_allclose(table["f1"], f, atol=TOL, rtol=0)
    np.testing.assert_array_equal(table["support"], support)
    np.testing.assert_array_equal(table["threshold"], thresholds)
    assert math.isnan(table.loc["never", "recall"])


def test_multilabel_label_lists_and_validation():
    classes = ["a", "b", "c"]
    lists = np.empty(3, dtype=object)
    lists[:] = [["a"], [], ["a", "c"]]
    scores = np.array([[0.9, 0.1, 0.2], [0.6, 0.7, 0.1], [0.4, 0.2, 0.8]])
    matrix = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 1]])
    for average in ("macro", "micro", "weighted"):
        assert multiclass.multilabel_f1(lists, scores, classes, 0.5, average) == multiclass.multilabel_f1(matrix, scores, classes, 0.5, average)
    # a: TP 1 (row 0) FP 1 (row 1) FN 1 (row 2) -> F1 2/4; b: FP 1, no support; c: TP 1 -> F1 1
    assert multiclass.multilabel_f1(matrix, scores, classes, 0.5, "macro") == pytest.approx((0.5 + 1.0) / 2)
    assert multiclass.multilabel_f1(matrix, scores, classes, 0.5, "micro") == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    bad = np.empty(1, dtype=object)
    bad[:] = [["z"]]
    with pytest.raises(InvalidInput, match="row 0 has label 'z'"):
        multiclass.multilabel_f1(bad, [[0.1, 0.2, 0.3]], classes)
    with pytest.raises(InvalidInput, match="empty"):
        multiclass.multilabel_f1(np.zeros((0, 3)), np.zeros((0, 3)), classes)
    with pytest.raises(InvalidInput) as error:
        multiclass.multilabel_f1(matrix, np.where(np.eye(3) == 1, np.nan, scores), classes)
    assert error.value.field == "proba" and "row 0" in error.value.problem
    with pytest.raises(InvalidInput, match="no threshold for label"):
        multiclass.multilabel_f1(matrix, scores, classes, {"a": 0.5})
    with pytest.raises(InvalidInput, match="one per label"):
        multiclass.multilabel_f1(matrix, scores, classes, [0.5, 0.5])
    with pytest.raises(InvalidInput, match="0 or 1"):
        multiclass.multilabel_f1(matrix * 2, scores, classes)


# ------------------------------------------------------------------------------------------------------
# Catalog entries


def test_catalog_entries_compute_the_functions():
    y, proba, classes = multiclass_data(7, 300, 4, False)
    columns = {"label": y, "proba": proba, "classes": np.broadcast_to(classes, (y.size, classes.size))}
    expected = {
        "multiclass_accuracy@1": multiclass.multiclass_accuracy(y, proba, classes),
        "multiclass_f1_macro@1": multiclass.multiclass_f1(y, proba, classes, "macro"),
        "multiclass_recall_weighted@1": multiclass.multiclass_recall(y, proba, classes, "weighted"),
        "multiclass_precision_micro@1": multiclass.multiclass_precision(y, proba, classes, "micro"),
        "multiclass_roc_auc_ovr@1": multiclass.multiclass_roc_auc_ovr(y, proba, classes),
        "multiclass_roc_auc_ovr_weighted@1": multiclass.multiclass_roc_auc_ovr(y, proba, classes, "weighted"),
        "multiclass_log_loss@1": multiclass.multiclass_log_loss(y, proba, classes),
    }
    for key, value in expected.items():
        definition = get_metric(key)
        assert definition.task_types == frozenset({"multiclass_classification"})
        assert definition.required_columns == ("label", "proba", "classes")
        assert definition.compute(columns, **definition.resolve_params({})) == value
    assert get_metric("multiclass_log_loss@1").direction == "lower"
    recall_c2 = get_metric("multiclass_class_recall@1")
    assert recall_c2.compute(columns, **recall_c2.resolve_params({"class_label": "c2"})) == multiclass.class_metric(y, proba, classes, "c2")
    with pytest.raises(InvalidInput):
        recall_c2.resolve_params({})  # class_label is required
    # resampled rows keep the broadcast classes intact (what the comparison statistics do)
    index = np.random.default_rng(0).integers(0, y.size, y.size)
    resampled = {name: values[index] for name, values in columns.items()}
    assert get_metric("multiclass_f1_macro@1").compute(resampled) == multiclass.multiclass_f1(y[index], proba[index], classes)

    rng = np.random.default_rng(3)
    labels = (rng.random((200, 3)) < [0.2, 0.5, 0.1]).astype(int)
    scores = rng.random((200, 3))
    names = np.array(["x", "y", "z"])
    ml = {"labels": labels, "proba": scores, "classes": names}
    definition = get_metric("multilabel_f1_macro@1")
    assert definition.task_types == frozenset({"multilabel_classification"})
    params = definition.resolve_params({"threshold": 0.4, "label_thresholds": {"z": 0.9}})
    assert definition.compute(ml, **params) == multiclass.multilabel_f1(labels, scores, names, [0.4, 0.4, 0.9])
    per_label = get_metric("multilabel_label_recall@1")
    assert per_label.compute(ml, **per_label.resolve_params({"class_label": "y"})) == (
        multiclass.multilabel_per_label_metrics(labels, scores, names)["recall"]["y"])
    with pytest.raises(InvalidInput):
        definition.compute(ml, threshold=0.5, label_thresholds={"nope": 0.1})


def test_binary_catalog_entries_unchanged():
    for name in ("roc_auc", "average_precision", "precision", "recall", "f1", "accuracy", "false_positive_rate",
                 "recall_at_precision", "threshold_at_precision", "log_loss", "brier_score", "expected_calibration_error"):
        definition = get_metric(f"{name}@1")
        assert definition.task_types == frozenset({"binary_classification"})
        assert definition.required_columns == ("label", "score")


# ------------------------------------------------------------------------------------------------------
# Curves


@pytest.mark.parametrize("seed,n,ties,prevalence", [c for c in CASES if c[1] in (7, 500, 10_000)][::2])
def test_curve_tables_equal_sklearn_and_downsample_exactly(seed, n, ties, prevalence):
    y, s = binary_data(seed, n, ties, prevalence)
    roc = curves.roc_curve_table(y, s, max_points=10**9)
    pr = curves.pr_curve_table(y, s, max_points=10**9)
    if 0 < y.sum() < n:
        fpr, tpr, thresholds = skm.roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(roc["fpr"], fpr, atol=TOL, rtol=0)
        np.testing.assert_allclose(roc["tpr"], tpr, atol=TOL, rtol=0)
        np.testing.assert_array_equal(roc["threshold"].to_numpy()[1:], thresholds[1:])
        assert same(roc.attrs["roc_auc"], skm.roc_auc_score(y, s))
    if y.sum() > 0:
        precision, recall, thresholds = skm.precision_recall_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(pr["precision"], precision[::-1], atol=TOL, rtol=0)
        np.testing.assert_allclose(pr["recall"], recall[::-1], atol=TOL, rtol=0)
        np.testing.assert_array_equal(pr["threshold"].to_numpy()[1:], thresholds[::-1])
    for full, small in ((roc, curves.roc_curve_table(y, s, max_points=20)), (pr, curves.pr_curve_table(y, s, max_points=20))):
        assert len(small) <= 20 and small.attrs["n_points"] == len(full)
        pd.testing.assert_series_equal(small.iloc[0], full.iloc[0], check_names=False)
        pd.testing.assert_series_equal(small.iloc[-1], full.iloc[-1], check_names=False)
        # every kept row is a row of the full table, in order
        merged = small.merge(full.reset_index(), on=list(full.columns), how="left")
        assert merged["index"].notna().all() and merged["index"].is_monotonic_increasing


def test_curve_tables_undefined_and_png():
    roc = curves.roc_curve_table([0, 0, 0], [0.1, 0.2, 0.3])
    assert roc["tpr"].isna().all() and roc["fpr"].iloc[-1] == 1.0
    pr = curves.pr_curve_table([0, 0, 0], [0.1, 0.2, 0.3])
    assert pr["recall"].isna().all()
    with pytest.raises(InvalidInput):
        curves.roc_curve_table([0, 1], [0.1, 0.2], max_points=1)
    y, s = binary_data(1, 3000, "none", 0.1)
    png = curves.curves_png(
        roc={"candidate": curves.roc_curve_table(y, s, 200), "baseline": curves.roc_curve_table(y, np.round(s, 1), 200)},
        pr=curves.pr_curve_table(y, s, 200),
        title="bc-release",
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] == 450 and image.shape[1] == 1000
    assert curves.curves_png(roc=roc).startswith(b"\x89PNG")  # an undefined curve still draws
    assert curves.png_markdown(png).startswith("![curves](data:image/png;base64,iVBOR")
    with pytest.raises(InvalidInput):
        curves.curves_png()
