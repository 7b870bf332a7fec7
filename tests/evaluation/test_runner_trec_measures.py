"""A ranking suite naming trec_eval's bpref, uncut NDCG, MAP at a cut-off and the set measures: the eval run's
values equal pytrec_eval's means, per query slices included, and a gate rule on bpref decides."""

import numpy as np
import pandas as pd
import pytest

from tests.evaluation.test_runner import evaluate, service  # noqa: F401 - the fixture

pytrec_eval = pytest.importorskip("pytrec_eval")


def test_suite_with_bpref_ndcg_map_cut_and_set_measures(service, tmp_path):  # noqa: F811 - the fixture
    rng = np.random.default_rng(7)
    queries = [f"q{i}" for i in range(30)]
    judged = pd.DataFrame([(q, f"d{j}", int(rng.integers(0, 3))) for q in queries for j in rng.choice(40, 10, replace=False)],
                          columns=["query_id", "doc_id", "relevance"])
    service.register_dataset("search", judged, task_type="ranking", label_policy="human_reviewed")
    service.register_suite({"suite_id": "search", "purpose": "release_blocking", "task_type": "ranking",
                            "metrics": ["bpref@1", "ndcg_uncut@1", {"name": "map@5", "metric": "map_at_k@1", "params": {"k": 5}},
                                        "set_precision@1", "set_recall@1", "set_f1@1"],
                            "gate": {"require_baseline": False, "rules": [{"metric": "bpref", "min": 0.05}]}})
    # 25 of 40 documents retrieved per query, scores in quarter steps: many ties, broken by docno
    rows = [(q, f"d{j}", float(rng.integers(0, 8)) / 4) for q in queries for j in rng.choice(40, 25, replace=False)]
    run_frame = pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])
    path = tmp_path / "run.parquet"
    run_frame.to_parquet(path)
    service.register_model("ranker", path, kind="predictions", eval_plan=[("search", "search")])
    decision = evaluate(service, "ranker@1").decision
    metrics = service.runs("ranker@1")[0].results["metrics"]

    qrels = {q: {d: int(r) for d, r in zip(g.doc_id, g.relevance, strict=True)} for q, g in judged.groupby("query_id")}
    trec_run = {q: {d: float(s) for d, s in zip(g.doc_id, g.score, strict=True)} for q, g in run_frame.groupby("query_id")}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"bpref", "ndcg", "map_cut.5", "set_P", "set_recall", "set_F"}).evaluate(trec_run)
    for name, key in [("bpref", "bpref"), ("ndcg_uncut", "ndcg"), ("map@5", "map_cut_5"), ("set_precision", "set_P"),
                      ("set_recall", "set_recall"), ("set_f1", "set_F")]:
        assert abs(metrics[name] - np.mean([v[key] for v in reference.values()])) <= 1e-12, name
    want = "pass" if np.mean([v["bpref"] for v in reference.values()]) >= 0.05 else "fail"
    assert decision == want
