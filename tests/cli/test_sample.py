"""``evalp sample plan`` and ``evalp sample estimate``: a round trip through files, and the files it refuses."""

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from eval_platform.cli.main import main
from eval_platform.cli.sample import strata_path


def evalp(capsys, *args):
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def score_log(tmp_path):
    """A 20,000-row log (string ids) and the true labels the labellers would return."""
    rng = np.random.default_rng(11)
    scores = rng.random(20_000) ** 6
    truth = (rng.random(20_000) < scores).astype(int)
    ids = [f"item-{i:05d}" for i in range(20_000)]
    path = tmp_path / "log.parquet"
    pd.DataFrame({"item": ids, "p": scores}).to_parquet(path)
    return path, pd.Series(truth, index=ids), scores


def test_plan_label_estimate_round_trip(capsys, tmp_path, score_log):
    log, truth, scores = score_log
    plan = tmp_path / "out" / "plan.csv"
    code, out, err = evalp(capsys, "sample", "plan", "--scores", log, "--id-column", "item", "--score-column", "p",
                           "--budget", 500, "--strata", 8, "--threshold", 0.5, "--seed", 3, "--out", plan, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["budget"] == 500 and summary["population_size"] == 20_000 and summary["allocation"] == "neyman"
    assert strata_path(plan).name == "plan.strata.json" and strata_path(plan).is_file()
    rows = pd.read_csv(plan)
    assert list(rows.columns) == ["id", "score", "stratum", "inclusion_probability", "label"]
    assert len(rows) == 500 and rows["id"].is_unique and rows["label"].isna().all()
    table = json.loads(strata_path(plan).read_text())["strata"]
    sizes = rows.groupby("stratum").size()
    assert [s["sample_size"] for s in table] == [int(sizes[s["index"]]) for s in table]
    assert np.allclose(rows["inclusion_probability"], [table[h]["sample_size"] / table[h]["population"] for h in rows["stratum"]])

    # the labellers fill in the label column; a few rows never come back
    rows["label"] = truth.loc[rows["id"]].to_numpy().astype(float)
    rows.loc[rows.index[::50], "label"] = np.nan
    labels = tmp_path / "labels.csv"
    rows.to_csv(labels, index=False)
    code, out, err = evalp(capsys, "sample", "estimate", "--plan", plan, "--labels", labels, "--threshold", 0.5, "--json")
    assert code == 0, err
    result = json.loads(out)
    prevalence = result["prevalence"]
    assert prevalence["n_labelled"] == 490
    assert prevalence["ci_low"] <= truth.mean() <= prevalence["ci_high"]
    at_half = result["precision_recall"][0]
    assert at_half["denominator"] == "known" and at_half["predicted_positive"] == (scores >= 0.5).sum()
    precision = truth[scores >= 0.5].mean()
    assert at_half["precision"]["ci_low"] <= precision <= at_half["precision"]["ci_high"]

    code, out, _ = evalp(capsys, "sample", "estimate", "--plan", plan, "--labels", labels, "--threshold", 0.5)
    assert code == 0
    assert out.splitlines()[0].split() == ["quantity", "value", "ci_low", "ci_high", "se", "n_labelled", "n_positive", "n_eff"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["prevalence", "precision@0.5", "recall@0.5"]


def test_plan_is_reproducible_and_parquet_works(capsys, tmp_path, score_log):
    log, _, _ = score_log
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (first, second):
        assert evalp(capsys, "sample", "plan", "--scores", log, "--id-column", "item", "--score-column", "p",
                     "--budget", 200, "--allocation", "proportional", "--seed", 9, "--out", out)[0] == 0
    assert pd.read_parquet(first).equals(pd.read_parquet(second))


@pytest.mark.parametrize(("extra", "words"), [
    (("--id-column", "nope"), "--id-column: .* has no column 'nope'"),
    (("--score-column", "nope"), "--score-column: .* has no column 'nope'"),
    (("--budget", "30000"), "budget: 30000 labels exceed the population of 20000 rows"),
    (("--budget", "5", "--strata", "10"), "budget: 5 labels are too few"),
])
def test_plan_refuses_bad_arguments_and_writes_nothing(capsys, tmp_path, score_log, extra, words):
    log, _, _ = score_log
    out = tmp_path / "plan.csv"
    arguments = {"--id-column": "item", "--score-column": "p", "--budget": "100"}
    for name, value in zip(extra[::2], extra[1::2], strict=True):
        arguments[name] = value
    code, _, err = evalp(capsys, "sample", "plan", "--scores", log, *[x for pair in arguments.items() for x in pair], "--out", out)
    assert code == 2 and re.search(words, err), err
    assert list(tmp_path.iterdir()) == [log]


def test_plan_refuses_malformed_logs(capsys, tmp_path):
    out = tmp_path / "plan.csv"
    nan_log = tmp_path / "nan.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "score": [0.1, None, 0.3]}).to_csv(nan_log, index=False)
    code, _, err = evalp(capsys, "sample", "plan", "--scores", nan_log, "--budget", 2, "--strata", 1, "--out", out)
    assert code == 2 and "scores: row 2: nan is not a finite number" in err
    duplicate = tmp_path / "dup.csv"
    pd.DataFrame({"id": ["a", "b", "a"], "score": [0.1, 0.2, 0.3]}).to_csv(duplicate, index=False)
    code, _, err = evalp(capsys, "sample", "plan", "--scores", duplicate, "--budget", 2, "--strata", 1, "--out", out)
    assert code == 2 and "ids: row 3: id 'a' appears twice" in err
    words = tmp_path / "words.csv"
    pd.DataFrame({"id": ["a", "b"], "score": ["high", "low"]}).to_csv(words, index=False)
    code, _, err = evalp(capsys, "sample", "plan", "--scores", words, "--budget", 2, "--strata", 1, "--out", out)
    assert code == 2 and "--score-column" in err and "numbers" in err
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    code, _, err = evalp(capsys, "sample", "plan", "--scores", broken, "--budget", 2, "--out", out)
    assert code == 2 and "--scores" in err and "could not be read" in err
    pickled = tmp_path / "log.csv"  # a pickle under a table's name
    pickled.write_bytes(pickle.dumps(pd.DataFrame({"id": ["a"], "score": [0.5]})))
    code, _, err = evalp(capsys, "sample", "plan", "--scores", pickled, "--budget", 1, "--strata", 1, "--out", out)
    assert code == 2 and "is a pickle; refused" in err
    code, _, err = evalp(capsys, "sample", "plan", "--scores", tmp_path / "log.pkl", "--budget", 1, "--out", out)
    assert code == 2 and "does not exist" in err
    code, _, err = evalp(capsys, "sample", "plan", "--scores", nan_log, "--budget", 1, "--out", tmp_path / "plan.xlsx")
    assert code == 2 and "--out" in err
    assert not out.exists() and not strata_path(out).exists()


@pytest.fixture
def planned(capsys, tmp_path, score_log):
    log, truth, _ = score_log
    plan = tmp_path / "plan.csv"
    assert evalp(capsys, "sample", "plan", "--scores", log, "--id-column", "item", "--score-column", "p",
                 "--budget", 120, "--strata", 4, "--out", plan)[0] == 0
    rows = pd.read_csv(plan)
    rows["label"] = truth.loc[rows["id"]].to_numpy()
    return plan, rows


def test_estimate_refuses_bad_labels_and_plans(capsys, tmp_path, planned):
    plan, rows = planned

    def estimate(frame, name="labels.csv", plan_file=plan):
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return evalp(capsys, "sample", "estimate", "--plan", plan_file, "--labels", path)

    code, _, err = estimate(rows.assign(label=rows["label"].astype(object).where(rows.index != 3, "yes")))
    assert code == 2 and "--labels: row 4: 'yes' is not a 0/1 label" in err
    code, _, err = estimate(pd.concat([rows, rows.iloc[[0]]]))
    assert code == 2 and "labelled twice" in err
    code, _, err = estimate(pd.concat([rows, rows.iloc[[0]].assign(id="stranger")]))
    assert code == 2 and "id 'stranger' is not in the plan's sample" in err
    code, _, err = estimate(rows.drop(columns="label"))
    assert code == 2 and "--label-column" in err and "no column 'label'" in err
    code, _, err = estimate(rows[rows["stratum"] != 2])
    assert code == 2 and "stratum 2" in err and "has no labels" in err
    pickled = tmp_path / "labels.parquet"
    pickled.write_bytes(pickle.dumps(rows))
    code, _, err = evalp(capsys, "sample", "estimate", "--plan", plan, "--labels", pickled)
    assert code == 2 and "is a pickle; refused" in err

    # a plan whose rows disagree with its stratum table, or without the table
    tampered = tmp_path / "tampered.csv"
    rows.assign(stratum=0).to_csv(tampered, index=False)
    (tmp_path / "tampered.strata.json").write_text(strata_path(plan).read_text())
    code, _, err = estimate(rows, plan_file=tampered)
    assert code == 2 and "--plan" in err and "the table says" in err
    lonely = tmp_path / "lonely.csv"
    rows.to_csv(lonely, index=False)
    code, _, err = estimate(rows, plan_file=lonely)
    assert code == 2 and "lonely.strata.json" in err and "does not exist" in err
    (tmp_path / "garbled.strata.json").write_text("{not json")
    rows.to_csv(tmp_path / "garbled.csv", index=False)
    code, _, err = estimate(rows, plan_file=tmp_path / "garbled.csv")
    assert code == 2 and "garbled.strata.json could not be read" in err
    code, _, err = evalp(capsys, "sample", "estimate", "--plan", plan, "--labels", tmp_path / "labels.csv", "--confidence", 2)
    assert code == 2 and "confidence" in err
