"""Counterfactual (off-policy) evaluation of a new policy from logged bandit or recommender feedback.

A logging policy ``pi_0`` showed action ``a_i`` in context ``x_i`` with probability ``p_i = pi_0(a_i | x_i)``
(its *propensity*) and observed reward ``r_i``. A new (target) policy ``pi`` would have shown ``a_i`` with
probability ``pi_i = pi(a_i | x_i)``. Its value ``V(pi) = E_x E_{a ~ pi(.|x)} [r]`` is estimated from the
log alone, without deploying it, by re-weighting each logged reward with ``w_i = pi_i / p_i``:

* :func:`ips_estimate`, inverse propensity scoring: ``V = (1/n) sum_i w_i r_i``. Unbiased when every action
  the target policy may take had ``p > 0`` under the logging policy; its variance grows with the weights.
* :func:`snips_estimate`, self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``. Slightly biased, much
  less variance, and invariant to adding a constant to the reward.
* :func:`doubly_robust_estimate`: ``V = (1/n) sum_i [ qhat_pi(x_i) + w_i (r_i - qhat(x_i, a_i)) ]`` with a
  reward model ``qhat`` fitted elsewhere (``qhat_pi(x) = sum_a pi(a|x) qhat(x, a)``, the direct method's
  value for row ``i``). Unbiased when the propensities are right *or* the reward model is; usually the
  smallest variance of the three.

Every estimate comes with a normal (central-limit) confidence interval, its standard error, and Kish's
**effective sample size** of the weights, ``ESS = (sum w)^2 / sum w^2``: the number of equally weighted
rows the estimate is worth. An ESS far below ``n`` means a few rows carry the estimate and the interval is
not to be trusted (the normal interval assumes a mean of many comparable terms); gate on it.

Inputs are validated before anything is computed: propensities must lie in ``(0, 1]``, target
probabilities in ``[0, 1]``, rewards and reward-model outputs must be finite, every array 1-D and of the
same length, at least two rows (one row has no standard error). A violation raises
:class:`~eval_platform.core.errors.InvalidInput` naming the field and the first offending row (counted from 1).

These are library functions, not catalog metrics: the catalog's metrics are computed per eval run from a
dataset joined with a model's predictions, and a bandit log (one logged action, its propensity and reward
per row, and the target policy's probability of that action) is a different kind of input. ``evalp score
counterfactual`` scores a log file directly.

Example::

    >>> from eval_platform.metrics.counterfactual import ips_estimate
    >>> est = ips_estimate(rewards=[1, 0, 1, 0], propensities=[0.5, 0.5, 0.25, 0.5],
    ...                    target_probabilities=[1.0, 0.0, 0.5, 1.0])
    >>> round(est.value, 3), round(est.ess, 3), est.n
    (1.0, 3.0, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from eval_platform.core.arrays import finite_vector
from eval_platform.core.errors import InvalidInput

__all__ = [
    "PolicyValueEstimate",
    "ips_estimate",
    "snips_estimate",
    "doubly_robust_estimate",
    "effective_sample_size",
]

Estimator = Literal["ips", "snips", "dr"]


@dataclass(frozen=True)
class PolicyValueEstimate:
    """An estimate of a target policy's value with its ``confidence`` interval.

    ``ess`` is Kish's effective sample size of the importance weights, ``n`` the number of logged rows,
    ``max_weight`` the largest weight (a single huge weight is the usual cause of a useless estimate).
    """

    estimator: Estimator
    value: float
    ci_low: float
    ci_high: float
    std_error: float
    ess: float
    n: int
    max_weight: float
    confidence: float



def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _weights(rewards, propensities, target_probabilities, **more) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    r = finite_vector(rewards, "rewards")
    p = finite_vector(propensities, "propensities")
    t = finite_vector(target_probabilities, "target_probabilities")
    extra = {name: finite_vector(values, name) for name, values in more.items()}
    for name, array in (("propensities", p), ("target_probabilities", t), *extra.items()):
        if len(array) != len(r):
            raise InvalidInput(name, f"has {len(array)} rows but rewards has {len(r)}")
    if len(r) < 2:
        raise InvalidInput("rewards", f"needs at least 2 rows for an interval, got {len(r)}")
    bad = (p <= 0) | (p > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("propensities", f"row {row + 1}: {float(p[row])!r} is outside (0, 1]")
    bad = (t < 0) | (t > 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("target_probabilities", f"row {row + 1}: {float(t[row])!r} is outside [0, 1]")
    return r, t / p, extra


def effective_sample_size(weights: Any) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of non-negative weights.

    Equals ``n`` for equal weights and ``1`` when one row carries all the weight; ``0.0`` when every
    weight is zero (the target policy never takes a logged action: the log says nothing about it)."""
    w = finite_vector(weights, "weights")
    if (w < 0).any():
        row = int(np.flatnonzero(w < 0)[0])
        raise InvalidInput("weights", f"row {row + 1}: {float(w[row])!r} is negative")
    square_sum = float(np.dot(w, w))
    return 0.0 if square_sum == 0 else float(w.sum()) ** 2 / square_sum


