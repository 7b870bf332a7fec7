"""Inter-rater agreement of human ratings (Likert scores, labels, pairwise preferences), with intervals.

Ratings are a table with **one row per unit** (an example that was rated) and **one column per rater**;
a cell is the rater's rating of the unit, or missing (``None``/``NaN``) when that rater did not rate it.
(The ``krippendorff`` package takes the transpose, raters by units.) Ratings may be numbers or, for the
nominal measures, any hashable labels.

* :func:`cohen_kappa`: two raters, ``kappa = (p_o - p_e) / (1 - p_e)``, ``p_o`` the observed agreement and
  ``p_e`` the agreement expected from each rater's own label frequencies; weighted (``linear``,
  ``quadratic``) as ``1 - sum w_ij O_ij / sum w_ij E_ij`` with ``w_ij = |i - j|`` or ``(i - j)^2`` over the
  sorted labels (scikit-learn's ``cohen_kappa_score``). No missing ratings.
* :func:`fleiss_kappa`: any number ``m >= 2`` of ratings per unit, every unit rated ``m`` times (raters need
  not be the same people): ``kappa = (P_bar - P_e) / (1 - P_e)`` with ``P_i = (sum_j n_ij^2 - m) /
  (m (m - 1))``, ``P_bar`` their mean, ``p_j`` the share of all ratings in category ``j`` and ``P_e = sum_j
  p_j^2`` (statsmodels' ``fleiss_kappa``). No missing ratings.
* :func:`krippendorff_alpha`: any number of raters, missing ratings allowed, at the ``nominal``,
  ``ordinal``, ``interval`` or ``ratio`` level: ``alpha = 1 - D_o / D_e`` from the coincidence matrix
  ``o_ck = sum_u (number of ordered pairs of ratings (c, k) in unit u) / (m_u - 1)`` over the units with at
  least two ratings, ``n_c = sum_k o_ck``, ``n = sum_c n_c``, ``D_o = sum o_ck delta_ck / n`` and ``D_e = sum
  n_c n_k delta_ck / (n (n - 1))``; ``delta`` is ``[c != k]`` (nominal), ``(c - k)^2`` (interval), ``((c -
  k) / (c + k))^2`` (ratio) or ``(sum_{g between c and k} n_g - (n_c + n_k)/2)^2`` (ordinal).
* :func:`judge_human_agreement`: a model-as-judge as one more rater. Alpha among the humans, alpha with the
  judge added, and the difference with a paired interval: a judge that agrees with the humans as well as
  they agree among themselves leaves alpha unchanged.

Every value comes with a percentile **bootstrap interval over units** (units resampled with replacement,
``n_resamples`` times, seeded). Edge cases: when the expected disagreement is zero (every rating the same
value) agreement is undefined and the value is ``nan``; resamples where it is undefined are left out of
the interval, which is ``nan`` when fewer than half of them are defined. Invalid input raises
:class:`~eval_platform.core.errors.InvalidInput` naming the field (and the row, counted from 1).

These are library functions; in a suite, a dataset's declared rater columns reach them through the catalog
metrics of :mod:`eval_platform.metrics.ratings` (``rater_agreement@1``, ``judge_human_agreement@1``).

Example::

    >>> from eval_platform.metrics.agreement import krippendorff_alpha
    >>> ratings = [[1, 1, None], [2, 2, 2], [3, 3, 2], [1, 1, 1]]   # 4 units x 3 raters
    >>> round(krippendorff_alpha(ratings, level="nominal", n_resamples=200).value, 3)
    0.737
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_sparse as sparse

__all__ = [
    "AgreementEstimate",
    "JudgeHumanAgreement",
    "KappaInterval",
    "cohen_kappa",
    "cohen_kappa_interval",
    "fleiss_kappa",
    "krippendorff_alpha",
    "judge_human_agreement",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True)
class AgreementEstimate:
    """An agreement coefficient with its percentile bootstrap ``confidence`` interval over units.

    ``n_units`` counts the units that entered the coefficient (for alpha: units with at least two
    ratings), ``n_raters`` the columns of the ratings table."""

    measure: str
    value: float
    ci_low: float
    ci_high: float
    n_units: int
    n_raters: int
    n_resamples: int
    confidence: float


@dataclass(frozen=True)
class JudgeHumanAgreement:
    """Krippendorff's alpha among the human raters, with the judge added as one more rater, and
    ``difference = with_judge - humans`` with its paired bootstrap interval (same resampled units)."""

    humans: AgreementEstimate
    with_judge: AgreementEstimate
    difference: float
    difference_ci_low: float
    difference_ci_high: float


# ------------------------------------------------------------------------------------------------------
# validation


def _table(ratings: Any, field: str) -> np.ndarray:
    if isinstance(ratings, pd.DataFrame):
        table = ratings.to_numpy(dtype=object)
    else:
        try:
            table = np.asarray(ratings, dtype=object)
        except ValueError:
            raise InvalidInput(field, "must be a table: one row per unit, one column per rater, rows of equal length") from None
    if table.ndim != 2:
        raise InvalidInput(field, f"must be two-dimensional (units x raters), got shape {table.shape}")
    if table.shape[0] == 0:
        raise InvalidInput(field, "has no units (rows)")
    return table


def _missing(table: np.ndarray) -> np.ndarray:
    return pd.isna(pd.DataFrame(table)).to_numpy()


def _codes(table: np.ndarray, field: str, numeric: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, values)``: ``codes[u, r]`` indexes the sorted distinct ``values`` (``-1`` when missing)."""
    missing = _missing(table)
    present = table[~missing]
    if numeric:
        as_float = pd.to_numeric(pd.Series(present, dtype=object), errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(as_float)
        if bad.any():
            u, r = np.argwhere(~missing)[int(np.flatnonzero(bad)[0])]
            raise InvalidInput(field, f"row {u + 1}, rater {r + 1}: {table[u, r]!r} is not a finite number "
                                      "(this level needs numeric ratings)")
        present = as_float
    try:
        values, inverse = np.unique(present, return_inverse=True)
    except TypeError:  # labels of mixed types have no order: keep first-seen order (nominal only)
        inverse, values = pd.factorize(pd.Series(present, dtype=object))
        values = np.asarray(values, dtype=object)
    codes = np.full(table.shape, -1, dtype=np.int64)
    codes[~missing] = np.asarray(inverse).ravel()
    return codes, values


def _check_options(confidence: Any, n_resamples: Any, seed: Any) -> tuple[float, int, int]:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InvalidInput("n_resamples", f"must be a whole number >= 0, got {n_resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("seed", f"must be a whole number >= 0, got {seed!r}")
    return float(confidence), n_resamples, seed


#: Unit-weight cells held at once (8 bytes each): resamples are drawn and evaluated in blocks of rows so
#: that memory stays near 32 MB whatever the number of units.
_BLOCK_CELLS = 1 << 22


def _resampled(n_units: int, n_resamples: int, seed: int, *statistics) -> list[np.ndarray]:
    """Each statistic (a function of unit weights ``(rows, n_units) -> (rows,)``) on the data itself (row 0:
    every unit once) and on ``n_resamples`` bootstrap resamples (how many times each unit was drawn).
    Every statistic here is a function of such weights, so one drawing serves all of them (paired)."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n_units, 1))
    chunks: list[list[np.ndarray]] = [[f(np.ones((1, n_units)))] for f in statistics]
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        draws = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=size).astype(np.float64)
        for out, f in zip(chunks, statistics, strict=True):  # one list of chunks per statistic
            out.append(f(draws))
    return [np.concatenate(out) for out in chunks]


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    point, resampled = float(values[0]), values[1:]
    defined = resampled[np.isfinite(resampled)]
    if len(resampled) == 0 or len(defined) < len(resampled) / 2:
        return point, float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return point, float(low), float(high)


def _estimate(measure, values, n_units, n_raters, n_resamples, confidence) -> AgreementEstimate:
    point, low, high = _interval(values, confidence)
    return AgreementEstimate(measure, point, low, high, n_units, n_raters, n_resamples, confidence)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


# ------------------------------------------------------------------------------------------------------
# Cohen's kappa


def cohen_kappa(rater_1, rater_2, *, weights: Literal["linear", "quadratic"] | None = None, confidence: float = 0.95,
                n_resamples: int = 1000, seed: int = 0) -> AgreementEstimate:
    """Cohen's kappa of two raters over the same units, optionally weighted (see the module docstring).

    Labels are the sorted union of both raters' labels (a weighted kappa needs them ordered). Edge case:
    both raters always give one and the same label, so ``p_e = 1``: ``nan``. Missing ratings are refused
    (use :func:`krippendorff_alpha`, which allows them).

    >>> cohen_kappa(["y", "y", "n", "n"], ["y", "n", "n", "n"], n_resamples=0).value
    0.5
    """
    confidence, n_resamples, seed = _check_options(confidence, n_resamples, seed)
    if weights not in (None, "linear", "quadratic"):
        raise InvalidInput("weights", f"must be None, 'linear' or 'quadratic', got {weights!r}")
    first, second = (np.asarray(list(r) if not isinstance(r, np.ndarray) else r, dtype=object) for r in (rater_1, rater_2))
    for name, array in (("rater_1", first), ("rater_2", second)):
        if array.ndim != 1:
            raise InvalidInput(name, f"must be one-dimensional, got shape {array.shape}")
    if len(first) != len(second):
        raise InvalidInput("rater_2", f"has {len(second)} ratings but rater_1 has {len(first)}")
    table = _table(np.column_stack([first, second]) if len(first) else np.empty((0, 2), dtype=object), "rater_1")
    missing = _missing(table)
    if missing.any():
        u, r = np.argwhere(missing)[0]
        raise InvalidInput(f"rater_{r + 1}", f"row {u + 1}: rating is missing (Cohen's kappa needs both; "
                                             "krippendorff_alpha allows missing ratings)")
    codes, values = _codes(table, "ratings", numeric=False)
    k = len(values)
    index = np.arange(k)
    if weights is None:
        disagreement = (index[:, None] != index[None, :]).astype(np.float64)
    elif weights == "linear":
        disagreement = np.abs(index[:, None] - index[None, :]).astype(np.float64)
    else:
        disagreement = ((index[:, None] - index[None, :]) ** 2).astype(np.float64)
    cell = codes[:, 0] * k + codes[:, 1]                                     # each unit's confusion cell
    # sparse: one non-zero per unit, so memory grows with units + k^2 per resample, not units x k^2
    onehot = sparse.csr_matrix((np.ones(len(table)), (np.arange(len(table)), cell)), shape=(len(table), k * k))

    def kappa(w: np.ndarray) -> np.ndarray:
        confusion = np.asarray((onehot.T @ w.T).T).reshape(-1, k, k)          # (B, k, k)
        total = confusion.sum(axis=(1, 2))
        expected = confusion.sum(axis=2)[:, :, None] * confusion.sum(axis=1)[:, None, :] / total[:, None, None]
        observed_d = np.einsum("bij,ij->b", confusion, disagreement)
        expected_d = np.einsum("bij,ij->b", expected, disagreement)
        return 1 - _safe_ratio(observed_d, expected_d)

    (values_b,) = _resampled(len(table), n_resamples, seed, kappa)
    name = "cohen_kappa" if weights is None else f"cohen_kappa_{weights}"
    return _estimate(name, values_b, len(table), 2, n_resamples, confidence)


@dataclass(frozen=True)
class KappaInterval:
    """Cohen's kappa of two raters with its large-sample (normal) ``confidence`` interval ``kappa +- z * se``."""

    value: float
    standard_error: float
    ci_low: float
    ci_high: float
    n_units: int
    confidence: float


def cohen_kappa_interval(rater_1, rater_2, *, confidence: float = 0.95) -> KappaInterval:
    """Unweighted Cohen's kappa with the asymptotic standard error of Fleiss, Cohen and Everitt (1969).

    With ``p_ij`` the confusion matrix as shares, ``p_i.``/``p_.j`` its margins, ``p_o = sum p_ii`` and
    ``p_e = sum p_i. p_.i``::

        var = [ sum_i p_ii (1 - (p_i. + p_.i)(1 - kappa))^2
                + (1 - kappa)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
                - (kappa - p_e (1 - kappa))^2 ] / ((1 - p_e)^2 n)

    (statsmodels' ``cohens_kappa`` computes the same). Closed form rather than the bootstrap of
    :func:`cohen_kappa`: a license is recomputed on every check and must be the same number every time, and
    with all units agreeing the bootstrap's interval collapses just as this one does (``se = 0``). Edge case:
    both raters always give one and the same label (``p_e = 1``): kappa, its error and interval are ``nan``.

    >>> round(cohen_kappa_interval(["y", "y", "n", "n"], ["y", "n", "n", "n"]).value, 3)
    0.5
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    point = cohen_kappa(rater_1, rater_2, n_resamples=0)  # the same validation and labels
    first, second = (np.asarray(list(r), dtype=object) for r in (rater_1, rater_2))
    labels = sorted(set(first.tolist()) | set(second.tolist()), key=str)
    index = {label: i for i, label in enumerate(labels)}
    k, n = len(labels), len(first)
    shares = np.zeros((k, k))
    np.add.at(shares, ([index[a] for a in first], [index[b] for b in second]), 1.0)
    shares /= n
    rows, cols = shares.sum(axis=1), shares.sum(axis=0)
    expected = float((rows * cols).sum())
    kappa = point.value
    if not np.isfinite(kappa) or expected >= 1:
        nan = float("nan")
        return KappaInterval(nan, nan, nan, nan, n, float(confidence))
    diagonal = np.diag(shares)
    term_a = float((diagonal * (1 - (rows + cols) * (1 - kappa)) ** 2).sum())
    off = shares * (cols[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0.0)
    term_b = (1 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - expected * (1 - kappa)) ** 2
    variance = max((term_a + term_b - term_c) / ((1 - expected) ** 2 * n), 0.0)  # rounding may dip below 0
    from scipy.stats import norm  # deferred: the module is imported by the catalog at start-up

    se = float(np.sqrt(variance))
    z = float(norm.ppf(0.5 + confidence / 2))
    return KappaInterval(float(kappa), se, float(kappa - z * se), float(kappa + z * se), n, float(confidence))


# ------------------------------------------------------------------------------------------------------
# Fleiss' kappa


def fleiss_kappa(ratings, *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> AgreementEstimate:
    """Fleiss' kappa of a units x ratings table, every unit rated the same number ``m >= 2`` of times.

    Edge case: every rating in one category (``P_e = 1``): ``nan``. A missing rating is refused naming its
    row (use :func:`krippendorff_alpha`).

    >>> fleiss_kappa([["a", "a", "a"], ["b", "b", "b"], ["a", "b", "b"]], n_resamples=0).value
    0.55
    """
    confidence, n_resamples, seed = _check_options(confidence, n_resamples, seed)
    table = _table(ratings, "ratings")
    if table.shape[1] < 2:
        raise InvalidInput("ratings", f"needs at least 2 ratings per unit, got {table.shape[1]}")
    missing = _missing(table)
    if missing.any():
        u, r = np.argwhere(missing)[0]
        raise InvalidInput("ratings", f"row {u + 1}, rater {r + 1}: rating is missing (Fleiss' kappa needs every "
                                      "unit rated the same number of times; krippendorff_alpha allows missing ratings)")
    codes, values = _codes(table, "ratings", numeric=False)
    n_units, m = table.shape
    counts = np.zeros((n_units, len(values)))
    np.add.at(counts, (np.repeat(np.arange(n_units), m), codes.ravel()), 1.0)  # n_ij
    p_unit = ((counts**2).sum(axis=1) - m) / (m * (m - 1))                       # P_i

    def kappa(w: np.ndarray) -> np.ndarray:
        units = w.sum(axis=1)
        p_bar = w @ p_unit / units
        p_category = (w @ counts) / (units * m)[:, None]
        p_e = (p_category**2).sum(axis=1)
        return _safe_ratio(p_bar - p_e, 1 - p_e)

    (values_b,) = _resampled(n_units, n_resamples, seed, kappa)
    return _estimate("fleiss_kappa", values_b, n_units, m, n_resamples, confidence)


# ------------------------------------------------------------------------------------------------------
# Krippendorff's alpha


def _pairs(codes: np.ndarray, pairable: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ordered pair of ratings within a pairable unit: ``(unit, code_1, code_2, 1 / (m_u - 1))``,
    ``unit`` indexing the pairable units. Memory is ``sum_u m_u^2``, whatever the number of distinct values."""
    units = codes[pairable]
    m = (units >= 0).sum(axis=1)
    # the present ratings of each row first (stable: rater order kept), so a row's first m_u cells are its ratings
    compact = np.take_along_axis(units, np.argsort(units < 0, axis=1, kind="stable"), axis=1)
    unit_ids, first, second, weight = [], [], [], []
    for size in np.unique(m):
        rows = np.flatnonzero(m == size)
        i, j = np.nonzero(~np.eye(size, dtype=bool))
        block = compact[rows, :size]
        unit_ids.append(np.repeat(rows, len(i)))
        first.append(block[:, i].ravel())
        second.append(block[:, j].ravel())
        weight.append(np.full(len(rows) * len(i), 1.0 / (size - 1)))
    return np.concatenate(unit_ids), np.concatenate(first), np.concatenate(second), np.concatenate(weight)


def _spread(n: np.ndarray, n_c: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``sum_ck n_c n_k (x_c - x_k)^2 = 2 (n sum n_c x_c^2 - (sum n_c x_c)^2)``; a difference of two large
    terms, so a result within rounding of 0 (a single value observed: no expected disagreement) is 0."""
    first = n * (n_c * x**2).sum(axis=1)
    spread = 2 * (first - (n_c * x).sum(axis=1) ** 2)
    return np.where(spread <= 1e-12 * 2 * np.abs(first), 0.0, spread)


def _alpha_statistic(codes: np.ndarray, values: np.ndarray, level: str):
    """Alpha as a function of unit weights (see :func:`_resampled`).

    ``alpha = 1 - (n - 1) sum_ck o_ck delta_ck / sum_ck n_c n_k delta_ck``, computed without building a
    coincidence matrix per unit: the observed part sums ``delta`` over the pairs of ratings within units, the
    expected part uses closed forms in the marginals ``n_c`` (``n^2 - sum n_c^2`` for nominal, ``2 (n sum n_c
    v_c^2 - (sum n_c v_c)^2)`` for interval, and the same over mid-ranks ``M_c = sum_{g<=c} n_g - n_c / 2`` for
    ordinal, whose ``delta_ck`` is ``(M_c - M_k)^2``); ratio sums ``n_c n_k delta_ck`` over the value pairs."""
    pairable = (codes >= 0).sum(axis=1) >= 2
    if len(values) == 0 or not pairable.any():
        return lambda weights: np.full(len(weights), np.nan)
    unit, c1, c2, pair_weight = _pairs(codes, pairable)
    present = codes[pairable] >= 0
    rows, _ = np.nonzero(present)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, codes[pairable][present])), shape=(int(pairable.sum()), len(values)))
    if level == "ordinal":
        disagreements = _ordinal_disagreements(unit, c1, c2, pair_weight)
    else:
        disagreements = _value_disagreements(level, values, unit, c1, c2, pair_weight, int(pairable.sum()))

    def alpha(weights: np.ndarray) -> np.ndarray:
        w = weights[:, pairable]
        n_c = np.asarray((counts.T @ w.T).T)                                  # (B, k) marginals
        n = n_c.sum(axis=1)
        observed, expected = disagreements(w, n_c, n)
        return 1 - _safe_ratio((n - 1) * observed, expected)

    return alpha


#: ``(unit weights, marginals n_c, n) -> (observed, expected)`` disagreement of each weighting
_Disagreements = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _ordinal_disagreements(unit: np.ndarray, c1: np.ndarray, c2: np.ndarray, pair_weight: np.ndarray) -> _Disagreements:
    """Ordinal ``delta_ck = (M_c - M_k)^2`` over mid-ranks, which move with the marginals of each weighting."""

    def disagreements(w: np.ndarray, n_c: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        midrank = np.cumsum(n_c, axis=1) - n_c / 2                         # (B, k)
        observed = np.empty(len(w))
        rows_at_once = max(1, _BLOCK_CELLS // max(len(unit), 1))          # bounded (resamples x pairs)
        for begin in range(0, len(w), rows_at_once):
            block = slice(begin, begin + rows_at_once)
            gap = midrank[block][:, c1] - midrank[block][:, c2]
            observed[block] = (w[block][:, unit] * pair_weight * gap**2).sum(axis=1)
        return observed, _spread(n, n_c, midrank)

    return disagreements


def _value_disagreements(level: str, values: np.ndarray, unit: np.ndarray, c1: np.ndarray, c2: np.ndarray,
                         pair_weight: np.ndarray, n_units: int) -> _Disagreements:
    """Nominal, interval and ratio: ``delta`` depends on the values only, so each unit's observed disagreement
    is computed once and a weighting sums it."""
    expected: Callable[[np.ndarray, np.ndarray], np.ndarray]
    if level == "nominal":
        pair_delta = (c1 != c2).astype(np.float64)
        expected = lambda n_c, n: n**2 - (n_c**2).sum(axis=1)
    elif level == "interval":
        v = values.astype(np.float64)
        pair_delta = (v[c1] - v[c2]) ** 2
        expected = lambda n_c, n: _spread(n, n_c, v)
    else:  # ratio
        v = values.astype(np.float64)
        total = v[c1] + v[c2]
        pair_delta = np.where(total == 0, 0.0, (v[c1] - v[c2]) / np.where(total == 0, 1, total)) ** 2
        both = v[:, None] + v[None, :]
        delta = np.where(both == 0, 0.0, (v[:, None] - v[None, :]) / np.where(both == 0, 1, both)) ** 2
        expected = lambda n_c, n: ((n_c @ delta) * n_c).sum(axis=1)
    per_unit = np.bincount(unit, weights=pair_weight * pair_delta, minlength=n_units)
    return lambda w, n_c, n: (w @ per_unit, expected(n_c, n))


def krippendorff_alpha(ratings, *, level: Level = "nominal", confidence: float = 0.95, n_resamples: int = 1000,
                       seed: int = 0) -> AgreementEstimate:
    """Krippendorff's alpha of a units x raters table with missing ratings allowed (module docstring).

    Units with fewer than two ratings carry no pair and are left out (``n_units`` counts the others).
    ``ordinal``, ``interval`` and ``ratio`` need numeric ratings (``ratio``: non-negative). Edge cases: no
    unit with two ratings, or a single distinct value among all ratings: ``nan``.

    >>> krippendorff_alpha([[1, 1], [2, 2], [3, 3]], level="interval", n_resamples=0).value
    1.0
    """
    confidence, n_resamples, seed = _check_options(confidence, n_resamples, seed)
    if level not in LEVELS:
        raise InvalidInput("level", f"must be one of {', '.join(LEVELS)}, got {level!r}")
    table = _table(ratings, "ratings")
    codes, values = _codes(table, "ratings", numeric=level != "nominal")
    if level == "ratio" and len(values) and values.astype(np.float64).min() < 0:
        raise InvalidInput("ratings", f"the ratio level needs non-negative ratings, got {values.min()!r}")
    (values_b,) = _resampled(len(codes), n_resamples, seed, _alpha_statistic(codes, values, level))
    n_units = int(((codes >= 0).sum(axis=1) >= 2).sum())
    return _estimate(f"krippendorff_alpha_{level}", values_b, n_units, table.shape[1], n_resamples, confidence)


def judge_human_agreement(human_ratings, judge_ratings, *, level: Level = "nominal", confidence: float = 0.95,
                          n_resamples: int = 1000, seed: int = 0) -> JudgeHumanAgreement:
    """Krippendorff's alpha among the humans (units x raters), and with the judge's ratings (one per unit,
    missing allowed) added as one more rater, on the same bootstrap resamples of the units.

    A ``difference`` whose interval lies below 0 says the judge disagrees with the humans more than they
    disagree among themselves; an interval around 0 says it is as consistent with them as another human.
    Judge and human ratings must be on the same scale (the same labels or numbers).
    """
    confidence, n_resamples, seed = _check_options(confidence, n_resamples, seed)
    if level not in LEVELS:
        raise InvalidInput("level", f"must be one of {', '.join(LEVELS)}, got {level!r}")
    humans = _table(human_ratings, "human_ratings")
    judge = np.asarray(list(judge_ratings) if not isinstance(judge_ratings, np.ndarray) else judge_ratings, dtype=object)
    if judge.ndim != 1 or len(judge) != len(humans):
        raise InvalidInput("judge_ratings", f"must hold one rating per unit ({len(humans)}), got shape {judge.shape}")
    combined = np.column_stack([humans, judge])
    # one coding of the values for both tables, so the two alphas see the same scale
    codes, values = _codes(combined, "human_ratings", numeric=level != "nominal")
    if level == "ratio" and len(values) and values.astype(np.float64).min() < 0:
        raise InvalidInput("human_ratings", f"the ratio level needs non-negative ratings, got {values.min()!r}")
    human_only = codes[:, :-1]
    alpha_humans, alpha_with = _resampled(len(codes), n_resamples, seed, _alpha_statistic(human_only, values, level),
                                          _alpha_statistic(codes, values, level))
    name = f"krippendorff_alpha_{level}"
    n_humans = int(((human_only >= 0).sum(axis=1) >= 2).sum())
    n_with = int(((codes >= 0).sum(axis=1) >= 2).sum())
    difference, low, high = _interval(alpha_with - alpha_humans, confidence)
    return JudgeHumanAgreement(
        humans=_estimate(name, alpha_humans, n_humans, humans.shape[1], n_resamples, confidence),
        with_judge=_estimate(name, alpha_with, n_with, humans.shape[1] + 1, n_resamples, confidence),
        difference=difference, difference_ci_low=low, difference_ci_high=high,
    )
