"""Online guardrails of a metric suite, and the online part of a release gate.

A release-blocking suite may require online evidence before a model version ships::

    online:
      confidence: 0.95                 # the analyses must be at least this confident
      max_age_days: 14                 # an analysis older than this is stale (optional)
      guardrails:                      # A/B: the candidate (a treatment arm) against the baseline (control)
        - {metric: latency_ms, direction: lower, tolerance: 0.05}              # +5 % at most
        - {metric: complaint, direction: lower, tolerance: 0.002, relative: false}
      shadow:                          # shadow mode: the candidate's logged outputs against production's
        - {metric: shadow_agreement, min: 0.9}
        - {metric: shadow_overlap_at_k, min: 0.7}

:func:`decide_online` turns the requirements of a model version's release-blocking suites and the latest
valid analyses of the experiments it took part in into ``pass``, ``fail``, ``no_decision`` or
``not_required``, with one reason per requirement. It fails closed; ``no_decision`` when:

* no experiment (or no shadow experiment) has the model version as its candidate, or none was analysed
  yet, or its latest analysis is invalid (a contaminated ingest) or older than ``max_age_days``;
* the experiment's control (or shadow production side) is not the model name's current baseline;
* the analysis is untrustworthy (sample-ratio mismatch, unknown arms, crossover), does not measure a
  required metric, has too few units, or its interval straddles the tolerance;
* the analysis was made at a lower confidence than the suite requires.

A guardrail verdict is computed from the stored analysis with the suite's rule
(:func:`~eval_platform.online.analysis.guardrail_verdict`), so changing a suite's tolerance needs no
re-analysis. The first version of a model name (no baseline to compare with) has nothing to be compared
against online: its online requirements are ``not_applicable``, as baseline-relative offline rules are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eval_platform.core.errors import InvalidInput
from eval_platform.online.analysis import guardrail_verdict
from eval_platform.online.config import ExperimentConfig, GuardrailConfig

PASS, FAIL, NO_DECISION = "pass", "fail", "no_decision"
NOT_REQUIRED, NOT_APPLICABLE = "not_required", "not_applicable"
SHADOW_METRICS = ("shadow_agreement", "shadow_spearman", "shadow_kendall", "shadow_overlap_at_k", "shadow_coverage")
_KEYS = ("confidence", "max_age_days", "guardrails", "shadow")


@dataclass(frozen=True)
class ShadowRule:
    """A suite's bound on a shadow metric: ``metric`` at least (``min``) or at most (``max``) ``threshold``."""

    metric: str
    kind: str  # min | max
    threshold: float

    def describe(self) -> str:
        return f"{self.metric} {'>=' if self.kind == 'min' else '<='} {self.threshold:g}"


@dataclass(frozen=True)
class OnlineRequirements:
    """A suite's ``online`` section, validated: the guardrails and shadow rules a release must pass online."""

    guardrails: tuple[GuardrailConfig, ...]
    shadow: tuple[ShadowRule, ...]
    confidence: float = 0.95
    max_age_days: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "max_age_days": self.max_age_days,
                "guardrails": [{"metric": g.metric, "direction": g.direction, "tolerance": g.tolerance, "relative": g.relative}
                               for g in self.guardrails],
                "shadow": [{"metric": r.metric, r.kind: r.threshold} for r in self.shadow]}


