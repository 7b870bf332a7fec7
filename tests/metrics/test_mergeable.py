"""Per-shard metric states merged over random shard splits equal the single-process metrics (and scikit-learn's).

Every case draws data with many score ties (scores on a grid of 1/20), splits the rows at random cut
points (so some shards are empty, some hold one class only, and tie groups straddle shards), computes a
state per shard, merges them in a shuffled order, and compares with the catalog function on all rows and
with scikit-learn. Tolerance 1e-12 absolute; counts and the sorted-run metrics are compared exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as clf
from eval_platform.metrics import generation as gen
from eval_platform.metrics import multiclass as mc
from eval_platform.metrics import ranking
from eval_platform.metrics.mergeable import (
    BinaryCounts,
    ConfusionCounts,
    MeanOfScores,
    QueryRows,
    ScoreRuns,
    merge_sorted_runs,
    merge_states,
)

SEEDS = range(40)
TOL = 1e-12


def random_shards(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Row indices of 1-8 shards: a random permutation cut at random (possibly repeated) points."""
    k = int(rng.integers(1, 9))
    cuts = np.sort(rng.integers(0, n + 1, size=k - 1))
    order = rng.permutation(n) if rng.random() < 0.7 else np.arange(n)  # sometimes contiguous blocks
    return np.split(order, cuts)


def merged(states):
    states = list(states)
    np.random.default_rng(len(states)).shuffle(states)  # merge order must not matter
    return merge_states(states)


def binary_case(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(np.int64)
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1) * 20) / 20  # 21 distinct values: many ties
    return rng, y, s


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_states_equal_single_process_and_sklearn(seed):
    rng, y, s = binary_case(seed)
    shards = random_shards(rng, y.size)
    threshold = float(rng.choice([0.0, 0.35, 0.5, 0.55, 1.0]))

    counts = merged(BinaryCounts.from_shard(y[i], s[i], threshold) for i in shards).value()
    runs = merged(ScoreRuns.from_shard(y[i], s[i]) for i in shards).value(min_precision=0.8)
    suite = clf.binary_suite(y, s, threshold, min_precision=0.8)

    # counts: exact, and equal to scikit-learn's
    predicted = (s >= threshold).astype(int)
    assert counts.n == y.size
    assert counts.precision == suite["precision"] == pytest.approx(skm.precision_score(y, predicted, zero_division=0), abs=TOL)
    assert counts.f1 == suite["f1"] == pytest.approx(skm.f1_score(y, predicted, zero_division=0), abs=TOL)
    assert counts.accuracy == suite["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=TOL)
    assert_same(counts.recall, suite["recall"])
    assert_same(counts.false_positive_rate, suite["false_positive_rate"])
    # float sums in another order: to 1e-12
    assert counts.log_loss == pytest.approx(suite["log_loss"], abs=TOL)
    assert counts.log_loss == pytest.approx(skm.log_loss(y, s, labels=[0, 1]), abs=1e-9)  # sklearn clips at its own eps
    assert counts.brier_score == pytest.approx(skm.brier_score_loss(y, s, pos_label=1) if y.any() else np.mean(s**2), abs=TOL)
    assert counts.expected_calibration_error == pytest.approx(suite["expected_calibration_error"], abs=TOL)

    # sorted runs: the very numbers of the single sort, and scikit-learn's
    assert_same(runs.roc_auc, suite["roc_auc"])
    assert_same(runs.average_precision, suite["average_precision"])
    assert_same(runs.recall_at_precision, suite["recall_at_precision"])
    assert_same(runs.threshold_at_precision, suite["threshold_at_precision"])
    if 0 < y.sum() < y.size:
        assert runs.roc_auc == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
        assert runs.average_precision == pytest.approx(skm.average_precision_score(y, s), abs=TOL)


def assert_same(a: float, b: float) -> None:
    assert (math.isnan(a) and math.isnan(b)) or a == b, (a, b)


def test_merge_of_sorted_runs_equals_sorting_the_concatenation():
    rng = np.random.default_rng(7)
    for _ in range(200):
        runs = [np.sort(rng.integers(-5, 6, size=int(rng.integers(0, 30))).astype(float)) for _ in range(int(rng.integers(1, 10)))]
        runs.append(np.array([-np.inf, np.inf]))
        expected = np.sort(np.concatenate(runs))
        np.testing.assert_array_equal(merge_sorted_runs(runs), expected)


def test_tie_split_across_shards_is_one_diagonal_step():
    # one positive and one negative with the same score, in different shards: AUC 0.5 (half credit), not 0 or 1
    state = merge_states([ScoreRuns.from_shard([1], [0.7]), ScoreRuns.from_shard([0], [0.7])])
    assert state.value().roc_auc == 0.5 == skm.roc_auc_score([1, 0], [0.7, 0.7])
    assert state.value().average_precision == 0.5 == skm.average_precision_score([1, 0], [0.7, 0.7])


def test_single_class_shards_merge_to_a_defined_auc_and_empty_merge_is_nan():
    positives = ScoreRuns.from_shard([1, 1], [0.9, 0.2])
    negatives = ScoreRuns.from_shard([0, 0], [0.5, 0.1])
    assert math.isnan(positives.value().roc_auc)  # one class alone: undefined, as roc_auc() says
    assert merge_states([positives, negatives]).value().roc_auc == skm.roc_auc_score([1, 1, 0, 0], [0.9, 0.2, 0.5, 0.1]) == 0.75
    empty = merge_states([ScoreRuns.from_shard([], []), ScoreRuns.from_shard([], [])])
    assert empty.value().n_positive == 0 and math.isnan(empty.value().roc_auc)
    nothing = merge_states([BinaryCounts.from_shard([], []), BinaryCounts.from_shard([], [])]).value()
    assert nothing.n == 0 and math.isnan(nothing.accuracy) and math.isnan(nothing.log_loss)


@pytest.mark.parametrize("seed", range(25))
def test_confusion_counts_equal_single_process_and_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    n, k = int(rng.integers(1, 300)), int(rng.integers(2, 6))
    classes = np.array(["a", "b", "c", "d", "e"][:k])
    y = rng.choice(classes[: max(1, k - int(rng.integers(0, 2)))], size=n)  # sometimes a class never occurs
    proba = np.round(rng.dirichlet(np.ones(k), size=n) * 4) + 0.0  # coarse: argmax ties go to the first column
    proba = (proba + 1e-3) / (proba + 1e-3).sum(axis=1, keepdims=True)
    shards = random_shards(rng, n)
    got = merged(ConfusionCounts.from_shard(y[i], proba[i], classes) for i in shards).value()

    cm = merge_states([ConfusionCounts.from_shard(y[i], proba[i], classes) for i in shards]).counts
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, classes[np.argmax(proba, axis=1)], labels=classes))
    assert got.accuracy == mc.multiclass_accuracy(y, proba, classes)
    for average in ("macro", "micro", "weighted"):
        assert_same(getattr(got, f"precision_{average}"), mc.multiclass_precision(y, proba, classes, average))
        assert_same(getattr(got, f"recall_{average}"), mc.multiclass_recall(y, proba, classes, average))
        assert_same(getattr(got, f"f1_{average}"), mc.multiclass_f1(y, proba, classes, average))
    present = np.unique(y)
    predicted = classes[np.argmax(proba, axis=1)]
    assert got.f1_macro == pytest.approx(skm.f1_score(y, predicted, labels=present, average="macro", zero_division=0), abs=TOL)
    assert got.log_loss == pytest.approx(mc.multiclass_log_loss(y, proba, classes), abs=TOL)
    assert got.log_loss == pytest.approx(skm.log_loss(y, proba, labels=classes), abs=TOL)


