"""Analysis of an online experiment: plain events in, an :class:`ExperimentAnalysis` of plain data out.

:func:`analyze_experiment` takes the experiment's events (a pandas frame) and its configuration
(:class:`~eval_platform.online.config.ExperimentConfig` or the equivalent dict) and computes, for every configured metric, per-arm means
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats as _st
from eval_platform.core.records import json_safe
from eval_platform.online import stats
from eval_platform.online.config import ExperimentConfig, GuardrailConfig, coerce_config
from eval_platform.online.events import DAY, prepare_events, unit_covariates

PASS, FAIL, NO_DECISION = "pass", "fail", "no_decision"
#: Version of the analysis logic (and of ``stats``); the experiment-analysis asset's code version.
ANALYSIS_CODE_VERSION = "1"


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
    cfg = coerce_config(config)
    frame, unit_ids, start, covariates, quality = prepare_events(events, cfg)
    n_units = len(unit_ids)
    units = frame.groupby("_unit", sort=True).agg(arm=("_arm", "first"), first_day=("_day", "min"), events=("_arm", "size"))
    unit_arm = units["arm"].to_numpy() if n_units else np.zeros(0, dtype=object)
    arms_out = _arm_records(cfg, units, unit_arm, n_units)
    srm, blockers = _trust(cfg, arms_out, quality, n_units)
    looks = _looks(cfg, frame, unit_arm, start, covariates, quality, n_units)
    metrics_out, daily, daily_srm = _analyse_looks(looks)
    _record_metrics_without_data(cfg, metrics_out, looks.kinds, quality)
    verdicts = [guardrail_verdict(g, a, cfg, metrics_out.get(g.metric), blockers)
                for g in cfg.guardrails for a in cfg.treatments]
    verdict, reasons = _combine(verdicts, blockers, len(cfg.guardrails))
    primary = {a: _primary_outcome(cfg, metrics_out[cfg.primary_metric], a, blockers) for a in cfg.treatments}
    return ExperimentAnalysis(
        experiment_id=cfg.experiment_id, control=cfg.control_arm, arms=arms_out, trustworthy=not blockers,
        untrustworthy_reasons=blockers, srm=srm, metrics=metrics_out, primary=primary, guardrails=verdicts,
        guardrail_verdict=verdict, guardrail_reasons=reasons, daily=daily, daily_srm=daily_srm,
        data_quality=quality, config=cfg.as_dict(),
    )


def _arm_records(cfg: ExperimentConfig, units: pd.DataFrame, unit_arm: np.ndarray, n_units: int) -> dict[str, dict]:
    """By arm: its model version, configured split, and the units and events analysed."""
    arms_out = {}
    for a in cfg.arms:
        mask = unit_arm == a.name
        arms_out[a.name] = {"model_version": a.model_version, "split": a.split, "units": int(mask.sum()),
                            "events": int(units["events"].to_numpy()[mask].sum()) if n_units else 0}
    return arms_out


def _trust(cfg: ExperimentConfig, arms_out: Mapping[str, dict], quality: Mapping[str, Any],
           n_units: int) -> tuple[dict | None, list[str]]:
    """The sample-ratio check over units, and every reason the result is untrustworthy."""
    blockers: list[str] = []
    srm = None
    if n_units == 0:
        blockers.append("no units in the configured arms")
    else:
        srm_result = stats.srm_check({a.name: arms_out[a.name]["units"] for a in cfg.arms}, {a.name: a.split for a in cfg.arms},
                                     cfg.srm_alpha)
        srm = srm_result.as_dict()
        if srm_result.fired:
            observed = ", ".join(f"{a} {o}" for a, o in zip(srm_result.arms, srm_result.observed, strict=True))
            blockers.append(f"sample-ratio mismatch: units {observed} vs configured split "
                            f"(chi2 {srm_result.statistic:.2f}, p = {srm_result.p_value:.3g} < {cfg.srm_alpha:g})")
    if quality["unknown_arm_events"]:
        blockers.append(f"{quality['unknown_arm_events']} event(s) name arms not in the config: {quality['unknown_arms']}")
    if quality["crossover_fraction"] > cfg.max_crossover_fraction:
        blockers.append(f"{quality['crossover_units']} unit(s) ({quality['crossover_fraction']:.2%}) appear in more than one arm "
                        f"(allowed {cfg.max_crossover_fraction:.2%})")
    return srm, blockers


@dataclass
class _Looks:
    """What the daily looks of one analysis share: the cumulative unit values of each day, each unit's arm,
    the covariates and kinds of the metrics present, and the running always-valid p-values."""

    cfg: ExperimentConfig
    present: list[str]
    aggregates: dict[str, str]
    kinds: dict[str, str]
    per_day_values: list[pd.DataFrame]
    unit_arm: np.ndarray
    covariates: dict[str, str]
    covariate_values: dict[str, np.ndarray]
    dates: list[str]
    #: by (metric, treatment arm): the always-valid p-values of the difference and of the lift at the last look
    previous: dict[tuple[str, str], tuple[float, float]]

    def covariate(self, metric: str) -> np.ndarray | None:
        """One covariate value per unit code for ``metric``, or None (none configured, or none observed)."""
        column = self.covariates.get(metric)
        values = self.covariate_values.get(column) if column is not None else None
        if values is not None and np.isnan(values).all():
            return None
        return values


def _looks(cfg: ExperimentConfig, frame: pd.DataFrame, unit_arm: np.ndarray, start: pd.Timestamp | None,
           covariates: dict[str, str], quality: dict[str, Any], n_units: int) -> _Looks:
    present = [m for m in cfg.metric_names() if m not in quality["missing_metric_columns"]]
    aggregates = {m: cfg.metric(m).aggregate for m in present}
    n_days = int(frame["_day"].max()) + 1 if n_units else 0
    covariate_values = {column: unit_covariates(frame, column, n_units, quality)
                        for column in sorted(set(covariates.values()))} if n_units else {}
    for column, values in covariate_values.items():
        if np.isnan(values).all():
            quality["warnings"].append(f"covariate column {column!r} has no value: CUPED skipped")
    partials = _aggregate_partials(frame, present) if n_units else None
    per_day_values = [_unit_values(partials, d, present, aggregates) for d in range(n_days)]
    final = per_day_values[-1] if n_days else None
    kinds = {m: _metric_kind(cfg, m, final, aggregates[m]) for m in present}
    dates = [(start + d * DAY).date().isoformat() for d in range(n_days)] if start is not None else []
    return _Looks(cfg, present, aggregates, kinds, per_day_values, unit_arm, covariates, covariate_values, dates,
                  previous={(m, a): (1.0, 1.0) for m in present for a in cfg.treatments})


def _metric_kind(cfg: ExperimentConfig, metric: str, final: pd.DataFrame | None, aggregate: str) -> str:
    """``proportion`` or ``mean``: the configured kind, or for ``auto`` the one the final unit values fit."""
    kind = cfg.metric(metric).kind
    if kind == "mean":
        return kind
    values = final[metric].dropna().to_numpy() if final is not None else np.zeros(0)
    binary = bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())
    if kind == "auto":
        return "proportion" if binary else "mean"
    if values.size and not binary:
        raise InvalidInput(f"config.metrics.{metric}.kind", f"is proportion but unit values of {metric} are not all 0 or 1 "
                                                            f"(aggregate {aggregate})")
    return kind


def _analyse_looks(looks: _Looks) -> tuple[dict[str, dict], list[dict], list[dict]]:
    """Every metric at every daily look (cumulative): the metric records of the last look, the daily rows
    of each comparison, and the daily sample-ratio rows."""
    cfg = looks.cfg
    metrics_out: dict[str, dict] = {}
    daily: list[dict] = []
    daily_srm: list[dict] = []
    n_days = len(looks.per_day_values)
    for d, values in enumerate(looks.per_day_values):
        codes = values.index.to_numpy()
        arm_of = looks.unit_arm[codes]
        counts = {a.name: int((arm_of == a.name).sum()) for a in cfg.arms}
        day_srm = stats.srm_check(counts, {a.name: a.split for a in cfg.arms}, cfg.srm_alpha) if sum(counts.values()) else None
        daily_srm.append({"day": d, "date": looks.dates[d], **{f"units_{a}": n for a, n in counts.items()},
                          "srm_p_value": day_srm.p_value if day_srm else float("nan")})
        last = d == n_days - 1
        for m in looks.present:
            record = _metric_look(looks, d, m, values[m].to_numpy(), codes, arm_of, daily, last)
            if record is not None:
                metrics_out[m] = record
    return metrics_out, daily, daily_srm


def _metric_look(looks: _Looks, day: int, metric: str, column: np.ndarray, codes: np.ndarray, arm_of: np.ndarray,
                 daily: list[dict], last: bool) -> dict | None:
    """One metric at one look: each treatment compared with control (a daily row each); at the last look
    the metric's record (per-arm means and the comparisons)."""
    cfg = looks.cfg
    arm_names = [a.name for a in cfg.arms]
    has = ~np.isnan(column)
    covariate = looks.covariate(metric)
    by_arm = {a: column[has & (arm_of == a)] for a in arm_names}
    x_by_arm = {a: covariate[codes[has & (arm_of == a)]] for a in arm_names} if covariate is not None else None
    per_arm = {a: _per_arm(by_arm[a], looks.kinds[metric], cfg.confidence) for a in arm_names} if last else None
    comparisons = {a: _compare_arm(looks, day, metric, a, by_arm, x_by_arm, daily) for a in cfg.treatments}
    if not last:
        return None
    return {"status": "ok", "aggregate": looks.aggregates[metric], "kind": looks.kinds[metric],
            "covariate": looks.covariates.get(metric) if covariate is not None else None,
            "per_arm": per_arm, "comparisons": comparisons}


