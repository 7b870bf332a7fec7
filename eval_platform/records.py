"""Registry records as plain JSON-ready dictionaries (for the CLI's --json and the HTTP API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect


def to_dict(record: Any) -> dict:
    out = {}
    for column in inspect(record).mapper.column_attrs:
        value = getattr(record, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    for extra in ("key",):
        if hasattr(type(record), extra):
            out[extra] = getattr(record, extra)
    return out


def run_to_dict(run: Any) -> dict:
    out = to_dict(run)
    out.update(model=run.model_key, dataset=run.dataset_key, suite=run.suite_key)
    if run.started_at and run.requested_at:
        out["queue_seconds"] = (run.started_at - run.requested_at).total_seconds()
    return out
