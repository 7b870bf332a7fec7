"""Analysis of an online experiment: plain events in, an :class:`ExperimentAnalysis` of plain data out.

:func:`analyze_experiment` takes the experiment's events (a pandas frame) and its configuration
(:class:`ExperimentConfig` or the equivalent dict) and computes, for every configured metric, per-arm means
with intervals, each treatment arm's difference and relative lift against control with the test that fits
the metric, CUPED when a pre-period covariate is configured, an always-valid p-value for daily peeking,
the same numbers cumulatively per day, a sample-ratio-mismatch check, and one verdict per guardrail.
The statistics are the functions of :mod:`eval_platform.online.stats`.

Decisions, each made to fail closed:

* **Rows.** One row per event or per unit; either way the analysis aggregates to the randomisation unit
  first (``unit_column``), because a unit's events are correlated. A metric's ``aggregate`` says how:
  ``mean`` (default; the unit's average over its events, e.g. latency), ``sum`` (revenue, clicks per
  unit), ``max`` (converted at least once, for 0/1 events) or ``count`` (events with a value). On per-unit
  rows every aggregate but ``count`` is the value itself. A ``nan`` metric value means "not measured on this
  event" and is skipped; a unit without any measured value is left out of that metric (its ``n`` shrinks).
* **Kind.** ``proportion`` (0/1 per unit: Wilson intervals, two-proportion z-test) or ``mean`` (Student-t
  intervals, Welch's t-test); ``auto`` (default) picks ``proportion`` when every unit value is 0 or 1.
* **Days.** Day ``d`` covers ``[start + d days, start + d + 1 days)`` in UTC (naive timestamps are UTC);
  ``start`` defaults to midnight UTC of the first event. The analysis of day ``d`` is *cumulative*: units
  that arrived by the end of day ``d``, each aggregated over its events up to then. Events before
  ``start`` or at/after ``end`` are excluded and counted.
* **Trust.** The result is *untrustworthy* (every guardrail ``no_decision``, the primary outcome
  ``untrustworthy``) when the SRM check fires at ``srm_alpha``, when events name an arm that is not
  configured, when more than ``max_crossover_fraction`` of units appear in two arms (such units are
  excluded in any case), or when there are no units.
* **CUPED.** ``covariate`` names a per-unit pre-period column (for every metric, or a mapping by metric).
  It must be constant within a unit; units without a value get the mean of the others (any function of
  pre-period data keeps CUPED unbiased). When it is configured, the reported test, lift and sequential
  p-value of that metric use the CUPED-adjusted values; the unadjusted ones are reported beside them.
* **Sequential.** The always-valid p-value is the mSPRT of :func:`~eval_platform.online.stats.always_valid_pvalues`
  over the daily looks, with ``tau^2 = (mixing_sd * s)^2`` where ``s^2`` is the metric's pooled per-unit
  variance at that look (``mixing_sd`` in units of one unit's standard deviation, default 0.05); on the lift
  scale ``tau = mixing_sd * s / |control mean|``. The primary outcome is decided by the always-valid
  p-value, so looking at it daily does not inflate false positives.
* **Guardrails.** ``{metric, direction, tolerance, relative}``: ``direction`` is the better direction
  (``higher`` or ``lower``), ``tolerance`` the largest regression allowed, relative to control
  (``relative: true``, default: 0.02 is 2 %) or in the metric's units. The harm interval (the change,
  turned so that positive is worse) at ``confidence`` decides: ``pass`` when its upper end is within the
  tolerance, ``fail`` when its lower end is beyond it (a regression beyond tolerance with that
  confidence), ``no_decision`` when it straddles the tolerance (not enough data yet). By default the
  interval is the always-valid confidence sequence (``guardrail_interval: sequential``), so re-running the
  gate every day until it passes cannot sneak a regression through; ``fixed`` uses the ordinary interval.
  Untrustworthy data, a missing metric column, fewer than ``min_units_per_arm`` units with a value in
  either arm, or an undefined interval give ``no_decision``. With several treatment arms each gets its own
  verdict per guardrail (no multiplicity correction). The overall verdict is ``no_decision`` when the result
  is untrustworthy or no guardrail is configured, else ``fail`` when any verdict fails, else
  ``no_decision`` when any is undecided, else ``pass``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats as _st
from eval_platform.core.records import json_safe
from eval_platform.online import stats

PASS, FAIL, NO_DECISION = "pass", "fail", "no_decision"
#: Version of the analysis logic (and of ``stats``); the experiment-analysis asset's code version.
ANALYSIS_CODE_VERSION = "1"
AGGREGATES = ("mean", "sum", "max", "count")
KINDS = ("auto", "proportion", "mean")
DIRECTIONS = ("higher", "lower")
GUARDRAIL_INTERVALS = ("sequential", "fixed")
DAY = pd.Timedelta(days=1)


# ------------------------------------------------------------------------------------------------------
# Configuration


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
    name: str
    model_version: str
    split: float


@dataclass(frozen=True)
class MetricConfig:
    name: str
    aggregate: str = "mean"
    kind: str = "auto"


@dataclass(frozen=True)
class GuardrailConfig:
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
        arms_raw = raw.get("arms")
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
        control = raw.get("control") or names[0]
        if control not in names:
            raise InvalidInput("config.control", f"{control!r} is not one of the arms {names}")

        metrics: dict[str, MetricConfig] = {}
        metrics_raw = raw.get("metrics") or {}
        if not isinstance(metrics_raw, Mapping):
            raise InvalidInput("config.metrics", f"must be a mapping of metric name to settings, got {type(metrics_raw).__name__}")
        for name, spec in metrics_raw.items():
            where = f"config.metrics.{name}"
            spec = spec or {}
            _keys(spec, where, ("aggregate", "kind"))
            metrics[str(name)] = MetricConfig(str(name), _choice(spec.get("aggregate", "mean"), f"{where}.aggregate", AGGREGATES),
                                              _choice(spec.get("kind", "auto"), f"{where}.kind", KINDS))

        primary = raw.get("primary_metric")
        direction = "higher"
        if isinstance(primary, Mapping):
            _keys(primary, "config.primary_metric", ("metric", "direction", "aggregate", "kind"))
            spec = primary
            primary = _text(spec.get("metric"), "config.primary_metric.metric")
            direction = _choice(spec.get("direction", "higher"), "config.primary_metric.direction", DIRECTIONS)
            if "aggregate" in spec or "kind" in spec:
                metrics[primary] = MetricConfig(primary, _choice(spec.get("aggregate", "mean"), "config.primary_metric.aggregate", AGGREGATES),
                                                _choice(spec.get("kind", "auto"), "config.primary_metric.kind", KINDS))
        primary = _text(primary, "config.primary_metric")

        guardrails = []
        guardrails_raw = raw.get("guardrails") or []
        if not isinstance(guardrails_raw, Sequence) or isinstance(guardrails_raw, str):
            raise InvalidInput("config.guardrails", "must be a list")
        for i, g in enumerate(guardrails_raw):
            guardrails.append(GuardrailConfig.from_dict(g, f"config.guardrails[{i}]"))

        covariate = raw.get("covariate")
        if isinstance(covariate, Mapping):
            covariate = {str(k): _text(v, f"config.covariate.{k}") for k, v in covariate.items()}
        elif covariate is not None:
            covariate = _text(covariate, "config.covariate")

        min_units = raw.get("min_units_per_arm", 100)
        if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 2:
            raise InvalidInput("config.min_units_per_arm", f"must be an integer >= 2, got {min_units!r}")
        start, end = (_timestamp(raw.get(key), f"config.{key}") for key in ("start", "end"))
        if start is not None and end is not None and end <= start:
            raise InvalidInput("config.end", f"{end} is not after start {start}")
        return cls(
            arms=tuple(arms), primary_metric=primary, control=control, primary_direction=direction,
            guardrails=tuple(guardrails), metrics=metrics,
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


def check_events(events: pd.DataFrame, config: ExperimentConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a batch of events against an experiment's configuration without analysing it: raises
    :class:`~eval_platform.core.errors.InvalidInput` naming the column and row of the first malformed value
    (as :func:`analyze_experiment` would), else returns the batch's data-quality record."""
    return _prepare(events, _coerce_config(config))[4]


