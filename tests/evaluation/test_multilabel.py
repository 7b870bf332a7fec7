"""Multi-label evaluation end to end in the runner: dataset -> predictions (a skops model or a predictions
file) -> catalog metrics equal to scikit-learn's -> paired bootstrap against the baseline -> gate decision."""

import math

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn import metrics as sk

from eval_platform.core.errors import InvalidInput
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from eval_platform.metrics import multiclass
from eval_platform.metrics.catalog import all_metrics
from eval_platform.platform.service import EvalPlatform
from tests.multilabel_data import MULTILABEL_SUITE, TOPICS, topic_models, topics_frame

LABELS = sorted(TOPICS)


def evaluate(service: EvalPlatform, model_key: str):
    runs = service.claim_runs(model_key, "local", requested=True)
    for run in runs:
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
        runner.compare_with_baseline(service, run)
    return runner.finish_runs(service, model_key, runs)


@pytest.fixture
def service(tmp_path):
    platform = EvalPlatform.open(tmp_path / "home")
    yield platform
    platform.close()


def _sklearn_reference(y, scores, threshold=0.5) -> dict[str, float]:
    """Every multi-label catalog metric as scikit-learn computes it on the same indicator and scores."""
    predicted = (scores >= threshold).astype(int)
    out = {}
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y, predicted, average=average, zero_division=0)
        out |= {f"multilabel_precision_{average}": p, f"multilabel_recall_{average}": r, f"multilabel_f1_{average}": f,
                f"multilabel_roc_auc_{average}": sk.roc_auc_score(y, scores, average=average),
                f"multilabel_average_precision_{average}": sk.average_precision_score(y, scores, average=average)}
    out["multilabel_hamming_loss"] = sk.hamming_loss(y, predicted)
    out["multilabel_subset_accuracy"] = sk.accuracy_score(y, predicted)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_multilabel_catalog_metric_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((300, 5)) < rng.uniform(0.1, 0.6, 5)).astype(int)
    y[0], y[1] = 1, 0  # every label has a positive and a negative example (scikit-learn's AUC needs both)
    scores = np.clip(0.35 * y + rng.random((300, 5)) * 0.8, 0, 1).round(2)  # rounded: ties in the scores
    names = np.array([f"L{j}" for j in range(5)], dtype=object)
    columns = {"labels": y, "proba": scores, "classes": np.broadcast_to(names, scores.shape)}
    expected = _sklearn_reference(y, scores)
    catalog = {d.name: d for d in all_metrics() if "multilabel_classification" in d.task_types and d.name in expected}
    assert set(catalog) == set(expected)
    for name, definition in catalog.items():
        assert definition.compute(columns) == pytest.approx(expected[name], abs=1e-12), name
    # a list of labels per row gives the same numbers as the indicator
    lists = np.empty(300, dtype=object)
    lists[:] = [list(names[row == 1]) for row in y]
    assert catalog["multilabel_f1_macro"].compute(dict(columns, labels=lists)) == pytest.approx(expected["multilabel_f1_macro"], abs=1e-12)


def test_hamming_subset_accuracy_and_auc_by_hand():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.9, 0.6], [0.2, 0.4], [0.7, 0.8]])
    # decisions at 0.5: [1,1], [0,0], [1,1] -> 2 wrong cells of 6; rows 0 and 1 differ from the truth
    assert multiclass.multilabel_hamming_loss(y, scores, ["a", "b"]) == pytest.approx(2 / 6)
    assert multiclass.multilabel_subset_accuracy(y, scores, ["a", "b"]) == pytest.approx(1 / 3)
    # label a: AUC 1 (0.9, 0.7 above 0.2); label b: positives 0.4, 0.8 vs negative 0.6 -> 1/2
    assert multiclass.multilabel_roc_auc(y, scores, ["a", "b"], "macro") == pytest.approx(0.75)
    # a label with no positive is left out of the macro AUC (scikit-learn raises)
    assert multiclass.multilabel_roc_auc(np.c_[y, [0, 0, 0]], np.c_[scores, [0.1, 0.2, 0.3]], ["a", "b", "c"]) == pytest.approx(0.75)
    assert math.isnan(multiclass.multilabel_roc_auc(np.ones((3, 1)), scores[:, :1], ["a"]))
    with pytest.raises(InvalidInput, match="average"):
        multiclass.multilabel_roc_auc(y, scores, ["a", "b"], "samples")


