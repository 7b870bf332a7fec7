"""Distribution drift between a reference sample (the previous dataset version, the baseline's predictions)
and a current one: population stability index, Jensen-Shannon distance and the two-sample Kolmogorov-Smirnov test.

PSI and Jensen-Shannon compare *binned* distributions. :func:`drift_bins` bins both samples the same way:

* categorical values (strings, booleans, class labels): one bin per value seen in either sample, in sorted order;
* numeric values: ``bins`` equal-mass bins of the reference sample, cut at its inner quantiles (each taken as
  the reference value at or below it, so no bin is empty in the reference; fewer bins where the reference has
  ties, at least two unless it is constant); bins are right-closed, ``(e[j-1], e[j]]``, and the outermost ones open-ended, so values of
  the current sample beyond the reference's range count in them. (Separate below-minimum and above-maximum
  bins were tried and rejected: the reference has none there by construction, so the few new extremes any
  fresh sample has would dominate the PSI.) A constant reference ``v`` has three bins: ``< v``, ``= v``, ``> v``.

Each function returns a frozen dataclass and raises :class:`~eval_platform.core.errors.InvalidInput` naming the
argument for an empty sample, a missing or infinite value (callers drop missing values first and report the
missing share separately), or a bad parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput

#: default number of quantile bins of a numeric sample
DEFAULT_BINS = 10
#: default smoothing of bin shares: keeps PSI finite when a bin is empty in one sample
DEFAULT_EPSILON = 1e-4


@dataclass(frozen=True)
class DriftBins:
    """Both samples' counts over the same bins; ``labels`` name the bins (a value, or an interval)."""

    labels: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]

    @property
    def reference_shares(self) -> np.ndarray:
        counts = np.asarray(self.reference_counts, dtype=float)
        return counts / counts.sum()

    @property
    def current_shares(self) -> np.ndarray:
        counts = np.asarray(self.current_counts, dtype=float)
        return counts / counts.sum()


@dataclass(frozen=True)
class PopulationStabilityIndex:
    """``value`` is the PSI (>= 0; 0 when the binned shares are equal); ``epsilon`` the smoothing used."""

    value: float
    epsilon: float
    bins: DriftBins


@dataclass(frozen=True)
class JensenShannonDistance:
    """``value`` is the base-2 Jensen-Shannon distance in [0, 1]; ``divergence`` its square (in bits)."""

    value: float
    divergence: float
    bins: DriftBins


@dataclass(frozen=True)
class Homogeneity:
    """Pearson's chi-square test that both samples' bin shares are the same: ``statistic``, ``dof``, ``p_value``."""

    statistic: float
    dof: int
    p_value: float


@dataclass(frozen=True)
class KolmogorovSmirnov:
    """Two-sided two-sample KS test: ``statistic`` is the largest gap between the two empirical CDFs."""

    statistic: float
    p_value: float
    n_reference: int
    n_current: int


def _sample(values: Any, field: str, numeric: bool) -> np.ndarray:
    """A non-empty 1-d sample without missing values (finite, for a numeric one)."""
    if isinstance(values, str | bytes) or values is None:
        raise InvalidInput(field, "must be a sequence of values")
    try:
        array = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values)
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"cannot be read as a sequence of values ({error})") from None
    if array.ndim != 1:
        raise InvalidInput(field, f"must be one-dimensional, got shape {array.shape}")
    if len(array) == 0:
        raise InvalidInput(field, "is empty")
    missing = pd.isna(array)
    if missing.any():
        raise InvalidInput(field, f"has a missing value at row {int(np.flatnonzero(missing)[0])}")
    if numeric:
        if array.dtype.kind not in "iuf":
            raise InvalidInput(field, f"must be numeric, got dtype {array.dtype}")
        array = array.astype(float)
        infinite = ~np.isfinite(array)
        if infinite.any():
            raise InvalidInput(field, f"has a non-finite value at row {int(np.flatnonzero(infinite)[0])}")
    return array


