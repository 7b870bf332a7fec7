"""The metric-suite configuration as pydantic models: what a suite author may write, and its JSON schema.

:class:`SuiteConfig` accepts and refuses exactly what the platform always did, with the same field paths and
wording (``metrics[1].metric``, ``gate.rules[0].slice``, ``llm.judge_sample.strata.bins``...):
:meth:`SuiteConfig.from_raw` reports the first of pydantic's errors as :class:`InvalidInput`. Fields are declared
(and so validated) in the order the checks were always made, and a field's validator raises its first
problem only, so with several problems the one reported is still the first one met, as before.

A check that needs an earlier section (a metric applies to the suite's task type, a gate rule names one of
the suite's metrics, a judge sample is stratified by one of them) reads the fields validated so far, which
the suite hands to such a section while it validates it (:func:`_earlier`). When one of those fields was
refused, the section is not validated at all: that earlier refusal is the one reported.

The rules of a gate are parsed by :func:`eval_platform.gates.rules.parse_rules`, the ``online`` section by
:func:`eval_platform.online.requirements.parse_online_section`, judges by :class:`JudgeConfig` and budgets by
:class:`SuiteBudget` / :class:`PriceTable`; their refusals keep the fields they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from eval_platform.core.keys import ID_MAX_LENGTH, ID_PATTERN, validate_id
from eval_platform.core.states import SuitePurpose
from eval_platform.core.tasks import PURPOSES, TASK_TYPES, get_task_type
from eval_platform.core.yamlsafe import check_structure
from eval_platform.gates.rules import GateRule, parse_rules
from eval_platform.online.requirements import parse_online_section
from eval_platform.suites.canary_config import parse_canary_section
from eval_platform.suites.llm_config import LlmConfig, _check_judge_pins
from eval_platform.suites.metric_config import SuiteMetricConfig
from eval_platform.suites.refusals import (
    EARLIER,
    NEEDS,
    EarlierFields,
    Section,
    absent_list,
    absent_section,
    confidence,
    delegated,
    earlier,
    first_problem,
    int_in,
    non_empty_strings,
    of_type,
    refusal,
)
from eval_platform.suites.review_config import parse_review_section

# comparison ------------------------------------------------------------------------------------------------

class ComparisonConfig(Section):
    """How a candidate is compared with its baseline: the paired bootstrap's resamples, confidence and seed."""

    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, comparison: Any) -> dict:
        return cls.only_known(comparison or {})

    @field_validator("bootstrap_resamples", mode="before")
    @classmethod
    def _resamples(cls, value: Any) -> int:
        return int_in(value, 100, 100_000, "must be an integer in [100, 100000]")

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_confidence(cls, value: Any) -> float:
        return confidence(value)

    @field_validator("seed", mode="before")
    @classmethod
    def _a_seed(cls, value: Any) -> int:
        return int_in(value, 0, None, "must be a non-negative integer")


# gate ------------------------------------------------------------------------------------------------------

class GateRuleSpec(BaseModel):
    """What a gate rule looks like (for the schema: :func:`eval_platform.gates.rules.parse_rules` decides).

    Exactly one of ``min``, ``max``, ``min_delta``, ``min_relative_delta``, ``non_inferiority`` and
    ``max_regressions``; ``mode`` only on a ``non_inferiority`` rule; ``slice`` makes it a guardrail checked on
    every value of that slice column of the suite."""

    model_config = ConfigDict(extra="forbid", title="GateRule")

    metric: str = Field(description="the name of one of the suite's metrics")
    min: float | SkipJsonSchema[None] = None
    max: float | SkipJsonSchema[None] = None
    min_delta: float | SkipJsonSchema[None] = None
    min_relative_delta: float | SkipJsonSchema[None] = None
    non_inferiority: float | SkipJsonSchema[None] = Field(None, ge=0)
    max_regressions: int | SkipJsonSchema[None] = Field(None, ge=0)
    mode: Literal["strict", "lenient"] = "strict"
    min_examples: int = Field(0, ge=0)
    slice: str = ""


class DriftRuleSpec(BaseModel):
    """A drift rule (for the schema): exactly one of ``drift`` (the dataset version against its previous
    version) and ``prediction_drift`` (the candidate's scores against the baseline's), naming the measure, and
    ``max``, its bound."""

    model_config = ConfigDict(extra="forbid", title="DriftRule")

    drift: Literal["psi", "js", "ks_statistic"] | SkipJsonSchema[None] = None
    prediction_drift: Literal["psi", "js", "ks_statistic"] | SkipJsonSchema[None] = None
    max: float = Field(ge=0)


