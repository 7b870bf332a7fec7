"""Drift rules of a gate: a dataset version's drift from the previous version, a candidate's prediction drift."""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from eval_platform.core.errors import InvalidInput
from eval_platform.core.states import RuleOutcome, Verdict
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from eval_platform.gates.rules import DriftObservation, DriftRule, decide, overall, parse_rules
from eval_platform.metrics.catalog import get_metric
from eval_platform.suites.definition import parse_suite

DEFS = {"roc_auc": get_metric("roc_auc@1")}


def rules(*raw):
    return parse_rules(list(raw), DEFS)


def decide_with(rule_list, drift, baseline_state="ok", require_baseline=False):
    return decide(rule_list, DEFS, overall({"roc_auc": 0.99}, {"roc_auc": 1000}), baseline_state, require_baseline, (), drift)


ALL = frozenset({"psi", "js", "ks_statistic"})


def test_drift_rules_parse_and_describe_themselves():
    dataset, prediction = rules({"drift": "psi", "max": 0.25}, {"prediction_drift": "ks_statistic", "max": 0.1})
    assert isinstance(dataset, DriftRule) and (dataset.kind, dataset.measure, dataset.threshold) == ("drift", "psi", 0.25)
    assert dataset.as_json() == {"drift": "psi", "max": 0.25}
    assert prediction.as_json() == {"prediction_drift": "ks_statistic", "max": 0.1} and prediction.needs_baseline
    assert "psi <= 0.25" in dataset.describe()


@pytest.mark.parametrize(("entry", "field"), [
    ({"drift": "auc", "max": 0.2}, "gate.rules[0].drift"),
    ({"drift": "psi"}, "gate.rules[0].max"),
    ({"drift": "psi", "max": -0.1}, "gate.rules[0].max"),
    ({"drift": "psi", "max": float("nan")}, "gate.rules[0].max"),
    ({"drift": "psi", "max": True}, "gate.rules[0].max"),
    ({"drift": "psi", "max": 0.2, "slice": "x"}, "gate.rules[0]"),
    ({"drift": "psi", "prediction_drift": "psi", "max": 0.2}, "gate.rules[0]"),
])
def test_bad_drift_rules_name_the_field(entry, field):
    with pytest.raises(InvalidInput) as error:
        rules(entry)
    assert error.value.field == field


def test_dataset_drift_beyond_the_bound_is_no_decision_naming_the_column():
    rule_list = rules({"metric": "roc_auc", "min": 0.9}, {"drift": "psi", "max": 0.25})
    drifted = {"drift": DriftObservation("bc@1", {"psi": (0.61, "mean_radius (tumour_size=small)")}, ALL)}
    decision = decide_with(rule_list, drifted)
    assert decision.decision == Verdict.NO_DECISION
    [reason] = [r for r in decision.reasons if r["kind"] == "drift"]
    assert reason["observed"] == 0.61 and "mean_radius (tumour_size=small)" in reason["message"] and "bc@1" in reason["message"]
    within = {"drift": DriftObservation("bc@1", {"psi": (0.2, "mean_radius")}, ALL)}
    assert decide_with(rule_list, within).decision == Verdict.PASS


def test_dataset_drift_first_version_noise_and_unmeasured():
    rule_list = rules({"metric": "roc_auc", "min": 0.9}, {"drift": "ks_statistic", "max": 0.1})
    first = decide_with(rule_list, {"drift": DriftObservation(None)})
    assert first.decision == Verdict.PASS and "first version" in first.reasons[-1]["message"]
    quiet = decide_with(rule_list, {"drift": DriftObservation("bc@1", {}, ALL)})
    assert quiet.decision == Verdict.PASS and "sampling noise" in quiet.reasons[-1]["message"]
    # a dataset with no numeric column has no KS statistic: the rule cannot be decided (fails closed)
    categorical_only = decide_with(rule_list, {"drift": DriftObservation("bc@1", {}, frozenset({"psi", "js"}))})
    assert categorical_only.decision == Verdict.NO_DECISION
    assert decide_with(rule_list, {}).decision == Verdict.NO_DECISION  # not measured at all


