"""Stratified sampling for labelling and Horvitz-Thompson estimates of prevalence, precision and recall.

References: hand computations of the textbook stratified estimator on a tiny example, statsmodels' Wilson interval,
the exact design variance computed from the population's labels, and simulation with a known truth (interval coverage).
"""

import math
from itertools import combinations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from eval_platform.core.errors import InvalidInput
from eval_platform.stats import sampling
from eval_platform.stats.sampling import (
    SamplePlan,
    estimate_precision_recall,
    estimate_prevalence,
    plan_stratified_sample,
    wilson_interval,
)

# ------------------------------------------------------------------------------------------- a tiny example by hand

TINY_SCORES = [0.1, 0.2, 0.3, 0.4, 0.45, 0.49, 0.6, 0.7, 0.8, 0.9]  # 6 rows below 0.5, 4 at or above


def tiny_plan():
    return plan_stratified_sample([f"r{i}" for i in range(10)], TINY_SCORES, budget=5, strata=[0.5], allocation="proportional", seed=3)


def tiny_labels(plan):
    """Labels 0, 1, 0 in the low stratum's three drawn rows and 1, 1 in the high stratum's two."""
    labels = np.empty(plan.sample_ids.size)
    labels[plan.sample_strata == 0] = [0, 1, 0]
    labels[plan.sample_strata == 1] = [1, 1]
    return labels


def test_tiny_plan_allocates_proportionally_with_inclusion_probabilities():
    plan = tiny_plan()
    assert [(s.population, s.sample_size) for s in plan.strata] == [(6, 3), (4, 2)]
    assert plan.strata[1].lower_edge == 0.5 and plan.strata[0].upper_edge == 0.5
    assert np.allclose(plan.inclusion_probabilities, np.where(plan.sample_strata == 0, 3 / 6, 2 / 4))
    assert set(plan.sample_ids[plan.sample_strata == 1]) <= {"r6", "r7", "r8", "r9"}


def test_textbook_point_estimate_and_variance_by_hand(monkeypatch):
    # without the pseudo-observation: p = 0.6 * 1/3 + 0.4 * 1 = 0.6;
    # v = 0.6^2 (1 - 3/6) (1/3) / 3 + 0.4^2 (1 - 2/4) * 0 / 2 = 0.02
    monkeypatch.setattr(sampling, "PSEUDO_WEIGHT", 0.0)
    plan = tiny_plan()
    est = estimate_prevalence(plan, tiny_labels(plan))
    assert est.value == pytest.approx(0.6, abs=1e-12)
    assert est.se == pytest.approx(math.sqrt(0.02), abs=1e-12)
    assert est.n_labelled == 5 and est.n_positive == 3


