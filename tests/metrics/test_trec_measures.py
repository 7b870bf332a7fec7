"""trec_eval's bpref, map_cut_k, uncut ndcg, ndcg_cut_k, set_P/set_recall/set_F and num_* vs pytrec_eval.

Expected values come from pytrec_eval-terrier (trec_eval's C code, fed plain Python dicts built here
independently of the code under test), from trec_eval's own published output (``out.test.a``) or are
worked out by hand in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import ranking, ranking_ids, ranking_prepare, trec

pytrec_eval = pytest.importorskip("pytrec_eval")

CUTS = (1, 5, 10, 1000)
PYTREC_MEASURES = {
    "bpref", "ndcg", "set_P", "set_recall", "set_F", "num_rel", "num_ret", "num_rel_ret",
    "map_cut." + ",".join(map(str, CUTS)), "ndcg_cut." + ",".join(map(str, CUTS)),
}
#: our measure name (as ``evalp score ranking --metric`` takes it) -> pytrec_eval's key
MEASURES = {
    "bpref": "bpref", "ndcg": "ndcg", "set_P": "set_P", "set_recall": "set_recall", "set_F": "set_F",
    "num_rel": "num_rel", "num_ret": "num_ret", "num_rel_ret": "num_rel_ret",
    **{f"map_cut_{k}": f"map_cut_{k}" for k in CUTS}, **{f"ndcg_cut_{k}": f"ndcg_cut_{k}" for k in CUTS},
    "map@5": "map_cut_5", "set_F.1": "set_F",
}
TOLERANCE = 1e-12


def pytrec(run_rows, qrels_rows):
    run, qrels = {}, {}
    for q, d, s in run_rows:
        run.setdefault(str(q), {})[str(d)] = float(s)
    for q, d, r in qrels_rows:
        qrels.setdefault(str(q), {})[str(d)] = int(r)
    return pytrec_eval.RelevanceEvaluator(qrels, PYTREC_MEASURES).evaluate(run)


def frames(run_rows, qrels_rows):
    run = pd.DataFrame(run_rows, columns=["query_id", "doc_id", "score"]).astype({"query_id": str, "doc_id": str})
    qrels = pd.DataFrame(qrels_rows, columns=["query_id", "doc_id", "relevance"]).astype({"query_id": str, "doc_id": str})
    return qrels, run


def assert_equals_pytrec(run_rows, qrels_rows):
    expected = pytrec(run_rows, qrels_rows)
    assert expected, "the case must evaluate at least one query"
    result = trec.score_ranking(*frames(run_rows, qrels_rows), list(MEASURES), per_query=True)
    assert result["num_queries"] == len(expected)
    for measure, key in MEASURES.items():
        got = result["per_query"][measure]
        assert got.keys() == expected.keys(), measure
        worst = max(abs(got[q] - expected[q][key]) for q in expected)
        assert worst <= TOLERANCE, f"{measure}: per-query difference {worst}"
        summary = pytrec_eval.compute_aggregated_measure(key, [v[key] for v in expected.values()])  # sum for num_*
        assert abs(result["mean"][measure] - summary) <= TOLERANCE, measure
    return result


def random_case(seed, n_queries=50, max_docs=30, max_level=3, doc_id=lambda d: f"d{d}", query_id=lambda q: f"q{q}"):
    """Many score ties, graded relevance, negative ("junk") judgments, unjudged retrieved documents, judged
    documents never retrieved, queries only in the run or only in the qrels, judged queries with nothing
    relevant or with no judged non-relevant document, lists shorter and longer than every cut-off."""
    rng = np.random.default_rng(seed)
    universe = 3 * max_docs
    run_rows, qrels_rows = [], []
    for q in range(n_queries):
        n = int(rng.integers(1, max_docs + 1))
        docs = rng.choice(universe, size=n, replace=False)
        scores = rng.integers(0, 4, size=n) / 4.0 if q % 2 else rng.normal(size=n).round(2)  # ties either way
        run_rows += [(query_id(q), doc_id(int(d)), float(s)) for d, s in zip(docs, scores, strict=True)]
    for q in range(n_queries // 10, n_queries + n_queries // 10):
        n = int(rng.integers(1, max_docs + 1))
        docs = rng.choice(universe, size=n, replace=False)
        relevance = rng.integers(-1, max_level + 1, size=n)
        if q % 7 == 0:
            relevance[:] = 0  # judged, nothing relevant
        elif q % 11 == 0:
            # junk judgments and one judged non-relevant document. (A query whose judgments are *all*
            # negative is left out: trec_eval then reads the previous query's relevance levels, and
            # pytrec_eval may loop forever; see test_a_query_judged_only_as_junk_scores_zero)
            relevance[:] = -1
            relevance[0] = 0
        elif q % 5 == 0:
            relevance = np.abs(relevance) + 1  # no judged non-relevant document: bpref is recall
        qrels_rows += [(query_id(q), doc_id(int(d)), int(r)) for d, r in zip(docs, relevance, strict=True)]
    order = rng.permutation(len(run_rows))
    return [run_rows[i] for i in order], qrels_rows


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_with_ties_and_graded_relevance_equal_pytrec_eval(seed):
    assert_equals_pytrec(*random_case(seed))


def test_long_ids_many_grades_and_long_lists_equal_pytrec_eval():
    # ids longer than 8 bytes (hashed keys), more than 64 relevance grades (the sorted ideal ranking),
    # lists longer than every cut-off but 1000
    long_doc = lambda d: f"clueweb09-en{d:010d}"  # noqa: E731
    assert_equals_pytrec(*random_case(20, n_queries=30, max_docs=200, max_level=90, doc_id=long_doc))
    assert_equals_pytrec(*random_case(21, n_queries=5, max_docs=1500, max_level=3))


def test_every_score_tied_is_ranked_by_docno_descending():
    # one score for all: trec_eval ranks z, y, x, w (strcmp descending)
    run_rows = [("q", d, 1.0) for d in ("w", "x", "y", "z")]
    qrels_rows = [("q", "w", 1), ("q", "z", 0), ("q", "y", 2), ("q", "v", 0)]
    result = assert_equals_pytrec(run_rows, qrels_rows)
    # z (non-rel), y (rel 2), x (unjudged), w (rel 1); R = 2, N = 2: y and w each follow one non-relevant
    assert result["per_query"]["bpref"]["q"] == pytest.approx(0.5, abs=1e-15)
    # map_cut_1 = 0; map_cut_5 = (1/2 + 2/4) / 2
    assert result["per_query"]["map_cut_1"]["q"] == 0.0
    assert result["per_query"]["map_cut_5"]["q"] == pytest.approx(0.5, abs=1e-15)


# ---------------------------------------------------------------------------------------------------
# Hand-worked values (the docstrings' examples) and edge cases.
# ---------------------------------------------------------------------------------------------------


def scored(run_rows, qrels_rows, measures):
    return trec.score_ranking(*frames(run_rows, qrels_rows), measures, per_query=True)["per_query"]


def test_bpref_by_hand():
    # ranking n1 (judged non-relevant), r1, u (unjudged), r2; qrels R = 2, N = 3 (n1, n2, n3)
    run_rows = [("q", "n1", 4.0), ("q", "r1", 3.0), ("q", "u", 2.0), ("q", "r2", 1.0)]
    qrels_rows = [("q", "n1", 0), ("q", "n2", 0), ("q", "n3", 0), ("q", "r1", 1), ("q", "r2", 1)]
    # each relevant document follows one judged non-relevant: 1 - min(1, 2) / min(3, 2) = 0.5
    assert scored(run_rows, qrels_rows, ["bpref"])["bpref"]["q"] == 0.5
    # judgments of -1 ("in the pool, unjudged") are neither relevant nor judged non-relevant
    junk = [("q", "n1", -1), ("q", "n2", 0), ("q", "n3", 0), ("q", "r1", 1), ("q", "r2", 1)]
    assert scored(run_rows, junk, ["bpref"])["bpref"]["q"] == 1.0
    # no judged non-relevant document at all: bpref is the fraction of relevant documents retrieved
    assert scored(run_rows[:2], [("q", "r1", 1), ("q", "r9", 2)], ["bpref"])["bpref"]["q"] == 0.5


def test_uncut_ndcg_and_map_cut_by_hand():
    run_rows = [("q", "a", 3.0), ("q", "b", 2.0), ("q", "c", 1.0)]
    qrels_rows = [("q", "a", 1), ("q", "c", 2), ("q", "d", 1), ("q", "b", 0)]
    # DCG = 1/log2(2) + 2/log2(4) = 2; IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4); d (never retrieved) counts
    want = 2.0 / (2.0 + 1.0 / math.log2(3.0) + 0.5)
    # map_cut: ranking rel, non-rel, rel with R = 3
    got = scored(run_rows, qrels_rows, ["ndcg", "map_cut_1", "map_cut_2", "map_cut_3", "map_cut_100", "map"])
    assert got["ndcg"]["q"] == pytest.approx(want, abs=1e-15)
    assert got["map_cut_1"]["q"] == got["map_cut_2"]["q"] == pytest.approx(1 / 3, abs=1e-15)
    assert got["map_cut_3"]["q"] == got["map_cut_100"]["q"] == got["map"]["q"] == pytest.approx((1 + 2 / 3) / 3, abs=1e-15)


def test_set_measures_and_counts_by_hand():
    run_rows = [("q", d, s) for d, s in (("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0))] + [("p", "x", 1.0)]
    qrels_rows = [("q", "a", 2), ("q", "c", 1), ("q", "e", 1), ("q", "b", 0), ("p", "x", 0)]
    got = scored(run_rows, qrels_rows, ["set_P", "set_recall", "set_F", "num_rel", "num_ret", "num_rel_ret"])
    assert got["set_P"] == {"p": 0.0, "q": 0.5}  # 2 relevant of 4 retrieved
    assert got["set_recall"]["q"] == pytest.approx(2 / 3, abs=1e-15)
    assert got["set_F"]["q"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), abs=1e-15)
    assert got["set_F"]["p"] == 0.0  # nothing relevant: 0, not 0/0
    assert got["num_rel"] == {"p": 0.0, "q": 3.0} and got["num_ret"] == {"p": 1.0, "q": 4.0}
    assert got["num_rel_ret"] == {"p": 0.0, "q": 2.0}
    summary = trec.score_ranking(*frames(run_rows, qrels_rows), ["num_ret", "set_P"])["mean"]
    assert summary == {"num_ret": 5.0, "set_P": 0.25}  # counts are summed (trec_eval's "all"), the rest averaged


def test_cutoffs_beyond_the_run_and_queries_not_evaluated():
    run_rows = [("q", "a", 1.0), ("only_run", "a", 1.0)]
    qrels_rows = [("q", "a", 1), ("q", "b", 1), ("only_qrels", "a", 1)]
    got = scored(run_rows, qrels_rows, ["ndcg_cut_100000", "map_cut_100000", "ndcg"])
    assert got["map_cut_100000"] == {"q": 0.5}
    assert got["ndcg_cut_100000"]["q"] == got["ndcg"]["q"] == pytest.approx(1 / (1 + 1 / math.log2(3)), abs=1e-15)
    nothing = trec.score_ranking(*frames([("x", "a", 1.0)], [("y", "a", 1)]), ["bpref", "num_rel_ret"])
    assert math.isnan(nothing["mean"]["bpref"]) and nothing["mean"]["num_rel_ret"] == 0.0


def test_a_query_judged_only_as_junk_scores_zero():
    # trec_eval's own result here is undefined (stale state from the query before); ours: evaluated, all 0
    run_rows = [("q", "a", 2.0), ("q", "b", 1.0)]
    got = scored(run_rows, [("q", "a", -1), ("q", "c", -2)], list(MEASURES))
    assert all(values == {"q": 0.0} for name, values in got.items() if name != "num_ret")
    assert got["num_ret"] == {"q": 2.0}


def test_measure_names():
    assert trec.parse_measure("ndcg") == ("ndcg_uncut", {})
    assert trec.parse_measure("bpref") == trec.parse_measure("BPREF") == ("bpref", {})
    assert trec.parse_measure("map_cut_10") == trec.parse_measure("map_cut.10") == trec.parse_measure("map@10") == ("map_at_k", {"k": 10})
    assert trec.parse_measure("ndcg_cut_23") == ("ndcg", {"k": 23})
    assert trec.parse_measure("set_P") == ("set_precision", {})
    assert trec.parse_measure("set_F") == trec.parse_measure("set_F.1") == ("set_f1", {})
    for name in ("num_rel", "num_ret", "num_rel_ret"):
        assert trec.parse_measure(name) == (name, {})
    for bad in ("map_cut_0", "set_F.2", "map_cut", "num_rel_ret_10"):
        with pytest.raises(InvalidInput) as error:
            trec.parse_measure(bad)
        assert error.value.field == "metric"


def test_negative_relevance_is_still_refused_outside_trec_files():
    with pytest.raises(InvalidInput, match="must be >= 0"):
        ranking.prepare_ranking(np.array(["q"]), np.array(["a"]), np.array([1.0]), np.array(["q"]), np.array(["a"]), np.array([-1]))


def test_catalog_definitions_equal_pytrec_eval_means():
    run_rows, qrels_rows = random_case(30)
    qrels_rows = [(q, d, max(r, 0)) for q, d, r in qrels_rows]  # catalog columns take relevance >= 0
    expected = pytrec(run_rows, qrels_rows)
    columns = {
        "run_query": np.array([r[0] for r in run_rows], dtype=object), "run_doc": np.array([r[1] for r in run_rows], dtype=object),
        "run_score": np.array([r[2] for r in run_rows]), "qrels_query": np.array([r[0] for r in qrels_rows], dtype=object),
        "qrels_doc": np.array([r[1] for r in qrels_rows], dtype=object), "qrels_relevance": np.array([r[2] for r in qrels_rows]),
    }
    by_name = {m.name: m for m in ranking.METRICS}
    for name, key, params in [("ndcg_uncut", "ndcg", {}), ("map_at_k", "map_cut_10", {}), ("map_at_k", "map_cut_5", {"k": 5}),
                              ("bpref", "bpref", {}), ("set_precision", "set_P", {}), ("set_recall", "set_recall", {}),
                              ("set_f1", "set_F", {})]:
        definition = by_name[name]
        assert definition.version == 1 and definition.direction == "higher" and definition.unit == "query"
        resolved = definition.resolve_params(params)
        want = np.mean([v[key] for v in expected.values()])
        assert abs(definition.compute(columns, **resolved) - want) <= TOLERANCE, name
        ids, values = definition.per_unit(columns, **resolved)
        assert list(ids) == sorted(expected) and np.abs(values - [expected[q][key] for q in ids]).max() <= TOLERANCE


# ---------------------------------------------------------------------------------------------------
# Run files with text after the sixth field, and trec_eval's own test files.
# ---------------------------------------------------------------------------------------------------


def test_run_lines_with_trailing_text_score_as_without(tmp_path):
    run_rows, qrels_rows = random_case(40, n_queries=20)
    plain = "".join(f"{q} Q0 {d} {i} {s!r} tag\n" for i, (q, d, s) in enumerate(run_rows))
    # results.trunc style: some lines carry free text after the run tag, separated by tabs or spaces
    trailing = "".join(f"{q}\tQ0\t{d}\t{i}\t  {s!r}\ttag" + (" more junk at\tend\n" if i % 3 else "\n")
                       for i, (q, d, s) in enumerate(run_rows))
    (tmp_path / "plain.run").write_text(plain)
    (tmp_path / "trailing.run").write_text(trailing)
    (tmp_path / "x.qrels").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in qrels_rows))
    with_text, without = trec.read_run(tmp_path / "trailing.run"), trec.read_run(tmp_path / "plain.run")
    pd.testing.assert_frame_equal(with_text, without)
    qrels = trec.read_qrels(tmp_path / "x.qrels")
    result = trec.score_ranking(qrels, with_text, list(MEASURES), per_query=True)
    expected = pytrec(run_rows, qrels_rows)
    for measure, key in MEASURES.items():
        assert max(abs(result["per_query"][measure][q] - expected[q][key]) for q in expected) <= TOLERANCE


@pytest.mark.parametrize("grouped", [False, True])
def test_integer_ids_and_grouped_runs_through_prepare_ranking(grouped):
    run_rows, qrels_rows = random_case(50, doc_id=lambda d: d, query_id=lambda q: q)
    if grouped:  # a run already grouped by query takes the no-copy path
        run_rows = sorted(run_rows, key=lambda row: row[0])
    expected = pytrec(run_rows, qrels_rows)
    data = ranking.prepare_ranking(*(np.array(column) for column in zip(*run_rows, strict=True)),
                                   *(np.array(column) for column in zip(*qrels_rows, strict=True)), keep_negative=True)
    for fn, key in [(ranking.bpref, "bpref"), (ranking.ndcg_uncut, "ndcg"), (ranking.set_f1, "set_F"),
                    (ranking.num_relevant_retrieved, "num_rel_ret"), (lambda d: ranking.map_at_k(d, 5), "map_cut_5")]:
        ids, values = fn(data)
        assert [str(q) for q in ids] == sorted(expected, key=int)
        assert np.abs(values - [expected[str(q)][key] for q in ids]).max() <= TOLERANCE, key


def test_key_collisions_fall_back_to_exact_joins_for_bpref_too(monkeypatch):
    # every key multiplied to the same high bits: the packed join of judged non-relevant documents must
    # notice and use the exact join
    monkeypatch.setattr(ranking_prepare, "_SPREAD", np.uint64(0))
    assert_equals_pytrec(*random_case(60, n_queries=30, max_docs=15))
    monkeypatch.undo()
    # every long id hashes to one value: verified on the strings, then exact dictionary codes
    monkeypatch.setattr(ranking_ids.IdColumn, "_hash", lambda self: np.zeros(len(self), dtype=np.uint64))
    assert_equals_pytrec(*random_case(61, n_queries=30, max_docs=15, doc_id=lambda d: f"clueweb09-en{d:010d}"))
