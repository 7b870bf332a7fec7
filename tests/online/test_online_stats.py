"""Online-experiment statistics: each statistic against scipy/statsmodels on seeded data, SRM, CUPED, the
always-valid p-value under daily peeking, shadow comparisons, and guardrail verdicts that fail closed.

statsmodels is a dev dependency (``statsmodels>=0.14,<0.16``); the few tests that compare against it skip
with a reason when it is absent. The simulations are vectorised (thousands of experiments as numpy arrays)
and seeded, so every assertion is deterministic.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy import stats as st

from eval_platform.core.errors import InvalidInput
from eval_platform.online import shadow, stats
from eval_platform.online.analysis import analyze_experiment, format_analysis, offline_online_agreement
from eval_platform.online.config import ExperimentConfig
from eval_platform.online.shadow import shadow_comparison
from eval_platform.online.simulate import simulate_experiment

TOL = 1e-9


def close(a: float, b: float, tol: float = TOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


# ------------------------------------------------------------------------------------------------------
# Means, tests and intervals against the references


@pytest.mark.parametrize("seed,n_c,n_t,alternative", [
    (0, 2, 2, "two-sided"), (1, 5, 40, "two-sided"), (2, 300, 200, "greater"), (3, 1000, 1500, "less"),
    (4, 50, 50, "two-sided"), (5, 3, 1000, "greater"),
])
def test_welch_matches_scipy(seed, n_c, n_t, alternative):
    rng = np.random.default_rng(seed)
    control = rng.lognormal(0, 1, n_c)
    treatment = rng.lognormal(0.1, 1.5, n_t)
    ours = stats.welch_ttest(control, treatment, alternative=alternative, confidence=0.9)
    ref = st.ttest_ind(treatment, control, equal_var=False, alternative=alternative)
    assert close(ours.statistic, ref.statistic)
    assert close(ours.p_value, ref.pvalue)
    assert close(ours.df, ref.df)
    ref_ci = st.ttest_ind(treatment, control, equal_var=False).confidence_interval(0.9)
    assert close(ours.ci_low, ref_ci.low) and close(ours.ci_high, ref_ci.high)
    assert close(ours.estimate, treatment.mean() - control.mean())


def test_welch_undefined_is_nan_not_an_error():
    assert math.isnan(stats.welch_ttest([1.0], [1.0, 2.0]).p_value)  # one unit in control
    constant = stats.welch_ttest([2.0, 2.0, 2.0], [3.0, 3.0])
    assert constant.estimate == 1.0 and math.isnan(constant.p_value) and math.isnan(constant.ci_low)


@pytest.mark.parametrize("x_c,n_c,x_t,n_t", [(10, 100, 15, 100), (480, 10_000, 560, 10_000), (1, 7, 6, 9),
                                             (0, 50, 3, 60), (300, 1000, 200, 900)])
@pytest.mark.parametrize("alternative,sm_alternative", [("two-sided", "two-sided"), ("greater", "larger"), ("less", "smaller")])
def test_two_proportion_ztest_matches_statsmodels(x_c, n_c, x_t, n_t, alternative, sm_alternative):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    ours = stats.two_proportion_ztest(x_c, n_c, x_t, n_t, alternative=alternative)
    z, p = proportion.proportions_ztest([x_t, x_c], [n_t, n_c], alternative=sm_alternative)
    assert close(ours.statistic, float(z)) and close(ours.p_value, float(p))
    p_t, p_c = x_t / n_t, x_c / n_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    assert close(ours.ci_low, p_t - p_c - st.norm.ppf(0.975) * se)


def test_ztest_equals_welch_on_large_binary_samples():
    """The z-test and Welch on the 0/1 values agree closely for large samples (a second, independent check)."""
    rng = np.random.default_rng(9)
    c, t = (rng.random(50_000) < 0.10).astype(float), (rng.random(50_000) < 0.104).astype(float)
    z = stats.two_proportion_ztest(int(c.sum()), c.size, int(t.sum()), t.size)
    w = stats.welch_ttest(c, t)
    assert abs(z.p_value - w.p_value) < 2e-3


def test_ztest_degenerate_and_validation():
    assert math.isnan(stats.two_proportion_ztest(0, 100, 0, 100).p_value)
    assert math.isnan(stats.two_proportion_ztest(100, 100, 50, 50).statistic)
    with pytest.raises(InvalidInput, match="successes_treatment"):
        stats.two_proportion_ztest(1, 10, 11, 10)
    with pytest.raises(InvalidInput, match="alternative"):
        stats.two_proportion_ztest(1, 10, 2, 10, alternative="bigger")
    with pytest.raises(InvalidInput, match="n"):
        stats.two_proportion_ztest(0, 0, 1, 10)


@pytest.mark.parametrize("successes,n,confidence", [(0, 10, 0.95), (10, 10, 0.95), (3, 17, 0.9), (480, 10_000, 0.99)])
def test_wilson_interval_matches_statsmodels(successes, n, confidence):
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    ours = stats.proportion_ci(successes, n, confidence)
    low, high = proportion.proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    assert close(ours.ci_low, low) and close(ours.ci_high, high)
    assert 0 <= ours.ci_low <= ours.mean <= ours.ci_high <= 1


@pytest.mark.parametrize("n", [2, 5, 400])
def test_mean_ci_matches_t_interval(n):
    rng = np.random.default_rng(n)
    x = rng.normal(3, 2, n)
    ours = stats.mean_ci(x, 0.9)
    low, high = st.t.interval(0.9, n - 1, loc=x.mean(), scale=st.sem(x))
    assert close(ours.ci_low, low) and close(ours.ci_high, high) and close(ours.se, st.sem(x))
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    sm_low, sm_high = weightstats.DescrStatsW(x).tconfint_mean(alpha=0.1)
    assert close(ours.ci_low, sm_low) and close(ours.ci_high, sm_high)


def test_mean_ci_edge_cases_and_validation():
    single = stats.mean_ci([4.0])
    assert single.mean == 4.0 and math.isnan(single.ci_low)
    assert stats.mean_ci([2.0, 2.0]).ci_low == 2.0
    with pytest.raises(InvalidInput, match="row 1"):
        stats.mean_ci([1.0, float("nan")])
    with pytest.raises(InvalidInput, match="empty"):
        stats.mean_ci([])
    with pytest.raises(InvalidInput, match="confidence"):
        stats.mean_ci([1.0, 2.0], confidence=95)


# ------------------------------------------------------------------------------------------------------
# Relative lift


def test_lift_delta_method_closed_form_and_bootstrap():
    rng = np.random.default_rng(11)
    control = rng.lognormal(0, 1, 4000)
    treatment = rng.lognormal(0.05, 1, 5000)
    ours = stats.relative_lift(control, treatment)
    m_c, m_t = control.mean(), treatment.mean()
    v_c, v_t = control.var(ddof=1) / control.size, treatment.var(ddof=1) / treatment.size
    assert close(ours.lift, m_t / m_c - 1)
    assert close(ours.se, math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4))
    # the bootstrap standard error of the ratio agrees with the delta method
    boots = 2000
    bc = rng.integers(0, control.size, (boots, control.size))
    bt = rng.integers(0, treatment.size, (boots, treatment.size))
    lifts = treatment[bt].mean(1) / control[bc].mean(1) - 1
    assert abs(lifts.std(ddof=1) / ours.se - 1) < 0.06


def test_lift_interval_covers_the_true_lift_at_its_confidence():
    """Coverage over 2000 simulated experiments with a known true lift of 10 % (lognormal revenue-like data)."""
    rng = np.random.default_rng(12)
    sims, n = 2000, 600
    mean_c = math.exp(0.5)  # lognormal(0, 1) mean
    control = rng.lognormal(0, 1, (sims, n))
    treatment = 1.1 * rng.lognormal(0, 1, (sims, n))
    covered = 0
    for c, t in zip(control, treatment, strict=True):
        estimate = stats.lift_from_summaries(stats.Summary(n, c.mean(), c.var(ddof=1)),
                                             stats.Summary(n, t.mean(), t.var(ddof=1)))
        covered += estimate.ci_low <= 0.1 <= estimate.ci_high
    assert mean_c > 0
    assert 0.93 <= covered / sims <= 0.965


def test_lift_undefined_with_zero_control_mean():
    assert math.isnan(stats.relative_lift([0.0, 0.0, 0.0], [1.0, 0.0, 2.0]).lift)
    assert math.isnan(stats.relative_lift([1.0], [1.0, 2.0]).se)


# ------------------------------------------------------------------------------------------------------
# Sample-ratio mismatch


@pytest.mark.parametrize("counts,split", [
    ({"control": 5040, "treatment": 4960}, {"control": 0.5, "treatment": 0.5}),
    ({"a": 1000, "b": 2100, "c": 6900}, {"a": 10, "b": 20, "c": 70}),
    ([10, 3], [1, 1]),
])
def test_srm_matches_scipy_chisquare(counts, split):
    result = stats.srm_check(counts, split)
    observed = list(counts.values()) if isinstance(counts, dict) else counts
    weights = np.asarray(list(split.values()) if isinstance(split, dict) else split, dtype=float)
    ref = st.chisquare(observed, np.sum(observed) * weights / weights.sum())
    assert close(result.statistic, ref.statistic) and close(result.p_value, ref.pvalue)
    assert result.df == len(observed) - 1


def test_srm_fires_on_a_skewed_split_and_not_on_fair_ones():
    rng = np.random.default_rng(21)
    skewed = int((rng.random(20_000) < 0.52).sum())  # a 52/48 assignment checked against 50/50
    fired = stats.srm_check({"control": skewed, "treatment": 20_000 - skewed}, {"control": 1, "treatment": 1})
    assert fired.fired and fired.p_value < fired.alpha == 0.001
    fair_counts = rng.binomial(20_000, 0.5, 500)
    fires = sum(stats.srm_check([int(k), 20_000 - int(k)], [1, 1], alpha=0.001).fired for k in fair_counts)
    assert fires <= 3  # expected 0.5 of 500 at alpha = 0.001
    # a 90/10 split checked against its own configuration does not fire
    k = int(rng.binomial(20_000, 0.9))
    assert not stats.srm_check({"a": k, "b": 20_000 - k}, {"a": 0.9, "b": 0.1}).fired


def test_srm_validation():
    with pytest.raises(InvalidInput, match="split"):
        stats.srm_check({"a": 1, "b": 2}, {"a": 1, "c": 1})
    with pytest.raises(InvalidInput, match=r"split\[b\]"):
        stats.srm_check({"a": 1, "b": 2}, {"a": 1, "b": 0})
    with pytest.raises(InvalidInput, match="no units"):
        stats.srm_check([0, 0], [1, 1])
    with pytest.raises(InvalidInput, match="two arms"):
        stats.srm_check([5], [1])


# ------------------------------------------------------------------------------------------------------
# CUPED


def correlated(rng, n, rho, effect=0.0):
    x = rng.normal(10, 2, n)
    y = 5 + rho * (x - 10) / 2 + math.sqrt(1 - rho**2) * rng.normal(0, 1, n) + effect
    return y, x


def test_cuped_theta_is_the_ancova_slope():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(31)
    cy, cx = correlated(rng, 800, 0.7)
    ty, tx = correlated(rng, 900, 0.7, effect=0.3)
    result = stats.cuped(cy, cx, ty, tx)
    design = np.column_stack([np.ones(1700), np.r_[cx, tx], np.r_[np.zeros(800), np.ones(900)]])
    fit = sm.OLS(np.r_[cy, ty], design).fit()
    assert close(result.theta, fit.params[1], 1e-8)
    # the CUPED difference of adjusted means equals the ANCOVA treatment coefficient
    assert close(result.treatment.mean() - result.control.mean(), fit.params[2], 1e-8)


def test_cuped_reduces_variance_on_correlated_data():
    rng = np.random.default_rng(32)
    rho = 0.8
    cy, cx = correlated(rng, 5000, rho)
    ty, tx = correlated(rng, 5000, rho, effect=0.1)
    result = stats.cuped(cy, cx, ty, tx)
    assert abs(result.variance_reduction - rho**2) < 0.02
    raw = stats.welch_ttest(cy, ty)
    adjusted = stats.welch_ttest(result.control, result.treatment)
    assert adjusted.se < 0.65 * raw.se  # sqrt(1 - 0.64) = 0.6
    # unrelated covariate: (almost) no reduction
    noise = stats.cuped(cy, rng.normal(size=5000), ty, rng.normal(size=5000))
    assert noise.variance_reduction < 0.005
    # constant covariate: theta 0, values unchanged
    flat = stats.cuped(cy, np.ones(5000), ty, np.ones(5000))
    assert flat.theta == 0.0 and np.array_equal(flat.control, cy)


def test_cuped_is_unbiased_and_tighter_over_simulations():
    rng = np.random.default_rng(33)
    sims, n, effect, rho = 400, 400, 0.2, 0.7
    raw, adjusted = [], []
    for _ in range(sims):
        cy, cx = correlated(rng, n, rho)
        ty, tx = correlated(rng, n, rho, effect)
        result = stats.cuped(cy, cx, ty, tx)
        raw.append(ty.mean() - cy.mean())
        adjusted.append(result.treatment.mean() - result.control.mean())
    raw, adjusted = np.asarray(raw), np.asarray(adjusted)
    assert abs(adjusted.mean() - effect) < 3 * adjusted.std() / math.sqrt(sims)
    assert adjusted.std() < 0.8 * raw.std()  # sqrt(1 - 0.49) = 0.71


def test_cuped_validation():
    with pytest.raises(InvalidInput, match="control_x"):
        stats.cuped([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0])


# ------------------------------------------------------------------------------------------------------
# Always-valid p-values (mSPRT)


@pytest.mark.parametrize("estimate,variance,tau2", [(0.0, 1e-3, 1e-2), (0.05, 4e-4, 2.5e-3), (-0.3, 0.01, 0.5), (1.2, 0.2, 0.01)])
def test_msprt_likelihood_ratio_equals_the_normal_mixture_integral(estimate, variance, tau2):
    sd = math.sqrt(variance)
    width = 40 * max(sd, math.sqrt(tau2))
    numerator, _ = integrate.quad(lambda theta: st.norm.pdf(estimate, theta, sd) * st.norm.pdf(theta, 0, math.sqrt(tau2)),
                                  -width, width, epsabs=0, epsrel=1e-12, points=[0.0, estimate], limit=200)
    expected = math.log(numerator / st.norm.pdf(estimate, 0, sd))
    assert abs(float(stats.msprt_log_likelihood_ratio(estimate, variance, tau2)) - expected) < 1e-7


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_confidence_sequence_is_the_set_the_pvalue_does_not_reject(alpha):
    """Duality: at the sequence's ends the mixture likelihood ratio against that null is exactly 1/alpha."""
    estimate, variance, tau2 = 0.03, 1e-4, 4e-4
    low, high = (float(v) for v in stats.confidence_sequence(estimate, variance, tau2, alpha))
    for end in (low, high):
        assert abs(float(stats.msprt_log_likelihood_ratio(estimate, variance, tau2, null=end)) - math.log(1 / alpha)) < 1e-9
    p_zero = float(stats.always_valid_pvalues([estimate], [variance], tau2)[0])
    assert (p_zero < alpha) == (not low <= 0 <= high)


