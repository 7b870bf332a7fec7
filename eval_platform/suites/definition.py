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
    online:                              # optional: online evidence a release needs (online/requirements.py)
      guardrails: [{metric: latency_ms, direction: lower, tolerance: 0.05}]

A generation suite's ``llm`` section adds budgets and judges (see :func:`_check_llm_section`)::

    llm:
      judge: {endpoint: {...}, model: rule-judge-1, model_version: "1"}    # for judge_score@1 metrics
      judge_samples: 3                                                    # verdicts per judged example
      judge_sample: {size: 40, strata: {metric: token_f1, bins: 3}, seed: 0}   # judge a stratified sample
      pairwise_judge: {endpoint: {...}, model: rule-judge-1, model_version: "1", output: pairwise}
      budget: {candidate: {max_tokens: 20000}, judge: {max_cost: 2.0}}

Normalising the definition (defaults filled in, metric references resolved) before hashing it means two
spellings of the same suite are one version, and any real change is a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eval_platform.core.errors import InvalidInput
from eval_platform.core.keys import validate_id
from eval_platform.core.tasks import PURPOSES, get_task_type
from eval_platform.core.yamlsafe import check_structure
from eval_platform.gates.rules import GateRule, parse_rules
from eval_platform.llm.budget import PriceTable, SuiteBudget
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.base import MetricDefinition
from eval_platform.metrics.catalog import get_metric
from eval_platform.online.requirements import parse_online_section

_TOP_LEVEL = {"suite_id", "purpose", "task_type", "metrics", "slices", "min_slice_size", "comparison", "gate", "description",
              "llm", "online"}


@dataclass(frozen=True)
class SuiteMetric:
    name: str
    definition: MetricDefinition
    params: dict[str, Any]

    def as_json(self) -> dict:
        return {"name": self.name, "metric": self.definition.key, "params": self.params}


@dataclass(frozen=True)
class SuiteDefinition:
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

    @property
    def release_blocking(self) -> bool:
        return self.purpose == "release_blocking"

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
            "gate": {
                "require_baseline": self.require_baseline,
                "stale_baseline": self.stale_baseline,
                "approvers": list(self.approvers),
                "rules": [rule.as_json() for rule in self.rules],
            },
        }


def _require(mapping: Mapping, key: str, field: str, kind: type | tuple[type, ...]):
    if key not in mapping:
        raise InvalidInput(field, "is required")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidInput(field, f"must be {names}, got {value!r}")
    return value


