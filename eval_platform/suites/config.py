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

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
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
from pydantic_core import PydanticCustomError

from eval_platform.core.errors import InvalidInput
from eval_platform.core.keys import ID_MAX_LENGTH, ID_PATTERN, validate_id
from eval_platform.core.states import SuitePurpose
from eval_platform.core.tasks import PURPOSES, TASK_TYPES, get_task_type
from eval_platform.core.yamlsafe import check_structure
from eval_platform.gates.rules import GateRule, parse_rules
from eval_platform.llm.budget import PriceTable, SuiteBudget
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.base import MetricDefinition
from eval_platform.metrics.catalog import get_metric
from eval_platform.online.requirements import parse_online_section

# refusals ----------------------------------------------------------------------------------------------------

#: wording of the refusals pydantic itself makes (the validators make every other one)
_PYDANTIC_PROBLEMS = {"missing": "is required"}


def _refusal(problem: str, field_name: str | None = None) -> PydanticCustomError:
    """A refusal as pydantic collects it. ``field_name`` overrides the path of the value refused: a field a
    delegated parser named (``gate.rules[0].metric``) or one that is not where the value sits."""
    context = {"problem": problem} if field_name is None else {"problem": problem, "field": field_name}
    return PydanticCustomError("invalid_input", "{problem}", context)


@contextmanager
def _delegated(rename: Callable[[str], str] = str) -> Iterator[None]:
    """Run a parser the suite delegates to: its :class:`InvalidInput` is reported on the field it names (after
    ``rename``). Any other error it raises (a TypeError on a malformed value) is carried along and raised as it
    is when it is the first problem, as it was when the suite was parsed by hand."""
    try:
        yield
    except PydanticCustomError:
        raise
    except InvalidInput as error:
        raise _refusal(error.problem, rename(error.field)) from None
    except Exception as error:
        raise PydanticCustomError("unexpected_error", "{error}", {"error": str(error), "raised": error}) from None


def _dotted(location: tuple[int | str, ...]) -> str:
    """pydantic's location of an error as the platform names fields: ``metrics[0].metric``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "suite"


def _first_problem(error: ValidationError) -> Exception:
    """The first problem pydantic found: an :class:`InvalidInput` named as the platform names fields, or the
    error a delegated parser raised."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    if isinstance(context.get("raised"), Exception):
        return context["raised"]
    problem = context.get("problem") or _PYDANTIC_PROBLEMS.get(first["type"], first["msg"])
    return InvalidInput(context.get("field") or _dotted(first["loc"]), problem)


# checks of single values, in the platform's wording ----------------------------------------------------------

