"""End to end through EvalPlatform: power figures in the stored gate decision, and a Holm correction that
changes a lenient slice guardrail's verdict where one slice's regression is within chance over the slices."""

import math

import pytest
import skops.io
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from statsmodels.stats.power import NormalIndPower

from eval_platform.cli.gates import format_gate
from eval_platform.cli.runs import format_run, rule_power
from eval_platform.core.records import run_to_dict
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from tests.conftest import installation_with_breast_cancer


def evaluate(service, model_key: str, dagster_run_id: str):
    runs = service.claim_runs(model_key, dagster_run_id, requested=True)
    for run in runs:
        predicting.produce_predictions(service, run)
        runner.compute_metrics(service, run)
        runner.compare_with_baseline(service, run)
    return runner.finish_runs(service, model_key, runs)


def guard_suite(suite_id: str, margin: float, correction: str) -> dict:
    return {"suite_id": suite_id, "purpose": "release_blocking", "task_type": "binary_classification",
            "metrics": [{"metric": "roc_auc@1"}], "slices": ["tumour_size"], "min_slice_size": 10,
            "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
            "gate": {"require_baseline": False, "multiple_comparisons": correction, "rules": [
                {"metric": "roc_auc", "min": 0.5},  # a first version has a rule that applies
                {"metric": "roc_auc", "non_inferiority": 0.1, "mode": "lenient"},
                {"metric": "roc_auc", "slice": "tumour_size", "non_inferiority": margin, "mode": "lenient"}]}}


def _se(entry: dict) -> float:
    return (entry["ci_high"] - entry["ci_low"]) / (2 * norm.ppf(0.975))


def test_power_figures_are_stored_and_holm_changes_a_slice_verdict(tmp_path, breast_cancer, release_suite, monkeypatch):
    # one registry backend: the statistics do not depend on it, and each evaluation here costs seconds
    service = installation_with_breast_cancer(tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}", breast_cancer,
                                              release_suite, monkeypatch)
    x_train, y_train, _ = breast_cancer
    paths = {}
    for name, model in {"good": LogisticRegression(max_iter=5000), "weak": DecisionTreeClassifier(max_depth=2, random_state=0)}.items():
        paths[name] = tmp_path / f"{name}.skops"
        skops.io.dump(model.fit(x_train.to_numpy(), y_train.to_numpy()), paths[name])
    service.register_suite(guard_suite("guard-probe", 0.0, "holm"))
    service.register_model("detector", paths["good"], eval_plan=[("bc", "guard-probe")])
    evaluate(service, "detector@1", "one")
    releases.promote(service, "detector@1", promoted_by="tester")
    service.register_model("detector", paths["weak"])
    evaluate(service, "detector@2", "two")

    # the overall non-inferiority rule carries its power figures, recomputable from the stored comparison
    probe = service.runs("detector@2")[0]
    stored = service.gate_decision("detector@2")
    ni = next(r for r in stored.reasons[0]["reasons"] if r["kind"] == "non_inferiority" and "slice" not in r)
    entry = probe.comparison["metrics"]["roc_auc"]
    se, n = _se(entry), entry["n_units"]
    sd = se * math.sqrt(n)
    figures = ni["power"]
    assert figures["n"] == n == len(breast_cancer[2]) and figures["margin"] == 0.1
    assert figures["mde"] == pytest.approx(
        NormalIndPower().solve_power(nobs1=n, alpha=0.025, power=0.8, ratio=0, alternative="larger") * sd, rel=2e-5)
    assert figures["power"] == pytest.approx(NormalIndPower().power(0.1 / sd, n, 0.025, ratio=0, alternative="larger"), abs=1e-9)
    assert figures["n_needed"] == math.ceil(NormalIndPower().solve_power(
        effect_size=0.1 / sd, alpha=0.025, power=0.8, ratio=0, alternative="larger") - 1e-6)
    assert "power: MDE" in format_gate("detector@2", stored.decision, stored.reasons)  # evalp gate show
    shown = rule_power(stored, probe.run_id)  # evalp runs show
    assert [entry["power"] for entry in shown if "slice" not in entry and "non-inferior" in entry["rule"]] == [figures]
    assert "power of the gate's rules:" in format_run({**run_to_dict(probe), "rule_power": shown})

    # choose the margin at which the worst slice's regression has one-sided p = 0.01: below 0.025 alone,
    # but 3 x 0.01 > 0.025 after Holm over the three tumour sizes
    slices = probe.comparison["slices"]["roc_auc"]
    margin = max(_se(e) * norm.ppf(0.01) - e["delta"] for e in slices.values())
    assert len(slices) == 3 and margin > 0
    worst = max(slices, key=lambda key: _se(slices[key]) * norm.ppf(0.01) - slices[key]["delta"])
    assert slices[worst]["ci_high"] < -margin  # its (same-seed) interval lies below the margin: uncorrected, it fails

    service.register_suite(guard_suite("guard-plain", margin, "none"))
    service.register_suite(guard_suite("guard-holm", margin, "holm"))
    for model_key in ("detector@1", "detector@2"):
        for suite in ("guard-plain", "guard-holm"):
            service.request_eval(model_key, "bc", suite)
        evaluate(service, model_key, f"guards-{model_key}")
    decisions = {}
    for run in service.runs("detector@2"):
        if run.suite_key.split("@")[0] in ("guard-plain", "guard-holm") and run.status == "succeeded":
            decisions[run.suite_key.split("@")[0]] = runner.decide_run(service, run)
    plain, holm = decisions["guard-plain"], decisions["guard-holm"]
    assert plain.decision == "fail"
    assert [r["outcome"] for r in plain.reasons if r.get("slice") == worst] == ["fail"]
    assert holm.decision == "pass", holm.reasons
    corrected = next(r for r in holm.reasons if r.get("slice") == worst)
    assert corrected["p_value"] == pytest.approx(0.01, rel=1e-9) and corrected["adjusted_p_value"] == pytest.approx(0.03, rel=1e-9)
    assert corrected["correction"] == "holm" and corrected["family_size"] == 3 and "power" in corrected
