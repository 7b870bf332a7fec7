"""Power figures against statsmodels.stats.power, by simulation, and the slice corrections against multipletests."""

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestPower

from eval_platform.core.errors import InvalidInput
from eval_platform.stats import power

CASES = [(50, 0.3, 0.05, 0.8), (400, 1.2, 0.025, 0.9), (12, 0.5, 0.01, 0.7), (5, 2.0, 0.05, 0.95), (3000, 0.05, 0.001, 0.8)]
ALTERNATIVES = ["larger", "two-sided"]


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(("n", "sd", "alpha", "target"), CASES)
def test_mde_matches_statsmodels(n, sd, alpha, target, alternative):
    t_mde = power.t_mde(sd, n, alpha, target, alternative)
    z_mde = power.normal_mde(sd / math.sqrt(n), alpha, target, alternative)
    # statsmodels' power at our MDE is the target to machine precision ...
    assert TTestPower().power(t_mde / sd, n, alpha, alternative=alternative) == pytest.approx(target, abs=1e-9)
    assert NormalIndPower().power(z_mde / sd, n, alpha, ratio=0, alternative=alternative) == pytest.approx(target, abs=1e-9)
    # ... and its solver lands on the same effect within its own tolerance (up to 1e-5 relative: it stops
    # early, while ours solves statsmodels' power equation to 1e-9, checked above)
    assert t_mde == pytest.approx(TTestPower().solve_power(nobs=n, alpha=alpha, power=target, alternative=alternative) * sd,
                                  rel=2e-5)
    assert z_mde == pytest.approx(
        NormalIndPower().solve_power(nobs1=n, alpha=alpha, power=target, ratio=0, alternative=alternative) * sd, rel=2e-5)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(("sd", "margin", "alpha", "target"),
                         [(0.3, 0.2, 0.05, 0.8), (0.3, 0.05, 0.05, 0.8), (1.2, 0.2, 0.025, 0.9), (0.5, 0.05, 0.01, 0.7),
                          (2.0, 0.2, 0.05, 0.95)])
def test_n_needed_matches_statsmodels(sd, margin, alpha, target, alternative):
    t_ref = TTestPower().solve_power(effect_size=margin / sd, alpha=alpha, power=target, alternative=alternative)
    z_ref = NormalIndPower().solve_power(effect_size=margin / sd, alpha=alpha, power=target, ratio=0, alternative=alternative)
    assert power._t_n_exact(sd, margin, alpha, target, alternative) == pytest.approx(t_ref, rel=1e-6)
    assert power._normal_n_exact(sd, margin, alpha, target, alternative) == pytest.approx(z_ref, rel=1e-6)
    # the reported whole number is the least n reaching the target
    n_t = int(power.t_n_needed(sd, margin, alpha, target, alternative))
    assert n_t == math.ceil(t_ref - 1e-6)
    assert TTestPower().power(margin / sd, n_t, alpha, alternative=alternative) >= target
    assert TTestPower().power(margin / sd, n_t - 1, alpha, alternative=alternative) < target
    assert power.normal_n_needed(sd, margin, alpha, target, alternative) == math.ceil(z_ref - 1e-6)


def test_hand_computed_one_sided_figures():
    # (z_0.975 + z_0.8) = 1.959964 + 0.841621 = 2.801585
    assert power.normal_mde(0.01, 0.025, 0.8) == pytest.approx(0.02801585, abs=1e-8)
    assert power.normal_n_needed(0.3, 0.01, 0.025, 0.8) == math.ceil((2.8015852 * 0.3 / 0.01) ** 2)  # 7064
    assert power.normal_power(0.02801585218, 0.01, 0.025) == pytest.approx(0.8, abs=1e-9)


def test_paired_proportion_sd_is_the_sd_of_the_differences():
    diffs = np.array([1] * 7 + [-1] * 3 + [0] * 40)  # 7 only-candidate, 3 only-baseline of 50
    assert power.paired_proportion_sd(7, 3, 50) == pytest.approx(diffs.std(ddof=0), abs=1e-12)