def _daily_peeking(rng, generate_c, generate_t, sims=1000, days=14, per_day=200):
    """``sims`` experiments looked at after each of ``days`` days: cumulative difference and its variance."""
    n = np.arange(1, days + 1) * per_day

    def cumulative(x):
        sums = np.cumsum(x.sum(-1), axis=1)
        squares = np.cumsum((x * x).sum(-1), axis=1)
        mean = sums / n
        return mean, (squares - n * mean * mean) / (n - 1)

    mc, vc = cumulative(generate_c((sims, days, per_day)))
    mt, vt = cumulative(generate_t((sims, days, per_day)))
    diff, variance = mt - mc, vc / n + vt / n
    tau2 = stats.mixing_variance(np.sqrt((vc + vt) / 2))
    return diff, variance, tau2


@pytest.mark.parametrize("data", ["revenue", "conversion"])
def test_always_valid_pvalue_keeps_false_positives_under_alpha_with_daily_peeking(data):
    """1000 A/A tests, 14 daily looks each: the mSPRT rejects at most alpha of them, while the naive
    fixed-horizon test repeated daily rejects far more (the simulation can see inflation)."""
    rng = np.random.default_rng(41 if data == "revenue" else 42)
    alpha = 0.05
    if data == "revenue":
        generate = lambda shape: rng.lognormal(0, 1, shape)  # noqa: E731 - skewed, like revenue per user
    else:
        generate = lambda shape: (rng.random(shape) < 0.1).astype(np.float64)  # noqa: E731
    diff, variance, tau2 = _daily_peeking(rng, generate, generate)
    p = stats.always_valid_pvalues(diff, variance, tau2)
    assert np.all(np.diff(p, axis=1) <= 0) and np.all((p > 0) & (p <= 1))
    false_positive_rate = float(np.mean(p[:, -1] < alpha))
    naive = float(np.mean((np.abs(diff / np.sqrt(variance)) > st.norm.ppf(1 - alpha / 2)).any(axis=1)))
    assert false_positive_rate <= alpha
    assert naive > 2 * alpha
    low, high = stats.confidence_sequence(diff, variance, tau2, alpha)
    assert np.mean(((low <= 0) & (high >= 0)).all(axis=1)) >= 1 - alpha


