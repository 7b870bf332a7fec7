"""Statistics of online experiments (A/B tests), over plain numpy data (shadow mode's are in :mod:`eval_platform.online.shadow`).

Conventions shared by every function here:

* **Arms.** Every two-arm statistic compares a *treatment* against a *control*; a difference is
  ``treatment - control`` and a lift ``treatment / control - 1``. ``alternative="greater"`` means the
  treatment's value is larger (scipy's naming; statsmodels calls it ``"larger"``).
* **Units.** One value per randomisation unit (a user, a session): per-event data must be aggregated to
  units first (``eval_platform.online.analysis`` does that), because events of one unit are correlated and
  treating them as independent understates every variance.
* **Summaries.** Each statistic exists as a function of raw values and is computed from a
  :class:`Summary` ``(n, mean, var)`` per arm, so cumulative per-day analyses and vectorised simulations
  reuse the same arithmetic. ``var`` is the sample variance (``ddof=1``) for means and ``p (1 - p)`` for
  proportions (the Bernoulli variance the z-test uses).
* **Intervals** are two-sided at ``confidence`` (default 0.95) whatever the ``alternative`` of the test.
* **Validation.** Values must be one-dimensional, finite and numeric; the error
  (:class:`~eval_platform.core.errors.InvalidInput`) names the field and the first offending row. Confidence and
  alpha must lie strictly between 0 and 1.
* **Undefined results are ``nan``**, never an exception: an arm with fewer than two units, zero variance in
  both arms, a control mean of zero for a lift. The guardrail verdicts treat ``nan`` as missing
  information (``no_decision``), so an undefined statistic can never pass a release.

Sequential testing (:func:`msprt_log_likelihood_ratio`, :func:`always_valid_pvalues`,
:func:`confidence_sequence`) follows the mixture sequential probability ratio test of Johari, Koomen, Pekelis
and Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations Research, 2022), the
method behind Optimizely's stats engine; the formula and its mixing variance are stated on the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats as _st

ALTERNATIVES = ("two-sided", "greater", "less")
#: Default mixing standard deviation of the mSPRT, in units of one unit's standard deviation (Cohen's d).
DEFAULT_MIXING_SD = 0.05


# ------------------------------------------------------------------------------------------------------
# Validation


def python_scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _values(values, field: str, allow_empty: bool = False) -> np.ndarray:
    """A finite 1-D float array; booleans become 0/1."""
    try:
        array = np.asarray(values)
        if array.dtype == bool:
            array = array.astype(np.float64)
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"must be numeric ({error})") from None
    if array.ndim != 1:
        raise InvalidInput(field, f"must be one-dimensional, got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise InvalidInput(field, "is empty")
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput(field, f"must be finite; row {row} is {python_scalar(array[row])!r}")
    return array


def _probability(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or math.isnan(value):
        raise InvalidInput(field, f"must be a number, got {value!r}")
    if not 0.0 < value < 1.0:
        raise InvalidInput(field, f"must be strictly between 0 and 1, got {value}")
    return float(value)


def checked_count(value, field: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float | np.floating) \
            or not math.isfinite(value) or int(value) != value or value < minimum:
        raise InvalidInput(field, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise InvalidInput("alternative", f"must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}")
    return alternative


def _z(confidence: float) -> float:
    return float(_st.norm.ppf(0.5 + _probability(confidence, "confidence") / 2))


def _pvalue(statistic: float, alternative: str, sf) -> float:
    """p-value of a symmetric statistic from its survival function ``sf``."""
    if not math.isfinite(statistic):
        return float("nan")
    if alternative == "two-sided":
        return float(min(1.0, 2 * sf(abs(statistic))))
    if alternative == "greater":
        return float(sf(statistic))
    return float(sf(-statistic))


class Record:
    """Plain-data view: ``as_dict()`` gives a dict of Python scalars (``nan`` stays ``nan``)."""

    def as_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {key: python_scalar(value) for key, value in values.items() if not isinstance(value, np.ndarray)}


# ------------------------------------------------------------------------------------------------------
# Per-arm summaries and means with confidence intervals


@dataclass(frozen=True)
class Summary(Record):
    """Sufficient statistics of one arm: ``n`` units, their ``mean`` and variance ``var`` (see module doc)."""

    n: int
    mean: float
    var: float


def summarize(values, field: str = "values") -> Summary:
    """``Summary(n, mean, sample variance ddof=1)``; the variance is ``nan`` for a single unit."""
    x = _values(values, field)
    return Summary(int(x.size), float(np.mean(x)), float(np.var(x, ddof=1)) if x.size > 1 else float("nan"))


def summarize_proportion(successes, n, field: str = "successes") -> Summary:
    """``Summary(n, p, p (1 - p))`` for ``successes`` out of ``n >= 1`` units."""
    n = checked_count(n, "n", 1)
    successes = checked_count(successes, field)
    if successes > n:
        raise InvalidInput(field, f"{successes} successes exceed n = {n}")
    p = successes / n
    return Summary(n, p, p * (1 - p))


@dataclass(frozen=True)
class MeanEstimate(Record):
    """One arm's mean with a two-sided interval: ``method`` is ``t`` (means) or ``wilson`` (proportions)."""

    n: int
    mean: float
    std: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str


