"""``evalp score``: files scored directly, equal to scikit-learn and sacrebleu; bad files named precisely."""

import json

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from sklearn import metrics as sk

from eval_platform.cli.main import main


@pytest.fixture
def classification_csv(tmp_path):
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 500)
    score = np.round(np.clip(label * 0.3 + rng.random(500) * 0.7, 0, 1), 2)  # many ties
    path = tmp_path / "scores.csv"
    pd.DataFrame({"y": label, "p": score}).to_csv(path, index=False)
    return path, label, score


def score(capsys, *args):
    code = main(["score", *args, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_classification_matches_scikit_learn(capsys, classification_csv):
    path, label, value = classification_csv
    code, result = score(capsys, "classification", "--data", str(path), "--label", "y", "--score", "p",
                         "--metric", "roc_auc", "--metric", "average_precision", "--metric", "f1@0.5",
                         "--metric", "log_loss", "--metric", "brier_score", "--metric", "precision@0.7")
    assert code == 0
    assert result["roc_auc"] == pytest.approx(sk.roc_auc_score(label, value), abs=1e-12)
    assert result["average_precision"] == pytest.approx(sk.average_precision_score(label, value), abs=1e-12)
    assert result["f1@0.5"] == pytest.approx(sk.f1_score(label, value >= 0.5), abs=1e-12)
    assert result["precision@0.7"] == pytest.approx(sk.precision_score(label, value >= 0.7), abs=1e-12)
    assert result["log_loss"] == pytest.approx(sk.log_loss(label, value), abs=1e-12)
    assert result["brier_score"] == pytest.approx(sk.brier_score_loss(label, value), abs=1e-12)


def test_parquet_and_generation(capsys, tmp_path):
    frame = pd.DataFrame({"pred": ["the cat sat on the mat today", "a quick brown fox jumps"],
                          "ref": ["the cat sat on the mat", "the quick brown fox jumps"]})
    path = tmp_path / "gen.parquet"
    frame.to_parquet(path)
    code, result = score(capsys, "generation", "--data", str(path), "--prediction", "pred", "--reference", "ref",
                         "--metric", "bleu", "--metric", "chrf", "--metric", "exact_match")
    assert code == 0
    assert result["bleu"] == pytest.approx(sacrebleu.corpus_bleu(list(frame.pred), [list(frame.ref)]).score / 100, abs=1e-12)
    assert result["chrf"] == pytest.approx(sacrebleu.corpus_chrf(list(frame.pred), [list(frame.ref)]).score / 100, abs=1e-12)
    assert result["exact_match"] == 0.5  # SQuAD normalisation drops the articles: "a quick..." == "the quick..."


def test_bad_files_name_the_column_or_row(capsys, tmp_path, classification_csv):
    path, _, _ = classification_csv
    code, err = score(capsys, "classification", "--data", str(path), "--label", "y", "--score", "nope", "--metric", "roc_auc")
    assert code == 2 and "--score: column 'nope' is not in the file" in err
    broken = tmp_path / "nan.csv"
    pd.DataFrame({"y": [0, 1, 1], "p": [0.1, None, 0.3]}).to_csv(broken, index=False)
    code, err = score(capsys, "classification", "--data", str(broken), "--label", "y", "--score", "p", "--metric", "roc_auc")
    assert code == 2 and "column 'p': row 2" in err
    code, err = score(capsys, "classification", "--data", str(path), "--label", "y", "--score", "p", "--metric", "auc_roc")
    assert code == 2 and "unknown classification metric 'auc_roc'" in err
    code, err = score(capsys, "classification", "--data", str(path), "--label", "y", "--score", "p", "--metric", "f1@high")
    assert code == 2 and "not a valid threshold" in err


def test_ranking_files_match_trec_eval(capsys, tmp_path):
    import pytrec_eval

    (tmp_path / "qrels").write_text("q1 0 d1 1\nq1 0 d2 0\nq1 0 d3 2\nq2 0 d9 1\n")
    (tmp_path / "run").write_text("q1 Q0 d1 1 0.9 t\nq1 Q0 d3 2 0.5 t\nq1 Q0 d7 3 0.5 t\nq2 Q0 d8 1 0.3 t\nq2 Q0 d9 2 0.2 t\n")
    code, result = score(capsys, "ranking", "--qrels", str(tmp_path / "qrels"), "--run", str(tmp_path / "run"),
                         "--metric", "map", "--metric", "ndcg@10", "--metric", "recip_rank", "--per-query")
    assert code == 0
    reference = pytrec_eval.RelevanceEvaluator({"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d9": 1}},
                                               {"map", "ndcg_cut_10", "recip_rank"}).evaluate(
        {"q1": {"d1": 0.9, "d3": 0.5, "d7": 0.5}, "q2": {"d8": 0.3, "d9": 0.2}})
    for query in ("q1", "q2"):
        assert result["per_query"]["map"][query] == pytest.approx(reference[query]["map"], abs=1e-12)
        assert result["per_query"]["ndcg@10"][query] == pytest.approx(reference[query]["ndcg_cut_10"], abs=1e-12)
    assert result["num_queries"] == 2
    (tmp_path / "bad").write_text("q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 high t\n")
    code, err = score(capsys, "ranking", "--qrels", str(tmp_path / "qrels"), "--run", str(tmp_path / "bad"), "--metric", "map")
    assert code == 2 and "line 2" in err
