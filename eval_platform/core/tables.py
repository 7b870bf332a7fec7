"""The one reader of data tables: Parquet, CSV, TSV and JSON Lines, from a path or an upload.

Every door reads through it (``evalp``'s commands, the API's uploads, predictions files), so a table means
the same thing however it arrives. Text stays text: the columns a task type declares as text
(:attr:`eval_platform.core.tasks.TaskType.text_columns`: prompt, reference, prediction) and its id columns are
read from CSV verbatim, with no type or missing-value inference: ``"42"`` stays the string ``"42"``, ``"NA"``,
``"None"``, ``"null"``, ``"nan"`` stay those words and an empty field is the empty string (an empty
prediction). Other CSV columns keep pandas' inference (numbers, and its usual missing-value words).
JSON Lines values keep their JSON types (``"42"`` is text, ``42`` a number, ``null`` missing) and Parquet
its own. A declared text column must then hold text in every row: a number or a missing value there is
refused naming the row (counted from 1, the header not being a row) and the column.

A pickle is refused on its first byte, before any parser sees it.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from pathlib import Path
from typing import IO

import pandas as pd

from eval_platform.core.errors import InvalidInput

PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITED_SUFFIXES = (".csv", ".tsv")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
PARQUET, CSV, TSV, JSONL = "parquet", "csv", "tsv", "jsonl"

#: The strings pandas reads as missing by default (its documented ``na_values``): still missing in the
#: columns not read verbatim, so a numeric column's ``NA`` or empty field stays a NaN as before.
PANDAS_MISSING_WORDS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")

PARQUET_MAGIC = b"PAR1"
#: ``frame.attrs`` key: the columns a CSV or TSV gave as written
READ_VERBATIM = "read_verbatim"
#: A pickle's first byte (protocol 2 and later): loading one would run arbitrary code.
PICKLE_MAGIC = b"\x80"


def table_format(name: str, head: bytes = b"") -> str | None:
    """The format of a table named ``name`` whose first bytes are ``head``: Parquet by its magic bytes or
    suffix, else by suffix; None for a suffix no reader knows."""
    suffix = Path(name).suffix.lower()
    if head.startswith(PARQUET_MAGIC) or suffix in PARQUET_SUFFIXES:
        return PARQUET
    if suffix in JSON_LINES_SUFFIXES:
        return JSONL
    if suffix in DELIMITED_SUFFIXES:
        return TSV if suffix == ".tsv" else CSV
    return None


def read_table(source: str | Path | IO[bytes], *, field: str, name: str | None = None, text_columns: Collection[str] = (),
               verbatim_columns: Collection[str] = (), default_format: str | None = None) -> pd.DataFrame:
    """A table as a pandas frame, its declared text kept as text.

    ``source``: a path, or a binary file object (an upload) with its file ``name``. ``text_columns``: the
    columns that must hold text in every row; ``verbatim_columns``: further columns read from CSV as written
    (ids: ``007`` stays ``"007"``) but, from typed formats, kept in their own type. ``default_format``: the
    format of a name with no known suffix (an upload: CSV), else such a name is refused. Any failure is an
    :class:`InvalidInput` naming ``field``, with the parser's words but never the rows.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(source) if name is None else name
        if not path.is_file():
            raise InvalidInput(field, f"{name} does not exist")
        with path.open("rb") as handle:
            return read_table(handle, field=field, name=name, text_columns=text_columns,
                              verbatim_columns=verbatim_columns, default_format=default_format)
    name = name or ""
    head = source.read(4)
    source.seek(0)
    kind = table_format(name, head) or default_format
    if kind is None:
        raise InvalidInput(field, f"{name}: unsupported format (use .parquet, .csv, .tsv or .jsonl)")
    if head.startswith(PICKLE_MAGIC):
        raise InvalidInput(field, f"{name or 'the file'} is a pickle; refused (loading one runs arbitrary code): "
                                  "use Parquet, CSV, TSV or JSONL")
    if kind == PARQUET and not head.startswith(PARQUET_MAGIC):
        raise InvalidInput(field, f"{name} is named .parquet but is not a Parquet file")
    try:
        if kind == PARQUET:
            frame = pd.read_parquet(source)
        elif kind == JSONL:
            # dtype=False: a JSON string stays a string ("42" is not 42), a number a number
            frame = pd.read_json(source, lines=True, dtype=False)
        else:
            frame = _read_delimited(source, "\t" if kind == TSV else ",", {*text_columns, *verbatim_columns})
    except Exception as error:  # the parser's words name the line; the rows are not echoed
        raise InvalidInput(field, f"{name or 'the file'} could not be read as {kind.upper()} "
                                  f"({type(error).__name__}: {str(error)[:300]})") from error
    check_text_columns(frame, text_columns, field)
    return frame


def _read_delimited(handle: IO[bytes], separator: str, verbatim: set[str]) -> pd.DataFrame:
    """CSV or TSV: the ``verbatim`` columns as written (strings, nothing missing), the others inferred."""
    payload = handle.read()
    header = pd.read_csv(io.BytesIO(payload), sep=separator, nrows=0).columns
    # keep_default_na=False turns the missing words off everywhere; na_values gives them back per column
    frame = pd.read_csv(io.BytesIO(payload), sep=separator, keep_default_na=False,
                        dtype={c: str for c in header if c in verbatim},
                        na_values={c: list(PANDAS_MISSING_WORDS) for c in header if c not in verbatim})
    # which columns are text only because the format has no types (a CSV's ids): a reader may take them as
    # numbers where its own data says so (eval_platform.models.files.align_id_types)
    frame.attrs[READ_VERBATIM] = tuple(c for c in header if c in verbatim)
    return frame


def check_text_columns(frame: pd.DataFrame, text_columns: Collection[str], field: str) -> None:
    """Refuse a missing value or a non-text value (a number, a boolean) in a declared text column, naming
    the first such row (from 1) and the column. Columns the frame lacks are left to the caller's checks."""
    for column in text_columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        missing = values.isna().to_numpy()
        if missing.any():
            row = int(missing.argmax())
            raise InvalidInput(field, f"row {row + 1}, column {column!r}: the value is missing "
                                      f"({int(missing.sum())} row(s) have none); text is required")
        not_text = values.map(lambda value: not isinstance(value, str)).to_numpy(dtype=bool)
        if not_text.any():
            row = int(not_text.argmax())
            value = values.iloc[row]
            value = value.item() if hasattr(value, "item") else value  # numpy's 42 printed as 42
            raise InvalidInput(field, f"row {row + 1}, column {column!r}: must be text, got {type(value).__name__} "
                                      f"{value!r} (write it as a JSON string, e.g. \"{value}\")")