def mean_from_summary(summary: Summary, confidence: float = 0.95) -> MeanEstimate:
    """Student-t interval ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)``; ``nan`` bounds when ``n < 2``.

    Equal to ``scipy.stats.t.interval(c, n - 1, loc=mean, scale=sem)`` (and statsmodels'
    ``DescrStatsW.tconfint_mean``). Zero variance gives the degenerate interval ``[mean, mean]``.
    """
    _probability(confidence, "confidence")
    n, mean, var = summary.n, summary.mean, summary.var
    if n < 2 or not math.isfinite(var):
        nan = float("nan")
        return MeanEstimate(n, mean, nan, nan, nan, nan, confidence, "t")
    std = math.sqrt(var)
    se = std / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return MeanEstimate(n, mean, std, se, mean - half, mean + half, confidence, "t")


def mean_ci(values, confidence: float = 0.95) -> MeanEstimate:
    """Mean of per-unit ``values`` with its Student-t interval (see :func:`mean_from_summary`)."""
    return mean_from_summary(summarize(values), confidence)


def proportion_ci(successes, n, confidence: float = 0.95) -> MeanEstimate:
    """A rate with its Wilson score interval.

    ``center = (p + z^2 / 2n) / (1 + z^2 / n)``, ``half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)``
    with ``z = Phi^-1((1 + c) / 2)``; equal to statsmodels' ``proportion_confint(method="wilson")``. Unlike
    the Wald interval it stays inside [0, 1] and is not degenerate at 0 or n successes. ``std`` and ``se``
    are the Bernoulli ``sqrt(p (1 - p))`` and ``sqrt(p (1 - p) / n)``. At 0 (or n) successes the lower
    (upper) bound is exactly 0 (1), where floating-point rounding would leave it a hair inside.
    """
    summary = summarize_proportion(successes, n)
    z = _z(confidence)
    p, n = summary.mean, summary.n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 or n successes one bound is p itself; rounding must not move it past p
    low, high = min(center - half, p), max(center + half, p)
    return MeanEstimate(n, p, math.sqrt(summary.var), math.sqrt(summary.var / n), max(low, 0.0), min(high, 1.0),
                        float(confidence), "wilson")


# ------------------------------------------------------------------------------------------------------
# Two-arm tests


@dataclass(frozen=True)
class TestResult(Record):
    """A two-arm comparison: ``estimate = treatment - control`` with its standard error, the test
    statistic and p-value for ``alternative``, and a two-sided interval for the difference."""

    __test__ = False  # not a pytest class

    test: str
    estimate: float
    se: float
    statistic: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    alternative: str
    confidence: float


