"""Ranking metrics vs pytrec_eval-terrier (trec_eval), TREC file parsing, coverage, calibration and latency.

Expected values come from pytrec_eval (built from plain Python dicts, independently of the code under
test) or are computed by hand in the test; nothing here uses the module under test to make its own
expectation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import ranking, ranking_ids, ranking_prepare, ranking_sort, trec

pytrec_eval = pytest.importorskip("pytrec_eval")

CUTS = (1, 3, 10, 1000)
PYTREC_MEASURES = {
    "map",
    "recip_rank",
    "Rprec",
    "ndcg_cut." + ",".join(map(str, CUTS)),
    "P." + ",".join(map(str, CUTS)),
    "recall." + ",".join(map(str, CUTS)),
    "success." + ",".join(map(str, CUTS)),
}


def per_query_functions():
    """(pytrec_eval key, our per-query function, kwargs)."""
    out = [("map", ranking.average_precision, {}), ("recip_rank", ranking.reciprocal_rank, {}), ("Rprec", ranking.r_precision, {})]
    for k in CUTS:
        out += [
            (f"ndcg_cut_{k}", ranking.ndcg_at_k, {"k": k}),
            (f"P_{k}", ranking.precision_at_k, {"k": k}),
            (f"recall_{k}", ranking.recall_at_k, {"k": k}),
            (f"success_{k}", ranking.success_at_k, {"k": k}),
            (f"success_{k}", ranking.hit_at_k, {"k": k}),
        ]
    return out


def pytrec(run_rows, qrels_rows):
    """pytrec_eval per-query results from (query, doc, score) and (query, doc, relevance) rows."""
    run, qrels = {}, {}
    for q, d, s in run_rows:
        run.setdefault(str(q), {})[str(d)] = float(s)
    for q, d, r in qrels_rows:
        qrels.setdefault(str(q), {})[str(d)] = int(r)
    return pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)


def assert_matches_pytrec(run_rows, qrels_rows, data=None, id_cast=str):
    expected = pytrec(run_rows, qrels_rows)
    if data is None:
        data = prepare(run_rows, qrels_rows)
    ids = [id_cast(q) for q in data.query_ids]
    assert sorted(ids) == sorted(expected), "evaluated queries differ from pytrec_eval's"
    assert len(expected) > 0
    for key, fn, kwargs in per_query_functions():
        query_ids, values = fn(data, **kwargs)
        assert [id_cast(q) for q in query_ids] == ids
        want = np.array([expected[q][key] for q in ids])
        np.testing.assert_allclose(values, want, rtol=0, atol=1e-9, err_msg=f"{fn.__name__} {kwargs} vs {key}")
        assert abs(ranking.mean_over_queries((query_ids, values)) - float(np.mean(want))) <= 1e-9
    return data


def prepare(run_rows, qrels_rows, **kinds):
    rq, rd, rs = (list(c) for c in zip(*run_rows, strict=True))
    qq, qd, qr = (list(c) for c in zip(*qrels_rows, strict=True))
    return ranking.prepare_ranking(
        np.array(rq, dtype=kinds.get("query", object)),
        np.array(rd, dtype=kinds.get("doc", object)),
        np.array(rs, dtype=np.float64),
        np.array(qq, dtype=kinds.get("query", object)),
        np.array(qd, dtype=kinds.get("doc", object)),
        np.array(qr, dtype=np.int64),
    )


def random_case(seed, n_queries, max_docs, query_id, doc_id, ties=True, shuffle=True):
    """Run and qrels rows with many score ties, graded relevance 0-3, queries with no relevant document,
    queries only in the run and only in the qrels, lists shorter and longer than every cut-off."""
    rng = np.random.default_rng(seed)
    universe = 3 * max_docs
    run_rows, qrels_rows = [], []
    for q in range(n_queries):
        n = int(rng.integers(1, max_docs + 1))
        docs = rng.choice(universe, size=n, replace=False)
        if ties:
            scores = rng.integers(0, 4, size=n) / 2.0  # four distinct values: many ties
        else:
            scores = rng.normal(size=n)
        run_rows += [(query_id(q), doc_id(int(d)), float(s)) for d, s in zip(docs, scores, strict=True)]
    for q in range(n_queries // 10, n_queries + n_queries // 10):  # first tenth: run only; last: qrels only
        n = int(rng.integers(1, max_docs + 1))
        docs = rng.choice(universe, size=n, replace=False)
        relevance = rng.integers(0, 4, size=n)
        if q % 7 == 0:
            relevance[:] = 0  # judged, but nothing relevant
        qrels_rows += [(query_id(q), doc_id(int(d)), int(r)) for d, r in zip(docs, relevance, strict=True)]
    if shuffle:
        run_rows = [run_rows[i] for i in rng.permutation(len(run_rows))]
        qrels_rows = [qrels_rows[i] for i in rng.permutation(len(qrels_rows))]
    return run_rows, qrels_rows


ID_KINDS = {
    "short": (lambda q: f"q{q}", lambda d: f"d{d}"),  # <= 8 bytes: packed exactly
    "long": (lambda q: f"topic-number-{q:05d}", lambda d: f"clueweb09-en{d:010d}"),  # hashed, verified
    "unicode": (lambda q: f"é{q}", lambda d: ("ü" if d % 3 else "z") + str(d)),  # code-point order
}


@pytest.mark.parametrize("kind", sorted(ID_KINDS))
@pytest.mark.parametrize(("seed", "n_queries", "max_docs"), [(1, 40, 12), (2, 150, 40), (3, 30, 400)])
def test_random_runs_match_pytrec_eval(kind, seed, n_queries, max_docs):
    query_id, doc_id = ID_KINDS[kind]
    run_rows, qrels_rows = random_case(seed, n_queries, max_docs, query_id, doc_id)
    assert_matches_pytrec(run_rows, qrels_rows)


@pytest.mark.parametrize("shuffle", [False, True])
def test_grouped_and_shuffled_input_give_the_same_result(shuffle):
    run_rows, qrels_rows = random_case(4, 80, 30, *ID_KINDS["short"], shuffle=shuffle)
    assert_matches_pytrec(run_rows, qrels_rows)


def test_same_results_without_the_second_thread(monkeypatch):
    monkeypatch.setattr(ranking_prepare, "PARALLEL", False)
    run_rows, qrels_rows = random_case(15, 50, 20, *ID_KINDS["unicode"])
    assert_matches_pytrec(run_rows, qrels_rows)


def test_distinct_float_scores_and_equal_list_lengths():
    rng = np.random.default_rng(5)
    run_rows = [(f"q{q}", f"d{q * 50 + i}", float(s)) for q in range(60) for i, s in enumerate(rng.normal(size=50))]
    qrels_rows = [(q, d, int(rng.integers(0, 3))) for q, d, _ in run_rows if rng.random() < 0.3]
    assert_matches_pytrec(run_rows, qrels_rows)


def test_many_relevance_grades():
    # more than 64 grades: the ideal ranking is sorted instead of counted per grade
    run_rows, qrels_rows = random_case(14, 60, 30, *ID_KINDS["short"])
    rng = np.random.default_rng(14)
    qrels_rows = [(q, d, int(rng.integers(0, 300)) if r else 0) for q, d, r in qrels_rows]
    assert_matches_pytrec(run_rows, qrels_rows)


def test_integer_ids_tie_break_as_their_decimal_strings():
    # "9" > "10" > "-1" as strings: trec_eval ranks 9 first on a tie, though 10 > 9 as numbers
    rng = np.random.default_rng(6)
    run_rows = [(q, d, float(rng.integers(0, 2))) for q in range(25) for d in rng.choice(np.r_[-1, np.arange(30)], 12, replace=False)]
    qrels_rows = [(q, d, int(rng.integers(0, 4))) for q, d, _ in run_rows if rng.random() < 0.5] + [(3, 99, 2)]
    data = prepare(run_rows, qrels_rows, query=np.int64, doc=np.int64)
    assert data.query_ids.dtype == np.int64
    assert_matches_pytrec(run_rows, qrels_rows, data=data)


def test_mixed_integer_and_string_ids_compare_as_strings():
    run_rows = [(1, 9, 1.0), (1, 10, 1.0), (2, 5, 0.5)]
    qrels_rows = [("1", "9", 1), ("2", "5", 1)]
    data = ranking.prepare_ranking(
        np.array([1, 1, 2]), np.array([9, 10, 5]), np.array([1.0, 1.0, 0.5]),
        np.array(["1", "2"], dtype=object), np.array(["9", "5"], dtype=object), np.array([1, 1]),
    )
    assert list(data.query_ids) == ["1", "2"]
    assert_matches_pytrec(run_rows, qrels_rows, data=data)
    assert list(ranking.reciprocal_rank(data)[1]) == [1.0, 1.0]  # "9" > "10": 9 is ranked first


def test_pandas_arrow_strings_and_numpy_unicode_inputs():
    run_rows, qrels_rows = random_case(7, 50, 20, *ID_KINDS["long"])
    run = pd.DataFrame(run_rows, columns=["q", "d", "s"]).astype({"q": "str", "d": "str"})
    qrels = pd.DataFrame(qrels_rows, columns=["q", "d", "r"])
    data = ranking.prepare_ranking(run["q"], run["d"], run["s"], qrels["q"].to_numpy(dtype="U"), qrels["d"].to_numpy(dtype="U"), qrels["r"])
    assert_matches_pytrec(run_rows, qrels_rows, data=data)


def test_more_than_65536_queries():
    rng = np.random.default_rng(8)
    n = 70_000
    queries = rng.permutation(np.repeat(np.arange(n), 2))
    run_rows = [(f"q{q}", f"d{i % 5}", float(rng.integers(0, 3))) for i, q in enumerate(queries)]
    seen, unique_rows = set(), []
    for row in run_rows:
        if row[:2] not in seen:
            seen.add(row[:2])
            unique_rows.append(row)
    qrels_rows = [(q, d, 1) for q, d, _ in unique_rows[::3]]
    assert_matches_pytrec(unique_rows, qrels_rows)


def test_one_huge_list_among_short_ones():
    # list lengths spread over many size classes (the per-query sort buckets them)
    rng = np.random.default_rng(9)
    run_rows = [(f"q{q}", f"d{d}", float(rng.integers(0, 50))) for q, n in enumerate([1, 2, 3, 5, 9, 17, 33, 700, 2]) for d in range(n)]
    qrels_rows = [(q, d, int(rng.integers(0, 4))) for q, d, _ in run_rows if rng.random() < 0.4] + [("q0", "d0", 2)]
    assert_matches_pytrec(run_rows, qrels_rows)


def test_negative_integer_ids_reach_the_padding_value():
    # -1 as uint64 is the per-query sort's padding value: real keys equal to it must still be kept
    # (lists of different lengths, so the short one is padded)
    run_rows = [(1, d, 0.5 + d / 100) for d in range(-1, 40)] + [(2, -1, 0.1), (2, 4, 0.2)]
    qrels_rows = [(1, -1, 2), (1, 7, 0), (1, 30, 1), (2, 4, 1), (2, -1, 3)]
    data = prepare(run_rows, qrels_rows, query=np.int64, doc=np.int64)
    assert_matches_pytrec(run_rows, qrels_rows, data=data)


def test_per_query_sort_keeps_real_keys_equal_to_the_padding_value():
    # the helper behind every per-query ordering; rows of equal maximal keys next to padding cells
    top = np.iinfo(np.uint64).max
    rng = np.random.default_rng(13)
    sizes = np.array([300, 5, 1, 40, 0, 7])
    keys = rng.integers(0, 2**62, sizes.sum()).astype(np.uint64)
    keys[300:305] = top
    keys[346:350] = top
    positions = ranking_sort.sort_within(keys, sizes)
    assert sorted(positions.tolist()) == list(range(sizes.sum()))
    starts = np.cumsum(sizes) - sizes
    for start, size in zip(starts, sizes, strict=True):
        segment = positions[start : start + size]
        assert ((segment >= start) & (segment < start + size)).all()
        assert (np.diff(keys[segment].astype(np.float64)) >= 0).all()


def test_segmented_value_sort_with_and_without_packed_positions():
    # equal sizes (with empty segments between them), spread sizes (one padded array), skewed sizes (classes)
    rng = np.random.default_rng(16)
    for sizes in ([0, 7, 7, 0, 7], [3, 1, 0, 9, 4, 6], [1, 2, 700, 3, 0, 40, 5]):
        sizes = np.array(sizes)
        starts = np.cumsum(sizes) - sizes
        for dtype in (np.uint32, np.uint64):
            values = rng.integers(0, 50, sizes.sum()).astype(dtype)  # many equal values
            got = ranking_sort.segmented_sort(values, sizes)
            for start, size in zip(starts, sizes, strict=True):
                assert got[start : start + size].tolist() == sorted(values[start : start + size].tolist())
        bits = int(sizes.max()).bit_length()
        keys = rng.integers(0, 4, sizes.sum()).astype(np.uint64) << np.uint64(bits)  # equal keys: positions decide
        packed = ranking_sort.segmented_sort(keys.copy(), sizes, pack_bits=bits, overwrite=True)
        low = (1 << bits) - 1
        for start, size in zip(starts, sizes, strict=True):
            segment = packed[start : start + size]
            position = (segment & np.uint64(low)).astype(np.int64)
            assert sorted(position.tolist()) == list(range(size))
            assert (segment >> np.uint64(bits) << np.uint64(bits) == keys[start + position]).all()
            assert (np.diff(segment.astype(np.float64)) > 0).all()


@pytest.mark.parametrize("uniform", [True, False])
def test_lower_bound_equals_searchsorted_per_range(uniform):
    rng = np.random.default_rng(17)
    n_ranges = 40_000  # with three targets each: more targets than one block
    counts = np.full(n_ranges, 6) if uniform else rng.integers(0, 12, n_ranges)
    starts = np.cumsum(counts) - counts
    values = np.concatenate([np.sort(rng.integers(0, 20, c)) for c in counts]).astype(np.uint64)
    which = rng.integers(0, n_ranges, 3 * n_ranges)
    targets = rng.integers(0, 22, which.size).astype(np.uint64)
    got = ranking_sort.lower_bound(values, starts[which], counts[which], targets)
    want = [starts[w] + np.searchsorted(values[starts[w] : starts[w] + counts[w]], t, side="left") for w, t in zip(which, targets, strict=True)]
    assert got.tolist() == [int(x) for x in want]


def test_equal_neighbours_within_segments_across_blocks():
    rng = np.random.default_rng(18)
    counts = np.array([300_000, 0, 1, 299_999])
    starts = np.cumsum(counts) - counts
    values = np.sort(rng.integers(0, 2**40, counts.sum()).astype(np.uint64) << np.uint64(4))
    values[5] = values[4]  # equal above the low bits: flagged
    values[262_144] = values[262_143] | np.uint64(3)  # equal above the low bits, across the block edge
    values[299_999:300_001] = values[299_998]  # equal, but the second is the next segment's only value
    got = ranking_sort.equal_neighbours(values, np.uint64(15), starts, counts).tolist()
    assert 4 in got and 262_143 in got and 299_998 in got and 299_999 not in got and 300_000 not in got


def test_packed_key_collisions_fall_back_to_the_exact_join(monkeypatch):
    # multiplying by 0 maps every key to the same high bits: every query's documents seem to collide,
    # and a judgment seems to match whatever single document its query retrieved
    monkeypatch.setattr(ranking_prepare, "_SPREAD", np.uint64(0))
    run_rows, qrels_rows = random_case(19, 40, 15, *ID_KINDS["short"])
    assert_matches_pytrec(run_rows, qrels_rows)
    one_each = [(f"q{q}", f"d{q}", 1.0) for q in range(5)]
    other_doc = [(f"q{q}", f"d{q + 1}", 1) for q in range(5)] + [("q0", "d0", 0)]
    assert_matches_pytrec(one_each, other_doc)
    with pytest.raises(InvalidInput, match="more than once"):
        prepare([("q", "a", 1.0), ("q", "b", 0.5), ("q", "a", 0.2)], [("q", "a", 1)])


def test_hash_collisions_fall_back_to_exact_comparison(monkeypatch):
    # every long id hashes to the same value: the verification must notice and use exact codes
    monkeypatch.setattr(ranking_ids.IdColumn, "_hash", lambda self: np.zeros(len(self), dtype=np.uint64))
    run_rows, qrels_rows = random_case(10, 40, 15, *ID_KINDS["long"])
    assert_matches_pytrec(run_rows, qrels_rows)


# ---------------------------------------------------------------------------------------------------
# Hand-written cases (values worked out in the comments, and checked against pytrec_eval too).
# ---------------------------------------------------------------------------------------------------


def test_ties_are_broken_by_document_id_descending():
    # all scores equal: trec_eval ranks c, b, a (strcmp descending), so the relevant "a" is third
    run_rows = [("q", "a", 1.0), ("q", "b", 1.0), ("q", "c", 1.0)]
    qrels_rows = [("q", "a", 1), ("q", "b", 0)]
    data = assert_matches_pytrec(run_rows, qrels_rows)
    assert ranking.reciprocal_rank(data)[1][0] == pytest.approx(1 / 3)
    assert ranking.precision_at_k(data, 2)[1][0] == 0.0
    assert ranking.average_precision(data)[1][0] == pytest.approx(1 / 3)


def test_scores_equal_in_float32_are_ties_and_negative_zero_equals_zero():
    # 1 + 1e-9 rounds to 1.0 in float32 (trec_eval keeps scores as C float): "b" then wins the tie
    run_rows = [("q", "a", 1.0 + 1e-9), ("q", "b", 1.0), ("r", "a", 0.0), ("r", "b", -0.0), ("r", "c", -1e-50)]
    qrels_rows = [("q", "a", 1), ("r", "b", 1)]
    data = assert_matches_pytrec(run_rows, qrels_rows)
    # q: b, a -> RR 1/2; r: 0.0, -0.0 and -1e-50 (-0.0 in float32) all tie -> c, b, a -> RR 1/2
    assert list(ranking.reciprocal_rank(data)[1]) == pytest.approx([0.5, 0.5])


def test_graded_ndcg_by_hand():
    # ranking c(0), b(2), x(unjudged), a(3); judged a=3, b=2, d=1
    run_rows = [("q", "c", 4.0), ("q", "b", 3.0), ("q", "x", 2.0), ("q", "a", 1.0)]
    qrels_rows = [("q", "a", 3), ("q", "b", 2), ("q", "c", 0), ("q", "d", 1)]
    data = assert_matches_pytrec(run_rows, qrels_rows)
    dcg3 = 2 / math.log2(3)
    idcg3 = 3 + 2 / math.log2(3) + 1 / 2
    assert ranking.ndcg_at_k(data, 3)[1][0] == pytest.approx(dcg3 / idcg3, abs=1e-12)
    assert ranking.average_precision(data)[1][0] == pytest.approx((1 / 2 + 2 / 4) / 3, abs=1e-12)
    assert ranking.r_precision(data)[1][0] == pytest.approx(1 / 3)
    assert ranking.precision_at_k(data, 1000)[1][0] == pytest.approx(2 / 1000)  # k beyond the list
    assert ranking.recall_at_k(data, 2)[1][0] == pytest.approx(1 / 3)
    assert list(data.num_relevant) == [3]


def test_query_without_relevant_documents_scores_zero_and_is_averaged():
    run_rows = [("q", "a", 1.0), ("r", "a", 1.0), ("s", "a", 1.0)]
    qrels_rows = [("q", "a", 0), ("r", "a", 1), ("t", "a", 1)]  # s: run only, t: qrels only
    data = assert_matches_pytrec(run_rows, qrels_rows)
    assert list(data.query_ids) == ["q", "r"]
    for _, fn, kwargs in per_query_functions():
        assert fn(data, **kwargs)[1][0] == 0.0
    assert ranking.mean_over_queries(ranking.reciprocal_rank(data)) == 0.5


def test_no_query_in_common_gives_nan_means():
    data = prepare([("q", "a", 1.0)], [("r", "a", 1)])
    assert data.query_ids.size == 0
    assert math.isnan(ranking.mean_over_queries(ranking.ndcg_at_k(data, 10)))
    assert pytrec([("q", "a", 1.0)], [("r", "a", 1)]) == {}


@pytest.mark.parametrize("uneven", [False, True])
@pytest.mark.parametrize("kind", sorted(ID_KINDS))
def test_duplicate_run_documents_are_rejected_even_with_different_scores(kind, uneven):
    query_id, doc_id = ID_KINDS[kind]
    run_rows = [(query_id(1), doc_id(1), 0.9), (query_id(1), doc_id(2), 0.5), (query_id(1), doc_id(1), 0.1)]
    if uneven:  # another query with another number of rows
        run_rows = [(query_id(0), doc_id(d), 0.5) for d in range(5)] + run_rows
    with pytest.raises(InvalidInput) as error:
        prepare(run_rows, [(query_id(1), doc_id(1), 1)])
    assert error.value.field == "run" and doc_id(1) in error.value.problem and "more than once" in error.value.problem


@pytest.mark.parametrize("uneven", [False, True])
def test_duplicate_judgments_are_rejected(uneven):
    qrels_rows = [("q", "a", 1), ("q", "b", 0), ("q", "a", 2)] + ([("r", "a", 1)] if uneven else [])
    with pytest.raises(InvalidInput) as error:
        prepare([("q", "a", 1.0)], qrels_rows)
    assert error.value.field == "qrels" and "'a'" in error.value.problem


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"run_score": [1.0, float("nan")]}, "run_score"),
        ({"qrels_relevance": [1, -1]}, "qrels_relevance"),
        ({"qrels_relevance": [1.5, 1.0]}, "qrels_relevance"),
        ({"run_doc": ["a"]}, "run"),
        ({"run_query": [], "run_doc": [], "run_score": []}, "run"),
        ({"qrels_query": [], "qrels_doc": [], "qrels_relevance": []}, "qrels"),
        ({"run_doc": ["a", None]}, "run_doc"),
        ({"run_doc": np.array([1.5, 2.5])}, "run_doc"),
        ({"qrels_doc": ["a\x00", "b"]}, "qrels_doc"),
    ],
)
def test_invalid_inputs_are_rejected_naming_the_field(change, field):
    columns = {
        "run_query": ["q", "q"], "run_doc": ["a", "b"], "run_score": [1.0, 0.5],
        "qrels_query": ["q", "q"], "qrels_doc": ["a", "b"], "qrels_relevance": [1, 0],
    }
    columns.update(change)
    arrays = {k: v if isinstance(v, np.ndarray) else np.array(v, dtype=object if "doc" in k or "query" in k else None) for k, v in columns.items()}
    with pytest.raises(InvalidInput) as error:
        ranking.prepare_ranking(**arrays)
    assert error.value.field == field


def test_k_must_be_a_positive_integer():
    data = prepare([("q", "a", 1.0)], [("q", "a", 1)])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInput):
            ranking.ndcg_at_k(data, bad)


# ---------------------------------------------------------------------------------------------------
# Coverage, calibration, latency.
# ---------------------------------------------------------------------------------------------------


def coverage_example():
    # q1 ranks a, b, x; q2 ties c and a at 0.5 -> c first (id descending); q3 is in the run only
    run = [("q1", "a", 0.9), ("q1", "b", 0.8), ("q1", "x", 0.7), ("q2", "a", 0.5), ("q2", "c", 0.5), ("q3", "d", 0.1)]
    qrels = [("q1", "a", 1), ("q2", "c", 0)]
    return run, qrels, np.array(["a", "b", "c", "d", "e", "e"], dtype=object)  # 5 distinct items


def test_catalog_coverage_by_hand():
    run, qrels, catalog = coverage_example()
    data = prepare(run, qrels)
    # top-1: {a, c, d} -> 3/5; top-2: {a, b, c, d} -> 4/5; top-3 adds x, not in the catalog -> 4/5
    assert ranking.catalog_coverage(data, catalog, k=1) == pytest.approx(3 / 5)
    assert ranking.catalog_coverage(data, catalog, k=2) == pytest.approx(4 / 5)
    assert ranking.catalog_coverage(data, catalog, k=3) == pytest.approx(4 / 5)
    with pytest.raises(InvalidInput):
        ranking.catalog_coverage(data, np.array([], dtype=object), k=1)
    ints = prepare([(1, 10, 0.3), (1, 11, 0.2), (2, 12, 0.9)], [(1, 10, 1)], query=np.int64, doc=np.int64)
    assert ranking.catalog_coverage(ints, np.array([10, 11, 13, 14]), k=1) == pytest.approx(1 / 4)  # 10 (12 is not listed)


def test_engagement_calibration_by_hand():
    # evaluated rows: q1 (a .9 rel, b .8, x .7), q2 (a .5, c .5 rel 0); q3 is not evaluated
    run, qrels, _ = coverage_example()
    data = prepare(run, qrels)
    p = np.array([0.9, 0.8, 0.7, 0.5, 0.5])
    y = np.array([1, 0, 0, 0, 0])
    # two bins [0, .5) and [.5, 1]: everything falls in the second: |mean(y) - mean(p)| = |0.2 - 0.68|
    assert ranking.engagement_calibration_error(data, n_bins=2) == pytest.approx(abs(y.mean() - p.mean()))
    bins = np.minimum((p * 10).astype(int), 9)
    expected = sum(abs(y[bins == b].sum() - p[bins == b].sum()) for b in range(10)) / p.size
    assert ranking.engagement_calibration_error(data, n_bins=10) == pytest.approx(expected)
    bad = prepare([("q", "a", 1.5)], [("q", "a", 1)])
    with pytest.raises(InvalidInput):
        ranking.engagement_calibration_error(bad)


def test_latency_percentiles_by_hand():
    latency = np.array([40.0, 10.0, 100.0, 30.0, 20.0])
    # sorted 10 20 30 40 100; linear interpolation at positions 0.5*4, 0.95*4, 0.99*4
    assert ranking.latency_percentile(latency, 50) == 30.0
    assert ranking.latency_percentile(latency, 95) == pytest.approx(40 + 0.8 * 60)
    assert ranking.latency_percentile(latency, 99) == pytest.approx(40 + 0.96 * 60)
    assert ranking.latency_percentile(latency, 99) == pytest.approx(np.percentile(latency, 99))
    for bad in ([], [1.0, float("nan")], [-1.0]):
        with pytest.raises(InvalidInput):
            ranking.latency_percentile(np.array(bad), 50)


# ---------------------------------------------------------------------------------------------------
# Catalog entries.
# ---------------------------------------------------------------------------------------------------


def test_metric_definitions():
    by_name = {m.name: m for m in ranking.METRICS}
    assert set(by_name) == {
        "ndcg", "map", "mrr", "precision_at_k", "recall_at_k", "r_precision", "success_at_k", "hit_at_k",
        "catalog_coverage", "engagement_calibration_error", "latency_p50", "latency_p95", "latency_p99",
        "ndcg_uncut", "map_at_k", "bpref", "set_precision", "set_recall", "set_f1",
    }
    assert all(m.version == 1 for m in ranking.METRICS)
    assert by_name["ndcg"].params["k"].default == 10
    assert by_name["recall_at_k"].params["k"].default == 100
    assert by_name["engagement_calibration_error"].direction == "lower"
    for name in ("latency_p50", "latency_p95", "latency_p99"):
        assert by_name[name].direction == "lower" and by_name[name].task_types == frozenset({"search"})
    assert by_name["map"].task_types == frozenset({"ranking", "search"})
    assert all(by_name[n].unit == "query" and by_name[n].per_unit is not None for n in ("ndcg", "map", "mrr", "hit_at_k"))


def test_definitions_compute_the_mean_over_queries_and_share_one_preparation():
    run_rows, qrels_rows = random_case(11, 30, 15, *ID_KINDS["short"])
    expected = pytrec(run_rows, qrels_rows)
    rq, rd, rs = (np.array(c, dtype=object) for c in zip(*run_rows, strict=True))
    qq, qd, qr = (np.array(c, dtype=object) for c in zip(*qrels_rows, strict=True))
    columns = {
        "run_query": rq, "run_doc": rd, "run_score": rs.astype(float),
        "qrels_query": qq, "qrels_doc": qd, "qrels_relevance": qr.astype(np.int64),
        "catalog": np.unique(rd), "latency": np.array([5.0, 1.0, 3.0]),
    }
    by_name = {m.name: m for m in ranking.METRICS}
    for name, key, params in [("ndcg", "ndcg_cut_10", {}), ("map", "map", {}), ("mrr", "recip_rank", {}), ("precision_at_k", "P_3", {"k": 3}),
                              ("recall_at_k", "recall_1000", {"k": 1000}), ("r_precision", "Rprec", {}), ("success_at_k", "success_1", {"k": 1}),
                              ("hit_at_k", "success_10", {})]:
        definition = by_name[name]
        resolved = definition.resolve_params(params)
        want = np.mean([v[key] for v in expected.values()])
        assert definition.compute(columns, **resolved) == pytest.approx(want, abs=1e-9)
        ids, values = definition.per_unit(columns, **resolved)
        assert sorted(ids) == sorted(expected)
    assert ranking.prepare_columns(columns) is ranking.prepare_columns(columns)
    assert by_name["catalog_coverage"].compute(columns, k=1000) == 1.0
    assert by_name["latency_p50"].compute(columns) == 3.0
    with pytest.raises(InvalidInput):
        by_name["ndcg"].compute({"run_query": rq})


# ---------------------------------------------------------------------------------------------------
# TREC files.
# ---------------------------------------------------------------------------------------------------


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trec_files_score_like_pytrec_eval(tmp_path):
    run_rows, qrels_rows = random_case(12, 40, 25, *ID_KINDS["long"])
    rng = np.random.default_rng(12)
    qrels_rows = [(q, d, -2 if rng.random() < 0.1 else r) for q, d, r in qrels_rows]  # TREC "junk" judgments
    qrels_text = "".join(f"{q} 0 {d} {r}\n" for q, d, r in qrels_rows)
    run_text = "".join(f"{q}\tQ0  {d} {i} {s!r} tag\n" + ("\n" if i % 17 == 0 else "") for i, (q, d, s) in enumerate(run_rows))
    qrels = trec.read_qrels(write(tmp_path, "x.qrels", qrels_text))
    run = trec.read_run(write(tmp_path, "x.run", run_text))
    assert list(qrels.columns) == ["query_id", "doc_id", "relevance"] and list(run.columns) == ["query_id", "doc_id", "score"]
    assert len(run) == len(run_rows) and qrels["relevance"].dtype == np.int64
    measures = ["map", "recip_rank", "mrr", "ndcg_cut_10", "ndcg@3", "P_10", "p@1", "recall_100", "recall@3", "Rprec", "success_1",
                "success@10", "hit@3"]
    result = trec.score_ranking(qrels, run, measures, per_query=True)
    expected = pytrec(run_rows, qrels_rows)
    keys = {"mrr": "recip_rank", "ndcg@3": "ndcg_cut_3", "p@1": "P_1", "recall@3": "recall_3", "success@10": "success_10", "hit@3": "success_3"}
    pytrec3 = pytrec_eval.RelevanceEvaluator(
        {q: v for q, v in _dicts(qrels_rows).items()},
        {"ndcg_cut.3", "P.1", "recall.3", "success.3,10", "ndcg_cut.10", "P.10", "recall.100", "success.1"}
    ).evaluate(_dicts(run_rows, float))
    assert result["num_queries"] == len(expected)
    for measure in measures:
        key = keys.get(measure, measure)
        source = expected if key in next(iter(expected.values())) else pytrec3
        want = {q: v[key] for q, v in source.items()}
        assert result["per_query"][measure].keys() == want.keys()
        for q, value in want.items():
            assert result["per_query"][measure][q] == pytest.approx(value, abs=1e-9)
        assert result["mean"][measure] == pytest.approx(np.mean(list(want.values())), abs=1e-9)
    assert "per_query" not in trec.score_ranking(qrels, run, ["map"])


def _dicts(rows, cast=int):
    out = {}
    for q, d, v in rows:
        out.setdefault(str(q), {})[str(d)] = cast(v)
    return out


@pytest.mark.parametrize(
    ("reader", "text", "line", "problem"),
    [
        (trec.read_qrels, "q 0 a 1\n\nq 0 b\n", 3, "expected 4 columns"),
        (trec.read_qrels, "q 0 a 1\nq 0 b 1 extra\n", 2, "expected 4 columns"),
        (trec.read_qrels, "q 0 a 1\n   \nq 0 b 1 x y z\n", 3, "found 7"),
        (trec.read_qrels, "q 0 a 1\n\n\nq 0 b high\n", 4, "relevance must be an integer"),
        (trec.read_qrels, "q 0 a 1.5\n", 1, "relevance must be an integer"),
        (trec.read_run, "q Q0 a 1 0.5 t\n\nq Q0 b 2 abc t\n", 3, "score must be a number"),
        (trec.read_run, "q Q0 a 1 0.5 t\nq Q0 b 2 nan t\n", 2, "score is NaN"),
        (trec.read_run, "q Q0 a 1 0.5\n", 1, "expected 6 columns"),
        # trailing text after the tag is ignored (as trec_eval does), but a short line is still named
        (trec.read_run, "q Q0 a 1 0.5 t more text\n\nq Q0 b 2 0.1\n", 3, "expected 6 columns (query_id q0 doc_id rank score tag), found 5"),
        (trec.read_run, "q Q0 a 1 0.5 t x\nq Q0 b 2 abc t\n", 2, "score must be a number, got 'abc'"),
    ],
)
def test_malformed_trec_lines_are_named(tmp_path, reader, text, line, problem):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(InvalidInput) as error:
        reader(path)
    assert error.value.field == f"{path} line {line}"
    assert problem in error.value.problem


def test_trec_reader_edge_cases(tmp_path):
    with pytest.raises(InvalidInput, match="empty"):
        trec.read_run(write(tmp_path, "empty.run", "\n\n"))
    with pytest.raises(InvalidInput, match="does not exist"):
        trec.read_qrels(tmp_path / "missing.qrels")
    run = trec.read_run(write(tmp_path, "ok.run", 'NA Q0 "null" 1 -inf t\nq Q0 d 2 1e3 t\n'))
    assert list(run["query_id"]) == ["NA", "q"] and list(run["doc_id"]) == ['"null"', "d"]
    assert list(run["score"]) == [-math.inf, 1000.0]


def test_measure_names():
    assert trec.parse_measure("map") == ("map", {})
    assert trec.parse_measure("recip_rank") == trec.parse_measure("mrr") == ("mrr", {})
    assert trec.parse_measure("ndcg_cut_10") == trec.parse_measure("ndcg@10") == trec.parse_measure("ndcg_cut.10") == ("ndcg", {"k": 10})
    assert trec.parse_measure("P_10") == trec.parse_measure("p@10") == ("precision_at_k", {"k": 10})
    assert trec.parse_measure("recall_100") == trec.parse_measure("recall@100") == ("recall_at_k", {"k": 100})
    assert trec.parse_measure("Rprec") == ("r_precision", {})
    assert trec.parse_measure("success_1") == trec.parse_measure("success@1") == ("success_at_k", {"k": 1})
    assert trec.parse_measure("hit@5") == ("hit_at_k", {"k": 5})
    for bad in ("ndcg_cut", "P_0", "bpref_5", "map@0", "set_F.2"):
        with pytest.raises(InvalidInput):
            trec.parse_measure(bad)
