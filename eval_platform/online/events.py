"""An online experiment's events, validated and restricted to the analysis window, ready to aggregate by unit.

:func:`prepare_events` checks the id, arm and timestamp columns and the numeric metric and covariate columns
(an error names the column and the first bad row), keeps the events inside ``[start, end)`` of known arms and
of units seen in one arm only, and codes units and days; everything it leaves out is counted in the
data-quality record. :func:`check_events` is the same check on an ingested batch, without the analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.online.config import ExperimentConfig, coerce_config

#: One analysis day: day ``d`` covers ``[start + d days, start + d + 1 days)``.
DAY = pd.Timedelta(days=1)


def check_events(events: pd.DataFrame, config: ExperimentConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Validate a batch of events against an experiment's configuration without analysing it: raises
    :class:`~eval_platform.core.errors.InvalidInput` naming the column and row of the first malformed value
    (as :func:`analyze_experiment` would), else returns the batch's data-quality record."""
    return prepare_events(events, coerce_config(config))[4]


def prepare_events(events: pd.DataFrame, cfg: ExperimentConfig) -> tuple[pd.DataFrame, pd.Index, pd.Timestamp | None, dict[str, str], dict[str, Any]]:
    """Validated events restricted to the window, with ``_unit`` codes and ``_day`` indices; then the unit ids
    (by code), the window's start, the covariate column of each metric that has one, and the data-quality
    record. Raises ``InvalidInput`` for malformed input; records missing data."""
    if not isinstance(events, pd.DataFrame):
        raise InvalidInput("events", f"must be a pandas DataFrame, got {type(events).__name__}")
    for column in (cfg.unit_column, cfg.arm_column, cfg.timestamp_column):
        if column not in events.columns:
            raise InvalidInput(column, "column missing from the events")
    quality: dict[str, Any] = {"events_in": int(len(events)), "warnings": []}
    metric_columns = [m for m in cfg.metric_names() if m in events.columns]
    quality["missing_metric_columns"] = [m for m in cfg.metric_names() if m not in events.columns]
    covariates = _covariate_columns(events, cfg, quality)
    frame = _event_frame(events, cfg, list(dict.fromkeys(metric_columns + sorted(set(covariates.values())))))
    start = cfg.start if cfg.start is not None else (frame["_ts"].min().floor("D") if len(frame) else None)
    frame = _in_window(frame, start, cfg.end, quality)
    frame = _in_known_arms(frame, cfg, quality)
    frame = _without_crossover_units(frame, quality)

    frame = frame.copy()
    frame["_unit"], unit_ids = pd.factorize(frame["_unit_id"])
    frame["_day"] = ((frame["_ts"] - start) // DAY).astype(np.int64) if len(frame) else np.zeros(0, np.int64)
    quality["events_analysed"] = int(len(frame))
    quality["start"] = None if start is None else start.isoformat()
    quality["end"] = None if cfg.end is None else cfg.end.isoformat()
    return frame, unit_ids, start, covariates, quality


def _covariate_columns(events: pd.DataFrame, cfg: ExperimentConfig, quality: dict[str, Any]) -> dict[str, str]:
    """By metric, its configured covariate column when the events have it (a warning for each one missing)."""
    covariates = {}
    for metric in cfg.metric_names():
        column = cfg.covariate_for(metric)
        if column is None:
            continue
        if column not in events.columns:
            quality["warnings"].append(f"covariate column {column!r} missing: {metric} analysed without CUPED")
        else:
            covariates[metric] = column
    return covariates


def _event_frame(events: pd.DataFrame, cfg: ExperimentConfig, value_columns: list[str]) -> pd.DataFrame:
    """``_unit_id``, ``_arm``, ``_ts`` and the value columns as floats; raises naming the first bad value."""
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
    for column in value_columns:
        values = events[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            raise InvalidInput(column, f"must be numeric, got dtype {values.dtype}")
        values = values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            raise InvalidInput(column, f"must be finite; row {int(np.flatnonzero(infinite)[0])} is {values[infinite][0]}")
        frame[column] = values
    return frame


def _in_window(frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, quality: dict[str, Any]) -> pd.DataFrame:
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["_ts"] >= start).to_numpy()
    if end is not None:
        keep &= (frame["_ts"] < end).to_numpy()
    quality["events_outside_window"] = int((~keep).sum())
    return frame[keep]


def _in_known_arms(frame: pd.DataFrame, cfg: ExperimentConfig, quality: dict[str, Any]) -> pd.DataFrame:
    known = frame["_arm"].isin([a.name for a in cfg.arms]).to_numpy()
    unknown = frame[~known]
    quality["unknown_arm_events"] = int(len(unknown))
    quality["unknown_arms"] = sorted(unknown["_arm"].unique().tolist())
    return frame[known]


def _without_crossover_units(frame: pd.DataFrame, quality: dict[str, Any]) -> pd.DataFrame:
    """The events of units seen in one arm only (units in several arms are counted and excluded)."""
    arm_count = frame.groupby("_unit_id", sort=False)["_arm"].nunique()
    crossover = arm_count.index[arm_count.to_numpy() > 1]
    quality["crossover_units"] = int(len(crossover))
    quality["crossover_fraction"] = len(crossover) / len(arm_count) if len(arm_count) else 0.0
    if len(crossover):
        frame = frame[~frame["_unit_id"].isin(crossover)]
    return frame


def unit_covariates(frame: pd.DataFrame, column: str, n_units: int, quality: dict) -> np.ndarray:
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
