"""An online experiment's configuration: arms, metrics, guardrails and analysis settings, validated.

:class:`ExperimentConfig` is what :func:`~eval_platform.online.analysis.analyze_experiment` analyses with and
what the online requirements of a suite (:mod:`eval_platform.online.requirements`) judge stored analyses by;
its dict form is the one stored with every analysis. Every value is validated where it is read, and an error
names the key (``config.arms[1].split``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.online import stats

AGGREGATES = ("mean", "sum", "max", "count")
KINDS = ("auto", "proportion", "mean")
DIRECTIONS = ("higher", "lower")
GUARDRAIL_INTERVALS = ("sequential", "fixed")


def _number(value, field: str, low: float | None = None, high: float | None = None, open_low=False, open_high=False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(value):
        raise InvalidInput(field, f"must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (open_low and value == low)):
        raise InvalidInput(field, f"must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and (value > high or (open_high and value == high)):
        raise InvalidInput(field, f"must be {'<' if open_high else '<='} {high:g}, got {value:g}")
    return value


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, f"must be a non-empty string, got {value!r}")
    return value


def _choice(value, field: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidInput(field, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _keys(raw: Mapping, field: str, allowed: Iterable[str]) -> None:
    if not isinstance(raw, Mapping):
        raise InvalidInput(field, f"must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(allowed))
    if unknown:
        raise InvalidInput(field, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class ArmConfig:
    """One arm of an experiment: the model version it serves and its configured share of the units."""

    name: str
    model_version: str
    split: float


@dataclass(frozen=True)
class MetricConfig:
    """How a metric is analysed: its per-unit ``aggregate`` and its ``kind`` (``auto`` decides from the data)."""

    name: str
    aggregate: str = "mean"
    kind: str = "auto"


@dataclass(frozen=True)
class GuardrailConfig:
    """A guardrail: ``metric`` must not move against its better ``direction`` by more than ``tolerance``."""

    metric: str
    direction: str
    tolerance: float
    relative: bool = True

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> GuardrailConfig:
        """``{metric, direction, tolerance, relative}`` validated; errors name ``where`` and the key."""
        _keys(raw, where, ("metric", "direction", "tolerance", "relative"))
        relative = raw.get("relative", True)
        if not isinstance(relative, bool):
            raise InvalidInput(f"{where}.relative", f"must be true or false, got {relative!r}")
        return cls(_text(raw.get("metric"), f"{where}.metric"), _choice(raw.get("direction"), f"{where}.direction", DIRECTIONS),
                   _number(raw.get("tolerance"), f"{where}.tolerance", 0), relative)

    def describe(self) -> str:
        worse = "increase" if self.direction == "lower" else "decrease"
        amount = f"{self.tolerance:.2%}" if self.relative else f"{self.tolerance:g}"
        return f"{self.metric} must not {worse} by more than {amount}"


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment's analysis settings; :meth:`from_dict` validates the dict form (unknown keys rejected).

    Dict form::

        {"experiment_id": "exp-42",
         "arms": [{"name": "control", "model_version": "ranker@3", "split": 0.5},
                  {"name": "treatment", "model_version": "ranker@4", "split": 0.5}],
         "control": "control",                       # default: the first arm
         "primary_metric": {"metric": "conversion", "direction": "higher"},   # or just "conversion"
         "guardrails": [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05}],
         "metrics": {"conversion": {"aggregate": "max"}, "revenue": {"aggregate": "sum"}},
         "confidence": 0.95, "srm_alpha": 0.001, "covariate": "pre_revenue",
         "min_units_per_arm": 100, "mixing_sd": 0.05, "guardrail_interval": "sequential",
         "max_crossover_fraction": 0.001, "start": "2024-01-01", "end": null,
         "unit_column": "unit_id", "arm_column": "arm", "timestamp_column": "timestamp"}
    """

    arms: tuple[ArmConfig, ...]
    primary_metric: str
    control: str = ""
    primary_direction: str = "higher"
    guardrails: tuple[GuardrailConfig, ...] = ()
    metrics: Mapping[str, MetricConfig] = field(default_factory=dict)
    confidence: float = 0.95
    srm_alpha: float = 0.001
    covariate: str | Mapping[str, str] | None = None
    min_units_per_arm: int = 100
    mixing_sd: float = stats.DEFAULT_MIXING_SD
    guardrail_interval: str = "sequential"
    max_crossover_fraction: float = 0.001
    experiment_id: str = ""
    start: Any = None
    end: Any = None
    unit_column: str = "unit_id"
    arm_column: str = "arm"
    timestamp_column: str = "timestamp"

    _KEYS = ("experiment_id", "arms", "control", "primary_metric", "guardrails", "metrics", "confidence", "srm_alpha",
             "covariate", "min_units_per_arm", "mixing_sd", "guardrail_interval", "max_crossover_fraction", "start",
             "end", "unit_column", "arm_column", "timestamp_column")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExperimentConfig:
        _keys(raw, "config", cls._KEYS)
        arms = _arms(raw.get("arms"))
        names = [a.name for a in arms]
        control = raw.get("control") or names[0]
        if control not in names:
            raise InvalidInput("config.control", f"{control!r} is not one of the arms {names}")
        metrics = _metrics(raw.get("metrics") or {})
        primary, direction = _primary_metric(raw.get("primary_metric"), metrics)
        guardrails = _guardrails(raw.get("guardrails") or [])
        covariate = _covariate(raw.get("covariate"))
        min_units = _min_units(raw.get("min_units_per_arm", 100))
        start, end = _window(raw)
        return cls(
            arms=arms, primary_metric=primary, control=control, primary_direction=direction,
            guardrails=guardrails, metrics=metrics,
            confidence=_number(raw.get("confidence", 0.95), "config.confidence", 0, 1, True, True),
            srm_alpha=_number(raw.get("srm_alpha", 0.001), "config.srm_alpha", 0, 1, True, True),
            covariate=covariate, min_units_per_arm=min_units,
            mixing_sd=_number(raw.get("mixing_sd", stats.DEFAULT_MIXING_SD), "config.mixing_sd", 0, open_low=True),
            guardrail_interval=_choice(raw.get("guardrail_interval", "sequential"), "config.guardrail_interval", GUARDRAIL_INTERVALS),
            max_crossover_fraction=_number(raw.get("max_crossover_fraction", 0.001), "config.max_crossover_fraction", 0, 1),
            experiment_id=str(raw.get("experiment_id") or ""), start=start, end=end,
            unit_column=_text(raw.get("unit_column", "unit_id"), "config.unit_column"),
            arm_column=_text(raw.get("arm_column", "arm"), "config.arm_column"),
            timestamp_column=_text(raw.get("timestamp_column", "timestamp"), "config.timestamp_column"),
        )

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].name

    @property
    def treatments(self) -> list[str]:
        return [a.name for a in self.arms if a.name != self.control_arm]

    def metric(self, name: str) -> MetricConfig:
        return self.metrics.get(name) or MetricConfig(name)

    def metric_names(self) -> list[str]:
        names = [self.primary_metric, *(g.metric for g in self.guardrails), *self.metrics]
        return list(dict.fromkeys(names))

    def covariate_for(self, metric: str) -> str | None:
        if isinstance(self.covariate, Mapping):
            return self.covariate.get(metric)
        return self.covariate

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "arms": [{"name": a.name, "model_version": a.model_version, "split": a.split} for a in self.arms],
            "control": self.control_arm,
            "primary_metric": {"metric": self.primary_metric, "direction": self.primary_direction},
            "guardrails": [{"metric": g.metric, "direction": g.direction, "tolerance": g.tolerance, "relative": g.relative}
                           for g in self.guardrails],
            "metrics": {n: {"aggregate": m.aggregate, "kind": m.kind} for n, m in self.metrics.items()},
            "confidence": self.confidence, "srm_alpha": self.srm_alpha,
            "covariate": dict(self.covariate) if isinstance(self.covariate, Mapping) else self.covariate,
            "min_units_per_arm": self.min_units_per_arm, "mixing_sd": self.mixing_sd,
            "guardrail_interval": self.guardrail_interval, "max_crossover_fraction": self.max_crossover_fraction,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "unit_column": self.unit_column, "arm_column": self.arm_column, "timestamp_column": self.timestamp_column,
        }


