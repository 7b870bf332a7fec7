"""Golden and canary datasets tracked over time: the promoted model versions re-evaluated on them, and the
canary check that fails when a bounded metric moved too far.

A dataset version registered with role ``golden`` or ``canary`` (:class:`~eval_platform.core.states.DatasetRole`)
is a fixed reference: the canary schedule calls :func:`queue_canary_runs`, which queues, for the latest active
version of every such dataset and every model name whose eval plan includes it and that has a promoted
version, a fresh eval run with trigger ``canary``. Such a run predicts afresh (no prediction set, no LLM call
from a cache: the endpoint itself is watched), gets its own run id beside the triple's own run (never a
baseline, never in a gate), and is launched and ended by the eval-request sensor like any queued run.

:func:`canary_series` is the runs of one (model version, dataset version, suite version) in time order; its
first run is the reference. :func:`check_canary` compares the latest run with it metric by metric: with the
suite's bounds ``b_m`` (``canary.bounds``), the check fails when for some bounded metric ``m``

    |current_m - reference_m| > b_m

or when exactly one of the two values is undefined (a metric that stopped being computable has moved).

Example::

    >>> queued = queue_canary_runs(platform)            # what the schedule does
    >>> check = check_canary(platform, canary_series(platform, "qa-bot@1", "qa-canary@1", "qa@1"))
    >>> check.passed, [d.metric for d in check.drifted]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import select

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import CANARY_TRIGGER, TRACKED_ROLES, DatasetStatus, RunStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalPlanEntry, EvalRun


@dataclass(frozen=True)
class CanaryQueueing:
    """What one evaluation of the canary schedule did: the runs it queued, and each triple it passed over, with why."""

    queued: tuple[EvalRun, ...]
    skipped: tuple[str, ...] = ()

    @property
    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.queued]


def tracked_datasets(platform: EvalPlatform) -> list[EvalDataset]:
    """The latest active version of every dataset whose latest active version is golden or canary."""
    latest: dict[str, EvalDataset] = {}
    for record in platform.datasets():  # ordered by id, then version
        if record.status == DatasetStatus.ACTIVE:
            latest[record.dataset_id] = record
    return [record for record in latest.values() if record.role in TRACKED_ROLES]


def queue_canary_runs(platform: EvalPlatform) -> CanaryQueueing:
    """Queue a canary run of every promoted model version on every golden or canary dataset of its name's eval
    plan (latest active dataset version, latest suite version). Acts as the operator: every team's datasets and
    models are watched; what each team may read of the runs is decided where they are read. A triple whose
    previous canary run is still queued or running gets no second one."""
    queued: list[EvalRun] = []
    skipped: list[str] = []
    datasets = {record.dataset_id: record for record in tracked_datasets(platform)}
    if not datasets:
        return CanaryQueueing(())
    with platform.registry.session() as session:
        entries = list(session.scalars(select(EvalPlanEntry).where(EvalPlanEntry.dataset_id.in_(sorted(datasets)))
                                       .order_by(EvalPlanEntry.id)))
    for entry in entries:
        dataset = datasets[entry.dataset_id]
        promoted = platform.promoted_version(entry.model_name)
        if promoted is None:
            skipped.append(f"{entry.model_name} on {dataset.key}: no promoted version")
            continue
        model = platform.model(f"{entry.model_name}@{promoted}")
        try:
            suite = platform.latest_suite(entry.suite_id)
            if suite.task_type != dataset.task_type:
                raise InvalidInput("suite_id", f"suite {suite.key} is for {suite.task_type}, dataset {dataset.key} is {dataset.task_type}")
            platform.check_predictions_cover(model, dataset)  # a predictions file that cannot answer it would only fail
        except (NotFound, InvalidInput) as error:
            skipped.append(f"{model.key} on {dataset.key} with {entry.suite_id}: {error}")
            continue
        with platform.registry.session() as session:
            run = platform.queue_canary_run(session, model, dataset, suite)
        if run is None:
            skipped.append(f"{model.key} on {dataset.key} with {suite.key}: its previous canary run has not finished")
        else:
            queued.append(run)
    return CanaryQueueing(tuple(queued), tuple(skipped))


def canary_series(platform: EvalPlatform, model_key: str, dataset_key: str, suite_key: str) -> list[EvalRun]:
    """The succeeded canary runs of a model version on a dataset version with a suite version, oldest first:
    the first is the reference, the last the current measurement."""
    name, version = VersionedKey.parse(model_key, "model")
    dataset_id, dataset_version = VersionedKey.parse(dataset_key, "dataset")
    suite_id, suite_version = VersionedKey.parse(suite_key, "suite")
    with platform.registry.session() as session:
        return list(session.scalars(select(EvalRun).where(
            EvalRun.model_name == name, EvalRun.model_version == version, EvalRun.dataset_id == dataset_id,
            EvalRun.dataset_version == dataset_version, EvalRun.suite_id == suite_id, EvalRun.suite_version == suite_version,
            EvalRun.trigger == CANARY_TRIGGER, EvalRun.status == RunStatus.SUCCEEDED)
            .order_by(EvalRun.finished_at, EvalRun.attempt)))


def canary_suites(platform: EvalPlatform, model_key: str, dataset_key: str) -> list[str]:
    """The suite versions a model version has canary runs of on a dataset version."""
    name, version = VersionedKey.parse(model_key, "model")
    dataset_id, dataset_version = VersionedKey.parse(dataset_key, "dataset")
    with platform.registry.session() as session:
        pairs = session.execute(select(EvalRun.suite_id, EvalRun.suite_version).where(
            EvalRun.model_name == name, EvalRun.model_version == version, EvalRun.dataset_id == dataset_id,
            EvalRun.dataset_version == dataset_version, EvalRun.trigger == CANARY_TRIGGER).distinct()).all()
    return sorted(f"{suite_id}@{suite_version}" for suite_id, suite_version in pairs)


#: relative slack for the rounding of ``current - reference`` (a few units in the last place of a float64)
_ROUNDING = 1e-12


@dataclass(frozen=True)
class MetricDrift:
    """One metric of a canary series: the reference and current values, the change, its bound (None: unbounded)."""

    metric: str
    reference: float | None
    current: float | None
    bound: float | None

    @property
    def change(self) -> float | None:
        if self.reference is None or self.current is None:
            return None
        return self.current - self.reference

    @property
    def beyond_bound(self) -> bool:
        """Moved further than its bound; a value that became (or stopped being) undefined has moved too."""
        if self.bound is None:
            return False
        if self.reference is None or self.current is None:
            return (self.reference is None) != (self.current is None)
        # a change equal to the bound is within it, up to the rounding of the subtraction (0.97 - 0.95 > 0.02 in floats)
        return abs(self.current - self.reference) > self.bound + _ROUNDING * max(1.0, abs(self.reference), abs(self.current))

    def describe(self) -> str:
        change = "undefined" if self.change is None else f"{self.change:+.4g}"
        return f"{self.metric}: reference {_shown(self.reference)}, current {_shown(self.current)} (change {change}, bound {self.bound})"


@dataclass(frozen=True)
class CanaryCheck:
    """The canary check of one series: passed unless a bounded metric moved beyond its bound."""

    suite_key: str
    series_length: int
    reference_run_id: str | None
    current_run_id: str | None
    metrics: tuple[MetricDrift, ...] = field(default=())
    bounds_stated: bool = False

    @property
    def drifted(self) -> list[MetricDrift]:
        return [m for m in self.metrics if m.beyond_bound]

    @property
    def passed(self) -> bool:
        return self.series_length > 0 and not self.drifted


def check_canary(platform: EvalPlatform, series: list[EvalRun]) -> CanaryCheck:
    """Compare the latest run of a canary series with its first (see the module's docstring for the rule)."""
    if not series:
        return CanaryCheck("", 0, None, None)
    reference, current = series[0], series[-1]
    suite = platform.suite_definition(platform.suite(current.suite_key))
    bounds = (suite.canary or {}).get("bounds", {})
    reference_values = (reference.results or {}).get("metrics") or {}
    current_values = (current.results or {}).get("metrics") or {}
    names = dict.fromkeys([*reference_values, *current_values])
    drifts = tuple(MetricDrift(name, _number(reference_values.get(name)), _number(current_values.get(name)), bounds.get(name))
                   for name in names)
    return CanaryCheck(current.suite_key, len(series), reference.run_id, current.run_id, drifts, bool(bounds))


def _number(value: object) -> float | None:
    """A recorded metric value, None when undefined (absent, None or NaN)."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"


__all__ = ["CanaryCheck", "CanaryQueueing", "MetricDrift", "canary_series", "canary_suites", "check_canary",
           "queue_canary_runs", "tracked_datasets"]
