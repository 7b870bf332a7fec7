"""Classification metrics over numpy arrays, equal to scikit-learn's to floating-point precision.

Binary conventions (``y_true``/``y_score``):

* ``y_true`` holds 0/1 labels, ``y_score`` the model's score for class 1 (higher means more positive).
* A prediction is positive when ``y_score >= threshold`` (scikit-learn's ``precision_recall_curve``
  convention, so an operating point found on the curve reproduces exactly with these functions).
* Empty input raises :class:`~eval_platform.core.errors.InvalidInput`; NaN scores are rejected at the boundary
  (the message names the first offending row). Infinite scores are allowed for the ranking metrics (a
  decision function may saturate); the probability metrics need scores in [0, 1].
* A metric that is undefined for the data returns ``nan`` instead of raising: ROC-AUC without both
  classes, average precision without positives, recall without positives. The gate treats ``nan`` as a
  missing metric, so an undefined value can never pass a release.
* Ratios whose denominator is zero because the *model* made no positive prediction follow
  scikit-learn's ``zero_division=0``: precision and F1 are 0.

The ranking metrics (ROC-AUC, average precision, recall at precision) need the scores in order, and
that sort is the cost floor of everything in this module. They sort the scores once, split by label (two
value sorts of disjoint halves, about half the cost of one ``argsort`` and no gathers), and evaluate the
curve only where it can change a metric: at each distinct *positive* score ``t``, with
``TP(t) = #{positives >= t}`` and ``FP(t) = #{negatives >= t}`` read off the sorted negatives by binary
search. :func:`binary_suite` computes the whole binary suite from that one sort and returns exactly the
numbers of the single functions. :func:`binary_curve` (every distinct score, for curve tables) uses one
``argsort``.

Multi-class conventions (``y_true``/``proba``/``classes``):

* ``proba`` is a 2-D float array ``(n, n_classes)`` whose column ``j`` scores ``classes[j]``;
  ``y_true`` holds class labels, every one of which must be in ``classes`` (else ``InvalidInput`` naming
  the row). The predicted class is ``classes[argmax(proba[i])]``; a tie goes to the first column (what
  ``numpy.argmax`` and scikit-learn's ``predict`` do).
* ``classes`` may also be given broadcast to ``(n, n_classes)`` (``numpy.broadcast_to``): a frame whose
  every column is row-aligned survives row-wise resampling; row 0 is used.
* Per-class precision ``TP / (TP + FP)`` is 0 for a class never predicted; recall ``TP / (TP + FN)`` is
  ``nan`` for a class with no true example; F1 ``2 TP / (2 TP + FP + FN)`` is 0 when that is ``0/0``.
* ``macro`` averages over the classes that have at least one true example (a slice that lacks a class
  is not penalised for it, and ``nan`` recall never enters an average); ``weighted`` weights by the
  number of true examples; ``micro`` pools the counts (for single-label multi-class it equals accuracy).
  These equal scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)`` with
  ``labels=<classes present in y_true>`` for ``macro`` and ``labels=classes`` for the others.

Multi-label conventions (``y_true``/``y_score``/``classes``): ``y_true`` is a 0/1 indicator matrix
``(n, n_labels)`` (or a 1-D object array or Series holding one list of labels per row), ``y_score`` the
per-label scores of the same shape, and label ``j`` is predicted when ``y_score[:, j] >= threshold[j]``.
Per-label and averaged precision/recall/F1 follow the multi-class rules above, label by label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # third-party typing gap: pandas-stubs is not installed

from eval_platform.core.errors import InvalidInput

AVERAGES = ("macro", "micro", "weighted")


# ------------------------------------------------------------------------------------------------------
# Binary: validation and the shared sorted curve


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
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("label", f"must be 0 or 1 for binary metrics; row {row} is {_plain(y_true[row])!r}")
    return y_true.astype(np.int64, copy=False), y_score


def _plain(value):
    """A numpy scalar as the Python value (``2``, not ``np.int64(2)``) for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def _check_threshold(threshold, field: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise InvalidInput(field, f"must be a number, got {threshold!r}")
    if math.isnan(threshold):
        raise InvalidInput(field, "must be a number, got NaN")
    return float(threshold)


def _check_min_precision(min_precision) -> float:
    value = _check_threshold(min_precision, "min_precision")
    if not 0.0 <= value <= 1.0:
        raise InvalidInput("min_precision", f"must be in [0, 1], got {value}")
    return value


def _check_n_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise InvalidInput("n_bins", f"must be an integer >= 1, got {n_bins!r}")
    return int(n_bins)


def _check_probabilities(p_min: float, p_max: float, metric: str) -> None:
    if p_min < 0 or p_max > 1:
        raise InvalidInput("score", f"{metric} needs probabilities in [0, 1]; got scores in [{p_min}, {p_max}]")


def binary_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive counts at each distinct score, thresholds in decreasing order.

    ``fps[i]`` and ``tps[i]`` count the examples with ``score >= thresholds[i]``; this is
    scikit-learn's ``_binary_clf_curve`` without sample weights. The counts at the end of a tie group do
    not depend on the order inside the group, so one unstable sort suffices. Tie groups are runs of
    equal scores (``!=``, not ``diff``, so repeated infinities stay one group).
    """
    y_true, y_score = _check_binary(y_true, y_score)
    order = np.argsort(y_score)[::-1]
    s_desc = y_score[order]
    distinct = np.flatnonzero(s_desc[1:] != s_desc[:-1])
    last = np.append(distinct, s_desc.size - 1)
    tps = np.cumsum(y_true.astype(np.int8)[order], dtype=np.int64)[last]
    fps = 1 + last - tps
    return fps, tps, s_desc[last]


def _roc_auc_from_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    """Trapezoidal area under a full curve (for curve tables; equal to :func:`roc_auc` to ~1e-16)."""
    if tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    return float(np.trapezoid(tpr, fpr))


def _average_precision_from_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    """Average precision over a full curve (for curve tables; equal to :func:`average_precision` to ~1e-16)."""
    if tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _split_sorted(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positives' and the negatives' scores, each sorted ascending: the one sort of the scores."""
    positive = y == 1
    return np.sort(s[positive]), np.sort(s[~positive])


class _Points:
    """The curve at each distinct positive score ``t``, by decreasing ``t``.

    ``tp[j] = #{positives >= t_j}``, ``fp[j] = #{negatives >= t_j}``; ``pairs2`` is twice the number of
    (positive, negative) pairs ranked correctly, a tie counting one half: ``sum_pos (2 #{neg < p} +
    #{neg == p})``, an exact integer, so ``AUC = pairs2 / (2 P N)`` (the trapezoidal ROC area).
    """

    __slots__ = ("n_pos", "n_neg", "thresholds", "tp", "fp", "pairs2")

    def __init__(self, pos: np.ndarray, neg: np.ndarray):
        self.n_pos, self.n_neg = pos.size, neg.size
        starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]]) if pos.size else np.zeros(0, np.intp)
        values = pos[starts]  # distinct positive scores, ascending
        below = np.searchsorted(neg, values, side="left")  # negatives < t
        not_above = np.searchsorted(neg, values, side="right")  # negatives <= t
        group = np.diff(np.append(starts, self.n_pos))  # positives equal to t
        self.pairs2 = int(np.dot(group.astype(np.int64), 2 * below.astype(np.int64) + (not_above - below)))
        self.thresholds = values[::-1]
        self.tp = (self.n_pos - starts)[::-1]
        self.fp = (self.n_neg - below)[::-1]

    def roc_auc(self) -> float:
        if self.n_pos == 0 or self.n_neg == 0:
            return float("nan")
        return self.pairs2 / (2 * self.n_pos * self.n_neg)

    def average_precision(self) -> float:
        """``sum_j (R_j - R_{j-1}) P_j``; a threshold without a positive adds a zero term, so is skipped."""
        if self.n_pos == 0:
            return float("nan")
        precision = self.tp / (self.tp + self.fp)
        recall = self.tp / self.n_pos
        return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))

    def operating_point(self, min_precision: float) -> tuple[float, float]:
        """Recall is constant between positive scores and precision is highest at the positive score
        itself, so scanning the positive scores finds the point a scan of every score finds."""
        if self.n_pos == 0:
            return float("nan"), float("nan")
        precision = self.tp / (self.tp + self.fp)
        ok = precision >= min_precision
        if not ok.any():
            return 0.0, float("inf")
        recall = self.tp / self.n_pos
        best = np.max(recall[ok])
        # thresholds decrease: the first index with the best recall has the largest threshold
        index = int(np.flatnonzero(ok & (recall == best))[0])
        return float(best), float(self.thresholds[index])


