"""A suite's ``canary`` section: how far each metric of a golden or canary dataset may move before the canary
check fails.

::

    canary:
      bounds: {exact_match: 0.05, token_f1: 0.05}    # metric name -> largest allowed |current - reference|

The reference is the first canary run of the promoted model version on the dataset version with this suite
version; the current value is the latest one (:mod:`eval_platform.evaluation.canaries`). A bound is an
absolute change in the metric's own unit (0.02 of ROC AUC is two points), ``>= 0`` and finite; 0 demands an
identical value. Metrics without a bound are tracked and shown, never alerted on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from eval_platform.suites.refusals import is_number, refusal


def parse_canary_section(value: Any, metrics: Sequence[Any]) -> dict[str, Any]:
    """The normalised section (bounds sorted by metric name), or the first problem naming its field.

    ``metrics`` are the suite's validated metrics (each with ``name`` and ``definition``): a bound names one
    of them, and not a comparison-only metric (a pairwise preference exists only against a baseline, and a
    canary run has none)."""
    if not isinstance(value, Mapping):
        raise refusal("must be a mapping with 'bounds'", "canary")
    unknown = sorted(set(value) - {"bounds"})
    if unknown:
        raise refusal(f"unknown field(s) {unknown}; known: ['bounds']", "canary")
    bounds = value.get("bounds")
    if not isinstance(bounds, Mapping) or not bounds:
        raise refusal("must map at least one of the suite's metric names to the largest change allowed", "canary.bounds")
    by_name = {m.name: m for m in metrics}
    normalised: dict[str, float] = {}
    for name, bound in bounds.items():
        field = f"canary.bounds.{name}"
        if name not in by_name:
            raise refusal(f"{name!r} is not one of the suite's metrics {sorted(by_name)}", field)
        if by_name[name].definition.comparison_only:
            raise refusal(f"{name!r} is measured only against a baseline; a canary run has none", field)
        if not is_number(bound) or not math.isfinite(bound) or bound < 0:
            raise refusal(f"must be a finite number >= 0 (the largest absolute change allowed), got {bound!r}", field)
        normalised[name] = float(bound)
    return {"bounds": dict(sorted(normalised.items()))}
