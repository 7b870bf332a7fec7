"""Inter-rater agreement against the reference packages, and the bootstrap intervals' coverage by simulation.

References: ``krippendorff`` (PyPI) for alpha at every level with missing ratings, scikit-learn's
``cohen_kappa_score`` (unweighted, linear, quadratic) and statsmodels' ``fleiss_kappa``. The simulation's true
alpha is computed by the ``krippendorff`` package on a large sample, not by the code under test.
"""

from __future__ import annotations

import krippendorff  # the dev extra's reference implementation
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.agreement import (
    cohen_kappa,
    fleiss_kappa,
    judge_human_agreement,
    krippendorff_alpha,
)

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def likert(n_units: int, n_raters: int, noise: float, rng: np.random.Generator, missing: float = 0.0) -> np.ndarray:
    """1-5 ratings: a latent quality per unit plus rater noise, rounded and clipped; NaN where missing."""
    latent = rng.normal(3, 1.2, size=(n_units, 1))
    ratings = np.clip(np.rint(latent + rng.normal(0, noise, size=(n_units, n_raters))), 1, 5)
    ratings[rng.random(ratings.shape) < missing] = np.nan
    return ratings


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(4))
def test_alpha_matches_krippendorff_package(level, seed):
    rng = np.random.default_rng(seed)
    ratings = likert(60, 2 + seed, noise=0.4 + 0.3 * seed, rng=rng, missing=0.25)
    ours = krippendorff_alpha(ratings, level=level, n_resamples=0)
    # the package takes raters x units
    assert ours.value == pytest.approx(krippendorff.alpha(ratings.T, level_of_measurement=level), abs=1e-12)
    assert ours.n_units == int((np.sum(~np.isnan(ratings), axis=1) >= 2).sum())


def test_alpha_nominal_with_string_labels_matches():
    rng = np.random.default_rng(9)
    codes = likert(40, 3, 0.6, rng, missing=0.2)
    labels = np.where(np.isnan(codes), None, np.array(["", "bad", "poor", "fair", "good", "great"], dtype=object)[
        np.nan_to_num(codes, nan=0).astype(int)])
    assert krippendorff_alpha(labels, n_resamples=0).value == pytest.approx(
        krippendorff.alpha(codes.T, level_of_measurement="nominal"), abs=1e-12)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(3))
