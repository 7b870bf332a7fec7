"""Registration of a dataset's human ratings: its rater columns and their scale, checked before anything is stored.

``rating_columns`` names one column per human rater and ``rating_scale`` what a rating is (see
:class:`eval_platform.metrics.ratings.RatingScale`). Registration refuses, naming the field: an unknown or
duplicated column, an id or label column used as a rater, fewer than two raters, a rating outside the scale
(with its rater and row), and raters who never rated an example together (agreement needs at least one example
with two ratings). The declaration is kept in the dataset's schema as ``ratings`` and the rows themselves
unchanged, so the metrics read the ratings as they were given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.ratings import RatingScale


def rating_schema(frame: pd.DataFrame, rating_columns: Sequence[str] | None, rating_scale: Any,
                  reserved: Iterable[str]) -> dict | None:
    """The ``ratings`` entry of the dataset's schema (``{"columns": [...], "scale": {...}}``), or None when the
    dataset declares no raters; every problem raises :class:`InvalidInput` naming its field."""
    if rating_columns is None and rating_scale is None:
        return None
    if rating_columns is None:
        raise InvalidInput("rating_columns", "a rating_scale needs the rating_columns it describes")
    if rating_scale is None:
        raise InvalidInput("rating_scale", "is required with rating_columns (likert, ordinal, nominal or preference)")
    columns = _rater_columns(frame, rating_columns, set(reserved))
    scale = RatingScale.from_raw(rating_scale)
    codes = scale.encode(frame[columns], raters=columns)
    paired = (~np.isnan(codes)).sum(axis=1) >= 2
    if not paired.any():
        raise InvalidInput("rating_columns", "no example has ratings from two raters: agreement needs raters who overlap")
    return {"columns": columns, "scale": scale.as_json()}


def _rater_columns(frame: pd.DataFrame, rating_columns: Any, reserved: set[str]) -> list[str]:
    if isinstance(rating_columns, str) or not all(isinstance(c, str) and c for c in rating_columns):
        raise InvalidInput("rating_columns", f"must be a list of column names, got {rating_columns!r}")
    columns = list(rating_columns)
    if len(columns) < 2:
        raise InvalidInput("rating_columns", f"agreement needs at least 2 raters, got {columns}")
    if len(set(columns)) != len(columns):
        raise InvalidInput("rating_columns", f"names a column twice: {columns}")
    for column in columns:
        if column not in frame.columns:
            raise InvalidInput("rating_columns", f"column {column!r} is not in the dataset")
        if column in reserved:
            raise InvalidInput("rating_columns", f"column {column!r} is an id or label column")
    return columns