def _points(y_true, y_score) -> _Points:
    y, s = _check_binary(y_true, y_score)
    return _Points(*_split_sorted(y, s))


def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve: the trapezoidal area over (FPR, TPR) that scikit-learn computes,
    evaluated exactly as ``sum_pos (#{neg < p} + #{neg == p} / 2) / (P N)``.

    Ties in the score form one diagonal step (half credit). ``nan`` when only one class is present.
    """
    return _points(y_true, y_score).roc_auc()


def average_precision(y_true, y_score) -> float:
    """PR-AUC as average precision: ``AP = sum_n (R_n - R_{n-1}) P_n`` over decreasing thresholds.

    No interpolation (scikit-learn's ``average_precision_score``). ``nan`` when there is no positive.
    """
    return _points(y_true, y_score).average_precision()


def _confusion_at(y_true, y_score, threshold: float) -> tuple[int, int, int, int]:
    y_true, y_score = _check_binary(y_true, y_score)
    threshold = _check_threshold(threshold)
    predicted = y_score >= threshold
    positive = y_true == 1
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted & ~positive))
    fn = int(np.count_nonzero(~predicted & positive))
    tn = int(y_true.size - tp - fp - fn)
    return tp, fp, fn, tn


def _precision(tp, fp) -> float:
    return tp / (tp + fp) if tp + fp else 0.0


def _recall(tp, fn) -> float:
    return tp / (tp + fn) if tp + fn else float("nan")


def _f1(tp, fp, fn) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _fpr(fp, tn) -> float:
    return fp / (fp + tn) if fp + tn else float("nan")


def precision_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FP)`` at the operating threshold; 0 when nothing is predicted positive."""
    tp, fp, _, _ = _confusion_at(y_true, y_score, threshold)
    return _precision(tp, fp)


def recall_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FN)`` at the operating threshold; ``nan`` when there is no positive."""
    tp, _, fn, _ = _confusion_at(y_true, y_score, threshold)
    return _recall(tp, fn)


def f1_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall; 0 when undefined."""
    tp, fp, fn, _ = _confusion_at(y_true, y_score, threshold)
    return _f1(tp, fp, fn)


def false_positive_rate_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``FP / (FP + TN)`` at the operating threshold; ``nan`` when there is no negative."""
    _, fp, _, tn = _confusion_at(y_true, y_score, threshold)
    return _fpr(fp, tn)


def accuracy_at(y_true, y_score, threshold: float = 0.5) -> float:
    """Fraction of examples whose thresholded prediction equals the label: ``(TP + TN) / n``."""
    tp, fp, fn, tn = _confusion_at(y_true, y_score, threshold)
    return (tp + tn) / (tp + fp + fn + tn)


def operating_point_at_precision(y_true, y_score, min_precision: float) -> tuple[float, float]:
    """The threshold that maximises recall subject to ``precision >= min_precision``, and that recall.

    Among thresholds reaching the same highest recall the largest is returned (fewest positives flagged).
    When no threshold reaches the precision the recall is 0 and the threshold ``inf`` (flag nothing).
    ``nan`` recall (and threshold) when there is no positive. ``min_precision`` must be in [0, 1].
    """
    min_precision = _check_min_precision(min_precision)
    return _points(y_true, y_score).operating_point(min_precision)


def recall_at_precision(y_true, y_score, min_precision: float = 0.95) -> float:
    """Highest recall among thresholds whose precision is at least ``min_precision`` (see above)."""
    return operating_point_at_precision(y_true, y_score, min_precision)[0]


def threshold_at_precision(y_true, y_score, min_precision: float = 0.95) -> float:
    """The score threshold of :func:`recall_at_precision`'s operating point."""
    return operating_point_at_precision(y_true, y_score, min_precision)[1]


def _log_loss(y_true: np.ndarray, p: np.ndarray, eps: float | None) -> float:
    eps = np.finfo(np.float64).eps if eps is None else eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y_true == 1, np.log(p), np.log1p(-p))))


