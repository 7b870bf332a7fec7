"""The eval runner's steps without Dagster: multi-class evals, slice guardrails, regression suites,
stale baselines."""

import json

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from eval_platform.api.serializers import results_json
from eval_platform.cli.main import main
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform


def evaluate(service: EvalPlatform, model_key: str, dagster_run_id: str = "local"):
    runs = service.claim_runs(model_key, dagster_run_id, requested=True)
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


def test_multiclass_eval(service, tmp_path):
    from sklearn import metrics as sk

    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in features.columns]
    names = np.array(["setosa", "versicolor", "virginica"])
    frame = features.assign(example_id=np.arange(len(features)), label=names[target])
    service.register_dataset("iris", frame, task_type="multiclass_classification", label_policy="human_reviewed")
    service.register_suite({"suite_id": "iris", "purpose": "release_blocking", "task_type": "multiclass_classification",
                            "metrics": [{"name": "f1", "metric": "multiclass_f1_macro@1"},
                                        {"name": "auc", "metric": "multiclass_roc_auc_ovr@1"},
                                        {"name": "virginica_recall", "metric": "multiclass_class_recall@1",
                                         "params": {"class_label": "virginica"}}],
                            "gate": {"require_baseline": False, "rules": [{"metric": "f1", "min": 0.9}]}})
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(features.to_numpy(), names[target])
    path = tmp_path / "iris.skops"
    skops.io.dump(model, path)
    service.register_model("iris-tree", path, eval_plan=[("iris", "iris")], trusted_types=["sklearn.tree._tree.Tree"])
    decision = evaluate(service, "iris-tree@1")
    run = service.runs("iris-tree@1")[0]
    predicted = model.predict(features.to_numpy())
    assert run.results["metrics"]["f1"] == pytest.approx(sk.f1_score(names[target], predicted, average="macro"), abs=1e-12)
    assert run.results["metrics"]["virginica_recall"] == pytest.approx(
        sk.recall_score(names[target], predicted, labels=["virginica"], average="macro"), abs=1e-12)
    assert decision.decision == "pass"


def _binary_models(tmp_path, breast_cancer):
    x_train, y_train, _ = breast_cancer
    paths = {}
    for name, model in {"good": LogisticRegression(max_iter=5000, C=1.0),
                        "weak": DecisionTreeClassifier(max_depth=1, random_state=0)}.items():
        paths[name] = tmp_path / f"{name}.skops"
        skops.io.dump(model.fit(x_train.to_numpy(), y_train.to_numpy()), paths[name])
    return paths


def test_slice_guardrail_and_regression_suite(service, tmp_path, breast_cancer):
    _, _, frame = breast_cancer
    service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                             slice_columns=["tumour_size"])
    service.register_suite({
        "suite_id": "guarded", "purpose": "release_blocking", "task_type": "binary_classification",
        "metrics": [{"name": "fpr", "metric": "false_positive_rate@1"}, {"name": "accuracy", "metric": "accuracy@1"}],
        "slices": ["tumour_size"], "min_slice_size": 10,
        "gate": {"require_baseline": False, "approvers": ["rita"], "rules": [
            {"metric": "fpr", "slice": "tumour_size", "min_delta": -0.01, "min_examples": 10},
            {"metric": "accuracy", "max_regressions": 0}, {"metric": "accuracy", "min": 0.8}]}})
    models = _binary_models(tmp_path, breast_cancer)
    service.register_model("detector", models["good"], eval_plan=[("bc", "guarded")])
    assert evaluate(service, "detector@1").decision == "pass"  # first version: baseline rules not applicable
    releases.promote(service, "detector@1", promoted_by="tester")
    service.register_model("detector", models["weak"])
    decision = evaluate(service, "detector@2")
    assert decision.decision == "fail"
    reasons = decision.reasons[0]["reasons"]
    slices = sorted(r["slice"] for r in reasons if r["metric"] == "fpr")
    assert slices == ["tumour_size=large", "tumour_size=medium", "tumour_size=small"]
    candidate, baseline = service.runs("detector@2")[0], service.runs("detector@1")[0]
    good = service.store.get_table("predictions", baseline.predictions_hash)
    weak = service.store.get_table("predictions", candidate.predictions_hash)
    truth = frame.set_index("example_id")["label"]
    right = lambda p: ((p.set_index("example_id")["score"] >= 0.5).astype(int) == truth)  # noqa: E731
    expected = sorted(right(good).index[right(good) & ~right(weak)])
    regression = [r for r in reasons if r["kind"] == "max_regressions"][0]
    assert regression["outcome"] == "fail" and sorted(regression["regressions"]) == expected and expected
    mcnemar = candidate.comparison["metrics"]["accuracy"]["mcnemar"]
    assert mcnemar["only_baseline_correct"] == len(expected)
    assert mcnemar["only_candidate_correct"] == int((right(weak) & ~right(good)).sum())


