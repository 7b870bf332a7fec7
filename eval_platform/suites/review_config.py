"""A suite's ``review`` section: which examples of a judged run go to the human review queue.

::

    review:
      reference_metric: exact_match   # a suite metric with a per-example value (exact_match, token_f1, ...)
      threshold: 0.5                  # the reference metric "passes" an example at or above this value
      audit_sample: 10                # examples of a stratified audit sample (strata: the judge's pass/fail); 0: none
      seed: 0                         # the audit sample's seed

Every field is optional, and so is the section: a judged run without it queues with the defaults of
:class:`ReviewConfig` (the reference metric then being the suite's first ``exact_match`` or ``token_f1`` metric,
if any). What the queue does with these is :mod:`eval_platform.evaluation.review_queue`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_platform.suites.refusals import is_int, is_number, refusal

#: the suite metrics a review section defaults to as its reference metric, in order of preference
DEFAULT_REFERENCE_METRICS = ("exact_match", "token_f1")


class ReviewConfig(BaseModel):
    """The ``review`` section as written (every field optional)."""

    model_config = ConfigDict(extra="forbid", title="ReviewSection")

    reference_metric: str | None = Field(None, description="a suite metric with a per-example value (default: the suite's "
                                         "exact_match, else token_f1)")
    threshold: float = Field(0.5, description="the reference metric passes an example at or above this value")
    audit_sample: int = Field(10, ge=0, le=10_000, description="size of the stratified audit sample (0: none)")
    seed: int = Field(0, ge=0, description="the audit sample's seed")

    @field_validator("reference_metric", mode="before")
    @classmethod
    def _a_name(cls, value: Any) -> str | None:
        if value is not None and (not isinstance(value, str) or not value):
            raise refusal(f"must be the name of one of the suite's metrics, got {value!r}")
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _a_finite_number(cls, value: Any) -> float:
        if not is_number(value) or not math.isfinite(value):
            raise refusal(f"must be a finite number, got {value!r}")
        return float(value)

    @field_validator("audit_sample", mode="before")
    @classmethod
    def _a_size(cls, value: Any) -> int:
        if not is_int(value) or not 0 <= value <= 10_000:
            raise refusal(f"must be an integer in [0, 10000], got {value!r}")
        return value

    @field_validator("seed", mode="before")
    @classmethod
    def _a_seed(cls, value: Any) -> int:
        if not is_int(value) or value < 0:
            raise refusal(f"must be a non-negative integer, got {value!r}")
        return value


def _has_per_example_values(definition: Any) -> bool:
    return definition.per_unit is not None and not definition.requires_judge and definition.unit == "example"


def parse_review_section(value: Any, metrics: Sequence[Any]) -> dict[str, Any]:
    """The normalised section, or the first problem naming its field (``review.threshold``...).

    ``metrics`` are the suite's validated metrics (each with ``name`` and ``definition``): the reference metric
    is one of them with a per-example value (not a judge metric)."""
    if not isinstance(value, Mapping):
        raise refusal("must be a mapping (reference_metric, threshold, audit_sample, seed)", "review")
    try:
        config = ReviewConfig.model_validate(dict(value))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        context = first.get("ctx") or {}
        where = ".".join(str(part) for part in first["loc"])
        problem = context.get("problem") or ("unknown field; known: reference_metric, threshold, audit_sample, seed"
                                             if first["type"] == "extra_forbidden" else first["msg"])
        raise refusal(problem, f"review.{where}" if where else "review") from None
    if config.reference_metric is not None:
        metric = next((m for m in metrics if m.name == config.reference_metric), None)
        if metric is None:
            raise refusal(f"{config.reference_metric!r} is not one of the suite's metrics {sorted(m.name for m in metrics)}",
                          "review.reference_metric")
        if not _has_per_example_values(metric.definition):
            raise refusal(f"{metric.name} has no per-example value to compare the judge with (use exact_match or token_f1)",
                          "review.reference_metric")
    return {k: v for k, v in config.model_dump().items() if v is not None}


def default_reference_metric(metrics: Sequence[Any]) -> str | None:
    """The suite's first metric among :data:`DEFAULT_REFERENCE_METRICS` with per-example values, if any."""
    for wanted in DEFAULT_REFERENCE_METRICS:
        for metric in metrics:
            if metric.definition.name == wanted and _has_per_example_values(metric.definition):
                return metric.name
    return None
