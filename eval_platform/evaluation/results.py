"""What the eval runner's steps return, as typed results the Dagster assets render.

The registry keeps what the steps record as JSON (``results``, ``comparison`` of an eval run); the types that
mirror a stored record keep that record as it was written (``to_record``) and read it back (``from_record``),
so the stored JSON stays exactly what the API and the tests read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval_platform.core.states import BaselineState
from eval_platform.gates.rules import MetricComparison

Record = dict[str, Any]


@dataclass(frozen=True)
class PredictionReport:
    """Step 1: the run's predictions, from the cache or produced (an LLM candidate also reports its calls)."""

    run_id: str
    predictions_hash: str
    cache_hit: bool
    rows: int
    seconds: float
    calls: int | None = None
    cache_hits: int | None = None
    tokens: int | None = None
    cost: float | None = None


@dataclass(frozen=True)
class CallReport:
    """The LLM calls a judge made: how many, how many the cache served, tokens and cost."""

    calls: int
    cache_hits: int
    total_tokens: int
    cost: float

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CallReport:
        return cls(record["calls"], record["cache_hits"], record["total_tokens"], record["cost"])


@dataclass(frozen=True)
class Interval:
    """A value with its interval; any part undefined (None) when the data does not define it."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class JudgeReport:
    """Step 2a, pointwise: the pinned judge's verdicts on the run's predictions (``results["judge"]``)."""

    verdicts: str
    judge_model: str
    n_judged: int
    mean: float | None
    calls: CallReport
    #: the stratified sample's estimate, seed and population size; None when every example was judged
    sample_estimate: Interval | None
    sample_seed: int | None
    n_population: int | None
    record: Record = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Record) -> JudgeReport:
        summary, sampling = record["summary"], record.get("sampling")
        estimate = sampling["estimate"] if sampling else None
        return cls(verdicts=record["verdicts"], judge_model=summary["judge_model"], n_judged=summary["n_judged"],
                   mean=summary.get("mean"), calls=CallReport.from_record(record["report"]),
                   sample_estimate=Interval(estimate["mean"], estimate["ci_low"], estimate["ci_high"]) if estimate else None,
                   sample_seed=sampling["seed"] if sampling else None, n_population=sampling["n_population"] if sampling else None,
                   record=record)

    def to_record(self) -> Record:
        return self.record


@dataclass(frozen=True)
class PairwiseReport:
    """Step 2a, pairwise: the candidate's answers against the baseline run's, both orders (``results["judge_pairwise"]``)."""

    verdicts: str
    judge_model: str
    baseline_run_id: str
    baseline_model: str
    n_examples: int
    preference: Interval
    calls: CallReport
    wins: int
    losses: int
    ties: int
    first_position_rate: float | None
    n_order_disagreements: int
    n_judge_errors: int
    record: Record = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Record) -> PairwiseReport:
        return cls(verdicts=record["verdicts"], judge_model=record["judge"]["judge_model"], baseline_run_id=record["baseline_run_id"],
                   baseline_model=record["baseline_model"], n_examples=record["n_examples"],
                   preference=Interval(record["preference"], record["ci_low"], record["ci_high"]),
                   calls=CallReport.from_record(record["report"]), wins=record["wins"], losses=record["losses"], ties=record["ties"],
                   first_position_rate=record["first_position_rate"], n_order_disagreements=len(record["order_disagreements"]),
                   n_judge_errors=record["n_judge_errors"], record=record)

    def to_record(self) -> Record:
        return self.record


@dataclass(frozen=True)
class JudgmentReport:
    """Step 2a: what the judges of the run's suite did; ``pairwise_state`` is the baseline's state when the
    suite has a pairwise judge (the pairwise judge waits for the comparison unless it is ``ok``)."""

    run_id: str
    judge: JudgeReport | None = None
    pairwise: PairwiseReport | None = None
    pairwise_state: BaselineState | None = None

    @property
    def judged(self) -> bool:
        return self.judge is not None or self.pairwise is not None


@dataclass(frozen=True)
class JudgeEstimate:
    """A judge metric estimated on a stratified sample (``results["estimates"][metric]``)."""

    estimate: Interval
    confidence: float
    n_sampled: int
    n_population: int
    strata: Any
    seed: int
    label_efficiency: float | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> JudgeEstimate:
        return cls(Interval(record.get("mean"), record.get("ci_low"), record.get("ci_high")), record["confidence"],
                   record["n_sampled"], record["n_population"], record["strata"], record["seed"], record.get("label_efficiency"))


@dataclass(frozen=True)
class MetricTableReport:
    """Step 2: the run's metric table (content-addressed) and the results recorded from it (``results``)."""

    run_id: str
    metrics_hash: str
    seconds: float
    #: every metric overall and per slice (the stored table)
    table: pd.DataFrame = field(repr=False, compare=False)
    results: Record = field(repr=False, compare=False)

    @property
    def estimates(self) -> dict[str, JudgeEstimate]:
        return {name: JudgeEstimate.from_record(e) for name, e in (self.results.get("estimates") or {}).items()}

    @property
    def curves_png(self) -> str | None:
        """The ROC and PR curves' plot (a binary classifier's), by its artifact hash."""
        return self.results.get("artifacts", {}).get("curves_png")


