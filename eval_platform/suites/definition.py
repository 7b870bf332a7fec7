"""Metric suites: a versioned set of metric definitions, slices, comparison settings and gate rules.

A suite definition is plain JSON/YAML::

    suite_id: breast-cancer-release
    purpose: release_blocking            # or exploratory: computed and compared, never gates
    task_type: binary_classification
    metrics:
      - metric: roc_auc@1                # name@version from the metric catalog
      - {name: f1_at_0.5, metric: f1@1, params: {threshold: 0.5}}
    slices: [size_bucket]                # dataset columns every metric is also computed on
    min_slice_size: 30                   # smaller slices are reported but flagged
    comparison: {bootstrap_resamples: 1000, confidence: 0.95, seed: 0}
    gate:
      require_baseline: false
      approvers: [alice]
      rules:
        - {metric: roc_auc, min: 0.95}
        - {metric: roc_auc, non_inferiority: 0.01, mode: strict}
        - {metric: fpr, slice: segment, min_delta: -0.01}      # guardrail on every segment
      stale_baseline: no_decision        # or reevaluate: evaluate the baseline on the candidate's inputs
      power: 0.8                         # the power each rule's MDE and examples needed are for
      multiple_comparisons: none         # or holm / bh: across a non_inferiority guardrail's slice values
      # require_power: 0.8               # optional: a rule passing with less power against its margin is no_decision
    online:                              # optional: online evidence a release needs (online/requirements.py)
      guardrails: [{metric: latency_ms, direction: lower, tolerance: 0.05}]
    canary:                              # optional: the canary check's bounds (suites/canary_config.py)
      bounds: {roc_auc: 0.02}            # largest |current - reference| on golden and canary datasets
    review:                              # optional: a judged run's review queue (suites/review_config.py)
      {reference_metric: exact_match, threshold: 0.5, audit_sample: 10, seed: 0}

A generation suite's ``llm`` section adds budgets and judges (see :class:`~eval_platform.suites.config.LlmConfig`)::

    llm:
      judge: {endpoint: {...}, model: rule-judge-1, model_version: "1"}    # for judge_score@1 metrics
      judge_samples: 3                                                    # verdicts per judged example
      judge_sample: {size: 40, strata: {metric: token_f1, bins: 3}, seed: 0}   # judge a stratified sample
      pairwise_judge: {endpoint: {...}, model: rule-judge-1, model_version: "1", output: pairwise}
      budget: {candidate: {max_tokens: 20000}, judge: {max_cost: 2.0}}

What may be written is :class:`~eval_platform.suites.config.SuiteConfig` (a pydantic model, whose JSON schema
documents it); :func:`parse_suite` validates it into the :class:`SuiteDefinition` the platform runs.

Normalising the definition (defaults filled in, metric references resolved) before hashing it means two
spellings of the same suite are one version, and any real change is a new version.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eval_platform.gates.rules import GateRule
from eval_platform.metrics.base import MetricDefinition
from eval_platform.suites.config import SuiteConfig


@dataclass(frozen=True)
class SuiteMetric:
    """One metric of a suite: the name its rules and reports use, its catalog definition, every parameter."""

    name: str
    definition: MetricDefinition
    params: dict[str, Any]
    #: False: compared with the baseline by its point delta only (no paired bootstrap, no interval)
    bootstrap: bool = True

    def as_json(self) -> dict:
        entry: dict[str, Any] = {"name": self.name, "metric": self.definition.key, "params": self.params}
        if not self.bootstrap:  # written only when off: the hash of a suite that never says it is unchanged
            entry["bootstrap"] = False
        return entry


@dataclass(frozen=True)
class SuiteDefinition:
    """A validated, normalised suite: what runs compute, gates decide on, and (as :meth:`as_json`) what is
    hashed and stored for the version."""

    suite_id: str
    purpose: str
    task_type: str
    metrics: tuple[SuiteMetric, ...]
    slices: tuple[str, ...]
    min_slice_size: int
    bootstrap_resamples: int
    confidence: float
    seed: int
    rules: tuple[GateRule, ...]
    approvers: tuple[str, ...]
    require_baseline: bool
    description: str = ""
    #: ``no_decision``: a stale baseline stops the gate; ``reevaluate``: the baseline model is evaluated
    #: on the candidate's dataset and suite versions first, then compared.
    stale_baseline: str = "no_decision"
    #: LLM candidates and judges: ``{budget: {candidate: {max_tokens, max_cost}, judge: {...}},
    #: prices: {models: {name: {input_per_1k, output_per_1k}}}, concurrency: 8, judge: {...},
    #: judge_samples: n, judge_sample: {size, strata, seed, ...}, pairwise_judge: {...}, pairwise_samples: n}``
    llm: dict | None = None
    #: online evidence a release needs (eval_platform.online.requirements): guardrails, shadow rules
    online: dict | None = None
    #: the canary check's bounds on golden and canary datasets (eval_platform.suites.canary_config): ``{bounds: {metric: bound}}``
    canary: dict | None = None
    #: the power the rules' figures are for, and the slice guardrails' correction (``none``, ``holm``, ``bh``)
    target_power: float = 0.8
    multiple_comparisons: str = "none"
    #: a rule passing with less power than this against its margin is ``no_decision`` (None: power only reported)
    require_power: float | None = None
    #: which judged examples go to the review queue (eval_platform.suites.review_config); None: the defaults
    review: dict | None = None

    def metric(self, name: str) -> SuiteMetric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def as_json(self) -> dict:
        """The normalised definition: what is hashed for the version and stored in ``metric_defs``."""
        return {
            "suite_id": self.suite_id,
            "purpose": self.purpose,
            "task_type": self.task_type,
            "description": self.description,
            "metrics": [m.as_json() for m in self.metrics],
            "slices": list(self.slices),
            "min_slice_size": self.min_slice_size,
            "comparison": {"bootstrap_resamples": self.bootstrap_resamples, "confidence": self.confidence, "seed": self.seed},
            **({"llm": self.llm} if self.llm else {}),
            **({"online": self.online} if self.online else {}),
            **({"canary": self.canary} if self.canary else {}),
            **({"review": self.review} if self.review else {}),
            "gate": {
                "require_baseline": self.require_baseline,
                "stale_baseline": self.stale_baseline,
                "approvers": list(self.approvers),
                "rules": [rule.as_json() for rule in self.rules],
                # written only when set: the hash of a suite that never says them is unchanged
                **({"power": self.target_power} if self.target_power != 0.8 else {}),
                **({"multiple_comparisons": self.multiple_comparisons} if self.multiple_comparisons != "none" else {}),
                **({"require_power": self.require_power} if self.require_power is not None else {}),
            },
        }


def parse_suite(raw: Mapping[str, Any]) -> SuiteDefinition:
    """Validate a suite definition; every problem names the field it is in."""
    return definition_of(SuiteConfig.from_raw(raw))


def definition_of(config: SuiteConfig) -> SuiteDefinition:
    """The normalised definition of a validated suite (defaults filled in, metric references resolved)."""
    return SuiteDefinition(
        suite_id=config.suite_id, purpose=config.purpose.value, task_type=config.task_type,
        metrics=tuple(SuiteMetric(m.name, m.definition, m.params, bool(m.bootstrap)) for m in config.metrics), slices=tuple(config.slices),
        min_slice_size=config.min_slice_size, bootstrap_resamples=config.comparison.bootstrap_resamples,
        confidence=config.comparison.confidence, seed=config.comparison.seed, rules=config.gate.rules,
        approvers=tuple(sorted(set(config.gate.approvers))), require_baseline=config.gate.require_baseline,
        description=config.description, stale_baseline=config.gate.stale_baseline,
        llm=config.llm.as_json() if config.llm is not None else None, online=config.online,
        canary=config.canary, target_power=config.gate.power, multiple_comparisons=config.gate.multiple_comparisons,
        require_power=config.gate.require_power, review=config.review,
    )


@dataclass(frozen=True)
class _StoredVersion:
    """A registered suite version, known by its key and content hash (its stored definition never changes)."""

    key: str
    content_hash: str
    stored: Mapping[str, Any] = field(compare=False, hash=False)


@functools.lru_cache(maxsize=256)
def _parsed(version: _StoredVersion) -> SuiteDefinition:
    return parse_suite(version.stored)


def stored_suite_definition(key: str, content_hash: str, stored: Mapping[str, Any]) -> SuiteDefinition:
    """The definition of a registered suite version, parsed once per version and hash: a version is
    immutable, and a gate decision alone reads its suite several times. The definition returned is shared
    between callers: read it, never change it."""
    return _parsed(_StoredVersion(key, content_hash, stored))