def two_proportion_ztest(successes_control, n_control, successes_treatment, n_treatment,
                         alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Two-proportion z-test with the pooled variance under ``H0: p_t = p_c``.

    ``z = (p_t - p_c) / sqrt(p (1 - p) (1/n_c + 1/n_t))`` with ``p = (x_c + x_t) / (n_c + n_t)``; equal to
    statsmodels' ``proportions_ztest([x_t, x_c], [n_t, n_c])`` (``"greater"`` is its ``"larger"``). The
    interval is the unpooled Wald interval ``(p_t - p_c) +- z_c sqrt(p_t (1-p_t)/n_t + p_c (1-p_c)/n_c)``,
    and ``se`` is that unpooled standard error. When the pooled rate is 0 or 1 (no success, or no failure,
    in either arm) the statistic and p-value are ``nan``: there is no variance to test against.
    """
    alternative = _alternative(alternative)
    control = summarize_proportion(successes_control, n_control, "successes_control")
    treatment = summarize_proportion(successes_treatment, n_treatment, "successes_treatment")
    _probability(confidence, "confidence")
    return ztest_from_summaries(control, treatment, alternative, confidence)


def ztest_from_summaries(control: Summary, treatment: Summary, alternative: str = "two-sided",
                         confidence: float = 0.95) -> TestResult:
    """:func:`two_proportion_ztest` from proportion summaries (``mean`` is the rate)."""
    z_c = _z(confidence)
    diff = treatment.mean - control.mean
    pooled = (control.mean * control.n + treatment.mean * treatment.n) / (control.n + treatment.n)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    statistic = diff / pooled_se if pooled_se > 0 else float("nan")
    se = math.sqrt(treatment.var / treatment.n + control.var / control.n)
    return TestResult("two_proportion_z", diff, se, statistic, float("inf"), _pvalue(statistic, alternative, _st.norm.sf),
                      diff - z_c * se, diff + z_c * se, alternative, float(confidence))


def welch_ttest(control, treatment, alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Welch's unequal-variance t-test on per-unit values.

    ``t = (m_t - m_c) / sqrt(s_t^2/n_t + s_c^2/n_c)`` with the Welch-Satterthwaite degrees of freedom
    ``df = (v_t + v_c)^2 / (v_t^2/(n_t - 1) + v_c^2/(n_c - 1))``, ``v = s^2/n``; the interval is
    ``diff +- t_{(1+c)/2, df} se``. Equal to ``scipy.stats.ttest_ind(treatment, control, equal_var=False)``
    and its ``confidence_interval``. ``nan`` statistic, p-value and interval when an arm has fewer than two
    units or both arms have zero variance.
    """
    alternative = _alternative(alternative)
    _probability(confidence, "confidence")
    return welch_from_summaries(summarize(control, "control"), summarize(treatment, "treatment"), alternative, confidence)


def welch_from_summaries(control: Summary, treatment: Summary, alternative: str = "two-sided",
                         confidence: float = 0.95) -> TestResult:
    """:func:`welch_ttest` from the arms' summaries."""
    diff = treatment.mean - control.mean
    nan = float("nan")
    if control.n < 2 or treatment.n < 2:
        return TestResult("welch_t", diff, nan, nan, nan, nan, nan, nan, alternative, float(confidence))
    v_c, v_t = control.var / control.n, treatment.var / treatment.n
    se = math.sqrt(v_c + v_t)
    if se == 0:
        return TestResult("welch_t", diff, 0.0, nan, nan, nan, nan, nan, alternative, float(confidence))
    df = (v_c + v_t) ** 2 / (v_c * v_c / (control.n - 1) + v_t * v_t / (treatment.n - 1))
    statistic = diff / se
    half = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
    return TestResult("welch_t", diff, se, statistic, df, _pvalue(statistic, alternative, lambda x: _st.t.sf(x, df)),
                      diff - half, diff + half, alternative, float(confidence))


# ------------------------------------------------------------------------------------------------------
# Relative lift


@dataclass(frozen=True)
class LiftEstimate(Record):
    """``lift = treatment_mean / control_mean - 1`` with its delta-method standard error and interval."""

    control_mean: float
    treatment_mean: float
    lift: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float


def lift_from_summaries(control: Summary, treatment: Summary, confidence: float = 0.95) -> LiftEstimate:
    """Relative lift with a delta-method normal interval (independent arms).

    With ``m_c, m_t`` the arm means and ``V_c = var_c / n_c``, ``V_t = var_t / n_t`` their variances, the
    first-order expansion of ``g(m_t, m_c) = m_t / m_c`` gives

        ``Var(lift) = V_t / m_c^2 + m_t^2 V_c / m_c^4``,   interval ``lift +- z_{(1+c)/2} sqrt(Var)``.

    ``nan`` lift when the control mean is 0; ``nan`` standard error and interval when an arm's variance is
    undefined (fewer than two units). The interval is symmetric and can be poor when the control mean is
    within a few standard errors of 0 (then the ratio is badly determined anyway).
    """
    z = _z(confidence)
    m_c, m_t = control.mean, treatment.mean
    nan = float("nan")
    if m_c == 0:
        return LiftEstimate(m_c, m_t, nan, nan, nan, nan, float(confidence))
    lift = m_t / m_c - 1
    v_c = control.var / control.n if control.n else nan
    v_t = treatment.var / treatment.n if treatment.n else nan
    variance = v_t / (m_c * m_c) + m_t * m_t * v_c / m_c ** 4
    if not math.isfinite(variance):
        return LiftEstimate(m_c, m_t, lift, nan, nan, nan, float(confidence))
    se = math.sqrt(variance)
    return LiftEstimate(m_c, m_t, lift, se, lift - z * se, lift + z * se, float(confidence))


def relative_lift(control, treatment, confidence: float = 0.95) -> LiftEstimate:
    """Relative lift of per-unit values (see :func:`lift_from_summaries`)."""
    _probability(confidence, "confidence")
    return lift_from_summaries(summarize(control, "control"), summarize(treatment, "treatment"), confidence)


# ------------------------------------------------------------------------------------------------------
# Sample-ratio mismatch


@dataclass(frozen=True)
class SrmResult(Record):
    """Chi-square goodness of fit of the units per arm to the configured split.

    ``fired`` is ``p_value < alpha``: the assignment (or the logging) is broken and the experiment's results
    must not be trusted, whatever they say.
    """

    arms: tuple
    observed: tuple
    expected: tuple
    statistic: float
    df: int
    p_value: float
    alpha: float
    fired: bool


def srm_check(counts: Mapping[str, int] | Sequence[int], split: Mapping[str, float] | Sequence[float],
              alpha: float = 0.001) -> SrmResult:
    """Sample-ratio-mismatch check: ``chi2 = sum_i (O_i - E_i)^2 / E_i`` with ``E_i = N w_i / sum(w)``,
    ``df = arms - 1``, ``p = P(chi2_df >= chi2)``; equal to ``scipy.stats.chisquare(observed, expected)``.

    ``counts`` and ``split`` are both mappings by arm name (same arms) or both sequences in the same order;
    the split is a list of positive weights normalised to sum to 1 (``{a: 50, b: 50}`` and ``{a: 0.5,
    b: 0.5}`` are the same). At least two arms and at least one unit are required. A small ``alpha`` (the
    default 0.001) is usual: the check runs on every experiment, every day, and a false alarm stops one.
    """
    alpha = _probability(alpha, "alpha")
    arms: tuple[Any, ...]
    if isinstance(counts, Mapping) and isinstance(split, Mapping):
        if set(counts) != set(split):
            raise InvalidInput("split", f"arms {sorted(map(str, split))} differ from the counted arms {sorted(map(str, counts))}")
        arms = tuple(split)
        observed = [counts[arm] for arm in arms]
        weights = [split[arm] for arm in arms]
    elif not isinstance(counts, Mapping) and not isinstance(split, Mapping):
        observed, weights = list(counts), list(split)
        if len(observed) != len(weights):
            raise InvalidInput("split", f"has {len(weights)} arms but counts have {len(observed)}")
        arms = tuple(range(len(observed)))
    else:
        raise InvalidInput("split", "must be a mapping by arm when counts are (or both sequences)")
    if len(observed) < 2:
        raise InvalidInput("split", "needs at least two arms")
    observed = [checked_count(value, f"counts[{arm}]") for arm, value in zip(arms, observed, strict=True)]
    for arm, weight in zip(arms, weights, strict=True):
        if isinstance(weight, bool) or not isinstance(weight, int | float | np.integer | np.floating) \
                or not math.isfinite(weight) or weight <= 0:
            raise InvalidInput(f"split[{arm}]", f"must be a positive number, got {weight!r}")
    total = sum(observed)
    if total == 0:
        raise InvalidInput("counts", "no units in any arm")
    w = np.asarray(weights, dtype=np.float64)
    expected = total * w / w.sum()
    o = np.asarray(observed, dtype=np.float64)
    statistic = float(np.sum((o - expected) ** 2 / expected))
    df = len(observed) - 1
    p_value = float(_st.chi2.sf(statistic, df))
    return SrmResult(arms, tuple(observed), tuple(float(e) for e in expected), statistic, df, p_value, alpha,
                     bool(p_value < alpha))


# ------------------------------------------------------------------------------------------------------
# CUPED


@dataclass(frozen=True)
class CupedResult(Record):
    """CUPED adjustment of both arms with one ``theta``.

    ``control``/``treatment`` hold the adjusted per-unit values (left out of ``as_dict``).
    ``variance_reduction`` is ``1 - SS_within(adjusted) / SS_within(raw)``, the share of the metric's
    within-arm variance removed (the squared within-arm correlation of metric and covariate).
    """

    theta: float
    covariate_mean: float
    variance_reduction: float
    control: np.ndarray
    treatment: np.ndarray


def cuped_theta(control_y, control_x, treatment_y, treatment_x) -> float:
    """``theta = sum_arms sum_i (x_i - xbar_a)(y_i - ybar_a) / sum_arms sum_i (x_i - xbar_a)^2``.

    The pooled *within-arm* covariance over the pooled within-arm variance of the covariate: the slope of
    the covariate in an OLS of the metric on the covariate and an arm indicator (ANCOVA), so a treatment
    effect on the metric's mean does not leak into ``theta``. 0 when the covariate is constant within arms
    (no adjustment is possible, and none is made).
    """
    sxy = sxx = 0.0
    for y, x in ((control_y, control_x), (treatment_y, treatment_x)):
        dx, dy = x - x.mean(), y - y.mean()
        sxy += float(np.dot(dx, dy))
        sxx += float(np.dot(dx, dx))
    return sxy / sxx if sxx > 0 else 0.0


def cuped(control_y, control_x, treatment_y, treatment_x) -> CupedResult:
    """CUPED (Deng, Xu, Kohavi and Walker, WSDM 2013): ``y_adj = y - theta (x - xbar)``.

    ``x`` is a pre-period covariate of each unit (measured before assignment, so unaffected by the
    treatment), ``theta`` is :func:`cuped_theta` and ``xbar`` the mean of ``x`` over *both* arms, so the
    adjusted arm means stay on the metric's scale and their difference is an unbiased estimate of the
    treatment effect with variance reduced by about ``rho^2``. Each arm's ``y`` and ``x`` must have equal
    lengths; every value finite.
    """
    cy, cx = _values(control_y, "control_y"), _values(control_x, "control_x")
    ty, tx = _values(treatment_y, "treatment_y"), _values(treatment_x, "treatment_x")
    if cy.size != cx.size:
        raise InvalidInput("control_x", f"has {cx.size} values for {cy.size} units")
    if ty.size != tx.size:
        raise InvalidInput("treatment_x", f"has {tx.size} values for {ty.size} units")
    theta = cuped_theta(cy, cx, ty, tx)
    x_mean = float((cx.sum() + tx.sum()) / (cx.size + tx.size))
    adjusted_c = cy - theta * (cx - x_mean)
    adjusted_t = ty - theta * (tx - x_mean)
    raw = sum(float(np.sum((y - y.mean()) ** 2)) for y in (cy, ty))
    after = sum(float(np.sum((y - y.mean()) ** 2)) for y in (adjusted_c, adjusted_t))
    reduction = 1 - after / raw if raw > 0 else 0.0
    return CupedResult(theta, x_mean, reduction, adjusted_c, adjusted_t)


# ------------------------------------------------------------------------------------------------------
# Always-valid inference: the mixture sequential probability ratio test


def mixing_variance(per_unit_sd, mixing_sd: float = DEFAULT_MIXING_SD):
    """``tau^2 = (mixing_sd * per_unit_sd)^2``: the prior variance of the effect, on the estimate's scale.

    ``mixing_sd`` is the spread of plausible true effects in units of one unit's standard deviation
    (Cohen's d); 0.05 suits the small effects of online experiments. Validity never depends on it: any
    fixed ``tau^2 > 0`` gives an always-valid p-value; it only decides which effect sizes are detected
    soonest (the boundary is tightest when ``tau^2`` is about 8 times the estimate's variance at the
    sample size where detection matters most). Vectorised over ``per_unit_sd``.
    """
    if isinstance(mixing_sd, bool) or not isinstance(mixing_sd, int | float) or not mixing_sd > 0 or not math.isfinite(mixing_sd):
        raise InvalidInput("mixing_sd", f"must be a positive number, got {mixing_sd!r}")
    return (mixing_sd * np.asarray(per_unit_sd, dtype=np.float64)) ** 2


def msprt_log_likelihood_ratio(estimate, variance, tau2, null: float = 0.0):
    """log of the mixture likelihood ratio ``Lambda`` of an asymptotically normal estimate.

    The estimate ``theta_hat`` (a difference of means or of proportions, or a lift) is taken as
    ``N(theta, V)`` with ``V`` its variance at this look (``s_t^2/n_t + s_c^2/n_c``; ``p(1-p)/n`` terms for
    rates). Mixing the alternative over ``theta ~ N(null, tau^2)``:

        ``Lambda = N(theta_hat; null, V + tau^2) / N(theta_hat; null, V)
                 = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - null)^2 / (2 V (V + tau^2)))``

    (Johari et al. 2022, eq. for the normal mixture; with equal arms ``V = 2 sigma^2 / n`` this is their
    two-sample statistic). Under ``H0`` ``Lambda`` is a martingale with mean 1, so by Ville's inequality
    ``P(sup_n Lambda_n >= 1/alpha) <= alpha``. Vectorised (numpy broadcasting); ``nan`` where ``V`` is not
    positive and finite.
    """
    d = np.asarray(estimate, dtype=np.float64) - null
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    ok = (v > 0) & np.isfinite(v) & np.isfinite(d) & (t2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    return np.where(ok, out, np.nan)


def always_valid_pvalues(estimates, variances, tau2, null: float = 0.0):
    """Always-valid p-values over successive looks (the last axis): ``p_k = min(1, min_{j <= k} 1 / Lambda_j)``.

    ``P(exists k: p_k <= alpha) <= alpha`` under ``H0``, however often and whenever the results are looked
    at, so a team may check daily and stop when ``p_k < alpha``. ``p`` never increases. A look whose
    variance is undefined (too few units) carries no evidence: ``p`` stays at its previous value (1 before
    the first informative look). Vectorised: pass ``(n_simulations, n_looks)`` arrays to run many
    experiments at once.
    """
    log_lr = msprt_log_likelihood_ratio(estimates, variances, tau2, null)
    inverse = np.exp(-np.nan_to_num(log_lr, nan=0.0, posinf=np.inf, neginf=0.0))
    return np.minimum.accumulate(np.minimum(inverse, 1.0), axis=-1)


def confidence_sequence(estimate, variance, tau2, alpha: float = 0.05):
    """The always-valid ``1 - alpha`` interval at one look: ``{theta: Lambda(theta) < 1/alpha}``,

        ``theta_hat +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1 / alpha)))``.

    It covers the true effect at every look simultaneously with probability ``>= 1 - alpha`` (the running
    intersection over looks is valid too). Returns ``(low, high)`` arrays; ``nan`` where ``V`` is undefined.
    """
    alpha = _probability(alpha, "alpha")
    e = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    ok = (v > 0) & np.isfinite(v) & (t2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (np.log((v + t2) / v) + 2 * math.log(1 / alpha)))
    half = np.where(ok, half, np.nan)
    return e - half, e + half


@dataclass(frozen=True)
class SequentialResult(Record):
    """One look of the mSPRT: the estimate, its variance, ``tau2``, the always-valid p-value (including
    all earlier looks passed in) and the confidence sequence at ``1 - alpha``."""

    estimate: float
    variance: float
    tau2: float
    log_likelihood_ratio: float
    p_value: float
    cs_low: float
    cs_high: float
    alpha: float


def sequential_test(estimate: float, variance: float, tau2: float, alpha: float = 0.05,
                    previous_p_value: float = 1.0, null: float = 0.0) -> SequentialResult:
    """One look of :func:`always_valid_pvalues` and :func:`confidence_sequence` with plain floats:
    ``p = min(previous_p_value, 1 / Lambda)``."""
    log_lr = float(msprt_log_likelihood_ratio(estimate, variance, tau2, null))
    p_now = math.exp(-log_lr) if math.isfinite(log_lr) else 1.0
    low, high = confidence_sequence(estimate, variance, tau2, alpha)
    return SequentialResult(float(estimate), float(variance), float(tau2), log_lr,
                            float(min(previous_p_value, p_now, 1.0)), float(low), float(high), float(alpha))