def _coerce_config(config) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return ExperimentConfig.from_dict(config.as_dict())  # validates one built in code, too
    if isinstance(config, Mapping):
        return ExperimentConfig.from_dict(config)
    raise InvalidInput("config", f"must be an ExperimentConfig or a mapping, got {type(config).__name__}")


# ------------------------------------------------------------------------------------------------------
# Result


@dataclass
class ExperimentAnalysis:
    """Everything :func:`analyze_experiment` found, as plain data (``as_json`` for storage).

    * ``arms``: by arm, ``model_version``, configured ``split``, ``units`` and ``events`` analysed.
    * ``srm``: the sample-ratio check over units (:class:`~eval_platform.online.stats.SrmResult` as a dict).
    * ``metrics``: by metric, ``status`` (``ok``/``missing``), ``aggregate``, ``kind``, ``per_arm`` means with
      intervals, and by treatment arm the ``test``, ``lift``, ``cuped`` (when configured) and ``sequential``
      results, plus ``decision_estimator`` (``cuped`` or ``raw``: which numbers decide).
    * ``primary``: by treatment arm, the primary metric's lift, p-values and ``outcome``
      (``treatment_better``, ``treatment_worse``, ``inconclusive``, ``insufficient_data``, ``untrustworthy``).
    * ``guardrails``: one verdict record per (guardrail, treatment arm); ``guardrail_verdict`` combines them.
    * ``daily``: one row per (day, metric, treatment arm), cumulative: ``n_control``/``n_treatment`` and the
      unadjusted ``mean_control``/``mean_treatment``; ``difference``, ``lift`` (with its interval) and
      ``p_value`` of the deciding estimator (``estimator``: ``cuped`` or ``raw``); the running
      ``always_valid_p_value`` and the confidence sequence ``cs_low``/``cs_high`` of the difference.
      ``daily_srm``: one row per day with the cumulative units per arm and the SRM p-value.
    * ``data_quality``: excluded events, unknown arms, crossover units, imputed covariates, warnings.
    """

    experiment_id: str
    control: str
    arms: dict[str, dict]
    trustworthy: bool
    untrustworthy_reasons: list[str]
    srm: dict | None
    metrics: dict[str, dict]
    primary: dict[str, dict]
    guardrails: list[dict]
    guardrail_verdict: str
    guardrail_reasons: list[str]
    daily: list[dict]
    daily_srm: list[dict]
    data_quality: dict[str, Any]
    config: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe dict: ``nan``/``inf`` become ``None``, numpy scalars Python ones, tuples lists."""
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})


# ------------------------------------------------------------------------------------------------------
# Preparing the events


def _prepare(events, cfg: ExperimentConfig):
    """Validated events restricted to the window, with ``_unit`` codes and ``_day`` indices, and the
    data-quality record. Raises ``InvalidInput`` for malformed input; records missing data."""
    if not isinstance(events, pd.DataFrame):
        raise InvalidInput("events", f"must be a pandas DataFrame, got {type(events).__name__}")
    for column in (cfg.unit_column, cfg.arm_column, cfg.timestamp_column):
        if column not in events.columns:
            raise InvalidInput(column, "column missing from the events")
    quality: dict[str, Any] = {"events_in": int(len(events)), "warnings": []}
    metric_columns = [m for m in cfg.metric_names() if m in events.columns]
    quality["missing_metric_columns"] = [m for m in cfg.metric_names() if m not in events.columns]
    covariates = {}
    for metric in cfg.metric_names():
        column = cfg.covariate_for(metric)
        if column is None:
            continue
        if column not in events.columns:
            quality["warnings"].append(f"covariate column {column!r} missing: {metric} analysed without CUPED")
        else:
            covariates[metric] = column
    covariate_columns = sorted(set(covariates.values()))

    units = events[cfg.unit_column]
    if units.isna().any():
        raise InvalidInput(cfg.unit_column, f"missing at row {int(np.flatnonzero(units.isna().to_numpy())[0])}")
    arms = events[cfg.arm_column]
    if arms.isna().any():
        raise InvalidInput(cfg.arm_column, f"missing at row {int(np.flatnonzero(arms.isna().to_numpy())[0])}")
    try:
        ts = pd.to_datetime(events[cfg.timestamp_column], utc=True)
    except (TypeError, ValueError) as error:
        raise InvalidInput(cfg.timestamp_column, f"cannot be read as timestamps: {error}") from None
    if ts.isna().any():
        raise InvalidInput(cfg.timestamp_column, f"missing at row {int(np.flatnonzero(ts.isna().to_numpy())[0])}")

    frame = pd.DataFrame({"_unit_id": units.to_numpy(), "_arm": arms.astype(str).to_numpy(), "_ts": ts.to_numpy()},
                         index=events.index)
    for column in dict.fromkeys(metric_columns + covariate_columns):
        values = events[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise InvalidInput(column, f"must be numeric, got dtype {values.dtype}")
        values = values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            raise InvalidInput(column, f"must be finite; row {int(np.flatnonzero(infinite)[0])} is {values[infinite][0]}")
        frame[column] = values

    start = cfg.start if cfg.start is not None else (frame["_ts"].min().floor("D") if len(frame) else None)
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["_ts"] >= start).to_numpy()
    if cfg.end is not None:
        keep &= (frame["_ts"] < cfg.end).to_numpy()
    quality["events_outside_window"] = int((~keep).sum())
    frame = frame[keep]

    known = frame["_arm"].isin([a.name for a in cfg.arms]).to_numpy()
    unknown = frame[~known]
    quality["unknown_arm_events"] = int(len(unknown))
    quality["unknown_arms"] = sorted(unknown["_arm"].unique().tolist())
    frame = frame[known]

    arm_count = frame.groupby("_unit_id", sort=False)["_arm"].nunique()
    crossover = arm_count.index[arm_count.to_numpy() > 1]
    quality["crossover_units"] = int(len(crossover))
    quality["crossover_fraction"] = len(crossover) / len(arm_count) if len(arm_count) else 0.0
    if len(crossover):
        frame = frame[~frame["_unit_id"].isin(crossover)]

    frame = frame.copy()
    frame["_unit"], unit_ids = pd.factorize(frame["_unit_id"])
    frame["_day"] = ((frame["_ts"] - start) // DAY).astype(np.int64) if len(frame) else np.zeros(0, np.int64)
    quality["events_analysed"] = int(len(frame))
    quality["start"] = None if start is None else start.isoformat()
    quality["end"] = None if cfg.end is None else cfg.end.isoformat()
    return frame, unit_ids, start, covariates, quality


def _unit_covariates(frame: pd.DataFrame, column: str, n_units: int, quality: dict) -> np.ndarray:
    """One covariate value per unit code (constant within a unit; missing ones get the observed mean)."""
    grouped = frame.groupby("_unit")[column]
    distinct = grouped.nunique()
    varying = distinct.index[distinct.to_numpy() > 1]
    if len(varying):
        raise InvalidInput(column, f"pre-period covariate varies within unit {frame.loc[frame['_unit'] == varying[0], '_unit_id'].iloc[0]!r}")
    values = np.full(n_units, np.nan)
    first = grouped.first()
    values[first.index.to_numpy()] = first.to_numpy()
    missing = np.isnan(values)
    record = quality.setdefault("covariate_imputed_units", {})
    record[column] = int(missing.sum())
    if missing.all():
        return values
    values[missing] = np.nanmean(values)
    return values


# ------------------------------------------------------------------------------------------------------
# Per-look statistics


def _per_arm(values: np.ndarray, kind: str, confidence: float) -> dict:
    if values.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "se": float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan"), "confidence": confidence, "method": "none"}
    if kind == "proportion":
        return stats.proportion_ci(int(round(values.sum())), values.size, confidence).as_dict()
    return stats.mean_ci(values, confidence).as_dict()


def _summary(values: np.ndarray, kind: str) -> stats.Summary:
    if kind == "proportion":
        p = float(values.mean())
        return stats.Summary(int(values.size), p, p * (1 - p))
    return stats.summarize(values)


def _compare(c: np.ndarray, t: np.ndarray, cx: np.ndarray | None, tx: np.ndarray | None, kind: str,
             cfg: ExperimentConfig, previous_p: float, previous_lift_p: float) -> dict:
    """Treatment vs control at one look: test, lift, CUPED, and the sequential results on the deciding
    estimator (CUPED-adjusted when a covariate is given)."""
    alpha = 1 - cfg.confidence
    sc, st = _summary(c, kind), _summary(t, kind)
    if kind == "proportion":
        test = stats.ztest_from_summaries(sc, st, confidence=cfg.confidence)
    else:
        test = stats.welch_from_summaries(sc, st, confidence=cfg.confidence)
    lift = stats.lift_from_summaries(sc, st, cfg.confidence)
    result: dict[str, Any] = {"test": test.as_dict(), "lift": lift.as_dict(), "cuped": None}
    raw_var = [s.var for s in (sc, st)]
    pooled_sd = math.sqrt((sc.n * raw_var[0] + st.n * raw_var[1]) / (sc.n + st.n)) if all(map(math.isfinite, raw_var)) else float("nan")

    decide_test, decide_lift, estimator = test, lift, "raw"
    if cx is not None and tx is not None:
        adjusted = stats.cuped(c, cx, t, tx)
        ac, at = stats.summarize(adjusted.control), stats.summarize(adjusted.treatment)
        cuped_test = stats.welch_from_summaries(ac, at, confidence=cfg.confidence)
        cuped_lift = stats.lift_from_summaries(ac, at, cfg.confidence)
        result["cuped"] = {**adjusted.as_dict(), "test": cuped_test.as_dict(), "lift": cuped_lift.as_dict(),
                           "se_ratio": cuped_test.se / test.se if test.se and math.isfinite(test.se) else float("nan")}
        decide_test, decide_lift, estimator = cuped_test, cuped_lift, "cuped"

    tau2 = float(stats.mixing_variance(pooled_sd, cfg.mixing_sd)) if math.isfinite(pooled_sd) else float("nan")
    diff_var = decide_test.se ** 2 if math.isfinite(decide_test.se) else float("nan")
    sequential = stats.sequential_test(decide_test.estimate, diff_var, tau2, alpha, previous_p)
    control_mean = decide_lift.control_mean
    tau2_lift = tau2 / control_mean ** 2 if control_mean else float("nan")
    lift_var = decide_lift.se ** 2 if math.isfinite(decide_lift.se) else float("nan")
    sequential_lift = stats.sequential_test(decide_lift.lift, lift_var, tau2_lift, alpha, previous_lift_p)
    result.update(decision_estimator=estimator, decision_test=decide_test.as_dict(), decision_lift=decide_lift.as_dict(),
                  sequential=sequential.as_dict(), sequential_lift=sequential_lift.as_dict(), pooled_sd=pooled_sd)
    return result


def _aggregate_partials(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per (unit, day): sum, count and max of each metric column (nan skipped)."""
    if not columns:
        return frame.groupby(["_unit", "_day"], sort=False).size().rename("_events").reset_index()
    grouped = frame.groupby(["_unit", "_day"], sort=False)[columns]
    parts = [grouped.sum().add_suffix("__sum"), grouped.count().add_suffix("__count"), grouped.max().add_suffix("__max")]
    return pd.concat(parts, axis=1).reset_index()


