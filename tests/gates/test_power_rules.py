"""Power figures in rule outcomes and the slice guardrails' multiple-comparison correction (gates.rules.decide)."""

import math

import pytest
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower

from eval_platform.core.errors import InvalidInput
from eval_platform.gates.rules import MetricComparison, Observation, StatisticsSettings, decide, parse_rules
from eval_platform.metrics.catalog import get_metric
from eval_platform.stats import power
from eval_platform.suites.definition import parse_suite

AUC = get_metric("roc_auc@1")
Z = norm.ppf(0.975)


def comparison(delta: float, se: float, n: int) -> MetricComparison:
    return MetricComparison(0.9 + delta, 0.9, delta, delta - Z * se, delta + Z * se, n, 0.95)


def settings(correction: str = "none", target: float = 0.8) -> StatisticsSettings:
    return StatisticsSettings(0.95, target, correction, power)


def test_a_non_inferiority_rule_reports_its_power():
    rules = parse_rules([{"metric": "roc_auc", "non_inferiority": 0.02}], {"roc_auc": AUC})
    observations = {("roc_auc", "", ""): Observation(0.9, 500, comparison(-0.001, 0.01, 500))}
    decision = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings())
    figures = decision.reasons[0]["power"]
    sd = 0.01 * math.sqrt(500)  # the standard error the interval implies, as a per-example sd
    assert figures["n"] == 500 and figures["alpha"] == pytest.approx(0.025) and figures["margin"] == 0.02
    assert figures["standard_error"] == pytest.approx(0.01, rel=1e-12)
    assert figures["mde"] == pytest.approx(
        NormalIndPower().solve_power(nobs1=500, alpha=0.025, power=0.8, ratio=0, alternative="larger") * sd, rel=2e-5)
    assert figures["power"] == pytest.approx(NormalIndPower().power(0.02 / sd, 500, 0.025, ratio=0, alternative="larger"), abs=1e-12)
    assert figures["n_needed"] == math.ceil(NormalIndPower().solve_power(
        effect_size=0.02 / sd, alpha=0.025, power=0.8, ratio=0, alternative="larger") - 1e-6)
    assert figures["adequate"] is False  # power 0.52 against a 0.02 margin with se 0.01
    assert decision.decision == "fail"  # the interval crosses -0.02: the decision is unchanged by reporting


def test_power_is_not_reported_where_there_is_no_interval_or_no_statistics():
    rules = parse_rules([{"metric": "roc_auc", "min": 0.8}, {"metric": "roc_auc", "min_delta": -0.01}], {"roc_auc": AUC})
    point_only = MetricComparison(0.9, 0.9, 0.0, float("nan"), float("nan"), 500, None)
    observations = {("roc_auc", "", ""): Observation(0.9, 500, point_only)}
    reasons = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings()).reasons
    assert all("power" not in r for r in reasons)
    with_interval = {("roc_auc", "", ""): Observation(0.9, 500, comparison(0.0, 0.01, 500))}
    assert "power" not in decide(rules, {"roc_auc": AUC}, with_interval, "ok", True).reasons[1]  # no statistics given
    assert decide(rules, {"roc_auc": AUC}, with_interval, "ok", True, settings=settings()).reasons[1]["power"]["margin"] == 0.01


def _slices(deltas_and_ses):
    return {("roc_auc", "segment", f"s{i}"): Observation(0.9 + d, 100, comparison(d, se, 100))
            for i, (d, se) in enumerate(deltas_and_ses)}


def test_holm_keeps_one_borderline_slice_from_failing_a_lenient_guardrail():
    rules = parse_rules([{"metric": "roc_auc", "slice": "segment", "non_inferiority": 0.01, "mode": "lenient"}], {"roc_auc": AUC})
    # slice s0 is 2.2 standard errors below the margin (raw one-sided p 0.014 < 0.025: its interval lies below it)
    observations = _slices([(-0.01 - 2.2 * 0.01, 0.01), (0.0, 0.01), (-0.005, 0.02), (0.01, 0.01)])
    plain = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings())
    assert plain.decision == "fail" and [r["outcome"] for r in plain.reasons] == ["fail", "pass", "pass", "pass"]
    raw = [norm.cdf((d + 0.01) / se) for d, se in [(-0.032, 0.01), (0.0, 0.01), (-0.005, 0.02), (0.01, 0.01)]]
    for method, reference in (("holm", "holm"), ("bh", "fdr_bh")):
        corrected = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings(method))
        assert [r["adjusted_p_value"] for r in corrected.reasons] == pytest.approx(
            multipletests(raw, method=reference)[1], abs=1e-12)
        assert [r["p_value"] for r in corrected.reasons] == pytest.approx(raw, abs=1e-12)
        assert corrected.decision == "pass" and corrected.reasons[0]["family_size"] == 4
        assert "adjusted p of a regression" in corrected.reasons[0]["message"]
    # a regression far beyond the margin still fails after the correction
    worse = _slices([(-0.06, 0.01), (0.0, 0.01), (-0.005, 0.02), (0.01, 0.01)])
    assert decide(rules, {"roc_auc": AUC}, worse, "ok", True, settings=settings("holm")).decision == "fail"


