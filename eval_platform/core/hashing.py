"""Content hashes: the identity of datasets, prediction sets, metric tables and model files.

A table's hash covers its logical content (schema and values in row order), not the bytes a particular
Parquet writer produced, so the same data registered with another pyarrow version keeps its identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

HASH_PREFIX = "sha256:"


def canonical_table(frame: pd.DataFrame | pa.Table) -> pa.Table:
    """An Arrow table without pandas index or schema metadata, so equal data gives equal bytes.

    Columns are rebuilt into compact buffers: a slice of a pandas frame can hand Arrow buffers with
    slack (a string column's offsets buffer longer than its rows need), which the IPC stream would copy
    and the same data read back from Parquet would not have.
    """
    if isinstance(frame, pd.DataFrame):
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    else:
        table = frame
    table = table.replace_schema_metadata(None)
    if any(_has_list(field.type) for field in table.schema):
        table = table.cast(pa.schema([field.with_type(_arrow_list_names(field.type)) for field in table.schema]))
    return table.take(pa.array(np.arange(table.num_rows, dtype=np.int64))).combine_chunks()


def _has_list(data_type: pa.DataType) -> bool:
    return pa.types.is_list(data_type) or pa.types.is_large_list(data_type)


def _arrow_list_names(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with every list's item field named ``item``, as ``pyarrow.Table.from_pandas`` names it.

    Parquet writes a list's item field as ``element`` (the compliant nested type), so a list column read back
    from the store would otherwise hash differently from the table that was stored (a multi-label dataset's
    ``labels`` column, say): the name is how a writer spelled the type, not content."""
    if pa.types.is_list(data_type):
        return pa.list_(_arrow_list_names(data_type.value_type))
    if pa.types.is_large_list(data_type):
        return pa.large_list(_arrow_list_names(data_type.value_type))
    return data_type


class _DigestSink:
    """A write-only file object feeding a SHA-256 digest: the IPC writer streams each buffer of the table
    into it, so hashing holds no serialized copy of the table (the stream of a 10M-row dataset is as large
    as the dataset; before, it was built in memory and then copied once more into Python bytes)."""

    def __init__(self):
        self.digest = hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def table_hash(frame: pd.DataFrame | pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of the canonical table (a documented, stable columnar format)."""
    return canonical_table_hash(canonical_table(frame))


def canonical_table_hash(table: pa.Table) -> str:
    """:func:`table_hash` of a table :func:`canonical_table` already returned (no second compacting copy).

    The stream is one record batch of the whole table, as it always was, so every hash stored before
    stays valid; the batch's buffers go to the digest one by one instead of through an in-memory stream.
    (A stream of fixed-size batches would also bound the compacted copy, but would change the hash of
    every table above the batch size: stored artifacts would no longer verify.)"""
    sink = _DigestSink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table)
    return HASH_PREFIX + sink.digest.hexdigest()


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return HASH_PREFIX + digest.hexdigest()


def json_hash(value: Any) -> str:
    """Hash of a JSON document in canonical form (sorted keys, no insignificant white space)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return HASH_PREFIX + hashlib.sha256(text.encode()).hexdigest()


def short(digest: str, length: int = 12) -> str:
    return digest.removeprefix(HASH_PREFIX)[:length]


def _canonical_value(value: Any) -> Any:
    """One cell as the JSON value :func:`example_hash` writes (see there for the rules)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        return None if number != number else number  # NaN is a missing value
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp | np.datetime64) or hasattr(value, "isoformat"):
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):
            return None
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.isoformat()
    if isinstance(value, dict):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_canonical_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def example_hash(example: dict[str, Any]) -> str:
    """The content hash of one example: ``sha256:`` + SHA-256 of the canonical JSON of its input columns.

    The definition, identical wherever an example is hashed (an eval dataset's rows for the leakage check
    and ``evalp datasets hash-examples`` for a training manifest), so a training example and an eval
    example with the same inputs get the same hash whatever their ids, labels or file format:

    * the object maps each input column's name to its value; keys sorted, separators ``,`` and ``:``, no
      white space, non-ASCII characters written as themselves, encoded as UTF-8;
    * every number (integer or float, numpy or Python) is written as a float, so ``1`` and ``1.0`` match;
      booleans stay ``true``/``false``; NaN, None, NaT and pd.NA are ``null``;
    * timestamps are ISO 8601 in UTC (a naive one is taken as UTC); bytes as lowercase hex; lists, tuples
      and arrays as JSON arrays and mappings as objects, element by element under the same rules; anything
      else as its ``str``.

    Edge cases: text is compared exactly (no case folding, trimming or Unicode normalisation: ``"Café"``
    written with a combining accent is another example); a column's *name* is part of the content, so a
    training file must use the eval dataset's column names. An empty mapping hashes ``{}``.

    >>> example_hash({"x": 1}) == example_hash({"x": 1.0})
    True
    """
    canonical = {str(column): _canonical_value(value) for column, value in example.items()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def example_hashes(frame: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> pd.Series:
    """:func:`example_hash` of every row of ``frame`` over ``columns`` (a Series aligned with ``frame``).

    ``columns`` must be non-empty and present in ``frame`` (the caller names the missing field)."""
    names = [str(c) for c in columns]
    values = [frame[c].tolist() for c in columns]
    hashes = [example_hash(dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)] if values else []
    return pd.Series(hashes, index=frame.index, dtype=object)
