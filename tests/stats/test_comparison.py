"""Paired bootstrap intervals and the exact McNemar test."""

import numpy as np
import pytest
from scipy.stats import binomtest

from eval_platform.metrics.catalog import get_metric
from eval_platform.stats.comparison import mcnemar_exact, paired_bootstrap


def columns(rng, n, noise):
    label = rng.integers(0, 2, n)
    return label, {"label": label, "score": np.clip(label * 0.5 + rng.normal(0.25, noise, n), 0, 1)}


def test_bootstrap_is_seeded_paired_and_brackets_the_delta():
    rng = np.random.default_rng(1)
    label, candidate = columns(rng, 400, 0.2)
    baseline = {"label": label, "score": np.clip(label * 0.5 + rng.normal(0.25, 0.35, 400), 0, 1)}
    auc = get_metric("roc_auc@1")
    first = paired_bootstrap(auc, {}, candidate, baseline, 500, 0.95, seed=7)
    again = paired_bootstrap(auc, {}, candidate, baseline, 500, 0.95, seed=7)
    assert first == again  # recorded seed: same numbers
    assert first["ci_low"] < first["delta"] < first["ci_high"]
    assert first["delta"] == pytest.approx(auc.compute(candidate) - auc.compute(baseline))
    assert first["ci_low"] > 0  # the less noisy model is clearly better
    other_seed = paired_bootstrap(auc, {}, candidate, baseline, 500, 0.95, seed=8)
    assert other_seed["ci_low"] != first["ci_low"]


def test_identical_models_have_a_degenerate_interval_at_zero():
    rng = np.random.default_rng(2)
    _, candidate = columns(rng, 200, 0.2)
    result = paired_bootstrap(get_metric("average_precision@1"), {}, candidate, dict(candidate), 200, 0.9, seed=0)
    assert result["delta"] == 0 and result["ci_low"] == 0 and result["ci_high"] == 0


def test_resamples_where_the_metric_is_undefined_are_counted():
    label = np.array([1] + [0] * 49)  # one positive: many resamples draw none
    candidate = {"label": label, "score": np.linspace(0, 1, 50)}
    baseline = {"label": label, "score": np.linspace(1, 0, 50)}
    result = paired_bootstrap(get_metric("roc_auc@1"), {}, candidate, baseline, 200, 0.95, seed=0)
    assert 0 < result["undefined_resamples"] < 200


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_matches_the_binomial_test(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(300) < 0.8, rng.random(300) < 0.75
    result = mcnemar_exact(a, b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert (result["only_candidate_correct"], result["only_baseline_correct"]) == (only_a, only_b)
    assert result["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, abs=1e-12)
    assert mcnemar_exact(a, a)["p_value"] == 1.0
