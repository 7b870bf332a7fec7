"""``evalp score multiclass|multilabel`` and ``--param metric.key=value``, against scikit-learn, sacrebleu and
rouge-score computed in the test; bad input is refused naming the field (and the row)."""

import json

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn import metrics as sk

from eval_platform.cli.main import main


def evalp(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def score_json(capsys, *args) -> dict:
    code, out, err = evalp(capsys, "score", *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def multiclass_file(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["cat", "dog", "bird"]
    labels = rng.choice(classes, size=200)
    raw = rng.random((200, 3)) + 0.8 * (labels[:, None] == np.array(classes))
    proba = raw / raw.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"truth": labels, **{f"proba_{c}": proba[:, j] for j, c in enumerate(classes)}})
    path = tmp_path / "mc.csv"
    frame.to_csv(path, index=False)
    return path, labels, proba, np.array(classes)


def test_score_multiclass_equals_sklearn(capsys, multiclass_file):
    path, labels, proba, classes = multiclass_file
    results = score_json(capsys, "multiclass", "--data", str(path), "--label", "truth", "--metric", "accuracy", "--metric", "f1_macro",
                         "--metric", "precision_weighted", "--metric", "roc_auc_ovr", "--metric", "log_loss", "--metric", "class_recall@dog")
    predicted = classes[proba.argmax(axis=1)]
    assert results["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted), abs=1e-12)
    assert results["f1_macro"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"), abs=1e-12)
    assert results["precision_weighted"] == pytest.approx(sk.precision_score(labels, predicted, average="weighted"), abs=1e-12)
    order = np.argsort(classes)  # scikit-learn wants the score columns in sorted class order
    assert results["roc_auc_ovr"] == pytest.approx(sk.roc_auc_score(labels, proba[:, order], multi_class="ovr"), abs=1e-12)
    # scikit-learn's log loss, as the file holds the probabilities (CSV keeps 17 significant digits)
    assert results["log_loss"] == pytest.approx(sk.log_loss(labels, proba[:, order], labels=list(classes[order])), abs=1e-12)
    assert results["class_recall@dog"] == pytest.approx(sk.recall_score(labels, predicted, labels=["dog"], average="macro"), abs=1e-12)
    code, out, _ = evalp(capsys, "score", "multiclass", "--data", str(path), "--label", "truth", "--metric", "accuracy")
    assert code == 0 and out.split()[:2] == ["accuracy", "all"]


@pytest.fixture
def multilabel_data():
    rng = np.random.default_rng(1)
    names = ["art", "politics", "sports", "tech"]
    y = (rng.random((150, 4)) < [0.2, 0.4, 0.5, 0.3]).astype(int)
    scores = np.clip(0.4 * y + 0.7 * rng.random((150, 4)), 0, 1)
    lists = [[n for n, v in zip(names, row, strict=True) if v] for row in y]
    return y, scores, names, lists


def test_score_multilabel_equals_sklearn_from_jsonl_and_csv(capsys, tmp_path, multilabel_data):
    y, scores, names, lists = multilabel_data
    columns = {f"proba_{n}": scores[:, j] for j, n in enumerate(names)}
    jsonl = tmp_path / "ml.jsonl"
    pd.DataFrame({"id": range(150), "topics": lists, **columns}).to_json(jsonl, orient="records", lines=True)
    metrics = ["f1_micro", "f1_macro", "hamming_loss", "subset_accuracy", "roc_auc_macro", "average_precision_micro", "f1_micro@0.3",
               "label_f1@tech"]
    args = ["--labels", "topics", *[x for m in metrics for x in ("--metric", m)]]
    results = score_json(capsys, "multilabel", "--data", str(jsonl), *args)
    at = lambda t: (scores >= t).astype(int)  # noqa: E731
    assert results["f1_micro"] == pytest.approx(sk.f1_score(y, at(0.5), average="micro"), abs=1e-12)
    assert results["f1_macro"] == pytest.approx(sk.f1_score(y, at(0.5), average="macro"), abs=1e-12)
    assert results["hamming_loss"] == pytest.approx(sk.hamming_loss(y, at(0.5)), abs=1e-12)
    assert results["subset_accuracy"] == pytest.approx(sk.accuracy_score(y, at(0.5)), abs=1e-12)
    assert results["roc_auc_macro"] == pytest.approx(sk.roc_auc_score(y, scores, average="macro"), abs=1e-12)
    assert results["average_precision_micro"] == pytest.approx(sk.average_precision_score(y, scores, average="micro"), abs=1e-12)
    assert results["f1_micro@0.3"] == pytest.approx(sk.f1_score(y, at(0.3), average="micro"), abs=1e-12)
    assert results["label_f1@tech"] == pytest.approx(sk.f1_score(y[:, 3], at(0.5)[:, 3]), abs=1e-12)

    # the same labels as "a|b" text in a CSV (an empty cell: no label), and the threshold as --param
    csv = tmp_path / "ml.csv"
    pd.DataFrame({"topics": ["|".join(row) for row in lists], **columns}).to_csv(csv, index=False)
    from_csv = score_json(capsys, "multilabel", "--data", str(csv), "--labels", "topics", "--label-separator", "|",
                          "--metric", "f1_micro", "--param", "f1_micro.threshold=0.3", "--metric", "label_recall@art")
    assert from_csv["f1_micro"] == pytest.approx(sk.f1_score(y, at(0.3), average="micro"), abs=1e-12)
    assert from_csv["label_recall@art"] == pytest.approx(sk.recall_score(y[:, 0], at(0.5)[:, 0]), abs=1e-12)
    # per-label thresholds as a JSON object
    per_label = score_json(capsys, "multilabel", "--data", str(jsonl), "--labels", "topics", "--metric", "f1_macro",
                           "--param", 'f1_macro.label_thresholds={"art": 0.2, "tech": 0.8}')
    thresholds = np.array([0.2, 0.5, 0.5, 0.8])
    assert per_label["f1_macro"] == pytest.approx(sk.f1_score(y, (scores >= thresholds).astype(int), average="macro"), abs=1e-12)


def test_param_reaches_generation_and_classification_metrics(capsys, tmp_path):
    frame = pd.DataFrame({"prediction": ["The cats were running home", "Das ist ein Haus!", "a quick brown fox jumps"],
                          "reference": ["the cat ran home quickly", "das ist ein haus", "the quick brown fox jumped"]})
    path = tmp_path / "gen.jsonl"
    frame.to_json(path, orient="records", lines=True)
    results = score_json(capsys, "generation", "--data", str(path), "--prediction", "prediction", "--reference", "reference",
                         "--metric", "bleu", "--param", "bleu.tokenize=intl", "--param", "bleu.lowercase=true",
                         "--metric", "rougeL", "--param", "rougeL.use_stemmer=yes", "--metric", "exact_match",
                         "--param", "exact_match.normalization=none")
    expected_bleu = sacrebleu.corpus_bleu(frame["prediction"].tolist(), [frame["reference"].tolist()], tokenize="intl", lowercase=True)
    assert results["bleu"] == pytest.approx(expected_bleu.score / 100, abs=1e-12)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected_rouge = np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(frame["prediction"], frame["reference"], strict=True)])
    assert results["rougeL"] == pytest.approx(expected_rouge, abs=1e-12)
    assert results["exact_match"] == 0.0  # no normalisation: case and punctuation count

    csv = tmp_path / "clf.csv"
    pd.DataFrame({"y": [0, 1, 1, 0, 1], "s": [0.1, 0.35, 0.8, 0.4, 0.2]}).to_csv(csv, index=False)
    clf = score_json(capsys, "classification", "--data", str(csv), "--label", "y", "--score", "s", "--metric", "recall",
                     "--param", "recall.threshold=0.3")
    assert clf["recall"] == pytest.approx(sk.recall_score([0, 1, 1, 0, 1], [0, 1, 1, 1, 0]), abs=1e-12)


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "f1_micro", "--param", "bleu.tokenize=intl"], "--param: 'bleu.tokenize=intl' names metric 'bleu', which is not one of"),
    (["--metric", "f1_micro", "--param", "f1_micro.tokenizer=intl"], "--param: f1_micro.tokenizer: metric 'f1_micro' has no parameter 'tokenizer'"),
    (["--metric", "f1_micro", "--param", "f1_micro.threshold=high"], "--param: f1_micro.threshold: 'high' is not a number"),
    (["--metric", "f1_micro", "--param", "f1_micro.threshold=nan"], "params.threshold: must be a number, got nan"),
    (["--metric", "f1_micro", "--param", "threshold=0.3"], "--param: 'threshold=0.3' must be written metric.key=value"),
    (["--metric", "f1_micro@0.3", "--param", "f1_micro@0.3.threshold=0.4"], "already set by the metric's @ argument"),
    (["--metric", "f1_micro", "--param", "f1_micro.threshold=0.3", "--param", "f1_micro.threshold=0.4"], "given twice"),
    (["--metric", "f1_macro", "--param", "f1_macro.label_thresholds=[1]"], "is not a JSON object"),
    (["--metric", "f1_micro", "--param", "f1_micro.label_thresholds={\"music\": 0.2}"], "label_thresholds: 'music' is not one of the classes"),
    (["--metric", "jaccard"], "--metric: unknown multi-label metric 'jaccard'; known:"),
    (["--metric", "label_f1@music"], "'music' is not one of the classes"),
])
def test_multilabel_refuses_bad_metrics_and_params_naming_them(capsys, tmp_path, multilabel_data, args, message):
    y, scores, names, lists = multilabel_data
    path = tmp_path / "ml.jsonl"
    pd.DataFrame({"topics": lists, **{f"proba_{n}": scores[:, j] for j, n in enumerate(names)}}).to_json(path, orient="records", lines=True)
    code, out, err = evalp(capsys, "score", "multilabel", "--data", str(path), "--labels", "topics", *args)
    assert code != 0 and out == "" and message in err, err


