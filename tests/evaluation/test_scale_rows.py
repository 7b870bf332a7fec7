"""Registration and evaluation of a dataset large enough to be chunked (200k rows): the same content
hash and metrics as the whole-table path, and the chunking shown by what was actually chunked (row groups
written and read, rows Great Expectations saw, model calls), not by timings."""

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import skops.io
from sklearn import metrics as sk
from sklearn.linear_model import LogisticRegression

from eval_platform.core import store
from eval_platform.core.errors import InvalidInput
from eval_platform.core.store import DATASETS
from eval_platform.core.tasks import get_task_type
from eval_platform.datasets import validation
from eval_platform.evaluation import predicting, runner
from eval_platform.models import files as models
from eval_platform.platform.service import EvalPlatform

ROWS = 200_000
FEATURES = ["f0", "f1", "f2", "f3"]
SUITE = {"suite_id": "big", "purpose": "release_blocking", "task_type": "binary_classification", "slices": ["segment"],
         "metrics": [{"name": "auc", "metric": "roc_auc@1"}, {"name": "accuracy", "metric": "accuracy@1"}],
         "gate": {"require_baseline": False, "rules": [{"metric": "auc", "min": 0.5}]}}


def whole_table_hash(frame: pd.DataFrame) -> str:
    """The content hash as the platform always defined it, computed here with plain pyarrow: the IPC stream
    of the whole frame as one compact record batch, built in memory."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False).replace_schema_metadata(None)
    table = table.take(pa.array(np.arange(table.num_rows))).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    label = (rng.random(ROWS) < 0.3).astype(np.int64)
    frame = pd.DataFrame({"example_id": [f"ex-{i}" for i in range(ROWS)]})
    for i, name in enumerate(FEATURES):
        frame[name] = rng.normal(size=ROWS) + 0.4 * i * label
    frame["label"] = label
    frame["segment"] = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, ROWS)]
    return frame


@pytest.fixture
def service(tmp_path, monkeypatch):
    # small chunks, so 200k rows make several of each (10M rows use the defaults: 1Mi-row groups)
    monkeypatch.setattr(store, "ROW_GROUP_ROWS", 50_000)
    monkeypatch.setattr(models, "PREDICT_BATCH_ROWS", 30_000)
    platform = EvalPlatform.open(tmp_path / "home")
    yield platform
    platform.close()


def test_registration_hashes_and_stores_in_chunks(service, data):
    record = service.register_dataset("big", data, task_type="binary_classification", label_policy="human_reviewed",
                                      slice_columns=["segment"]).record
    assert record.content_hash == whole_table_hash(data)
    assert record.row_count == ROWS and record.schema["feature_columns"] == FEATURES
    stored = pq.ParquetFile(service.store.uri(DATASETS, record.content_hash))
    assert stored.metadata.num_row_groups == 4  # written in row groups, read back a group at a time
    assert [stored.read_row_group(i, columns=["example_id"]).num_rows for i in range(4)] == [50_000] * 4
    loaded = service.load_dataset(record)
    pd.testing.assert_frame_equal(loaded, data, check_dtype=False)
    loaded["extra"] = 1  # a caller's new column never reaches the cached rows
    assert "extra" not in service.load_dataset(record).columns


def test_validation_samples_for_great_expectations_but_checks_every_row(data):
    report = validation.validate_frame(data, get_task_type("binary_classification"), FEATURES)
    assert report.success and report.sampled_rows == validation.GE_SAMPLE_ROWS < ROWS
    # rows Great Expectations' evenly spaced sample does not include: the exact checks still find them
    sampled = set(np.linspace(0, ROWS - 1, validation.GE_SAMPLE_ROWS).round().astype(int))
    unseen = [row for row in range(1, ROWS, 2) if row not in sampled][:3]
    bad = data.copy()
    bad.loc[unseen[0], "example_id"] = bad.loc[unseen[1], "example_id"]
    bad.loc[unseen[2], "label"] = 2
    report = validation.validate_frame(bad, get_task_type("binary_classification"), FEATURES)
    failures = {o.expectation: o for o in report.failures()}
    duplicate = failures["expect_column_values_to_be_unique"]
    assert duplicate.unexpected_count == 2 and duplicate.examples == (data.loc[unseen[1], "example_id"],) * 2
    assert failures["expect_column_values_to_be_in_set"].unexpected_count == 1
    assert failures["expect_column_values_to_be_in_set"].problem == "1 value(s) outside the label domain, e.g. [2]"
    with pytest.raises(InvalidInput, match="duplicate value"):
        report.raise_for_failures()


def test_evaluation_in_batches_gives_the_whole_table_metrics(service, data, tmp_path, monkeypatch):
    service.register_dataset("big", data, task_type="binary_classification", label_policy="human_reviewed",
                             slice_columns=["segment"])
    service.register_suite(SUITE)
    features = data[FEATURES].to_numpy()
    estimator = LogisticRegression(max_iter=1000).fit(features[:5000], data["label"].to_numpy()[:5000])
    expected_score = estimator.predict_proba(features)[:, 1]  # one call on every row
    path = tmp_path / "lr.skops"
    skops.io.dump(estimator, path)

    calls = []
    real = LogisticRegression.predict_proba
    monkeypatch.setattr(LogisticRegression, "predict_proba", lambda self, x: calls.append(len(x)) or real(self, x))
    service.register_model("lr", path, eval_plan=[("big", "big")])
    runs = service.claim_runs("lr@1", "local", requested=True)
    for run in runs:
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
        runner.compare_with_baseline(service, run)
    assert runner.finish_runs(service, "lr@1", runs).decision == "pass"
    assert calls[-7:] == [30_000] * 6 + [20_000]  # the model saw the rows in batches

    run = service.runs("lr@1")[0]
    predictions = service.store.get_table("predictions", run.predictions_hash)
    np.testing.assert_allclose(predictions["score"].to_numpy(), expected_score, rtol=0, atol=1e-12)
    label = data["label"].to_numpy()
    assert run.results["metrics"]["auc"] == pytest.approx(sk.roc_auc_score(label, expected_score), abs=1e-9)
    assert run.results["metrics"]["accuracy"] == pytest.approx(sk.accuracy_score(label, expected_score >= 0.5), abs=1e-12)
    slices = {s["slice"]: s for s in run.results["slices"] if s["metric"] == "auc"}
    for segment in ("east", "north", "south", "west"):
        rows = (data["segment"] == segment).to_numpy()
        assert slices[f"segment={segment}"]["n_examples"] == rows.sum()
        assert slices[f"segment={segment}"]["value"] == pytest.approx(sk.roc_auc_score(label[rows], expected_score[rows]), abs=1e-9)


@pytest.mark.parametrize("order", ["dataset order", "shuffled"])
def test_a_predictions_file_in_any_order_gives_the_same_metrics(service, data, tmp_path, order):
    service.register_dataset("big", data, task_type="binary_classification", label_policy="human_reviewed",
                             slice_columns=["segment"])
    service.register_suite(SUITE)
    score = np.clip(0.3 * data["label"].to_numpy() + 0.7 * np.random.default_rng(3).random(ROWS), 0, 1)
    scores = pd.DataFrame({"example_id": data["example_id"], "score": score})
    if order == "shuffled":  # joined on the ids, not by position
        scores = scores.sample(frac=1.0, random_state=1)
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    service.register_model("scores", path, kind="predictions", eval_plan=[("big", "big")])
    runs = service.claim_runs("scores@1", "local", requested=True)
    for run in runs:
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
    metrics = service.runs("scores@1")[0].results["metrics"]
    assert metrics["auc"] == pytest.approx(sk.roc_auc_score(data["label"], score), abs=1e-9)
    assert metrics["accuracy"] == pytest.approx(sk.accuracy_score(data["label"], score >= 0.5), abs=1e-12)


def test_a_predictions_file_missing_an_example_is_refused_before_anything_is_written(service, data, tmp_path):
    service.register_dataset("big", data, task_type="binary_classification", label_policy="human_reviewed")
    service.register_suite(SUITE)
    scores = pd.DataFrame({"example_id": data["example_id"], "score": 0.5}).drop(index=123_456)
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path)
    with pytest.raises(InvalidInput, match=r"no row for 1 example\(s\).*example_id='ex-123456' \(dataset row 123457\)"):
        service.register_model("scores", path, kind="predictions", eval_plan=[("big", "big")])
    assert service.models() == []


def test_multiclass_slices_from_the_whole_frame_arrays(service, tmp_path):
    """Slices take their rows out of the whole frame's arrays; the per-class columns stay one broadcast row."""
    rng = np.random.default_rng(5)
    n = 3000
    label = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    frame = pd.DataFrame({"example_id": np.arange(n), "x": rng.normal(size=n), "label": label,
                          "region": np.array(["eu", "us"])[rng.integers(0, 2, n)]})
    service.register_dataset("mc", frame, task_type="multiclass_classification", label_policy="human_reviewed",
                             slice_columns=["region"])
    service.register_suite({"suite_id": "mc", "purpose": "release_blocking", "task_type": "multiclass_classification",
                            "slices": ["region"], "metrics": [{"name": "f1", "metric": "multiclass_f1_macro@1"},
                                                             {"name": "auc", "metric": "multiclass_roc_auc_ovr@1"}],
                            "gate": {"require_baseline": False, "rules": [{"metric": "f1", "min": 0.0}]}})
    proba = rng.dirichlet([1, 1, 1], n)
    path = tmp_path / "mc.parquet"
    pd.DataFrame({"example_id": np.arange(n), "prediction": np.array(["a", "b", "c"])[proba.argmax(1)],
                  "proba_a": proba[:, 0], "proba_b": proba[:, 1], "proba_c": proba[:, 2]}).to_parquet(path)
    service.register_model("mc", path, kind="predictions", eval_plan=[("mc", "mc")])
    for run in service.claim_runs("mc@1", "local", requested=True):
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
    slices = {(s["metric"], s["slice"]): s["value"] for s in service.runs("mc@1")[0].results["slices"]}
    for region in ("eu", "us"):
        rows = frame["region"].to_numpy() == region
        predicted = np.array(["a", "b", "c"])[proba[rows].argmax(1)]
        assert slices[("f1", f"region={region}")] == pytest.approx(sk.f1_score(label[rows], predicted, average="macro"), abs=1e-12)
        assert slices[("auc", f"region={region}")] == pytest.approx(
            sk.roc_auc_score(label[rows], proba[rows], multi_class="ovr", labels=["a", "b", "c"]), abs=1e-12)
