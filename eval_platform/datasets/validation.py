"""Dataset validation with Great Expectations.

The expectations depend on the task type: the required columns exist, example ids are unique and
non-null, labels are non-null and inside the task's label domain. The same expectation suite runs when a
dataset is registered (a failure rejects it before anything is stored) and as Dagster asset checks on the
dataset asset. Results are plain data (:class:`ExpectationOutcome`) so either caller can report them.
Above :data:`GE_SAMPLE_ROWS` rows Great Expectations sees a fixed sample and exact vectorised checks of
every row decide each outcome (see there why).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.tasks import TaskType

#: Version of the validation rules; part of the dataset asset's code version. 2: finite feature values.
VALIDATION_VERSION = "2"

# The check names are the Dagster asset-check names, one per kind of expectation.
CHECK_REQUIRED_COLUMNS = "required_columns"
CHECK_UNIQUE_IDS = "unique_non_null_ids"
CHECK_LABELS_PRESENT = "labels_not_null"
CHECK_LABEL_DOMAIN = "label_domain"
CHECK_FINITE = "finite_values"
CHECKS = (CHECK_REQUIRED_COLUMNS, CHECK_UNIQUE_IDS, CHECK_LABELS_PRESENT, CHECK_LABEL_DOMAIN, CHECK_FINITE)

#: Great Expectations sees at most this many rows. Its pandas engine costs seconds per 100k rows and
#: several copies of the frame (10M rows: tens of minutes and over 10 GB at registration), while every
#: expectation of the suite is an invariant that must hold on every row (ids unique and non-null, labels
#: present and in their domain). So above this size the suite runs on a fixed sample of evenly spaced rows
#: (the same rows for the same data: the outcome is reproducible), and each expectation's outcome, counts
#: and examples come from an exact vectorised check of the whole frame (:func:`_exact_unexpected`): a
#: single duplicate id among 10M rows is still refused. Up to this size the outcomes are GE's own.
GE_SAMPLE_ROWS = 100_000


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation on one column (or id combination): passed, or what was wrong and examples."""

    check: str
    expectation: str
    column: str
    success: bool
    problem: str = ""
    unexpected_count: int = 0
    examples: tuple = ()


@dataclass
class ValidationReport:
    """Every expectation's outcome on a dataset; what registration refuses on and the asset checks report."""

    row_count: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    #: rows Great Expectations itself checked (all of them up to GE_SAMPLE_ROWS, else the sample)
    sampled_rows: int = 0

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def by_check(self) -> dict[str, list[ExpectationOutcome]]:
        grouped: dict[str, list[ExpectationOutcome]] = {name: [] for name in CHECKS}
        for outcome in self.outcomes:
            grouped[outcome.check].append(outcome)
        return grouped

    def raise_for_failures(self) -> None:
        failures = self.failures()
        if failures:
            first = failures[0]
            more = "; ".join(f"{o.column}: {o.problem}" for o in failures[1:])
            raise InvalidInput(f"column {first.column!r}", first.problem + (f" (also: {more})" if more else ""))


def all_distinct(frame: pd.DataFrame, columns: Sequence[str]) -> bool:
    """``not frame.duplicated(columns).any()`` (nulls equal each other, as in pandas), for one column by
    Arrow's hash count: pandas' ``duplicated`` on Arrow-backed text goes through Python objects (10M ids:
    a gigabyte and tens of seconds)."""
    columns = list(columns)
    if len(columns) == 1:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            values = pa.array(frame[columns[0]])
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. mixed Python objects: pandas can still compare them
            pass
        else:
            return pc.count_distinct(values, mode="all").as_py() == len(values)
    return not frame[columns].duplicated().any()


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def finite_value_problems(frame: pd.DataFrame, columns: Sequence[str]) -> list[ExpectationOutcome]:
    """One outcome per numeric column of ``columns``: fails on ``inf``/``-inf`` and names the first row.

    A model given an infinite feature fails (or predicts garbage) and the run's error then blames the model
    file; refused at registration, the dataset is blamed. NaN is not refused here: it is a missing value,
    which many estimators handle (those that do not say so when they predict). Plain numpy on the column,
    so it runs before (and much faster than) Great Expectations. Rows are counted from 1.
    """
    outcomes = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue  # only numbers can be infinite
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(array)
        sample: tuple[float, ...]
        problem, sample = "", ()
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            problem = (f"{int(infinite.sum())} non-finite value(s); the first, {array[row]}, at row {row + 1}: "
                       "infinite values are refused (write a missing value as empty/NaN)")
            sample = (float(array[row]),)
        outcomes.append(ExpectationOutcome(CHECK_FINITE, "expect_column_values_to_be_finite", str(column), not infinite.any(),
                                           problem, int(infinite.sum()), sample))
    return outcomes


