"""What a metric is to the platform: a pure function plus the facts a suite and a gate need about it.

A metric is registered once as ``name@version``. Its version is part of every result's lineage and is the
Dagster ``code_version`` of the assets that compute it, so changing a metric's code means registering a new
version, never editing an old one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from eval_platform.core.errors import InvalidInput

Direction = Literal["higher", "lower"]

#: Columns of the evaluation frame, the join of a dataset version and a prediction set:
#: ``label``/``score`` for binary classification, ``label``/``proba_<class>`` for multi-class,
#: ``query_id``/``doc_id``/``relevance``/``score`` for ranking, ``prediction``/``reference`` for generation.
Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Param:
    """One parameter of a metric: its type, default and allowed range."""

    kind: type
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    #: the only values allowed (None: any value of ``kind`` in range)
    choices: tuple | None = None

    def coerce(self, metric: str, name: str, value: Any) -> Any:
        field_name = f"{metric}.params.{name}"
        if value is None:
            if self.required:
                raise InvalidInput(field_name, "is required")
            return self.default
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                raise InvalidInput(field_name, f"must be an integer, got {value!r}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise InvalidInput(field_name, f"must be a number, got {value!r}")
            value = float(value)
        elif not isinstance(value, self.kind):
            raise InvalidInput(field_name, f"must be {self.kind.__name__}, got {value!r}")
        self._check_range(field_name, value)
        return value

    def _check_range(self, field_name: str, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise InvalidInput(field_name, f"must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidInput(field_name, f"must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidInput(field_name, f"must be <= {self.maximum}, got {value}")


@dataclass(frozen=True)
class MetricEstimate:
    """A metric value that comes with its own ``confidence`` interval (the agreement of human ratings, say),
    over ``n_units`` units; ``method`` names how the interval was made."""

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n_units: int
    method: str


@dataclass(frozen=True)
class MetricDefinition:
    """A versioned metric: ``compute(columns, **params) -> float``.

    ``unit`` is what the comparison statistics resample: ``example`` rows, or whole ``query`` groups for
    ranking metrics (whose ``per_query`` function then gives one value per query, averaged by the mean).
    """

    name: str
    version: int
    direction: Direction
    task_types: frozenset[str]
    required_columns: tuple[str, ...]
    compute: Callable[..., float]
    params: Mapping[str, Param] = field(default_factory=dict)
    unit: Literal["example", "query"] = "example"
    #: For decomposable metrics (ranking): ``per_unit(columns, **params) -> (unit_ids, values)``, whose
    #: mean is ``compute``; the bootstrap then resamples these values instead of recomputing.
    per_unit: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    description: str = ""
    #: Model-as-judge metrics must be pinned (``judge_model`` and ``judge_prompt_version`` parameters)
    #: before a release gate will decide on them: judge drift must never pass silently.
    requires_judge: bool = False
    #: A metric only defined against a baseline (pairwise judging): it is not computed in a run's metric
    #: table but in its comparison, and a gate rule on it is ``no_decision`` when there is no baseline.
    comparison_only: bool = False
    #: For metrics with their own interval: ``estimate(columns, **params) -> MetricEstimate``. The run records
    #: it (``results["estimates"]``, overall and per slice) and a gate rule on the metric needs it defined.
    estimate: Callable[..., MetricEstimate] | None = None
    #: False: a comparison with the baseline takes this metric's point delta only (no paired bootstrap): its
    #: value is not a function of the model's outputs alone, or resampling it costs too much. A suite entry
    #: may also switch the bootstrap off (``bootstrap: false``), never on where the definition says False.
    bootstrap: bool = True

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise InvalidInput(f"{self.key}.params", f"unknown parameter(s) {unknown}; known: {sorted(self.params)}")
        return {name: spec.coerce(self.key, name, given.get(name)) for name, spec in self.params.items()}

    def better(self, delta: float) -> float:
        """``delta`` signed so that positive always means an improvement."""
        return delta if self.direction == "higher" else -delta