def test_at_n_needed_the_test_rejects_with_the_target_power():
    """Simulated paired 0/1 correctness (accuracy): at the normal approximation's n_needed for the true
    difference, a one-sided z test at alpha rejects in about `target` of the trials."""
    rng = np.random.default_rng(7)
    p10, p01, alpha, target = 0.12, 0.06, 0.025, 0.8  # true difference 0.06
    sd = math.sqrt(p10 + p01 - (p10 - p01) ** 2)
    n = int(power.normal_n_needed(sd, p10 - p01, alpha, target))
    trials = 4000
    cells = rng.multinomial(n, [p10, p01, 1 - p10 - p01], size=trials)
    only_cand, only_base = cells[:, 0], cells[:, 1]
    mean = (only_cand - only_base) / n
    sd_hat = np.sqrt((only_cand + only_base) / n - mean**2)
    rejected = mean / (sd_hat / math.sqrt(n)) > 1.959963984540054
    assert rejected.mean() == pytest.approx(target, abs=0.05)
    # and the paired t test at its own n_needed, on normal differences
    sd, margin = 1.0, 0.4
    n_t = int(power.t_n_needed(sd, margin, 0.05, 0.8))
    samples = rng.normal(margin, sd, size=(trials, n_t))
    t_stat = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / math.sqrt(n_t))
    from scipy.stats import t as student_t

    assert (t_stat > student_t.isf(0.05, n_t - 1)).mean() == pytest.approx(0.8, abs=0.05)


@pytest.mark.parametrize("method,reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_equal_multipletests(method, reference):
    rng = np.random.default_rng(3)
    for size in (1, 2, 5, 17):
        p_values = np.concatenate([rng.uniform(0, 0.05, size // 2), rng.uniform(0, 1, size - size // 2)])
        p_values[-1] = p_values[0]  # a tie
        ours = power.adjust_p_values(p_values.tolist(), method)
        np.testing.assert_allclose(ours, multipletests(p_values, alpha=0.05, method=reference)[1], rtol=0, atol=1e-15)
    assert power.adjust_p_values([0.3, 0.01], "none") == [0.3, 0.01]


def test_comparison_power_report():
    report = power.comparison_power(se=0.01, n=400, margin=0.02, alpha=0.025, target_power=0.8)
    sd = 0.01 * math.sqrt(400)
    assert report.mde == pytest.approx(NormalIndPower().solve_power(nobs1=400, alpha=0.025, power=0.8, ratio=0,
                                                                    alternative="larger") * sd, abs=1e-6)
    assert report.power == pytest.approx(NormalIndPower().power(0.02 / sd, 400, 0.025, ratio=0, alternative="larger"), abs=1e-12)
    assert report.n_needed == math.ceil(NormalIndPower().solve_power(effect_size=0.02 / sd, alpha=0.025, power=0.8, ratio=0,
                                                                     alternative="larger") - 1e-6)
    assert not report.adequate and report.to_record()["adequate"] is False  # power 0.52 < 0.8
    never = power.comparison_power(se=0.01, n=400, margin=0.0, alpha=0.025)
    assert never.n_needed is None and never.power == 0.025


def test_edge_cases():
    assert power.normal_mde(0.0, 0.05) == 0.0 and power.t_mde(0.0, 10, 0.05) == 0.0
    assert power.normal_n_needed(0.0, 0.1, 0.05) == 2 and power.t_n_needed(0.0, 0.1, 0.05) == 2
    assert math.isinf(power.normal_n_needed(0.3, 0.0, 0.05)) and math.isinf(power.t_n_needed(0.3, 0.0, 0.05))
    assert power.regression_p_value(-0.05, 0.0, 0.01) == 0.0 and power.regression_p_value(0.0, 0.0, 0.01) == 1.0
    assert power.se_from_interval(-0.0196, 0.0196, 0.95) == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("call,field", [
    (lambda: power.t_mde(1.0, 1, 0.05), "n"),
    (lambda: power.t_mde(1.0, 2.5, 0.05), "n"),
    (lambda: power.normal_mde(float("nan"), 0.05), "se"),
    (lambda: power.normal_mde(-1.0, 0.05), "se"),
    (lambda: power.normal_mde(0.1, 1.5), "alpha"),
    (lambda: power.normal_mde(0.1, 0.05, power=0.01), "power"),
    (lambda: power.normal_mde(0.1, 0.05, alternative="smaller"), "alternative"),
    (lambda: power.normal_n_needed(0.3, float("inf"), 0.05), "margin"),
    (lambda: power.paired_proportion_sd(30, 30, 50), "n"),
    (lambda: power.adjust_p_values([0.1, 1.2], "holm"), "p_values[1]"),
    (lambda: power.adjust_p_values([0.1], "bonferroni"), "multiple_comparisons"),
    (lambda: power.se_from_interval(0.1, 0.0, 0.95), "ci_high"),
])
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InvalidInput) as raised:
        call()
    assert raised.value.field == field