def _unit_values(partials: pd.DataFrame, day: int, columns: list[str], aggregates: Mapping[str, str]) -> pd.DataFrame:
    """Per unit, each metric aggregated over its events up to ``day`` (nan when it has no value)."""
    upto = partials[partials["_day"] <= day]
    grouped = upto.groupby("_unit", sort=True)
    out = pd.DataFrame(index=grouped.size().index)
    for column in columns:
        count = grouped[f"{column}__count"].sum()
        aggregate = aggregates[column]
        if aggregate == "sum":
            value = grouped[f"{column}__sum"].sum()
        elif aggregate == "mean":
            value = grouped[f"{column}__sum"].sum() / count
        elif aggregate == "max":
            value = grouped[f"{column}__max"].max()
        else:
            value = count.astype(np.float64)
        if aggregate != "count":
            value = value.where(count > 0)
        out[column] = value
    return out


# ------------------------------------------------------------------------------------------------------
# Verdicts


def guardrail_verdict(g: GuardrailConfig, arm: str, cfg: ExperimentConfig, metric: dict | None,
                      blockers: list[str]) -> dict:
    """One guardrail's verdict for one treatment arm from the analysed ``metric`` record (as in
    ``ExperimentAnalysis.metrics``, also in its JSON form: undefined numbers are ``None`` there and give
    ``no_decision``). See the module docstring for the rule."""
    record: dict[str, Any] = {"metric": g.metric, "arm": arm, "control": cfg.control_arm, "rule": g.describe(),
                              "direction": g.direction, "tolerance": g.tolerance, "relative": g.relative,
                              "interval_kind": cfg.guardrail_interval, "confidence": cfg.confidence,
                              "estimate": None, "interval": None, "harm_interval": None,
                              "n_control": None, "n_treatment": None}

    def outcome(result: str, message: str) -> dict:
        record.update(outcome=result, message=message)
        return record

    if blockers:
        return outcome(NO_DECISION, "untrustworthy experiment: " + "; ".join(blockers))
    if metric is None or metric["per_arm"] is None or metric["comparisons"].get(arm) is None:
        return outcome(NO_DECISION, f"no data for metric {g.metric} in {cfg.control_arm} and {arm}"
                                    + (f" ({metric['status']})" if metric else ""))
    n_c = metric["per_arm"][cfg.control_arm]["n"]
    n_t = metric["per_arm"][arm]["n"]
    record.update(n_control=n_c, n_treatment=n_t)
    if min(n_c, n_t) < cfg.min_units_per_arm:
        return outcome(NO_DECISION, f"too few units with a value: control {n_c}, {arm} {n_t} "
                                    f"(need {cfg.min_units_per_arm} per arm)")
    comparison = metric["comparisons"][arm]
    if g.relative:
        estimate = comparison["decision_lift"]["lift"]
        source = comparison["sequential_lift"] if cfg.guardrail_interval == "sequential" else comparison["decision_lift"]
    else:
        estimate = comparison["decision_test"]["estimate"]
        source = comparison["sequential"] if cfg.guardrail_interval == "sequential" else comparison["decision_test"]
    low, high = (source["cs_low"], source["cs_high"]) if cfg.guardrail_interval == "sequential" else (source["ci_low"], source["ci_high"])
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in (estimate, low, high)):
        return outcome(NO_DECISION, f"the {'lift' if g.relative else 'difference'} interval of {g.metric} is undefined "
                                    "(zero variance, or a control mean of 0)")
    sign = 1.0 if g.direction == "lower" else -1.0  # harm: positive is worse
    harm_low, harm_high = sorted((sign * low, sign * high))
    record.update(estimate=estimate, interval=[low, high], harm_interval=[harm_low, harm_high])
    unit = "%" if g.relative else ""
    scale = 100 if g.relative else 1

    def fmt(x: float) -> str:
        return f"{x * scale:+.3g}{unit}"

    regression = f"regression interval [{fmt(harm_low)}, {fmt(harm_high)}] vs tolerance {fmt(g.tolerance)}"
    if harm_high <= g.tolerance:
        return outcome(PASS, f"{regression}: within tolerance at {cfg.confidence:.0%} confidence")
    if harm_low > g.tolerance:
        return outcome(FAIL, f"{regression}: regresses beyond tolerance at {cfg.confidence:.0%} confidence")
    return outcome(NO_DECISION, f"{regression}: inconclusive, the interval straddles the tolerance (more data needed)")


