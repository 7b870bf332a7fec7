"""Binary-classification metrics over numpy arrays, equal to scikit-learn's to floating-point precision.

Conventions shared by every function here:

* ``y_true`` holds 0/1 labels, ``y_score`` the model's score for class 1 (higher means more positive).
* A prediction is positive when ``y_score >= threshold`` (scikit-learn's ``precision_recall_curve``
  convention, so an operating point found on the curve reproduces exactly with these functions).
* Empty input raises :class:`~eval_platform.errors.InvalidInput`; NaN scores are rejected at the boundary.
* A metric that is undefined for the data returns ``nan`` instead of raising: ROC-AUC without both
  classes, average precision without positives, recall without positives. The gate treats ``nan`` as a
  missing metric, so an undefined value can never pass a release.
* Ratios whose denominator is zero because the *model* made no positive prediction follow
  scikit-learn's ``zero_division=0``: precision and F1 are 0.

The curve-based metrics share one descending sort of the scores (:func:`binary_curve`), which is the
cost floor of everything in this module.
"""

from __future__ import annotations

import numpy as np

from eval_platform.errors import InvalidInput


def _check_binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 1 or y_score.ndim != 1:
        raise InvalidInput("label/score", "must be one-dimensional")
    if y_true.shape[0] != y_score.shape[0]:
        raise InvalidInput("label/score", f"have different lengths ({y_true.shape[0]} and {y_score.shape[0]})")
    if y_true.shape[0] == 0:
        raise InvalidInput("label", "is empty: no examples to evaluate")
    if np.isnan(y_score).any():
        raise InvalidInput("score", f"contains NaN at row {int(np.flatnonzero(np.isnan(y_score))[0])}")
    if y_true.dtype == bool:
        y_true = y_true.astype(np.int8)
    bad = (y_true != 0) & (y_true != 1)
    if bad.any():
        raise InvalidInput("label", f"must be 0 or 1 for binary metrics; row {int(np.flatnonzero(bad)[0])} is {y_true[bad][0]!r}")
    return y_true.astype(np.int64, copy=False), y_score


def binary_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive counts at each distinct score, thresholds in decreasing order.

    ``fps[i]`` and ``tps[i]`` count the examples with ``score >= thresholds[i]``; this is
    scikit-learn's ``_binary_clf_curve`` without sample weights.
    """
    y_true, y_score = _check_binary(y_true, y_score)
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score = y_score[order]
    y_true = y_true[order]
    distinct = np.flatnonzero(np.diff(y_score))
    last = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true)[last]
    fps = 1 + last - tps
    return fps, tps, y_score[last]


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve, by the trapezoidal rule over (FPR, TPR) as scikit-learn computes it.

    Ties in the score form one diagonal step (half credit). ``nan`` when only one class is present.
    """
    fps, tps, _ = binary_curve(y_true, y_score)
    if tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return float(np.trapezoid(tpr, fpr))


def average_precision(y_true, y_score) -> float:
    """PR-AUC as average precision: ``AP = sum_n (R_n - R_{n-1}) P_n`` over decreasing thresholds.

    No interpolation (scikit-learn's ``average_precision_score``). ``nan`` when there is no positive.
    """
    fps, tps, _ = binary_curve(y_true, y_score)
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _confusion_at(y_true, y_score, threshold: float) -> tuple[int, int, int, int]:
    y_true, y_score = _check_binary(y_true, y_score)
    predicted = y_score >= threshold
    positive = y_true == 1
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted & ~positive))
    fn = int(np.count_nonzero(~predicted & positive))
    tn = int(y_true.size - tp - fp - fn)
    return tp, fp, fn, tn


def precision_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FP)`` at the operating threshold; 0 when nothing is predicted positive."""
    tp, fp, _, _ = _confusion_at(y_true, y_score, threshold)
    return tp / (tp + fp) if tp + fp else 0.0


def recall_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FN)`` at the operating threshold; ``nan`` when there is no positive."""
    tp, _, fn, _ = _confusion_at(y_true, y_score, threshold)
    return tp / (tp + fn) if tp + fn else float("nan")


