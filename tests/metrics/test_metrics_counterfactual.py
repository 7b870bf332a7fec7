"""Counterfactual (off-policy) estimates: simulation with a known true policy value, obp's estimators, hand cases.

The simulated bandit has a finite set of contexts drawn uniformly, so the target policy's true value is
an exact sum (``mean_x sum_a pi(a|x) q(x, a)``), computed here from the simulation's own parameters and
never by the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.counterfactual import (
    doubly_robust_estimate,
    effective_sample_size,
    ips_estimate,
    snips_estimate,
)
from tests.optional import reference

N_CONTEXTS, N_ACTIONS = 20, 5


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def bandit(seed: int = 0):
    """Expected rewards q, logging and target policies over a finite context set, and the true value."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.05, 0.95, size=(N_CONTEXTS, N_ACTIONS))
    logging = _softmax(rng.normal(size=(N_CONTEXTS, N_ACTIONS)))      # every action has p > 0
    target = _softmax(3.0 * q + rng.normal(scale=0.3, size=q.shape))  # prefers better actions
    true_value = float(np.mean(np.sum(target * q, axis=1)))
    return q, logging, target, true_value


def log(q, logging, target, n: int, rng: np.random.Generator, model_noise: float = 0.1):
    """n logged rounds: context, action ~ logging, Bernoulli reward, and a deliberately imperfect reward model."""
    x = rng.integers(0, N_CONTEXTS, size=n)
    u = rng.random(n)[:, None]
    a = np.minimum((u > np.cumsum(logging[x], axis=1)).sum(axis=1), N_ACTIONS - 1)
    r = (rng.random(n) < q[x, a]).astype(np.float64)
    qhat = np.clip(q + model_noise, 0, 1)  # biased model: DR must stay unbiased anyway
    return {
        "x": x, "a": a, "rewards": r,
        "propensities": logging[x, a],
        "target_probabilities": target[x, a],
        "reward_model_logged": qhat[x, a],
        "reward_model_target": np.sum(target[x] * qhat[x], axis=1),
        "action_dist": target[x], "qhat": qhat[x],
    }


def _ips(d, **kw):
    return ips_estimate(d["rewards"], d["propensities"], d["target_probabilities"], **kw)


def _snips(d, **kw):
    return snips_estimate(d["rewards"], d["propensities"], d["target_probabilities"], **kw)


def _dr(d, **kw):
    return doubly_robust_estimate(d["rewards"], d["propensities"], d["target_probabilities"],
                                  d["reward_model_logged"], d["reward_model_target"], **kw)


@pytest.mark.parametrize("estimator", [_ips, _snips, _dr], ids=["ips", "snips", "dr"])
def test_interval_coverage_near_nominal(estimator):
    """Over 400 independent logs, the 90% interval covers the true value about 90% of the time.

    With 400 repetitions the coverage's standard deviation is 1.5 points: [0.85, 0.95] is over 3 sd wide
    on each side, so a correct interval fails this with probability well under 1 in 1000, while an
    interval that ignores the weights' variance (coverage far below nominal) fails it."""
    q, logging, target, true_value = bandit(seed=1)
    rng = np.random.default_rng(2)
    covered, errors = 0, []
    for _ in range(400):
        est = estimator(log(q, logging, target, 1000, rng), confidence=0.90)
        covered += est.ci_low <= true_value <= est.ci_high
        errors.append(est.value - true_value)
    assert 0.85 <= covered / 400 <= 0.95
    # unbiased (SNIPS: bias O(1/n), far below this bound): mean error within 4 standard errors of zero
    assert abs(np.mean(errors)) < 4 * np.std(errors) / math.sqrt(len(errors))


def test_dr_has_less_variance_than_ips_with_a_good_model():
    q, logging, target, true_value = bandit(seed=3)
    rng = np.random.default_rng(4)
    ips_err, dr_err = [], []
    for _ in range(100):
        d = log(q, logging, target, 500, rng, model_noise=0.0)
        ips_err.append(_ips(d).value - true_value)
        dr_err.append(_dr(d).value - true_value)
    assert np.std(dr_err) < 0.8 * np.std(ips_err)


def test_matches_obp_estimators():
    """Values equal those of obp (Open Bandit Pipeline) 0.4.x, the reference implementation."""
    ope = reference("obp.ope")
    q, logging, target, _ = bandit(seed=5)
    d = log(q, logging, target, 3000, np.random.default_rng(6))
    # obp takes action distributions (n, n_actions, len_list) and reward-model outputs of the same shape
    action_dist = d["action_dist"][:, :, None]
    qhat = d["qhat"][:, :, None]
    common = {"reward": d["rewards"], "action": d["a"], "pscore": d["propensities"], "action_dist": action_dist}
    assert _ips(d).value == pytest.approx(ope.InverseProbabilityWeighting().estimate_policy_value(**common), rel=1e-12)
    assert _snips(d).value == pytest.approx(
        ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common), rel=1e-12)
    assert _dr(d).value == pytest.approx(
        ope.DoublyRobust().estimate_policy_value(**common, estimated_rewards_by_reg_model=qhat), rel=1e-12)
    # obp's interval is a bootstrap of the same per-row terms: it and the normal interval agree closely
    boot = ope.InverseProbabilityWeighting().estimate_interval(**common, n_bootstrap_samples=2000, random_state=0)
    ours = _ips(d)
    width = ours.ci_high - ours.ci_low
    assert abs(boot["95.0% CI (lower)"] - ours.ci_low) < 0.1 * width
    assert abs(boot["95.0% CI (upper)"] - ours.ci_high) < 0.1 * width