def _of_type(value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (a bool is not an int here)."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _refusal(f"must be {kind.__name__}, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_in(value: Any, low: int, high: int | None, problem: str) -> int:
    if not _is_int(value) or value < low or high is not None and value > high:
        raise _refusal(f"{problem}, got {value!r}")
    return value


def _confidence(value: Any) -> float:
    if not _is_number(value) or not 0.5 <= value < 1:
        raise _refusal(f"must be in [0.5, 1), got {value!r}")
    return value


def _known_keys(value: Any, known: Mapping[str, Any] | tuple[str, ...], problem: str) -> dict:
    """``value`` as a dict, if it is a mapping of ``known`` keys only; else ``problem``."""
    if not isinstance(value, Mapping) or set(value) - set(known):
        raise _refusal(problem)
    return dict(value)


def _absent_section() -> Any:
    """An absent section, validated as an empty one (validated: its checks may need the rest of the suite)."""
    return {}


def _absent_list() -> Any:
    return []


# the fields validated before a section that needs them ----------------------------------------------------------

@dataclass
class _EarlierFields:
    """The suite's fields validated before the section in hand, and the metric names taken so far."""

    fields: Mapping[str, Any]
    metric_names: list[str] = field(default_factory=list)


_EARLIER: ContextVar[_EarlierFields] = ContextVar("suite_fields_validated_so_far")
#: the fields each section that needs earlier ones reads
_NEEDS = {"metrics": ("task_type",), "gate": ("purpose", "metrics", "slices"), "llm": ("metrics",)}


def _earlier() -> _EarlierFields:
    try:
        return _EARLIER.get()
    except LookupError:
        raise RuntimeError("a suite's section is validated as part of a SuiteConfig") from None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


# metrics ---------------------------------------------------------------------------------------------------

class SuiteMetricConfig(_Section):
    """One metric of the suite: ``NAME@VERSION`` from the catalog, or a mapping naming it and its parameters.

    Once validated, ``metric`` is the catalog key, ``params`` every parameter (defaults filled in) and
    ``name`` the one the suite's rules and reports use (the metric's own name unless given)."""

    metric: str = Field(description="NAME@VERSION of a catalog metric that applies to the suite's task type")
    params: dict[str, Any] = Field(default_factory=_absent_section, validate_default=True,
                                   description="the metric's parameters; defaults fill the others")
    name: str = Field(default="", validate_default=True,
                      description="the name rules and reports use; distinct within the suite (default: the metric's)")

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # an entry may also be the bare reference, which the model's first validator turns into {metric: ...}
        return {"anyOf": [{"type": "string", "description": "NAME@VERSION of a catalog metric"}, handler(core_schema)]}

    @property
    def definition(self) -> MetricDefinition:
        return get_metric(self.metric)

    @model_validator(mode="before")
    @classmethod
    def _reference_or_mapping(cls, entry: Any) -> dict:
        if isinstance(entry, str):
            entry = {"metric": entry}
        if not isinstance(entry, Mapping):
            raise _refusal("must be name@version or a mapping with 'metric'")
        extra = sorted(set(entry) - set(cls.model_fields))
        if extra:
            raise _refusal(f"unknown field(s) {extra}")
        return dict(entry)

    @field_validator("metric", mode="before")
    @classmethod
    def _catalog_metric_of_the_task(cls, reference: Any) -> str:
        try:
            definition = get_metric(_of_type(reference, str))
        except InvalidInput as error:  # the catalog names its argument "metric"; here it is metrics[i].metric
            raise _refusal(error.problem) from None
        task_type = _earlier().fields["task_type"]
        if task_type not in definition.task_types:
            raise _refusal(f"{definition.key} does not apply to task type {task_type}")
        return definition.key

    @field_validator("params", mode="before")
    @classmethod
    def _all_params(cls, given: Any, info: ValidationInfo) -> Any:
        if "metric" not in info.data:
            return given  # the metric was refused
        with _delegated():
            return get_metric(info.data["metric"]).resolve_params(given)

    @field_validator("name", mode="before")
    @classmethod
    def _distinct_name(cls, given: Any, info: ValidationInfo) -> Any:
        if "metric" not in info.data:
            return given
        name = given or get_metric(info.data["metric"]).name
        if not isinstance(name, str) or not name:
            raise _refusal("must be a non-empty string")
        taken = _earlier().metric_names
        if name in taken:
            raise _refusal(f"duplicate metric name {name!r}; give each entry a distinct name")
        taken.append(name)
        return name


# comparison ------------------------------------------------------------------------------------------------

class ComparisonConfig(_Section):
    """How a candidate is compared with its baseline: the paired bootstrap's resamples, confidence and seed."""

    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, comparison: Any) -> dict:
        return _known_keys(comparison or {}, cls.model_fields, "may only set bootstrap_resamples, confidence and seed")

    @field_validator("bootstrap_resamples", mode="before")
    @classmethod
    def _resamples(cls, value: Any) -> int:
        return _int_in(value, 100, 100_000, "must be an integer in [100, 100000]")

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_confidence(cls, value: Any) -> float:
        return _confidence(value)

    @field_validator("seed", mode="before")
    @classmethod
    def _a_seed(cls, value: Any) -> int:
        return _int_in(value, 0, None, "must be a non-negative integer")


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


def _rules_schema() -> dict[str, Any]:
    return {"type": "array", "items": GateRuleSpec.model_json_schema()}


