"""The fast paired bootstrap of the binary suite (``eval_platform.stats.bootstrap``).

* point values are the catalog's, exactly;
* on given multiplicity vectors every resampled value of both models equals the catalog function on the
  explicitly repeated rows (to 1e-9), on data with ties, few positives, one class, and with the batch
  forced into many small chunks (the carries between chunks);
* the count sampler draws exact multinomial counts (sum n, multinomial covariance), and its Poisson
  stage has Poisson marginals;
* the intervals agree with ``comparison.paired_bootstrap`` within Monte-Carlo error, undefined resamples
  are counted as the reference counts them, and the numbers depend on the seed only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.catalog import get_metric
from eval_platform.stats import bootstrap, multinomial
from eval_platform.stats.comparison import paired_bootstrap

TOL = 1e-9

ALL_DEFAULTS = [(name, name, {}) for name in sorted(bootstrap.SUPPORTED)]
EXTRA = [
    ("precision@0.3", "precision", {"threshold": 0.3}),
    ("recall@0.7", "recall@1", {"threshold": 0.7}),
    ("f1@0.3", "f1", {"threshold": 0.3}),
    ("accuracy@0.7", "accuracy", {"threshold": 0.7}),
    ("fpr@0.3", "false_positive_rate", {"threshold": 0.3}),
    ("rap@0", "recall_at_precision", {"min_precision": 0.0}),
    ("rap@0.5", "recall_at_precision", {"min_precision": 0.5}),
    ("rap@1", "recall_at_precision", {"min_precision": 1.0}),
    ("tap@0", "threshold_at_precision", {"min_precision": 0.0}),
    ("tap@0.5", "threshold_at_precision", {"min_precision": 0.5}),
    ("tap@1", "threshold_at_precision", {"min_precision": 1.0}),
    ("ece@1", "expected_calibration_error", {"n_bins": 1}),
    ("ece@3", "expected_calibration_error", {"n_bins": 3}),
]
METRICS = ALL_DEFAULTS + EXTRA


def catalog(name: str, params: dict, label, score) -> float:
    definition = get_metric(f"{name.partition('@')[0]}@1")
    return definition.compute({"label": label, "score": score}, **definition.resolve_params(params))


def same(a: float, b: float, tol: float = TOL) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


def data(kind: str, n: int, seed: int):
    """Labels, candidate and baseline probabilities of a few shapes (ties across classes included)."""
    rng = np.random.default_rng(seed)
    prevalence = {"few_positives": 0.03, "balanced": 0.5}.get(kind, 0.25)
    y = (rng.random(n) < prevalence).astype(np.int64)
    if kind == "one_positive":
        y = np.zeros(n, np.int64)
        y[n // 2] = 1
    if kind == "no_negatives":
        y = np.ones(n, np.int64)
    if kind == "no_positives":
        y = np.zeros(n, np.int64)
    noise = rng.normal(size=(2, n))
    cand = 1 / (1 + np.exp(-(2.0 * y - 1.0 + noise[0])))
    base = 1 / (1 + np.exp(-(1.2 * y - 0.6 + 1.3 * noise[1])))
    if kind in ("ties", "few_positives", "balanced"):
        cand, base = np.round(cand, 1), np.round(base, 2)  # many ties, within and across classes
    if kind == "all_tied":
        cand, base = np.full(n, 0.3), np.round(base, 1)
    return y, cand, base


KINDS = ["continuous", "ties", "few_positives", "balanced", "one_positive", "all_tied", "no_negatives", "no_positives"]


# ------------------------------------------------------------------------------------------------------
# Exactness


@pytest.mark.parametrize("kind", KINDS)
def test_point_values_are_the_catalogs(kind):
    y, cand, base = data(kind, 300, seed=1)
    results = bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 20, 0.9, seed=3)
    assert list(results) == [m[0] for m in METRICS]
    for suite_name, name, params in METRICS:
        result = results[suite_name]
        c, b = catalog(name, params, y, cand), catalog(name, params, y, base)
        assert same(result["candidate"], c, 0) and same(result["baseline"], b, 0), suite_name
        delta = c - b if math.isfinite(c) and math.isfinite(b) else float("nan")
        assert same(result["delta"], delta, 0), suite_name
        assert result["n_units"] == 300 and result["unit"] == "example" and result["seed"] == 3
        assert result["resamples"] == 20 and result["confidence"] == 0.9


def multiplicities(n: int, resamples: int, seed: int) -> np.ndarray:
    """Multinomial resamples, sparse ones (many examples not drawn) and a few degenerate rows."""
    rng = np.random.default_rng(seed)
    rows = [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]
    rows += [rng.poisson(0.3, n) for _ in range(resamples)]
    one = np.zeros(n, np.int64)
    one[rng.integers(n)] = 5
    rows += [one, np.zeros(n, np.int64), np.ones(n, np.int64)]
    return np.stack(rows)


def assert_resamples_equal_repeated_rows(y, cand, base, weights):
    values = bootstrap.resampled_values(METRICS, y, cand, base, weights)
    checked = 0
    for r, w in enumerate(weights):
        rows = np.repeat(np.arange(y.size), w)
        for suite_name, name, params in METRICS:
            for slot, score in ((0, cand), (1, base)):
                got = values[suite_name][slot][r]
                if rows.size == 0:  # the catalog refuses empty input; every metric is undefined here
                    assert math.isnan(got) or suite_name.startswith(("precision", "f1")), suite_name
                    continue
                want = catalog(name, params, y[rows], score[rows])
                assert same(got, want), (suite_name, slot, r, got, want)
                checked += 1
    return checked


@pytest.mark.parametrize("kind", KINDS)
def test_each_resample_equals_the_catalog_on_the_repeated_rows(kind):
    y, cand, base = data(kind, 240, seed=2)
    assert assert_resamples_equal_repeated_rows(y, cand, base, multiplicities(240, 12, seed=5)) > 0


def test_chunk_carries_are_exact(monkeypatch):
    """Tiny chunks: every quantity crosses chunk boundaries (carries of TP and FP, the last group
    reaching a precision found in an earlier chunk, ECE bins split over chunks)."""
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 40)
    for kind, seed in (("continuous", 7), ("ties", 8), ("balanced", 9)):
        y, cand, base = data(kind, 1500, seed=seed)
        assert assert_resamples_equal_repeated_rows(y, cand, base, multiplicities(1500, 3, seed=seed)) > 0


def test_resampled_values_validates_the_multiplicities():
    y, cand, base = data("continuous", 50, seed=1)
    with pytest.raises(InvalidInput, match="multiplicities"):
        bootstrap.resampled_values(METRICS, y, cand, base, np.ones((3, 49), np.int64))
    with pytest.raises(InvalidInput, match="multiplicities"):
        bootstrap.resampled_values(METRICS, y, cand, base, -np.ones((3, 50), np.int64))


# ------------------------------------------------------------------------------------------------------
# The count sampler


@pytest.mark.parametrize("n", [1, 2, 5, 9, 10, 64, 1000, 65_537])
@pytest.mark.parametrize("lam", [None, 1.0])  # 1.0: half the Poisson draws exceed n and are redrawn
def test_counts_sum_to_n(n, lam):
    sampler = multinomial.CountSampler(n, lam)
    rng = np.random.default_rng(n)
    out = np.empty(n, np.uint8)
    for _ in range(20):
        sampler.draw(rng, out)
        assert int(out.sum(dtype=np.int64)) == n


@pytest.mark.parametrize("lam", [None, 0.95])
def test_counts_have_the_multinomial_covariance(lam):
    """Multinomial(n, 1/n): var = 1 - 1/n and cov = -1/n; a Poisson bootstrap would give 1 and 0. The
    thinning rate does not matter (0.95: more redraws, smaller top-ups)."""
    n, draws = 20, 20_000
    sampler = multinomial.CountSampler(n, lam)
    rng = np.random.default_rng(0)
    counts = np.empty((draws, n), np.uint8)
    for i in range(draws):
        sampler.draw(rng, counts[i])
    c = counts.astype(np.float64)
    cov = np.cov(c, rowvar=False)
    assert abs(c.mean() - 1) < 0.01
    assert abs(np.diag(cov).mean() - (1 - 1 / n)) < 0.02
    off = cov[~np.eye(n, dtype=bool)].mean()
    assert abs(off + 1 / n) < 0.005
    # the count of one example is Binomial(n, 1/n)
    freq = np.bincount(counts[:, 0], minlength=8)[:5] / draws
    expected = [math.comb(n, k) * (1 / n) ** k * (1 - 1 / n) ** (n - k) for k in range(5)]
    assert np.all(np.abs(freq - expected) < 5 * np.sqrt(np.array(expected) / draws) + 1e-3)


def test_poisson_stage_has_poisson_marginals():
    """The byte comparisons plus the recursive residual draw give Poisson(lam) counts, tail included."""
    n = 1_000_000
    sampler = multinomial.CountSampler(n)
    out = np.empty(n, np.uint8)
    rng = np.random.default_rng(4)
    freq = np.zeros(10)
    for _ in range(3):
        sampler._poisson(rng, out)
        freq += np.bincount(out, minlength=10)[:10]
    lam, total = sampler.lam, 3 * n
    for k in range(8):
        expected = total * math.exp(-lam) * lam**k / math.factorial(k)
        assert abs(freq[k] - expected) < 5 * math.sqrt(expected) + 2, (k, freq[k], expected)


# ------------------------------------------------------------------------------------------------------
# Against the reference bootstrap


def reference(name, params, y, cand, base, resamples, confidence, seed):
    definition = get_metric(f"{name.partition('@')[0]}@1")
    return paired_bootstrap(definition, definition.resolve_params(params), {"label": y, "score": cand},
                            {"label": y, "score": base}, resamples, confidence, seed)


def test_intervals_agree_with_the_reference_bootstrap():
    """Same settings, different random numbers: the interval ends agree within Monte-Carlo error
    (about 0.12 sigma for 1000 resamples at 95 %; allowed 0.6 sigma, sigma ~ width / 3.92)."""
    y, cand, base = data("continuous", 400, seed=11)
    metrics = ALL_DEFAULTS + [m for m in EXTRA if m[0] in ("rap@0.5", "tap@0.5", "ece@3", "precision@0.3")]
    ours = bootstrap.paired_bootstrap_binary(metrics, y, cand, base, 1000, 0.95, seed=0)
    for suite_name, name, params in metrics:
        ref = reference(name, params, y, cand, base, 1000, 0.95, seed=0)
        got = ours[suite_name]
        assert set(got) == set(ref)
        for key in ("candidate", "baseline", "delta", "confidence", "resamples", "seed", "unit", "n_units"):
            assert same(got[key], ref[key], 0) if isinstance(ref[key], float) else got[key] == ref[key], (suite_name, key)
        width = ref["ci_high"] - ref["ci_low"]
        step = 0.01 if name == "threshold_at_precision" else 0.0  # resampled thresholds are data values
        tolerance = 0.6 * width / 3.92 + step + 1e-12
        assert abs(got["ci_low"] - ref["ci_low"]) <= tolerance, (suite_name, got, ref)
        assert abs(got["ci_high"] - ref["ci_high"]) <= tolerance, (suite_name, got, ref)
        assert got["undefined_resamples"] == ref["undefined_resamples"] == 0


def test_the_pairing_is_kept():
    """Two strongly correlated models: the paired interval is far narrower than an unpaired one would be;
    drawing the baseline's multiplicities independently would fail the comparison above and this one."""
    y, cand, _ = data("continuous", 400, seed=12)
    base = np.clip(cand + np.random.default_rng(1).normal(0, 0.01, cand.size), 0, 1)
    metrics = [("roc_auc", "roc_auc", {}), ("log_loss", "log_loss", {})]
    ours = bootstrap.paired_bootstrap_binary(metrics, y, cand, base, 500, 0.95, seed=1)
    for suite_name, name, params in metrics:
        ref = reference(name, params, y, cand, base, 500, 0.95, seed=1)
        ours_width = ours[suite_name]["ci_high"] - ours[suite_name]["ci_low"]
        ref_width = ref["ci_high"] - ref["ci_low"]
        assert 0.7 * ref_width < ours_width < 1.4 * ref_width, (suite_name, ours_width, ref_width)