def check_finite_values(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`InvalidInput` naming the first column with a non-finite value and its first row."""
    for outcome in finite_value_problems(frame, columns):
        if not outcome.success:
            raise InvalidInput(f"column {outcome.column!r}", outcome.problem)


def validate_frame(frame: pd.DataFrame, task: TaskType, feature_columns: Sequence[str] = ()) -> ValidationReport:
    """Run the task type's expectations on ``frame`` (and the finite-value check on ``feature_columns`` and a
    numeric label); never raises for bad data, reports it."""
    gx, context = _context()
    report = ValidationReport(row_count=len(frame))
    numeric_label = [task.label_column] if task.label_column in frame.columns and task.label_domain[0] == "min" else []
    report.outcomes.extend(finite_value_problems(frame, [c for c in (*feature_columns, *numeric_label) if c in frame.columns]))
    present = _check_required_columns(report, frame, task)
    expectations = [*_id_expectations(gx, task, present), *_label_expectations(gx, report, frame, task, present)]
    if expectations and len(frame.columns):
        _run_expectations(context, gx.ExpectationSuite(name=f"{task.name}_v{VALIDATION_VERSION}"), report, frame, expectations)
    return report


@dataclass(frozen=True)
class _Expectation:
    """One expectation of the suite, with the same rule as an exact mask of the unexpected rows (or False)."""

    check: str
    column: str
    ge_expectation: Any
    unexpected: Callable[[pd.DataFrame], Any]


def _check_required_columns(report: ValidationReport, frame: pd.DataFrame, task: TaskType) -> list[str]:
    """Report each required column as present or missing; the present ones, in the task's order."""
    missing = [c for c in task.required_columns if c not in frame.columns]
    for column in task.required_columns:
        report.outcomes.append(
            ExpectationOutcome(
                CHECK_REQUIRED_COLUMNS, "expect_column_to_exist", column, column not in missing,
                "" if column not in missing else f"required column is missing for task type {task.name}",
            )
        )
    return [c for c in task.required_columns if c not in missing]


def _id_expectations(gx: Any, task: TaskType, present: list[str]) -> list[_Expectation]:
    """Ids are non-null, and unique alone (one id column) or together (all of the task's id columns)."""
    ids = [c for c in task.id_columns if c in present]
    expectations = [
        _Expectation(CHECK_UNIQUE_IDS, column, gx.expectations.ExpectColumnValuesToNotBeNull(column=column), _nulls_in(column))
        for column in ids
    ]
    if len(ids) == 1:
        expectations.append(_Expectation(
            CHECK_UNIQUE_IDS, ids[0], gx.expectations.ExpectColumnValuesToBeUnique(column=ids[0]),
            _duplicates_in(ids[0])))
    elif len(ids) > 1 and len(ids) == len(task.id_columns):
        # GE's default ignore_row_if="all_values_are_missing"
        expectations.append(_Expectation(
            CHECK_UNIQUE_IDS, "+".join(ids), gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(ids)),
            _duplicate_combinations_in(ids)))
    return expectations


def _nulls_in(column: str) -> Callable[[pd.DataFrame], Any]:
    return lambda f: f[column].isna()


def _duplicates_in(column: str) -> Callable[[pd.DataFrame], Any]:
    return lambda f: False if all_distinct(f, [column]) else f[column].notna() & f[column].duplicated(keep=False)


def _duplicate_combinations_in(columns: list[str]) -> Callable[[pd.DataFrame], Any]:
    return lambda f: False if all_distinct(f, columns) else f[columns].duplicated(keep=False) & ~f[columns].isna().all(axis=1)


