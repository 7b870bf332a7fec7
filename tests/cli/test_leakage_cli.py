"""``evalp datasets hash-examples``, ``datasets register --time-column`` and ``models register --training-cutoff
--training-manifest``: a training manifest built by the CLI matches the eval dataset's examples."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pyarrow.parquet as pq

from eval_platform.platform.service import EvalPlatform
from tests.cli.test_cli import evalp
from tests.conftest import ROOT
from tests.evaluation.test_runner import evaluate


def test_hash_examples_builds_the_manifest_the_gate_uses(capsys, tmp_path, breast_cancer, model_files):
    home = str(tmp_path / "home")
    frame = breast_cancer[2].assign(ts="2026-03-01T00:00:00Z")
    dataset = tmp_path / "bc.parquet"
    frame.to_parquet(dataset)
    code, out, err = evalp(capsys, "--home", home, "datasets", "register", "bc", "--file", str(dataset), "--task-type",
                           "binary_classification", "--label-policy", "human_reviewed", "--time-column", "ts", "--json")
    assert code == 0, err
    assert json.loads(out)["schema"]["time_column"] == "ts"
    assert evalp(capsys, "--home", home, "suites", "register", str(ROOT / "demo" / "breast_cancer_release.yaml"))[0] == 0

    # the training file: 4 eval examples' inputs (as CSV, without ids or labels) and one other row
    features = [c for c in frame.columns if c not in ("example_id", "label", "tumour_size", "ts")]
    training = pd.concat([frame.iloc[[3, 5, 7, 9]][features], frame.iloc[[0]][features] + 1000.0], ignore_index=True)
    training_file = tmp_path / "train.csv"
    training.to_csv(training_file, index=False)
    manifest = tmp_path / "manifest.parquet"
    code, out, err = evalp(capsys, "--home", home, "datasets", "hash-examples", str(training_file), "--like", "bc@1",
                           "--out", str(manifest), "--json")
    assert code == 0, err
    assert json.loads(out)["distinct_hashes"] == 5 and json.loads(out)["columns"] == features
    # one hash checked against the documented definition, by hand: sorted keys, numbers as floats, sha256
    row = frame.iloc[3]
    text = json.dumps({c: float(row[c]) for c in sorted(features)}, separators=(",", ":"))
    assert "sha256:" + hashlib.sha256(text.encode()).hexdigest() in pq.read_table(manifest).column("example_hash").to_pylist()

    code, out, err = evalp(capsys, "--home", home, "models", "register", "det", "--file", str(model_files["logistic_regression"]),
                           "--eval", "bc:breast-cancer-release", "--training-manifest", str(manifest),
                           "--training-cutoff", "2026-01-01", "--json")
    assert code == 0, err
    run_id = json.loads(out)["queued_runs"][0]
    platform = EvalPlatform.open(home)
    try:
        assert evaluate(platform, "det@1").decision == "no_decision"
    finally:
        platform.close()
    code, out, _ = evalp(capsys, "--home", home, "runs", "show", run_id)
    assert code == 0 and "leakage: 4 of 228 examples are in the model's training manifest (same content hash)" in out


def test_bad_leakage_input_names_the_flag_or_field(capsys, tmp_path, model_files):
    home = str(tmp_path / "home")
    training = tmp_path / "train.csv"
    pd.DataFrame({"x": [1.0]}).to_csv(training, index=False)
    code, _, err = evalp(capsys, "--home", home, "datasets", "hash-examples", str(training), "--column", "y", "--out", str(tmp_path / "m.parquet"))
    assert code == 2 and "--column: column(s) 'y' are not in" in err
    code, _, err = evalp(capsys, "--home", home, "datasets", "hash-examples", str(training), "--out", str(tmp_path / "m.parquet"))
    assert code == 2 and "--column: give the input columns" in err
    assert not (tmp_path / "m.parquet").exists()
    code, _, err = evalp(capsys, "--home", home, "models", "register", "det", "--file", str(model_files["logistic_regression"]),
                         "--training-cutoff", "01/02/2026")
    assert code == 2 and "training_cutoff: '01/02/2026' is not an ISO 8601 time" in err
    bad = tmp_path / "manifest.pkl"
    bad.write_bytes(b"\x80\x04K\x01.")
    code, _, err = evalp(capsys, "--home", home, "models", "register", "det", "--file", str(model_files["logistic_regression"]),
                         "--training-manifest", str(bad))
    assert code == 2 and "training_manifest: a pickle is refused" in err