def test_undefined_resamples_are_counted_like_the_reference():
    """One positive in 60: a resample misses it with probability (1 - 1/60)^60 ~ 0.364; the ranking
    metrics and recall are then undefined (and counted), precision and accuracy never are."""
    y, cand, base = data("one_positive", 60, seed=3)
    metrics = [("roc_auc", "roc_auc", {}), ("average_precision", "average_precision", {}),
               ("recall", "recall", {}), ("accuracy", "accuracy", {}), ("rap", "recall_at_precision", {"min_precision": 0.0})]
    resamples = 2000
    ours = bootstrap.paired_bootstrap_binary(metrics, y, cand, base, resamples, 0.95, seed=5)
    p_missing = (1 - 1 / 60) ** 60
    sd = math.sqrt(resamples * p_missing * (1 - p_missing))
    for suite_name in ("roc_auc", "average_precision", "recall", "rap"):
        assert abs(ours[suite_name]["undefined_resamples"] - resamples * p_missing) < 5 * sd, suite_name
    assert ours["accuracy"]["undefined_resamples"] == 0
    ref = reference("roc_auc", {}, y, cand, base, resamples, 0.95, 5)
    assert abs(ours["roc_auc"]["undefined_resamples"] - ref["undefined_resamples"]) < 7 * sd


