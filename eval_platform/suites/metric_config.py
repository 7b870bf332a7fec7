"""The ``metrics`` entries of a suite: a catalog metric (``NAME@VERSION``) or a mapping naming it and its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.base import MetricDefinition
from eval_platform.metrics.catalog import get_metric
from eval_platform.suites.refusals import Section, absent_section, delegated, earlier, of_type, refusal

# metrics ---------------------------------------------------------------------------------------------------

class SuiteMetricConfig(Section):
    """One metric of the suite: ``NAME@VERSION`` from the catalog, or a mapping naming it and its parameters.

    Once validated, ``metric`` is the catalog key, ``params`` every parameter (defaults filled in) and
    ``name`` the one the suite's rules and reports use (the metric's own name unless given)."""

    metric: str = Field(description="NAME@VERSION of a catalog metric that applies to the suite's task type")
    params: dict[str, Any] = Field(default_factory=absent_section, validate_default=True,
                                   description="the metric's parameters; defaults fill the others")
    name: str = Field(default="", validate_default=True,
                      description="the name rules and reports use; distinct within the suite (default: the metric's)")
    bootstrap: bool | SkipJsonSchema[None] = Field(default=None, validate_default=True,
                                   description="false: compared with the baseline by its point delta only, without the "
                                               "paired bootstrap (no interval, so no non_inferiority rule); default: "
                                               "the metric's own setting")

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
            raise refusal("must be name@version or a mapping with 'metric'")
        extra = sorted(set(entry) - set(cls.model_fields))
        if extra:
            raise refusal(f"unknown field(s) {extra}")
        return dict(entry)

    @field_validator("metric", mode="before")
    @classmethod
    def _catalog_metric_of_the_task(cls, reference: Any) -> str:
        try:
            definition = get_metric(of_type(reference, str))
        except InvalidInput as error:  # the catalog names its argument "metric"; here it is metrics[i].metric
            raise refusal(error.problem) from None
        task_type = earlier().fields["task_type"]
        if task_type not in definition.task_types:
            raise refusal(f"{definition.key} does not apply to task type {task_type}")
        return definition.key

    @field_validator("params", mode="before")
    @classmethod
    def _all_params(cls, given: Any, info: ValidationInfo) -> Any:
        if "metric" not in info.data:
            return given  # the metric was refused
        with delegated():
            return get_metric(info.data["metric"]).resolve_params(given)

    @field_validator("bootstrap", mode="before")
    @classmethod
    def _bootstrap_switch(cls, given: Any, info: ValidationInfo) -> Any:
        if "metric" not in info.data:
            return given
        definition = get_metric(info.data["metric"])
        if given is None:
            return definition.bootstrap
        if not isinstance(given, bool):
            raise refusal(f"must be true or false, got {given!r}")
        if given and not definition.bootstrap:
            raise refusal(f"{definition.key} is compared by its point delta only: its bootstrap cannot be switched on")
        return given

    @field_validator("name", mode="before")
    @classmethod
    def _distinct_name(cls, given: Any, info: ValidationInfo) -> Any:
        if "metric" not in info.data:
            return given
        name = given or get_metric(info.data["metric"]).name
        if not isinstance(name, str) or not name:
            raise refusal("must be a non-empty string")
        taken = earlier().metric_names
        if name in taken:
            raise refusal(f"duplicate metric name {name!r}; give each entry a distinct name")
        taken.append(name)
        return name


