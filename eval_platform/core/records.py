"""Registry records as plain JSON-ready dictionaries (for the CLI's --json and the HTTP API)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import inspect


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the offset (SQLite hands back naive datetimes; the registry writes UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def json_safe(value: Any, infinities_as_text: bool = False) -> Any:
    """A document JSON (and PostgreSQL's JSON columns) accepts: NaN and infinities become ``None``, numpy
    scalars and arrays Python values, datetimes ISO 8601, tuples lists and mapping keys strings, recursively.

    ``infinities_as_text``: ``+inf``/``-inf`` become the strings ``"inf"``/``"-inf"`` instead, so a reader
    tells an infinite value (``threshold_at_precision`` when no threshold reaches the precision) from an
    undefined one (NaN, still ``None``): what ``evalp --json`` and the API print."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, infinities_as_text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, infinities_as_text) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v, infinities_as_text) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isfinite(value) or math.isnan(value):
            return value if math.isfinite(value) else None
        return ("inf" if value > 0 else "-inf") if infinities_as_text else None
    if isinstance(value, datetime):
        return iso(value)
    return value


def to_dict(record: Any) -> dict:
    out = {}
    for column in inspect(record).mapper.column_attrs:
        value = getattr(record, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    for extra in ("key",):
        if hasattr(type(record), extra):
            out[extra] = getattr(record, extra)
    return out


def with_infinities(results: dict | None) -> dict | None:
    """A run's stored results as printed: each metric stored as ``None`` because it is infinite (listed in
    ``infinite_metrics``) shown as ``"inf"``/``"-inf"``, so it reads apart from an undefined one (``None``)."""
    if not results or not results.get("infinite_metrics"):
        return results
    out = {k: v for k, v in results.items() if k != "infinite_metrics"}
    out["metrics"] = {**(results.get("metrics") or {}), **results["infinite_metrics"]}
    return out


def run_to_dict(run: Any) -> dict:
    out = to_dict(run)
    out["results"] = with_infinities(out.get("results"))
    out.update(model=run.model_key, dataset=run.dataset_key, suite=run.suite_key)
    if run.started_at and run.requested_at:
        out["queue_seconds"] = (run.started_at - run.requested_at).total_seconds()
    return out