@pytest.mark.parametrize("seed", range(10))
def test_query_rows_sharded_by_query_equal_the_whole_run(seed):
    rng = np.random.default_rng(200 + seed)
    n_queries = int(rng.integers(1, 40))
    docs = lambda most: rng.choice(30, size=int(rng.integers(1, most)), replace=False)
    rows = [(f"q{q}", f"d{d}", float(rng.integers(0, 5))) for q in range(n_queries) for d in docs(15)]  # integer scores: ties
    qrels = [(f"q{q}", f"d{d}", int(rng.integers(0, 3))) for q in range(n_queries) for d in docs(10)]

    def data(queries):
        run = [r for r in rows if r[0] in queries] or rows[:1]
        judged = [r for r in qrels if r[0] in queries] or [("none", "d", 1)]
        return ranking.prepare_ranking(*(np.array(c) for c in zip(*run, strict=True)), *(np.array(c) for c in zip(*judged, strict=True)))

    queries = np.array([f"q{q}" for q in range(n_queries)])
    shard_queries = [set(queries[i]) for i in random_shards(rng, n_queries) if i.size]
    whole = data(set(queries))
    for fn in (ranking.ndcg_at_k, ranking.average_precision, ranking.reciprocal_rank, ranking.precision_at_k):
        state = merged(QueryRows.from_shard(fn(data(q))) for q in shard_queries)
        ids, values = fn(whole)
        np.testing.assert_array_equal(state.rows()[0], ids)
        np.testing.assert_array_equal(state.rows()[1], values)
        assert state.value() == pytest.approx(ranking.mean_over_queries((ids, values)), abs=TOL)


def test_a_query_in_two_shards_is_refused():
    with pytest.raises(InvalidInput) as error:
        merge_states([QueryRows.from_shard((np.array(["q1", "q2"]), np.array([0.5, 1.0]))),
                      QueryRows.from_shard((np.array(["q2"]), np.array([0.0])))])
    assert error.value.field == "query_id" and "'q2'" in str(error.value)