def _estimate(estimator: Estimator, value: float, std_error: float, w: np.ndarray, confidence: float) -> PolicyValueEstimate:
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    half = z * std_error
    return PolicyValueEstimate(
        estimator=estimator,
        value=float(value),
        ci_low=float(value - half),
        ci_high=float(value + half),
        std_error=float(std_error),
        ess=effective_sample_size(w),
        n=len(w),
        max_weight=float(w.max()),
        confidence=confidence,
    )


def _mean_with_error(terms: np.ndarray) -> tuple[float, float]:
    # the sample standard deviation (ddof=1) of the per-row terms over sqrt(n): the CLT standard error
    return float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(len(terms)))


def ips_estimate(rewards, propensities, target_probabilities, *, confidence: float = 0.95) -> PolicyValueEstimate:
    """Inverse propensity scoring: ``V = (1/n) sum_i (pi_i / p_i) r_i``.

    ``rewards[i]`` is the logged reward, ``propensities[i]`` the logging policy's probability of the logged
    action (in ``(0, 1]``), ``target_probabilities[i]`` the target policy's probability of that same action
    (in ``[0, 1]``). The interval is ``V +- z * s / sqrt(n)``, ``s`` the sample standard deviation of the
    terms ``w_i r_i``. Edge cases: all weights zero gives ``V = 0`` with ``ess = 0`` (nothing is known);
    a constant term gives a zero-width interval.

    >>> ips_estimate([1, 0], [0.5, 0.5], [1.0, 0.0]).value
    1.0
    """
    confidence = _check_confidence(confidence)
    r, w, _ = _weights(rewards, propensities, target_probabilities)
    value, std_error = _mean_with_error(w * r)
    return _estimate("ips", value, std_error, w, confidence)


def snips_estimate(rewards, propensities, target_probabilities, *, confidence: float = 0.95) -> PolicyValueEstimate:
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i`` with ``w_i = pi_i / p_i``.

    A ratio of means, so its standard error is the delta method's,
    ``se^2 = sum_i w_i^2 (r_i - V)^2 / (sum_i w_i)^2``. Edge case: all weights zero (the target policy
    never takes a logged action) leaves ``V`` undefined: every field but ``n`` and ``ess`` (0) is ``nan``.

    >>> snips_estimate([1, 0], [0.5, 0.5], [1.0, 0.0]).value
    1.0
    """
    confidence = _check_confidence(confidence)
    r, w, _ = _weights(rewards, propensities, target_probabilities)
    total = float(w.sum())
    if total == 0:
        nan = float("nan")
        return PolicyValueEstimate("snips", nan, nan, nan, nan, 0.0, len(w), 0.0, confidence)
    value = float(np.dot(w, r)) / total
    std_error = math.sqrt(float(np.sum(w**2 * (r - value) ** 2))) / total
    return _estimate("snips", value, std_error, w, confidence)


def doubly_robust_estimate(rewards, propensities, target_probabilities, reward_model_logged, reward_model_target,
                           *, confidence: float = 0.95) -> PolicyValueEstimate:
    """Doubly robust: ``V = (1/n) sum_i [ qhat_pi(x_i) + w_i (r_i - qhat(x_i, a_i)) ]``.

    ``reward_model_logged[i]`` is the reward model's prediction for the logged action, ``qhat(x_i, a_i)``;
    ``reward_model_target[i]`` is its expectation under the target policy, ``sum_a pi(a|x_i) qhat(x_i, a)``.
    With a perfect reward model the correction terms vanish in expectation; with right propensities the
    model's errors cancel. Interval: ``V +- z * s / sqrt(n)`` over the per-row terms.

    >>> doubly_robust_estimate([1, 0], [0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.5]).value
    0.75
    """
    confidence = _check_confidence(confidence)
    r, w, extra = _weights(rewards, propensities, target_probabilities,
                           reward_model_logged=reward_model_logged, reward_model_target=reward_model_target)
    terms = extra["reward_model_target"] + w * (r - extra["reward_model_logged"])
    value, std_error = _mean_with_error(terms)
    return _estimate("dr", value, std_error, w, confidence)