def _compare_arm(looks: _Looks, day: int, metric: str, arm: str, by_arm: Mapping[str, np.ndarray],
                 x_by_arm: Mapping[str, np.ndarray] | None, daily: list[dict]) -> dict | None:
    """Treatment ``arm`` against control at one look (None when either has no unit), with its daily row."""
    control = looks.cfg.control_arm
    c, t = by_arm[control], by_arm[arm]
    if c.size == 0 or t.size == 0:
        return None
    comparison = _compare(c, t, x_by_arm[control] if x_by_arm else None, x_by_arm[arm] if x_by_arm else None,
                          looks.kinds[metric], looks.cfg, *looks.previous[(metric, arm)])
    looks.previous[(metric, arm)] = (comparison["sequential"]["p_value"], comparison["sequential_lift"]["p_value"])
    daily.append({
        "day": day, "date": looks.dates[day], "metric": metric, "arm": arm, "n_control": int(c.size), "n_treatment": int(t.size),
        "mean_control": float(c.mean()), "mean_treatment": float(t.mean()),
        "estimator": comparison["decision_estimator"],
        "difference": comparison["decision_test"]["estimate"],
        "lift": comparison["decision_lift"]["lift"],
        "lift_ci_low": comparison["decision_lift"]["ci_low"], "lift_ci_high": comparison["decision_lift"]["ci_high"],
        "p_value": comparison["decision_test"]["p_value"],
        "always_valid_p_value": comparison["sequential"]["p_value"],
        "cs_low": comparison["sequential"]["cs_low"], "cs_high": comparison["sequential"]["cs_high"],
    })
    return comparison


