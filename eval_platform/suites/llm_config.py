"""The ``llm`` section of a suite: budget, prices, concurrency, pinned judges and judge sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import (
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from eval_platform.core.keys import is_valid_id
from eval_platform.llm.budget import PriceTable, SuiteBudget
from eval_platform.llm.judge import JudgeConfig
from eval_platform.suites.metric_config import SuiteMetricConfig
from eval_platform.suites.refusals import Section, confidence, delegated, earlier, int_in, is_int, is_number, of_type, refusal

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
        raise refusal("must be a column name (and the only key of strata)", "llm.judge_sample.strata.column")
    return {"column": column}


def _stratifying_metric(name: Any) -> SuiteMetricConfig:
    """The suite's metric ``name``, if it has a cheap per-example value to stratify by."""
    field_name = "llm.judge_sample.strata.metric"
    metrics = earlier().fields["metrics"]
    metric = next((m for m in metrics if m.name == name), None)
    if metric is None:
        raise refusal(f"{name!r} is not a metric of this suite; suite metrics: {sorted(m.name for m in metrics)}", field_name)
    definition = metric.definition
    if definition.per_unit is None or definition.requires_judge or definition.unit != "example":
        raise refusal(f"{metric.name} has no per-example value to stratify by "
                       "(use a cheaper reference metric such as exact_match or token_f1)", field_name)
    return metric


def _are_cut_points(bins: Any) -> bool:
    return (isinstance(bins, list) and bool(bins) and all(is_number(b) for b in bins)
            and all(a < b for a, b in zip(bins, bins[1:], strict=False)))


def _metric_strata(strata: Mapping) -> dict:
    unknown = sorted(set(strata) - {"metric", "bins"})
    if unknown:
        raise refusal(f"unknown field(s) {unknown}; a metric's strata set metric and bins", "llm.judge_sample.strata")
    metric = _stratifying_metric(strata["metric"])
    bins = strata.get("bins", [0.5])
    if not (is_int(bins) and 1 <= bins <= 20 or _are_cut_points(bins)):
        raise refusal(f"must be increasing cut points or a number of quantile bins in [1, 20], got {bins!r}",
                       "llm.judge_sample.strata.bins")
    return {"metric": metric.name, "bins": bins}


class JudgeSampleConfig(Section):
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
        return cls.only_known(sample, ("size", "strata", "seed", "min_per_stratum", "confidence"), name_unknown=True)

    @field_validator("size", mode="before")
    @classmethod
    def _a_size(cls, value: Any) -> int:
        return int_in(of_type(value, int), 1, None, "must be an integer >= 1")

    @field_validator("seed", mode="before")
    @classmethod
    def _a_seed(cls, value: Any) -> int:
        return int_in(value, 0, None, "must be a non-negative integer")

    @field_validator("min_per_stratum", mode="before")
    @classmethod
    def _a_minimum(cls, value: Any) -> int:
        return int_in(value, 1, None, "must be an integer >= 1")

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_confidence(cls, value: Any) -> float:
        return confidence(value)

    @field_validator("strata", mode="before")
    @classmethod
    def _column_or_metric(cls, strata: Any) -> dict | None:
        if strata is None:
            return None
        if not isinstance(strata, Mapping) or len(set(strata) & {"column", "metric"}) != 1:
            raise refusal("must be {column: NAME} or {metric: NAME, bins: [cut points] or N}")
        return _column_strata(strata) if "column" in strata else _metric_strata(strata)

    def as_json(self) -> dict:
        return {"size": self.size, "strata": self.strata, "seed": self.seed, "min_per_stratum": self.min_per_stratum,
                "confidence": self.confidence}


#: what a judge license measures of the judge's verdicts against the humans'
LICENSE_MEASURES = ("kappa", "accuracy")


class JudgeLicenseConfig(Section):
    """``llm.judge_license``: what the suite requires of its judge's agreement with people before the judge may
    gate a release (:mod:`eval_platform.evaluation.judge_license`).

    The judge's verdicts on the newest active version of ``calibration_dataset`` (a dataset with role
    ``calibration``) are compared with the human labels; the lower bound of the ``confidence`` interval of
    ``measure`` (Cohen's ``kappa``, or ``accuracy``) must be at least ``min_lower_bound``."""

    calibration_dataset: str = Field(description="id of a calibration dataset (role calibration)")
    measure: str = Field("kappa", description="kappa or accuracy")
    min_lower_bound: float = Field(0.6, description="the interval's lower bound must be at least this")
    confidence: float = Field(0.95, ge=0.5, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, value: Any) -> dict:
        return cls.only_known(value, name_unknown=True)

    @field_validator("calibration_dataset", mode="before")
    @classmethod
    def _a_dataset_id(cls, value: Any) -> str:
        if not is_valid_id(value):
            raise refusal(f"must be a dataset id (letters, digits, '-', '_', '.'), got {value!r}")
        return value

    @field_validator("measure", mode="before")
    @classmethod
    def _a_measure(cls, value: Any) -> str:
        if value not in LICENSE_MEASURES:
            raise refusal(f"must be one of {list(LICENSE_MEASURES)}, got {value!r}")
        return value

    @field_validator("min_lower_bound", mode="before")
    @classmethod
    def _a_bound(cls, value: Any, info: ValidationInfo) -> float:
        low = -1.0 if info.data.get("measure", "kappa") == "kappa" else 0.0
        if not is_number(value) or not low <= value <= 1:
            raise refusal(f"must be a number in [{low:g}, 1] for measure {info.data.get('measure', 'kappa')}, got {value!r}")
        return float(value)

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_confidence(cls, value: Any) -> float:
        return confidence(value)

    def as_json(self) -> dict:
        return {"calibration_dataset": self.calibration_dataset, "measure": self.measure,
                "min_lower_bound": self.min_lower_bound, "confidence": self.confidence}