def _brier(y_true: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y_true) ** 2))


def _ece(y_true: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    # interior edges k/n_bins, each the float nearest the real edge; p >= edge puts p right of it
    edges = np.arange(1, n_bins, dtype=np.float64) / n_bins
    bins = np.searchsorted(edges, p, side="right")
    counts_label = np.bincount(bins, weights=y_true, minlength=n_bins)
    counts_prob = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.sum(np.abs(counts_label - counts_prob)) / y_true.size)


def log_loss(y_true, y_score, eps: float | None = None) -> float:
    """Mean negative log-likelihood ``-mean(y log p + (1-y) log(1-p))``; ``p`` clipped to the float64 eps.

    Scores must be probabilities in [0, 1].
    """
    y_true, p = _check_binary(y_true, y_score)
    _check_probabilities(p.min(), p.max(), "log loss")
    return _log_loss(y_true, p, eps)


def brier_score(y_true, y_score) -> float:
    """Mean squared error of the probability: ``mean((p - y)^2)``. Lower is better."""
    y_true, p = _check_binary(y_true, y_score)
    _check_probabilities(p.min(), p.max(), "the Brier score")
    return _brier(y_true, p)


def expected_calibration_error(y_true, y_score, n_bins: int = 10) -> float:
    """``ECE = sum_b (n_b / n) |mean(y)_b - mean(p)_b| = sum_b |sum_{i in b} (y_i - p_i)| / n`` over ``n_bins``
    equal-width bins of [0, 1].

    Bin ``b`` is ``[e_b, e_{b+1})`` with ``e_b`` the float nearest ``b / n_bins`` (so 0.3 typed as a
    literal is the edge of bin 3 of 10), and 1.0 belongs to the last bin. Empty bins contribute 0.
    """
    n_bins = _check_n_bins(n_bins)
    y_true, p = _check_binary(y_true, y_score)
    _check_probabilities(p.min(), p.max(), "calibration")
    return _ece(y_true, p, n_bins)


