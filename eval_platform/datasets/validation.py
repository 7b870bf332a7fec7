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
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    check: str
    expectation: str
    column: str
    success: bool
    problem: str = ""
    unexpected_count: int = 0
    examples: tuple = ()


@dataclass
class ValidationReport:
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
    missing = [c for c in task.required_columns if c not in frame.columns]
    for column in task.required_columns:
        report.outcomes.append(
            ExpectationOutcome(
                CHECK_REQUIRED_COLUMNS, "expect_column_to_exist", column, column not in missing,
                "" if column not in missing else f"required column is missing for task type {task.name}",
            )
        )
    present = [c for c in task.required_columns if c not in missing]
    # (check, column, GE expectation, the same expectation as an exact mask of the unexpected rows)
    expectations: list[tuple[str, str, object, object]] = []
    ids = [c for c in task.id_columns if c in present]
    for column in ids:
        expectations.append((CHECK_UNIQUE_IDS, column, gx.expectations.ExpectColumnValuesToNotBeNull(column=column),
                             lambda f, c=column: f[c].isna()))
    if len(ids) == 1:
        expectations.append((CHECK_UNIQUE_IDS, ids[0], gx.expectations.ExpectColumnValuesToBeUnique(column=ids[0]),
                             lambda f, c=ids[0]: False if all_distinct(f, [c]) else f[c].notna() & f[c].duplicated(keep=False)))
    elif len(ids) > 1 and len(ids) == len(task.id_columns):
        # GE's default ignore_row_if="all_values_are_missing"
        expectations.append(
            (CHECK_UNIQUE_IDS, "+".join(ids), gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(ids)),
             lambda f, c=list(ids): False if all_distinct(f, c) else f[c].duplicated(keep=False) & ~f[c].isna().all(axis=1))
        )
    label = task.label_column
    if label in present:
        expectations.append((CHECK_LABELS_PRESENT, label, gx.expectations.ExpectColumnValuesToNotBeNull(column=label),
                             lambda f: f[label].isna()))
        kind, domain = task.label_domain
        if kind == "set":
            expectations.append(
                (CHECK_LABEL_DOMAIN, label, gx.expectations.ExpectColumnValuesToBeInSet(column=label, value_set=list(domain)),
                 lambda f: f[label].notna() & ~f[label].isin(list(domain)))
            )
        elif kind == "min":
            if pd.api.types.is_numeric_dtype(frame[label]):
                expectations.append(
                    (CHECK_LABEL_DOMAIN, label, gx.expectations.ExpectColumnValuesToBeBetween(column=label, min_value=domain),
                     lambda f: f[label].notna() & (f[label] < domain))
                )
            else:
                report.outcomes.append(
                    ExpectationOutcome(CHECK_LABEL_DOMAIN, "expect_column_values_to_be_between", label, False,
                                       f"must be numeric (>= {domain}), found dtype {frame[label].dtype}")
                )
    if expectations and len(frame.columns):
        sampled = len(frame) > GE_SAMPLE_ROWS
        checked = frame.iloc[np.linspace(0, len(frame) - 1, GE_SAMPLE_ROWS).round().astype(np.int64)] if sampled else frame
        report.sampled_rows = len(checked)
        source = context.data_sources.add_pandas("eval_dataset")
        batch = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": checked}
        )
        suite = gx.ExpectationSuite(name=f"{task.name}_v{VALIDATION_VERSION}")
        for _, _, expectation, _ in expectations:
            suite.add_expectation(expectation)
        result = batch.validate(suite, result_format="SUMMARY")
        for (check, column, expectation, unexpected), outcome in zip(expectations, _in_order(result, suite), strict=True):
            details = outcome.result or {}
            count = int(details.get("unexpected_count") or 0)
            sample = tuple(_plain(v) for v in (details.get("partial_unexpected_list") or [])[:5])
            success = bool(outcome.success)
            if sampled and not (outcome.exception_info or {}).get("raised_exception"):
                count, sample = _exact_unexpected(frame, unexpected(frame), column)
                success = count == 0
            report.outcomes.append(
                ExpectationOutcome(
                    check, outcome.expectation_config.type, column, success,
                    "" if success else _problem(outcome.expectation_config.type, count, sample, outcome),
                    count, sample,
                )
            )
    return report


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
