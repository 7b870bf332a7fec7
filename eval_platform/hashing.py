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


def table_hash(frame: pd.DataFrame | pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of the canonical table (a documented, stable columnar format)."""
    table = canonical_table(frame)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return HASH_PREFIX + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


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
