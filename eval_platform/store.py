"""Content-addressed artifact store: Parquet tables and binary blobs named by their content hash.

An artifact, once written, is never rewritten: ``put`` of content already present is a no-op returning the
same address. Writes go to a temporary name and are renamed into place, so a crash never leaves a
half-written artifact under a real address. The store is a local directory by default or any fsspec URL.
"""

from __future__ import annotations

import hashlib
import io
import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval_platform.errors import EvalPlatformError, NotFound
from eval_platform.hashing import HASH_PREFIX, canonical_table, table_hash


class CorruptArtifact(EvalPlatformError):
    """Stored bytes no longer match the hash they are addressed by."""


class ArtifactStore:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _path(self, kind: str, digest: str, suffix: str) -> str:
        hexdigest = digest.removeprefix(HASH_PREFIX)
        return f"{self.root}/{kind}/{hexdigest[:2]}/{hexdigest}{suffix}"

    def _write_once(self, path: str, payload: bytes) -> None:
        if self.fs.exists(path):
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(temporary, "wb") as handle:
            handle.write(payload)
        try:
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
        digest = table_hash(table)
        path = self._path(kind, digest, ".parquet")
        if not self.fs.exists(path):
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            self._write_once(path, buffer.getvalue())
        return digest

    def has_table(self, kind: str, digest: str) -> bool:
        return self.fs.exists(self._path(kind, digest, ".parquet"))

    def get_table(self, kind: str, digest: str, verify: bool = True) -> pd.DataFrame:
        path = self._path(kind, digest, ".parquet")
        if not self.fs.exists(path):
            raise NotFound(f"{kind} artifact", digest)
        with self.fs.open(path, "rb") as handle:
            table = pq.read_table(handle)
        if verify and table_hash(table) != digest:
            raise CorruptArtifact(f"{kind} artifact {digest} does not match its content hash")
        return table.to_pandas()

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