def test_always_valid_pvalue_detects_a_real_effect():
    rng = np.random.default_rng(43)
    diff, variance, tau2 = _daily_peeking(rng, lambda s: (rng.random(s) < 0.10).astype(float),
                                          lambda s: (rng.random(s) < 0.14).astype(float), sims=300)
    p = stats.always_valid_pvalues(diff, variance, tau2)
    assert np.mean(p[:, -1] < 0.05) > 0.8


def test_sequential_edge_cases():
    # undefined variance carries no evidence; p never increases
    p = stats.always_valid_pvalues([0.5, 0.5, 0.0], [float("nan"), 0.01, 0.01], 0.01)
    assert p[0] == 1.0 and p[1] < 1 and p[2] == p[1]
    one = stats.sequential_test(0.5, 0.01, 0.01, previous_p_value=0.001)
    assert one.p_value == 0.001
    low, high = stats.confidence_sequence(0.0, 0.0, 0.01)
    assert math.isnan(float(low)) and math.isnan(float(high))
    with pytest.raises(InvalidInput, match="mixing_sd"):
        stats.mixing_variance(1.0, 0)


# ------------------------------------------------------------------------------------------------------
# Shadow comparisons


def random_rankings(rng, cases):
    for _ in range(cases):
        pool = [f"d{i}" for i in range(int(rng.integers(2, 40)))]
        a = list(rng.permutation(pool)[: int(rng.integers(2, len(pool) + 1))])
        b = list(rng.permutation(pool)[: int(rng.integers(2, len(pool) + 1))])
        yield a, b


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(51)
    checked = 0
    for a, b in random_rankings(rng, 300):
        common = [item for item in a if item in b]
        ours_rho = shadow.spearman_rank_correlation(a, b)
        ours_tau = shadow.kendall_rank_correlation(a, b)
        if len(common) < 2:
            assert math.isnan(ours_rho) and math.isnan(ours_tau)
            continue
        pa = [a.index(item) for item in common]
        pb = [b.index(item) for item in common]
        assert close(ours_rho, st.spearmanr(pa, pb).statistic, 1e-12)
        assert close(ours_tau, st.kendalltau(pa, pb).statistic, 1e-12)
        checked += 1
    assert checked > 200
    assert shadow.spearman_rank_correlation(list("abcd"), list("abcd")) == 1.0
    assert shadow.kendall_rank_correlation(list("abcd"), list("dcba")) == -1.0