def test_smoothed_variance_by_hand_and_wilson_interval_against_statsmodels():
    plan = tiny_plan()
    est = estimate_prevalence(plan, tiny_labels(plan))
    assert est.value == pytest.approx(0.6, abs=1e-12)  # the point estimate is never smoothed
    # pseudo-observation per stratum: weight 1, positive share p0 = (0.6 * 5 + 0.5) / 6
    p0 = 3.5 / 6
    s2_low = ((1 + p0) - (1 + p0) ** 2 / 4) / 3  # labels 0, 1, 0 plus the pseudo row: weight 4
    s2_high = ((2 + p0) - (2 + p0) ** 2 / 3) / 2  # labels 1, 1 plus the pseudo row: weight 3
    variance = 0.6**2 * 0.5 * s2_low / 3 + 0.4**2 * 0.5 * s2_high / 2
    assert est.se == pytest.approx(math.sqrt(variance), rel=1e-12)
    assert variance == pytest.approx(0.0263078, abs=1e-6)
    smoothed = 0.6 * (1 + p0) / 4 + 0.4 * (2 + p0) / 3
    n_eff = smoothed * (1 - smoothed) / variance
    assert est.effective_sample_size == pytest.approx(n_eff, rel=1e-12)
    low, high = proportion_confint(0.6 * n_eff, n_eff, alpha=0.05, method="wilson")
    assert (est.ci_low, est.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_wilson_interval_is_statsmodels_wilson():
    for value, n in ((0.0, 50), (0.02, 300.5), (0.5, 12), (1.0, 7)):
        low, high = proportion_confint(value * n, n, alpha=0.1, method="wilson")
        assert wilson_interval(value, n, 0.9) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_precision_and_recall_by_hand_with_a_known_denominator(monkeypatch):
    monkeypatch.setattr(sampling, "PSEUDO_WEIGHT", 0.0)
    plan = tiny_plan()
    result = estimate_precision_recall(plan, tiny_labels(plan), threshold=0.5)
    assert result.denominator == "known" and result.predicted_positive == 4
    # precision: the high stratum's mean, 2/2, known M = 4; its variance is 0 (labels 1, 1)
    assert result.precision.value == 1.0 and result.precision.se == 0.0
    # recall: T_ya = 4 * 1 = 4, T_y = 6 * 1/3 + 4 = 6, R = 2/3; z = y (a - R) / T_y
    # low stratum z = (0, -R/6, 0): s^2 = var([0, -1/9, 0], ddof=1) = (1/81) / 3; high: z = (1/18, 1/18): s^2 = 0
    assert result.recall.value == pytest.approx(2 / 3, abs=1e-12)
    variance = 6**2 * 0.5 * (1 / 81 / 3) / 3
    assert result.recall.se == pytest.approx(math.sqrt(variance), rel=1e-12)


def test_precision_at_a_threshold_inside_a_stratum_is_a_ratio_by_hand(monkeypatch):
    monkeypatch.setattr(sampling, "PSEUDO_WEIGHT", 0.0)
    plan = tiny_plan()
    assert plan.sample_ids.tolist() == ["r0", "r1", "r3", "r8", "r9"]  # seed 3; scores 0.1, 0.2, 0.4 | 0.8, 0.9
    labels = np.array([0, 1, 0, 0, 1], dtype=float)
    result = estimate_precision_recall(plan, labels, threshold=0.75)  # cuts the high stratum: M is not in the plan
    assert result.denominator == "estimated"
    # T_a = 4 * mean(1, 1) = 4; T_ya = 4 * mean(0, 1) = 2; P = 0.5
    # z = a (y - P) / T_a: high stratum (-1/8, 1/8), s^2 = 1/32; low stratum a = 0: z = 0
    assert result.predicted_positive == 4 and result.precision.value == 0.5
    assert result.precision.se == pytest.approx(math.sqrt(4**2 * (1 - 2 / 4) * (1 / 32) / 2), abs=1e-12)
    # recall: T_y = 6 * 1/3 + 4 * 1/2 = 4, R = 2/4; z = y (a - R) / T_y: low (0, -1/8, 0), high (0, 1/8)
    assert result.recall.value == 0.5
    low = 6**2 * 0.5 * np.var([0, -1 / 8, 0], ddof=1) / 3
    high = 4**2 * 0.5 * np.var([0, 1 / 8], ddof=1) / 2
    assert result.recall.se == pytest.approx(math.sqrt(low + high), abs=1e-12)


def test_estimator_is_unbiased_over_every_possible_sample(monkeypatch):
    """All C(6,3) * C(4,2) = 120 samples of the tiny design: the HT estimate averages to the true prevalence, and the
    textbook variance estimate averages to the estimate's true variance over the samples (both unbiased)."""
    monkeypatch.setattr(sampling, "PSEUDO_WEIGHT", 0.0)
    plan = tiny_plan()
    truth = np.array([0, 1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=float)  # prevalence 0.6
    ids = np.array([f"r{i}" for i in range(10)], dtype=object)
    scores = np.array(TINY_SCORES)
    values, variances = [], []
    for low in combinations(range(6), 3):
        for high in combinations(range(6, 10), 2):
            rows = list(low) + list(high)
            sample = SamplePlan.from_document(plan.to_document(), ids[rows], scores[rows], [0, 0, 0, 1, 1])
            est = estimate_prevalence(sample, truth[rows])
            values.append(est.value)
            variances.append(est.se**2)
    assert len(values) == 120
    assert np.mean(values) == pytest.approx(0.6, abs=1e-12)
    assert np.mean(variances) == pytest.approx(np.var(values), abs=1e-12)


# ------------------------------------------------------------------------------------------- a census is exact


def test_a_census_returns_the_population_values_with_zero_width_intervals():
    rng = np.random.default_rng(5)
    scores = rng.random(3000) ** 4
    y = (rng.random(3000) < scores).astype(float)
    plan = plan_stratified_sample(None, scores, budget=3000, strata=7, seed=1, thresholds=[0.5])
    labels = y[plan.sample_ids]
    est = estimate_prevalence(plan, labels)
    assert est.value == pytest.approx(y.mean(), abs=1e-12) and est.ci_low == est.ci_high == est.value and est.se == 0
    result = estimate_precision_recall(plan, labels, 0.5)
    assert result.precision.value == pytest.approx(y[scores >= 0.5].mean(), abs=1e-12)
    assert result.recall.value == pytest.approx(y[scores >= 0.5].sum() / y.sum(), abs=1e-12)
    assert result.predicted_positive == (scores >= 0.5).sum()
    assert result.precision.ci_low == result.precision.ci_high and result.recall.ci_low == result.recall.ci_high


# ------------------------------------------------------------------------------------------- simulation, known truth

POPULATION = 200_000
REPETITIONS = 300
BUDGET = 1000
THRESHOLD_QUANTILE = 0.99


@pytest.fixture(scope="module")
def production_log():
    """200k scores; the true positive probability is logistic in a latent z, the score sees z through noise."""
    rng = np.random.default_rng(2026)
    latent = -6.8 + 1.8 * rng.normal(size=POPULATION)
    y = (rng.random(POPULATION) < 1 / (1 + np.exp(-latent))).astype(float)
    scores = 1 / (1 + np.exp(-(latent + rng.normal(scale=0.7, size=POPULATION))))
    threshold = float(np.quantile(scores, THRESHOLD_QUANTILE))
    # the edges are computed once here (the plan would compute the same quantiles on every repetition)
    edges = np.unique(np.concatenate([np.quantile(scores, np.linspace(0, 1, 11)[1:-1], method="lower"), [threshold]]))
    return scores, y, threshold, edges


def test_simulated_coverage_is_nominal_and_stratification_beats_simple_random_sampling(production_log):
    scores, y, threshold, edges = production_log
    off_edge = float(np.quantile(scores, 0.995))  # precision with an estimated denominator
    truth = {"prevalence": y.mean(), "precision": y[scores >= threshold].mean(), "recall": y[scores >= threshold].sum() / y.sum(),
             "precision_off_edge": y[scores >= off_edge].mean()}
    assert 0.004 < truth["prevalence"] < 0.006  # about 0.5% positives
    covered = dict.fromkeys(truth, 0)
    values = []
    for repetition in range(REPETITIONS):
        plan = plan_stratified_sample(None, scores, BUDGET, strata=edges, allocation="neyman", seed=repetition)
        labels = y[plan.sample_ids]
        prevalence = estimate_prevalence(plan, labels)
        at_threshold = estimate_precision_recall(plan, labels, threshold)
        off = estimate_precision_recall(plan, labels, off_edge)
        assert at_threshold.denominator == "known" and off.denominator == "estimated"
        for name, est in (("prevalence", prevalence), ("precision", at_threshold.precision), ("recall", at_threshold.recall),
                          ("precision_off_edge", off.precision)):
            covered[name] += est.ci_low <= truth[name] <= est.ci_high
        values.append(prevalence.value)
    coverage = {name: count / REPETITIONS for name, count in covered.items()}
    # measured 0.960, 0.967, 0.933, 0.957 here; over 2,000 other seeds 0.958, 0.969, 0.962, 0.949
    assert all(0.93 <= c <= 0.97 for c in coverage.values()), coverage

    values = np.array(values)
    # unbiased: the mean of the estimates is within 3 standard errors of the truth
    assert abs(values.mean() - truth["prevalence"]) < 3 * values.std() / math.sqrt(REPETITIONS)
    # the simulated variance is the design's exact variance, computed from the population's labels
    assignment = np.searchsorted(edges, scores, side="right")
    sizes = np.array([s.sample_size for s in plan.strata])
    populations = np.bincount(assignment)
    within = np.array([y[assignment == h].var(ddof=1) for h in range(populations.size)])
    design_variance = float(((populations / POPULATION) ** 2 * (1 - sizes / populations) * within / sizes).sum())
    assert values.var(ddof=1) == pytest.approx(design_variance, rel=0.2)
    # simple random sampling without replacement at the same budget: (1 - n/N) S^2 / n
    srs_variance = (1 - BUDGET / POPULATION) * y.var(ddof=1) / BUDGET
    ratio = design_variance / srs_variance
    assert ratio < 0.75, ratio  # measured 0.55 (Neyman, 10 score-quantile strata + the threshold)


# ------------------------------------------------------------------------------------------- allocation and seeds


def test_allocations_floors_caps_and_reproducibility():
    scores = np.r_[np.full(1000, 0.01), np.full(1000, 0.5), np.full(3, 0.99)]
    plan = plan_stratified_sample(None, scores, budget=60, strata=[0.25, 0.75], allocation="neyman", seed=4)
    # Neyman: 1000 * sqrt(.01 * .99) : 1000 * 0.5 : 3 * sqrt(.99 * .01) -> the tiny stratum gets its floor of 2
    assert [s.sample_size for s in plan.strata] == [10, 48, 2]
    plan = plan_stratified_sample(None, scores, budget=60, strata=[0.25, 0.75], allocation="equal", seed=4)
    assert [s.sample_size for s in plan.strata] == [29, 28, 3]  # capped at N_h = 3, the rest shared
    plan = plan_stratified_sample(None, scores, budget=60, strata=[0.25, 0.75], allocation="proportional", seed=4)
    assert [s.sample_size for s in plan.strata] == [29, 29, 2] and sum(s.sample_size for s in plan.strata) == 60
    again = plan_stratified_sample(None, scores, budget=60, strata=[0.25, 0.75], allocation="proportional", seed=4)
    other = plan_stratified_sample(None, scores, budget=60, strata=[0.25, 0.75], allocation="proportional", seed=5)
    assert np.array_equal(plan.sample_ids, again.sample_ids) and not np.array_equal(plan.sample_ids, other.sample_ids)
    assert len(set(plan.sample_ids.tolist())) == 60  # without replacement


def test_quantile_strata_and_a_threshold_edge():
    scores = np.linspace(0, 1, 1001)
    plan = plan_stratified_sample(None, scores, budget=100, strata=4, seed=0, thresholds=[0.9])
    assert len(plan.strata) == 5 and 0.9 in plan.edges
    assert sum(s.population for s in plan.strata) == 1001
    above = [s for s in plan.strata if s.lower_edge >= 0.9]
    assert sum(s.population for s in above) == (scores >= 0.9).sum()


def test_document_round_trip():
    plan = tiny_plan()
    back = SamplePlan.from_document(plan.to_document(), plan.sample_ids, plan.sample_scores, plan.sample_strata)
    assert back == plan and np.array_equal(back.sample_ids, plan.sample_ids)
    document = plan.to_document()
    document["strata"][0]["sample_size"] = 4
    with pytest.raises(InvalidInput, match="stratum 0: the table says 4 rows"):
        SamplePlan.from_document(document, plan.sample_ids, plan.sample_scores, plan.sample_strata)
    with pytest.raises(InvalidInput, match="outside its stratum"):
        SamplePlan.from_document(plan.to_document(), plan.sample_ids, plan.sample_scores[::-1], plan.sample_strata)


# ------------------------------------------------------------------------------------------- edge cases


def test_rare_prevalence_with_all_zero_labels_still_has_an_upper_bound():
    scores = np.linspace(0, 0.01, 5000)
    plan = plan_stratified_sample(None, scores, budget=300, strata=5, seed=0)
    est = estimate_prevalence(plan, np.zeros(300))
    assert est.value == 0 and est.ci_low == 0
    # 300 negatives: the rule of three's bound is 3/300 = 0.01; the interval's upper end is of that order, not 0
    assert 0.002 < est.ci_high < 0.02


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"scores": [0.1, float("nan"), 0.3]}, "scores", "row 2: nan is not a finite number"),
    ({"scores": [0.1, "x", 0.3]}, "scores", "must be numbers"),
    ({"ids": ["a", "b", "a"]}, "ids", "row 3: id 'a' appears twice"),
    ({"budget": 4}, "budget", "exceed the population of 3 rows"),
    ({"budget": 0}, "budget", "positive whole number"),
    ({"strata": [0.5, 0.2]}, "strata", "strictly increasing"),
    ({"allocation": "optimal"}, "allocation", "must be one of"),
    ({"scores": [0.1, 2.0, 0.3]}, "scores", "must lie in \\[0, 1\\]"),
    ({"seed": -1}, "seed", "non-negative"),
])
def test_plan_refuses_bad_input_naming_the_field(kwargs, field, words):
    arguments = {"ids": ["a", "b", "c"], "scores": [0.1, 0.2, 0.3], "budget": 2, "strata": 1, "allocation": "neyman", "seed": 0, **kwargs}
    with pytest.raises(InvalidInput, match=words) as error:
        plan_stratified_sample(**arguments)
    assert error.value.field == field


