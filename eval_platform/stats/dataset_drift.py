"""Drift of a dataset version from the previous version of the same dataset: features, labels, prevalence, slices.

:func:`compare_dataset_versions` measures, for every feature column, the label column and every declared slice
column (the slice's composition), overall, and for the features and the label again inside every value of the
declared slice columns:

* a numeric column (numbers, not booleans): the two-sample Kolmogorov-Smirnov test and PSI / Jensen-Shannon
  on quantile bins of the previous version, ``k = clip(n // 25, 2, 10)`` of them for ``n`` rows in the smaller
  version (PSI's expected value with no drift at all grows like ``(k - 1) (1 / n_prev + 1 / n_cur)``: ten bins
  on a 76-row slice would be "moderate drift" by chance alone); missing values are left out (their share is
  reported);
* a categorical column (strings, booleans, a label with few distinct values): PSI and Jensen-Shannon over its
  values (missing is a value of its own);
* a binary label (0/1): its prevalence (share of 1s) in both versions.

A free-text or list column (a generation task's reference answer, multilabel lists) is left out: binning
unique texts measures nothing.

A column counts as drifted when a measure exceeds its bound *and* the difference is more than sampling noise.
Bounds (:class:`DriftBounds`; an operator or a suite may change them), defaults:

* PSI > 0.25 (the customary "major shift") or Jensen-Shannon distance (base 2) > 0.2, with the chi-square test
  of homogeneity on the same bins rejecting;
* KS statistic > 0.1 with the KS test rejecting;
* a binary label's prevalence moving by more than 0.1 (absolute), with the two-proportion test rejecting.

Every test of the report is held to a family-wise level of 0.01 (Bonferroni: ``0.01 / number of tests``).
Both conditions are needed: on a large dataset a p-value alone flags differences too small to matter, and on a
small slice PSI and Jensen-Shannon alone are large by chance (they shrink like ``1 / n`` but are never 0 with no
drift at all; among a hundred comparisons of 40-row slices some exceed 0.25).

A comparison with fewer than ``min_rows`` (30) rows on either side is reported but not flagged: with so few
rows the measures are noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.stats.drift import (
    DEFAULT_BINS,
    DriftBins,
    homogeneity_test,
    jensen_shannon_distance,
    ks_two_sample,
    population_stability_index,
)

#: a column with at most this many distinct values is binned by value when it is a label
LABEL_CATEGORY_LIMIT = 50
#: a text column whose distinct values exceed this share of its rows (and 50 values) is free text, not compared
FREE_TEXT_SHARE = 0.5
OVERALL = ""
MEASURES = ("psi", "js", "ks_statistic")


@dataclass(frozen=True)
class DriftBounds:
    """When a column counts as drifted (see the module docstring for the defaults and why)."""

    psi: float = 0.25
    js: float = 0.2
    alpha: float = 0.01
    ks_statistic: float = 0.1
    prevalence_delta: float = 0.1
    min_rows: int = 30

    def __post_init__(self) -> None:
        for name in ("psi", "js", "ks_statistic", "prevalence_delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"bounds.{name}", f"must be a finite number >= 0, got {value!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not 0 < self.alpha < 1:
            raise InvalidInput("bounds.alpha", f"must be in (0, 1), got {self.alpha!r}")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise InvalidInput("bounds.min_rows", f"must be an integer >= 1, got {self.min_rows!r}")


@dataclass(frozen=True)
class ColumnDrift:
    """One column compared between the versions, overall (``slice_column == ""``) or inside one slice value."""

    column: str
    role: str  # feature, label or slice
    kind: str  # numeric or categorical
    slice_column: str
    slice_value: str
    n_previous: int
    n_current: int
    psi: float | None = None
    js: float | None = None
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    #: chi-square homogeneity p-value of the binned distributions (the bins PSI and Jensen-Shannon use)
    binned_p_value: float | None = None
    missing_previous: float = 0.0
    missing_current: float = 0.0
    #: why the column counts as drifted (empty: it does not), or why it was not judged
    reasons: tuple[str, ...] = ()
    drifted: bool = False

    @property
    def where(self) -> str:
        return f"{self.column} ({self.slice_column}={self.slice_value})" if self.slice_column else self.column


@dataclass(frozen=True)
class PrevalenceChange:
    """The share of positive labels of a binary label, in both versions, overall or inside one slice value."""

    slice_column: str
    slice_value: str
    previous: float
    current: float
    #: chi-square homogeneity p-value of the two versions' label counts (two-proportion test)
    p_value: float
    drifted: bool = False

    @property
    def delta(self) -> float:
        return self.current - self.previous


@dataclass(frozen=True)
class DatasetDriftReport:
    """Every comparison of a dataset version with the previous one; ``previous_key`` None: a first version."""

    current_key: str
    previous_key: str | None
    bounds: DriftBounds
    columns: tuple[ColumnDrift, ...] = ()
    prevalence: tuple[PrevalenceChange, ...] = ()
    #: the level each test of the report is held to (``bounds.alpha`` over the number of tests: Bonferroni)
    test_level: float | None = None
    skipped: tuple[str, ...] = field(default=())

    @property
    def drifted(self) -> tuple[ColumnDrift, ...]:
        return tuple(c for c in self.columns if c.drifted)

    @property
    def passed(self) -> bool:
        return not self.drifted and not any(p.drifted for p in self.prevalence)

    def worst(self, measure: str, slice_column: str | None = None) -> ColumnDrift | None:
        """The comparison with the largest ``measure`` (psi, js or ks_statistic); ``slice_column`` None: any
        comparison, ``""``: the overall ones only."""
        if measure not in MEASURES:
            raise InvalidInput("measure", f"must be one of {', '.join(MEASURES)}, got {measure!r}")
        found = [c for c in self.columns if getattr(c, measure) is not None
                 and (slice_column is None or c.slice_column == slice_column)]
        return max(found, key=lambda c: getattr(c, measure), default=None)

    def worst_beyond_noise(self, measure: str) -> ColumnDrift | None:
        """The comparison with the largest ``measure`` among those whose test rejects at ``test_level`` (the
        chi-square test for psi and js, KS for ks_statistic): what a bound on drift should look at."""
        if measure not in MEASURES:
            raise InvalidInput("measure", f"must be one of {', '.join(MEASURES)}, got {measure!r}")
        level = self.test_level or self.bounds.alpha
        p_value = "ks_p_value" if measure == "ks_statistic" else "binned_p_value"
        found = [c for c in self.columns if getattr(c, measure) is not None and getattr(c, p_value) is not None
                 and getattr(c, p_value) < level]
        return max(found, key=lambda c: getattr(c, measure), default=None)

    def measured(self) -> frozenset[str]:
        return frozenset(m for m in MEASURES if any(getattr(c, m) is not None for c in self.columns))

    def as_json(self) -> dict:
        return {"current": self.current_key, "previous": self.previous_key, "bounds": asdict(self.bounds),
                "test_level": self.test_level, "passed": self.passed, "skipped": list(self.skipped),
                "columns": [asdict(c) for c in self.columns], "prevalence": [asdict(p) for p in self.prevalence]}


def first_version(current_key: str, bounds: DriftBounds | None = None) -> DatasetDriftReport:
    """The report of a dataset's first version: nothing to compare with, so nothing drifted."""
    return DatasetDriftReport(current_key, None, bounds or DriftBounds())


