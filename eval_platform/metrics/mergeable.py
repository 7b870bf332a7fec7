"""Per-shard metric states that merge exactly: compute on each worker's shard, merge, read the value.

A run whose predictions are split into shards (one per worker) needs the metric of the whole run, not a
mean of shard metrics. Each state here holds the *sufficient statistic* of a metric family for one shard,
so that merging the shards' states gives the state of the concatenated data, and ``value()`` then returns
what the single-process catalog function returns on all rows:

======================  ===========================================================  =====================
state                   sufficient statistic (per shard)                             merge
======================  ===========================================================  =====================
:class:`BinaryCounts`   ``TP, FP, FN, TN`` at a threshold; ``sum`` of log losses,     add
                        of squared errors; per-bin ``sum y``, ``sum p``, ``n``
:class:`ScoreRuns`      the positives' and the negatives' scores, each sorted        merge of sorted runs
:class:`ConfusionCounts`  the ``k x k`` confusion matrix, ``sum`` of log losses        add
:class:`QueryRows`      ``(query_id, value)`` per query                              concatenate
:class:`MeanOfScores`   ``n`` and ``sum`` of per-example scores                      add
======================  ===========================================================  =====================

Use::

    states = [ScoreRuns.from_shard(y, s) for y, s in shards]      # on the workers
    merged = merge_states(states)                                 # anywhere
    merged.value().roc_auc                                        # == roc_auc(all_y, all_s)

Exactness. Counts are integers, so every count-based value (precision, recall, F1, accuracy, FPR, the
multi-class averages) is bit-for-bit the single-process value. Sums of floats (log loss, Brier, ECE,
generation means) are added in a different order than one ``numpy.mean`` over all rows, so they agree to
a few ulps (well inside ``1e-12``). ROC-AUC and average precision are computed from the merged sorted runs,
which are element for element the arrays the single-process sort produces, with the same code
(:class:`~eval_platform.metrics.classification._Points`), so they are identical.

Edge cases shared by every state:

* **Empty shard.** Allowed (a worker may receive no rows): its state is the neutral element of the merge.
  A *merged* state with no rows gives ``nan`` values (the single-process functions refuse empty input;
  the gate treats ``nan`` as missing, so it can never pass).
* **Ties across shards.** Equal scores in different shards end up adjacent in the merged runs, and the
  tie groups are formed after the merge, so a tie split across shards is one diagonal ROC step, as in
  scikit-learn's ``roc_auc_score`` / ``average_precision_score``.
* **Single class.** A shard may hold one class only; the merged value is undefined (``nan``) only when the
  merged data lack a class, exactly as for the single-process function.
* **Mismatched states** (different thresholds, classes, bins, or state types) raise
  :class:`~eval_platform.core.errors.InvalidInput` naming the field instead of merging nonsense.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.classification import (
    _check_binary,
    _check_min_precision,
    _check_n_bins,
    _check_probabilities,
    _fpr,
    _Points,
    check_threshold,
    f1_from_counts,
    precision_from_counts,
    recall_from_counts,
)
from eval_platform.metrics.multiclass import (
    _averaged,
    _check_classes,
    _check_multiclass,
    _check_probability_rows,
    _counts_multiclass,
    _tp_fp_fn,
)

_EPS = float(np.finfo(np.float64).eps)
_NAN = float("nan")


class MetricState(ABC):
    """A metric family's sufficient statistic over one shard (or over merged shards)."""

    @classmethod
    @abstractmethod
    def merge(cls, states: Sequence[Self]) -> Self:
        """The state of the concatenation of the shards the ``states`` were computed on."""

    @abstractmethod
    def value(self) -> Any:
        """The metric value(s) of the data this state summarises."""


S = TypeVar("S", bound=MetricState)


def merge_states(states: Sequence[S]) -> S:
    """Merge the per-shard states of one metric family into the state of all their rows.

    The order of ``states`` does not change any count, nor the merged sorted runs; float sums may differ
    in the last ulp. Raises ``InvalidInput`` on an empty list or on states of different types.
    """
    states = list(states)
    if not states:
        raise InvalidInput("states", "is empty: no shard states to merge")
    kind = type(states[0])
    for position, state in enumerate(states):
        if type(state) is not kind:
            raise InvalidInput(
                "states", f"shard {position} is a {type(state).__name__}, shard 0 a {kind.__name__}: merge one metric family at a time")
    return kind.merge(states)