def test_mostly_undefined_gives_no_interval():
    # no positive at all: every ranking metric is undefined on every resample, as in the reference
    y, cand, base = data("no_positives", 80, seed=4)
    ours = bootstrap.paired_bootstrap_binary(ALL_DEFAULTS, y, cand, base, 50, 0.95, seed=0)
    for suite_name, name, params in ALL_DEFAULTS:
        ref = reference(name, params, y, cand, base, 50, 0.95, 0)
        got = ours[suite_name]
        assert got["undefined_resamples"] == ref["undefined_resamples"], suite_name
        assert same(got["ci_low"], ref["ci_low"], 1.0) and same(got["ci_high"], ref["ci_high"], 1.0), suite_name
        if ref["undefined_resamples"] == 50:
            assert math.isnan(got["ci_low"]) and math.isnan(got["ci_high"])
    # a negative scored 1.0 by both models: no threshold reaches precision 1 (inf - inf) whenever that
    # negative is drawn, i.e. on ~63 % of the resamples, so more than half are undefined: no interval
    y, cand, base = data("continuous", 200, seed=6)
    cand[np.flatnonzero(y == 0)[0]] = base[np.flatnonzero(y == 0)[0]] = 1.0
    metric = [("t", "threshold_at_precision", {"min_precision": 1.0})]
    result = bootstrap.paired_bootstrap_binary(metric, y, cand, base, 400, 0.95, seed=0)["t"]
    ref = reference("threshold_at_precision", {"min_precision": 1.0}, y, cand, base, 400, 0.95, 0)
    assert result["candidate"] == result["baseline"] == math.inf and math.isnan(result["delta"])
    drawn = 1 - (1 - 1 / 200) ** 200
    for r in (result, ref):
        assert abs(r["undefined_resamples"] - 400 * drawn) < 5 * math.sqrt(400 * drawn * (1 - drawn))
        assert math.isnan(r["ci_low"]) and math.isnan(r["ci_high"])