@dataclass(frozen=True)
class PairwiseTally:
    """The pairwise judge's verdicts as a comparison shows them."""

    wins: int
    losses: int
    ties: int
    first_position_rate: float | None
    n_order_disagreements: int
    n_judge_errors: int


@dataclass(frozen=True)
class Comparison:
    """Step 3: candidate minus baseline per metric and per guarded slice, and the regressed examples
    (``EvalRun.comparison``; ``run_id`` is not part of the record)."""

    run_id: str
    baseline_model: str | None
    baseline_state: BaselineState
    baseline_run_id: str | None
    #: per metric: candidate, baseline, delta and its interval (and what produced them)
    metrics: dict[str, Record] = field(default_factory=dict)
    #: per metric, per ``column=value``: the slice's delta
    slices: dict[str, dict[str, Record]] = field(default_factory=dict)
    #: per ``max_regressions`` rule's metric: the ids of the examples the baseline got right and the candidate wrong
    regressions: dict[str, list[str]] = field(default_factory=dict)
    #: the stale baseline run found, re-evaluated (``baseline_reevaluated``) or not
    stale_baseline_run_id: str | None = None
    baseline_reevaluated: bool = False
    #: per pairwise metric: the pairwise judge's record
    pairwise: dict[str, Record] | None = None
    #: the candidate's predictions against the baseline's (PSI, Jensen-Shannon, KS), when a rule bounds it
    prediction_drift: Record | None = None

    def deltas(self) -> dict[str, MetricComparison]:
        return {name: metric_comparison(c) for name, c in self.metrics.items()}

    def pairwise_tallies(self) -> dict[str, PairwiseTally]:
        return {name: PairwiseTally(p["wins"], p["losses"], p["ties"], p["first_position_rate"], len(p["order_disagreements"]),
                                    p["n_judge_errors"]) for name, p in (self.pairwise or {}).items()}

    def to_record(self) -> Record:
        record: Record = {"baseline_model": self.baseline_model, "metrics": self.metrics, "slices": self.slices,
                          "regressions": self.regressions}
        if self.stale_baseline_run_id is not None:
            record["stale_baseline_run_id"] = self.stale_baseline_run_id
        if self.baseline_reevaluated:
            record["baseline_reevaluated"] = True
        record["baseline_state"] = self.baseline_state
        record["baseline_run_id"] = self.baseline_run_id
        if self.pairwise is not None:
            record["pairwise"] = self.pairwise
        if self.prediction_drift is not None:
            record["prediction_drift"] = self.prediction_drift
        return record

    @classmethod
    def from_record(cls, run_id: str, record: Mapping[str, Any]) -> Comparison:
        return cls(run_id, record.get("baseline_model"), BaselineState(record.get("baseline_state", BaselineState.NONE)),
                   record.get("baseline_run_id"), dict(record.get("metrics") or {}), dict(record.get("slices") or {}),
                   dict(record.get("regressions") or {}), record.get("stale_baseline_run_id"),
                   bool(record.get("baseline_reevaluated")), record.get("pairwise"), record.get("prediction_drift"))


def metric_comparison(entry: Mapping[str, Any]) -> MetricComparison:
    """A comparison entry (candidate, baseline, delta, ci_low, ci_high; n_units and confidence where recorded)
    as the gate rules read it."""
    n_units, confidence = entry.get("n_units"), entry.get("confidence")
    return MetricComparison(entry["candidate"], entry["baseline"], entry["delta"], entry["ci_low"], entry["ci_high"],
                            n_units if isinstance(n_units, int) and not isinstance(n_units, bool) else None,
                            float(confidence) if isinstance(confidence, int | float) and not isinstance(confidence, bool) else None)