# ------------------------------------------------------------------------------------------------------
# Binary suite: every binary metric from one sort


BINARY_SUITE_KEYS = (
    "roc_auc", "average_precision", "precision", "recall", "f1", "accuracy", "false_positive_rate",
    "recall_at_precision", "threshold_at_precision", "log_loss", "brier_score", "expected_calibration_error",
)


def binary_suite(
    y_true,
    y_score,
    threshold: float = 0.5,
    min_precision: float = 0.95,
    n_bins: int = 10,
    *,
    calibration: bool = True,
) -> dict[str, float]:
    """The binary metrics of a suite from ONE sort of the scores, keyed by catalog name.

    Returns ``roc_auc``, ``average_precision`` (PR-AUC), ``precision``/``recall``/``f1``/``accuracy``/
    ``false_positive_rate`` at ``threshold``, ``recall_at_precision``/``threshold_at_precision`` at
    ``min_precision``, and, when ``calibration`` (scores must then be probabilities in [0, 1]),
    ``log_loss``, ``brier_score`` and ``expected_calibration_error`` with ``n_bins`` bins. Each value is
    exactly what the single function of the same name returns (same edge cases, same floating-point
    operations); the validation and the sort are done once.

    The sort is the label-split value sort described in the module docstring; the confusion counts at
    ``threshold`` are two binary searches in it (``TP = #{positives >= threshold}``, likewise ``FP``),
    and the calibration metrics are single passes over the unsorted arrays.
    """
    threshold = _check_threshold(threshold)
    min_precision = _check_min_precision(min_precision)
    n_bins = _check_n_bins(n_bins)
    y, s = _check_binary(y_true, y_score)
    n = y.size
    pos, neg = _split_sorted(y, s)  # the one sort
    if calibration:
        ends = [a[i] for a in (pos, neg) if a.size for i in (0, -1)]
        _check_probabilities(min(ends), max(ends), "log loss / Brier / calibration")
    points = _Points(pos, neg)
    tp = pos.size - int(np.searchsorted(pos, threshold, side="left"))
    fp = neg.size - int(np.searchsorted(neg, threshold, side="left"))
    fn = pos.size - tp
    tn = n - tp - fp - fn
    recall_p, threshold_p = points.operating_point(min_precision)
    out = {
        "roc_auc": points.roc_auc(),
        "average_precision": points.average_precision(),
        "precision": _precision(tp, fp),
        "recall": _recall(tp, fn),
        "f1": _f1(tp, fp, fn),
        "accuracy": (tp + tn) / n,
        "false_positive_rate": _fpr(fp, tn),
        "recall_at_precision": recall_p,
        "threshold_at_precision": threshold_p,
    }
    if calibration:
        out["log_loss"] = _log_loss(y, s, None)
        out["brier_score"] = _brier(y, s)
        out["expected_calibration_error"] = _ece(y, s, n_bins)
    return out