def _combine(verdicts: list[dict], blockers: list[str], n_guardrails: int) -> tuple[str, list[str]]:
    if blockers:
        return NO_DECISION, [f"untrustworthy: {b}" for b in blockers]
    if n_guardrails == 0:
        return NO_DECISION, ["no guardrail metric is configured"]
    outcomes = [v["outcome"] for v in verdicts]
    reasons = [f"{v['metric']} ({v['arm']}): {v['outcome']}: {v['message']}" for v in verdicts]
    if FAIL in outcomes:
        return FAIL, reasons
    if NO_DECISION in outcomes:
        return NO_DECISION, reasons
    return PASS, reasons


# ------------------------------------------------------------------------------------------------------
# The analysis


def analyze_experiment(events: pd.DataFrame, config: ExperimentConfig | Mapping[str, Any]) -> ExperimentAnalysis:
    """Analyse one experiment's events (see the module docstring for every decision).

    ``events`` has ``unit_column``, ``arm_column``, ``timestamp_column`` and the metric columns (numeric;
    booleans count as 0/1). Malformed input (a missing id column, a null unit id or arm, an unreadable
    timestamp, a non-numeric or infinite metric value, a covariate varying within a unit, a bad config)
    raises :class:`~eval_platform.core.errors.InvalidInput`. Missing *data* (a metric column absent, an arm
    without units, too few units) does not raise: it turns the affected verdicts into ``no_decision``.
    """
    cfg = _coerce_config(config)
    frame, unit_ids, start, covariates, quality = _prepare(events, cfg)
    control, treatments = cfg.control_arm, cfg.treatments
    arm_names = [a.name for a in cfg.arms]
    n_units_total = len(unit_ids)

    # units: arm and arrival day
    units = frame.groupby("_unit", sort=True).agg(arm=("_arm", "first"), first_day=("_day", "min"), events=("_arm", "size"))
    unit_arm = units["arm"].to_numpy() if n_units_total else np.zeros(0, dtype=object)
    arms_out = {}
    for a in cfg.arms:
        mask = unit_arm == a.name
        arms_out[a.name] = {"model_version": a.model_version, "split": a.split, "units": int(mask.sum()),
                            "events": int(units["events"].to_numpy()[mask].sum()) if n_units_total else 0}

    blockers: list[str] = []
    srm = None
    if n_units_total == 0:
        blockers.append("no units in the configured arms")
    else:
        srm_result = stats.srm_check({a: arms_out[a]["units"] for a in arm_names}, {a.name: a.split for a in cfg.arms},
                                     cfg.srm_alpha)
        srm = srm_result.as_dict()
        if srm_result.fired:
            observed = ", ".join(f"{a} {o}" for a, o in zip(srm_result.arms, srm_result.observed))
            blockers.append(f"sample-ratio mismatch: units {observed} vs configured split "
                            f"(chi2 {srm_result.statistic:.2f}, p = {srm_result.p_value:.3g} < {cfg.srm_alpha:g})")
    if quality["unknown_arm_events"]:
        blockers.append(f"{quality['unknown_arm_events']} event(s) name arms not in the config: {quality['unknown_arms']}")
    if quality["crossover_fraction"] > cfg.max_crossover_fraction:
        blockers.append(f"{quality['crossover_units']} unit(s) ({quality['crossover_fraction']:.2%}) appear in more than one arm "
                        f"(allowed {cfg.max_crossover_fraction:.2%})")

    # metrics, cumulatively per day
    names = cfg.metric_names()
    present = [m for m in names if m not in quality["missing_metric_columns"]]
    aggregates = {m: cfg.metric(m).aggregate for m in present}
    partials = _aggregate_partials(frame, present) if n_units_total else None
    n_days = int(frame["_day"].max()) + 1 if n_units_total else 0
    covariate_values = {column: _unit_covariates(frame, column, n_units_total, quality)
                        for column in sorted(set(covariates.values()))} if n_units_total else {}
    for column, values in covariate_values.items():
        if np.isnan(values).all():
            quality["warnings"].append(f"covariate column {column!r} has no value: CUPED skipped")

    per_day_values = [_unit_values(partials, d, present, aggregates) for d in range(n_days)]
    kinds: dict[str, str] = {}
    for m in present:
        kind = cfg.metric(m).kind
        if kind == "auto":
            final = per_day_values[-1][m].dropna().to_numpy() if n_days else np.zeros(0)
            kind = "proportion" if final.size and np.isin(final, (0.0, 1.0)).all() else "mean"
        elif kind == "proportion":
            final = per_day_values[-1][m].dropna().to_numpy() if n_days else np.zeros(0)
            if final.size and not np.isin(final, (0.0, 1.0)).all():
                raise InvalidInput(f"config.metrics.{m}.kind", f"is proportion but unit values of {m} are not all 0 or 1 "
                                                              f"(aggregate {aggregates[m]})")
        kinds[m] = kind

    metrics_out: dict[str, dict] = {}
    daily: list[dict] = []
    daily_srm: list[dict] = []
    previous = {(m, a): (1.0, 1.0) for m in present for a in treatments}
    dates = [(start + d * DAY).date().isoformat() for d in range(n_days)] if start is not None else []
    for d in range(n_days):
        values = per_day_values[d]
        codes = values.index.to_numpy()
        arm_of = unit_arm[codes]
        counts = {a: int((arm_of == a).sum()) for a in arm_names}
        day_srm = stats.srm_check(counts, {a.name: a.split for a in cfg.arms}, cfg.srm_alpha) if sum(counts.values()) else None
        daily_srm.append({"day": d, "date": dates[d], **{f"units_{a}": counts[a] for a in arm_names},
                          "srm_p_value": day_srm.p_value if day_srm else float("nan")})
        last = d == n_days - 1
        for m in present:
            column = values[m].to_numpy()
            has = ~np.isnan(column)
            covariate = covariate_values.get(covariates.get(m)) if m in covariates else None
            if covariate is not None and np.isnan(covariate).all():
                covariate = None
            by_arm = {a: column[has & (arm_of == a)] for a in arm_names}
            x_by_arm = {a: covariate[codes[has & (arm_of == a)]] for a in arm_names} if covariate is not None else None
            per_arm = {a: _per_arm(by_arm[a], kinds[m], cfg.confidence) for a in arm_names} if last else None
            comparisons = {}
            for a in treatments:
                c, t = by_arm[control], by_arm[a]
                if c.size == 0 or t.size == 0:
                    comparisons[a] = None
                    continue
                comparison = _compare(c, t, x_by_arm[control] if x_by_arm else None, x_by_arm[a] if x_by_arm else None,
                                      kinds[m], cfg, *previous[(m, a)])
                previous[(m, a)] = (comparison["sequential"]["p_value"], comparison["sequential_lift"]["p_value"])
                comparisons[a] = comparison
                daily.append({
                    "day": d, "date": dates[d], "metric": m, "arm": a, "n_control": int(c.size), "n_treatment": int(t.size),
                    "mean_control": float(c.mean()), "mean_treatment": float(t.mean()),
                    "estimator": comparison["decision_estimator"],
                    "difference": comparison["decision_test"]["estimate"],
                    "lift": comparison["decision_lift"]["lift"],
                    "lift_ci_low": comparison["decision_lift"]["ci_low"], "lift_ci_high": comparison["decision_lift"]["ci_high"],
                    "p_value": comparison["decision_test"]["p_value"],
                    "always_valid_p_value": comparison["sequential"]["p_value"],
                    "cs_low": comparison["sequential"]["cs_low"], "cs_high": comparison["sequential"]["cs_high"],
                })
            if last:
                metrics_out[m] = {"status": "ok", "aggregate": aggregates[m], "kind": kinds[m],
                                  "covariate": covariates.get(m) if covariate is not None else None,
                                  "per_arm": per_arm, "comparisons": {a: comparisons.get(a) for a in treatments}}
    for m in names:
        if m not in metrics_out:
            status = "missing" if m in quality["missing_metric_columns"] else "no units"
            metrics_out[m] = {"status": status, "aggregate": cfg.metric(m).aggregate, "kind": kinds.get(m, cfg.metric(m).kind),
                              "covariate": None, "per_arm": None, "comparisons": {a: None for a in treatments}}
        elif any(metrics_out[m]["comparisons"][a] is None for a in treatments):
            metrics_out[m]["status"] = "arm without units"

    # guardrails
    verdicts = [guardrail_verdict(g, a, cfg, metrics_out.get(g.metric), blockers)
                for g in cfg.guardrails for a in treatments]
    verdict, reasons = _combine(verdicts, blockers, len(cfg.guardrails))

    # primary
    primary = {}
    pm = metrics_out[cfg.primary_metric]
    alpha = 1 - cfg.confidence
    for a in treatments:
        comparison = pm["comparisons"].get(a) if pm["per_arm"] else None
        entry: dict[str, Any] = {"metric": cfg.primary_metric, "direction": cfg.primary_direction}
        if comparison is None:
            entry.update(outcome="insufficient_data" if not blockers else "untrustworthy",
                         message=f"no data for {cfg.primary_metric} ({pm['status']})")
            primary[a] = entry
            continue
        n_c, n_t = pm["per_arm"][control]["n"], pm["per_arm"][a]["n"]
        p_seq = comparison["sequential"]["p_value"]
        lift = comparison["decision_lift"]
        entry.update(estimator=comparison["decision_estimator"], n_control=n_c, n_treatment=n_t,
                     difference=comparison["decision_test"]["estimate"], lift=lift["lift"],
                     lift_ci=[lift["ci_low"], lift["ci_high"]], p_value=comparison["decision_test"]["p_value"],
                     always_valid_p_value=p_seq,
                     confidence_sequence=[comparison["sequential"]["cs_low"], comparison["sequential"]["cs_high"]],
                     lift_confidence_sequence=[comparison["sequential_lift"]["cs_low"], comparison["sequential_lift"]["cs_high"]])
        if blockers:
            outcome, message = "untrustworthy", "; ".join(blockers)
        elif min(n_c, n_t) < cfg.min_units_per_arm:
            outcome, message = "insufficient_data", f"{min(n_c, n_t)} units < {cfg.min_units_per_arm} per arm"
        elif p_seq < alpha:
            better = (comparison["decision_test"]["estimate"] > 0) == (cfg.primary_direction == "higher")
            outcome = "treatment_better" if better else "treatment_worse"
            message = f"always-valid p = {p_seq:.3g} < {alpha:.3g}"
        else:
            outcome, message = "inconclusive", f"always-valid p = {p_seq:.3g} >= {alpha:.3g}"
        entry.update(outcome=outcome, message=message)
        primary[a] = entry

    return ExperimentAnalysis(
        experiment_id=cfg.experiment_id, control=control, arms=arms_out, trustworthy=not blockers,
        untrustworthy_reasons=blockers, srm=srm, metrics=metrics_out, primary=primary, guardrails=verdicts,
        guardrail_verdict=verdict, guardrail_reasons=reasons, daily=daily, daily_srm=daily_srm,
        data_quality=quality, config=cfg.as_dict(),
    )