class GateConfig(_Section):
    """The release gate: its rules on the suite's metrics, who approves overrides, and what a missing or
    stale baseline means."""

    stale_baseline: Literal["no_decision", "reevaluate"] = "no_decision"
    approvers: list[str] = Field(default_factory=list)
    require_baseline: bool = True
    rules: Annotated[tuple[GateRule, ...], SkipValidation, WithJsonSchema(_rules_schema())] = Field(
        default_factory=_absent_list, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, gate: Any) -> dict:
        return _known_keys(gate or {}, cls.model_fields, "may only set rules, approvers, require_baseline and stale_baseline")

    @field_validator("stale_baseline", mode="before")
    @classmethod
    def _a_stale_baseline_policy(cls, value: Any) -> str:
        if value not in ("no_decision", "reevaluate"):
            raise _refusal(f"must be no_decision or reevaluate, got {value!r}")
        return value

    @field_validator("approvers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
            raise _refusal("must be a list of names")
        return value

    @field_validator("require_baseline", mode="before")
    @classmethod
    def _a_bool(cls, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _refusal("must be true or false")
        return value

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_on_the_suite(cls, value: Any) -> tuple[GateRule, ...]:
        suite = _earlier().fields
        with _delegated():
            rules = parse_rules(value, {m.name: m.definition for m in suite["metrics"]})
        for index, rule in enumerate(rules):
            if rule.slice and rule.slice not in suite["slices"]:
                raise _refusal(f"{rule.slice!r} is not one of the suite's slices {suite['slices']}", f"gate.rules[{index}].slice")
        if suite["purpose"] == SuitePurpose.RELEASE_BLOCKING and not rules:
            raise _refusal("a release-blocking suite needs at least one gate rule", "gate.rules")
        return rules


# llm -------------------------------------------------------------------------------------------------------

_STRATA_SCHEMA = {"anyOf": [
    {"type": "object", "required": ["column"], "additionalProperties": False,
     "properties": {"column": {"type": "string", "minLength": 1, "description": "a dataset column"}}},
    {"type": "object", "required": ["metric"], "additionalProperties": False, "properties": {
        "metric": {"type": "string", "description": "a metric of the suite with per-example values"},
        "bins": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 20, "description": "equal-count quantile bins"},
                           {"type": "array", "items": {"type": "number"}, "minItems": 1,
                            "description": "increasing cut points"}]}}},
    {"type": "null"}]}


def _column_strata(strata: Mapping) -> dict:
    column = strata["column"]
    if set(strata) != {"column"} or not isinstance(column, str) or not column:
        raise _refusal("must be a column name (and the only key of strata)", "llm.judge_sample.strata.column")
    return {"column": column}


def _stratifying_metric(name: Any) -> SuiteMetricConfig:
    """The suite's metric ``name``, if it has a cheap per-example value to stratify by."""
    field_name = "llm.judge_sample.strata.metric"
    metrics = _earlier().fields["metrics"]
    metric = next((m for m in metrics if m.name == name), None)
    if metric is None:
        raise _refusal(f"{name!r} is not a metric of this suite; suite metrics: {sorted(m.name for m in metrics)}", field_name)
    definition = metric.definition
    if definition.per_unit is None or definition.requires_judge or definition.unit != "example":
        raise _refusal(f"{metric.name} has no per-example value to stratify by "
                       "(use a cheaper reference metric such as exact_match or token_f1)", field_name)
    return metric


def _are_cut_points(bins: Any) -> bool:
    return (isinstance(bins, list) and bool(bins) and all(_is_number(b) for b in bins)
            and all(a < b for a, b in zip(bins, bins[1:], strict=False)))


def _metric_strata(strata: Mapping) -> dict:
    unknown = sorted(set(strata) - {"metric", "bins"})
    if unknown:
        raise _refusal(f"unknown field(s) {unknown}; a metric's strata set metric and bins", "llm.judge_sample.strata")
    metric = _stratifying_metric(strata["metric"])
    bins = strata.get("bins", [0.5])
    if not (_is_int(bins) and 1 <= bins <= 20 or _are_cut_points(bins)):
        raise _refusal(f"must be increasing cut points or a number of quantile bins in [1, 20], got {bins!r}",
                       "llm.judge_sample.strata.bins")
    return {"metric": metric.name, "bins": bins}


