"""``evalp``: registration, listing and bad input through the command line (--json and tables)."""

import json

import pytest

from eval_platform.cli.main import main
from tests.conftest import ROOT


def evalp(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def dataset_file(tmp_path, breast_cancer):
    _, _, frame = breast_cancer
    path = tmp_path / "bc.parquet"
    frame.to_parquet(path)
    return path


def test_register_and_list(capsys, tmp_path, dataset_file, model_files):
    home = str(tmp_path / "home")
    code, out, _ = evalp(capsys, "--home", home, "datasets", "register", "bc", "--file", str(dataset_file),
                         "--task-type", "binary_classification", "--label-policy", "human_reviewed",
                         "--slice", "tumour_size", "--json")
    assert code == 0
    dataset = json.loads(out)
    assert dataset["key"] == "bc@1" and dataset["created"] is True and dataset["row_count"] == 228
    code, out, _ = evalp(capsys, "suites", "register", str(ROOT / "demo" / "breast_cancer_release.yaml"), "--home", home, "--json")
    assert code == 0 and json.loads(out)["key"] == "breast-cancer-release@1"
    code, out, _ = evalp(capsys, "--home", home, "models", "register", "detector", "--file",
                         str(model_files["logistic_regression"]), "--eval", "bc:breast-cancer-release", "--json")
    model = json.loads(out)
    assert code == 0 and model["key"] == "detector@1" and len(model["queued_runs"]) == 1

    code, out, _ = evalp(capsys, "--home", home, "runs", "list", "--json")
    runs = json.loads(out)
    assert [(r["model"], r["dataset"], r["suite"], r["status"]) for r in runs] == [
        ("detector@1", "bc@1", "breast-cancer-release@1", "queued")]
    code, out, _ = evalp(capsys, "--home", home, "runs", "list")
    assert code == 0 and "detector@1" in out and "queued" in out.splitlines()[1]
    code, out, _ = evalp(capsys, "--home", home, "runs", "show", runs[0]["run_id"])
    assert code == 0 and out.startswith(f"eval run {runs[0]['run_id']}: detector@1 on bc@1")
    code, out, _ = evalp(capsys, "--home", home, "datasets", "list")
    assert code == 0 and "bc@1" in out


def test_bad_input_is_a_clear_error_and_writes_nothing(capsys, tmp_path, dataset_file):
    home = str(tmp_path / "home")
    code, _, err = evalp(capsys, "--home", home, "datasets", "register", "bc", "--file", str(dataset_file),
                         "--task-type", "regression", "--label-policy", "human_reviewed")
    assert code == 2 and "task_type: unknown task type 'regression'" in err
    code, _, err = evalp(capsys, "--home", home, "datasets", "register", "bc", "--file", str(tmp_path / "nope.csv"),
                         "--task-type", "binary_classification", "--label-policy", "human_reviewed")
    assert code == 2 and "does not exist" in err
    code, _, err = evalp(capsys, "--home", home, "runs", "show", "run-missing")
    assert code == 2 and "not found" in err
    code, out, _ = evalp(capsys, "--home", home, "datasets", "list", "--json")
    assert json.loads(out) == []


def test_failure_mode_commands(capsys, tmp_path, breast_cancer, model_files, release_suite):
    from eval_platform.platform.service import EvalPlatform
    from tests.evaluation.test_runner import evaluate

    home = tmp_path / "home"
    service = EvalPlatform.open(home)
    _, _, frame = breast_cancer
    service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                             slice_columns=["tumour_size"])
    service.register_suite(release_suite)
    service.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "breast-cancer-release")])
    evaluate(service, "detector@1")
    run_id = service.runs("detector@1")[0].run_id

    code, out, _ = evalp(capsys, "--home", str(home), "runs", "lineage", run_id)
    assert code == 0 and "dataset    bc@1  sha256:" in out and "metrics    roc_auc=roc_auc@1" in out
    code, out, _ = evalp(capsys, "--home", str(home), "runs", "lineage", run_id, "--json")
    assert json.loads(out)["model"]["file_hash"] == service.model("detector@1").file_hash

    code, _, err = evalp(capsys, "--home", str(home), "gate", "override", "detector@1", "--by", "mallory", "--reason", "x")
    assert code == 2 and "only fail or no_decision can be overridden" in err  # it passed

    code, out, _ = evalp(capsys, "--home", str(home), "metrics", "mark-buggy", "average_precision@1",
                         "--reason", "wrong ties", "--by", "ops", "--json")
    impact = json.loads(out)
    assert code == 0 and impact["affected_models"] == ["detector@1"] and [r["run_id"] for r in impact["runs"]] == [run_id]
    code, out, _ = evalp(capsys, "--home", str(home), "gate", "show", "detector@1")
    assert "NO_DECISION" in out and "frozen: metric average_precision@1 is marked buggy" in out
    code, _, err = evalp(capsys, "--home", str(home), "recompute", "--affected-by", "average_precision@1", "--by", "ops")
    assert code == 2 and "no fixed version of average_precision newer than average_precision@1" in err
    code, _, err = evalp(capsys, "--home", str(home), "gate", "override", "detector@1", "--by", "mallory", "--reason", "x")
    assert code == 2 and "'mallory' is not an approver of suite breast-cancer-release@1" in err
    code, out, _ = evalp(capsys, "--home", str(home), "gate", "override", "detector@1", "--by", "release-manager",
                         "--reason", "metric bug, verified by hand", "--json")
    assert code == 0 and json.loads(out)["overridden_decision"] == "no_decision"

    code, out, _ = evalp(capsys, "--home", str(home), "datasets", "invalidate", "bc@1", "--reason", "leak", "--by", "ops")
    assert code == 0 and "affected runs: 1" in out and run_id in out
    code, out, _ = evalp(capsys, "--home", str(home), "runs", "show", run_id, "--json")
    assert json.loads(out)["status"] == "invalid"
    code, out, _ = evalp(capsys, "--home", str(home), "metrics", "list", "--json")
    flags = {m["metric"]: m["buggy"] for m in json.loads(out)}
    assert flags["average_precision@1"] is True and flags["roc_auc@1"] is False
    service.close()


@pytest.mark.parametrize("command", [
    ["counterfactual", "--reward", "r", "--propensity", "p", "--target-probability", "t"],
    ["interleaving", "--query", "q", "--team", "team", "--clicked", "c"],
    ["agreement", "--rater", "a", "--rater", "b"],
])
def test_score_commands_name_their_data_flag_and_never_unpickle(capsys, tmp_path, command):
    import pickle

    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    code, _, err = evalp(capsys, "score", command[0], "--data", str(tmp_path / "absent.csv"), *command[1:])
    assert code != 0 and "--data" in err and "absent.csv does not exist" in err
    payload = tmp_path / "rounds.pkl"
    payload.write_bytes(pickle.dumps(Exploit()))
    code, _, err = evalp(capsys, "score", command[0], "--data", str(payload), *command[1:])
    assert code != 0 and "--data" in err and "unsupported format" in err
    assert not marker.exists()