def test_prediction_drift_fails_beyond_the_bound_and_needs_a_baseline():
    rule_list = rules({"metric": "roc_auc", "min": 0.9}, {"prediction_drift": "psi", "max": 0.1})
    moved = {"prediction_drift": DriftObservation("run-1", {"psi": (0.4, "predictions (score)")}, ALL)}
    assert decide_with(rule_list, moved).decision == Verdict.FAIL
    assert decide_with(rule_list, {"prediction_drift": DriftObservation("run-1", {"psi": (0.05, "x")}, ALL)}).decision == Verdict.PASS
    first = decide_with(rule_list, {}, baseline_state="none")
    assert first.decision == Verdict.PASS and first.reasons[-1]["outcome"] == RuleOutcome.NOT_APPLICABLE
    assert decide_with(rule_list, {}, baseline_state="missing").decision == Verdict.NO_DECISION


SUITE = {"suite_id": "drift-guarded", "purpose": "release_blocking", "task_type": "binary_classification",
         "metrics": [{"metric": "roc_auc@1"}], "slices": ["tumour_size"], "comparison": {"bootstrap_resamples": 100},
         "gate": {"require_baseline": False, "rules": [{"metric": "roc_auc", "min": 0.5}]}}


def test_a_suite_without_drift_rules_keeps_its_definition():
    plain = parse_suite(SUITE)
    guarded = parse_suite({**SUITE, "gate": {**SUITE["gate"], "rules": [*SUITE["gate"]["rules"], {"drift": "psi", "max": 0.25}]}})
    assert plain.as_json()["gate"]["rules"] == [{"metric": "roc_auc", "min": 0.5}]
    assert guarded.as_json()["gate"]["rules"][-1] == {"drift": "psi", "max": 0.25}


def _evaluate(service, model_key):
    runs = service.claim_runs(model_key, "local", requested=True)
    for run in runs:
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
        runner.compare_with_baseline(service, run)
    return runner.finish_runs(service, model_key, runs)


def test_gate_on_a_drifted_dataset_version_and_on_prediction_drift(platform, model_files, breast_cancer):
    _, _, frame = breast_cancer
    register = lambda rows: platform.register_dataset("bc", rows, task_type="binary_classification",  # noqa: E731
                                                      label_policy="human_reviewed", slice_columns=["tumour_size"])
    register(frame)
    platform.register_suite({**SUITE, "gate": {**SUITE["gate"], "rules": [
        {"metric": "roc_auc", "min": 0.5}, {"drift": "psi", "max": 0.25}, {"prediction_drift": "psi", "max": 0.1}]}})
    platform.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "drift-guarded")])
    first = _evaluate(platform, "detector@1")
    assert first.decision == Verdict.PASS  # first dataset version, first model version: both drift rules satisfied
    assert "prediction_drift" not in platform.runs("detector@1")[0].comparison  # no baseline: nothing computed

    # the candidate (a one-split stump) scores very differently from the promoted baseline on the same examples
    releases.promote(platform, "detector@1", promoted_by="tester")
    platform.register_model("detector", model_files["decision_stump"])
    decision = _evaluate(platform, "detector@2")
    [reason] = [r for r in decision.reasons[0]["reasons"] if r.get("kind") == "prediction_drift"]
    assert reason["outcome"] == Verdict.FAIL and decision.decision == Verdict.FAIL
    candidate, baseline = platform.runs("detector@2")[0], platform.runs("detector@1")[0]
    stored = candidate.comparison["prediction_drift"]
    cand_scores = platform.store.get_table("predictions", candidate.predictions_hash).set_index("example_id")["score"]
    base_scores = platform.store.get_table("predictions", baseline.predictions_hash).set_index("example_id")["score"]
    reference = ks_2samp(base_scores.to_numpy(), cand_scores.loc[base_scores.index].to_numpy())
    assert stored["ks_statistic"] == pytest.approx(reference.statistic) and stored["psi"] > 0.1 == reason["threshold"]
    assert stored["n_examples"] == len(frame) and reason["observed"] == pytest.approx(stored["psi"])

    # a second dataset version with mean_radius 30 % larger: the gate of a run on it has no decision, naming the column
    register(frame.assign(mean_radius=frame["mean_radius"] * 1.3))
    platform.request_eval("detector@1", "bc@2", "drift-guarded")
    _evaluate(platform, "detector@1")
    [run] = [r for r in platform.runs("detector@1") if r.dataset_key == "bc@2"]
    drifted = runner.decide_run(platform, run)
    [reason] = [r for r in drifted.reasons if r.get("kind") == "drift"]
    assert reason["outcome"] == Verdict.NO_DECISION and drifted.decision == Verdict.NO_DECISION
    assert reason["message"].startswith("psi ") and "mean_radius" in reason["message"] and "against bc@1" in reason["message"]
    assert np.isfinite(reason["observed"]) and reason["observed"] > 0.25