def test_overlap_at_k_and_label_agreement():
    assert shadow.overlap_at_k(list("abcdef"), list("xbayzf"), 3) == 2 / 3
    assert shadow.overlap_at_k(list("abc"), list("abc"), 10) == 1.0
    assert shadow.overlap_at_k(list("ab"), list("abcd"), 10) == 0.5
    assert math.isnan(shadow.overlap_at_k([], [], 5))
    with pytest.raises(InvalidInput, match="appears twice"):
        shadow.overlap_at_k(list("aba"), list("abc"), 2)
    with pytest.raises(InvalidInput, match="k"):
        shadow.overlap_at_k(list("ab"), list("ab"), 0)
    agreement = shadow.label_agreement(["spam", "ham", "spam", "ham"], ["spam", "spam", "spam", "ham"])
    assert agreement.rate == 0.75 and agreement.ci_low < 0.75 < agreement.ci_high
    with pytest.raises(InvalidInput, match="row 1"):
        shadow.label_agreement(["a", None], ["a", "b"])


def test_shadow_comparison_aligns_requests_and_reports_coverage():
    production = {"r1": "spam", "r2": "ham", "r3": "spam", "r4": "ham"}
    candidate = {"r1": "spam", "r2": "spam", "r3": "spam", "r5": "ham", "r4": None}
    result = shadow_comparison(candidate, production, "labels")
    assert result["n_common"] == 3 and result["coverage"] == 0.75 and result["only_candidate"] == 1
    assert result["metrics"]["shadow_agreement"] == 2 / 3
    rankings = shadow_comparison({"q1": list("abc"), "q2": list("xyz")}, {"q1": list("abc"), "q2": list("zyx")}, "rankings", k=2)
    assert rankings["metrics"]["shadow_spearman"] == 0.0  # mean of +1 and -1
    assert rankings["metrics"]["shadow_overlap_at_k"] == 0.75
    empty = shadow_comparison({"a": "x"}, {"b": "x"})
    assert math.isnan(empty["metrics"]["shadow_agreement"])