#: the keys of ``llm``, in the order the refusal of another key lists them
_LLM_KEYS = ("budget", "prices", "concurrency", "judge", "judge_samples", "judge_sample", "judge_license", "pairwise_judge",
             "pairwise_samples")


def _in_judge_section(section: str) -> Callable[[str], str]:
    """JudgeConfig names its fields ``judge.*``; in a suite they are ``llm.<section>.*``."""
    def rename(name: str) -> str:
        inner = name.removeprefix("judge").lstrip(".") if name.startswith("judge") else name
        return f"llm.{section}" + (f".{inner}" if inner else "")
    return rename


def _judge(value: Any, section: str, output: str | None = None) -> dict:
    """``llm.<section>``: a judge's configuration (:class:`JudgeConfig`), a pairwise one only in ``pairwise_judge``."""
    with delegated(_in_judge_section(section)):
        config = JudgeConfig.from_dict(value)
    if output == "pairwise" and config.output != "pairwise":
        raise refusal(f"must be 'pairwise' for a pairwise judge, got {config.output!r}", f"llm.{section}.output")
    if output is None and config.output == "pairwise":
        raise refusal("a pairwise judge goes in llm.pairwise_judge", f"llm.{section}.output")
    return dict(value)


class LlmConfig(Section):
    """A generation suite's ``llm`` section: budgets, prices and concurrency of the candidate's and judges'
    calls, the judge of ``judge_score`` metrics (optionally on a stratified sample) and the pairwise judge of
    ``judge_preference``."""

    judge: dict[Any, Any] | None = Field(None, description="the judge of judge_score metrics (JudgeConfig)")
    judge_samples: int = Field(1, ge=1, le=20, description="verdicts per judged example")
    pairwise_judge: dict[Any, Any] | None = Field(None, description="the judge of judge_preference metrics; output: pairwise")
    pairwise_samples: int = Field(1, ge=1, le=20)
    judge_sample: JudgeSampleConfig | None = None
    judge_license: JudgeLicenseConfig | None = None
    budget: dict[Any, Any] = Field(default_factory=dict, description="{candidate: {max_tokens, max_cost}, judge: {...}}")
    prices: dict[Any, Any] = Field(default_factory=dict, description="{models: {NAME: {input_per_1k, output_per_1k}}}")
    concurrency: int = Field(8, ge=1, le=256)

    @model_validator(mode="before")
    @classmethod
    def _only_known(cls, llm: Any) -> dict:
        return cls.only_known(llm, _LLM_KEYS)

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
        return int_in(value, 1, 20, "must be an integer in [1, 20]")

    @field_validator("judge_sample", mode="before")
    @classmethod
    def _samples_the_judge(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("judge") is None:
            raise refusal("samples what llm.judge judges; the suite has no llm.judge")
        return value

    @field_validator("judge_license", mode="before")
    @classmethod
    def _licenses_the_judge(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("judge") is None:
            raise refusal("licenses what llm.judge judges; the suite has no llm.judge")
        return value

    @field_validator("budget", mode="before")
    @classmethod
    def _a_budget(cls, value: Any) -> Any:
        with delegated(lambda name: f"llm.{name}"):
            SuiteBudget.from_dict(value)
        return value or {}

    @field_validator("prices", mode="before")
    @classmethod
    def _a_price_table(cls, value: Any) -> Any:
        with delegated(lambda name: f"llm.{name}"):
            PriceTable.from_dict(value)
        return value or {}

    @field_validator("concurrency", mode="before")
    @classmethod
    def _a_concurrency(cls, value: Any) -> int:
        return int_in(value, 1, 256, "must be an integer in [1, 256]")

    def as_json(self) -> dict:
        """The normalised section (what the suite's hash covers)."""
        out: dict[str, Any] = {"budget": self.budget, "prices": self.prices, "concurrency": self.concurrency}
        if self.judge is not None:
            out.update(judge=self.judge, judge_samples=self.judge_samples)
        if self.judge_sample is not None:
            out["judge_sample"] = self.judge_sample.as_json()
        if self.judge_license is not None:  # only when stated: the hash of every suite without one is unchanged
            out["judge_license"] = self.judge_license.as_json()
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
            raise refusal(f"metric(s) {[m.name for m in judged]} need the suite's {section} configuration", f"llm.{section}")
        pin = JudgeConfig.from_dict(judge).pin()
        for metric in judged:
            for key in ("judge_model", "judge_prompt_version"):
                given = metric.params.get(key)
                if given is not None and given != pin[key]:
                    raise refusal(f"pins {given!r} but the suite's {section} is {pin[key]!r}", f"{metric.name}.params.{key}")


