"""How ``evalp``'s commands print: aligned tables for people, JSON (``--json``) for machines."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any


def print_json(payload: Any) -> None:
    from eval_platform.core.records import json_safe  # keeps evalp --help fast

    print(json.dumps(json_safe(payload, infinities_as_text=True), indent=2, default=str))  # +inf is "inf", NaN null


def print_table(rows: list[dict], columns: Sequence[str]) -> None:
    """One line per row, the columns aligned; ``(none)`` for no rows."""
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)))
    for line in cells:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def emit(args: argparse.Namespace, payload: Any, columns: Sequence[str], rows: list[dict] | None = None) -> None:
    """``payload`` as JSON with ``--json``, else a table of ``rows`` (default: the payload as its one row)."""
    if args.json:
        print_json(payload)
    else:
        print_table(rows if rows is not None else [payload], columns)


def format_value(value: float | None) -> str:
    """A metric's value as the score and run tables print it: four decimals, ``undefined`` for none or NaN."""
    return "undefined" if value is None or math.isnan(value) else f"{value:.4f}"