def _record_metrics_without_data(cfg: ExperimentConfig, metrics_out: dict[str, dict], kinds: Mapping[str, str],
                                 quality: Mapping[str, Any]) -> None:
    """A record for every configured metric that could not be analysed, and a status for those missing an arm."""
    for m in cfg.metric_names():
        if m not in metrics_out:
            status = "missing" if m in quality["missing_metric_columns"] else "no units"
            metrics_out[m] = {"status": status, "aggregate": cfg.metric(m).aggregate, "kind": kinds.get(m, cfg.metric(m).kind),
                              "covariate": None, "per_arm": None, "comparisons": {a: None for a in cfg.treatments}}
        elif any(metrics_out[m]["comparisons"][a] is None for a in cfg.treatments):
            metrics_out[m]["status"] = "arm without units"


def _primary_outcome(cfg: ExperimentConfig, pm: Mapping[str, Any], arm: str, blockers: list[str]) -> dict[str, Any]:
    """The primary metric's result for one treatment arm, decided by its always-valid p-value."""
    comparison = pm["comparisons"].get(arm) if pm["per_arm"] else None
    entry: dict[str, Any] = {"metric": cfg.primary_metric, "direction": cfg.primary_direction}
    if comparison is None:
        entry.update(outcome="insufficient_data" if not blockers else "untrustworthy",
                     message=f"no data for {cfg.primary_metric} ({pm['status']})")
        return entry
    n_c, n_t = pm["per_arm"][cfg.control_arm]["n"], pm["per_arm"][arm]["n"]
    p_seq = comparison["sequential"]["p_value"]
    lift = comparison["decision_lift"]
    entry.update(estimator=comparison["decision_estimator"], n_control=n_c, n_treatment=n_t,
                 difference=comparison["decision_test"]["estimate"], lift=lift["lift"],
                 lift_ci=[lift["ci_low"], lift["ci_high"]], p_value=comparison["decision_test"]["p_value"],
                 always_valid_p_value=p_seq,
                 confidence_sequence=[comparison["sequential"]["cs_low"], comparison["sequential"]["cs_high"]],
                 lift_confidence_sequence=[comparison["sequential_lift"]["cs_low"], comparison["sequential_lift"]["cs_high"]])
    alpha = 1 - cfg.confidence
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
    return entry