# ------------------------------------------------------------------------------------------------------
# Experiment analysis and guardrail verdicts


def config(**overrides) -> dict:
    base = {
        "experiment_id": "exp-test",
        "arms": [{"name": "control", "model_version": "m@1", "split": 0.5},
                 {"name": "treatment", "model_version": "m@2", "split": 0.5}],
        "primary_metric": {"metric": "click", "direction": "higher"},
        "metrics": {"click": {"aggregate": "sum"}, "conversion": {"aggregate": "max"}, "revenue": {"aggregate": "sum"}},
        "guardrails": [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05}],
        "covariate": {"click": "pre_clicks"},
    }
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def experiment():
    events = simulate_experiment(seed=3, n_units=20_000, days=10, true_effect=0.12)
    return events, analyze_experiment(events, config())


def test_analysis_recovers_the_true_effect(experiment):
    events, result = experiment
    assert result.trustworthy and not result.srm["fired"]
    primary = result.primary["treatment"]
    assert primary["estimator"] == "cuped"
    assert primary["lift_ci"][0] <= 0.12 <= primary["lift_ci"][1]
    assert primary["outcome"] == "treatment_better"
    # CUPED on clicks with the pre-period clicks shrinks the standard error
    cuped = result.metrics["click"]["comparisons"]["treatment"]["cuped"]
    assert cuped["variance_reduction"] > 0.1 and cuped["se_ratio"] < 0.95
    # conversion aggregated with max is a proportion, tested with the z-test
    assert result.metrics["conversion"]["kind"] == "proportion"
    assert result.metrics["conversion"]["comparisons"]["treatment"]["test"]["test"] == "two_proportion_z"
    assert result.metrics["revenue"]["comparisons"]["treatment"]["test"]["test"] == "welch_t"
    assert result.guardrail_verdict == "pass"
    json.dumps(result.as_json(), allow_nan=False)


