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

Multi-class and multi-label metrics are in :mod:`eval_platform.metrics.multiclass`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput

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
        raise InvalidInput("label", f"must be 0 or 1 for binary metrics; row {row} is {plain(y_true[row])!r}")
    return y_true.astype(np.int64, copy=False), y_score


def plain(value):
    """A numpy scalar as the Python value (``2``, not ``np.int64(2)``) for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def check_threshold(threshold, field: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise InvalidInput(field, f"must be a number, got {threshold!r}")
    if math.isnan(threshold):
        raise InvalidInput(field, "must be a number, got NaN")
    return float(threshold)


def _check_min_precision(min_precision) -> float:
    value = check_threshold(min_precision, "min_precision")
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
    threshold = check_threshold(threshold)
    predicted = y_score >= threshold
    positive = y_true == 1
    tp = int(np.count_nonzero(predicted & positive))
    fp = int(np.count_nonzero(predicted & ~positive))
    fn = int(np.count_nonzero(~predicted & positive))
    tn = int(y_true.size - tp - fp - fn)
    return tp, fp, fn, tn


def precision_from_counts(tp, fp) -> float:
    """``TP / (TP + FP)``; 0 when nothing is predicted positive (scikit-learn's ``zero_division=0``)."""
    return tp / (tp + fp) if tp + fp else 0.0


def recall_from_counts(tp, fn) -> float:
    """``TP / (TP + FN)``; ``nan`` without a positive example (undefined, never a pass)."""
    return tp / (tp + fn) if tp + fn else float("nan")


def f1_from_counts(tp, fp, fn) -> float:
    """``2 TP / (2 TP + FP + FN)``; 0 when that is ``0/0``."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _fpr(fp, tn) -> float:
    return fp / (fp + tn) if fp + tn else float("nan")


def precision_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FP)`` at the operating threshold; 0 when nothing is predicted positive."""
    tp, fp, _, _ = _confusion_at(y_true, y_score, threshold)
    return precision_from_counts(tp, fp)


def recall_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``TP / (TP + FN)`` at the operating threshold; ``nan`` when there is no positive."""
    tp, _, fn, _ = _confusion_at(y_true, y_score, threshold)
    return recall_from_counts(tp, fn)


def f1_at(y_true, y_score, threshold: float = 0.5) -> float:
    """``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall; 0 when undefined."""
    tp, fp, fn, _ = _confusion_at(y_true, y_score, threshold)
    return f1_from_counts(tp, fp, fn)


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
    threshold = check_threshold(threshold)
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
        "precision": precision_from_counts(tp, fp),
        "recall": recall_from_counts(tp, fn),
        "f1": f1_from_counts(tp, fp, fn),
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
    threshold = check_threshold(threshold)
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
