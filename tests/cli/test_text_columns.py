"""Text that looks like a number or a missing value stays text through ``evalp`` (issue 17, items 1, 2, 4):
generation files answering "42" or "NA" are scored, registered and evaluated exactly as written; +inf is
printed apart from undefined; long metric names keep their columns. Expected values are hand-counted."""

import json

import pytest

from eval_platform.platform.service import EvalPlatform
from tests.cli.test_cli import evalp
from tests.evaluation.test_runner import evaluate

#: references "42", "0"; answers "42", "1": one exact match in two
NUMERIC = {"example_id": ["007", "7"], "prompt": ["6 * 7?", "0 * 1?"], "reference": ["42", "0"], "prediction": ["42", "1"]}
#: the model answers "NA" three times; two references are "NA": two exact matches in three
NA = {"example_id": ["a", "b", "c"], "prompt": ["None", "null", "nan"], "reference": ["NA", "x", "NA"], "prediction": ["NA", "NA", "NA"]}
SUITE = {"suite_id": "qa", "purpose": "exploratory", "task_type": "generation", "metrics": ["exact_match@1"]}


def write_csv(path, columns: dict, names) -> None:
    lines = [",".join(names)] + [",".join(row) for row in zip(*(columns[n] for n in names), strict=True)]
    path.write_text("\n".join(lines) + "\n")


def write_jsonl(path, columns: dict, names) -> None:
    rows = [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.mark.parametrize("data, expected", [(NUMERIC, 0.5), (NA, 2 / 3)])
@pytest.mark.parametrize("writer, suffix", [(write_csv, ".csv"), (write_jsonl, ".jsonl")])
def test_score_generation_reads_text_as_written(capsys, tmp_path, data, expected, writer, suffix):
    path = tmp_path / f"answers{suffix}"
    writer(path, data, ["prediction", "reference"])
    code, out, err = evalp(capsys, "score", "generation", "--data", str(path), "--prediction", "prediction",
                           "--reference", "reference", "--metric", "exact_match", "--json")
    assert code == 0, err
    assert json.loads(out) == {"exact_match": expected}


def test_an_empty_csv_prediction_is_an_empty_answer(capsys, tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text('prediction,reference\n,\n"",x\n')  # token_f1 of "" vs "" is 1 (its docstring), of "" vs "x" 0
    code, out, err = evalp(capsys, "score", "generation", "--data", str(path), "--prediction", "prediction",
                           "--reference", "reference", "--metric", "exact_match", "--metric", "token_f1", "--json")
    assert code == 0, err
    assert json.loads(out) == {"exact_match": 0.5, "token_f1": 0.5}


@pytest.mark.parametrize("data, expected", [(NUMERIC, 0.5), (NA, 2 / 3)])
def test_register_and_evaluate_text_that_looks_like_numbers_or_missing(capsys, tmp_path, data, expected):
    home = str(tmp_path / "home")
    write_csv(tmp_path / "qa.csv", data, ["example_id", "prompt", "reference"])
    write_csv(tmp_path / "answers.csv", data, ["example_id", "prediction"])
    (tmp_path / "suite.json").write_text(json.dumps(SUITE))
    code, out, err = evalp(capsys, "--home", home, "datasets", "register", "qa", "--file", str(tmp_path / "qa.csv"),
                           "--task-type", "generation", "--label-policy", "synthetic", "--json")
    assert code == 0, err
    assert json.loads(out)["row_count"] == len(data["reference"])
    assert evalp(capsys, "--home", home, "suites", "register", str(tmp_path / "suite.json"))[0] == 0
    code, _, err = evalp(capsys, "--home", home, "models", "register", "bot", "--file", str(tmp_path / "answers.csv"),
                         "--kind", "predictions", "--eval", "qa:qa")
    assert code == 0, err
    platform = EvalPlatform.open(home)
    try:
        stored = platform.load_dataset(platform.dataset("qa@1"))
        assert stored["reference"].tolist() == data["reference"] and stored["example_id"].tolist() == data["example_id"]
        evaluate(platform, "bot@1")
        [run] = platform.runs("bot@1")
        assert run.status == "succeeded" and run.results["metrics"]["exact_match"] == expected
    finally:
        platform.close()


def test_a_missing_text_value_is_refused_naming_row_and_column_and_nothing_is_written(capsys, tmp_path):
    home = str(tmp_path / "home")
    (tmp_path / "qa.jsonl").write_text('{"example_id": "a", "prompt": "p", "reference": "NA"}\n'
                                       '{"example_id": "b", "prompt": "q", "reference": null}\n')
    code, _, err = evalp(capsys, "--home", home, "datasets", "register", "qa", "--file", str(tmp_path / "qa.jsonl"),
                         "--task-type", "generation", "--label-policy", "synthetic")
    assert code == 2 and "--file: row 2, column 'reference': the value is missing" in err
    (tmp_path / "qa.jsonl").write_text('{"example_id": "a", "prompt": "p", "reference": 42}\n')
    code, _, err = evalp(capsys, "--home", home, "datasets", "register", "qa", "--file", str(tmp_path / "qa.jsonl"),
                         "--task-type", "generation", "--label-policy", "synthetic")
    assert code == 2 and "row 1, column 'reference': must be text, got int 42" in err
    code, out, _ = evalp(capsys, "--home", home, "datasets", "list", "--json")
    assert json.loads(out) == []


def test_infinity_is_not_undefined_and_long_names_keep_their_column(capsys, tmp_path):
    # no threshold reaches precision 0.99 (the positive has the lowest score): the threshold is +inf
    path = tmp_path / "scores.csv"
    path.write_text("label,score\n0,0.9\n1,0.1\n")
    metrics = ["--metric", "threshold_at_precision@0.99", "--metric", "roc_auc"]
    code, out, _ = evalp(capsys, "score", "classification", "--data", str(path), "--label", "label", "--score", "score", *metrics, "--json")
    assert code == 0 and json.loads(out) == {"threshold_at_precision@0.99": "inf", "roc_auc": 0.0}
    code, out, _ = evalp(capsys, "score", "classification", "--data", str(path), "--label", "label", "--score", "score", *metrics)
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [["threshold_at_precision@0.99", "all", "inf"], ["roc_auc", "all", "0.0000"]]
    assert len({line.index("all") for line in out.splitlines()}) == 1  # one column, aligned


def test_csv_ids_match_a_dataset_whose_ids_are_numbers(tmp_path):
    """A CSV's ids are read as written (text); where the dataset's ids are numbers (registered from a frame or
    Parquet), every id that is a number matches: the generation answers score as before."""
    import pandas as pd

    platform = EvalPlatform.open(tmp_path / "home")
    try:
        frame = pd.DataFrame({"example_id": [1, 2], "prompt": ["6 * 7?", "0 * 1?"], "reference": ["42", "0"]})
        platform.register_dataset("qa", frame, task_type="generation", label_policy="synthetic")
        platform.register_suite(SUITE)
        (tmp_path / "answers.csv").write_text("example_id,prediction\n2,1\n1,42\n")
        platform.register_model("bot", tmp_path / "answers.csv", kind="predictions", eval_plan=[("qa", "qa")])
        evaluate(platform, "bot@1")
        assert platform.runs("bot@1")[0].results["metrics"]["exact_match"] == 0.5
    finally:
        platform.close()
