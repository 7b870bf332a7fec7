"""Gate rules and decisions: every rule kind, and failing closed."""

import math

import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.core.states import Verdict
from eval_platform.gates.rules import MetricComparison, combine, decide, overall, parse_rules
from eval_platform.metrics.catalog import get_metric

DEFS = {"roc_auc": get_metric("roc_auc@1"), "log_loss": get_metric("log_loss@1")}


def rules(*raw):
    return parse_rules(list(raw), DEFS)


def run_decide(rule_list, values, comparisons=None, baseline_state="ok", require_baseline=True, blockers=(), counts=None):
    counts = counts or {name: 1000 for name in values}
    return decide(rule_list, DEFS, overall(values, counts, comparisons), baseline_state, require_baseline, blockers)


def cmp(candidate, baseline, low, high):
    return MetricComparison(candidate, baseline, candidate - baseline, low, high)


def test_absolute_thresholds_honour_direction():
    rs = rules({"metric": "roc_auc", "min": 0.9}, {"metric": "log_loss", "max": 0.3})
    assert run_decide(rs, {"roc_auc": 0.95, "log_loss": 0.2}, require_baseline=False, baseline_state="none").decision == Verdict.PASS
    decision = run_decide(rs, {"roc_auc": 0.85, "log_loss": 0.2}, require_baseline=False, baseline_state="none")
    assert decision.decision == Verdict.FAIL
    failed = [r for r in decision.reasons if r["outcome"] == Verdict.FAIL]
    assert failed == [dict(failed[0], metric="roc_auc", observed=0.85, threshold=0.9, kind="min")]
    assert run_decide(rs, {"roc_auc": 0.95, "log_loss": 0.31}, require_baseline=False, baseline_state="none").decision == Verdict.FAIL


def test_relative_rules_use_the_metric_direction():
    rs = rules({"metric": "log_loss", "min_delta": -0.01})
    # log loss rising by 0.02 is a regression of 0.02 for a lower-is-better metric
    worse = {"log_loss": cmp(0.32, 0.30, 0.01, 0.03)}
    assert run_decide(rs, {"log_loss": 0.32}, worse).decision == Verdict.FAIL
    better = {"log_loss": cmp(0.25, 0.30, -0.07, -0.03)}
    assert run_decide(rs, {"log_loss": 0.25}, better).decision == Verdict.PASS
    relative = rules({"metric": "roc_auc", "min_relative_delta": 0.01})
    assert run_decide(relative, {"roc_auc": 0.909}, {"roc_auc": cmp(0.909, 0.9, 0.0, 0.02)}).decision == Verdict.PASS  # +1.0%
    assert run_decide(relative, {"roc_auc": 0.905}, {"roc_auc": cmp(0.905, 0.9, 0.0, 0.02)}).decision == Verdict.FAIL


@pytest.mark.parametrize(
    ("mode", "interval", "expected"),
    [
        ("strict", (-0.005, 0.01), Verdict.PASS),  # whole interval above -0.01
        ("strict", (-0.02, 0.01), Verdict.FAIL),  # crosses the margin: strict needs it above
        ("lenient", (-0.02, 0.01), Verdict.PASS),  # crosses: lenient fails only below
        ("lenient", (-0.05, -0.02), Verdict.FAIL),  # whole interval below -0.01
        ("strict", (-0.05, -0.02), Verdict.FAIL),
    ],
)
def test_non_inferiority_modes(mode, interval, expected):
    rs = rules({"metric": "roc_auc", "non_inferiority": 0.01, "mode": mode})
    decision = run_decide(rs, {"roc_auc": 0.9}, {"roc_auc": cmp(0.9, 0.9, *interval)})
    assert decision.decision == expected
    assert mode in decision.reasons[0]["message"] or decision.reasons[0]["message"].startswith("whole interval")