@pytest.mark.parametrize("seed", range(10))
def test_generation_means_equal_single_process(seed):
    rng = np.random.default_rng(300 + seed)
    words = ["the", "cat", "sat", "a", "mat", "on"]
    n = int(rng.integers(1, 200))
    pred = [" ".join(rng.choice(words, size=int(rng.integers(0, 4)))) for _ in range(n)]
    ref = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in range(n)]
    shards = random_shards(rng, n)
    for per_example, whole in ((gen.exact_match_per_example, gen.exact_match), (gen.token_f1_per_example, gen.token_f1)):
        state = merged(MeanOfScores.from_shard(per_example([pred[j] for j in i], [ref[j] for j in i]) if i.size else []) for i in shards)
        assert state.n == n
        assert state.value() == pytest.approx(whole(pred, ref), abs=TOL)


def test_bad_states_and_inputs_are_refused_naming_the_field():
    with pytest.raises(InvalidInput, match="states"):
        merge_states([])
    with pytest.raises(InvalidInput, match="states"):
        merge_states([MeanOfScores.from_shard([1.0]), BinaryCounts.from_shard([1], [0.3])])
    with pytest.raises(InvalidInput, match="threshold"):
        merge_states([BinaryCounts.from_shard([1], [0.3], 0.5), BinaryCounts.from_shard([1], [0.3], 0.6)])
    with pytest.raises(InvalidInput, match="classes"):
        merge_states([ConfusionCounts.from_shard(["a"], [[1.0, 0.0]], ["a", "b"]), ConfusionCounts.from_shard(["a"], [[1.0, 0.0]], ["b", "a"])])
    with pytest.raises(InvalidInput, match="score: contains NaN at row 1"):
        ScoreRuns.from_shard([0, 1], [0.1, np.nan])
    with pytest.raises(InvalidInput, match="positive_scores"):
        ScoreRuns(np.array([0.9, 0.1]), np.array([]))  # a state built by hand must hold sorted runs
    with pytest.raises(InvalidInput, match="per_example"):
        MeanOfScores.from_shard([0.5, np.inf])
    with pytest.raises(InvalidInput, match="label"):
        BinaryCounts.from_shard([0, 2], [0.1, 0.2])
    with pytest.raises(InvalidInput, match="probabilities"):
        BinaryCounts.from_shard([0, 1], [0.1, 1.5])
    assert math.isnan(BinaryCounts.from_shard([0, 1], [0.1, 1.5], calibration=False).value().log_loss)
    with pytest.raises(InvalidInput, match="proba"):
        ConfusionCounts.from_shard(["a"], [[0.7, 0.7]], ["a", "b"])
    state = ScoreRuns.from_shard([1, 0], [0.2, 0.1])
    with pytest.raises(ValueError):
        state.positive_scores[0] = 5.0  # states are immutable: a merged state cannot be edited behind its back


def test_more_malformed_states_are_refused_naming_the_field():
    assert merge_sorted_runs([]).size == 0
    with pytest.raises(InvalidInput, match="negative_scores: contains NaN at position 1"):
        ScoreRuns(np.array([]), np.array([0.1, np.nan]))
    with pytest.raises(InvalidInput, match="positive_scores: must be one-dimensional"):
        ScoreRuns(np.zeros((2, 2)), np.array([]))
    with pytest.raises(InvalidInput, match="proba: log loss needs probabilities"):
        ConfusionCounts.from_shard(["a"], [[1.5, -0.5]], ["a", "b"])
    with pytest.raises(InvalidInput, match="query_ids/values"):
        QueryRows.from_shard((np.array(["q1", "q2"]), np.array([1.0])))
    with pytest.raises(InvalidInput, match="values: contains NaN for query 'q2'"):
        QueryRows.from_shard((np.array(["q1", "q2"]), np.array([1.0, np.nan])))
    with pytest.raises(InvalidInput, match="query_ids: shards mix id types"):
        merge_states([QueryRows.from_shard((np.array(["q1"]), np.array([1.0]))), QueryRows.from_shard((np.array([7]), np.array([1.0])))])
    with pytest.raises(InvalidInput, match="min_precision"):
        ScoreRuns.from_shard([1, 0], [0.2, 0.1]).value(min_precision=1.5)
    with pytest.raises(InvalidInput, match="per_example: must be one score per example"):
        MeanOfScores.from_shard([[1.0, 0.0]])


def test_empty_shards_merge_to_nan_values_not_errors():
    # a worker that received no rows contributes the neutral state; all-empty is undefined (nan), never a pass
    empty_multiclass = merge_states([ConfusionCounts.from_shard([], np.zeros((0, 2)), ["a", "b"])] * 2).value()
    assert empty_multiclass.n == 0 and math.isnan(empty_multiclass.accuracy) and math.isnan(empty_multiclass.log_loss)
    assert math.isnan(merge_states([QueryRows.from_shard((np.array([], dtype=str), np.array([])))]).value())
    assert math.isnan(merge_states([MeanOfScores.from_shard([])] * 3).value())
    one = merge_states([MeanOfScores.from_shard([]), MeanOfScores.from_shard([0.25, 0.75, 1.0])])
    assert (one.n, one.value()) == (3, pytest.approx(2.0 / 3, abs=TOL))