def false_positive_rate_by_segment(y_true, y_score, segments, threshold: float = 0.5) -> pd.DataFrame:
    """False-positive rate ``FP / (FP + TN)`` at ``threshold`` within each segment (e.g. content type).

    Returns a DataFrame indexed by segment value (sorted when the values are orderable; a missing
    segment value is its own segment) with columns ``fpr``, ``n_negatives`` (its denominator) and ``n``
    (examples in the segment). ``fpr`` is ``nan`` for a segment without negatives.
    """
    threshold = _check_threshold(threshold)
    y, s = _check_binary(y_true, y_score)
    segments = np.asarray(segments)
    if segments.ndim != 1 or segments.shape[0] != y.size:
        raise InvalidInput("segment", f"must be one value per example ({y.size}), got shape {segments.shape}")
    try:
        codes, uniques = pd.factorize(segments, sort=True, use_na_sentinel=False)
    except TypeError:  # values that cannot be ordered together (e.g. str and None): first-seen order
        codes, uniques = pd.factorize(segments, sort=False, use_na_sentinel=False)
    m = len(uniques)
    negative = y == 0
    n = np.bincount(codes, minlength=m)
    n_negatives = np.bincount(codes[negative], minlength=m)
    n_false_positives = np.bincount(codes[negative & (s >= threshold)], minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.where(n_negatives > 0, n_false_positives / np.maximum(n_negatives, 1), np.nan)
    return pd.DataFrame(
        {"fpr": fpr, "n_negatives": n_negatives.astype(np.int64), "n": n.astype(np.int64)},
        index=pd.Index(uniques, name="segment"),
    )


# ------------------------------------------------------------------------------------------------------
# Multi-class: validation


def _check_classes(classes, n_columns: int | None = None, minimum: int = 2) -> np.ndarray:
    classes = np.asarray(classes)
    if classes.ndim == 2:  # broadcast to one row per example: every row is the same list
        if classes.shape[0] == 0:
            raise InvalidInput("label", "is empty: no examples to evaluate")
        classes = classes[0]
    if classes.ndim != 1:
        raise InvalidInput("classes", f"must be a one-dimensional array of class labels, got shape {classes.shape}")
    if classes.size < minimum:
        raise InvalidInput("classes", f"needs at least {minimum} class(es), got {classes.size}")
    index = pd.Index(classes)
    if not index.is_unique:
        raise InvalidInput("classes", f"contains duplicates: {sorted(map(repr, index[index.duplicated()].unique()))}")
    if n_columns is not None and classes.size != n_columns:
        raise InvalidInput("classes", f"has {classes.size} labels but the scores have {n_columns} columns")
    return classes


def _as_float_matrix(values, field: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object and array.ndim == 1:  # one sequence per row, e.g. a pandas column of lists
        if array.size == 0:
            raise InvalidInput("label", "is empty: no examples to evaluate")
        try:
            array = np.stack([np.asarray(row, dtype=np.float64) for row in array])
        except ValueError as error:
            raise InvalidInput(field, f"rows must all have the same number of columns ({error})") from error
    try:
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"must be numeric: {error}") from error
    if array.ndim != 2:
        raise InvalidInput(field, f"must be a 2-D array (n_examples, n_classes), got shape {array.shape}")
    nan_rows = np.isnan(array).any(axis=1)
    if nan_rows.any():
        row = int(np.flatnonzero(nan_rows)[0])
        raise InvalidInput(field, f"contains NaN at row {row}, column {int(np.flatnonzero(np.isnan(array[row]))[0])}")
    return array


def _check_multiclass(y_true, proba, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, proba, classes)``: ``codes[i]`` is the column of ``y_true[i]`` in ``classes``."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise InvalidInput("label", f"must be one-dimensional (one class per example), got shape {y_true.shape}")
    if y_true.shape[0] == 0:
        raise InvalidInput("label", "is empty: no examples to evaluate")
    proba = _as_float_matrix(proba, "proba")
    if proba.shape[0] != y_true.shape[0]:
        raise InvalidInput("label/proba", f"have different lengths ({y_true.shape[0]} and {proba.shape[0]})")
    classes = _check_classes(classes, proba.shape[1])
    codes = pd.Index(classes).get_indexer(y_true)
    unknown = codes < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise InvalidInput("label", f"row {row} is {_plain(y_true[row])!r}, which is not one of the classes {classes.tolist()}")
    return codes.astype(np.int64, copy=False), proba, classes


def _counts_multiclass(codes: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(codes * k + predicted, minlength=k * k).reshape(k, k)


# ------------------------------------------------------------------------------------------------------
# Per-class counts to precision / recall / F1 and their averages (shared by multi-class and multi-label)


def _per_class(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return precision, recall, f1


def _averaged(tp, fp, fn, average: str, which: str) -> float:
    if average not in AVERAGES:
        raise InvalidInput("average", f"must be one of {list(AVERAGES)}, got {average!r}")
    tp, fp, fn = (np.asarray(x, dtype=np.int64) for x in (tp, fp, fn))
    if average == "micro":
        t, f_p, f_n = int(tp.sum()), int(fp.sum()), int(fn.sum())
        return {"precision": _precision(t, f_p), "recall": _recall(t, f_n), "f1": _f1(t, f_p, f_n)}[which]
    values = dict(zip(("precision", "recall", "f1"), _per_class(tp, fp, fn), strict=True))[which]
    support = tp + fn
    present = support > 0
    if not present.any():
        return float("nan")
    if average == "macro":
        return float(np.mean(values[present]))
    return float(np.sum(values[present] * support[present]) / np.sum(support[present]))


def _table(index: pd.Index, tp, fp, fn, extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    precision, recall, f1 = _per_class(tp, fp, fn)
    columns = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": np.asarray(tp + fn, dtype=np.int64),
        "n_predicted": np.asarray(tp + fp, dtype=np.int64),
    }
    columns.update(extra or {})
    return pd.DataFrame(columns, index=index)


# ------------------------------------------------------------------------------------------------------
# Multi-class metrics


def multiclass_predictions(proba, classes) -> np.ndarray:
    """``classes[argmax(proba, axis=1)]``: the predicted class of each row (ties: the first column)."""
    proba = _as_float_matrix(proba, "proba")
    if proba.shape[0] == 0:
        raise InvalidInput("proba", "is empty: no examples to evaluate")
    classes = _check_classes(classes, proba.shape[1])
    return classes[np.argmax(proba, axis=1)]


def _multiclass_counts(y_true, proba, classes) -> tuple[np.ndarray, np.ndarray]:
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    return _counts_multiclass(codes, np.argmax(proba, axis=1), classes.size), classes


def confusion_matrix(y_true, proba, classes) -> pd.DataFrame:
    """Counts ``C[t, p]`` of examples of true class ``t`` predicted as ``p`` (``argmax`` of ``proba``).

    Rows (index ``true``) and columns (``predicted``) are ``classes`` in the given order, so the matrix
    is square even when a class is absent. Equal to ``sklearn.metrics.confusion_matrix(..., labels=classes)``.
    """
    counts, classes = _multiclass_counts(y_true, proba, classes)
    return pd.DataFrame(
        counts.astype(np.int64),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )


def _tp_fp_fn(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(counts)
    return tp, counts.sum(axis=0) - tp, counts.sum(axis=1) - tp


def per_class_metrics(y_true, proba, classes) -> pd.DataFrame:
    """One row per class (index ``class``): ``precision``, ``recall``, ``f1``, ``support`` (true
    examples), ``n_predicted``; for class ``c``: ``P = TP/(TP+FP)`` (0 if never predicted),
    ``R = TP/(TP+FN)`` (``nan`` if no true example), ``F1 = 2TP/(2TP+FP+FN)`` (0 if ``0/0``).
    """
    counts, classes = _multiclass_counts(y_true, proba, classes)
    return _table(pd.Index(classes, name="class"), *_tp_fp_fn(counts))


def multiclass_precision(y_true, proba, classes, average: str = "macro") -> float:
    """Precision averaged over classes: ``macro`` (classes with true examples), ``micro``, ``weighted``."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "precision")


def multiclass_recall(y_true, proba, classes, average: str = "macro") -> float:
    """Recall averaged over classes (macro = balanced accuracy over the classes present)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "recall")


def multiclass_f1(y_true, proba, classes, average: str = "macro") -> float:
    """F1 averaged over classes: the mean (macro/weighted) of per-class F1, or the pooled F1 (micro)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "f1")


def multiclass_accuracy(y_true, proba, classes) -> float:
    """Fraction of examples whose ``argmax`` class equals the label (= micro precision/recall/F1)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return float(np.trace(counts) / counts.sum())


def class_metric(y_true, proba, classes, class_label, metric: str = "recall") -> float:
    """One class's ``precision``, ``recall`` or ``f1`` (see :func:`per_class_metrics`).

    ``class_label`` matches a class or its ``str`` (so a JSON parameter ``"3"`` finds class ``3``).
    """
    if metric not in ("precision", "recall", "f1"):
        raise InvalidInput("metric", f"must be precision, recall or f1, got {metric!r}")
    table = per_class_metrics(y_true, proba, classes)
    return float(table[metric].iloc[_class_position(table.index, class_label)])


def _class_position(classes, label, field: str = "class_label") -> int:
    """Position of ``label`` in ``classes``: an equal class first, else a class whose ``str`` equals it."""
    classes = list(classes)
    for position, c in enumerate(classes):
        if type(c) is type(label) and c == label:
            return position
    names = [str(c) for c in classes]
    if str(label) in names:
        return names.index(str(label))
    raise InvalidInput(field, f"{label!r} is not one of the classes {names}")


def multiclass_roc_auc_ovr(y_true, proba, classes, average: str = "macro") -> float:
    """One-vs-rest ROC-AUC: ``AUC_c = roc_auc(y == c, proba[:, c])`` averaged over classes.

    ``macro`` is the mean of ``AUC_c``, ``weighted`` weights it by the class's true examples (scikit-learn's
    ``roc_auc_score(multi_class="ovr")``). A class whose one-vs-rest AUC is undefined (no true example, or
    every example is of that class) is left out of the average; ``nan`` when no class is defined.
    Any per-class scores work (rows need not sum to 1, unlike scikit-learn).
    """
    if average not in ("macro", "weighted"):
        raise InvalidInput("average", f"must be macro or weighted, got {average!r}")
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    aucs = np.array([roc_auc((codes == j).astype(np.int8), np.ascontiguousarray(proba[:, j])) for j in range(classes.size)])
    defined = ~np.isnan(aucs)
    if not defined.any():
        return float("nan")
    if average == "macro":
        return float(np.mean(aucs[defined]))
    support = np.bincount(codes, minlength=classes.size)[defined]
    return float(np.sum(aucs[defined] * support) / np.sum(support))


def multiclass_log_loss(y_true, proba, classes) -> float:
    """Cross-entropy ``-mean_i log p_i[y_i]``, ``p`` clipped to ``[eps, 1 - eps]`` (float64 eps).

    ``proba`` must hold probabilities in [0, 1] whose rows sum to 1 within ``1e-6`` (else
    ``InvalidInput`` naming the row): the loss of unnormalised scores would reward inflating them.
    """
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    if proba.min() < 0 or proba.max() > 1:
        raise InvalidInput("proba", f"log loss needs probabilities in [0, 1]; got values in [{proba.min()}, {proba.max()}]")
    off = np.abs(proba.sum(axis=1) - 1.0) > 1e-6
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise InvalidInput("proba", f"row {row} sums to {float(proba[row].sum())!r}, not 1: log loss needs probabilities")
    eps = np.finfo(np.float64).eps
    p = np.clip(proba[np.arange(codes.size), codes], eps, 1 - eps)
    return float(-np.mean(np.log(p)))


# ------------------------------------------------------------------------------------------------------
# Multi-label metrics


def _check_multilabel(y_true, y_score, classes, threshold) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(indicator, scores, classes, thresholds)`` with one threshold per label."""
    try:
        y_array = np.asarray(y_true, dtype=object) if _is_label_lists(y_true) else np.asarray(y_true)
    except ValueError as error:  # ragged nested lists
        raise InvalidInput("labels", f"must be a 0/1 matrix or a 1-D object array of label lists ({error})") from error
    if y_array.shape[:1] == (0,):
        raise InvalidInput("labels", "is empty: no examples to evaluate")
    scores = _as_float_matrix(y_score, "proba")
    classes = _check_classes(classes, scores.shape[1], minimum=1)
    if y_array.dtype == object and y_array.ndim == 1:
        indicator = _indicator_from_lists(y_array, classes)
    else:
        if y_array.ndim != 2:
            raise InvalidInput("labels", f"must be a 0/1 matrix (n_examples, n_labels) or one list of labels per row, got shape {y_array.shape}")
        if y_array.dtype == bool:
            y_array = y_array.astype(np.int8)
        bad = (y_array != 0) & (y_array != 1)
        if bad.any():
            row, column = (int(v[0]) for v in np.nonzero(bad))
            raise InvalidInput("labels", f"must be 0 or 1; row {row}, column {column} is {_plain(y_array[row, column])!r}")
        indicator = y_array.astype(np.int8)
    if indicator.shape[0] != scores.shape[0]:
        raise InvalidInput("labels/proba", f"have different lengths ({indicator.shape[0]} and {scores.shape[0]})")
    if indicator.shape[1] != scores.shape[1]:
        raise InvalidInput("labels/proba", f"have different numbers of labels ({indicator.shape[1]} and {scores.shape[1]})")
    return indicator, scores, classes, _label_thresholds(threshold, classes)


def _is_label_lists(values) -> bool:
    """One sequence of labels per row: a 1-D object array or an object Series (not a 0/1 matrix)."""
    if isinstance(values, pd.Series):
        return values.dtype == object
    return isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1


def _indicator_from_lists(rows: np.ndarray, classes: np.ndarray) -> np.ndarray:
    position = {c: j for j, c in enumerate(classes.tolist())}
    indicator = np.zeros((rows.size, classes.size), dtype=np.int8)
    for i, row in enumerate(rows):
        if row is None or isinstance(row, str) or not hasattr(row, "__iter__"):
            raise InvalidInput("labels", f"row {i} must be a list of labels, got {row!r}")
        for label in row:
            j = position.get(label.item() if isinstance(label, np.generic) else label)
            if j is None:
                raise InvalidInput("labels", f"row {i} has label {_plain(label)!r}, which is not one of the classes {classes.tolist()}")
            indicator[i, j] = 1
    return indicator


def _label_thresholds(threshold, classes: np.ndarray) -> np.ndarray:
    if isinstance(threshold, Mapping):
        values = np.full(classes.size, np.nan)
        for key, value in threshold.items():
            values[_class_position(classes.tolist(), key, "threshold")] = _check_threshold(value, f"threshold[{key!r}]")
        missing = [str(c) for c in classes[np.isnan(values)].tolist()]
        if missing:
            raise InvalidInput("threshold", f"has no threshold for label(s) {missing}")
        return values
    if np.ndim(threshold) == 0:
        return np.full(classes.size, _check_threshold(threshold))
    checked = [_check_threshold(v, "threshold") for v in np.asarray(threshold).ravel().tolist()]
    if np.ndim(threshold) != 1 or len(checked) != classes.size:
        raise InvalidInput("threshold", f"must be one number, or one per label ({classes.size}), got shape {np.shape(threshold)}")
    return np.asarray(checked, dtype=np.float64)


def _multilabel_counts(y_true, y_score, classes, threshold):
    indicator, scores, classes, thresholds = _check_multilabel(y_true, y_score, classes, threshold)
    predicted = scores >= thresholds
    positive = indicator == 1
    tp = np.count_nonzero(predicted & positive, axis=0)
    fp = np.count_nonzero(predicted & ~positive, axis=0)
    fn = np.count_nonzero(~predicted & positive, axis=0)
    return tp, fp, fn, classes, thresholds


def multilabel_per_label_metrics(y_true, y_score, classes, threshold=0.5) -> pd.DataFrame:
    """One row per label (index ``label``): ``precision``, ``recall``, ``f1``, ``support``,
    ``n_predicted`` and the ``threshold`` used, label ``j`` predicted when ``y_score[:, j] >= threshold[j]``.

    ``threshold`` is one number, one per label (sequence in ``classes`` order) or a mapping label ->
    threshold covering every label. Conventions as :func:`per_class_metrics`.
    """
    tp, fp, fn, classes, thresholds = _multilabel_counts(y_true, y_score, classes, threshold)
    return _table(pd.Index(classes, name="label"), tp, fp, fn, {"threshold": thresholds})


def multilabel_precision(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """Precision over labels: ``macro`` (labels with a true example), ``micro`` (pooled), ``weighted``."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "precision")


def multilabel_recall(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """Recall over labels (macro/micro/weighted); ``nan`` when no label has a true example."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "recall")


def multilabel_f1(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """F1 over labels: mean of per-label F1 (macro/weighted) or pooled ``2TP/(2TP+FP+FN)`` (micro)."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "f1")