def test_cohen_kappa_matches_scikit_learn(weights, seed):
    ratings = likert(80, 2, 0.5 + 0.4 * seed, np.random.default_rng(seed))
    ours = cohen_kappa(ratings[:, 0], ratings[:, 1], weights=weights, n_resamples=0)
    assert ours.value == pytest.approx(cohen_kappa_score(ratings[:, 0], ratings[:, 1], weights=weights), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_fleiss_kappa_matches_statsmodels(seed):
    ratings = likert(70, 3 + seed, 0.5 + 0.3 * seed, np.random.default_rng(seed))
    counts, _ = aggregate_raters(ratings.astype(int))
    ours = fleiss_kappa(ratings, n_resamples=0)
    assert ours.value == pytest.approx(statsmodels_fleiss(counts, method="fleiss"), abs=1e-12)
    assert (ours.n_units, ours.n_raters) == (70, 3 + seed)


def test_alpha_interval_coverage_near_nominal():
    """200 samples of 80 units; the 90% percentile-bootstrap interval should cover the population alpha
    (the package's alpha on 40,000 units of the same process) about 90% of the time. Percentile bootstrap
    intervals of a ratio statistic undercover a little at this size; the bound [0.82, 0.97] allows that
    and still fails an interval that ignores unit-level variance (which covers far less)."""
    truth = krippendorff.alpha(likert(40_000, 3, 0.8, np.random.default_rng(100)).T, level_of_measurement="interval")
    rng = np.random.default_rng(101)
    covered = 0
    for rep in range(200):
        est = krippendorff_alpha(likert(80, 3, 0.8, rng, missing=0.1), level="interval", confidence=0.90,
                                 n_resamples=400, seed=rep)
        covered += est.ci_low <= truth <= est.ci_high
    assert 0.82 <= covered / 200 <= 0.97


def test_kappa_intervals_are_seeded_and_contain_the_value():
    ratings = likert(100, 4, 0.7, np.random.default_rng(5))
    first = fleiss_kappa(ratings, seed=3)
    assert first == fleiss_kappa(ratings, seed=3)
    assert first.ci_low < first.value < first.ci_high
    ck = cohen_kappa(ratings[:, 0], ratings[:, 1], weights="quadratic", seed=1)
    assert ck.ci_low < ck.value < ck.ci_high and ck.measure == "cohen_kappa_quadratic"


def test_judge_as_one_more_rater():
    rng = np.random.default_rng(21)
    latent = rng.normal(3, 1.2, size=(150, 1))
    humans = np.clip(np.rint(latent + rng.normal(0, 0.6, size=(150, 3))), 1, 5)
    good_judge = np.clip(np.rint(latent[:, 0] + rng.normal(0, 0.6, size=150)), 1, 5)
    bad_judge = rng.integers(1, 6, size=150).astype(float)
    good = judge_human_agreement(humans, good_judge, level="interval", seed=0)
    bad = judge_human_agreement(humans, bad_judge, level="interval", seed=0)
    # reference for the two alphas: the package on the same tables
    assert good.humans.value == pytest.approx(krippendorff.alpha(humans.T, level_of_measurement="interval"))
    assert good.with_judge.value == pytest.approx(
        krippendorff.alpha(np.column_stack([humans, good_judge]).T, level_of_measurement="interval"))
    assert good.difference_ci_low <= 0 <= good.difference_ci_high   # as consistent as another human
    assert bad.difference_ci_high < 0                               # a random judge lowers agreement
    assert (good.with_judge.n_raters, good.humans.n_raters) == (4, 3)


def test_edge_cases():
    assert np.isnan(krippendorff_alpha([[1, 1], [1, 1]], n_resamples=10).value)   # one value: undefined
    assert np.isnan(krippendorff_alpha([[1, None], [None, 2]], n_resamples=0).value)  # no pairable unit
    assert krippendorff_alpha([[1, None], [None, 2]], n_resamples=0).n_units == 0
    assert np.isnan(cohen_kappa(["a", "a"], ["a", "a"], n_resamples=0).value)
    assert np.isnan(fleiss_kappa([["a", "a"], ["a", "a"]], n_resamples=0).value)
    perfect = krippendorff_alpha([[1, 1, 1], [2, 2, None], [3, 3, 3], [1, 1, 1]], level="ordinal", n_resamples=50)
    assert perfect.value == 1.0


@pytest.mark.parametrize(
    ("call", "field", "problem"),
    [
        (lambda: krippendorff_alpha([1, 2, 3]), "ratings", "two-dimensional"),
        (lambda: krippendorff_alpha(np.empty((0, 2))), "ratings", "no units"),
        (lambda: krippendorff_alpha([[1, "x"]], level="interval"), "ratings", "row 1, rater 2: 'x' is not a finite number"),
        (lambda: krippendorff_alpha([[1, np.inf]], level="ordinal"), "ratings", "row 1, rater 2"),
        (lambda: krippendorff_alpha([[1, -1]], level="ratio"), "ratings", "non-negative"),
        (lambda: krippendorff_alpha([[1, 1]], level="likert"), "level", "must be one of"),
        (lambda: krippendorff_alpha([[1, 1]], confidence=0), "confidence", "between 0 and 1"),
        (lambda: krippendorff_alpha([[1, 1]], n_resamples=-1), "n_resamples", ">= 0"),
        (lambda: cohen_kappa([1, 2], [1]), "rater_2", "has 1 ratings but rater_1 has 2"),
        (lambda: cohen_kappa([1, None], [1, 2]), "rater_1", "row 2: rating is missing"),
        (lambda: cohen_kappa([1, 2], [1, 2], weights="cubic"), "weights", "linear"),
        (lambda: fleiss_kappa([["a", None], ["a", "b"]]), "ratings", "row 1, rater 2: rating is missing"),
        (lambda: fleiss_kappa([["a"], ["b"]]), "ratings", "at least 2 ratings per unit"),
        (lambda: judge_human_agreement([[1, 2], [2, 2]], [1]), "judge_ratings", "one rating per unit (2)"),
    ],
)
def test_bad_input_is_refused_naming_the_field(call, field, problem):
    with pytest.raises(InvalidInput) as error:
        call()
    assert error.value.field == field and problem in error.value.problem


def test_evalp_score_agreement(tmp_path, capsys):
    import json

    import pandas as pd

    from eval_platform.cli import main as cli

    ratings = likert(50, 3, 0.6, np.random.default_rng(30))
    judge = np.clip(ratings[:, 0] + np.random.default_rng(31).integers(-1, 2, size=50), 1, 5)
    frame = pd.DataFrame({"ann": ratings[:, 0], "bob": ratings[:, 1], "cy": ratings[:, 2], "gpt": judge})
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    base = ["score", "agreement", "--data", str(path), "--rater", "ann", "--rater", "bob", "--json"]
    assert cli.main([*base, "--rater", "cy", "--judge", "gpt", "--level", "ordinal", "--resamples", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["krippendorff_alpha"]["value"] == pytest.approx(krippendorff.alpha(ratings.T, level_of_measurement="ordinal"))
    assert out["with_judge"]["value"] == pytest.approx(
        krippendorff.alpha(np.column_stack([ratings, judge]).T, level_of_measurement="ordinal"))
    assert out["judge_minus_humans"]["ci_low"] <= out["judge_minus_humans"]["value"] <= out["judge_minus_humans"]["ci_high"]
    assert cli.main(base) == 0  # two raters, nominal, nothing missing: Cohen and Fleiss too
    out = json.loads(capsys.readouterr().out)
    assert out["cohen_kappa"]["value"] == pytest.approx(cohen_kappa_score(ratings[:, 0], ratings[:, 1]))
    assert set(out) == {"krippendorff_alpha", "cohen_kappa", "fleiss_kappa"}
    frame["bob"] = frame["bob"].astype(object)
    frame.loc[3, "bob"] = "x"  # ("n/a" would be read back as a missing rating, which alpha allows)
    frame.to_csv(path, index=False)
    assert cli.main([*base, "--level", "interval"]) == 2
    assert "row 4, rater 2: 'x' is not a finite number" in capsys.readouterr().err


def test_alpha_with_continuous_ratings_and_many_sparse_raters():
    """Thousands of distinct values (judge scores in [0, 1]) and 200 raters of whom 3 rate each unit: no
    per-unit coincidence matrix is built (that would be units x values^2), and the values still match."""
    import time

    rng = np.random.default_rng(40)
    latent = rng.random((3000, 1))
    dense = np.clip(latent + rng.normal(0, 0.15, size=(3000, 3)), 0, 1)    # ~9000 distinct values
    sparse_table = np.full((3000, 200), np.nan)
    for u in range(3000):
        sparse_table[u, rng.choice(200, size=3, replace=False)] = dense[u]
    started = time.perf_counter()
    ours = krippendorff_alpha(sparse_table, level="interval", n_resamples=200)
    assert time.perf_counter() - started < 5
    # the krippendorff package builds a units x values x values array here (1.4 TiB): the textbook interval
    # form instead, alpha = 1 - (n - 1) sum_u sum_{i != j} (x_ui - x_uj)^2 / (m_u - 1) / sum_{a != b} (x_a - x_b)^2
    within = sum(((row[:, None] - row[None, :]) ** 2).sum() / 2 for row in dense)  # m_u - 1 = 2
    values = dense.ravel()
    between = 2 * len(values) * (values**2).sum() - 2 * values.sum() ** 2
    assert ours.value == pytest.approx(1 - (len(values) - 1) * within / between, abs=1e-10)
    assert ours.ci_low < ours.value < ours.ci_high and ours.n_units == 3000
    judged = judge_human_agreement(dense[:, :2], dense[:, 2], level="interval", n_resamples=200)
    assert judged.with_judge.value == pytest.approx(ours.value, abs=1e-10)
    # every level on a continuous table small enough for the package (100 units, ~300 distinct values)
    small = dense[:100]
    for level in LEVELS:
        assert krippendorff_alpha(small, level=level, n_resamples=20).value == pytest.approx(
            krippendorff.alpha(small.T, level_of_measurement=level), abs=1e-10)


def test_alpha_single_non_integer_value_is_undefined():
    assert np.isnan(krippendorff_alpha([[0.1, 0.1], [0.1, 0.1], [0.1, None]], level="interval", n_resamples=5).value)
    assert np.isnan(krippendorff_alpha([[0.3, 0.3], [0.3, 0.3]], level="ordinal", n_resamples=5).value)


def test_resamples_drawn_in_blocks_give_the_same_interval(monkeypatch):
    """Memory is bounded by drawing resamples in blocks; the block size changes nothing (one stream)."""
    from eval_platform.metrics import agreement

    ratings = likert(300, 3, 0.7, np.random.default_rng(50), missing=0.1)
    whole = krippendorff_alpha(ratings, level="ordinal", n_resamples=300, seed=4)
    monkeypatch.setattr(agreement, "_BLOCK_CELLS", 300 * 7)  # 7 resamples per block
    blocked = krippendorff_alpha(ratings, level="ordinal", n_resamples=300, seed=4)
    assert (blocked.ci_low, blocked.ci_high) == pytest.approx((whole.ci_low, whole.ci_high), abs=1e-12)