def test_label_set_refuses_what_is_not_a_list_of_labels():
    assert multiclass.multilabel_label_set([["b", "a"], [], np.array(["c"], dtype=object)]) == ["a", "b", "c"]
    with pytest.raises(InvalidInput, match="labels: row 1 must be a list of labels, got 'a'"):
        multiclass.multilabel_label_set([["a"], "a"])
    with pytest.raises(InvalidInput, match="row 0 has label 1.5"):
        multiclass.multilabel_label_set([[1.5]])
    with pytest.raises(InvalidInput, match="mixes label types"):
        multiclass.multilabel_label_set([["a"], [1]])
    with pytest.raises(InvalidInput, match="no row has a label"):
        multiclass.multilabel_label_set([[], []])


def test_multilabel_model_versions_get_gate_decisions(service, tmp_path):
    frame, features, indicator = topics_frame()
    service.register_dataset("topics", frame, task_type="multilabel_classification", label_policy="synthetic",
                             slice_columns=["source"])
    assert service.load_dataset(service.dataset("topics@1"))["labels"].map(list).tolist() == frame["labels"].tolist()
    service.register_suite(dict(MULTILABEL_SUITE, slices=["source"]))
    paths = topic_models(tmp_path, features, indicator)
    service.register_model("tagger", paths["ovr"], eval_plan=[("topics", "topics")])
    first = evaluate(service, "tagger@1")
    assert first.decision == "pass"

    run = service.runs("tagger@1")[0]
    model = skops.io.load(paths["ovr"], trusted=skops.io.get_untrusted_types(file=paths["ovr"]))
    scores = model.predict_proba(features)
    predictions = service.store.get_table("predictions", run.predictions_hash)
    assert [c for c in predictions.columns if c.startswith("proba_")] == [f"proba_{label}" for label in LABELS]
    np.testing.assert_allclose(predictions[[f"proba_{label}" for label in LABELS]].to_numpy(), scores, rtol=0, atol=1e-15)
    reference = _sklearn_reference(indicator, scores)
    measured = run.results["metrics"]
    for name, metric in (("f1_micro", "multilabel_f1_micro"), ("f1_macro", "multilabel_f1_macro"), ("hamming", "multilabel_hamming_loss"),
                         ("subset_accuracy", "multilabel_subset_accuracy"), ("auc", "multilabel_roc_auc_macro")):
        assert measured[name] == pytest.approx(reference[metric], abs=1e-12), name
    news = frame["source"].to_numpy() == "news"
    sliced = {s["slice"]: s["value"] for s in run.results["slices"] if s["metric"] == "f1_micro"}
    assert sliced["source=news"] == pytest.approx(
        sk.f1_score(indicator[news], (scores[news] >= 0.5).astype(int), average="micro"), abs=1e-12)

    # the weak model against the promoted one: paired bootstrap deltas, and the non-inferiority rule fails it
    releases.promote(service, "tagger@1", promoted_by="tester")
    service.register_model("tagger", paths["weak"])
    second = evaluate(service, "tagger@2")
    candidate = service.runs("tagger@2")[0]
    assert candidate.comparison["baseline_state"] == "ok" and candidate.comparison["baseline_run_id"] == run.run_id
    auc = candidate.comparison["metrics"]["auc"]
    weak = skops.io.load(paths["weak"], trusted=skops.io.get_untrusted_types(file=paths["weak"]))
    weak_scores = np.column_stack([p[:, 1] for p in weak.predict_proba(features)])
    assert auc["delta"] == pytest.approx(sk.roc_auc_score(indicator, weak_scores) - reference["multilabel_roc_auc_macro"], abs=1e-12)
    assert auc["ci_low"] <= auc["delta"] <= auc["ci_high"] and auc["ci_high"] < -0.02
    assert second.decision == "fail"
    failed = [r for r in second.reasons[0]["reasons"] if r["outcome"] == "fail"]
    assert {r["metric"] for r in failed} >= {"auc"}