def _kind(series: pd.Series, role: str) -> str | None:
    """numeric, categorical, or None for a column that is not compared (free text, lists)."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        if role == "feature":
            return "numeric"
        return "categorical" if values.nunique() <= LABEL_CATEGORY_LIMIT else "numeric"
    if len(values) and isinstance(values.iloc[0], list | tuple | dict | np.ndarray):
        return None
    distinct = values.astype(str).nunique()
    if distinct > LABEL_CATEGORY_LIMIT and distinct > FREE_TEXT_SHARE * max(len(values), 1):
        return None
    return "categorical"


def _compare_column(column: str, role: str, kind: str, previous: pd.Series, current: pd.Series, slice_column: str,
                    slice_value: str, bounds: DriftBounds) -> ColumnDrift:
    """The measures of one column; flags are decided later, once the number of KS tests is known."""
    base = ColumnDrift(column, role, kind, slice_column, slice_value, len(previous), len(current),
                       missing_previous=float(previous.isna().mean()) if len(previous) else 0.0,
                       missing_current=float(current.isna().mean()) if len(current) else 0.0)
    if min(len(previous), len(current)) < bounds.min_rows:
        return replace(base, reasons=(f"not judged: fewer than {bounds.min_rows} rows",))
    if kind == "categorical":
        prev, cur = previous.astype(object).where(previous.notna(), "<missing>"), current.astype(object).where(current.notna(), "<missing>")
        psi = population_stability_index(prev, cur, categorical=True)
        return replace(base, psi=psi.value, js=jensen_shannon_distance(prev, cur, categorical=True).value,
                       binned_p_value=homogeneity_test(psi.bins).p_value)
    prev, cur = previous.dropna().astype(float), current.dropna().astype(float)
    if min(len(prev), len(cur)) < bounds.min_rows:
        return replace(base, reasons=(f"not judged: fewer than {bounds.min_rows} non-missing values",))
    ks = ks_two_sample(prev, cur)
    bins = numeric_bins(min(len(prev), len(cur)))
    psi = population_stability_index(prev, cur, bins=bins)
    return replace(base, psi=psi.value, js=jensen_shannon_distance(prev, cur, categorical=False, bins=bins).value,
                   binned_p_value=homogeneity_test(psi.bins).p_value, ks_statistic=ks.statistic, ks_p_value=ks.p_value)


def numeric_bins(n_rows: int) -> int:
    """Quantile bins of a numeric column compared on ``n_rows`` rows (the smaller version's): 25 rows a bin, 2 to 10."""
    return int(np.clip(n_rows // 25, 2, DEFAULT_BINS))


def _judged(drift: ColumnDrift, bounds: DriftBounds, level: float) -> ColumnDrift:
    reasons = []
    if drift.binned_p_value is not None and drift.binned_p_value < level:
        beyond = [f"{name} {value:.4g} > {bound:g}" for name, value, bound in (("PSI", drift.psi, bounds.psi),
                                                                              ("Jensen-Shannon", drift.js, bounds.js))
                  if value is not None and value > bound]
        if beyond:
            reasons.append(", ".join(beyond) + f" (chi-square p {drift.binned_p_value:.3g} < {level:.3g})")
    if (drift.ks_statistic is not None and drift.ks_p_value is not None and drift.ks_p_value < level
            and drift.ks_statistic > bounds.ks_statistic):
        reasons.append(f"KS statistic {drift.ks_statistic:.4g} > {bounds.ks_statistic:g} (p {drift.ks_p_value:.3g} < {level:.3g})")
    if not reasons:
        return drift
    return replace(drift, reasons=tuple(reasons), drifted=True)


def _columns(frame: pd.DataFrame, schema: Mapping[str, Any], name: str) -> list[str]:
    columns = schema.get(name, [])
    if isinstance(columns, str) or not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"schema.{name}", "must be a list of column names")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"schema.{name}", f"column(s) {missing} are not in the current version")
    return list(columns)


def _prevalence(previous: pd.Series, current: pd.Series, slice_column: str, slice_value: str,
                bounds: DriftBounds) -> PrevalenceChange | None:
    if min(len(previous), len(current)) < bounds.min_rows:
        return None
    prev, cur = int((previous == 1).sum()), int((current == 1).sum())
    test = homogeneity_test(DriftBins(("1", "0"), (prev, len(previous) - prev), (cur, len(current) - cur)))
    return PrevalenceChange(slice_column, slice_value, prev / len(previous), cur / len(current), test.p_value)


def _checked_schema(previous_frame: Any, current_frame: Any, schema: Any) -> tuple[list[str], str | None, list[str]]:
    """Feature, label and slice columns of ``schema``, each a column of the current version."""
    for name, frame in (("previous_frame", previous_frame), ("current_frame", current_frame)):
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(name, f"must be a pandas DataFrame, got {type(frame).__name__}")
    if not isinstance(schema, Mapping):
        raise InvalidInput("schema", "must be a mapping")
    features = _columns(current_frame, schema, "feature_columns")
    slices = _columns(current_frame, schema, "slice_columns")
    label = schema.get("label_column")
    if label is not None and (not isinstance(label, str) or label not in current_frame.columns):
        raise InvalidInput("schema.label_column", f"{label!r} is not a column of the current version")
    return features, label, slices


def _is_binary(previous: pd.Series, current: pd.Series, declared: bool | None) -> bool:
    if declared is not None:
        return declared
    both = pd.concat([previous, current], ignore_index=True)
    return bool(pd.api.types.is_numeric_dtype(both) and not pd.api.types.is_bool_dtype(both) and both.dropna().isin([0, 1]).all())


def compare_dataset_versions(previous_frame: pd.DataFrame, current_frame: pd.DataFrame, schema: Mapping[str, Any], *,
                             current_key: str = "", previous_key: str = "", bounds: DriftBounds | None = None,
                             binary_label: bool | None = None) -> DatasetDriftReport:
    """Compare ``current_frame`` with ``previous_frame`` column by column (see the module docstring).

    ``schema`` is the current version's registered schema (``feature_columns``, ``label_column``,
    ``slice_columns``); a column the previous version lacks is reported in ``skipped``. ``binary_label`` None:
    the label is binary when its values in both versions are within {0, 1}.

    >>> import pandas as pd
    >>> before = pd.DataFrame({"x": range(100), "label": [0, 1] * 50})
    >>> after = pd.DataFrame({"x": range(50, 150), "label": [0, 1] * 50})
    >>> report = compare_dataset_versions(before, after, {"feature_columns": ["x"], "label_column": "label"})
    >>> [c.column for c in report.drifted]
    ['x']
    """
    bounds = bounds or DriftBounds()
    features, label, slices = _checked_schema(previous_frame, current_frame, schema)
    roles = [(c, "feature") for c in features] + ([(label, "label")] if label else []) + [(c, "slice") for c in slices]
    skipped = [f"{c}: not in the previous version" for c, _ in roles if c not in previous_frame.columns]
    compared: list[tuple[str, str, str]] = []
    for column, role in roles:
        if column not in previous_frame.columns:
            continue
        kind = _kind(pd.concat([previous_frame[column], current_frame[column]], ignore_index=True), role)
        if kind is None:
            skipped.append(f"{column}: free text or lists, not compared")
        else:
            compared.append((column, role, kind))
    raw = [_compare_column(c, role, kind, previous_frame[c], current_frame[c], "", "", bounds) for c, role, kind in compared]
    in_slices = [(c, role, kind) for c, role, kind in compared if role != "slice"]
    slice_groups = []
    for slice_column in (s for s in slices if s in previous_frame.columns):
        prev_keys, cur_keys = previous_frame[slice_column].astype(str), current_frame[slice_column].astype(str)
        for value in sorted(set(prev_keys) | set(cur_keys)):
            prev_rows, cur_rows = previous_frame[(prev_keys == value).to_numpy()], current_frame[(cur_keys == value).to_numpy()]
            slice_groups.append((slice_column, value, prev_rows, cur_rows))
            raw += [_compare_column(c, role, kind, prev_rows[c], cur_rows[c], slice_column, value, bounds)
                    for c, role, kind in in_slices]
    prevalence: list[PrevalenceChange] = []
    if label and label in previous_frame.columns and _is_binary(previous_frame[label], current_frame[label], binary_label):
        groups = [("", "", previous_frame, current_frame), *slice_groups]
        prevalence = [p for s, v, prev, cur in groups if (p := _prevalence(prev[label], cur[label], s, v, bounds))]
    # Bonferroni over every test of the report: KS, the binned homogeneity tests, the prevalence tests
    n_tests = sum((c.ks_p_value is not None) + (c.binned_p_value is not None) for c in raw) + len(prevalence)
    level = bounds.alpha / n_tests if n_tests else bounds.alpha
    columns = tuple(_judged(c, bounds, level) for c in raw)
    prevalence = [replace(p, drifted=p.p_value < level and abs(p.delta) > bounds.prevalence_delta) for p in prevalence]
    return DatasetDriftReport(current_key, previous_key or None, bounds, columns, tuple(prevalence), level, tuple(skipped))
