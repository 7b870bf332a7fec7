"""What an incident touches: the recorded incidents, the runs that use a metric version, the fixed version of a
buggy metric. Both the incidents that queue recomputes and the recompute cost estimate that plans them read
these, so they live apart from either."""

from __future__ import annotations

from sqlalchemy import select

from eval_platform.core.errors import Conflict
from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import RunStatus
from eval_platform.metrics.catalog import all_metrics
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun, Incident, MetricSuite


def suite_metric_keys(suite: MetricSuite) -> set[str]:
    """The metric versions a suite version computes."""
    return {entry["metric"] for entry in suite.metric_defs["metrics"]}


def incidents(platform: EvalPlatform) -> list[Incident]:
    """Every recorded incident, oldest first."""
    with platform.registry.session() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def current_runs(platform: EvalPlatform) -> list[EvalRun]:
    """Every run not superseded by a newer run of its versions."""
    return [run for run in platform.runs() if run.status != RunStatus.SUPERSEDED]


def runs_using_metric(platform: EvalPlatform, metric_key: str) -> list[EvalRun]:
    """The current runs whose suite computes the metric version ``metric_key``."""
    uses = {suite.key for suite in platform.suites() if metric_key in suite_metric_keys(suite)}
    return [run for run in current_runs(platform) if run.suite_key in uses]


def fixed_version(metric_key: str, buggy: set[str]) -> str:
    """The newest registered version of ``metric_key``'s metric that is newer and not marked buggy, or
    :class:`Conflict` when the fix is not shipped yet."""
    name, version = VersionedKey.parse(metric_key, "metric")
    fixes = sorted((m for m in all_metrics() if m.name == name and m.key not in buggy), key=lambda m: m.version)
    if not fixes or fixes[-1].version <= version:
        raise Conflict(f"no fixed version of {name} newer than {metric_key} is registered: ship the fix first")
    return fixes[-1].key