def f1_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall; 0 when undefined."""
    tp, fp, fn, _ = _confusion_at(y_true, y_score, threshold)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def false_positive_rate_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``FP / (FP + TN)`` at the operating threshold; ``nan`` when there is no negative."""
    _, fp, _, tn = _confusion_at(y_true, y_score, threshold)
    return fp / (fp + tn) if fp + tn else float("nan")


def accuracy_at(y_true, y_score, threshold: float = 0.5) -> float:
    """Fraction of examples whose thresholded prediction equals the label."""
    tp, _, _, tn = _confusion_at(y_true, y_score, threshold)
    return (tp + tn) / len(np.asarray(y_true))


def operating_point_at_precision(y_true, y_score, min_precision: float) -> tuple[float, float]:
    """The threshold that maximises recall subject to ``precision >= min_precision``, and that recall.

    Among thresholds reaching the same highest recall the largest is returned (fewest positives flagged).
    When no threshold reaches the precision the recall is 0 and the threshold ``inf`` (flag nothing).
    ``nan`` recall when there is no positive.
    """
    fps, tps, thresholds = binary_curve(y_true, y_score)
    if tps[-1] == 0:
        return float("nan"), float("nan")
    precision = tps / (tps + fps)
    ok = precision >= min_precision
    if not ok.any():
        return 0.0, float("inf")
    recall = tps / tps[-1]
    best = np.max(recall[ok])
    # thresholds decrease along the curve: the first index with the best recall has the largest threshold
    index = int(np.flatnonzero(ok & (recall == best))[0])
    return float(best), float(thresholds[index])


def recall_at_precision(y_true, y_score, min_precision: float = 0.95) -> float:
    """Highest recall among thresholds whose precision is at least ``min_precision`` (see above)."""
    return operating_point_at_precision(y_true, y_score, min_precision)[0]


def threshold_at_precision(y_true, y_score, min_precision: float = 0.95) -> float:
    """The score threshold of :func:`recall_at_precision`'s operating point."""
    return operating_point_at_precision(y_true, y_score, min_precision)[1]


def log_loss(y_true, y_score, eps: float | None = None) -> float:
    """Mean negative log-likelihood ``-mean(y log p + (1-y) log(1-p))``; ``p`` clipped to the float64 eps.

    Scores must be probabilities in [0, 1].
    """
    y_true, p = _check_binary(y_true, y_score)
    if (p < 0).any() or (p > 1).any():
        raise InvalidInput("score", "log loss needs probabilities in [0, 1]")
    eps = np.finfo(np.float64).eps if eps is None else eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y_true == 1, np.log(p), np.log1p(-p))))


def brier_score(y_true, y_score) -> float:
    """Mean squared error of the probability: ``mean((p - y)^2)``. Lower is better."""
    y_true, p = _check_binary(y_true, y_score)
    if (p < 0).any() or (p > 1).any():
        raise InvalidInput("score", "the Brier score needs probabilities in [0, 1]")
    return float(np.mean((p - y_true) ** 2))


def expected_calibration_error(y_true, y_score, n_bins: int = 10) -> float:
    """``ECE = sum_b (n_b / n) |mean(y)_b - mean(p)_b|`` over ``n_bins`` equal-width bins of [0, 1].

    A probability equal to a bin edge belongs to the bin on its right; 1.0 belongs to the last bin.
    """
    y_true, p = _check_binary(y_true, y_score)
    if (p < 0).any() or (p > 1).any():
        raise InvalidInput("score", "calibration needs probabilities in [0, 1]")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    label_sum = np.bincount(bins, weights=y_true, minlength=n_bins)
    prob_sum = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.sum(np.abs(label_sum - prob_sum)) / y_true.size)