def _bin_count(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or not 1 <= bins <= 1000:
        raise InvalidInput("bins", f"must be an integer in [1, 1000], got {bins!r}")
    return int(bins)


def drift_bins(reference: Any, current: Any, *, categorical: bool = False, bins: int = DEFAULT_BINS) -> DriftBins:
    """Count both samples over the same bins (see the module docstring for how bins are chosen).

    >>> drift_bins(["a", "b", "b"], ["b", "c"], categorical=True)
    DriftBins(labels=('a', 'b', 'c'), reference_counts=(1, 2, 0), current_counts=(0, 1, 1))
    """
    if categorical:
        ref, cur = _sample(reference, "reference", False), _sample(current, "current", False)
        ref_labels, cur_labels = ref.astype(str), cur.astype(str)
        labels = np.unique(np.concatenate([ref_labels, cur_labels]))
        ref_counts = np.searchsorted(labels, ref_labels)
        cur_counts = np.searchsorted(labels, cur_labels)
        return DriftBins(tuple(str(v) for v in labels),
                         tuple(int(c) for c in np.bincount(ref_counts, minlength=len(labels))),
                         tuple(int(c) for c in np.bincount(cur_counts, minlength=len(labels))))
    n_bins = _bin_count(bins)
    ref, cur = _sample(reference, "reference", True), _sample(current, "current", True)
    low, high = float(ref.min()), float(ref.max())
    if low == high:  # a constant reference: below it, at it, above it
        def three(x: np.ndarray) -> tuple[int, ...]:
            return int(np.sum(x < low)), int(np.sum(x == low)), int(np.sum(x > low))

        return DriftBins((f"< {low:.6g}", f"= {low:.6g}", f"> {low:.6g}"), three(ref), three(cur))
    # right edges: the reference's inner quantiles below its maximum (fewer where it has ties: a 0/1 feature
    # has the one edge 0); when every quantile is the maximum, the largest value below it
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="lower"))
    edges = edges[edges < high]
    if not len(edges) and n_bins > 1:
        edges = np.array([ref[ref < high].max()])
    names = ([f"<= {edges[0]:.6g}"] + [f"({a:.6g}, {b:.6g}]" for a, b in zip(edges[:-1], edges[1:], strict=True)]
             + [f"> {edges[-1]:.6g}"]) if len(edges) else ["all"]

    def counts(x: np.ndarray) -> tuple[int, ...]:
        return tuple(int(c) for c in np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1))

    return DriftBins(tuple(names), counts(ref), counts(cur))


def _epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 < epsilon < 1:
        raise InvalidInput("epsilon", f"must be a number in (0, 1), got {epsilon!r}")
    return float(epsilon)