def _write(tmp_path, name: str, frame: pd.DataFrame):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return str(path)


@pytest.mark.parametrize(("kind", "name", "frame", "extra", "message"), [
    ("multiclass", "a.csv", pd.DataFrame({"y": ["a", "b"], "proba_a": [0.6, 0.3], "proba_b": [0.4, 0.7]}), ["--label", "truth"],
     "--label: column 'truth' is not in the file"),
    ("multiclass", "a.csv", pd.DataFrame({"y": ["a", "c"], "proba_a": [0.6, 0.3], "proba_b": [0.4, 0.7]}), ["--label", "y"],
     "column 'y': row 2: label 'c' has no proba_c score column"),
    ("multiclass", "a.csv", pd.DataFrame({"y": ["a", "b"], "proba_a": [0.6, None], "proba_b": [0.4, 0.7]}), ["--label", "y"],
     "column 'proba_a': row 2: score nan is missing or not a finite number"),
    ("multiclass", "a.csv", pd.DataFrame({"y": ["a", "b"], "p_a": [0.6, 0.3]}), ["--label", "y"],
     "--proba-prefix: no column starts with 'proba_'"),
    ("multilabel", "a.jsonl", pd.DataFrame({"t": ["a|b", "b"], "proba_a": [0.6, 0.3], "proba_b": [0.4, 0.7]}), ["--labels", "t"],
     "column 't': row 1: 'a|b' is text, not a list of labels"),
    ("multilabel", "a.jsonl", pd.DataFrame({"t": [["a"], ["z"]], "proba_a": [0.6, 0.3], "proba_b": [0.4, 0.7]}), ["--labels", "t"],
     "column 't': row 2: label 'z' has no proba_z score column"),
    ("multilabel", "a.jsonl", pd.DataFrame({"t": [["a"], ["b"]], "proba_a": [0.6, "high"], "proba_b": [0.4, 0.7]}), ["--labels", "t"],
     "column 'proba_a': row 2: score 'high' is missing or not a finite number"),
    ("multilabel", "a.jsonl", pd.DataFrame({"t": ["a", 3], "proba_a": [0.6, 0.3]}), ["--labels", "t", "--label-separator", "|"],
     "column 't': row 2: 3 is not text of labels"),
])
def test_score_commands_refuse_bad_files_naming_the_field(capsys, tmp_path, kind, name, frame, extra, message):
    code, out, err = evalp(capsys, "score", kind, "--data", _write(tmp_path, name, frame), *extra, "--metric", "f1_macro")
    assert code != 0 and out == "" and message in err, err