class JudgeSampleConfig(_Section):
    """``llm.judge_sample``: judge a stratified sample instead of every example.

    ``strata`` is absent (one stratum: a simple random sample), ``{column: NAME}`` (a dataset column) or
    ``{metric: NAME, bins: [cut points] | N}`` (a cheaper metric of the suite with per-example values, cut at
    the points or into ``N`` equal-count quantile bins; default ``[0.5]``, which splits a 0/1 metric such as
    exact match)."""

    size: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    min_per_stratum: int = Field(2, ge=1)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    strata: Annotated[dict[str, Any] | None, WithJsonSchema(_STRATA_SCHEMA)] = None

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, sample: Any) -> dict:
        if not isinstance(sample, Mapping):
            raise _refusal("must be a mapping with size, strata, seed, min_per_stratum and confidence")
        unknown = sorted(set(sample) - set(cls.model_fields))
        if unknown:
            raise _refusal(f"unknown field(s) {unknown}; known: size, strata, seed, min_per_stratum, confidence")
        return dict(sample)

    @field_validator("size", mode="before")
    @classmethod
    def _a_size(cls, value: Any) -> int:
        return _int_in(_of_type(value, int), 1, None, "must be an integer >= 1")

    @field_validator("seed", mode="before")
    @classmethod
    def _a_seed(cls, value: Any) -> int:
        return _int_in(value, 0, None, "must be a non-negative integer")

    @field_validator("min_per_stratum", mode="before")
    @classmethod
    def _a_minimum(cls, value: Any) -> int:
        return _int_in(value, 1, None, "must be an integer >= 1")

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_confidence(cls, value: Any) -> float:
        return _confidence(value)

    @field_validator("strata", mode="before")
    @classmethod
    def _column_or_metric(cls, strata: Any) -> dict | None:
        if strata is None:
            return None
        if not isinstance(strata, Mapping) or len(set(strata) & {"column", "metric"}) != 1:
            raise _refusal("must be {column: NAME} or {metric: NAME, bins: [cut points] or N}")
        return _column_strata(strata) if "column" in strata else _metric_strata(strata)

    def as_json(self) -> dict:
        return {"size": self.size, "strata": self.strata, "seed": self.seed, "min_per_stratum": self.min_per_stratum,
                "confidence": self.confidence}


#: the keys of ``llm``, in the order the refusal of another key lists them
_LLM_KEYS = ("budget", "prices", "concurrency", "judge", "judge_samples", "judge_sample", "pairwise_judge",
             "pairwise_samples")


def _in_judge_section(section: str) -> Callable[[str], str]:
    """JudgeConfig names its fields ``judge.*``; in a suite they are ``llm.<section>.*``."""
    def rename(name: str) -> str:
        inner = name.removeprefix("judge").lstrip(".") if name.startswith("judge") else name
        return f"llm.{section}" + (f".{inner}" if inner else "")
    return rename


def _judge(value: Any, section: str, output: str | None = None) -> dict:
    """``llm.<section>``: a judge's configuration (:class:`JudgeConfig`), a pairwise one only in ``pairwise_judge``."""
    with _delegated(_in_judge_section(section)):
        config = JudgeConfig.from_dict(value)
    if output == "pairwise" and config.output != "pairwise":
        raise _refusal(f"must be 'pairwise' for a pairwise judge, got {config.output!r}", f"llm.{section}.output")
    if output is None and config.output == "pairwise":
        raise _refusal("a pairwise judge goes in llm.pairwise_judge", f"llm.{section}.output")
    return dict(value)


