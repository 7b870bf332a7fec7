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
    return table.take(pa.array(np.arange(table.num_rows, dtype=np.int64))).combine_chunks()


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
