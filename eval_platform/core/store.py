"""Content-addressed artifact store: Parquet tables and binary blobs named by their content hash.

An artifact, once written, is never rewritten: ``put`` of content already present is a no-op returning the
same address. Writes go to a temporary name and are renamed into place, so a crash never leaves a
half-written artifact under a real address. The store is a local directory by default or any fsspec URL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval_platform.core.errors import EvalPlatformError, NotFound
from eval_platform.core.hashing import (
    HASH_PREFIX,
    canonical_table,
    canonical_table_hash,
    table_hash,
)

#: Artifact kinds: the store's top-level folders.
DATASETS = "datasets"
PREDICTIONS = "predictions"
METRIC_TABLES = "metric_tables"
PLOTS = "plots"
CURVES = "curves"
JUDGE_VERDICTS = "judge_verdicts"

#: Rows per Parquet row group of a stored table: a reader can stream a 10M-row table a group at a time
#: (``pyarrow.parquet.ParquetFile.read_row_group``), and a group's pages stay a few tens of MB.
ROW_GROUP_ROWS = 1 << 20


class CorruptArtifact(EvalPlatformError):
    """Stored bytes no longer match the hash they are addressed by."""


class ArtifactStore:
    """Write-once storage of tables (Parquet) and blobs under their content hash, locally or at an fsspec URL."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _path(self, kind: str, digest: str, suffix: str) -> str:
        hexdigest = digest.removeprefix(HASH_PREFIX)
        return f"{self.root}/{kind}/{hexdigest[:2]}/{hexdigest}{suffix}"

    def _write_once(self, path: str, payload: bytes | Callable) -> None:
        """Write ``payload`` (bytes, or a function writing to an open binary file) under ``path`` once."""
        if self.fs.exists(path):
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with self.fs.open(temporary, "wb") as handle:
                if callable(payload):
                    payload(handle)
                else:
                    handle.write(payload)
            if self.fs.exists(path):  # another writer won the race with identical content
                self.fs.rm(temporary)
            else:
                self.fs.mv(temporary, path)
        finally:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)

    # tables -------------------------------------------------------------------------------------------
    def put_table(self, kind: str, frame: pd.DataFrame | pa.Table) -> str:
        table = canonical_table(frame)
        return self.put_canonical_table(kind, table, canonical_table_hash(table))

    def put_canonical_table(self, kind: str, table: pa.Table, digest: str) -> str:
        """Store a table :func:`canonical_table` returned, whose hash the caller already has (a dataset's
        registration hashes it before deciding to store it: not compacted and hashed twice)."""
        path = self._path(kind, digest, ".parquet")
        if not self.fs.exists(path):
            # straight from Arrow into the file: no in-memory Parquet copy of the table first
            self._write_once(path, lambda handle: pq.write_table(table, handle, compression="zstd", row_group_size=ROW_GROUP_ROWS))
        return digest

    def has_table(self, kind: str, digest: str) -> bool:
        return self.fs.exists(self._path(kind, digest, ".parquet"))

    def get_arrow_table(self, kind: str, digest: str, verify: bool = True, columns: list[str] | None = None) -> pa.Table:
        """The stored table as Arrow (``columns``: only these; a subset is not verified, its hash is unknown)."""
        path = self._path(kind, digest, ".parquet")
        if not self.fs.exists(path):
            raise NotFound(f"{kind} artifact", digest)
        with self.fs.open(path, "rb") as handle:
            table = pq.read_table(handle, columns=columns)
        if verify and columns is None and table_hash(table) != digest:
            raise CorruptArtifact(f"{kind} artifact {digest} does not match its content hash")
        return table

    def get_table(self, kind: str, digest: str, verify: bool = True) -> pd.DataFrame:
        # split_blocks and self_destruct: each column becomes its own block and its Arrow buffers are freed
        # as it is converted, so a 10M-row table is not held twice (Arrow + one consolidated numpy block)
        return self.get_arrow_table(kind, digest, verify).to_pandas(split_blocks=True, self_destruct=True)

    # blobs (plots, model files) -----------------------------------------------------------------------
    def put_blob(self, kind: str, payload: bytes, suffix: str = "") -> str:
        digest = HASH_PREFIX + hashlib.sha256(payload).hexdigest()
        self._write_once(self._path(kind, digest, suffix), payload)
        return digest

    def get_blob(self, kind: str, digest: str, suffix: str = "") -> bytes:
        path = self._path(kind, digest, suffix)
        if not self.fs.exists(path):
            raise NotFound(f"{kind} artifact", digest)
        with self.fs.open(path, "rb") as handle:
            payload = handle.read()
        if HASH_PREFIX + hashlib.sha256(payload).hexdigest() != digest:
            raise CorruptArtifact(f"{kind} artifact {digest} does not match its content hash")
        return payload

    # index entries: an input's hash -> the content hash of what it produced ---------------------------
    def put_index_entry(self, kind: str, key: str, digest: str) -> None:
        """Record, once, that the work named by ``key`` (a hash of its inputs) produced the artifact ``digest``.
        Written after the artifact itself, so an entry always names a complete artifact; never rewritten."""
        self._write_once(self._path(kind, key, ".ref"), digest.encode())

    def index_entry(self, kind: str, key: str) -> str | None:
        """The artifact ``key``'s work produced, or None when it has not (yet) finished."""
        path = self._path(kind, key, ".ref")
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            return handle.read().decode()

    def delete_index_entry(self, kind: str, key: str, digest: str) -> bool:
        """Remove ``key``'s entry if it names ``digest`` (an artifact retention deleted, or found missing); an
        entry naming another artifact is left alone. False when there was no such entry."""
        path = self._path(kind, key, ".ref")
        if self.index_entry(kind, key) != digest:
            return False
        try:
            self.fs.rm(path)
        except FileNotFoundError:  # removed meanwhile by another deleter
            return False
        return True

    def uri(self, kind: str, digest: str, suffix: str = ".parquet") -> str:
        return self.fs.unstrip_protocol(self._path(kind, digest, suffix))

    def count(self) -> int:
        """Number of artifacts stored (for tests that prove a rejected request wrote nothing)."""
        if not self.fs.exists(self.root):
            return 0
        return sum(1 for path in self.fs.find(self.root) if not path.rsplit("/", 1)[-1].startswith(".tmp-"))

    def delete_table(self, kind: str, digest: str) -> None:
        """Remove an artifact this request itself just wrote (rollback of a failed registration only)."""
        path = self._path(kind, digest, ".parquet")
        if self.fs.exists(path):
            self.fs.rm(path)