def parse_suite(raw: Mapping[str, Any]) -> SuiteDefinition:
    """Validate a suite definition; every problem names the field it is in."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("suite", "must be a mapping")
    # a definition built by a caller's own YAML loader may share nodes (aliases): bound what normalising and
    # hashing it would walk, so an alias bomb is refused here rather than expanded
    check_structure(raw, field="suite")
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise InvalidInput("suite", f"unknown field(s) {unknown}; known: {sorted(_TOP_LEVEL)}")
    suite_id = validate_id(_require(raw, "suite_id", "suite_id", str), "suite_id")
    purpose = _require(raw, "purpose", "purpose", str)
    if purpose not in PURPOSES:
        raise InvalidInput("purpose", f"must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    task_type = get_task_type(_require(raw, "task_type", "task_type", str)).name

    entries = _require(raw, "metrics", "metrics", list)
    if not entries:
        raise InvalidInput("metrics", "a suite needs at least one metric")
    metrics: list[SuiteMetric] = []
    for index, entry in enumerate(entries):
        field = f"metrics[{index}]"
        if isinstance(entry, str):
            entry = {"metric": entry}
        if not isinstance(entry, Mapping):
            raise InvalidInput(field, "must be name@version or a mapping with 'metric'")
        extra = sorted(set(entry) - {"name", "metric", "params"})
        if extra:
            raise InvalidInput(field, f"unknown field(s) {extra}")
        try:
            definition = get_metric(_require(entry, "metric", f"{field}.metric", str))
        except InvalidInput as error:
            raise InvalidInput(f"{field}.metric", error.problem) from None
        if task_type not in definition.task_types:
            raise InvalidInput(f"{field}.metric", f"{definition.key} does not apply to task type {task_type}")
        params = definition.resolve_params(entry.get("params"))
        name = entry.get("name") or definition.name
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{field}.name", "must be a non-empty string")
        if any(m.name == name for m in metrics):
            raise InvalidInput(f"{field}.name", f"duplicate metric name {name!r}; give each entry a distinct name")
        metrics.append(SuiteMetric(name, definition, params))

    slices = raw.get("slices", [])
    if not isinstance(slices, list) or not all(isinstance(s, str) and s for s in slices):
        raise InvalidInput("slices", "must be a list of column names")
    min_slice_size = raw.get("min_slice_size", 30)
    if isinstance(min_slice_size, bool) or not isinstance(min_slice_size, int) or min_slice_size < 1:
        raise InvalidInput("min_slice_size", f"must be a positive integer, got {min_slice_size!r}")

    comparison = raw.get("comparison", {}) or {}
    if not isinstance(comparison, Mapping) or set(comparison) - {"bootstrap_resamples", "confidence", "seed"}:
        raise InvalidInput("comparison", "may only set bootstrap_resamples, confidence and seed")
    resamples = comparison.get("bootstrap_resamples", 1000)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or not 100 <= resamples <= 100_000:
        raise InvalidInput("comparison.bootstrap_resamples", f"must be an integer in [100, 100000], got {resamples!r}")
    confidence = comparison.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise InvalidInput("comparison.confidence", f"must be in [0.5, 1), got {confidence!r}")
    seed = comparison.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("comparison.seed", f"must be a non-negative integer, got {seed!r}")

    gate = raw.get("gate", {}) or {}
    if not isinstance(gate, Mapping) or set(gate) - {"rules", "approvers", "require_baseline", "stale_baseline"}:
        raise InvalidInput("gate", "may only set rules, approvers, require_baseline and stale_baseline")
    stale_baseline = gate.get("stale_baseline", "no_decision")
    if stale_baseline not in ("no_decision", "reevaluate"):
        raise InvalidInput("gate.stale_baseline", f"must be no_decision or reevaluate, got {stale_baseline!r}")
    approvers = gate.get("approvers", [])
    if not isinstance(approvers, list) or not all(isinstance(a, str) and a for a in approvers):
        raise InvalidInput("gate.approvers", "must be a list of names")
    require_baseline = gate.get("require_baseline", True)
    if not isinstance(require_baseline, bool):
        raise InvalidInput("gate.require_baseline", "must be true or false")
    rules = parse_rules(gate.get("rules", []), {m.name: m.definition for m in metrics})
    for index, rule in enumerate(rules):
        if rule.slice and rule.slice not in slices:
            raise InvalidInput(f"gate.rules[{index}].slice", f"{rule.slice!r} is not one of the suite's slices {slices}")
    if purpose == "release_blocking" and not rules:
        raise InvalidInput("gate.rules", "a release-blocking suite needs at least one gate rule")

    llm = raw.get("llm")
    if llm is not None:
        llm = _check_llm_section(llm, metrics)
    _check_judge_pins(metrics, llm)
    online = raw.get("online")
    if online is not None:

        online = parse_online_section(online).as_json()
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("description", "must be a string")
    return SuiteDefinition(
        suite_id=suite_id, purpose=purpose, task_type=task_type, metrics=tuple(metrics), slices=tuple(slices),
        min_slice_size=min_slice_size, bootstrap_resamples=resamples, confidence=float(confidence), seed=seed,
        rules=rules, approvers=tuple(sorted(set(approvers))), require_baseline=require_baseline, description=description,
        stale_baseline=stale_baseline, llm=llm, online=online,
    )


def _check_judge_pins(metrics: list[SuiteMetric], llm: dict | None) -> None:
    """A metric scored by the suite's judge (``judge_score``: ``llm.judge``; ``judge_preference``:
    ``llm.pairwise_judge``) must pin exactly that judge (when it pins one at all: an unpinned judge metric
    is accepted here and blocks the gate)."""

    for column, section in (("judge_score", "judge"), ("judge_preference", "pairwise_judge")):
        judged = [m for m in metrics if column in m.definition.required_columns]
        if not judged:
            continue
        if not llm or not llm.get(section):
            raise InvalidInput(f"llm.{section}", f"metric(s) {[m.name for m in judged]} need the suite's {section} configuration")
        pin = JudgeConfig.from_dict(llm[section]).pin()
        for metric in judged:
            for key in ("judge_model", "judge_prompt_version"):
                given = metric.params.get(key)
                if given is not None and given != pin[key]:
                    raise InvalidInput(f"{metric.name}.params.{key}", f"pins {given!r} but the suite's {section} is {pin[key]!r}")


_LLM_KEYS = ("budget", "prices", "concurrency", "judge", "judge_samples", "judge_sample", "pairwise_judge",
             "pairwise_samples")


def _check_judge(value, section: str, output: str | None = None) -> None:

    try:
        config = JudgeConfig.from_dict(value)
    except InvalidInput as error:
        # JudgeConfig names its fields judge.*; the suite's field is llm.<section>.*
        inner = error.field.removeprefix("judge").lstrip(".") if error.field.startswith("judge") else error.field
        raise InvalidInput(f"llm.{section}" + (f".{inner}" if inner else ""), error.problem) from None
    if output == "pairwise" and config.output != "pairwise":
        raise InvalidInput(f"llm.{section}.output", f"must be 'pairwise' for a pairwise judge, got {config.output!r}")
    if output is None and config.output == "pairwise":
        raise InvalidInput(f"llm.{section}.output", "a pairwise judge goes in llm.pairwise_judge")


def _check_samples(llm: Mapping, key: str) -> int:
    samples = llm.get(key, 1)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 20:
        raise InvalidInput(f"llm.{key}", f"must be an integer in [1, 20], got {samples!r}")
    return samples


def _check_judge_sample(raw, metrics: list[SuiteMetric]) -> dict:
    """``llm.judge_sample``: judge a stratified sample instead of every example.

    ``{size, strata, seed, min_per_stratum, confidence}``; ``strata`` is absent (one stratum: a simple
    random sample), ``{column: NAME}`` (a dataset column) or ``{metric: NAME, bins: [cut points] | N}``
    (a cheaper metric of the suite with per-example values, cut at the points or into ``N`` equal-count
    quantile bins; default ``[0.5]``, which splits a 0/1 metric such as exact match)."""
    field = "llm.judge_sample"
    if not isinstance(raw, Mapping):
        raise InvalidInput(field, "must be a mapping with size, strata, seed, min_per_stratum and confidence")
    unknown = sorted(set(raw) - {"size", "strata", "seed", "min_per_stratum", "confidence"})
    if unknown:
        raise InvalidInput(field, f"unknown field(s) {unknown}; known: size, strata, seed, min_per_stratum, confidence")
    size = _require(raw, "size", f"{field}.size", int)
    if size < 1:
        raise InvalidInput(f"{field}.size", f"must be an integer >= 1, got {size!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"{field}.seed", f"must be a non-negative integer, got {seed!r}")
    minimum = raw.get("min_per_stratum", 2)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise InvalidInput(f"{field}.min_per_stratum", f"must be an integer >= 1, got {minimum!r}")
    confidence = raw.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise InvalidInput(f"{field}.confidence", f"must be in [0.5, 1), got {confidence!r}")
    strata = raw.get("strata")
    if strata is not None:
        if not isinstance(strata, Mapping) or len(set(strata) & {"column", "metric"}) != 1:
            raise InvalidInput(f"{field}.strata", "must be {column: NAME} or {metric: NAME, bins: [cut points] or N}")
        if "column" in strata:
            if set(strata) != {"column"} or not isinstance(strata["column"], str) or not strata["column"]:
                raise InvalidInput(f"{field}.strata.column", "must be a column name (and the only key of strata)")
            strata = {"column": strata["column"]}
        else:
            unknown = sorted(set(strata) - {"metric", "bins"})
            if unknown:
                raise InvalidInput(f"{field}.strata", f"unknown field(s) {unknown}; a metric's strata set metric and bins")
            metric = next((m for m in metrics if m.name == strata["metric"]), None)
            if metric is None:
                raise InvalidInput(f"{field}.strata.metric", f"{strata['metric']!r} is not a metric of this suite; "
                                   f"suite metrics: {sorted(m.name for m in metrics)}")
            if metric.definition.per_unit is None or metric.definition.requires_judge or metric.definition.unit != "example":
                raise InvalidInput(f"{field}.strata.metric", f"{metric.name} has no per-example value to stratify by "
                                   "(use a cheaper reference metric such as exact_match or token_f1)")
            bins = strata.get("bins", [0.5])
            if isinstance(bins, bool) or not (
                    (isinstance(bins, int) and 1 <= bins <= 20)
                    or (isinstance(bins, list) and bins and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bins)
                        and all(a < b for a, b in zip(bins, bins[1:])))):
                raise InvalidInput(f"{field}.strata.bins", f"must be increasing cut points or a number of quantile bins in [1, 20], got {bins!r}")
            strata = {"metric": metric.name, "bins": bins}
    return {"size": size, "strata": strata, "seed": seed, "min_per_stratum": minimum, "confidence": float(confidence)}


def _check_llm_section(llm, metrics: list[SuiteMetric]) -> dict:

    if not isinstance(llm, Mapping) or set(llm) - set(_LLM_KEYS):
        raise InvalidInput("llm", f"may only set {', '.join(_LLM_KEYS)}")
    if llm.get("judge") is not None:
        _check_judge(llm["judge"], "judge")
    samples = _check_samples(llm, "judge_samples")
    if llm.get("pairwise_judge") is not None:
        _check_judge(llm["pairwise_judge"], "pairwise_judge", output="pairwise")
    pairwise_samples = _check_samples(llm, "pairwise_samples")
    sample = None
    if llm.get("judge_sample") is not None:
        if llm.get("judge") is None:
            raise InvalidInput("llm.judge_sample", "samples what llm.judge judges; the suite has no llm.judge")
        sample = _check_judge_sample(llm["judge_sample"], metrics)
    try:
        SuiteBudget.from_dict(llm.get("budget"))
        PriceTable.from_dict(llm.get("prices"))
    except InvalidInput as error:
        raise InvalidInput(f"llm.{error.field}", error.problem) from None
    concurrency = llm.get("concurrency", 8)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise InvalidInput("llm.concurrency", f"must be an integer in [1, 256], got {concurrency!r}")
    out = {"budget": llm.get("budget") or {}, "prices": llm.get("prices") or {}, "concurrency": concurrency}
    if llm.get("judge") is not None:
        out.update(judge=dict(llm["judge"]), judge_samples=samples)
    if sample is not None:
        out["judge_sample"] = sample
    if llm.get("pairwise_judge") is not None:
        out.update(pairwise_judge=dict(llm["pairwise_judge"]), pairwise_samples=pairwise_samples)
    return out