# ------------------------------------------------------------------------------------------------------
# Reproducibility and validation


def identical(a: dict, b: dict, tol: float = 0) -> bool:
    """Equal result dicts, ``nan`` equal to ``nan``."""
    return a.keys() == b.keys() and all(
        x.keys() == y.keys() and all(same(x[k], y[k], tol) if isinstance(x[k], float) else x[k] == y[k] for k in x)
        for x, y in zip(a.values(), b.values(), strict=True))


def test_seeded_and_independent_of_batching_and_threads(monkeypatch):
    y, cand, base = data("ties", 500, seed=13)
    first = bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 64, 0.95, seed=42)
    assert identical(bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 64, 0.95, seed=42), first)
    assert identical(bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 64, 0.95, seed=42, workers=2), first)
    # other batches and chunks: the same draws, summed in another order (so equal to rounding)
    monkeypatch.setattr(bootstrap, "_BATCH_ELEMENTS", 3 * 500)  # batches of 3 resamples
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 200)
    rebatched = bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 64, 0.95, seed=42, workers=2)
    assert identical(rebatched, first, 1e-12)
    other = bootstrap.paired_bootstrap_binary(METRICS, y, cand, base, 64, 0.95, seed=43)
    assert other["roc_auc"]["ci_low"] != first["roc_auc"]["ci_low"]
    assert other["accuracy"]["ci_low"] != first["accuracy"]["ci_low"] or other["f1"]["ci_low"] != first["f1"]["ci_low"]


