"""Numeric inputs checked at a library boundary, the same way everywhere: a refusal names the field and the row."""

from __future__ import annotations

from typing import Any

import numpy as np

from eval_platform.core.errors import InvalidInput


def finite_vector(values: Any, field: str) -> np.ndarray:
    """``values`` as a one-dimensional float64 array of finite numbers, or :class:`InvalidInput` naming ``field``
    (and the first row, counted from 1, that is NaN or infinite)."""
    array = _float_array(values, field, "must be numbers")
    if array.ndim != 1:
        raise InvalidInput(field, f"must be one-dimensional, got shape {array.shape}")
    return _all_finite(array, field)


def finite_matrix(values: Any, field: str, min_rows: int, rows: str) -> np.ndarray:
    """``values`` as a two-dimensional ``(n, dim)`` float64 array of finite numbers, at least ``min_rows`` rows
    (``rows`` says what one is: ``one embedding per row``) and one column, or :class:`InvalidInput` naming
    ``field`` (and the first cell, row and column counted from 1, that is NaN or infinite)."""
    array = _float_array(values, field, f"must be a numeric array, {rows}")
    if array.ndim != 2:
        raise InvalidInput(field, f"must be two-dimensional (n, dim), got shape {array.shape}")
    if array.shape[0] < min_rows or array.shape[1] < 1:
        raise InvalidInput(field, f"needs at least {min_rows} rows and 1 column, got shape {array.shape}")
    return _all_finite(array, field)


def _float_array(values: Any, field: str, problem: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(field, problem) from None


def _all_finite(array: np.ndarray, field: str) -> np.ndarray:
    """``array``, if no value is NaN or infinite; else the first one's row (and column), counted from 1."""
    bad = ~np.isfinite(array)
    if bad.any():
        cell = tuple(int(i) for i in np.argwhere(bad)[0])
        where = ", ".join(f"{name} {i + 1}" for name, i in zip(("row", "column")[:len(cell)], cell, strict=True))
        raise InvalidInput(field, f"{where}: {float(array[cell])!r} is not a finite number")
    return array
