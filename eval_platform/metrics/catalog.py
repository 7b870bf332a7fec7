"""The metric catalog: every metric the platform knows, by ``name@version``.

Suites name metrics from here; an unknown name or version is rejected when the suite is registered.
Changing a metric's code means adding a new version here and keeping the old one, so results computed
with the old version stay explainable and a buggy version can be marked as such (see gates).
"""

from __future__ import annotations

from collections.abc import Iterable

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import (
    classification_defs,
    embeddings,
    generation_defs,
    judge_defs,
    perplexity,
    ranking,
    ratings,
)
from eval_platform.metrics.base import MetricDefinition

_CATALOG: dict[str, MetricDefinition] = {}


def register_metric(definition: MetricDefinition) -> MetricDefinition:
    if definition.key in _CATALOG:
        raise ValueError(f"metric {definition.key} is already registered; add a new version instead")
    _CATALOG[definition.key] = definition
    return definition


for _family in (classification_defs.METRICS, ranking.METRICS, generation_defs.METRICS, judge_defs.METRICS,
                embeddings.METRICS, perplexity.METRICS, ratings.METRICS):
    for _definition in _family:
        register_metric(_definition)


def get_metric(reference: str) -> MetricDefinition:
    """Look up ``name@version``; a bare ``name`` is refused so suites always pin a version."""
    name, sep, version = reference.partition("@")
    if not sep or not version.isdigit():
        raise InvalidInput("metric", f"{reference!r} must be written name@version, for example roc_auc@1")
    definition = _CATALOG.get(f"{name}@{int(version)}")
    if definition is None:
        known = sorted(k for k in _CATALOG if k.startswith(f"{name}@")) or sorted(_CATALOG)
        raise InvalidInput("metric", f"unknown metric {reference!r}; known: {', '.join(known)}")
    return definition


def all_metrics() -> Iterable[MetricDefinition]:
    return list(_CATALOG.values())
