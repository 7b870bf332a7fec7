"""Paired bootstrap of every binary-classification metric at once, without re-sorting per resample.

:func:`paired_bootstrap_binary` returns, for each metric of a binary suite, exactly the dict that
:func:`eval_platform.stats.comparison.paired_bootstrap` returns (same keys, same meaning, same point values,
same percentile interval and undefined-resample rule), at a fraction of the cost: the reference
re-sorts both models' scores on every resample, this module sorts each model once.

Why one module of about 750 lines: it is one vectorised method. The canonical order (:class:`_Side`), the
plan of statistics (:class:`_Plan`), the weighted passes over a batch (:class:`_RankingSums`,
:func:`_calibration`) and the batched drawing (:func:`_draw`) share one data layout and its invariants
(weights in the candidate's canonical order, the baseline's through one permutation, integer sums exact in
float64, workspace buffers reused per chunk); split apart, each part would only make sense by reading the
others. The self-contained piece, the exact multinomial count sampler, lives in
:mod:`eval_platform.stats.multinomial`.

Method
------
*Resampling.* Resample ``r`` is a vector of example multiplicities ``w`` (how many times each example
is drawn), the same for both models (paired). ``w`` is an exact multinomial draw, ``n`` draws uniform over
the ``n`` examples, i.e. the same distribution as the reference's ``rng.integers(0, n, n)`` (the random
numbers differ, so the intervals agree within Monte-Carlo error, not digit for digit). It is drawn
cheaply and exactly as a *thinned Poisson bootstrap with a uniform top-up*: i.i.d. ``Poisson(lam)``
counts with ``lam = 1 - 3 / sqrt(n)`` have a total ``T ~ Poisson(lam n)``, and given ``T = t`` they are
multinomial(``t``, uniform); adding ``n - t`` further uniform draws makes them multinomial(``n``,
uniform) whatever ``t`` was, so a draw with ``t > n`` (probability about 0.1 %) is simply redrawn. The
Poisson counts come from one random byte per example: a byte below ``Q`` maps to its count by a few
vectorised comparisons (the "pure" part of the inverse CDF), the rare bytes at or above ``Q`` (about
1 %) are refined recursively from the residual distribution, so the counts are Poisson to
floating-point precision. Every resample has its own generator spawned from ``SeedSequence(seed)``,
so the draws depend only on the seed (not on batching or on the number of threads), and the results
are bit-for-bit reproducible for given data, settings and seed.

*Ranking metrics* (ROC-AUC, average precision, recall at precision and its threshold). Each model's
examples are put once in a canonical order: positives by decreasing score, then negatives by
decreasing score. The weights are generated directly in the candidate's canonical order; the
baseline's are one gather through a fixed permutation. With ``TP_j`` the cumulative positive weight
at the ``j``-th distinct positive score ``t_j`` (a cumulative sum over the positives) and ``FP_j`` the
negative weight with score ``>= t_j`` (a cumulative sum over the negatives read at a fixed cut, because
the negatives ``>= t_j`` are a prefix of the sorted negatives), the metrics of the resample are those
of the catalog on the repeated rows:

* ``AUC = (2 P N - sum_j g_j (FP_ge_j + FP_gt_j)) / (2 P N)`` with ``g_j`` the positive weight at
  ``t_j`` (ties between a positive and a negative count one half, as in the catalog); every term is an
  integer below ``2**53``, so the value is bit-identical to the catalog's;
* ``AP = sum_j g_j TP_j / (TP_j + FP_j) / P``; a positive score not drawn has ``g_j = 0`` and adds 0;
* recall at precision: the largest ``TP_j`` with ``TP_j / (TP_j + FP_j) >= min_precision`` (``TP`` is
  non-decreasing, so it is the ``TP`` at the last such ``j``), its threshold the first ``t_j`` reaching
  that ``TP`` (the catalog's largest threshold among equal recalls); an undrawn score can never be
  chosen, because the drawn score above it has the same ``TP`` and no more ``FP``.

*Threshold metrics* (precision, recall, F1, accuracy, false-positive rate at a threshold) depend only on
the paired confusion cells, so they are drawn exactly and in O(1) per resample: the counts of the 16
joint (candidate cell, baseline cell) categories are multinomial(``n``, observed category frequencies).

*Calibration metrics* (log loss, Brier score, ECE). Log loss and Brier are weighted means, ECE needs
per-bin weighted sums of ``y`` and ``p``; each ECE bin is a contiguous range of the canonical order
(within the positives and within the negatives), so all of them are a handful of small dense
matrix products ``W[:, a:b] @ X[a:b]`` over contiguous column ranges of the weight batch.

Resamples are processed in batches of ``b = 2**24 // n`` weight rows (16 at a million examples: the
candidate's and the baseline's uint8 weight matrices take ``2 b n`` bytes, 32 MB, and the scratch
arrays of the cache-sized chunks a few MB more), optionally on several threads (numpy releases the
GIL in the heavy calls); there is no Python loop over examples. A metric undefined
on a resample (no positive drawn for ROC-AUC, ``inf`` minus ``inf`` thresholds...) makes that resample's
delta non-finite: it is left out and counted in ``undefined_resamples``, and the interval is ``nan`` when
fewer than half the resamples are defined, exactly as in the reference.

:func:`resampled_values` evaluates every metric on given multiplicity vectors (the hook the tests use
to check each resampled value against the catalog on explicitly repeated rows).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as clf
from eval_platform.metrics.catalog import get_metric
from eval_platform.stats.comparison import interval_result
from eval_platform.stats.multinomial import CountSampler

SUPPORTED = frozenset(clf.BINARY_SUITE_KEYS)
_THRESHOLD_METRICS = ("precision", "recall", "f1", "accuracy", "false_positive_rate")
_OPERATING_METRICS = ("recall_at_precision", "threshold_at_precision")
_CALIBRATION_METRICS = ("log_loss", "brier_score", "expected_calibration_error")

#: Weight-batch budget: resamples per batch = clamp(_BATCH_ELEMENTS // n, 1, resamples).
_BATCH_ELEMENTS = 1 << 24
#: Elements (rows x columns) of the chunks the batch is processed in, so that intermediates stay in cache.
_CHUNK_ELEMENTS = 1 << 17


def _rowdot_einsum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


_rowdot = getattr(np, "vecdot", _rowdot_einsum)  # row-wise dot products (numpy >= 2 has a fast gufunc)


def supports(catalog_name: str) -> bool:
    """Whether ``catalog_name`` (``roc_auc`` or ``roc_auc@1``) is computed by this module."""
    name, _, version = catalog_name.partition("@")
    return name in SUPPORTED and version in ("", "1")


# ------------------------------------------------------------------------------------------------------
# What one model's scores look like once sorted


@dataclass
class _Side:
    """One model's canonical order (positives by decreasing score, then negatives) and the fixed
    indices the weighted curve is read at."""

    order: np.ndarray
    n_pos: int
    starts: np.ndarray | None  # starts of tie groups among the positives (None: no ties)
    group_pos: np.ndarray  # first positive of each group, and n_pos at the end (length G + 1)
    thresholds: np.ndarray  # distinct positive scores, decreasing
    cut_ge: np.ndarray  # negatives with score >= t_j (a prefix of the sorted negatives)
    cut_gt: np.ndarray | None  # negatives with score > t_j (None: no positive ties a negative)
    scores: np.ndarray  # scores in canonical order
    columns: tuple[np.ndarray, np.ndarray] | None = None  # calibration columns of the positives and of the negatives
    segments: tuple[np.ndarray, dict[int, np.ndarray]] | None = None  # ECE ranges: (starts, {n_bins: bin of each range})
    _chunks: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def calibration_inputs(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, dict[int, np.ndarray]]]:
        """``(columns, segments)``, which :func:`_model` sets when the plan has a calibration metric."""
        if self.columns is None or self.segments is None:
            raise RuntimeError("the calibration columns are prepared only for a plan with calibration metrics")
        return self.columns, self.segments

    def chunks(self, rows: int) -> list[tuple[int, int]]:
        """Group ranges ``[j0, j1)`` of about equal work, ``_CHUNK_ELEMENTS / rows`` groups' worth each (a
        group of positives costs about as much as six negatives: a dozen passes against one)."""
        if rows not in self._chunks:
            groups = self.thresholds.size
            span = 6 * np.arange(1, groups + 1) + self.cut_ge  # work up to the end of each group
            target = 6 * max(16, _CHUNK_ELEMENTS // max(rows, 1))
            if groups:
                cuts = np.searchsorted(span, np.arange(target, int(span[-1]) + target, target), side="right")
                bounds = np.unique(np.r_[0, np.clip(cuts, 1, groups), groups])
            else:
                bounds = np.zeros(1, np.intp)
            self._chunks[rows] = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        return self._chunks[rows]


def _side(y: np.ndarray, s: np.ndarray) -> _Side:
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    pos_order = positives[np.argsort(s[positives])[::-1]]
    neg_order = negatives[np.argsort(s[negatives])[::-1]]
    pos_desc, neg_asc = s[pos_order], s[neg_order][::-1]
    new = np.r_[True, pos_desc[1:] != pos_desc[:-1]] if pos_desc.size else np.zeros(0, bool)
    starts = np.flatnonzero(new)
    thresholds = pos_desc[starts]
    n_neg = neg_asc.size
    cut_ge = n_neg - np.searchsorted(neg_asc, thresholds, side="left")
    cut_gt = n_neg - np.searchsorted(neg_asc, thresholds, side="right")
    order = np.concatenate([pos_order, neg_order])
    return _Side(
        order=order,
        n_pos=positives.size,
        starts=None if starts.size == positives.size else starts,
        group_pos=np.append(starts, positives.size),
        thresholds=thresholds,
        cut_ge=cut_ge,
        cut_gt=None if np.array_equal(cut_ge, cut_gt) else cut_gt,
        scores=s[order],
    )


def _ece_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """The catalog's bin of each probability (see ``classification._ece``)."""
    edges = np.arange(1, n_bins, dtype=np.float64) / n_bins
    return np.searchsorted(edges, p, side="right")