def test_too_small_a_budget_for_the_strata_is_refused():
    with pytest.raises(InvalidInput, match="at least 8"):
        plan_stratified_sample(None, np.linspace(0, 1, 100), budget=7, strata=4)


def test_estimates_refuse_bad_labels():
    plan = tiny_plan()
    labels = tiny_labels(plan)
    bad = labels.copy()
    bad[1] = 2
    with pytest.raises(InvalidInput, match="row 2: 2.0 is not a 0/1 label"):
        estimate_prevalence(plan, bad)
    with pytest.raises(InvalidInput, match="must align"):
        estimate_prevalence(plan, labels[:3])
    missing_stratum = labels.copy()
    missing_stratum[plan.sample_strata == 1] = np.nan
    with pytest.raises(InvalidInput, match="stratum 1 .* has no labels") as error:
        estimate_prevalence(plan, missing_stratum)
    assert error.value.field == "labels"
    with pytest.raises(InvalidInput, match="not in the plan"):
        estimate_prevalence(plan, {"nobody": 1})
    with pytest.raises(InvalidInput, match="confidence"):
        estimate_prevalence(plan, labels, confidence=1.5)
    with pytest.raises(InvalidInput, match="threshold"):
        estimate_precision_recall(plan, labels, float("nan"))


def test_unreturned_labels_shrink_n_but_keep_the_estimate_defined():
    plan = tiny_plan()
    labels = tiny_labels(plan)
    by_id = {key: value for key, value in zip(plan.sample_ids.tolist(), labels.tolist(), strict=True)}
    low_zero = next(k for k, s, v in zip(plan.sample_ids, plan.sample_strata, labels, strict=True) if s == 0 and v == 0)
    del by_id[low_zero]  # one negative of the low stratum never came back: that stratum's mean is 1/2
    est = estimate_prevalence(plan, by_id)
    assert est.n_labelled == 4 and est.value == pytest.approx(0.6 * 0.5 + 0.4 * 1.0)


def test_undefined_precision_and_recall_are_nan():
    plan = tiny_plan()
    result = estimate_precision_recall(plan, np.zeros(5), threshold=0.5)
    assert math.isnan(result.recall.value) and result.precision.value == 0
    assert math.isnan(result.recall.ci_low) and math.isnan(result.recall.ci_high) and math.isnan(result.recall.se)
    result = estimate_precision_recall(plan, tiny_labels(plan), threshold=5.0)
    assert math.isnan(result.precision.value) and result.recall.value == 0