def test_analysis_numbers_equal_a_hand_aggregation(experiment):
    events, result = experiment
    units = events.groupby("unit_id").agg(arm=("arm", "first"), revenue=("revenue", "sum"), latency=("latency_ms", "mean"))
    control, treatment = (units[units.arm == a] for a in ("control", "treatment"))
    welch = st.ttest_ind(treatment.revenue, control.revenue, equal_var=False)
    revenue = result.metrics["revenue"]["comparisons"]["treatment"]["test"]
    assert close(revenue["p_value"], welch.pvalue) and close(revenue["statistic"], welch.statistic)
    assert close(result.metrics["latency_ms"]["per_arm"]["control"]["mean"], control.latency.mean())
    assert result.arms["control"]["units"] == len(control) and result.arms["treatment"]["units"] == len(treatment)


def test_sequential_results_use_the_stated_mixing_variance(experiment):
    """tau^2 = (mixing_sd * pooled per-unit sd)^2 at each look; the p-value is the running min of 1/Lambda."""
    events, result = experiment
    units = events.groupby("unit_id").agg(arm=("arm", "first"), click=("click", "sum"))
    c, t = units[units.arm == "control"].click, units[units.arm == "treatment"].click
    pooled_var = (len(c) * c.var(ddof=1) + len(t) * t.var(ddof=1)) / (len(c) + len(t))
    sequential = result.metrics["click"]["comparisons"]["treatment"]["sequential"]
    assert close(sequential["tau2"], (0.05 * math.sqrt(pooled_var)) ** 2)
    assert close(sequential["log_likelihood_ratio"],
                 float(stats.msprt_log_likelihood_ratio(sequential["estimate"], sequential["variance"], sequential["tau2"])))
    wider = analyze_experiment(events, config(mixing_sd=0.2))
    assert close(wider.metrics["click"]["comparisons"]["treatment"]["sequential"]["tau2"], 16 * sequential["tau2"])


def test_daily_rows_are_cumulative_and_end_at_the_overall_result(experiment):
    events, result = experiment
    rows = pd.DataFrame(result.daily)
    clicks = rows[rows.metric == "click"].sort_values("day")
    assert list(clicks.day) == list(range(10))
    assert (np.diff(clicks.n_control) >= 0).all() and (np.diff(clicks.always_valid_p_value) <= 0).all()
    final = result.metrics["click"]["comparisons"]["treatment"]
    assert close(clicks.iloc[-1].lift, final["decision_lift"]["lift"])
    assert close(clicks.iloc[-1].always_valid_p_value, result.primary["treatment"]["always_valid_p_value"])
    # day 3 by hand: units that arrived by the end of day 3, clicks up to then
    cutoff = pd.Timestamp("2024-01-05", tz="UTC")
    upto = events[events.timestamp < cutoff].groupby("unit_id").agg(arm=("arm", "first"), click=("click", "sum"))
    day3 = rows[(rows.metric == "revenue") & (rows.day == 3)].iloc[0]
    assert day3.n_control == int((upto.arm == "control").sum())
    assert close(clicks[clicks.day == 3].iloc[0].mean_control, upto[upto.arm == "control"].click.mean())
    srm_days = pd.DataFrame(result.daily_srm)
    assert srm_days.iloc[-1].units_control == result.arms["control"]["units"]


def test_per_unit_rows_give_the_same_result_as_events(experiment):
    events, result = experiment
    per_unit = events.groupby("unit_id", as_index=False).agg(
        arm=("arm", "first"), timestamp=("timestamp", "min"), click=("click", "sum"), conversion=("conversion", "max"),
        revenue=("revenue", "sum"), latency_ms=("latency_ms", "mean"), pre_clicks=("pre_clicks", "first"))
    cfg = config(metrics={"click": {"aggregate": "sum"}, "conversion": {"aggregate": "max"}, "revenue": {"aggregate": "sum"}})
    again = analyze_experiment(per_unit, cfg)
    for metric in ("click", "conversion", "revenue", "latency_ms"):
        a = result.metrics[metric]["comparisons"]["treatment"]["decision_test"]
        b = again.metrics[metric]["comparisons"]["treatment"]["decision_test"]
        assert close(a["estimate"], b["estimate"]) and close(a["p_value"], b["p_value"])


def test_several_treatment_arms_get_their_own_verdicts():
    events = simulate_experiment(seed=12, n_units=9000, days=5, true_effect={"b": 0.15}, split={"a": 1, "b": 1, "c": 1},
                                 latency_effect={"c": 0.3})
    cfg = config(arms={"a": {"model_version": "v1", "split": 1}, "b": {"model_version": "v2", "split": 1},
                       "c": {"model_version": "v3", "split": 1}}, covariate=None)
    result = analyze_experiment(events, cfg)
    assert result.control == "a" and set(result.primary) == {"b", "c"}
    verdicts = {v["arm"]: v["outcome"] for v in result.guardrails}
    assert verdicts == {"b": "pass", "c": "fail"} and result.guardrail_verdict == "fail"
    assert result.primary["b"]["lift"] > result.primary["c"]["lift"]
    text = format_analysis(result)
    assert "guardrail latency_ms must not increase by more than 5.00% (c): fail" in text


