"""Release-gate rules and decisions.

A gate decides ``pass``, ``fail`` or ``no_decision`` and gives one machine-readable reason per rule. It
fails closed: a missing or undefined metric, too few examples, a missing or stale baseline where one is
needed, or any blocker (invalid dataset, failed run, frozen metric, unpinned judge) is ``no_decision``,
never ``pass``.

Rules (each names one of the suite's metrics; direction comes from the metric's definition):

* ``{metric: roc_auc, min: 0.9}`` / ``{metric: log_loss, max: 0.3}``: absolute thresholds.
* ``{metric: roc_auc, min_delta: -0.01}``: candidate minus baseline, signed so that positive is better,
  must be at least ``min_delta`` (a negative value is the largest regression tolerated);
  ``min_relative_delta`` does the same relative to the baseline's value.
* ``{metric: roc_auc, non_inferiority: 0.01, mode: strict}``: uses the paired-bootstrap interval of the
  delta. ``strict``: pass requires the whole interval above ``-tolerance``; ``lenient``: fail only when
  the whole interval lies below ``-tolerance``. An interval straddling the margin is ``fail`` in strict
  mode and ``pass`` in lenient mode, and the reason says which mode decided.
* ``min_examples: N`` on any rule: fewer evaluated examples is ``no_decision``.
* ``slice: COLUMN`` on any rule makes it a guardrail: it is checked on every value of that slice column
  (for example ``{metric: fpr, slice: segment, min_delta: -0.01}``: FPR must not regress on any segment).
* ``{metric: accuracy, max_regressions: 0}``: on a regression suite of known failures, at most N examples
  the baseline got right may be wrong for the candidate; the reason lists the ones that regressed.

Power (reported, not gating): every rule decided on a paired interval of the delta (``min_delta``,
``min_relative_delta``, ``non_inferiority``, overall or on a slice) records ``power``: the minimum detectable
effect at the run's ``n``, the examples needed to detect the rule's margin and the run's power against it,
one-sided at ``alpha = (1 - confidence) / 2`` for the suite's ``gate.power`` (default 0.8), by the normal
approximation from the interval's standard error (eval_platform.stats.power).

Multiple comparisons (``gate.multiple_comparisons: holm | bh``, default ``none``): on a ``non_inferiority``
guardrail with a ``slice``, each slice value's one-sided p-value of "regressed beyond the tolerance"
(``Phi((delta + tolerance) / se)``, se from its bootstrap interval) is adjusted across the slice values
(Holm: family-wise error; Benjamini-Hochberg: false discovery rate) and recorded. In ``lenient`` mode, where a
slice fails only on evidence of a regression, a slice then fails when its adjusted p-value is <= alpha (the
correction keeps many slices from failing a release by chance). In ``strict`` mode every slice must show
non-inferiority on its own: an intersection-union test, whose error does not grow with the number of slices,
so the verdicts stay those of the intervals and the adjusted p-values are only reported.

``gate.require_power: P`` (optional) makes power gating: a rule that would pass while its power against its
margin is below ``P`` is ``no_decision`` (fail-closed), its message giving the power and the examples needed.

Drift rules (no metric; :class:`DriftRule`):

* ``{drift: psi, max: 0.25}``: the dataset version the run evaluated must not have drifted from the previous
  active version of its dataset beyond ``max`` on any compared column (overall or in a slice value) for the
  measure named (``psi``, ``js`` or ``ks_statistic``; eval_platform.stats.dataset_drift). Beyond the bound is
  ``no_decision`` (the run's numbers are not comparable with earlier releases: a person decides), naming the
  column and the value; a first version (nothing to compare with) satisfies the rule, with a note. Only
  differences beyond sampling noise count (the report's tests, Bonferroni-corrected): a small slice's PSI is
  large by chance alone.
* ``{prediction_drift: psi, max: 0.1}``: the candidate's prediction scores on the dataset must not have moved
  from the baseline's on the same examples beyond ``max`` (``fail``; the raw value: the two score samples are
  paired, so the independent-sample tests do not apply); without a baseline it is handled like
  any baseline rule (not applicable to a first version, ``no_decision`` when a baseline is missing).

Judge metrics: a rule on a judge metric computed on a stratified sample decides on the estimate, and is
``no_decision`` when its confidence interval is undefined. A metric defined only against a baseline (the
pairwise ``judge_preference``: candidate vs baseline, 0.5 = no preference, compared as ``preference - 0.5``
with its interval) is ``no_decision`` whenever there is no usable baseline, even where other baseline rules
are not applicable to a first version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from typing_extensions import TypeIs

from eval_platform.core.errors import InvalidInput
from eval_platform.core.states import BaselineState, RuleOutcome, Verdict
from eval_platform.metrics.base import MetricDefinition

#: Version of the decision logic; the gate asset's code version.
GATE_CODE_VERSION = "1"

_KINDS = ("min", "max", "min_delta", "min_relative_delta", "non_inferiority", "max_regressions")
#: Metrics whose per-example correctness defines an example regression.
CORRECTNESS_METRICS = ("accuracy",)
OVERALL = ("", "")


@dataclass(frozen=True)
class GateRule:
    """One rule of a suite's gate, parsed from its ``gate.rules`` entry (see the module's docstring)."""

    metric: str
    kind: str
    threshold: float
    mode: str = "strict"
    min_examples: int = 0
    slice: str = ""

    @property
    def needs_baseline(self) -> bool:
        return self.kind in ("min_delta", "min_relative_delta", "non_inferiority", "max_regressions")

    def describe(self) -> str:
        text = self._describe()
        return f"{text} on every {self.slice}" if self.slice else text

    def _describe(self) -> str:
        if self.kind == "max_regressions":
            return f"{self.metric}: at most {int(self.threshold)} example(s) regress vs baseline"
        if self.kind == "min":
            return f"{self.metric} >= {self.threshold:g}"
        if self.kind == "max":
            return f"{self.metric} <= {self.threshold:g}"
        if self.kind == "min_delta":
            return f"{self.metric} change vs baseline >= {self.threshold:+g}"
        if self.kind == "min_relative_delta":
            return f"{self.metric} relative change vs baseline >= {self.threshold:+.2%}"
        return f"{self.metric} non-inferior to baseline within {self.threshold:g} ({self.mode})"

    def as_json(self) -> dict:
        out: dict[str, Any] = {"metric": self.metric, self.kind: self.threshold}
        if self.kind == "non_inferiority":
            out["mode"] = self.mode
        if self.min_examples:
            out["min_examples"] = self.min_examples
        if self.slice:
            out["slice"] = self.slice
        return out


#: drift rule kinds: the dataset's drift from its previous version, the candidate's predictions' from the baseline's
DATASET_DRIFT, PREDICTION_DRIFT = "drift", "prediction_drift"
DRIFT_MEASURES = ("psi", "js", "ks_statistic")


@dataclass(frozen=True)
class DriftRule(GateRule):
    """A bound on a drift measure (see the module's docstring); ``kind`` is ``drift`` or ``prediction_drift``."""

    measure: str = "psi"

    @property
    def needs_baseline(self) -> bool:
        return self.kind == PREDICTION_DRIFT

    def _describe(self) -> str:
        what = "dataset drift from the previous version" if self.kind == DATASET_DRIFT else "prediction drift from the baseline"
        return f"{what}: {self.measure} <= {self.threshold:g}"

    def as_json(self) -> dict:
        return {self.kind: self.measure, "max": self.threshold}


@dataclass(frozen=True)
class DriftObservation:
    """What a drift rule decides on: per measure, the largest value that counts and where it was (a column, a slice).

    ``compared_with`` is the previous dataset version or the baseline run; None: there was nothing to compare
    with (a first version). ``measured`` names the measures computed at all; a measured one missing from
    ``largest`` had no value that counts (for a dataset: no difference beyond sampling noise)."""

    compared_with: str | None
    largest: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    measured: frozenset[str] = frozenset()


def parse_rules(raw: Any, metrics: Mapping[str, MetricDefinition]) -> tuple[GateRule, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("gate.rules", "must be a list")
    return tuple(_parse_rule(f"gate.rules[{index}]", entry, metrics) for index, entry in enumerate(raw))


def _parse_rule(field_name: str, entry: Any, metrics: Mapping[str, MetricDefinition]) -> GateRule:
    if not isinstance(entry, Mapping):
        raise InvalidInput(field_name, "must be a mapping")
    if DATASET_DRIFT in entry or PREDICTION_DRIFT in entry:
        return _parse_drift_rule(field_name, entry)
    metric = entry.get("metric")
    if not isinstance(metric, str) or metric not in metrics:
        raise InvalidInput(f"{field_name}.metric", f"{metric!r} is not a metric of this suite; suite metrics: {sorted(metrics)}")
    kind = _rule_kind(field_name, entry)
    threshold = _rule_threshold(field_name, kind, entry[kind])
    mode = entry.get("mode", "strict")
    if mode not in ("strict", "lenient") or (mode != "strict" and kind != "non_inferiority"):
        raise InvalidInput(f"{field_name}.mode", "is 'strict' or 'lenient', and only for non_inferiority rules")
    min_examples = entry.get("min_examples", 0)
    if isinstance(min_examples, bool) or not isinstance(min_examples, int) or min_examples < 0:
        raise InvalidInput(f"{field_name}.min_examples", "must be a non-negative integer")
    if kind == "max_regressions":
        _check_max_regressions(field_name, threshold, metrics[metric])
    slice_column = entry.get("slice", "")
    if not isinstance(slice_column, str):
        raise InvalidInput(f"{field_name}.slice", "must be a column name")
    return GateRule(metric, kind, float(threshold), mode, min_examples, slice_column)


def _parse_drift_rule(field_name: str, entry: Mapping) -> DriftRule:
    kind = DATASET_DRIFT if DATASET_DRIFT in entry else PREDICTION_DRIFT
    extra = sorted(set(entry) - {kind, "max"})
    if extra:
        raise InvalidInput(field_name, f"a {kind} rule has only {kind} and max; unknown field(s) {extra}")
    measure = entry[kind]
    if measure not in DRIFT_MEASURES:
        raise InvalidInput(f"{field_name}.{kind}", f"must be one of {', '.join(DRIFT_MEASURES)}, got {measure!r}")
    if "max" not in entry:
        raise InvalidInput(f"{field_name}.max", "a drift rule needs its bound")
    threshold = _rule_threshold(field_name, "max", entry["max"])
    if threshold < 0:
        raise InvalidInput(f"{field_name}.max", "a drift bound must be >= 0")
    return DriftRule("", kind, float(threshold), measure=measure)


def _rule_kind(field_name: str, entry: Mapping) -> str:
    """The rule's one kind (``min``, ``max_regressions``, ...), and no field a rule does not have."""
    kinds = [k for k in _KINDS if k in entry]
    if len(kinds) != 1:
        raise InvalidInput(field_name, f"needs exactly one of {', '.join(_KINDS)}")
    extra = sorted(set(entry) - {"metric", "mode", "min_examples", "slice", *kinds})
    if extra:
        raise InvalidInput(field_name, f"unknown field(s) {extra}")
    return kinds[0]


def _rule_threshold(field_name: str, kind: str, threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise InvalidInput(f"{field_name}.{kind}", f"must be a finite number, got {threshold!r}")
    if kind == "non_inferiority" and threshold < 0:
        raise InvalidInput(f"{field_name}.non_inferiority", "the tolerance must be >= 0")
    return threshold


def _check_max_regressions(field_name: str, threshold: float, definition: MetricDefinition) -> None:
    if threshold < 0 or int(threshold) != threshold:
        raise InvalidInput(f"{field_name}.max_regressions", "must be a whole number >= 0")
    if definition.name not in CORRECTNESS_METRICS:
        raise InvalidInput(f"{field_name}.metric", f"max_regressions needs a per-example correctness metric ({', '.join(CORRECTNESS_METRICS)})")


@dataclass
class GateDecision:
    """A gate's verdict and its reasons (one record per rule, or per run for a model version's gate)."""

    decision: str
    reasons: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class MetricComparison:
    """Candidate vs baseline for one metric; ``delta = candidate - baseline`` in the metric's own units."""

    candidate: float
    baseline: float
    delta: float
    ci_low: float
    ci_high: float
    #: examples (or queries) compared and the interval's confidence; None in records older than power reporting
    n_units: int | None = None
    confidence: float | None = None


class _Record(Protocol):
    def to_record(self) -> dict: ...


class PowerStatistics(Protocol):
    """What the gate needs from :mod:`eval_platform.stats.power`. The caller passes that module (the runner
    does): ``gates.rules`` and ``stats`` are sibling layers, which may not import each other."""

    def comparison_power(self, se: float, n: int, margin: float, alpha: float, target_power: float = 0.8) -> _Record: ...

    def se_from_interval(self, low: float, high: float, confidence: float) -> float: ...

    def regression_p_value(self, better_delta: float, se: float, margin: float) -> float: ...

    def adjust_p_values(self, p_values: Sequence[float], method: str) -> list[float]: ...


@dataclass(frozen=True)
class StatisticsSettings:
    """The suite's settings for the statistics a gate reports: the comparison's confidence, the power the
    rules' figures are for (``gate.power``) and the slice guardrails' correction (``gate.multiple_comparisons``),
    computed by ``statistics`` (None: no power figures and no correction, as before power reporting)."""

    confidence: float = 0.95
    target_power: float = 0.8
    multiple_comparisons: str = "none"
    statistics: PowerStatistics | None = None
    #: ``gate.require_power``: a rule that would pass with less power than this against its margin is
    #: ``no_decision`` (None: power is only reported)
    require_power: float | None = None

    @property
    def alpha(self) -> float:
        """One-sided level of a two-sided interval at ``confidence``."""
        return (1 - self.confidence) / 2


@dataclass(frozen=True)
class Observation:
    """What a run measured for one metric on one slice (``OVERALL`` for the whole dataset)."""

    value: float | None
    n_examples: int | None
    comparison: MetricComparison | None = None
    #: ids of examples the baseline got right and the candidate gets wrong (regression suites)
    regressions: tuple | None = None
    #: ``(low, high)`` when ``value`` is an estimate (a judge metric on a stratified sample, a pairwise
    #: preference): rules decide on the estimate, and only while its interval is defined
    interval: tuple[float, float] | None = None


def overall(values: Mapping[str, float], counts: Mapping[str, int],
            comparisons: Mapping[str, MetricComparison] | None = None) -> dict[tuple[str, str, str], Observation]:
    """Observations of the whole dataset only, from plain mappings by metric name."""
    return {(name, *OVERALL): Observation(value, counts.get(name), (comparisons or {}).get(name))
            for name, value in values.items()}


def _finite(value: object) -> TypeIs[float]:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def evaluate_rule(rule: GateRule, definition: MetricDefinition, observation: Observation | None, baseline_state: str,
                  slice_name: str = "", settings: StatisticsSettings | None = None) -> dict:
    """One rule's outcome as a reason record: rule, observed value, threshold, baseline, interval."""
    observation = observation or Observation(None, None)
    value, n_examples, comparison = observation.value, observation.n_examples, observation.comparison
    reason: dict[str, Any] = {
        "rule": rule.describe(), "metric": rule.metric, "kind": rule.kind, "threshold": rule.threshold,
        "observed": value if _finite(value) else None, "n_examples": n_examples,
        "baseline": comparison.baseline if comparison else None,
        "delta": comparison.delta if comparison else None,
        "interval": [comparison.ci_low, comparison.ci_high] if comparison else None,
    }
    if slice_name:
        reason["slice"] = slice_name
    if observation.interval is not None:
        reason["estimate_interval"] = [v if _finite(v) else None for v in observation.interval]
    outcome, message = _rule_outcome(rule, definition, observation, baseline_state, reason)
    reason.update(outcome=outcome, message=message)
    power = rule_power(rule, comparison, settings or StatisticsSettings())
    if power is not None:
        reason["power"] = power
    return reason


_POWERED = ("min_delta", "min_relative_delta", "non_inferiority")


def _standard_error(comparison: MetricComparison, statistics: PowerStatistics) -> float | None:
    """The delta's standard error its interval implies, or None without a usable interval."""
    if not (_finite(comparison.ci_low) and _finite(comparison.ci_high) and comparison.confidence
            and 0 < comparison.confidence < 1 and comparison.ci_high >= comparison.ci_low):
        return None
    return statistics.se_from_interval(comparison.ci_low, comparison.ci_high, comparison.confidence)


def rule_power(rule: GateRule, comparison: MetricComparison | None, settings: StatisticsSettings) -> dict | None:
    """The rule's power figures (:class:`eval_platform.stats.power.PowerReport` as a record) against its margin:
    the tolerance of a non-inferiority rule, ``|min_delta|``, ``|min_relative_delta| x |baseline|``; None for
    rules without a paired interval (absolute thresholds, regression counts, point-only comparisons)."""
    statistics = settings.statistics
    if statistics is None or rule.kind not in _POWERED or comparison is None or not comparison.n_units or comparison.n_units < 2:
        return None
    se = _standard_error(comparison, statistics)
    if se is None:
        return None
    margin = abs(rule.threshold)
    if rule.kind == "min_relative_delta":
        if not _finite(comparison.baseline):
            return None
        margin *= abs(comparison.baseline)
    return statistics.comparison_power(se, comparison.n_units, margin, settings.alpha, settings.target_power).to_record()


def _rule_outcome(rule: GateRule, definition: MetricDefinition, observation: Observation, baseline_state: str,
                  reason: dict[str, Any]) -> tuple[Verdict, str]:
    """The rule's verdict on the observation, with the message that says why."""
    undecided = _why_undecidable(rule, definition, observation, baseline_state)
    if undecided is not None:
        return Verdict.NO_DECISION, undecided
    value = observation.value
    assert _finite(value)  # _why_undecidable said why otherwise
    if rule.kind == "min":
        ok = value >= rule.threshold
        return _verdict(ok), f"{value:.6g} {'>=' if ok else '<'} {rule.threshold:g}"
    if rule.kind == "max":
        ok = value <= rule.threshold
        return _verdict(ok), f"{value:.6g} {'<=' if ok else '>'} {rule.threshold:g}"
    if baseline_state != BaselineState.OK:
        return Verdict.NO_DECISION, f"needs a baseline; baseline is {baseline_state}"
    if rule.kind == "max_regressions":
        return _regression_outcome(rule, observation, reason)
    if observation.comparison is None:
        return Verdict.NO_DECISION, "no comparison with the baseline for this metric"
    return _comparison_outcome(rule, definition, observation.comparison)


def _verdict(ok: bool) -> Verdict:
    return Verdict.PASS if ok else Verdict.FAIL


def _why_undecidable(rule: GateRule, definition: MetricDefinition, observation: Observation, baseline_state: str) -> str | None:
    """Why no rule of any kind can be decided on the observation, or None when it can."""
    if definition.comparison_only and baseline_state != BaselineState.OK:
        return f"metric {rule.metric} is only defined against a baseline; baseline is {baseline_state}"
    if not _finite(observation.value):
        return f"metric {rule.metric} is missing or undefined for this run"
    if observation.interval is not None and not all(_finite(v) for v in observation.interval):
        # an estimate whose uncertainty is unknown (e.g. a stratum judged once) cannot pass a release
        return f"metric {rule.metric} is an estimate without a defined confidence interval"
    if rule.min_examples and (observation.n_examples or 0) < rule.min_examples:
        return f"{observation.n_examples} examples < required {rule.min_examples}"
    return None


def _regression_outcome(rule: GateRule, observation: Observation, reason: dict[str, Any]) -> tuple[Verdict, str]:
    """At most ``threshold`` examples the baseline got right may be wrong for the candidate; the reason lists them."""
    if observation.regressions is None:
        return Verdict.NO_DECISION, "no per-example comparison with the baseline"
    regressed = list(observation.regressions)
    reason["regressions"] = regressed[:100]
    listed = f": {', '.join(map(str, regressed[:20]))}{' ...' if len(regressed) > 20 else ''}" if regressed else ""
    return _verdict(len(regressed) <= rule.threshold), f"{len(regressed)} example(s) regressed" + listed


def _comparison_outcome(rule: GateRule, definition: MetricDefinition, comparison: MetricComparison) -> tuple[Verdict, str]:
    """A delta rule on candidate minus baseline, signed so that positive is better."""
    if not (_finite(comparison.baseline) and _finite(comparison.delta)):
        return Verdict.NO_DECISION, f"metric {rule.metric} is undefined for the baseline"
    better = definition.better(comparison.delta)
    if rule.kind == "min_delta":
        ok = better >= rule.threshold
        return _verdict(ok), f"improvement {better:+.6g} {'>=' if ok else '<'} {rule.threshold:+g}"
    if rule.kind == "min_relative_delta":
        if comparison.baseline == 0:
            return Verdict.NO_DECISION, "baseline value is 0: relative change undefined"
        relative = better / abs(comparison.baseline)
        ok = relative >= rule.threshold
        return _verdict(ok), f"relative improvement {relative:+.4%} {'>=' if ok else '<'} {rule.threshold:+.2%}"
    return _non_inferiority_outcome(rule, definition, comparison)


def _non_inferiority_outcome(rule: GateRule, definition: MetricDefinition, comparison: MetricComparison) -> tuple[Verdict, str]:
    """Non-inferiority on the bootstrap interval, turned so that higher is better."""
    if not (_finite(comparison.ci_low) and _finite(comparison.ci_high)):
        return Verdict.NO_DECISION, "no confidence interval for the delta"
    low, high = sorted((definition.better(comparison.ci_low), definition.better(comparison.ci_high)))
    margin = -rule.threshold
    if low >= margin:
        return Verdict.PASS, f"whole interval [{low:+.4g}, {high:+.4g}] is above {margin:+g}"
    if high < margin:
        return Verdict.FAIL, f"whole interval [{low:+.4g}, {high:+.4g}] is below {margin:+g}"
    if rule.mode == "strict":
        return Verdict.FAIL, f"interval [{low:+.4g}, {high:+.4g}] crosses {margin:+g}; strict mode requires it above"
    return Verdict.PASS, f"interval [{low:+.4g}, {high:+.4g}] crosses {margin:+g}; lenient mode fails only below"


def decide(
    rules: Sequence[GateRule],
    definitions: Mapping[str, MetricDefinition],
    observations: Mapping[tuple[str, str, str], Observation],
    baseline_state: str,
    require_baseline: bool,
    blockers: Sequence[str] = (),
    drift: Mapping[str, DriftObservation] | None = None,
    settings: StatisticsSettings | None = None,
) -> GateDecision:
    """Combine rule outcomes. Blockers and missing information give ``no_decision``; otherwise any failed
    rule gives ``fail``; ``pass`` needs every rule to pass (and at least one rule).

    ``observations`` maps ``(metric, slice_column, slice_value)`` to what was measured; a rule with a
    ``slice`` is checked on every value of its slice column (none at all is ``no_decision``). ``drift`` maps
    ``drift`` / ``prediction_drift`` to what the suite's drift rules decide on (missing: ``no_decision``).
    ``settings``: the power the rules report and the slice guardrails' correction (default: 0.8, none).
    """
    reasons = [{"rule": "precondition", "outcome": Verdict.NO_DECISION, "message": b} for b in blockers]
    missing_baseline = require_baseline and baseline_state != BaselineState.OK
    if missing_baseline:
        reasons.append({"rule": "baseline required", "outcome": Verdict.NO_DECISION, "message": f"baseline is {baseline_state}"})
    for rule in rules:
        if isinstance(rule, DriftRule):
            reasons.append(drift_reason(rule, (drift or {}).get(rule.kind), baseline_state, require_baseline))
            continue
        reasons += _rule_reasons(rule, definitions[rule.metric], observations, baseline_state, require_baseline,
                                 settings or StatisticsSettings())
    if blockers or missing_baseline:
        return GateDecision(Verdict.NO_DECISION, reasons)
    return GateDecision(_decision_of(reasons), reasons)


def _rule_reasons(rule: GateRule, definition: MetricDefinition, observations: Mapping[tuple[str, str, str], Observation],
                  baseline_state: str, require_baseline: bool, settings: StatisticsSettings) -> list[dict]:
    """The rule's reasons: overall, on every value of its slice column, or not applicable to a first version."""
    if (rule.needs_baseline and baseline_state == BaselineState.NONE and not require_baseline
            and not definition.comparison_only):  # a pairwise metric never exists without one
        return [{"rule": rule.describe(), "metric": rule.metric, "kind": rule.kind, "outcome": RuleOutcome.NOT_APPLICABLE,
                 "message": "no baseline exists yet for this model name (first version)"}]
    if not rule.slice:
        return _require_power([evaluate_rule(rule, definition, observations.get((rule.metric, *OVERALL)), baseline_state,
                                             settings=settings)], settings)
    slices = sorted(key for key in observations if key[0] == rule.metric and key[1] == rule.slice)
    if not slices:
        return [{"rule": rule.describe(), "metric": rule.metric, "kind": rule.kind, "outcome": Verdict.NO_DECISION,
                 "message": f"no slice values of {rule.slice!r} were measured"}]
    reasons = [evaluate_rule(rule, definition, observations[key], baseline_state, f"{key[1]}={key[2]}", settings)
               for key in slices]
    if rule.kind == "non_inferiority" and settings.multiple_comparisons != "none" and settings.statistics is not None:
        _correct_slices(rule, definition, [observations[key].comparison for key in slices], reasons, settings,
                        settings.statistics)
    return _require_power(reasons, settings)


def _require_power(reasons: list[dict], settings: StatisticsSettings) -> list[dict]:
    """With ``gate.require_power``, a passing rule whose power against its margin is below it is ``no_decision``
    (fails closed: a pass the run could not have contradicted is no evidence); other outcomes stand."""
    if settings.require_power is None:
        return reasons
    for reason in reasons:
        figures = reason.get("power")
        if reason.get("outcome") == Verdict.PASS and figures and figures["power"] < settings.require_power:
            needed = "no finite n (margin 0)" if figures["n_needed"] is None else f"about {figures['n_needed']} examples"
            reason.update(outcome=Verdict.NO_DECISION, message=(
                f"underpowered: power {figures['power']:.3f} against the margin {figures['margin']:g} at n={figures['n']} "
                f"< required {settings.require_power:g} (needs {needed}); the rule alone: {reason['message']}"))
    return reasons


def _correct_slices(rule: GateRule, definition: MetricDefinition, comparisons: Sequence[MetricComparison | None],
                    reasons: list[dict], settings: StatisticsSettings, statistics: PowerStatistics) -> None:
    """Adjust the slices' p-values of "regressed beyond the tolerance" across the guardrail's slice values and,
    in lenient mode, decide each slice's failure on its adjusted p-value (see the module's docstring). Slices
    without a decided outcome or a usable interval are not part of the family."""
    family: list[tuple[dict, float]] = []
    for reason, comparison in zip(reasons, comparisons, strict=True):
        if comparison is None or reason["outcome"] not in (Verdict.PASS, Verdict.FAIL) or not _finite(comparison.delta):
            continue
        se = _standard_error(comparison, statistics)
        if se is not None:
            family.append((reason, statistics.regression_p_value(definition.better(comparison.delta), se, rule.threshold)))
    adjusted = statistics.adjust_p_values([p for _, p in family], settings.multiple_comparisons)
    name = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[settings.multiple_comparisons]
    for (reason, p_value), q_value in zip(family, adjusted, strict=True):
        reason.update(p_value=p_value, adjusted_p_value=q_value, correction=settings.multiple_comparisons,
                      family_size=len(family))
        if rule.mode != "lenient":
            reason["message"] += f"; {name}-adjusted p of a regression {q_value:.3g} over {len(family)} slices (reported)"
            continue
        regressed = q_value <= settings.alpha
        reason["outcome"] = _verdict(not regressed)
        reason["message"] = (f"{name}-adjusted p of a regression beyond {-rule.threshold:+g} is {q_value:.3g} "
                             f"{'<=' if regressed else '>'} {settings.alpha:.3g} over {len(family)} slices (raw p {p_value:.3g})")


def drift_reason(rule: DriftRule, observation: DriftObservation | None, baseline_state: str, require_baseline: bool) -> dict:
    """A drift rule's outcome: within the bound passes; a dataset's drift beyond it is ``no_decision`` and a
    prediction drift beyond it ``fail``, naming where and how much."""
    reason: dict[str, Any] = {"rule": rule.describe(), "kind": rule.kind, "measure": rule.measure, "threshold": rule.threshold}

    def outcome(verdict: str, message: str, observed: float | None = None) -> dict:
        return {**reason, "outcome": verdict, "message": message, "observed": observed}

    if rule.kind == PREDICTION_DRIFT and baseline_state != BaselineState.OK:
        if baseline_state == BaselineState.NONE and not require_baseline:
            return outcome(RuleOutcome.NOT_APPLICABLE, "no baseline exists yet for this model name (first version)")
        return outcome(Verdict.NO_DECISION, f"needs a baseline; baseline is {baseline_state}")
    if observation is None:
        return outcome(Verdict.NO_DECISION, f"{rule.kind} was not measured for this run")
    reason["compared_with"] = observation.compared_with
    if observation.compared_with is None:
        return outcome(Verdict.PASS, "first version of the dataset: nothing to compare with")
    if rule.measure not in observation.measured:
        return outcome(Verdict.NO_DECISION, f"no {rule.measure} was measured against {observation.compared_with}")
    largest = observation.largest.get(rule.measure)
    if largest is None:
        return outcome(Verdict.PASS, f"no {rule.measure} difference beyond sampling noise against {observation.compared_with}")
    if not _finite(largest[0]):
        return outcome(Verdict.NO_DECISION, f"{rule.measure} is undefined against {observation.compared_with}")
    value, where = largest
    if value <= rule.threshold:
        return outcome(Verdict.PASS, f"largest {rule.measure} {value:.4g} ({where}) <= {rule.threshold:g} "
                                     f"against {observation.compared_with}", value)
    verdict = Verdict.NO_DECISION if rule.kind == DATASET_DRIFT else Verdict.FAIL
    return outcome(verdict, f"{rule.measure} {value:.4g} of {where} > {rule.threshold:g} against {observation.compared_with}", value)


def _decision_of(reasons: list[dict]) -> Verdict:
    """Fail on any failed rule; pass only when every rule passed or did not apply and one passed. A gate whose
    every rule was not applicable says so in one more reason."""
    outcomes = [r["outcome"] for r in reasons]
    if Verdict.FAIL in outcomes:
        return Verdict.FAIL
    if Verdict.NO_DECISION in outcomes:
        return Verdict.NO_DECISION
    if Verdict.PASS not in outcomes:
        reasons.append({"rule": "at least one rule", "outcome": Verdict.NO_DECISION, "message": "no rule could be evaluated"})
        return Verdict.NO_DECISION
    return Verdict.PASS


def combine(decisions: Sequence[tuple[str, GateDecision]]) -> GateDecision:
    """A model version's decision over its release-blocking runs: pass only if every one passed."""
    if not decisions:
        return GateDecision(Verdict.NO_DECISION, [{"rule": "release-blocking runs", "outcome": Verdict.NO_DECISION,
                                                   "message": "no release-blocking eval run decided for this model version"}])
    reasons = [{"run": label, "outcome": d.decision, "reasons": d.reasons} for label, d in decisions]
    kinds = {d.decision for _, d in decisions}
    decision = Verdict.NO_DECISION if Verdict.NO_DECISION in kinds else Verdict.FAIL if Verdict.FAIL in kinds else Verdict.PASS
    return GateDecision(decision, reasons)