def _timestamp(value, field: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"is not a timestamp: {error}") from None
    if ts is pd.NaT:
        raise InvalidInput(field, "is not a timestamp")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# the parts of ExperimentConfig.from_dict, each validated where it is read


def _arms(arms_raw: Any) -> tuple[ArmConfig, ...]:
    if isinstance(arms_raw, Mapping):
        arms_raw = [{"name": name, **(spec if isinstance(spec, Mapping) else {"split": spec})} for name, spec in arms_raw.items()]
    if not isinstance(arms_raw, Sequence) or isinstance(arms_raw, str) or len(arms_raw) < 2:
        raise InvalidInput("config.arms", "needs at least two arms (control and a treatment)")
    arms = []
    for i, arm in enumerate(arms_raw):
        where = f"config.arms[{i}]"
        _keys(arm, where, ("name", "model_version", "split"))
        arms.append(ArmConfig(_text(arm.get("name"), f"{where}.name"),
                              str(arm.get("model_version") or ""),
                              _number(arm.get("split"), f"{where}.split", 0, open_low=True)))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise InvalidInput("config.arms", f"arm names must be distinct, got {names}")
    return tuple(arms)


def _metric_config(name: str, spec: Mapping[str, Any], where: str) -> MetricConfig:
    return MetricConfig(name, _choice(spec.get("aggregate", "mean"), f"{where}.aggregate", AGGREGATES),
                        _choice(spec.get("kind", "auto"), f"{where}.kind", KINDS))