def _finite(value, field: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise InvalidInput(field, f"must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _mapping(raw, field: str, allowed: Sequence[str]) -> Mapping:
    if not isinstance(raw, Mapping):
        raise InvalidInput(field, "must be a mapping")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise InvalidInput(field, f"unknown field(s) {unknown}; known: {list(allowed)}")
    return raw


def parse_online_section(raw: Any) -> OnlineRequirements:
    """Validate a suite's ``online`` section; every problem names its field (``online.…``)."""
    raw = _mapping(raw, "online", _KEYS)
    confidence = _finite(raw.get("confidence", 0.95), "online.confidence", 0.5, 0.999)
    max_age = raw.get("max_age_days")
    if max_age is not None:
        max_age = _finite(max_age, "online.max_age_days", 0)
        if max_age == 0:
            raise InvalidInput("online.max_age_days", "must be > 0")
    guardrails = []
    entries = raw.get("guardrails", [])
    if not isinstance(entries, list):
        raise InvalidInput("online.guardrails", "must be a list")
    for i, entry in enumerate(entries):
        guardrails.append(GuardrailConfig.from_dict(entry, f"online.guardrails[{i}]"))
    shadow = []
    entries = raw.get("shadow", [])
    if not isinstance(entries, list):
        raise InvalidInput("online.shadow", "must be a list")
    for i, entry in enumerate(entries):
        where = f"online.shadow[{i}]"
        entry = _mapping(entry, where, ("metric", "min", "max"))
        if entry.get("metric") not in SHADOW_METRICS:
            raise InvalidInput(f"{where}.metric", f"must be one of {', '.join(SHADOW_METRICS)}, got {entry.get('metric')!r}")
        kinds = [k for k in ("min", "max") if k in entry]
        if len(kinds) != 1:
            raise InvalidInput(where, "needs exactly one of min, max")
        shadow.append(ShadowRule(entry["metric"], kinds[0], _finite(entry[kinds[0]], f"{where}.{kinds[0]}")))
    if not guardrails and not shadow:
        raise InvalidInput("online", "needs at least one guardrail or shadow rule")
    return OnlineRequirements(tuple(guardrails), tuple(shadow), confidence, max_age)


@dataclass(frozen=True)
class AnalysisEvidence:
    """The latest analysis of one experiment the candidate took part in, as the gate sees it."""

    experiment_id: str
    mode: str  # ab | shadow
    #: the candidate's arm name (ab) or "candidate" (shadow)
    arm: str
    #: the model version of the control arm (ab) or the production side (shadow)
    control_model: str
    analysis_id: int | None
    status: str  # valid | invalid | none
    status_reason: str
    created_at: datetime | None
    result: Mapping[str, Any] | None


def _age_days(created_at: datetime, now: datetime) -> float:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return (now - created_at).total_seconds() / 86400


def _usable(evidence: Sequence[AnalysisEvidence], mode: str, baseline: str, req: OnlineRequirements,
            now: datetime) -> tuple[AnalysisEvidence | None, str]:
    """The newest usable analysis of the given mode, or why there is none."""
    of_mode = [e for e in evidence if e.mode == mode]
    what = "shadow experiment" if mode == "shadow" else "A/B experiment"
    if not of_mode:
        return None, f"no {what} has this model version as its candidate"
    problems = []
    for e in sorted(of_mode, key=lambda e: (e.created_at is not None, e.created_at or datetime.min.replace(tzinfo=UTC)),
                    reverse=True):
        if e.status == "none" or e.result is None:
            problems.append(f"{e.experiment_id}: not analysed yet")
        elif e.status != "valid":
            problems.append(f"{e.experiment_id}: latest analysis #{e.analysis_id} is {e.status} ({e.status_reason})")
        elif e.control_model != baseline:
            problems.append(f"{e.experiment_id}: its control is {e.control_model}, not the current baseline {baseline}")
        elif req.max_age_days is not None and e.created_at is not None and _age_days(e.created_at, now) > req.max_age_days:
            problems.append(f"{e.experiment_id}: analysis #{e.analysis_id} is {_age_days(e.created_at, now):.1f} days old "
                            f"(max_age_days {req.max_age_days:g})")
        else:
            return e, ""
    return None, "; ".join(problems)


def _reason(rule: str, outcome: str, message: str, **extra) -> dict[str, Any]:
    return {"rule": rule, "outcome": outcome, "message": message, **extra}


def _guardrail_reasons(req: OnlineRequirements, e: AnalysisEvidence) -> list[dict]:
    result = e.result or {}  # a usable analysis (see _usable) has a result
    cfg = ExperimentConfig.from_dict(result["config"])
    if cfg.confidence < req.confidence:
        return [_reason(g.describe(), NO_DECISION, f"{e.experiment_id} was analysed at {cfg.confidence:.0%} confidence; "
                        f"the suite requires {req.confidence:.0%}", experiment=e.experiment_id) for g in req.guardrails]
    blockers = list(result.get("untrustworthy_reasons") or []) if not result.get("trustworthy", False) else []
    reasons = []
    for g in req.guardrails:
        verdict = guardrail_verdict(g, e.arm, cfg, (result.get("metrics") or {}).get(g.metric), blockers)
        reasons.append(_reason(verdict["rule"], verdict["outcome"], verdict["message"], experiment=e.experiment_id,
                               analysis_id=e.analysis_id, arm=e.arm, estimate=verdict["estimate"],
                               interval=verdict["interval"], interval_kind=verdict["interval_kind"]))
    return reasons


def _shadow_reasons(req: OnlineRequirements, e: AnalysisEvidence) -> list[dict]:
    metrics = (e.result or {}).get("metrics") or {}
    reasons = []
    for rule in req.shadow:
        value = metrics.get(rule.metric)
        extra = {"experiment": e.experiment_id, "analysis_id": e.analysis_id, "observed": value}
        if not isinstance(value, int | float) or not math.isfinite(value):
            reasons.append(_reason(rule.describe(), NO_DECISION, f"{rule.metric} is missing or undefined in {e.experiment_id}", **extra))
            continue
        ok = value >= rule.threshold if rule.kind == "min" else value <= rule.threshold
        reasons.append(_reason(rule.describe(), PASS if ok else FAIL, f"{value:.4g} in {e.experiment_id}", **extra))
    return reasons


def decide_online(requirements: Sequence[tuple[str, OnlineRequirements]], evidence: Sequence[AnalysisEvidence],
                  baseline: str | None, now: datetime | None = None) -> tuple[str, list[dict]]:
    """The online decision of one model version.

    ``requirements``: ``(suite_key, OnlineRequirements)`` of its release-blocking suites that have an
    ``online`` section; ``evidence``: the latest analysis of every experiment it is the candidate of;
    ``baseline``: the model name's promoted version (``None`` for a first version). Returns the decision
    and its reasons (see the module docstring).
    """
    now = now or datetime.now(UTC)
    if not requirements:
        return NOT_REQUIRED, [_reason("online requirements", NOT_REQUIRED, "no release-blocking suite requires online evidence")]
    if baseline is None:
        return NOT_APPLICABLE, [_reason("online requirements", NOT_APPLICABLE,
                                        "no baseline exists yet for this model name (first version): nothing to compare online")]
    reasons: list[dict] = []
    for suite_key, req in requirements:
        for mode, rules, evaluate in (("ab", req.guardrails, _guardrail_reasons), ("shadow", req.shadow, _shadow_reasons)):
            if not rules:
                continue
            chosen, why = _usable(evidence, mode, baseline, req, now)
            if chosen is None:
                reasons.extend(_reason(r.describe(), NO_DECISION, why, suite=suite_key) for r in rules)
                continue
            reasons.extend({**r, "suite": suite_key} for r in evaluate(req, chosen))
    outcomes = {r["outcome"] for r in reasons}
    decision = FAIL if FAIL in outcomes else NO_DECISION if NO_DECISION in outcomes or PASS not in outcomes else PASS
    return decision, reasons