def _label_expectations(gx: Any, report: ValidationReport, frame: pd.DataFrame, task: TaskType,
                        present: list[str]) -> list[_Expectation]:
    """Labels are non-null and inside the task's domain; a non-numeric label of a numeric domain is reported
    failed at once (GE cannot compare it)."""
    label = task.label_column
    if label not in present:
        return []
    expectations = [_Expectation(CHECK_LABELS_PRESENT, label, gx.expectations.ExpectColumnValuesToNotBeNull(column=label),
                                 lambda f: f[label].isna())]
    kind, domain = task.label_domain
    if kind == "set" and isinstance(domain, tuple):
        allowed = list(domain)
        expectations.append(_Expectation(
            CHECK_LABEL_DOMAIN, label, gx.expectations.ExpectColumnValuesToBeInSet(column=label, value_set=allowed),
            lambda f: f[label].notna() & ~f[label].isin(allowed)))
    elif kind == "min" and pd.api.types.is_numeric_dtype(frame[label]):
        expectations.append(_Expectation(
            CHECK_LABEL_DOMAIN, label, gx.expectations.ExpectColumnValuesToBeBetween(column=label, min_value=domain),
            lambda f: f[label].notna() & (f[label] < domain)))
    elif kind == "min":
        report.outcomes.append(
            ExpectationOutcome(CHECK_LABEL_DOMAIN, "expect_column_values_to_be_between", label, False,
                               f"must be numeric (>= {domain}), found dtype {frame[label].dtype}")
        )
    return expectations


def _run_expectations(context: Any, suite: Any, report: ValidationReport, frame: pd.DataFrame,
                      expectations: list[_Expectation]) -> None:
    """Validate ``frame`` (or its fixed sample, above GE_SAMPLE_ROWS, then every row by the exact masks) and
    report one outcome per expectation."""
    sampled = len(frame) > GE_SAMPLE_ROWS
    checked = frame.iloc[np.linspace(0, len(frame) - 1, GE_SAMPLE_ROWS).round().astype(np.int64)] if sampled else frame
    report.sampled_rows = len(checked)
    source = context.data_sources.add_pandas("eval_dataset")
    batch = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": checked}
    )
    for expectation in expectations:
        suite.add_expectation(expectation.ge_expectation)
    result = batch.validate(suite, result_format="SUMMARY")
    for expectation, outcome in zip(expectations, _in_order(result, suite), strict=True):
        details = outcome.result or {}
        count = int(details.get("unexpected_count") or 0)
        sample = tuple(_plain(v) for v in (details.get("partial_unexpected_list") or [])[:5])
        success = bool(outcome.success)
        if sampled and not (outcome.exception_info or {}).get("raised_exception"):
            count, sample = _exact_unexpected(frame, expectation.unexpected(frame), expectation.column)
            success = count == 0
        report.outcomes.append(
            ExpectationOutcome(
                expectation.check, outcome.expectation_config.type, expectation.column, success,
                "" if success else _problem(outcome.expectation_config.type, count, sample, outcome),
                count, sample,
            )
        )


def _exact_unexpected(frame: pd.DataFrame, mask: pd.Series, column: str) -> tuple[int, tuple]:
    """Count and first five unexpected values (``{column: value}`` for compound ids, as GE lists them)."""
    if mask is False:  # the check found nothing without building a mask
        return 0, ()
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if not count:
        return 0, ()
    rows = np.flatnonzero(mask)[:5]
    if "+" in column and column not in frame.columns:
        return count, tuple(frame.iloc[rows][column.split("+")].to_dict("records"))
    return count, tuple(_plain(v) for v in frame[column].iloc[rows])


def _in_order(result, suite):
    """GE may reorder results; line them up with the suite's expectations by type and arguments."""

    def identity(config):
        kwargs = config.kwargs
        return config.type, str(kwargs.get("column")), str(kwargs.get("column_list"))

    by_identity = {identity(r.expectation_config): r for r in result.results}
    return [by_identity[identity(e.configuration)] for e in suite.expectations]


def _plain(value):
    try:
        return value.item()
    except AttributeError:
        return value


def _problem(expectation: str, count: int, sample: tuple, outcome) -> str:
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        return f"could not be checked: {outcome.exception_info.get('exception_message')}"
    what = {
        "expect_column_values_to_not_be_null": "null value(s)",
        "expect_column_values_to_be_unique": "duplicate value(s)",
        "expect_compound_columns_to_be_unique": "duplicate id combination(s)",
        "expect_column_values_to_be_in_set": "value(s) outside the label domain",
        "expect_column_values_to_be_between": "value(s) below the minimum",
    }.get(expectation, "unexpected value(s)")
    return f"{count} {what}" + (f", e.g. {list(sample)}" if sample else "")