def test_predictions_file_with_one_score_column_per_label(service, tmp_path):
    frame, features, indicator = topics_frame(n=120, seed=3)
    service.register_dataset("topics", frame, task_type="multilabel_classification", label_policy="synthetic")
    service.register_suite(MULTILABEL_SUITE)
    rng = np.random.default_rng(5)
    scores = np.clip(indicator * 0.6 + rng.random(indicator.shape) * 0.5, 0, 1)
    table = pd.DataFrame({"example_id": frame["example_id"], **{f"proba_{label}": scores[:, j] for j, label in enumerate(LABELS)}})
    shuffled = table.sample(frac=1.0, random_state=0)  # a file in its own row order is joined on the ids
    shuffled.to_parquet(tmp_path / "scores.parquet")
    service.register_model("external", tmp_path / "scores.parquet", kind="predictions", eval_plan=[("topics", "topics")])
    decision = evaluate(service, "external@1")
    run = service.runs("external@1")[0]
    assert run.results["metrics"]["f1_micro"] == pytest.approx(
        sk.f1_score(indicator, (scores >= 0.5).astype(int), average="micro"), abs=1e-12)
    assert run.results["metrics"]["subset_accuracy"] == pytest.approx(sk.accuracy_score(indicator, (scores >= 0.5).astype(int)), abs=1e-12)
    assert decision.decision in ("pass", "fail")

    # a file without a column for one of the dataset's labels is refused at registration, naming the label
    table.drop(columns=["proba_tech"]).to_parquet(tmp_path / "partial.parquet")
    with pytest.raises(InvalidInput, match="no proba_<label> column for label 'tech'"):
        service.register_model("partial", tmp_path / "partial.parquet", kind="predictions", eval_plan=[("topics", "topics")])
    assert [m.name for m in service.models()] == ["external"]  # nothing of the refused model was written


def test_a_model_with_the_wrong_number_of_outputs_is_refused_naming_the_model_file(service, tmp_path):
    frame, features, indicator = topics_frame(n=120)
    service.register_dataset("topics", frame, task_type="multilabel_classification", label_policy="synthetic")
    service.register_suite(MULTILABEL_SUITE)
    paths = topic_models(tmp_path, features[:, :10], indicator[:, :3])  # three labels where the dataset has four
    service.register_model("short", paths["ovr"], eval_plan=[("topics", "topics")])
    run = service.claim_runs("short@1", "local", requested=True)[0]
    with pytest.raises(InvalidInput, match=r"model_file: the model gives 3 score column\(s\) but the dataset has 4 labels"):
        predicting.produce_predictions(service, run)


@pytest.mark.parametrize(("labels", "message"), [
    (["a|b", "b"], "labels: row 0 must be a list of labels, got 'a|b'"),
    ([["a"], [0.5]], "labels: row 1 has label 0.5"),
])
def test_a_dataset_whose_labels_are_not_lists_is_refused_at_registration(service, labels, message):
    frame = pd.DataFrame({"example_id": [1, 2], "x": [0.1, 0.2], "labels": labels})
    before = service.store.count()
    with pytest.raises(InvalidInput, match=message):
        service.register_dataset("bad", frame, task_type="multilabel_classification", label_policy="synthetic")
    assert service.store.count() == before and service.datasets() == []