def test_stale_baseline_blocks_or_is_reevaluated(service, tmp_path, breast_cancer):
    _, _, frame = breast_cancer
    suite = {"suite_id": "s", "purpose": "release_blocking", "task_type": "binary_classification",
             "metrics": [{"metric": "roc_auc@1"}],
             "gate": {"require_baseline": True, "rules": [{"metric": "roc_auc", "min": 0.5},
                                                          {"metric": "roc_auc", "non_inferiority": 0.05}]}}
    service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed")
    service.register_suite(dict(suite, gate=dict(suite["gate"], require_baseline=False)))
    models = _binary_models(tmp_path, breast_cancer)
    service.register_model("detector", models["good"], eval_plan=[("bc", "s")])
    evaluate(service, "detector@1")
    releases.promote(service, "detector@1", promoted_by="tester")
    # the suite changes (new version): the promoted baseline's run is now stale
    service.register_suite(suite)
    service.register_model("detector", models["weak"])
    decision = evaluate(service, "detector@2")
    assert decision.decision == "no_decision" and "baseline is stale" in str(decision.reasons)
    assert runner.stale_baseline_count(service) == 1

    service.register_suite(dict(suite, gate=dict(suite["gate"], stale_baseline="reevaluate")))
    run = service.request_eval("detector@2", "bc", "s")
    decision = evaluate(service, "detector@2", dagster_run_id="second")
    compared = service.run(run.run_id).comparison
    assert compared["baseline_state"] == "ok" and compared["baseline_reevaluated"]
    baseline_run = service.run(compared["baseline_run_id"])
    assert baseline_run.model_key == "detector@1" and baseline_run.suite_key == "s@3"
    assert baseline_run.trigger == "baseline_reevaluation" and baseline_run.status == "succeeded"
    assert runner.stale_baseline_count(service) == 2


def test_generation_eval_from_a_predictions_file(service, tmp_path):
    import sacrebleu

    questions = pd.DataFrame({"example_id": [1, 2, 3, 4],
                              "prompt": ["Capital of France?", "Symbol of gold?", "2 + 2?", "Largest planet?"],
                              "reference": ["Paris", "Au", "4", "Jupiter"],
                              "topic": ["geo", "chem", "math", "geo"]})
    service.register_dataset("qa", questions, task_type="generation", label_policy="human_reviewed", slice_columns=["topic"])
    service.register_suite({"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation",
                            "metrics": ["exact_match@1", "chrf@1"], "slices": ["topic"], "min_slice_size": 1,
                            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.7}]}})
    answers = pd.DataFrame({"example_id": [4, 3, 2, 1], "prediction": ["Jupiter", "four", "Au", "Paris, France"]})
    path = tmp_path / "answers.parquet"
    answers.to_parquet(path)
    service.register_model("qa-bot", path, kind="predictions", eval_plan=[("qa", "qa")])
    decision = evaluate(service, "qa-bot@1")
    run = service.runs("qa-bot@1")[0]
    assert run.results["metrics"]["exact_match"] == 0.5  # "Au" and "Jupiter"; "four" != "4", "Paris, France" != "Paris"
    ordered = answers.set_index("example_id").loc[[1, 2, 3, 4], "prediction"].tolist()
    expected_chrf = sacrebleu.corpus_chrf(ordered, [questions["reference"].tolist()]).score / 100
    assert run.results["metrics"]["chrf"] == pytest.approx(expected_chrf, abs=1e-12)
    geo = [s for s in run.results["slices"] if s["metric"] == "exact_match" and s["slice"] == "topic=geo"][0]
    assert geo["value"] == 0.5 and geo["n_examples"] == 2
    assert decision.decision == "fail"


def test_a_predictions_file_missing_examples_is_refused_at_registration(service, tmp_path):
    """Refused before anything is written (it used to be accepted and fail at evaluation); more cases in
    tests/platform/test_validation_limits.py."""
    questions = pd.DataFrame({"example_id": [1, 2], "prompt": ["a", "b"], "reference": ["x", "y"]})
    service.register_dataset("qa", questions, task_type="generation", label_policy="synthetic")
    service.register_suite({"suite_id": "qa", "purpose": "exploratory", "task_type": "generation", "metrics": ["exact_match@1"]})
    path = tmp_path / "answers.csv"
    pd.DataFrame({"example_id": [1], "prediction": ["x"]}).to_csv(path, index=False)
    from eval_platform.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"no row for 1 example\(s\) for dataset qa@1 .*example_id=2 \(dataset row 2\)"):
        service.register_model("qa-bot", path, kind="predictions", eval_plan=[("qa", "qa")])
    assert service.models() == [] and service.eval_plan("qa-bot") == [] and service.runs() == []