def test_strict_guardrails_keep_their_interval_verdicts_and_report_adjusted_p():
    rules = parse_rules([{"metric": "roc_auc", "slice": "segment", "non_inferiority": 0.01}], {"roc_auc": AUC})
    observations = _slices([(-0.032, 0.01), (0.0, 0.01), (0.02, 0.002)])
    plain = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings())
    corrected = decide(rules, {"roc_auc": AUC}, observations, "ok", True, settings=settings("holm"))
    assert [r["outcome"] for r in corrected.reasons] == [r["outcome"] for r in plain.reasons] == ["fail", "fail", "pass"]
    assert all("adjusted_p_value" in r and "(reported)" in r["message"] for r in corrected.reasons)


def _suite(gate_extra):
    return {"suite_id": "s", "purpose": "release_blocking", "task_type": "binary_classification",
            "metrics": [{"metric": "roc_auc@1"}], "slices": ["segment"],
            "gate": {"rules": [{"metric": "roc_auc", "min": 0.5}], **gate_extra}}


def test_suite_settings_are_parsed_and_leave_the_hash_of_a_suite_without_them_unchanged():
    plain = parse_suite(_suite({}))
    assert (plain.target_power, plain.multiple_comparisons) == (0.8, "none")
    assert "power" not in plain.as_json()["gate"] and "multiple_comparisons" not in plain.as_json()["gate"]
    assert parse_suite(_suite({"power": 0.8, "multiple_comparisons": "none"})).as_json() == plain.as_json()
    stated = parse_suite(_suite({"power": 0.9, "multiple_comparisons": "bh"}))
    assert stated.as_json()["gate"]["power"] == 0.9 and stated.as_json()["gate"]["multiple_comparisons"] == "bh"


@pytest.mark.parametrize("gate,field", [({"power": 1.0}, "gate.power"), ({"power": 0.2}, "gate.power"),
                                        ({"power": True}, "gate.power"), ({"power": "high"}, "gate.power"),
                                        ({"multiple_comparisons": "bonferroni"}, "gate.multiple_comparisons"),
                                        ({"multiple_comparisons": None}, "gate.multiple_comparisons")])
def test_bad_suite_settings_name_the_field(gate, field):
    with pytest.raises(InvalidInput) as raised:
        parse_suite(_suite(gate))
    assert raised.value.field == field


def test_require_power_turns_an_underpowered_pass_into_no_decision():
    rules = parse_rules([{"metric": "roc_auc", "non_inferiority": 0.02, "mode": "lenient"}], {"roc_auc": AUC})
    demanding = StatisticsSettings(0.95, 0.8, "none", power, require_power=0.8)
    # se 0.01: power against 0.02 is 1 - Phi(1.96 - 2) = 0.516 < 0.8; lenient mode alone would pass
    weak = {("roc_auc", "", ""): Observation(0.9, 500, comparison(0.0, 0.01, 500))}
    assert decide(rules, {"roc_auc": AUC}, weak, "ok", True, settings=settings()).decision == "pass"
    undecided = decide(rules, {"roc_auc": AUC}, weak, "ok", True, settings=demanding)
    assert undecided.decision == "no_decision"
    assert undecided.reasons[0]["message"].startswith("underpowered: power 0.516") and "needs about" in undecided.reasons[0]["message"]
    # se 0.005: power 1 - Phi(1.96 - 4) = 0.979: the pass stands
    strong = {("roc_auc", "", ""): Observation(0.9, 500, comparison(0.0, 0.005, 500))}
    assert decide(rules, {"roc_auc": AUC}, strong, "ok", True, settings=demanding).decision == "pass"
    # a fail stays a fail, however little power the run had
    bad = {("roc_auc", "", ""): Observation(0.9, 500, comparison(-0.06, 0.01, 500))}
    assert decide(rules, {"roc_auc": AUC}, bad, "ok", True, settings=demanding).decision == "fail"


def test_require_power_is_in_the_suite_only_when_stated():
    stated = parse_suite(_suite({"require_power": 0.9}))
    assert stated.require_power == 0.9 and stated.as_json()["gate"]["require_power"] == 0.9
    assert parse_suite(_suite({})).require_power is None
    for bad in (1.0, 0.1, "yes", True, None):
        with pytest.raises(InvalidInput) as raised:
            parse_suite(_suite({"require_power": bad}))
        assert raised.value.field == "gate.require_power"


def test_a_comparison_stored_before_power_reporting_still_decides_without_figures():
    from eval_platform.evaluation.results import metric_comparison

    old = metric_comparison({"candidate": 0.9, "baseline": 0.9, "delta": 0.0, "ci_low": -0.005, "ci_high": 0.005})
    assert (old.n_units, old.confidence) == (None, None)
    rules = parse_rules([{"metric": "roc_auc", "non_inferiority": 0.01}], {"roc_auc": AUC})
    decision = decide(rules, {"roc_auc": AUC}, {("roc_auc", "", ""): Observation(0.9, 500, old)}, "ok", True, settings=settings())
    assert decision.decision == "pass" and "power" not in decision.reasons[0]
    new = metric_comparison({"candidate": 0.9, "baseline": 0.9, "delta": 0.0, "ci_low": -0.005, "ci_high": 0.005,
                             "n_units": 500, "confidence": 0.95})
    assert decide(rules, {"roc_auc": AUC}, {("roc_auc", "", ""): Observation(0.9, 500, new)}, "ok", True,
                  settings=settings()).reasons[0]["power"]["n"] == 500
