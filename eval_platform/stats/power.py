"""Power of a paired comparison: the minimum detectable effect, the examples needed, the power; slice corrections.

A gate rule compares a candidate with its baseline on the same ``n`` examples. What a release manager needs
beside the verdict is whether the run could have seen the difference that matters:

* the **minimum detectable effect** (MDE): the smallest true difference a one-sided test at level ``alpha``
  detects with probability ``power`` at the run's ``n``;
* the **examples needed** to detect the rule's margin (a non-inferiority tolerance, a ``min_delta``) at that
  power;
* the **power** the run has against that margin.

Notation: ``d`` the paired differences (candidate minus baseline per example), ``sd`` their standard
deviation, ``se = sd / sqrt(n)`` the standard error of the mean difference, ``z_q`` the standard normal
quantile, ``t_{k}`` Student's t with ``k`` degrees of freedom. One-sided (``alternative="larger"``) at level
``alpha``; two-sided splits ``alpha`` over both tails and counts the (tiny) power of the wrong tail too,
exactly as ``statsmodels.stats.power`` does, so the figures equal its ``solve_power`` results:

* normal approximation (``NormalIndPower`` with ``ratio=0``, i.e. ``zt_ind_solve_power``; what the gate uses,
  from the bootstrap standard error, since most metrics are not means of per-example values):
  ``power(delta) = 1 - Phi(z_{1-alpha} - delta / se)`` (one-sided);
  ``MDE = (z_{1-alpha} + z_{power}) * se``; ``n_needed = ((z_{1-alpha} + z_{power}) * sd / margin)^2``;
* paired t test (``TTestPower``, i.e. ``tt_solve_power``), for a mean-type metric with the observed ``sd``:
  ``power(delta) = 1 - F_{t, n-1, nc}(t_{1-alpha, n-1})`` with noncentrality ``nc = delta * sqrt(n) / sd``;
  MDE and ``n_needed`` solve ``power = target`` for ``delta`` and ``n``.

A proportion metric (accuracy-like) is a mean of 0/1 correctness: its paired differences take the values
-1, 0 and 1, with ``sd^2 = p10 + p01 - (p10 - p01)^2`` from the discordant fractions (:func:`paired_proportion_sd`),
and the normal approximation applies.

Edge cases: ``n < 2`` has no standard deviation (``InvalidInput``); zero variability (``sd = 0`` or
``se = 0``) detects any difference: MDE 0, power 1, ``n_needed`` 2 (the least any test needs); a zero
margin can never be detected: ``n_needed`` is ``inf`` and the power at it is ``alpha``. ``n_needed`` is
reported as the real-valued solution rounded up to a whole number of examples.

Multiple comparisons (:func:`adjust_p_values`): Holm's step-down (family-wise error) and Benjamini-Hochberg's
step-up (false discovery rate) adjusted p-values, equal to ``statsmodels.stats.multitest.multipletests``
with ``method="holm"`` / ``"fdr_bh"``.

Example::

    >>> round(normal_mde(se=0.01, alpha=0.025, power=0.8), 6)
    0.028016
    >>> normal_n_needed(sd=0.3, margin=0.01, alpha=0.025, power=0.8)
    7064.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy.stats import norm
from scipy.stats import t as student_t

from eval_platform.core.errors import InvalidInput

ALTERNATIVES = ("larger", "two-sided")
CORRECTIONS = ("none", "holm", "bh")


def _check_level(alpha: float, power: float) -> None:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise InvalidInput("alpha", f"must be in (0, 1), got {alpha!r}")
    if not (isinstance(power, int | float) and alpha < power < 1):
        raise InvalidInput("power", f"must be in (alpha, 1) = ({alpha:g}, 1), got {power!r}")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise InvalidInput("alternative", f"must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")


def _check_spread(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInput(name, f"must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise InvalidInput("n", f"needs at least 2 paired examples (a standard deviation), got {n!r}")
    return int(n)


def _crit(alpha: float, alternative: str) -> float:
    return float(norm.isf(alpha / 2 if alternative == "two-sided" else alpha))


def normal_power(effect: float, se: float, alpha: float, alternative: str = "larger") -> float:
    """Power of the one-sample z test against a true difference ``effect`` when the mean difference has
    standard error ``se``: ``1 - Phi(z_{1-alpha} - effect/se)`` one-sided; two-sided adds the lower tail
    ``Phi(-z_{1-alpha/2} - effect/se)``. ``se = 0``: 1 for a nonzero effect, ``alpha`` for a zero one."""
    _check_alternative(alternative)
    se = _check_spread("se", se)
    if se == 0:
        return 1.0 if effect != 0 else alpha
    crit, shift = _crit(alpha, alternative), effect / se
    result = float(norm.sf(crit - shift))
    if alternative == "two-sided":
        result += float(norm.cdf(-crit - shift))
    return result


def normal_mde(se: float, alpha: float, power: float = 0.8, alternative: str = "larger") -> float:
    """Minimum detectable effect of the z test: ``(z_{1-alpha} + z_{power}) * se`` one-sided; two-sided, the
    ``delta`` with :func:`normal_power` equal to ``power`` (both tails), as ``zt_ind_solve_power(ratio=0)``.
    ``se = 0``: 0."""
    _check_level(alpha, power)
    _check_alternative(alternative)
    se = _check_spread("se", se)
    if se == 0:
        return 0.0
    one_sided = (_crit(alpha, alternative) + float(norm.ppf(power))) * se
    if alternative == "larger":
        return one_sided
    return float(optimize.brentq(lambda d: normal_power(d, se, alpha, alternative) - power, 0.0, one_sided, xtol=1e-14 * se))


def normal_n_needed(sd: float, margin: float, alpha: float, power: float = 0.8, alternative: str = "larger") -> float:
    """Examples needed for the z test to detect a true difference ``margin`` with probability ``power``, per-example
    standard deviation ``sd``: ``ceil(((z_{1-alpha} + z_{power}) * sd / margin)^2)`` one-sided (two-sided: the
    root of the two-tailed power). Rounded up; ``sd = 0``: 2; ``margin = 0``: ``inf``."""
    exact = _normal_n_exact(sd, margin, alpha, power, alternative)
    return exact if math.isinf(exact) else float(max(2, math.ceil(exact - 1e-9)))


def _n_inputs(sd: float, margin: float, alpha: float, power: float, alternative: str) -> tuple[float, float, float | None]:
    """The inputs of an examples-needed solver, checked: ``(sd, |margin|, answer)``, where ``answer`` is set when
    no solving is needed (a zero margin is never detectable: inf; no spread: the minimum of 2 pairs)."""
    _check_level(alpha, power)
    _check_alternative(alternative)
    sd = _check_spread("sd", sd)
    margin = abs(_finite("margin", margin))
    if margin == 0:
        return sd, margin, math.inf
    if sd == 0:
        return sd, margin, 2.0
    return sd, margin, None


def _normal_n_exact(sd: float, margin: float, alpha: float, power: float, alternative: str) -> float:
    sd, margin, trivial = _n_inputs(sd, margin, alpha, power, alternative)
    if trivial is not None:
        return trivial
    one_sided = ((_crit(alpha, alternative) + float(norm.ppf(power))) * sd / margin) ** 2
    if alternative == "larger":
        return one_sided
    return float(optimize.brentq(lambda n: normal_power(margin, sd / math.sqrt(n), alpha, alternative) - power,
                                 one_sided * 0.5, one_sided, xtol=1e-12 * one_sided))


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(name, f"must be a finite number, got {value!r}")
    return float(value)


def t_power(effect: float, sd: float, n: int, alpha: float, alternative: str = "larger") -> float:
    """Power of the paired (one-sample) t test with ``n`` pairs against a true mean difference ``effect``:
    ``1 - F_{t, n-1, nc}(t_{1-alpha, n-1})``, ``nc = effect * sqrt(n) / sd`` (two-sided: both tails), as
    ``TTestPower().power``. ``sd = 0``: 1 for a nonzero effect, ``alpha`` for a zero one."""
    _check_alternative(alternative)
    n, sd = _check_n(n), _check_spread("sd", sd)
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    return _t_power_real(effect, sd, n, alpha, alternative)


def t_mde(sd: float, n: int, alpha: float, power: float = 0.8, alternative: str = "larger") -> float:
    """Minimum detectable mean difference of the paired t test: the ``delta`` with :func:`t_power` equal to
    ``power`` (``tt_solve_power(nobs=n, ...) * sd``). ``sd = 0``: 0."""
    _check_level(alpha, power)
    n, sd = _check_n(n), _check_spread("sd", sd)
    _check_alternative(alternative)
    if sd == 0:
        return 0.0
    crit = float(student_t.isf(alpha / 2 if alternative == "two-sided" else alpha, n - 1))
    upper = (crit + float(norm.ppf(power))) * sd / math.sqrt(n)
    while t_power(upper, sd, n, alpha, alternative) < power:  # the noncentral t's spread exceeds 1: widen the bracket
        upper *= 2
    return float(optimize.brentq(lambda d: t_power(d, sd, n, alpha, alternative) - power, 0.0, upper, xtol=1e-14 * sd))


def t_n_needed(sd: float, margin: float, alpha: float, power: float = 0.8, alternative: str = "larger") -> float:
    """Pairs the paired t test needs to detect a true mean difference ``margin`` with probability ``power``:
    the real ``n`` solving :func:`t_power` = ``power`` (``tt_solve_power(effect_size=margin/sd)``), rounded up.
    ``sd = 0``: 2; ``margin = 0``: ``inf``."""
    exact = _t_n_exact(sd, margin, alpha, power, alternative)
    return exact if math.isinf(exact) else float(max(2, math.ceil(exact - 1e-9)))


def _t_power_real(effect: float, sd: float, n: float, alpha: float, alternative: str) -> float:
    """:func:`t_power` for a real-valued ``n`` (what the root finder walks), by ``scipy.special.nctdtr`` (the
    noncentral t's CDF statsmodels uses: scipy.stats.nct returns NaN far in its tails)."""
    dof, nc = n - 1, effect * math.sqrt(n) / sd
    crit = float(student_t.isf(alpha / 2 if alternative == "two-sided" else alpha, dof))
    result = 1 - float(special.nctdtr(dof, nc, crit))
    if alternative == "larger":
        return result
    wrong_tail = float(special.nctdtr(dof, nc, -crit))
    return result + (wrong_tail if math.isfinite(wrong_tail) else 0.0)  # NaN: the tail underflowed (nc far above -crit)


def _t_n_exact(sd: float, margin: float, alpha: float, power: float, alternative: str) -> float:
    """The real ``n >= 2`` solving the t test's power equation (2 when two pairs already suffice)."""
    sd, margin, trivial = _n_inputs(sd, margin, alpha, power, alternative)
    if trivial is not None:
        return trivial
    low = 2.0  # a t test needs one degree of freedom
    if _t_power_real(margin, sd, low, alpha, alternative) >= power:
        return low
    high = max(4.0, 2 * _normal_n_exact(sd, margin, alpha, power, alternative) + 10)
    return float(optimize.brentq(lambda n: _t_power_real(margin, sd, n, alpha, alternative) - power, low, high,
                                 xtol=1e-10, rtol=1e-14))


def paired_proportion_sd(only_candidate: int, only_baseline: int, n: int) -> float:
    """Standard deviation of the per-example differences of a paired 0/1 metric (accuracy): with
    ``p10 = only_candidate / n`` and ``p01 = only_baseline / n`` the discordant fractions,
    ``sd = sqrt(p10 + p01 - (p10 - p01)^2)`` (population form, as the normal approximation uses)."""
    n = _check_n(n)
    for name, count in (("only_candidate", only_candidate), ("only_baseline", only_baseline)):
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise InvalidInput(name, f"must be a count >= 0, got {count!r}")
    if only_candidate + only_baseline > n:
        raise InvalidInput("n", f"discordant pairs {only_candidate + only_baseline} exceed the {n} examples")
    p10, p01 = only_candidate / n, only_baseline / n
    return math.sqrt(max(0.0, p10 + p01 - (p10 - p01) ** 2))


def se_from_interval(low: float, high: float, confidence: float) -> float:
    """The standard error a two-sided ``confidence`` interval implies under normality:
    ``(high - low) / (2 z_{(1+confidence)/2})`` (for a bootstrap percentile interval, its normal-equivalent SE)."""
    if not (isinstance(confidence, int | float) and 0 < confidence < 1):
        raise InvalidInput("confidence", f"must be in (0, 1), got {confidence!r}")
    low, high = _finite("ci_low", low), _finite("ci_high", high)
    if high < low:
        raise InvalidInput("ci_high", f"{high} is below ci_low {low}")
    return (high - low) / (2 * float(norm.ppf(0.5 + confidence / 2)))


@dataclass(frozen=True)
class PowerReport:
    """A rule's power figures, one-sided at ``alpha`` (the suite's interval at ``confidence`` = two one-sided
    tests at ``alpha = (1 - confidence) / 2``), by the normal approximation from the comparison's standard error.

    ``mde``: smallest true difference (in the metric's units, better-is-positive) detected with probability
    ``target_power`` at the run's ``n``; ``margin``: the rule's margin; ``n_needed``: examples needed to detect
    ``margin`` at ``target_power`` (``None`` when the margin is 0: never); ``power``: the run's power against
    ``margin``; ``adequate``: ``power >= target_power``."""

    n: int
    alpha: float
    target_power: float
    standard_error: float
    mde: float
    margin: float
    n_needed: int | None
    power: float
    method: str = "normal approximation from the bootstrap interval's standard error"

    @property
    def adequate(self) -> bool:
        return self.power >= self.target_power

    def to_record(self) -> dict:
        return {"n": self.n, "alpha": self.alpha, "target_power": self.target_power,
                "standard_error": self.standard_error, "mde": self.mde, "margin": self.margin,
                "n_needed": self.n_needed, "power": self.power, "adequate": self.adequate, "method": self.method}


def comparison_power(se: float, n: int, margin: float, alpha: float, target_power: float = 0.8) -> PowerReport:
    """The power figures of a paired comparison with standard error ``se`` over ``n`` examples against
    ``margin``: ``sd = se * sqrt(n)`` (the standard error of a mean shrinks as ``1/sqrt(n)``, and a bootstrap
    standard error of any smooth metric does too), then :func:`normal_mde`, :func:`normal_n_needed`,
    :func:`normal_power`, one-sided."""
    n = _check_n(n)
    se = _check_spread("se", se)
    margin = abs(_finite("margin", margin))
    n_needed = normal_n_needed(se * math.sqrt(n), margin, alpha, target_power)
    return PowerReport(n=n, alpha=alpha, target_power=target_power, standard_error=se,
                       mde=normal_mde(se, alpha, target_power), margin=margin,
                       n_needed=None if math.isinf(n_needed) else int(n_needed),
                       power=normal_power(margin, se, alpha) if margin else alpha)


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Adjusted p-values across a family of tests.

    * ``holm`` (family-wise error): sorted ascending ``p_(1) <= ... <= p_(m)``,
      ``q_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``;
    * ``bh`` (Benjamini-Hochberg, false discovery rate): ``q_(i) = min(1, min_{j >= i} m p_(j) / j)``;
    * ``none``: unchanged.

    A hypothesis is rejected at level ``alpha`` when its adjusted p-value is ``<= alpha`` (as ``multipletests``)."""
    if method not in CORRECTIONS:
        raise InvalidInput("multiple_comparisons", f"must be one of {', '.join(CORRECTIONS)}, got {method!r}")
    values = np.asarray([_check_probability(i, p) for i, p in enumerate(p_values)], dtype=float)
    m = len(values)
    if method == "none" or m == 0:
        return values.tolist()
    order = np.argsort(values, kind="stable")
    ranked = values[order]
    if method == "holm":
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adjusted = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def _check_probability(index: int, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not (0 <= p <= 1):
        raise InvalidInput(f"p_values[{index}]", f"must be a probability in [0, 1], got {p!r}")
    return float(p)


def regression_p_value(better_delta: float, se: float, margin: float) -> float:
    """One-sided p-value that a slice regressed beyond ``margin`` (H0: true better-is-positive difference
    ``>= -margin``; H1: ``< -margin``), normal approximation: ``Phi((better_delta + margin) / se)``.
    ``se = 0``: 0 when the estimate is below ``-margin``, else 1."""
    se = _check_spread("se", se)
    shifted = _finite("delta", better_delta) + abs(_finite("margin", margin))
    if se == 0:
        return 0.0 if shifted < 0 else 1.0
    return float(norm.cdf(shifted / se))