def test_non_inferiority_flips_the_interval_for_lower_is_better():
    rs = rules({"metric": "log_loss", "non_inferiority": 0.01})
    # log loss up by 0.02..0.03 is a regression outside the 0.01 tolerance
    assert run_decide(rs, {"log_loss": 0.33}, {"log_loss": cmp(0.33, 0.30, 0.02, 0.03)}).decision == Verdict.FAIL
    assert run_decide(rs, {"log_loss": 0.30}, {"log_loss": cmp(0.30, 0.30, -0.005, 0.005)}).decision == Verdict.PASS


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("missing metric", dict(values={})),
        ("undefined metric", dict(values={"roc_auc": math.nan})),
        ("too few examples", dict(values={"roc_auc": 0.99}, counts={"roc_auc": 10})),
        ("stale baseline", dict(values={"roc_auc": 0.99}, baseline_state="stale")),
        ("missing baseline", dict(values={"roc_auc": 0.99}, baseline_state="missing")),
        ("invalid dataset", dict(values={"roc_auc": 0.99}, blockers=["dataset bc@1 is contaminated"])),
        ("no interval", dict(values={"roc_auc": 0.99}, comparisons={"roc_auc": cmp(0.99, 0.98, math.nan, math.nan)})),
    ],
)
def test_gate_fails_closed(case, kwargs):
    rs = rules({"metric": "roc_auc", "min": 0.9, "min_examples": 100}, {"metric": "roc_auc", "non_inferiority": 0.01})
    kwargs.setdefault("comparisons", {"roc_auc": cmp(0.99, 0.98, 0.0, 0.02)})
    decision = run_decide(rs, **kwargs)
    assert decision.decision == Verdict.NO_DECISION, case


def test_first_version_without_baseline_is_decided_on_absolute_rules_only():
    rs = rules({"metric": "roc_auc", "min": 0.9}, {"metric": "roc_auc", "non_inferiority": 0.01})
    decision = run_decide(rs, {"roc_auc": 0.95}, None, baseline_state="none", require_baseline=False)
    assert decision.decision == Verdict.PASS
    assert [r["outcome"] for r in decision.reasons] == [Verdict.PASS, "not_applicable"]
    # with only baseline rules and no baseline, nothing was decided: never a pass
    only_relative = rules({"metric": "roc_auc", "non_inferiority": 0.01})
    assert run_decide(only_relative, {"roc_auc": 0.95}, None, baseline_state="none", require_baseline=False).decision == Verdict.NO_DECISION


def test_combining_runs():
    passed = run_decide(rules({"metric": "roc_auc", "min": 0.9}), {"roc_auc": 0.95})
    failed = run_decide(rules({"metric": "roc_auc", "min": 0.9}), {"roc_auc": 0.5})
    undecided = run_decide(rules({"metric": "roc_auc", "min": 0.9}), {})
    assert combine([("a", passed), ("b", passed)]).decision == Verdict.PASS
    assert combine([("a", passed), ("b", failed)]).decision == Verdict.FAIL
    assert combine([("a", failed), ("b", undecided)]).decision == Verdict.NO_DECISION
    assert combine([]).decision == Verdict.NO_DECISION


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"metric": "accuracy", "min": 0.9}, "gate.rules[0].metric"),
        ({"metric": "roc_auc"}, "gate.rules[0]"),
        ({"metric": "roc_auc", "min": 0.9, "max": 1.0}, "gate.rules[0]"),
        ({"metric": "roc_auc", "min": "high"}, "gate.rules[0].min"),
        ({"metric": "roc_auc", "non_inferiority": -0.1}, "gate.rules[0].non_inferiority"),
        ({"metric": "roc_auc", "min": 0.9, "mode": "lenient"}, "gate.rules[0].mode"),
        ({"metric": "roc_auc", "min": 0.9, "min_examples": -1}, "gate.rules[0].min_examples"),
    ],
)
def test_bad_rules_name_their_field(raw, field):
    with pytest.raises(InvalidInput) as error:
        rules(raw)
    assert error.value.field == field