class LlmConfig(_Section):
    """A generation suite's ``llm`` section: budgets, prices and concurrency of the candidate's and judges'
    calls, the judge of ``judge_score`` metrics (optionally on a stratified sample) and the pairwise judge of
    ``judge_preference``."""

    judge: dict[Any, Any] | None = Field(None, description="the judge of judge_score metrics (JudgeConfig)")
    judge_samples: int = Field(1, ge=1, le=20, description="verdicts per judged example")
    pairwise_judge: dict[Any, Any] | None = Field(None, description="the judge of judge_preference metrics; output: pairwise")
    pairwise_samples: int = Field(1, ge=1, le=20)
    judge_sample: JudgeSampleConfig | None = None
    budget: dict[Any, Any] = Field(default_factory=dict, description="{candidate: {max_tokens, max_cost}, judge: {...}}")
    prices: dict[Any, Any] = Field(default_factory=dict, description="{models: {NAME: {input_per_1k, output_per_1k}}}")
    concurrency: int = Field(8, ge=1, le=256)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, llm: Any) -> dict:
        return _known_keys(llm, _LLM_KEYS, f"may only set {', '.join(_LLM_KEYS)}")

    @field_validator("judge", mode="before")
    @classmethod
    def _a_judge(cls, value: Any) -> dict | None:
        return None if value is None else _judge(value, "judge")

    @field_validator("pairwise_judge", mode="before")
    @classmethod
    def _a_pairwise_judge(cls, value: Any) -> dict | None:
        return None if value is None else _judge(value, "pairwise_judge", output="pairwise")

    @field_validator("judge_samples", "pairwise_samples", mode="before")
    @classmethod
    def _samples(cls, value: Any) -> int:
        return _int_in(value, 1, 20, "must be an integer in [1, 20]")

    @field_validator("judge_sample", mode="before")
    @classmethod
    def _samples_the_judge(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("judge") is None:
            raise _refusal("samples what llm.judge judges; the suite has no llm.judge")
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _a_budget(cls, value: Any) -> Any:
        with _delegated(lambda name: f"llm.{name}"):
            SuiteBudget.from_dict(value)
        return value or {}

    @field_validator("prices", mode="before")
    @classmethod
    def _a_price_table(cls, value: Any) -> Any:
        with _delegated(lambda name: f"llm.{name}"):
            PriceTable.from_dict(value)
        return value or {}

    @field_validator("concurrency", mode="before")
    @classmethod
    def _a_concurrency(cls, value: Any) -> int:
        return _int_in(value, 1, 256, "must be an integer in [1, 256]")

    def as_json(self) -> dict:
        """The normalised section (what the suite's hash covers)."""
        out: dict[str, Any] = {"budget": self.budget, "prices": self.prices, "concurrency": self.concurrency}
        if self.judge is not None:
            out.update(judge=self.judge, judge_samples=self.judge_samples)
        if self.judge_sample is not None:
            out["judge_sample"] = self.judge_sample.as_json()
        if self.pairwise_judge is not None:
            out.update(pairwise_judge=self.pairwise_judge, pairwise_samples=self.pairwise_samples)
        return out


def _check_judge_pins(metrics: list[SuiteMetricConfig], llm: LlmConfig | None) -> None:
    """A metric scored by the suite's judge (``judge_score``: ``llm.judge``; ``judge_preference``:
    ``llm.pairwise_judge``) must pin exactly that judge (when it pins one at all: an unpinned judge metric
    is accepted here and blocks the gate)."""
    for column, section in (("judge_score", "judge"), ("judge_preference", "pairwise_judge")):
        judged = [m for m in metrics if column in m.definition.required_columns]
        if not judged:
            continue
        judge = getattr(llm, section) if llm is not None else None
        if not judge:
            raise _refusal(f"metric(s) {[m.name for m in judged]} need the suite's {section} configuration", f"llm.{section}")
        pin = JudgeConfig.from_dict(judge).pin()
        for metric in judged:
            for key in ("judge_model", "judge_prompt_version"):
                given = metric.params.get(key)
                if given is not None and given != pin[key]:
                    raise _refusal(f"pins {given!r} but the suite's {section} is {pin[key]!r}", f"{metric.name}.params.{key}")


# the suite -------------------------------------------------------------------------------------------------

class SuiteConfig(_Section):
    """A metric suite as its author writes it (JSON or YAML); :func:`eval_platform.suites.definition.parse_suite`
    turns it into the :class:`~eval_platform.suites.definition.SuiteDefinition` the platform runs."""

    model_config = ConfigDict(title="MetricSuite")

    suite_id: str = Field(json_schema_extra={"pattern": ID_PATTERN, "maxLength": ID_MAX_LENGTH})
    purpose: SuitePurpose = Field(description="release_blocking suites gate releases; exploratory ones never do")
    task_type: str = Field(json_schema_extra={"enum": list(TASK_TYPES)})
    metrics: list[SuiteMetricConfig] = Field(min_length=1)
    slices: list[str] = Field(default_factory=list, description="dataset columns every metric is also computed on")
    min_slice_size: int = Field(30, ge=1, description="smaller slices are reported but flagged")
    comparison: ComparisonConfig = Field(default_factory=_absent_section, validate_default=True)
    gate: GateConfig = Field(default_factory=_absent_section, validate_default=True)
    llm: LlmConfig | None = Field(None, validate_default=True)
    online: dict[str, Any] | None = Field(None, description="online evidence a release needs (guardrails, shadow rules)")
    description: str = ""

    @classmethod
    def from_raw(cls, raw: Any) -> SuiteConfig:
        """Validate a suite as written; the first problem is raised as :class:`InvalidInput` naming its field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise _first_problem(error) from None

    @model_validator(mode="before")
    @classmethod
    def _mapping_of_known_fields(cls, raw: Any) -> dict:
        if not isinstance(raw, Mapping):
            raise _refusal("must be a mapping", "suite")
        # a definition built by a caller's own YAML loader may share nodes (aliases): bound what normalising and
        # hashing it would walk, so an alias bomb is refused here rather than expanded
        with _delegated():
            check_structure(raw, field="suite")
        known = set(cls.model_fields)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise _refusal(f"unknown field(s) {unknown}; known: {sorted(known)}", "suite")
        return dict(raw)

    @field_validator("metrics", "gate", "llm", mode="wrap")
    @classmethod
    def _after_the_fields_it_needs(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        if info.field_name is None or not all(name in info.data for name in _NEEDS[info.field_name]):
            # one of them was refused, and is declared earlier: that refusal is the one reported
            raise _refusal("not validated: a field it needs was refused")
        token = _EARLIER.set(_EarlierFields(info.data))
        try:
            return handler(value)
        finally:
            _EARLIER.reset(token)

    @field_validator("suite_id", mode="before")
    @classmethod
    def _an_id(cls, value: Any) -> str:
        with _delegated():
            return validate_id(_of_type(value, str), "suite_id")

    @field_validator("purpose", mode="before")
    @classmethod
    def _a_purpose(cls, value: Any) -> str:
        if _of_type(value, str) not in PURPOSES:
            raise _refusal(f"must be one of {', '.join(PURPOSES)}, got {value!r}")
        return value

    @field_validator("task_type", mode="before")
    @classmethod
    def _a_task_type(cls, value: Any) -> str:
        with _delegated():
            return get_task_type(_of_type(value, str)).name

    @field_validator("metrics", mode="before")
    @classmethod
    def _at_least_one(cls, value: Any) -> list:
        if not _of_type(value, list):
            raise _refusal("a suite needs at least one metric")
        return value

    @field_validator("slices", mode="before")
    @classmethod
    def _column_names(cls, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            raise _refusal("must be a list of column names")
        return value

    @field_validator("min_slice_size", mode="before")
    @classmethod
    def _a_slice_size(cls, value: Any) -> int:
        return _int_in(value, 1, None, "must be a positive integer")

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
        with _delegated():
            return parse_online_section(value).as_json()

    @field_validator("description", mode="before")
    @classmethod
    def _a_description(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise _refusal("must be a string")
        return value