def _segments(side: _Side, bin_counts: Iterable[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Contiguous ranges of the canonical order that lie in one ECE bin (for every ``n_bins`` asked)
    and one class: their start offsets and, per ``n_bins``, the bin of each range."""
    n = side.order.size
    bins = {k: _ece_bins(side.scores, k) for k in bin_counts}
    change = np.zeros(n, dtype=bool)
    change[0] = True
    if side.n_pos < n:
        change[side.n_pos] = True
    for b in bins.values():
        change[1:] |= b[1:] != b[:-1]
    starts = np.flatnonzero(change)
    return starts, {k: b[starts] for k, b in bins.items()}


# ------------------------------------------------------------------------------------------------------
# The prepared comparison


def _cell(y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    """0 TP, 1 FP, 2 FN, 3 TN at ``score >= threshold``."""
    return np.where(s >= threshold, np.int8(0), np.int8(2)) + (y != 1).view(np.int8)


@dataclass
class _Plan:
    """Which statistics the metrics need, and the metrics' keys (name plus the parameter it reads)."""

    entries: list[tuple[str, str, dict, tuple]]  # (suite name, catalog name, resolved params, value key)
    thresholds: list[float]
    min_precisions: list[float]
    bin_counts: list[int]
    auc: bool
    ap: bool
    log_loss: bool
    brier: bool

    @property
    def ranking(self) -> bool:
        return self.auc or self.ap or bool(self.min_precisions)

    @property
    def calibration(self) -> bool:
        return self.log_loss or self.brier or bool(self.bin_counts)

    def column(self, name: str) -> int:
        """Index of a calibration column: probability (for ECE), log loss, Brier term (those needed)."""
        names = [*(["p"] if self.bin_counts else []), *(["loss"] if self.log_loss else []),
                 *(["brier"] if self.brier else [])]
        return names.index(name)


def _plan(metrics: Iterable[tuple[str, str, Mapping | None]]) -> _Plan:
    entries = []
    for item in metrics:
        try:
            suite_name, catalog_name, params = item
        except (TypeError, ValueError) as error:
            raise InvalidInput("metrics", f"each metric must be (suite name, catalog name, params), got {item!r}") from error
        name = str(catalog_name).partition("@")[0]
        if not supports(str(catalog_name)):
            raise InvalidInput("metric", f"{catalog_name!r} is not a binary metric this bootstrap computes; "
                                         f"known: {sorted(SUPPORTED)}")
        resolved = get_metric(f"{name}@1").resolve_params(params)
        entries.append((suite_name, name, resolved, _value_key(name, resolved)))
    names = [e[1] for e in entries]
    return _Plan(
        entries=entries,
        thresholds=sorted({float(r["threshold"]) for _, name, r, _ in entries if name in _THRESHOLD_METRICS}),
        min_precisions=sorted({float(r["min_precision"]) for _, name, r, _ in entries if name in _OPERATING_METRICS}),
        bin_counts=sorted({int(r["n_bins"]) for _, name, r, _ in entries if name == "expected_calibration_error"}),
        auc="roc_auc" in names,
        ap="average_precision" in names,
        log_loss="log_loss" in names,
        brier="brier_score" in names,
    )


def _value_key(name: str, resolved: Mapping) -> tuple[str | float, ...]:
    """A metric's key among the resampled values: its name and the one parameter that changes its value."""
    if name in _THRESHOLD_METRICS:
        return (name, float(resolved["threshold"]))
    if name in _OPERATING_METRICS:
        return (name, float(resolved["min_precision"]))
    if name == "expected_calibration_error":
        return (name, int(resolved["n_bins"]))
    return (name,)


@dataclass
class _Prepared:
    plan: _Plan
    n: int
    cand: _Side
    base: _Side
    base_perm: np.ndarray  # base canonical position -> candidate canonical position
    cells: dict[float, tuple[np.ndarray, np.ndarray]]  # threshold -> (candidate cell, baseline cell) per row
    joint: dict[float, np.ndarray]  # threshold -> frequencies of the 16 joint cells
    points: dict[tuple, tuple[float, float]]


def _point_values(plan: _Plan, y: np.ndarray, s: np.ndarray) -> dict[tuple, float]:
    """The catalog's values for one model: the ranking and threshold metrics from one ``binary_suite``
    call (one sort) per parameter setting, the calibration metrics from their own functions (no sort),
    so a score outside [0, 1] fails exactly the metrics that need probabilities."""
    groups: dict[tuple, list[tuple]] = {}
    points = {}
    for _, name, params, key in plan.entries:
        if name in _CALIBRATION_METRICS:
            function = {"log_loss": clf.log_loss, "brier_score": clf.brier_score,
                        "expected_calibration_error": clf.expected_calibration_error}[name]
            points[key] = float(function(y, s, **params))
        else:
            groups.setdefault((params.get("threshold", 0.5), params.get("min_precision", 0.95)), []).append(key)
    for (threshold, min_precision), keys in groups.items():
        values = clf.binary_suite(y, s, threshold, min_precision, calibration=False)
        for key in keys:
            points[key] = float(values[key[0]])
    return points


def _model(plan: _Plan, y: np.ndarray, s: np.ndarray) -> tuple[dict[tuple, float], _Side]:
    """Everything about one model that does not depend on the resample: point values and sorted order."""
    points = _point_values(plan, y, s)  # first: also the catalog's validation (probabilities, parameters)
    side = _side(y, s)
    if plan.calibration:
        side.columns = _calibration_columns(plan, y[side.order], side.scores, side.n_pos)
        side.segments = _segments(side, plan.bin_counts)
    return points, side


def _calibration_columns(plan: _Plan, y: np.ndarray, s: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Per example of the canonical order (positives first): probability, log loss and Brier term (those
    needed), each computed as the catalog does (``classification._log_loss``/``_brier``); the positives'
    columns are preceded by ones when ECE needs their weight per bin."""
    columns = []
    if plan.bin_counts:
        columns.append(s)
    if plan.log_loss:
        eps = np.finfo(np.float64).eps
        p = np.clip(s, eps, 1 - eps)
        columns.append(-np.where(y == 1, np.log(p), np.log1p(-p)))
    if plan.brier:
        columns.append((s - y) ** 2)
    values = np.column_stack(columns)
    positives = np.column_stack([np.ones(n_pos), values[:n_pos]]) if plan.bin_counts else values[:n_pos]
    return np.ascontiguousarray(positives), np.ascontiguousarray(values[n_pos:])


def _prepare(metrics, label, cand_score, base_score, workers: int = 1) -> _Prepared:
    plan = _plan(metrics)
    y, cand = clf._check_binary(label, cand_score)
    _, base = clf._check_binary(label, base_score)
    if workers > 1:  # the two models' sorts in parallel (numpy releases the GIL while sorting)
        with ThreadPoolExecutor(max_workers=2) as pool:
            (cand_points, cand_side), (base_points, base_side) = pool.map(lambda s: _model(plan, y, s), (cand, base))
    else:
        (cand_points, cand_side), (base_points, base_side) = (_model(plan, y, s) for s in (cand, base))
    points = {key: (cand_points[key], base_points[key]) for key in cand_points}
    n = y.size
    position = np.empty(n, dtype=np.intp)
    position[cand_side.order] = np.arange(n)
    base_perm = position[base_side.order]
    cells, joint = {}, {}
    for threshold in plan.thresholds:
        cc, bc = _cell(y, cand, threshold), _cell(y, base, threshold)
        cells[threshold] = (cc, bc)
        joint[threshold] = np.bincount(4 * cc + bc, minlength=16) / n
    return _Prepared(plan, n, cand_side, base_side, base_perm, cells, joint, points)


# ------------------------------------------------------------------------------------------------------
# Metrics of a batch of weight vectors


class _Workspace:
    """Reusable scratch arrays: ``get`` returns a C-contiguous array of the shape, backed by a buffer
    that grows as needed (no fresh allocation, hence no page faults, per chunk)."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(max(size, 1), dtype=dtype)
        return buffer[:size].reshape(shape)


def _last_true(padded: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the boolean array ``padded[:, :m]`` (``padded`` C-contiguous, its width a multiple of
    8 and its padding False): the index of the last True, and whether there is one. Eight flags are
    read as one 64-bit word, so the backwards scan touches an eighth of the row."""
    b, m8 = padded.shape
    words = m8 // 8
    nonzero = padded.view(np.uint64) != 0
    word = (words - 1) - np.argmax(nonzero[:, ::-1], axis=1)
    rows = np.arange(b)
    found = nonzero[rows, word]
    flags = padded.reshape(b, words, 8)[rows, word]
    return np.minimum(8 * word + 7 - np.argmax(flags[:, ::-1], axis=1), m - 1), found


def _ranking(plan: _Plan, side: _Side, w: np.ndarray, out: dict[tuple, np.ndarray], slot: int) -> None:
    """ROC-AUC, AP and the operating points of every row of weights ``w`` (``(b, n)`` in the side's
    canonical order); ``out[key][slot]`` receives the values.

    One pass over the groups of positive scores in chunks that stay in cache: the positives' weights
    are summed cumulatively (``TP``), the negatives' too, read at the chunk's cuts (``FP``), with carries
    between chunks. Every quantity but the precision is an integer held exactly in float64.
    """
    if side.thresholds.size == 0:  # no positive example at all: every ranking metric is undefined
        for key in out:
            if key[0] in ("roc_auc", "average_precision", *_OPERATING_METRICS):
                out[key][slot] = np.nan
        return
    sums = _RankingSums(plan, side, w)
    for j0, j1 in side.chunks(w.shape[0]):
        sums.add_chunk(j0, j1)
    sums.write(out, slot)


class _RankingSums:
    """The running sums of :func:`_ranking`'s pass over one side's groups of positive scores: the carries
    of TP and FP between chunks, the tie term of AUC, the AP sum and each operating point's last group."""

    def __init__(self, plan: _Plan, side: _Side, w: np.ndarray):
        b = w.shape[0]
        self.plan, self.side, self.b = plan, side, b
        self.wp, self.wn = w[:, :side.n_pos], w[:, side.n_pos:]
        self.rows = np.arange(b)
        self.tp_carry = np.zeros(b, dtype=np.int32)
        self.fp_carry = np.zeros(b, dtype=np.int32)
        self.neg_done = 0
        self.tied = np.zeros(b)  # sum_j g_j (FP_ge_j + FP_gt_j)
        self.ap_sum = np.zeros(b)
        # per min_precision: the last group reaching it and its TP
        self.chosen = {mp: (np.full(b, -1), np.zeros(b)) for mp in plan.min_precisions}
        self.need_precision = plan.ap or bool(plan.min_precisions)
        self.work = _Workspace()

    def add_chunk(self, j0: int, j1: int) -> None:
        group, tp = self._positives(j0, j1)
        negatives, fp_f = self._negatives(j0, j1)
        g = self.work.get("g", group.shape, np.float64)
        np.copyto(g, group)
        if self.plan.auc:
            self._add_ties(g, fp_f, negatives, j0, j1)
        start_empty = not (self.tp_carry + self.fp_carry).all()  # a row with nothing drawn above this chunk yet
        self.fp_carry += negatives[:, -1]
        self.neg_done = int(self.side.cut_ge[j1 - 1])
        self.tp_carry = tp[:, -1].copy()
        if self.need_precision:
            precision = self._precision(tp, fp_f, start_empty)
            if self.plan.ap:
                self.ap_sum += _rowdot(g, precision)
            if self.plan.min_precisions:
                self._operating_points(group, tp, precision, j0)

    def _positives(self, j0: int, j1: int) -> tuple[np.ndarray, np.ndarray]:
        """The positive weight of each group of the chunk, and its cumulative sum (TP) carried over."""
        side, m = self.side, j1 - j0
        a, e = int(side.group_pos[j0]), int(side.group_pos[j1])
        if side.starts is None:
            group = self.wp[:, a:e]
        else:
            group = np.add.reduceat(self.wp[:, a:e], side.starts[j0:j1] - a, axis=1, dtype=np.int32)
        tp = np.cumsum(group, axis=1, dtype=np.int32, out=self.work.get("tp", (self.b, m), np.int32))
        tp += self.tp_carry[:, None]
        return group, tp

    def _negatives(self, j0: int, j1: int) -> tuple[np.ndarray, np.ndarray]:
        """The cumulative negative weights up to the chunk's last cut (led by a 0 column), and FP (as
        float64) at each group, carried over."""
        b, m, side, neg_done = self.b, j1 - j0, self.side, self.neg_done
        k1 = int(side.cut_ge[j1 - 1])
        negatives = self.work.get("negatives", (b, k1 - neg_done + 1), np.int32)
        negatives[:, 0] = 0
        np.cumsum(self.wn[:, neg_done:k1], axis=1, dtype=np.int32, out=negatives[:, 1:])
        fp = np.take(negatives, side.cut_ge[j0:j1] - neg_done, axis=1, mode="clip", out=self.work.get("fp", (b, m), np.int32))
        fp += self.fp_carry[:, None]
        fp_f = self.work.get("fp_f", (b, m), np.float64)
        np.copyto(fp_f, fp)
        return negatives, fp_f

    def _add_ties(self, g: np.ndarray, fp_f: np.ndarray, negatives: np.ndarray, j0: int, j1: int) -> None:
        cut_gt = self.side.cut_gt
        if cut_gt is None:
            self.tied += 2 * _rowdot(g, fp_f)
        else:
            fp_gt = np.take(negatives, cut_gt[j0:j1] - self.neg_done, axis=1, mode="clip")
            fp_gt += self.fp_carry[:, None]
            self.tied += _rowdot(g, fp_f) + _rowdot(g, fp_gt.astype(np.float64))

    def _precision(self, tp: np.ndarray, fp_f: np.ndarray, start_empty: bool) -> np.ndarray:
        """TP / (TP + FP) per group, computed in ``fp_f``'s buffer."""
        tp_f = self.work.get("tp_f", tp.shape, np.float64)
        np.copyto(tp_f, tp)
        denominator = np.add(tp_f, fp_f, out=fp_f)
        if start_empty:
            np.maximum(denominator, 1, out=denominator)  # 0 only where TP = 0: precision 0 (weight 0)
        return np.divide(tp_f, denominator, out=denominator)

    def _operating_points(self, group: np.ndarray, tp: np.ndarray, precision: np.ndarray, j0: int) -> None:
        b, m = group.shape
        drawn = np.greater(group, 0, out=self.work.get("drawn", (b, m), np.bool_))
        padded = self.work.get("ok", (b, -(-m // 8) * 8), np.bool_)
        padded[:, m:] = False
        ok = padded[:, :m]
        for mp, (last, best) in self.chosen.items():
            np.greater_equal(precision, mp, out=ok)
            ok &= drawn  # a score not drawn is no threshold of the resample
            j, hit = _last_true(padded, m)
            last[hit] = j0 + j[hit]
            best[hit] = tp[self.rows, j][hit]

    def write(self, out: dict[tuple, np.ndarray], slot: int) -> None:
        """The metrics from the sums: NaN where the resample drew no positive (AUC: or no negative)."""
        n_pos = self.tp_carry.astype(np.float64)
        n_neg = self.fp_carry + np.add.reduce(self.wn[:, self.neg_done:], axis=1, dtype=np.int64).astype(np.float64)
        no_pos = n_pos == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.plan.auc:
                pairs = 2 * n_pos * n_neg
                auc = (pairs - self.tied) / pairs
                auc[no_pos | (n_neg == 0)] = np.nan
                out[("roc_auc",)][slot] = auc
            if self.plan.ap:
                ap = self.ap_sum / n_pos
                ap[no_pos] = np.nan
                out[("average_precision",)][slot] = ap
            for mp, (last, best) in self.chosen.items():
                reached = last >= 0
                recall = np.where(reached, best / n_pos, 0.0)
                threshold = np.where(reached, self.side.thresholds[np.maximum(last, 0)], np.inf)
                recall[no_pos] = np.nan
                threshold[no_pos] = np.nan
                for name, values in (("recall_at_precision", recall), ("threshold_at_precision", threshold)):
                    if (name, mp) in out:
                        out[(name, mp)][slot] = values


def _segment_sums(w: np.ndarray, columns: np.ndarray, starts: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """``S[:, g, :] = w[:, a_g:a_{g+1}] @ columns[a_g:a_{g+1}]`` over contiguous segments (``starts``
    relative to ``w``'s columns), as dense products of cache-sized blocks converted to float64."""
    b, n = w.shape
    sums = np.zeros((b, starts.size, columns.shape[1]))
    if starts.size == 0:  # no example of this class
        return sums
    chunk = buffer.shape[1]
    ends = np.append(starts[1:], n)
    for g, (a, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        for c in range(a, e, chunk):
            d = min(c + chunk, e)
            block = buffer[:, : d - c]
            np.copyto(block, w[:, c:d], casting="unsafe")
            sums[:, g, :] += block @ columns[c:d]
    return sums


def _calibration(plan: _Plan, side: _Side, w: np.ndarray, total: np.ndarray, out: dict, slot: int) -> None:
    """Log loss, Brier score and ECE of every row of weights ``w`` (the side's canonical order), whose
    total weights are ``total``. The positives' and the negatives' ranges are summed separately, the
    positives with a leading column of ones (their weight, the label sum of ECE)."""
    b = w.shape[0]
    p = side.n_pos
    (pos_columns, neg_columns), (starts, bins) = side.calibration_inputs()
    positive = starts < p
    buffer = np.empty((b, max(16, _CHUNK_ELEMENTS // max(b, 1))))
    pos_sums = _segment_sums(w[:, :p], pos_columns, starts[positive], buffer)
    neg_sums = _segment_sums(w[:, p:], neg_columns, starts[~positive] - p, buffer)
    first = 1 if plan.bin_counts else 0  # the positives' weight column
    values = pos_sums[:, :, first:].sum(axis=1) + neg_sums.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if plan.log_loss:
            out[("log_loss",)][slot] = values[:, plan.column("loss")] / total
        if plan.brier:
            out[("brier_score",)][slot] = values[:, plan.column("brier")] / total
        if plan.bin_counts:
            prob = plan.column("p")
            for n_bins in plan.bin_counts:
                label_sum = np.zeros((b, n_bins))
                prob_sum = np.zeros((b, n_bins))
                segment_bins = bins[n_bins]
                for g, bin_ in enumerate(segment_bins[positive].tolist()):
                    label_sum[:, bin_] += pos_sums[:, g, 0]
                    prob_sum[:, bin_] += pos_sums[:, g, first + prob]
                for g, bin_ in enumerate(segment_bins[~positive].tolist()):
                    prob_sum[:, bin_] += neg_sums[:, g, prob]
                out[("expected_calibration_error", n_bins)][slot] = np.abs(label_sum - prob_sum).sum(axis=1) / total


def _threshold_values(cand_cells: np.ndarray, base_cells: np.ndarray, threshold: float, out: dict) -> None:
    """The threshold metrics from confusion counts ``(b, 4)`` (TP, FP, FN, TN), as the catalog computes them."""
    for slot, cells in ((0, cand_cells), (1, base_cells)):
        tp, fp, fn, tn = (cells[:, i].astype(np.int64) for i in range(4))
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {
                "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                "f1": np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
                "accuracy": (tp + tn) / (tp + fp + fn + tn),
                "false_positive_rate": np.where(fp + tn > 0, fp / (fp + tn), np.nan),
            }
        for name, value in values.items():
            if (name, threshold) in out:
                out[(name, threshold)][slot] = value


def _weighted_values(prep: _Prepared, wc: np.ndarray, total: np.ndarray, wb: np.ndarray | None = None) -> dict[tuple, np.ndarray]:
    """Ranking and calibration metrics of each row of weights ``wc`` (candidate canonical order), whose
    sums are ``total``: ``{key: array (2, b)}``, row 0 the candidate, row 1 the baseline. ``wb`` is
    where the baseline's weights go (an array like ``wc``, reused between batches)."""
    plan = prep.plan
    b = wc.shape[0]
    out = {key: np.full((2, b), np.nan) for *_, key in plan.entries if key[0] not in _THRESHOLD_METRICS}
    if not out:
        return out
    # the baseline's weights: one gather (mode clip: the indices are valid, skip the checks)
    wb = np.take(wc, prep.base_perm, axis=1, mode="clip", out=wb)
    for slot, side, w in ((0, prep.cand, wc), (1, prep.base, wb)):
        if plan.ranking:
            _ranking(plan, side, w, out, slot)
        if plan.calibration:
            _calibration(plan, side, w, total, out, slot)
    return out


def _cell_counts(prep: _Prepared, weights: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted confusion counts ``(b, 4)`` of both models for weights in row order (the test hook)."""
    cand_cell, base_cell = prep.cells[threshold]
    cand_counts, base_counts = (
        np.stack([weights[:, cell == k].sum(axis=1, dtype=np.int64) for k in range(4)], axis=1)
        for cell in (cand_cell, base_cell)
    )
    return cand_counts, base_counts


# ------------------------------------------------------------------------------------------------------
# Drawing the resamples


def _draw(prep: _Prepared, resamples: int, seed: int, workers: int = 1) -> dict[tuple, np.ndarray]:
    """``{key: array (2, resamples)}``: every metric of both models on each resample."""
    plan, n = prep.plan, prep.n
    keys = {key for *_, key in plan.entries}
    values = {key: np.full((2, resamples), np.nan) for key in keys}
    weighted = any(key[0] not in _THRESHOLD_METRICS for key in keys)
    children = np.random.SeedSequence(seed).spawn(resamples)
    sampler = CountSampler(n) if weighted else None
    batch = max(1, min(resamples, _BATCH_ELEMENTS // n)) if weighted else resamples

    local = threading.local()  # weight buffers of each thread, reused between its batches

    def run(lo: int) -> None:
        hi = min(lo + batch, resamples)
        b = hi - lo
        w = _thread_weights(local, b, n) if sampler is not None else None
        joint = _draw_batch(prep, children[lo:hi], sampler, w)
        if w is not None:
            for key, v in _weighted_values(prep, w, np.full(b, float(n)), local.wb).items():
                values[key][:, lo:hi] = v
        window = {key: v[:, lo:hi] for key, v in values.items()}
        for t, counts in joint.items():
            cells = counts.reshape(b, 4, 4)  # [candidate cell, baseline cell]
            _threshold_values(cells.sum(axis=2), cells.sum(axis=1), t, window)

    _run_batches(run, range(0, resamples, batch), workers)
    return values


def _thread_weights(local: threading.local, rows: int, n: int) -> np.ndarray:
    """This thread's uint8 weight matrix ``(rows, n)`` (and ``local.wb``, the baseline's), kept between batches."""
    if getattr(local, "rows", None) != rows:
        local.rows, local.w, local.wb = rows, np.empty((rows, n), np.uint8), np.empty((rows, n), np.uint8)
    return local.w


def _draw_batch(prep: _Prepared, seeds: list[np.random.SeedSequence], sampler: CountSampler | None,
                w: np.ndarray | None) -> dict[float, np.ndarray]:
    """One generator per resample: the joint confusion-cell counts per threshold (returned), then the
    example multiplicities into the rows of ``w`` when the plan has weighted metrics."""
    n = prep.n
    joint = {t: np.empty((len(seeds), 16), dtype=np.int64) for t in prep.plan.thresholds}
    for i, child in enumerate(seeds):
        rng = np.random.Generator(np.random.PCG64(child))
        for t in prep.plan.thresholds:
            joint[t][i] = rng.multinomial(n, prep.joint[t])
        if sampler is not None and w is not None:
            sampler.draw(rng, w[i])
    return joint


def _run_batches(run: Callable[[int], None], starts: range, workers: int) -> None:
    with _single_threaded_blas():  # the products are small; BLAS threads would only compete with ours
        if workers > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(run, starts))
        else:
            for lo in starts:
                run(lo)


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _check_settings(resamples, confidence) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 1:
        raise InvalidInput("bootstrap_resamples", f"must be a positive integer, got {resamples!r}")
    if not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be in (0, 1), got {confidence!r}")


def paired_bootstrap_binary(
    metrics: Iterable[tuple[str, str, Mapping | None]],
    label,
    cand_score,
    base_score,
    resamples: int,
    confidence: float,
    seed: int,
    *,
    workers: int | None = None,
) -> dict[str, dict]:
    """Paired bootstrap interval of candidate minus baseline for several binary metrics at once.

    ``metrics`` holds ``(suite name, catalog name, params)``, the catalog name one of :data:`SUPPORTED`
    (``roc_auc`` or ``roc_auc@1``), ``params`` as the catalog takes them (defaults filled in). Returns
    ``{suite name: result}`` with the keys and meaning of :func:`comparison.paired_bootstrap`'s result;
    ``candidate``/``baseline``/``delta`` are the catalog's values exactly. ``workers`` threads (default:
    the CPU count, at most 4) sort the two models and process batches of resamples in parallel; the
    numbers do not depend on it.
    """
    _check_settings(resamples, confidence)
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInput("workers", f"must be a positive integer, got {workers!r}")
    prep = _prepare(metrics, label, cand_score, base_score, workers)
    values = _draw(prep, int(resamples), seed, workers)
    results = {}
    for suite_name, _, _, key in prep.plan.entries:
        cand_value, base_value = prep.points[key]
        with np.errstate(invalid="ignore"):  # inf - inf (no threshold reaches the precision): undefined
            deltas = values[key][0] - values[key][1]
        results[suite_name] = interval_result(cand_value, base_value, deltas, int(resamples), confidence, seed, "example", prep.n)
    return results


def resampled_values(
    metrics: Iterable[tuple[str, str, Mapping | None]],
    label,
    cand_score,
    base_score,
    multiplicities,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every metric of both models on given resamples: ``multiplicities[r, i]`` is how many times example
    ``i`` is drawn in resample ``r``. Returns ``{suite name: (candidate values, baseline values)}``.

    This is the computation :func:`paired_bootstrap_binary` does on its own draws (the threshold metrics
    from the weighted confusion cells instead of drawn ones), exposed so that tests and audits can check
    a resample against the catalog on the explicitly repeated rows.
    """
    prep = _prepare(metrics, label, cand_score, base_score)
    weights = np.asarray(multiplicities)
    if weights.ndim != 2 or weights.shape[1] != prep.n:
        raise InvalidInput("multiplicities", f"must have shape (resamples, {prep.n}), got {weights.shape}")
    if weights.dtype.kind not in "iu" or (weights.size and weights.min() < 0):
        raise InvalidInput("multiplicities", "must be non-negative integers")
    weights = weights.astype(np.int32)
    keys = {key for *_, key in prep.plan.entries}
    values = {key: np.full((2, weights.shape[0]), np.nan) for key in keys}
    total = weights.sum(axis=1, dtype=np.int64).astype(np.float64)
    values.update(_weighted_values(prep, np.ascontiguousarray(weights[:, prep.cand.order]), total))
    for t in prep.plan.thresholds:
        _threshold_values(*_cell_counts(prep, weights, t), t, values)
    return {suite_name: (values[key][0], values[key][1]) for suite_name, _, _, key in prep.plan.entries}