def _metrics(metrics_raw: Any) -> dict[str, MetricConfig]:
    if not isinstance(metrics_raw, Mapping):
        raise InvalidInput("config.metrics", f"must be a mapping of metric name to settings, got {type(metrics_raw).__name__}")
    metrics: dict[str, MetricConfig] = {}
    for name, spec in metrics_raw.items():
        where = f"config.metrics.{name}"
        spec = spec or {}
        _keys(spec, where, ("aggregate", "kind"))
        metrics[str(name)] = _metric_config(str(name), spec, where)
    return metrics


def _primary_metric(primary: Any, metrics: dict[str, MetricConfig]) -> tuple[str, str]:
    """The primary metric's name and better direction; its aggregate or kind, when given, go into ``metrics``."""
    direction = "higher"
    if isinstance(primary, Mapping):
        _keys(primary, "config.primary_metric", ("metric", "direction", "aggregate", "kind"))
        spec = primary
        primary = _text(spec.get("metric"), "config.primary_metric.metric")
        direction = _choice(spec.get("direction", "higher"), "config.primary_metric.direction", DIRECTIONS)
        if "aggregate" in spec or "kind" in spec:
            metrics[primary] = _metric_config(primary, spec, "config.primary_metric")
    return _text(primary, "config.primary_metric"), direction


def _guardrails(guardrails_raw: Any) -> tuple[GuardrailConfig, ...]:
    if not isinstance(guardrails_raw, Sequence) or isinstance(guardrails_raw, str):
        raise InvalidInput("config.guardrails", "must be a list")
    return tuple(GuardrailConfig.from_dict(g, f"config.guardrails[{i}]") for i, g in enumerate(guardrails_raw))


def _covariate(covariate: Any) -> str | dict[str, str] | None:
    if isinstance(covariate, Mapping):
        return {str(k): _text(v, f"config.covariate.{k}") for k, v in covariate.items()}
    if covariate is not None:
        return _text(covariate, "config.covariate")
    return None


def _min_units(min_units: Any) -> int:
    if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 2:
        raise InvalidInput("config.min_units_per_arm", f"must be an integer >= 2, got {min_units!r}")
    return min_units


def _window(raw: Mapping[str, Any]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    start, end = (_timestamp(raw.get(key), f"config.{key}") for key in ("start", "end"))
    if start is not None and end is not None and end <= start:
        raise InvalidInput("config.end", f"{end} is not after start {start}")
    return start, end


def coerce_config(config: ExperimentConfig | Mapping[str, Any]) -> ExperimentConfig:
    """A validated :class:`ExperimentConfig` from one built in code or from its dict form."""
    if isinstance(config, ExperimentConfig):
        return ExperimentConfig.from_dict(config.as_dict())  # validates one built in code, too
    if isinstance(config, Mapping):
        return ExperimentConfig.from_dict(config)
    raise InvalidInput("config", f"must be an ExperimentConfig or a mapping, got {type(config).__name__}")