# ------------------------------------------------------------------------------------------------------
# Shadow mode and offline-online agreement


def shadow_comparison(candidate: Mapping[Any, Any], production: Mapping[Any, Any], kind: str = "labels",
                      k: int = 10, confidence: float = 0.95) -> dict[str, Any]:
    """Compare a shadow candidate's logged outputs with production's, keyed by request id.

    ``kind="labels"``: outputs are labels, compared by :func:`~eval_platform.online.stats.label_agreement`
    (metric ``shadow_agreement``). ``kind="rankings"``: outputs are ranked item lists (best first), compared
    by Spearman, Kendall and overlap@k (:func:`~eval_platform.online.stats.ranking_agreement`; metrics
    ``shadow_spearman``, ``shadow_kendall``, ``shadow_overlap_at_k``). Only requests both sides logged are
    compared; the others are counted (``only_candidate``, ``only_production``) and ``coverage`` is the share
    of production's requests the candidate answered, so a candidate that silently drops requests shows.
    A request whose output is ``None`` on either side counts as not logged. No common request gives ``nan``
    metrics.
    """
    _choice(kind, "kind", ("labels", "rankings"))
    if not isinstance(candidate, Mapping) or not isinstance(production, Mapping):
        raise InvalidInput("candidate/production", "must be mappings from request id to output")
    cand = {r: v for r, v in candidate.items() if v is not None}
    prod = {r: v for r, v in production.items() if v is not None}
    common = [r for r in prod if r in cand]
    out: dict[str, Any] = {"kind": kind, "n_candidate": len(cand), "n_production": len(prod), "n_common": len(common),
                           "only_candidate": len(set(cand) - set(prod)), "only_production": len(set(prod) - set(cand)),
                           "coverage": len(common) / len(prod) if prod else float("nan")}
    if kind == "labels":
        if common:
            result = stats.label_agreement([cand[r] for r in common], [prod[r] for r in common], confidence)
            out["metrics"] = {"shadow_agreement": result.rate}
            out["agreement"] = result.as_dict()
        else:
            out["metrics"] = {"shadow_agreement": float("nan")}
        return out
    if common:
        result = stats.ranking_agreement([cand[r] for r in common], [prod[r] for r in common], k)
        out["metrics"] = {"shadow_spearman": result["spearman"], "shadow_kendall": result["kendall"],
                          "shadow_overlap_at_k": result["overlap_at_k"]}
        out["rankings"] = result
    else:
        out["metrics"] = {"shadow_spearman": float("nan"), "shadow_kendall": float("nan"), "shadow_overlap_at_k": float("nan")}
    out["k"] = k
    return out