def _rules_schema() -> dict[str, Any]:
    return {"type": "array", "items": {"anyOf": [GateRuleSpec.model_json_schema(), DriftRuleSpec.model_json_schema()]}}


class GateConfig(Section):
    """The release gate: its rules on the suite's metrics, who approves overrides, and what a missing or
    stale baseline means."""

    stale_baseline: Literal["no_decision", "reevaluate"] = "no_decision"
    approvers: list[str] = Field(default_factory=list)
    require_baseline: bool = True
    rules: Annotated[tuple[GateRule, ...], SkipValidation, WithJsonSchema(_rules_schema())] = Field(
        default_factory=absent_list, validate_default=True)
    power: float = Field(0.8, ge=0.5, lt=1, description="the power each rule's minimum detectable effect and examples needed are for")
    multiple_comparisons: Literal["none", "holm", "bh"] = Field(
        "none", description="correction across a non_inferiority guardrail's slice values (eval_platform.gates.rules)")
    require_power: float | SkipJsonSchema[None] = Field(
        None, ge=0.5, lt=1, description="a rule passing with less power than this against its margin is no_decision")

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, gate: Any) -> dict:
        return cls.only_known(gate or {}, ("rules", "approvers", "require_baseline", "stale_baseline", "power",
                                           "multiple_comparisons", "require_power"))

    @field_validator("power", "require_power", mode="before")
    @classmethod
    def _a_power(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value < 1:
            raise refusal(f"must be a number in [0.5, 1), got {value!r}")
        return float(value)

    @field_validator("multiple_comparisons", mode="before")
    @classmethod
    def _a_correction(cls, value: Any) -> str:
        if value not in ("none", "holm", "bh"):
            raise refusal(f"must be none, holm or bh, got {value!r}")
        return value

    @field_validator("stale_baseline", mode="before")
    @classmethod
    def _a_stale_baseline_policy(cls, value: Any) -> str:
        if value not in ("no_decision", "reevaluate"):
            raise refusal(f"must be no_decision or reevaluate, got {value!r}")
        return value

    @field_validator("approvers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> list[str]:
        return non_empty_strings(value, "must be a list of names")

    @field_validator("require_baseline", mode="before")
    @classmethod
    def _a_bool(cls, value: Any) -> bool:
        if not isinstance(value, bool):
            raise refusal("must be true or false")
        return value

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_on_the_suite(cls, value: Any) -> tuple[GateRule, ...]:
        suite = earlier().fields
        with delegated():
            rules = parse_rules(value, {m.name: m.definition for m in suite["metrics"]})
        for index, rule in enumerate(rules):
            if rule.slice and rule.slice not in suite["slices"]:
                raise refusal(f"{rule.slice!r} is not one of the suite's slices {suite['slices']}", f"gate.rules[{index}].slice")
        _intervals_where_needed(rules, suite["metrics"])
        if suite["purpose"] == SuitePurpose.RELEASE_BLOCKING and not rules:
            raise refusal("a release-blocking suite needs at least one gate rule", "gate.rules")
        return rules


def _intervals_where_needed(rules: tuple[GateRule, ...], metrics: list) -> None:
    """A non-inferiority rule decides on the delta's interval: refused on a metric compared by its point delta
    only (``bootstrap: false``), whose comparison has none."""
    point_only = {m.name: index for index, m in enumerate(metrics) if m.bootstrap is False}
    for index, rule in enumerate(rules):
        if rule.kind == "non_inferiority" and rule.metric in point_only:
            raise refusal(f"{rule.metric} is compared without an interval (metrics[{point_only[rule.metric]}].bootstrap "
                          "is false): a non_inferiority rule needs one; use min_delta", f"gate.rules[{index}].non_inferiority")


# the suite -------------------------------------------------------------------------------------------------

class SuiteConfig(Section):
    """A metric suite as its author writes it (JSON or YAML); :func:`eval_platform.suites.definition.parse_suite`
    turns it into the :class:`~eval_platform.suites.definition.SuiteDefinition` the platform runs."""

    model_config = ConfigDict(title="MetricSuite")

    suite_id: str = Field(json_schema_extra={"pattern": ID_PATTERN, "maxLength": ID_MAX_LENGTH})
    purpose: SuitePurpose = Field(description="release_blocking suites gate releases; exploratory ones never do")
    task_type: str = Field(json_schema_extra={"enum": list(TASK_TYPES)})
    metrics: list[SuiteMetricConfig] = Field(min_length=1)
    slices: list[str] = Field(default_factory=list, description="dataset columns every metric is also computed on")
    min_slice_size: int = Field(30, ge=1, description="smaller slices are reported but flagged")
    comparison: ComparisonConfig = Field(default_factory=absent_section, validate_default=True)
    gate: GateConfig = Field(default_factory=absent_section, validate_default=True)
    llm: LlmConfig | None = Field(None, validate_default=True)
    online: dict[str, Any] | None = Field(None, description="online evidence a release needs (guardrails, shadow rules)")
    description: str = ""
    canary: dict[str, Any] | None = Field(None, description="bounds of the canary check on golden and canary datasets: "
                                          "{bounds: {metric: largest absolute change from the reference run}}")
    review: dict[str, Any] | None = Field(None, description="which judged examples go to the human review queue: "
                                          "{reference_metric, threshold, audit_sample, seed} (eval_platform.suites.review_config)")

    @classmethod
    def from_raw(cls, raw: Any) -> SuiteConfig:
        """Validate a suite as written; the first problem is raised as :class:`InvalidInput` naming its field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise first_problem(error) from None

    @model_validator(mode="before")
    @classmethod
    def _mapping_of_known_fields(cls, raw: Any) -> dict:
        if not isinstance(raw, Mapping):
            raise refusal("must be a mapping", "suite")
        # a definition built by a caller's own YAML loader may share nodes (aliases): bound what normalising and
        # hashing it would walk, so an alias bomb is refused here rather than expanded
        with delegated():
            check_structure(raw, field="suite")
        known = set(cls.model_fields)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise refusal(f"unknown field(s) {unknown}; known: {sorted(known)}", "suite")
        return dict(raw)

    @field_validator("metrics", "gate", "llm", mode="wrap")
    @classmethod
    def _after_the_fields_it_needs(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if info.field_name is None or not all(name in info.data for name in NEEDS[info.field_name]):
            # one of them was refused, and is declared earlier: that refusal is the one reported
            raise refusal("not validated: a field it needs was refused")
        token = EARLIER.set(EarlierFields(info.data))
        try:
            return handler(value)
        finally:
            EARLIER.reset(token)

    @field_validator("suite_id", mode="before")
    @classmethod
    def _an_id(cls, value: Any) -> str:
        with delegated():
            return validate_id(of_type(value, str), "suite_id")

    @field_validator("purpose", mode="before")
    @classmethod
    def _a_purpose(cls, value: Any) -> str:
        if of_type(value, str) not in PURPOSES:
            raise refusal(f"must be one of {', '.join(PURPOSES)}, got {value!r}")
        return value

    @field_validator("task_type", mode="before")
    @classmethod
    def _a_task_type(cls, value: Any) -> str:
        with delegated():
            return get_task_type(of_type(value, str)).name

    @field_validator("metrics", mode="before")
    @classmethod
    def _at_least_one(cls, value: Any) -> list:
        if not of_type(value, list):
            raise refusal("a suite needs at least one metric")
        return value

    @field_validator("slices", mode="before")
    @classmethod
    def _column_names(cls, value: Any) -> list[str]:
        return non_empty_strings(value, "must be a list of column names")

    @field_validator("min_slice_size", mode="before")
    @classmethod
    def _a_slice_size(cls, value: Any) -> int:
        return int_in(value, 1, None, "must be a positive integer")

    @field_validator("llm", mode="after")
    @classmethod
    def _judges_pinned(cls, llm: LlmConfig | None, info: ValidationInfo) -> LlmConfig | None:
        if "metrics" in info.data:
            _check_judge_pins(info.data["metrics"], llm)
        return llm

    @field_validator("online", mode="before")
    @classmethod
    def _online_requirements(cls, value: Any) -> dict | None:
        if value is None:
            return None
        with delegated():
            return parse_online_section(value).as_json()

    @field_validator("description", mode="before")
    @classmethod
    def _a_description(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise refusal("must be a string")
        return value

    @field_validator("canary", mode="before")
    @classmethod
    def _canary_bounds(cls, value: Any, info: ValidationInfo) -> dict | None:
        if value is None:
            return None
        if "metrics" not in info.data:
            raise refusal("not validated: a field it needs was refused")
        return parse_canary_section(value, info.data["metrics"])

    @field_validator("review", mode="before")
    @classmethod
    def _review_section(cls, value: Any, info: ValidationInfo) -> dict | None:
        if value is None:
            return None
        if "metrics" not in info.data:
            raise refusal("not validated: a field it needs was refused")
        return parse_review_section(value, info.data["metrics"])