def population_stability_index(reference: Any, current: Any, *, categorical: bool = False, bins: int = DEFAULT_BINS,
                               epsilon: float = DEFAULT_EPSILON) -> PopulationStabilityIndex:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over the bins of :func:`drift_bins`, where ``r_i`` and ``c_i`` are
    the reference's and the current sample's shares of bin ``i`` after additive smoothing
    ``s_i = (share_i + epsilon) / (1 + k * epsilon)`` (``k`` bins), which keeps an empty bin finite and the
    shares summing to 1. PSI is the symmetric (Jeffreys) divergence of the two binned distributions, >= 0,
    0 when the shares are equal. Customary reading: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 major.

    Edge cases: a constant reference has three bins (below, at, above its value); a single bin in all
    (a categorical column with one value in both samples) gives 0. Its value depends on ``bins`` and
    ``epsilon``: compare PSIs computed with the same settings.

    >>> round(population_stability_index(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10, categorical=True).value, 4)
    0.8784
    """
    eps = _epsilon(epsilon)
    binned = drift_bins(reference, current, categorical=categorical, bins=bins)
    k = len(binned.labels)
    ref = (binned.reference_shares + eps) / (1 + k * eps)
    cur = (binned.current_shares + eps) / (1 + k * eps)
    value = float(np.sum((cur - ref) * np.log(cur / ref)))
    return PopulationStabilityIndex(max(value, 0.0), eps, binned)


def jensen_shannon_distance(reference: Any, current: Any, *, categorical: bool = True,
                            bins: int = DEFAULT_BINS) -> JensenShannonDistance:
    """Base-2 Jensen-Shannon distance between the binned distributions of the two samples.

    With ``m = (r + c) / 2``: ``JSD = (KL(r || m) + KL(c || m)) / 2`` in bits, ``KL(p || q) = sum_i p_i log2(p_i / q_i)``
    (a term with ``p_i = 0`` is 0), and the distance is ``sqrt(JSD)``: a metric in [0, 1], 0 for equal shares,
    1 for disjoint supports. No smoothing is needed (``m_i > 0`` wherever ``p_i > 0``). Same as
    ``scipy.spatial.distance.jensenshannon(r, c, base=2)`` on the bin shares.

    >>> jensen_shannon_distance(["a", "a"], ["b"]).value
    1.0
    """
    binned = drift_bins(reference, current, categorical=categorical, bins=bins)
    ref, cur = binned.reference_shares, binned.current_shares
    mid = (ref + cur) / 2

    def kl(p: np.ndarray) -> float:
        present = p > 0
        return float(np.sum(p[present] * np.log2(p[present] / mid[present])))

    divergence = min(max((kl(ref) + kl(cur)) / 2, 0.0), 1.0)  # rounding can step just outside [0, 1]
    return JensenShannonDistance(math.sqrt(divergence), divergence, binned)


def homogeneity_test(bins: DriftBins) -> Homogeneity:
    """Pearson's chi-square test of homogeneity of the two samples' counts over the same bins.

    ``X2 = sum_{g, i} (O_gi - E_gi)^2 / E_gi`` with ``E_gi = n_g * (r_i + c_i) / (n_r + n_c)`` over the bins that are
    not empty in both samples, and ``p = P(chi2_{k-1} >= X2)`` for ``k`` such bins (no continuity correction).
    It says whether a PSI or Jensen-Shannon value is more than sampling noise: with no drift both shrink like
    ``1 / n`` but are never 0, and ``PSI * n_r n_c / (n_r + n_c)`` is itself approximately ``chi2_{k-1}``.
    Fewer than two non-empty bins: ``X2 = 0``, ``p = 1``.

    >>> homogeneity_test(DriftBins(("a", "b"), (10, 10), (10, 10))).p_value
    1.0
    """
    from scipy.stats import chi2

    if not isinstance(bins, DriftBins):
        raise InvalidInput("bins", f"must be DriftBins, got {type(bins).__name__}")
    table = np.array([bins.reference_counts, bins.current_counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof < 1 or (table.sum(axis=1) == 0).any():
        return Homogeneity(0.0, max(dof, 0), 1.0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return Homogeneity(statistic, dof, float(chi2.sf(statistic, dof)))


def ks_two_sample(reference: Any, current: Any) -> KolmogorovSmirnov:
    """Two-sided two-sample Kolmogorov-Smirnov test of "both samples come from the same continuous distribution".

    ``D = max_x |F_ref(x) - F_cur(x)|`` over the pooled values (empirical CDFs, ties handled by evaluating both
    CDFs at every distinct value). The p-value is the asymptotic one, ``P(D_n >= D)`` under Kolmogorov's
    one-sample distribution with ``n = round(n_ref * n_cur / (n_ref + n_cur))`` observations (scipy's
    ``ks_2samp(method="asymp")``), which is accurate for the dataset sizes compared here and costs no more for
    a million rows than for a hundred; for tiny samples it is approximate (and conservative with many ties).

    Edge cases: identical samples give ``D = 0``, ``p = 1``; disjoint ones ``D = 1``.

    >>> ks_two_sample([1, 2, 3], [1, 2, 3]).statistic
    0.0
    """
    from scipy.stats import kstwo

    ref = np.sort(_sample(reference, "reference", True))
    cur = np.sort(_sample(current, "current", True))
    pooled = np.concatenate([ref, cur])
    gap = np.abs(np.searchsorted(ref, pooled, side="right") / len(ref) - np.searchsorted(cur, pooled, side="right") / len(cur))
    statistic = float(gap.max())
    n = max(int(round(len(ref) * len(cur) / (len(ref) + len(cur)))), 1)
    p_value = float(min(max(kstwo.sf(statistic, n), 0.0), 1.0))
    return KolmogorovSmirnov(statistic, p_value, len(ref), len(cur))