SHADOW_SOURCES = ("candidate", "production")
SHADOW_KINDS = ("labels", "rankings")


def analyze_shadow(log: pd.DataFrame, kind: str = "labels", k: int = 10, confidence: float = 0.95) -> dict[str, Any]:
    """:func:`shadow_comparison` of a shadow log: one row per (``request_id``, ``source``) with ``source``
    ``candidate`` or ``production`` and the logged ``output`` (a label, or a list of item ids best first).

    The result has ``metrics`` (the shadow metrics plus ``shadow_coverage``, the share of production's
    requests the candidate answered), the comparison's counts, and ``trustworthy``: false, with the reason,
    when the two sides have no request in common. Raises ``InvalidInput`` for a missing column, an unknown
    source, or a request logged twice by one source.
    """
    _choice(kind, "kind", SHADOW_KINDS)
    for column in ("request_id", "source", "output"):
        if column not in log.columns:
            raise InvalidInput(column, "column missing from the shadow log")
    unknown = sorted(set(log["source"].dropna().astype(str)) - set(SHADOW_SOURCES))
    if unknown or log["source"].isna().any():
        raise InvalidInput("source", f"must be candidate or production; found {unknown or ['a missing value']}")
    duplicated = log.duplicated(["request_id", "source"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InvalidInput("request_id", f"row {row}: request {log['request_id'].iloc[row]!r} is logged twice by one source")

    def outputs(source: str) -> dict:
        side = log[log["source"] == source]
        values = side["output"].tolist()
        if kind == "rankings":
            values = [None if v is None else list(v) for v in values]
        return dict(zip(side["request_id"].tolist(), values, strict=True))

    comparison = shadow_comparison(outputs("candidate"), outputs("production"), kind, k, confidence)
    comparison["metrics"]["shadow_coverage"] = comparison["coverage"]
    reasons = [] if comparison["n_common"] else ["the candidate and production logged no request in common"]
    return json_safe({**comparison, "trustworthy": not reasons, "untrustworthy_reasons": reasons,
                      "config": {"kind": kind, "k": k, "confidence": confidence}})


def offline_online_agreement(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Does the offline eval predict online wins? Relate offline deltas to online deltas across experiments.

    Each record has ``offline_delta`` (candidate minus baseline on the offline gate metric) and
    ``online_delta`` (e.g. the primary metric's lift), **both signed so that positive means better**, and
    optionally ``experiment_id``, ``metric`` and ``online_significant``. Records with a missing or
    non-finite delta are excluded (and listed). Returns ``n``, Pearson ``r`` and Spearman ``rho`` with their
    p-values (``nan`` below 3 experiments or when either side is constant), ``sign_agreement`` (share of
    experiments whose offline and online deltas have the same sign, over those where both are non-zero;
    ``nan`` if none), ``sign_agreement_significant`` (the same over online-significant experiments, when
    that flag is given), and the per-experiment ``records`` with ``same_sign``.
    """
    rows, excluded = [], []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidInput(f"records[{i}]", f"must be a mapping, got {type(record).__name__}")
        off, on = record.get("offline_delta"), record.get("online_delta")
        ok = all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)
                 for v in (off, on))
        label = record.get("experiment_id", i)
        if not ok:
            excluded.append({"experiment_id": label, "reason": "offline_delta or online_delta missing or not finite"})
            continue
        same = None if off == 0 or on == 0 else bool((off > 0) == (on > 0))
        rows.append({"experiment_id": label, "metric": record.get("metric"), "offline_delta": float(off),
                     "online_delta": float(on), "online_significant": record.get("online_significant"), "same_sign": same})
    x = np.array([r["offline_delta"] for r in rows], dtype=np.float64)
    y = np.array([r["online_delta"] for r in rows], dtype=np.float64)
    nan = float("nan")
    pearson = pearson_p = spearman = spearman_p = nan
    if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        pearson, pearson_p = (float(v) for v in _st.pearsonr(x, y))
        rho = _st.spearmanr(x, y)
        spearman, spearman_p = float(rho.statistic), float(rho.pvalue)
    signs = [r["same_sign"] for r in rows if r["same_sign"] is not None]
    significant = [r["same_sign"] for r in rows if r["same_sign"] is not None and r["online_significant"] is True]
    return {"n": len(rows), "pearson": pearson, "pearson_p_value": pearson_p, "spearman": spearman,
            "spearman_p_value": spearman_p, "sign_agreement": sum(signs) / len(signs) if signs else nan,
            "sign_agreement_n": len(signs),
            "sign_agreement_significant": sum(significant) / len(significant) if significant else nan,
            "sign_agreement_significant_n": len(significant), "records": rows, "excluded": excluded}


def format_analysis(analysis: ExperimentAnalysis) -> str:
    """A short human-readable report of an analysis (for the CLI and the demo)."""

    def pct(x) -> str:
        return "n/a" if not isinstance(x, float | int) or not math.isfinite(x) else f"{x * 100:+.2f}%"

    def num(x) -> str:
        return "n/a" if not isinstance(x, float | int) or not math.isfinite(x) else f"{x:.4g}"

    lines = [f"experiment {analysis.experiment_id or '(unnamed)'}: control {analysis.control}"]
    for name, arm in analysis.arms.items():
        lines.append(f"  arm {name:<12} model {arm['model_version'] or '-':<16} split {arm['split']:<6g} "
                     f"units {arm['units']:>8} events {arm['events']:>9}")
    if analysis.srm:
        lines.append(f"  SRM: chi2 {analysis.srm['statistic']:.3f}, p = {analysis.srm['p_value']:.3g}"
                     f"{' FIRED' if analysis.srm['fired'] else ' (ok)'}")
    lines.append("  trustworthy" if analysis.trustworthy else "  UNTRUSTWORTHY: " + "; ".join(analysis.untrustworthy_reasons))
    for name, metric in analysis.metrics.items():
        if metric["per_arm"] is None:
            lines.append(f"  {name}: {metric['status']}")
            continue
        means = ", ".join(f"{a} {num(v['mean'])} [{num(v['ci_low'])}, {num(v['ci_high'])}]" for a, v in metric["per_arm"].items())
        lines.append(f"  {name} ({metric['kind']}, {metric['aggregate']} per unit): {means}")
        for arm, comparison in metric["comparisons"].items():
            if comparison is None:
                continue
            lift, test = comparison["decision_lift"], comparison["decision_test"]
            extra = ""
            if comparison["cuped"]:
                extra = f", CUPED theta {num(comparison['cuped']['theta'])} variance -{comparison['cuped']['variance_reduction']:.1%}"
            lines.append(f"    {arm} vs {analysis.control}: lift {pct(lift['lift'])} [{pct(lift['ci_low'])}, {pct(lift['ci_high'])}], "
                         f"{test['test']} p = {num(test['p_value'])}, always-valid p = {num(comparison['sequential']['p_value'])}{extra}")
    for arm, primary in analysis.primary.items():
        lines.append(f"  primary {primary['metric']} ({arm}): {primary['outcome']}: {primary['message']}")
    for verdict in analysis.guardrails:
        lines.append(f"  guardrail {verdict['rule']} ({verdict['arm']}): {verdict['outcome']}: {verdict['message']}")
    lines.append(f"  online guardrails: {analysis.guardrail_verdict}")
    return "\n".join(lines)