def test_ranking_eval_matches_trec_eval_and_compares_by_query(service, tmp_path):
    import pytrec_eval

    rng = np.random.default_rng(5)
    queries = [f"q{i}" for i in range(40)]
    judged = pd.DataFrame([(q, f"d{j}", int(rng.integers(0, 3))) for q in queries for j in rng.choice(30, 8, replace=False)],
                          columns=["query_id", "doc_id", "relevance"]).drop_duplicates(["query_id", "doc_id"])
    judged["query_type"] = judged["query_id"].map(lambda q: "head" if int(q[1:]) < 20 else "tail")
    service.register_dataset("search", judged, task_type="ranking", label_policy="human_reviewed", slice_columns=["query_type"])
    service.register_suite({"suite_id": "search", "purpose": "release_blocking", "task_type": "ranking",
                            "metrics": [{"name": "ndcg@10", "metric": "ndcg@1", "params": {"k": 10}}, "map@1", "mrr@1",
                                        {"name": "coverage", "metric": "catalog_coverage@1", "params": {"k": 5}}],
                            "slices": ["query_type"], "min_slice_size": 10,
                            "comparison": {"bootstrap_resamples": 200, "seed": 1},
                            "gate": {"require_baseline": False, "rules": [{"metric": "ndcg@10", "min": 0.1},
                                                                          {"metric": "ndcg@10", "non_inferiority": 0.5}]}})

    def run_file(name, noise):
        rows = [(q, f"d{j}", float(rng.normal()) + noise * 0) for q in queries for j in range(30)]
        frame = pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])
        relevance = frame.merge(judged, on=["query_id", "doc_id"], how="left")["relevance"].fillna(0).to_numpy()
        frame["score"] = relevance * (1 - noise) + rng.normal(size=len(frame)) * noise  # noisier = worse ranker
        path = tmp_path / f"{name}.parquet"
        frame.to_parquet(path)
        return path, frame

    good_path, good = run_file("good", 0.3)
    weak_path, _ = run_file("weak", 0.9)
    service.register_model("ranker", good_path, kind="predictions", eval_plan=[("search", "search")])
    assert evaluate(service, "ranker@1").decision == "pass"
    run = service.runs("ranker@1")[0]
    qrels = {q: {d: int(r) for d, r in zip(g.doc_id, g.relevance, strict=True)} for q, g in judged.groupby("query_id")}
    trec_run = {q: {d: float(s) for d, s in zip(g.doc_id, g.score, strict=True)} for q, g in good.groupby("query_id")}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "map", "recip_rank"}).evaluate(trec_run)
    assert run.results["metrics"]["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in reference.values()]), abs=1e-9)
    assert run.results["metrics"]["map"] == pytest.approx(np.mean([v["map"] for v in reference.values()]), abs=1e-9)
    assert run.results["metrics"]["mrr"] == pytest.approx(np.mean([v["recip_rank"] for v in reference.values()]), abs=1e-9)
    head = [s for s in run.results["slices"] if s["metric"] == "map" and s["slice"] == "query_type=head"][0]
    assert head["value"] == pytest.approx(np.mean([reference[q]["map"] for q in queries[:20]]), abs=1e-9)

    releases.promote(service, "ranker@1", promoted_by="tester")
    service.register_model("ranker", weak_path, kind="predictions")
    evaluate(service, "ranker@2")
    compared = service.runs("ranker@2")[0].comparison["metrics"]
    assert compared["ndcg@10"]["unit"] == "query" and compared["ndcg@10"]["n_units"] == 40
    assert compared["ndcg@10"]["ci_high"] < 0  # the noisier ranker is clearly worse
    assert compared["coverage"]["unit"] == "query" and np.isfinite(compared["coverage"]["ci_low"])


def test_an_infinite_metric_reads_apart_from_an_undefined_one(service, tmp_path, breast_cancer, capsys):
    """threshold_at_precision is +inf when no threshold reaches the precision: the registry's JSON has no
    infinity, so the run stores None plus ``infinite_metrics``, and every reader prints "inf", not null."""
    _, _, frame = breast_cancer
    service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed")
    service.register_suite({"suite_id": "ops", "purpose": "exploratory", "task_type": "binary_classification",
                            "metrics": [{"name": "t_at_p1", "metric": "threshold_at_precision@1", "params": {"min_precision": 1.0}},
                                        {"metric": "roc_auc@1"}]})
    service.register_model("stump", _binary_models(tmp_path, breast_cancer)["weak"], eval_plan=[("bc", "ops")])
    evaluate(service, "stump@1")
    run = service.runs("stump@1")[0]
    scores = service.store.get_table("predictions", run.predictions_hash).set_index("example_id")["score"]
    labels = frame.set_index("example_id")["label"].loc[scores.index]
    # the independent premise: at every distinct score of the stump, some negative scores at least as high
    assert all(((scores >= s) & (labels == 0)).any() for s in scores.unique())
    assert run.results["metrics"]["t_at_p1"] is None and run.results["infinite_metrics"] == {"t_at_p1": "inf"}
    assert main(["--home", str(service.config.home), "runs", "show", run.run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["results"]
    assert shown["metrics"]["t_at_p1"] == "inf" and isinstance(shown["metrics"]["roc_auc"], float)
    assert "infinite_metrics" not in shown
    assert results_json(run.results)["metrics"]["t_at_p1"] == "inf"  # the API's run document
