"""``evalp score ranking`` with trec_eval's bpref, uncut ndcg, map_cut, set and count measures, on a run whose
lines carry text after the tag (as trec_eval's own ``results.trunc``). Expected values: pytrec_eval."""

import json

import pytest

from eval_platform.cli.main import main

pytrec_eval = pytest.importorskip("pytrec_eval")

QRELS = {"301": {"a": 2, "b": 0, "c": 1, "d": 1, "e": -1}, "302": {"x": 0, "y": 3}}
RUN = {"301": {"a": 0.5, "b": 0.9, "c": 0.5, "e": 0.7, "f": 0.1}, "302": {"x": 2.0, "y": 1.0, "z": 1.0}}
MEASURES = {"bpref": "bpref", "ndcg": "ndcg", "map_cut_2": "map_cut_2", "ndcg_cut_3": "ndcg_cut_3", "set_P": "set_P",
            "set_recall": "set_recall", "set_F": "set_F", "num_rel": "num_rel", "num_ret": "num_ret", "num_rel_ret": "num_rel_ret"}


def files(tmp_path):
    qrels = tmp_path / "t.qrels"
    qrels.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in QRELS.items() for d, r in docs.items()))
    run = tmp_path / "t.run"
    rows = [(q, d, s) for q, docs in RUN.items() for d, s in docs.items()]
    lines = [f"{q}\tQ0\t{d}\t{rank}\t{s}\tSTANDARD" + ("  more junk at\tend of lines" if rank % 2 else "") + "\n"
             for rank, (q, d, s) in enumerate(rows, start=1)]
    run.write_text("".join(lines))
    return qrels, run


def test_new_measures_and_trailing_text_through_the_cli(tmp_path, capsys):
    qrels, run = files(tmp_path)
    metric_args = [arg for name in MEASURES for arg in ("--metric", name)]
    assert main(["score", "ranking", "--qrels", str(qrels), "--run", str(run), *metric_args, "--per-query", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    expected = pytrec_eval.RelevanceEvaluator(QRELS, {"bpref", "ndcg", "map_cut.2", "ndcg_cut.3", "set_P", "set_recall", "set_F",
                                                      "num_rel", "num_ret", "num_rel_ret"}).evaluate(RUN)
    assert scored["num_queries"] == 2
    for name, key in MEASURES.items():
        for query in expected:
            assert abs(scored["per_query"][name][query] - expected[query][key]) <= 1e-12, (name, query)
        summary = pytrec_eval.compute_aggregated_measure(key, [v[key] for v in expected.values()])
        assert abs(scored["mean"][name] - summary) <= 1e-12, name

    assert main(["score", "ranking", "--qrels", str(qrels), "--run", str(run), "--metric", "num_ret", "--metric", "bpref"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["num_ret", "all", "8"] in lines  # counts are summed and printed as integers, as trec_eval does
    assert ["bpref", "all", f"{(expected['301']['bpref'] + expected['302']['bpref']) / 2:.4f}"] in lines


def test_unknown_measure_is_refused_naming_the_forms(tmp_path, capsys):
    qrels, run = files(tmp_path)
    assert main(["score", "ranking", "--qrels", str(qrels), "--run", str(run), "--metric", "set_F.2"]) != 0
    err = capsys.readouterr().err
    assert "set_F.2" in err and "bpref" in err