def test_hand_computed_case():
    # weights 2, 0, 2, 2; terms w*r = 2, 0, 2, 0
    est = ips_estimate([1, 0, 1, 0], [0.5, 0.5, 0.25, 0.5], [1.0, 0.0, 0.5, 1.0], confidence=0.95)
    assert est.value == 1.0
    assert est.std_error == pytest.approx(math.sqrt(4 / 3) / 2)  # sample sd of (2,0,2,0) is sqrt(4/3)
    assert est.ci_low == pytest.approx(1.0 - 1.959963984540054 * est.std_error)
    assert est.ess == pytest.approx(36 / 12)
    assert (est.n, est.max_weight, est.estimator) == (4, 2.0, "ips")
    sn = snips_estimate([1, 0, 1, 0], [0.5, 0.5, 0.25, 0.5], [1.0, 0.0, 0.5, 1.0])
    assert sn.value == pytest.approx(4 / 6)
    # delta method: sum w^2 (r - V)^2 / (sum w)^2 = 4*(1/9 + 1/9 + 4/9) / 36
    assert sn.std_error == pytest.approx(math.sqrt(4 * (6 / 9)) / 6)
    dr = doubly_robust_estimate([1, 0], [0.5, 0.5], [1.0, 0.0], [1.0, 0.0], [1.0, 0.5])
    assert dr.value == 0.75


def test_edge_cases():
    # the target policy never takes a logged action: IPS says 0 with no effective sample, SNIPS is undefined
    ips = ips_estimate([1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0])
    assert (ips.value, ips.ess) == (0.0, 0.0)
    sn = snips_estimate([1, 1, 0], [0.5, 0.5, 0.5], [0, 0, 0])
    assert math.isnan(sn.value) and sn.ess == 0.0
    # on-policy (target = logging): weights 1, ESS = n, IPS = SNIPS = the mean reward
    r = [1, 0, 1, 1]
    on = ips_estimate(r, [0.3, 0.6, 0.3, 1.0], [0.3, 0.6, 0.3, 1.0])
    assert on.value == pytest.approx(0.75) and on.ess == pytest.approx(4)
    assert snips_estimate(r, [0.3, 0.6, 0.3, 1.0], [0.3, 0.6, 0.3, 1.0]).value == pytest.approx(0.75)
    assert effective_sample_size([0, 0, 5]) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"propensities": [0.5, 0.0, 0.5]}, "propensities", "row 2"),
        ({"propensities": [0.5, 1.5, 0.5]}, "propensities", "outside (0, 1]"),
        ({"propensities": [0.5, -0.1, 0.5]}, "propensities", "row 2"),
        ({"target_probabilities": [0.5, 1.2, 0.5]}, "target_probabilities", "outside [0, 1]"),
        ({"rewards": [1.0, float("nan"), 0.0]}, "rewards", "row 2"),
        ({"propensities": [0.5, float("nan"), 0.5]}, "propensities", "not a finite number"),
        ({"rewards": [1.0, 0.0]}, "propensities", "has 3 rows but rewards has 2"),
        ({"target_probabilities": [0.5, 0.5]}, "target_probabilities", "has 2 rows"),
        ({"rewards": [[1.0, 0.0, 1.0]]}, "rewards", "one-dimensional"),
        ({"rewards": ["a", "b", "c"]}, "rewards", "must be numbers"),
        ({"confidence": 1.0}, "confidence", "strictly between 0 and 1"),
    ],
)
def test_bad_input_is_refused_naming_the_field(kwargs, field, problem):
    args = {"rewards": [1.0, 0.0, 1.0], "propensities": [0.5, 0.5, 0.5], "target_probabilities": [0.5, 0.5, 0.5]}
    args.update(kwargs)
    for fn in (ips_estimate, snips_estimate):
        with pytest.raises(InvalidInput) as error:
            fn(**args)
        assert error.value.field == field and problem in error.value.problem


def test_dr_refuses_bad_reward_model_and_single_row():
    with pytest.raises(InvalidInput) as error:
        doubly_robust_estimate([1, 0], [0.5, 0.5], [1, 0], [0.5], [0.5, 0.5])
    assert error.value.field == "reward_model_logged"
    with pytest.raises(InvalidInput) as error:
        doubly_robust_estimate([1, 0], [0.5, 0.5], [1, 0], [0.5, 0.5], [0.5, float("inf")])
    assert error.value.field == "reward_model_target"
    with pytest.raises(InvalidInput) as error:
        ips_estimate([1], [0.5], [1])
    assert error.value.field == "rewards" and "at least 2 rows" in error.value.problem


def test_evalp_score_counterfactual(tmp_path, capsys):
    import json

    import pandas as pd

    from eval_platform.cli import main as cli

    frame = pd.DataFrame({"r": [1, 0, 1, 0], "p": [0.5, 0.5, 0.25, 0.5], "t": [1.0, 0.0, 0.5, 1.0],
                          "ql": [0.5] * 4, "qt": [0.6] * 4})
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    argv = ["score", "counterfactual", "--data", str(path), "--reward", "r", "--propensity", "p",
            "--target-probability", "t", "--reward-model-logged", "ql", "--reward-model-target", "qt", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ips"]["value"] == 1.0 and out["snips"]["value"] == pytest.approx(4 / 6)
    # DR terms: 0.6 + w (r - 0.5) = 1.6, 0.6, 1.6, -0.4
    assert out["dr"]["value"] == pytest.approx(0.85) and out["dr"]["n"] == 4
    frame.loc[1, "p"] = 0.0
    frame.to_csv(path, index=False)
    assert cli.main(argv) == 2
    assert "propensities: row 2: 0.0 is outside (0, 1]" in capsys.readouterr().err