def test_aa_experiment_is_inconclusive():
    events = simulate_experiment(seed=4, n_units=6000, days=7, true_effect=0.0)
    result = analyze_experiment(events, config())
    assert result.trustworthy
    assert result.primary["treatment"]["outcome"] == "inconclusive"


def test_guardrail_fails_on_a_regression_beyond_tolerance():
    events = simulate_experiment(seed=5, n_units=8000, days=7, latency_effect=0.25)
    result = analyze_experiment(events, config())
    (verdict,) = result.guardrails
    assert verdict["outcome"] == "fail" and result.guardrail_verdict == "fail"
    assert verdict["harm_interval"][0] > 0.05


def test_guardrail_straddling_the_tolerance_is_no_decision():
    events = simulate_experiment(seed=6, n_units=600, days=7, latency_effect=0.05)
    result = analyze_experiment(events, config(guardrail_interval="fixed"))
    (verdict,) = result.guardrails
    assert verdict["outcome"] == "no_decision" and "straddles" in verdict["message"]
    low, high = verdict["harm_interval"]
    assert low <= 0.05 < high


def test_sequential_guardrail_interval_is_wider_than_the_fixed_one(experiment):
    events, result = experiment
    fixed = analyze_experiment(events, config(guardrail_interval="fixed"))
    seq_low, seq_high = result.guardrails[0]["interval"]
    fix_low, fix_high = fixed.guardrails[0]["interval"]
    assert seq_low < fix_low and seq_high > fix_high


def test_srm_makes_the_result_untrustworthy_and_guardrails_no_decision():
    events = simulate_experiment(seed=7, n_units=10_000, days=5, split=(0.53, 0.47))
    result = analyze_experiment(events, config())
    assert result.srm["fired"] and not result.trustworthy
    assert all(v["outcome"] == "no_decision" for v in result.guardrails)
    assert result.guardrail_verdict == "no_decision"
    assert result.primary["treatment"]["outcome"] == "untrustworthy"
    assert any("sample-ratio mismatch" in r for r in result.untrustworthy_reasons)
    # the same data checked against its true split is trustworthy
    honest = analyze_experiment(events, config(arms=[{"name": "control", "split": 53}, {"name": "treatment", "split": 47}]))
    assert honest.trustworthy and honest.guardrail_verdict == "pass"


def _with_crossover_units(events, n):
    """``events`` plus a copy of the first ``n`` units' events in the other arm."""
    units = events.unit_id.unique()[:n]
    extra = events[events.unit_id.isin(units)].copy()
    extra["arm"] = np.where(extra.arm == "control", "treatment", "control")
    return pd.concat([events, extra], ignore_index=True)


def _with_unknown_arm(events):
    events.loc[events.index[:10], "arm"] = "treatment_b"
    return events


#: each case of missing or untrustworthy data: (events, config) -> (events, config)
FAIL_CLOSED_CASES = {
    "missing_column": lambda events, cfg: (events.drop(columns="latency_ms"), cfg),
    "too_few_units": lambda events, cfg: (events, config(min_units_per_arm=5000)),
    "unknown_arm": lambda events, cfg: (_with_unknown_arm(events), cfg),
    "crossover": lambda events, cfg: (_with_crossover_units(events, 50), cfg),
    "no_guardrails": lambda events, cfg: (events, config(guardrails=[])),
    "empty": lambda events, cfg: (events.iloc[:0], cfg),
    "treatment_missing": lambda events, cfg: (events[events.arm == "control"], cfg),
}


@pytest.mark.parametrize("case", ["missing_column", "too_few_units", "unknown_arm", "crossover", "no_guardrails",
                                  "empty", "treatment_missing"])
def test_guardrails_fail_closed(case):
    events, cfg = FAIL_CLOSED_CASES[case](simulate_experiment(seed=8, n_units=3000, days=5), config())
    result = analyze_experiment(events, cfg)
    assert result.guardrail_verdict == "no_decision", result.guardrail_reasons
    assert all(v["outcome"] == "no_decision" for v in result.guardrails)
    if case in ("unknown_arm", "crossover", "empty", "treatment_missing"):
        assert not result.trustworthy
    if case == "missing_column":
        assert result.metrics["latency_ms"]["status"] == "missing" and result.trustworthy
    if case == "crossover":
        assert result.data_quality["crossover_units"] == 50
    json.dumps(result.as_json(), allow_nan=False)