# ------------------------------------------------------------------------------------------------------
# Offline-online agreement


def _finite_delta(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a boolean), else None."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


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
        off, on = _finite_delta(record.get("offline_delta")), _finite_delta(record.get("online_delta"))
        label = record.get("experiment_id", i)
        if off is None or on is None:
            excluded.append({"experiment_id": label, "reason": "offline_delta or online_delta missing or not finite"})
            continue
        same = None if off == 0 or on == 0 else bool((off > 0) == (on > 0))
        rows.append({"experiment_id": label, "metric": record.get("metric"), "offline_delta": off,
                     "online_delta": on, "online_significant": record.get("online_significant"), "same_sign": same})
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


def _pct(x) -> str:
    return "n/a" if not isinstance(x, float | int) or not math.isfinite(x) else f"{x * 100:+.2f}%"


def _num(x) -> str:
    return "n/a" if not isinstance(x, float | int) or not math.isfinite(x) else f"{x:.4g}"


def format_analysis(analysis: ExperimentAnalysis) -> str:
    """A short human-readable report of an analysis (for the CLI and the demo)."""
    lines = [f"experiment {analysis.experiment_id or '(unnamed)'}: control {analysis.control}"]
    for name, arm in analysis.arms.items():
        lines.append(f"  arm {name:<12} model {arm['model_version'] or '-':<16} split {arm['split']:<6g} "
                     f"units {arm['units']:>8} events {arm['events']:>9}")
    if analysis.srm:
        lines.append(f"  SRM: chi2 {analysis.srm['statistic']:.3f}, p = {analysis.srm['p_value']:.3g}"
                     f"{' FIRED' if analysis.srm['fired'] else ' (ok)'}")
    lines.append("  trustworthy" if analysis.trustworthy else "  UNTRUSTWORTHY: " + "; ".join(analysis.untrustworthy_reasons))
    for name, metric in analysis.metrics.items():
        lines.extend(_metric_lines(name, metric, analysis.control))
    for arm_name, primary in analysis.primary.items():
        lines.append(f"  primary {primary['metric']} ({arm_name}): {primary['outcome']}: {primary['message']}")
    for verdict in analysis.guardrails:
        lines.append(f"  guardrail {verdict['rule']} ({verdict['arm']}): {verdict['outcome']}: {verdict['message']}")
    lines.append(f"  online guardrails: {analysis.guardrail_verdict}")
    return "\n".join(lines)


def _metric_lines(name: str, metric: Mapping[str, Any], control: str) -> list[str]:
    """A metric's per-arm means, then one line per treatment arm compared with control."""
    if metric["per_arm"] is None:
        return [f"  {name}: {metric['status']}"]
    means = ", ".join(f"{a} {_num(v['mean'])} [{_num(v['ci_low'])}, {_num(v['ci_high'])}]" for a, v in metric["per_arm"].items())
    lines = [f"  {name} ({metric['kind']}, {metric['aggregate']} per unit): {means}"]
    for arm, comparison in metric["comparisons"].items():
        if comparison is None:
            continue
        lift, test = comparison["decision_lift"], comparison["decision_test"]
        extra = ""
        if comparison["cuped"]:
            extra = f", CUPED theta {_num(comparison['cuped']['theta'])} variance -{comparison['cuped']['variance_reduction']:.1%}"
        lines.append(f"    {arm} vs {control}: lift {_pct(lift['lift'])} [{_pct(lift['ci_low'])}, {_pct(lift['ci_high'])}], "
                     f"{test['test']} p = {_num(test['p_value'])}, always-valid p = {_num(comparison['sequential']['p_value'])}{extra}")
    return lines
