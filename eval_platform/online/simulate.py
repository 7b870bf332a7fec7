"""Simulated online experiments with a known true effect, for the demo and the tests.

:func:`simulate_experiment` draws units, assigns them to arms with the given split, lets each one arrive on
a random day and produce events until the end of the experiment, and applies ``true_effect`` to the
treatment arms. Everything comes from one ``numpy.random.default_rng(seed)``, so a seed gives the same frame
on every machine (numpy's ``Generator`` streams are stable for a given numpy version).

The model (per unit ``i``; ``a_i`` activity and ``c_i`` propensity are lognormal with mean about 1, ``c_i``
capped at ``PROPENSITY_CAP``, so units differ a lot, as real users do):

* events: ``1 + Poisson(events_per_unit * a_i * remaining_fraction)``, the first at arrival, the others
  uniform between arrival and the end of the experiment;
* per event ``click ~ Bernoulli(base_click_rate * c_i * (1 + effect))``, ``conversion ~
  Bernoulli(base_conversion_rate * c_i * (1 + effect))``, ``revenue = conversion * Gamma(2, mean_order_value / 2)``;
  a rate that could exceed 1 is rejected, so no probability is ever clipped;
* ``latency_ms = base_latency_ms * (1 + latency_effect) * LogNormal`` (mean 1, per event);
* ``pre_clicks`` and ``pre_revenue``: the unit's clicks and revenue in a pre-period of the same length drawn
  from the same ``a_i, c_i`` without treatment (CUPED covariates, correlated about 0.5 and 0.1 with the
  in-experiment sums); ``pre_period_coverage`` < 1 leaves them ``nan`` for that share of units (new users).

``true_effect`` is therefore exactly the relative lift of the *expected per-unit sums* of clicks,
conversions and revenue of a treatment arm over control (the ``sum`` aggregation of the analysis), and
``latency_effect`` the relative change of mean latency. The frame's ``attrs`` records every parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput

DAY_NS = 86_400 * 10**9
#: Largest per-unit propensity: keeps every event probability below 1 (see the module doc).
PROPENSITY_CAP = 4.0


def _arms_and_split(split, arms) -> tuple[list[str], np.ndarray]:
    if isinstance(split, Mapping):
        names, weights = [str(a) for a in split], list(split.values())
    else:
        weights = list(split)
        if arms is None:
            arms = ["control", "treatment"] if len(weights) == 2 else ["control"] + [f"treatment_{i}" for i in range(1, len(weights))]
        names = [str(a) for a in arms]
        if len(names) != len(weights):
            raise InvalidInput("arms", f"{len(names)} arm names for a split of {len(weights)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise InvalidInput("split", "needs at least two distinct arms")
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise InvalidInput("split", f"weights must be positive numbers, got {weights}")
    return names, w / w.sum()


def simulate_experiment(
    seed: int,
    n_units: int = 20_000,
    days: int = 14,
    true_effect: float | Mapping[str, float] = 0.0,
    split: Mapping[str, float] | Sequence[float] = (0.5, 0.5),
    arms: Sequence[str] | None = None,
    latency_effect: float | Mapping[str, float] = 0.0,
    events_per_unit: float = 4.0,
    base_click_rate: float = 0.10,
    base_conversion_rate: float = 0.03,
    mean_order_value: float = 50.0,
    base_latency_ms: float = 120.0,
    pre_period_coverage: float = 1.0,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """Per-event rows ``unit_id, arm, timestamp, click, conversion, revenue, latency_ms, pre_clicks, pre_revenue``.

    ``split`` is the *actual* assignment (mapping by arm, or weights with ``arms`` names; two weights
    default to ``control``/``treatment``). The first arm is control. Give the analysis a different
    configured split to simulate a sample-ratio mismatch. ``true_effect``/``latency_effect`` are one number
    for every treatment arm or a mapping by arm (missing arms get 0). Rows are sorted by timestamp;
    timestamps are UTC.
    """
    _check_sizes(seed, n_units, days, pre_period_coverage)
    names, weights = _arms_and_split(split, arms)
    effect = _per_arm_effects(true_effect, "true_effect", names)
    latency = _per_arm_effects(latency_effect, "latency_effect", names)
    for field, rate in (("base_click_rate", base_click_rate), ("base_conversion_rate", base_conversion_rate)):
        if not 0 < rate * PROPENSITY_CAP * (1 + effect.max()) <= 1:
            raise InvalidInput(field, f"{rate} with effect {effect.max():+g} could exceed probability 1 "
                                      f"(need rate * {PROPENSITY_CAP:g} * (1 + effect) <= 1)")

    rng = np.random.default_rng(seed)
    n = int(n_units)
    arm = rng.choice(len(names), size=n, p=weights)
    arrival = rng.random(n) * days  # in days since start
    activity = rng.lognormal(-0.5, 1.0, n)  # mean exp(-0.5 + 0.5) = 1
    propensity = np.minimum(rng.lognormal(-0.245, 0.7, n), PROPENSITY_CAP)  # mean about 1
    remaining = (days - arrival) / days
    n_events = 1 + rng.poisson(events_per_unit * activity * remaining)

    unit = np.repeat(np.arange(n), n_events)
    first = np.r_[0, np.cumsum(n_events)[:-1]]
    is_first = np.zeros(unit.size, dtype=bool)
    is_first[first] = True
    offset = np.where(is_first, 0.0, rng.random(unit.size) * (days - arrival[unit]))
    time_days = arrival[unit] + offset

    scale = propensity[unit] * (1 + effect[arm[unit]])
    click = (rng.random(unit.size) < base_click_rate * scale).astype(np.int64)
    conversion = (rng.random(unit.size) < base_conversion_rate * scale).astype(np.int64)
    revenue = conversion * rng.gamma(2.0, mean_order_value / 2, unit.size)
    latency_ms = base_latency_ms * (1 + latency[arm[unit]]) * rng.lognormal(-0.045, 0.3, unit.size)

    pre_events = rng.poisson(events_per_unit * activity)
    pre_clicks = rng.binomial(pre_events, base_click_rate * propensity).astype(np.float64)
    pre_conversions = rng.binomial(pre_events, base_conversion_rate * propensity)
    pre_revenue = np.where(pre_conversions > 0, rng.gamma(np.maximum(2.0 * pre_conversions, 1e-9), mean_order_value / 2), 0.0)
    if pre_period_coverage < 1.0:
        known = rng.random(n) < pre_period_coverage
        pre_clicks = np.where(known, pre_clicks, np.nan)
        pre_revenue = np.where(known, pre_revenue, np.nan)

    start_ts = pd.Timestamp(start, tz="UTC")
    timestamp = start_ts + pd.to_timedelta(np.round(time_days * DAY_NS).astype(np.int64), unit="ns")
    frame = pd.DataFrame({
        "unit_id": np.char.add("u", np.char.zfill(np.arange(n).astype(str), 7))[unit],
        "arm": np.asarray(names, dtype=object)[arm[unit]],
        "timestamp": timestamp,
        "click": click,
        "conversion": conversion,
        "revenue": revenue,
        "latency_ms": latency_ms,
        "pre_clicks": pre_clicks[unit],
        "pre_revenue": pre_revenue[unit],
    })
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame.attrs.update(seed=int(seed), n_units=n, days=int(days), arms=names, split=weights.tolist(),
                       true_effect={a: float(e) for a, e in zip(names, effect, strict=True)},
                       latency_effect={a: float(e) for a, e in zip(names, latency, strict=True)}, start=str(start_ts))
    return frame


def _check_sizes(seed: Any, n_units: Any, days: Any, pre_period_coverage: float) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InvalidInput("seed", f"must be an integer, got {seed!r}")
    if isinstance(n_units, bool) or not isinstance(n_units, int | np.integer) or n_units < 1:
        raise InvalidInput("n_units", f"must be an integer >= 1, got {n_units!r}")
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise InvalidInput("days", f"must be an integer >= 1, got {days!r}")
    if not 0.0 <= pre_period_coverage <= 1.0:
        raise InvalidInput("pre_period_coverage", f"must be in [0, 1], got {pre_period_coverage}")


def _per_arm_effects(value: float | Mapping[str, float], field: str, names: Sequence[str]) -> np.ndarray:
    """One relative effect per arm (control first, always 0) from one number or a mapping by treatment arm."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(names)
        if unknown:
            raise InvalidInput(field, f"names arms not in the split: {sorted(unknown)}")
        effects = [0.0] + [float(value.get(a, 0.0)) for a in names[1:]]
    else:
        effects = [0.0] + [float(value)] * (len(names) - 1)
    if any(not math.isfinite(e) or e <= -1 for e in effects):
        raise InvalidInput(field, f"must be finite and > -1, got {value!r}")
    return np.asarray(effects)