def test_covariate_imputation_and_missing_covariate_column():
    events = simulate_experiment(seed=9, n_units=4000, days=5, pre_period_coverage=0.7)
    result = analyze_experiment(events, config())
    imputed = result.data_quality["covariate_imputed_units"]["pre_clicks"]
    assert 0.25 * 4000 < imputed < 0.35 * 4000
    assert result.metrics["click"]["comparisons"]["treatment"]["cuped"]["variance_reduction"] > 0
    without = analyze_experiment(events.drop(columns="pre_clicks"), config())
    assert without.metrics["click"]["comparisons"]["treatment"]["decision_estimator"] == "raw"
    assert any("pre_clicks" in w for w in without.data_quality["warnings"])


def test_config_and_input_validation():
    events = simulate_experiment(seed=10, n_units=500, days=3)
    with pytest.raises(InvalidInput, match="config: unknown key"):
        analyze_experiment(events, config(confidense=0.9))
    with pytest.raises(InvalidInput, match=r"config.arms\[1\].split"):
        analyze_experiment(events, config(arms=[{"name": "control", "split": 1}, {"name": "treatment", "split": 0}]))
    with pytest.raises(InvalidInput, match=r"config.guardrails\[0\].direction"):
        analyze_experiment(events, config(guardrails=[{"metric": "latency_ms", "direction": "down", "tolerance": 0.1}]))
    with pytest.raises(InvalidInput, match="config.control"):
        analyze_experiment(events, config(control="baseline"))
    with pytest.raises(InvalidInput, match="config.confidence"):
        analyze_experiment(events, config(confidence=1.5))
    with pytest.raises(InvalidInput, match="unit_id"):
        analyze_experiment(events.drop(columns="unit_id"), config())
    bad = events.copy()
    bad.loc[bad.index[2], "arm"] = None
    with pytest.raises(InvalidInput, match="arm: missing at row 2"):
        analyze_experiment(bad, config())
    bad = events.copy()
    bad["revenue"] = "a lot"
    with pytest.raises(InvalidInput, match="revenue: must be numeric"):
        analyze_experiment(bad, config())
    bad = events.copy()
    bad["pre_clicks"] = np.arange(len(bad), dtype=float)
    with pytest.raises(InvalidInput, match="varies within unit"):
        analyze_experiment(bad, config())
    with pytest.raises(InvalidInput, match="kind"):
        analyze_experiment(events, config(metrics={"revenue": {"aggregate": "sum", "kind": "proportion"}}))
    built = ExperimentConfig.from_dict(config())
    booleans = events.assign(conversion=events.conversion.astype(bool))
    assert analyze_experiment(booleans, built).metrics["conversion"]["kind"] == "proportion"


def test_window_excludes_events_outside_start_and_end():
    events = simulate_experiment(seed=11, n_units=2000, days=6)
    result = analyze_experiment(events, config(start="2024-01-02", end="2024-01-05"))
    outside = int(((events.timestamp < pd.Timestamp("2024-01-02", tz="UTC"))
                   | (events.timestamp >= pd.Timestamp("2024-01-05", tz="UTC"))).sum())
    assert result.data_quality["events_outside_window"] == outside
    assert max(r["day"] for r in result.daily) == 2


# ------------------------------------------------------------------------------------------------------
# Offline-online agreement and the simulator


def test_offline_online_agreement_matches_scipy():
    rng = np.random.default_rng(61)
    offline = rng.normal(0.01, 0.02, 12)
    online = 0.8 * offline + rng.normal(0, 0.01, 12)
    records = [{"experiment_id": f"e{i}", "offline_delta": float(a), "online_delta": float(b), "online_significant": i % 2 == 0}
               for i, (a, b) in enumerate(zip(offline, online, strict=True))]
    records.append({"experiment_id": "broken", "offline_delta": None, "online_delta": 0.1})
    result = offline_online_agreement(records)
    assert result["n"] == 12 and result["excluded"][0]["experiment_id"] == "broken"
    assert close(result["pearson"], st.pearsonr(offline, online).statistic)
    assert close(result["spearman"], st.spearmanr(offline, online).statistic)
    same = np.sign(offline) == np.sign(online)
    assert close(result["sign_agreement"], same.mean())
    assert close(result["sign_agreement_significant"], same[::2].mean())
    few = offline_online_agreement(records[:2])
    assert math.isnan(few["pearson"]) and few["n"] == 2


def test_simulator_is_deterministic_and_validated():
    a = simulate_experiment(seed=1, n_units=300, days=3, true_effect=0.1)
    b = simulate_experiment(seed=1, n_units=300, days=3, true_effect=0.1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulate_experiment(seed=2, n_units=300, days=3, true_effect=0.1))
    assert a.attrs["true_effect"] == {"control": 0.0, "treatment": 0.1}
    assert a.groupby("unit_id").arm.nunique().max() == 1 and a.unit_id.nunique() == 300
    with pytest.raises(InvalidInput, match="base_click_rate"):
        simulate_experiment(seed=1, n_units=10, base_click_rate=0.3)
    with pytest.raises(InvalidInput, match="split"):
        simulate_experiment(seed=1, n_units=10, split=(1, 0))
