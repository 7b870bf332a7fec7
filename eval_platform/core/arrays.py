"""Numeric inputs checked at a library boundary, the same way everywhere: a refusal names the field and the row."""

from __future__ import annotations

from typing import Any

import numpy as np

from eval_platform.core.errors import InvalidInput


def finite_vector(values: Any, field: str) -> np.ndarray:
    """``values`` as a one-dimensional float64 array of finite numbers, or :class:`InvalidInput` naming ``field``
    (and the first row, counted from 1, that is NaN or infinite)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be numbers") from None
    if array.ndim != 1:
        raise InvalidInput(field, f"must be one-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput(field, f"row {row + 1}: {float(array[row])!r} is not a finite number")
    return array