def _shard_binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validated binary labels and scores; unlike the single-process boundary, an empty shard is allowed."""
    if np.size(y_true) == 0 and np.size(y_score) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return _check_binary(y_true, y_score)


def _same(states: Sequence[Any], name: str) -> Any:
    first = getattr(states[0], name)
    for position, state in enumerate(states):
        other = getattr(state, name)
        if not (other == first if not isinstance(first, np.ndarray) else np.array_equal(other, first)):
            raise InvalidInput(name, f"shard {position} has {other!r}, shard 0 {first!r}: states computed with different settings do not merge")
    return first


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


# ------------------------------------------------------------------------------------------------------
# Binary threshold metrics and calibration: counts and sums


@dataclass(frozen=True)
class BinaryThresholdMetrics:
    """Binary metrics at one threshold, as :func:`~eval_platform.metrics.classification.binary_suite` names them."""

    n: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    false_positive_rate: float
    log_loss: float
    brier_score: float
    expected_calibration_error: float


@dataclass(frozen=True, eq=False)
class BinaryCounts(MetricState):
    """Confusion counts at ``threshold`` plus the sums behind log loss, Brier score and ECE.

    ``TP = #{y = 1, s >= t}``, ``FP = #{y = 0, s >= t}``, ``FN``, ``TN`` likewise; merged by adding.
    From them ``precision = TP / (TP + FP)`` (0 when nothing is flagged), ``recall = TP / (TP + FN)``
    (``nan`` without positives), ``F1 = 2TP / (2TP + FP + FN)``, ``accuracy = (TP + TN) / n``,
    ``FPR = FP / (FP + TN)``. When ``calibration`` (scores must then be probabilities):
    ``log_loss = sum_i -[y log p + (1-y) log(1-p)] / n`` with ``p`` clipped to ``[eps, 1-eps]``,
    ``brier = sum_i (p - y)^2 / n``, ``ECE = sum_b |sum_{i in b} y_i - sum_{i in b} p_i| / n`` over
    ``n_bins`` equal-width bins (the bin edges of the single-process function); without ``calibration``
    these three are ``nan``.
    """

    threshold: float
    n_bins: int
    calibration: bool
    tp: int
    fp: int
    fn: int
    tn: int
    log_loss_sum: float
    squared_error_sum: float
    bin_label_sums: np.ndarray = field(repr=False)
    bin_score_sums: np.ndarray = field(repr=False)

    @classmethod
    def from_shard(cls, y_true, y_score, threshold: float = 0.5, n_bins: int = 10, *, calibration: bool = True) -> BinaryCounts:
        threshold = check_threshold(threshold)
        n_bins = _check_n_bins(n_bins)
        y, s = _shard_binary(y_true, y_score)
        predicted, positive = s >= threshold, y == 1
        tp = int(np.count_nonzero(predicted & positive))
        fp = int(np.count_nonzero(predicted & ~positive))
        fn = int(np.count_nonzero(positive)) - tp
        log_loss_sum = squared = 0.0
        label_sums: np.ndarray = np.zeros(n_bins)
        score_sums: np.ndarray = np.zeros(n_bins)
        if calibration and s.size:
            _check_probabilities(s.min(), s.max(), "log loss / Brier / calibration")
            p = np.clip(s, _EPS, 1 - _EPS)
            log_loss_sum = float(-np.sum(np.where(y == 1, np.log(p), np.log1p(-p))))
            squared = float(np.sum((s - y) ** 2))
            bins = np.searchsorted(np.arange(1, n_bins, dtype=np.float64) / n_bins, s, side="right")
            label_sums = np.bincount(bins, weights=y, minlength=n_bins)
            score_sums = np.bincount(bins, weights=s, minlength=n_bins)
        return cls(threshold, n_bins, calibration, tp, fp, fn, y.size - tp - fp - fn, log_loss_sum, squared,
                   _frozen(label_sums), _frozen(score_sums))

    @classmethod
    def merge(cls, states: Sequence[BinaryCounts]) -> BinaryCounts:
        return cls(
            _same(states, "threshold"), _same(states, "n_bins"), _same(states, "calibration"),
            sum(s.tp for s in states), sum(s.fp for s in states), sum(s.fn for s in states), sum(s.tn for s in states),
            math.fsum(s.log_loss_sum for s in states), math.fsum(s.squared_error_sum for s in states),
            _frozen(np.sum([s.bin_label_sums for s in states], axis=0)), _frozen(np.sum([s.bin_score_sums for s in states], axis=0)),
        )

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def value(self) -> BinaryThresholdMetrics:
        n = self.n
        if n == 0:
            return BinaryThresholdMetrics(0, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
        calibrated = self.calibration
        return BinaryThresholdMetrics(
            n=n,
            precision=precision_from_counts(self.tp, self.fp),
            recall=recall_from_counts(self.tp, self.fn),
            f1=f1_from_counts(self.tp, self.fp, self.fn),
            accuracy=(self.tp + self.tn) / n,
            false_positive_rate=_fpr(self.fp, self.tn),
            log_loss=self.log_loss_sum / n if calibrated else _NAN,
            brier_score=self.squared_error_sum / n if calibrated else _NAN,
            expected_calibration_error=float(np.sum(np.abs(self.bin_label_sums - self.bin_score_sums)) / n) if calibrated else _NAN,
        )


# ------------------------------------------------------------------------------------------------------
# ROC-AUC and average precision: sorted score runs


def merge_sorted_runs(runs: Sequence[np.ndarray]) -> np.ndarray:
    """One ascending array holding every element of the ascending ``runs``, without sorting again.

    Runs are merged pairwise in a balanced tree; merging ``a`` and ``b`` places ``b[j]`` at
    ``#{a <= b[j]} + j`` (a binary search per element, ``O(|b| log |a|)``) and ``a`` in the remaining slots
    in order. Equal values from different runs become adjacent, so the result equals ``np.sort`` of the
    concatenation element for element (``-0.0`` and ``0.0`` compare equal and may swap places).
    """
    runs = [np.asarray(run, dtype=np.float64) for run in runs]
    if not runs:
        return np.zeros(0, np.float64)
    while len(runs) > 1:
        runs = [_merge_two(runs[i], runs[i + 1]) if i + 1 < len(runs) else runs[i] for i in range(0, len(runs), 2)]
    return runs[0]


def _merge_two(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.size + b.size, dtype=np.float64)
    b_slots = np.searchsorted(a, b, side="right") + np.arange(b.size)
    a_slots = np.ones(out.size, dtype=bool)
    a_slots[b_slots] = False
    out[b_slots] = b
    out[a_slots] = a
    return out


def _check_sorted(values: np.ndarray, name: str) -> None:
    if values.ndim != 1:
        raise InvalidInput(name, f"must be one-dimensional, got shape {values.shape}")
    if np.isnan(values).any():
        raise InvalidInput(name, f"contains NaN at position {int(np.flatnonzero(np.isnan(values))[0])}")
    unsorted = np.flatnonzero(values[1:] < values[:-1])
    if unsorted.size:
        raise InvalidInput(name, f"must be sorted ascending; position {int(unsorted[0]) + 1} is smaller than the one before")


@dataclass(frozen=True)
class ScoreRunMetrics:
    """The ranking metrics of binary scores (catalog names), from the merged sorted runs."""

    n_positive: int
    n_negative: int
    roc_auc: float
    average_precision: float
    recall_at_precision: float
    threshold_at_precision: float


@dataclass(frozen=True, eq=False)
class ScoreRuns(MetricState):
    """The positives' and the negatives' scores, each sorted ascending: the state of ROC-AUC and PR-AUC.

    ROC-AUC is ``sum_{p in pos} (#{neg < p} + #{neg == p} / 2) / (P N)`` (the trapezoidal ROC area, a tie a
    half credit), average precision ``sum_n (R_n - R_{n-1}) P_n`` over the distinct positive scores by
    decreasing threshold (no interpolation), both counted on the merged runs exactly as
    :func:`~eval_platform.metrics.classification.roc_auc` and ``average_precision`` count on one sort.
    Neither decomposes into per-shard numbers (a positive of shard 1 is ranked against the negatives of
    every shard), so the state keeps the scores; merging is a merge of sorted runs, ``O(n log k)``
    comparisons for ``k`` shards, not a re-sort. ``nan`` ROC-AUC without both classes, ``nan`` average
    precision and recall-at-precision without a positive; scores may be infinite, never NaN.
    """

    positive_scores: np.ndarray = field(repr=False)
    negative_scores: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("positive_scores", "negative_scores"):
            values = _frozen(np.asarray(getattr(self, name), dtype=np.float64))
            _check_sorted(values, name)
            object.__setattr__(self, name, values)

    @classmethod
    def from_shard(cls, y_true, y_score) -> ScoreRuns:
        y, s = _shard_binary(y_true, y_score)
        positive = y == 1
        return cls(np.sort(s[positive]), np.sort(s[~positive]))

    @classmethod
    def merge(cls, states: Sequence[ScoreRuns]) -> ScoreRuns:
        return cls(merge_sorted_runs([s.positive_scores for s in states]), merge_sorted_runs([s.negative_scores for s in states]))

    def value(self, min_precision: float = 0.95) -> ScoreRunMetrics:
        points = _Points(self.positive_scores, self.negative_scores)
        recall, threshold = points.operating_point(_check_min_precision(min_precision))
        return ScoreRunMetrics(
            self.positive_scores.size, self.negative_scores.size, points.roc_auc(), points.average_precision(), recall, threshold,
        )


# ------------------------------------------------------------------------------------------------------
# Multi-class: the confusion matrix


@dataclass(frozen=True)
class MulticlassMetrics:
    """Multi-class metrics from a confusion matrix (conventions of :mod:`eval_platform.metrics.multiclass`)."""

    n: int
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    precision_micro: float
    recall_micro: float
    f1_micro: float
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float
    log_loss: float


@dataclass(frozen=True, eq=False)
class ConfusionCounts(MetricState):
    """The confusion matrix ``C[t, p]`` over ``classes`` (prediction ``argmax`` of ``proba``), summed over shards.

    Per class ``TP = C[c, c]``, ``FP = sum_t C[t, c] - TP``, ``FN = sum_p C[c, p] - TP``; precision, recall,
    F1 and their ``macro``/``micro``/``weighted`` averages follow the single-process functions (macro over the
    classes with a true example, so a class absent from one shard but present in another counts once).
    ``accuracy = trace(C) / n``. When ``probabilities`` (rows in [0, 1] summing to 1 within 1e-6),
    ``log_loss = -sum_i log clip(p_i[y_i]) / n``; otherwise ``nan``. Every shard must use the same
    ``classes`` in the same order.
    """

    classes: tuple[Any, ...]
    probabilities: bool
    counts: np.ndarray = field(repr=False)
    log_loss_sum: float

    @classmethod
    def from_shard(cls, y_true, proba, classes, *, probabilities: bool = True) -> ConfusionCounts:
        if np.size(y_true) == 0:  # an empty shard: validate the classes, count nothing
            checked = _check_classes(classes)
            return cls(tuple(checked.tolist()), probabilities, _frozen(np.zeros((checked.size, checked.size), np.int64)), 0.0)
        codes, proba, checked = _check_multiclass(y_true, proba, classes)
        log_loss_sum = 0.0
        if probabilities:
            _check_probability_rows(proba)
            p = np.clip(proba[np.arange(codes.size), codes], _EPS, 1 - _EPS)
            log_loss_sum = float(-np.sum(np.log(p)))
        counts = _counts_multiclass(codes, np.argmax(proba, axis=1), checked.size).astype(np.int64)
        return cls(tuple(checked.tolist()), probabilities, _frozen(counts), log_loss_sum)

    @classmethod
    def merge(cls, states: Sequence[ConfusionCounts]) -> ConfusionCounts:
        return cls(
            _same(states, "classes"), _same(states, "probabilities"),
            _frozen(np.sum([s.counts for s in states], axis=0)), math.fsum(s.log_loss_sum for s in states),
        )

    def value(self) -> MulticlassMetrics:
        n = int(self.counts.sum())
        if n == 0:
            return MulticlassMetrics(0, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
        tp, fp, fn = _tp_fp_fn(self.counts)
        averaged = {
            (average, which): _averaged(tp, fp, fn, average, which)
            for average in ("macro", "micro", "weighted") for which in ("precision", "recall", "f1")
        }
        return MulticlassMetrics(
            n=n,
            accuracy=float(np.trace(self.counts) / n),
            precision_macro=averaged["macro", "precision"],
            recall_macro=averaged["macro", "recall"],
            f1_macro=averaged["macro", "f1"],
            precision_micro=averaged["micro", "precision"],
            recall_micro=averaged["micro", "recall"],
            f1_micro=averaged["micro", "f1"],
            precision_weighted=averaged["weighted", "precision"],
            recall_weighted=averaged["weighted", "recall"],
            f1_weighted=averaged["weighted", "f1"],
            log_loss=self.log_loss_sum / n if self.probabilities else _NAN,
        )


# ------------------------------------------------------------------------------------------------------
# Ranking: per-query rows


@dataclass(frozen=True, eq=False)
class QueryRows(MetricState):
    """One value per query (a per-query ranking metric such as ``ndcg_at_k(data)``), concatenated over shards.

    Ranking metrics are per-query values averaged over queries, and a query's value depends on that query's
    rows only, so shards must be split **by query**: a query evaluated in two shards raises ``InvalidInput``
    (``query_id``) rather than being counted twice. ``value()`` is the mean over queries (``nan`` with no
    query); :meth:`rows` gives the merged ``(query_ids, values)`` sorted by id like the single-process output.
    """

    query_ids: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        ids, values = np.asarray(self.query_ids), np.asarray(self.values, dtype=np.float64)
        if ids.ndim != 1 or values.shape != ids.shape:
            raise InvalidInput("query_ids/values", f"must be one value per query, got shapes {ids.shape} and {values.shape}")
        if np.isnan(values).any():
            raise InvalidInput("values", f"contains NaN for query {ids[np.isnan(values)][0].item()!r}")
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        repeated = np.flatnonzero(ids[1:] == ids[:-1])
        if repeated.size:
            raise InvalidInput("query_id", f"{ids[repeated[0]].item()!r} appears in more than one shard (or twice): shard ranking data by query")
        object.__setattr__(self, "query_ids", _frozen(ids))
        object.__setattr__(self, "values", _frozen(values))

    @classmethod
    def from_shard(cls, per_query: tuple[Any, Any]) -> QueryRows:
        query_ids, values = per_query
        return cls(np.asarray(query_ids), np.asarray(values, dtype=np.float64))

    @classmethod
    def merge(cls, states: Sequence[QueryRows]) -> QueryRows:
        kinds = {s.query_ids.dtype.kind for s in states if s.query_ids.size}
        if len(kinds) > 1:
            raise InvalidInput("query_ids", f"shards mix id types ({sorted(kinds)}): use one id type for every shard")
        filled = [s for s in states if s.query_ids.size] or list(states[:1])
        return cls(np.concatenate([s.query_ids for s in filled]), np.concatenate([s.values for s in filled]))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self.query_ids, self.values

    def value(self) -> float:
        return float(self.values.mean()) if self.values.size else _NAN


# ------------------------------------------------------------------------------------------------------
# Generation: means of per-example scores


@dataclass(frozen=True)
class MeanOfScores(MetricState):
    """``n`` and ``sum`` of per-example scores (exact match, token F1, ROUGE, judge scores, lengths...).

    ``value() = sum / n``, the catalog's ``mean`` of the per-example array; ``nan`` when no example.
    Sums are accumulated with :func:`math.fsum` (correctly rounded per shard), so the order of the shards
    changes the result by at most an ulp. Corpus-level metrics that are *not* means of per-example
    values (BLEU, chrF, distinct-n, self-BLEU) are not mergeable this way and are not offered here.
    """

    n: int
    total: float

    @classmethod
    def from_shard(cls, per_example) -> MeanOfScores:
        values = np.asarray(per_example, dtype=np.float64)
        if values.ndim != 1:
            raise InvalidInput("per_example", f"must be one score per example, got shape {values.shape}")
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInput("per_example", f"row {row} is {values[row]!r}: scores must be finite")
        return cls(int(values.size), math.fsum(values.tolist()))

    @classmethod
    def merge(cls, states: Sequence[MeanOfScores]) -> MeanOfScores:
        return cls(sum(s.n for s in states), math.fsum(s.total for s in states))

    def value(self) -> float:
        return self.total / self.n if self.n else _NAN