def test_identical_models_have_a_degenerate_interval():
    y, cand, _ = data("continuous", 300, seed=14)
    results = bootstrap.paired_bootstrap_binary(ALL_DEFAULTS, y, cand, cand.copy(), 100, 0.9, seed=0)
    for suite_name, result in results.items():
        if suite_name != "threshold_at_precision" or math.isfinite(result["candidate"]):
            assert result["delta"] == result["ci_low"] == result["ci_high"] == 0, suite_name


def test_validation():
    y, cand, base = data("continuous", 100, seed=15)
    with pytest.raises(InvalidInput, match="not a binary metric"):
        bootstrap.paired_bootstrap_binary([("x", "ndcg", {})], y, cand, base, 10, 0.95, 0)
    with pytest.raises(InvalidInput, match="unknown parameter"):
        bootstrap.paired_bootstrap_binary([("x", "roc_auc", {"k": 3})], y, cand, base, 10, 0.95, 0)
    with pytest.raises(InvalidInput, match="NaN"):
        bootstrap.paired_bootstrap_binary(ALL_DEFAULTS, y, np.r_[cand[:-1], np.nan], base, 10, 0.95, 0)
    with pytest.raises(InvalidInput, match="probabilities"):
        bootstrap.paired_bootstrap_binary([("ll", "log_loss", {})], y, cand * 2, base, 10, 0.95, 0)
    # ranking metrics take any scores, as in the catalog
    assert bootstrap.paired_bootstrap_binary([("auc", "roc_auc", {})], y, cand * 2, base, 10, 0.95, 0)["auc"]["candidate"] > 0.5
    with pytest.raises(InvalidInput, match="resamples"):
        bootstrap.paired_bootstrap_binary(ALL_DEFAULTS, y, cand, base, 0, 0.95, 0)
    with pytest.raises(InvalidInput, match="baseline|label/score"):
        bootstrap.paired_bootstrap_binary(ALL_DEFAULTS, y, cand, base[:-1], 10, 0.95, 0)
    assert bootstrap.supports("roc_auc@1") and bootstrap.supports("f1") and not bootstrap.supports("roc_auc@2")
