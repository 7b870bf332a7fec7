"""Leakage and duplicate checks: eval examples a model may have seen in training, and examples repeated
across a dataset's versions or its slices.

Two kinds of leakage are counted for a (model version, dataset version) pair:

* **temporal**: the dataset declares a ``time_column`` and the model a ``training_cutoff``; an example whose
  time is *at or before* the cutoff (``t <= cutoff``, both in UTC) could have been in the training data;
* **content**: the model has a training manifest (the :func:`~eval_platform.core.hashing.example_hash` of
  each training example); an example whose content hash is in it was trained on.

An example counted by both is counted once in ``leaked``. Exact duplicates (:func:`duplicate_report`) use the
same content hash: within a version, between slices (one content under two values of a slice column) and
against earlier versions of the same dataset id.

The content of an example is its input columns (:func:`content_columns`): the feature columns and the
prompt/query/text columns, never the id, label or time column, so a training example with another id and
the same inputs matches.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import example_hashes

#: the artifact kind (store folder) of training manifests
TRAINING_MANIFESTS = "training_manifests"
#: the one column of a stored training manifest
MANIFEST_COLUMN = "example_hash"
#: columns holding an example's text input, hashed beside the feature columns when present
TEXT_INPUT_COLUMNS = ("prompt", "query", "question", "text", "input")
#: how many example ids a report names
EXAMPLE_IDS_SHOWN = 5
#: a manifest larger than this is refused (about 70 bytes a hash: ~14M training examples)
MAX_MANIFEST_BYTES = 1 << 30

_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def content_columns(schema: Mapping[str, Any]) -> list[str]:
    """The input columns an example's content hash covers, for a dataset of this ``schema``.

    The schema's feature columns, then those of :data:`TEXT_INPUT_COLUMNS` the dataset has, minus the id,
    label, slice and time columns. Empty when the dataset has no input columns (nothing can be compared).
    """
    excluded = {*schema.get("id_columns", ()), schema.get("label_column"), *schema.get("slice_columns", ()),
                schema.get("time_column")}
    present = set((schema.get("columns") or {}).keys())
    columns = [c for c in schema.get("feature_columns", ()) if c not in excluded]
    columns += [c for c in TEXT_INPUT_COLUMNS if c in present and c not in excluded and c not in columns]
    return columns


# time columns and cutoffs -------------------------------------------------------------------------------
def parse_time_column(frame: pd.DataFrame, column: str, field_name: str = "time_column") -> pd.Series:
    """The column as UTC timestamps; refused (naming ``field_name``, the column and the row) when missing,
    numeric, null anywhere or not parseable. Naive timestamps are taken as UTC. Rows are counted from 1.

    Numbers are refused rather than read as epoch offsets: whether ``1735689600`` is seconds or
    nanoseconds is a guess the platform will not make.
    """
    if not isinstance(column, str) or column not in frame.columns:
        raise InvalidInput(field_name, f"column {column!r} is not in the dataset")
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise InvalidInput(field_name, f"column {column!r} holds numbers ({values.dtype}); write timestamps or ISO 8601 text")
    nulls = values.isna().to_numpy()
    if nulls.any():
        raise InvalidInput(field_name, f"column {column!r} has {int(nulls.sum())} null value(s); the first at row {int(nulls.argmax()) + 1}")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize("UTC")
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        pass
    parsed = pd.Series([_one_timestamp(v) for v in values], index=values.index)
    bad = parsed.isna().to_numpy()
    row = int(bad.argmax()) if bad.any() else 0
    raise InvalidInput(field_name, f"column {column!r}: row {row + 1} value {values.iloc[row]!r} is not a timestamp (ISO 8601 expected)")


def _one_timestamp(value: Any) -> pd.Timestamp | None:
    try:
        stamp = pd.to_datetime(value, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    return None if pd.isna(stamp) else stamp


def parse_cutoff(value: str | datetime | None, field_name: str = "training_cutoff") -> datetime | None:
    """A training cutoff as an aware UTC datetime (None: none declared). ISO 8601 text or a datetime; a naive
    one is taken as UTC. A date alone (``2026-01-01``) means its midnight UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as error:
            raise InvalidInput(field_name, f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)") from error
    else:
        raise InvalidInput(field_name, f"must be ISO 8601 text, not {type(value).__name__}")
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    # compared with pandas timestamps, whose range is 1677-09-21 .. 2262-04-11
    if not pd.Timestamp.min.tz_localize(UTC) <= pd.Timestamp(stamp) <= pd.Timestamp.max.tz_localize(UTC):
        raise InvalidInput(field_name, f"{stamp.isoformat()} is outside the supported range "
                                       f"({pd.Timestamp.min.isoformat()} .. {pd.Timestamp.max.isoformat()})")
    return stamp


# training manifests -------------------------------------------------------------------------------------
def read_training_manifest(payload: bytes, field_name: str = "training_manifest") -> pa.Table:
    """A manifest file's bytes as the canonical manifest table: one column ``example_hash``, unique, sorted.

    Accepted: Parquet with an ``example_hash`` column, or UTF-8 text with one hash per line (an optional
    ``example_hash`` header line, blank lines ignored). Every hash must be ``sha256:`` and 64 lowercase hex
    digits (what :func:`~eval_platform.core.hashing.example_hash` writes). Anything else (a pickle, a
    binary file, a malformed hash: its row is named) is refused naming ``field_name``. Empty is refused.
    """
    if len(payload) > MAX_MANIFEST_BYTES:
        raise InvalidInput(field_name, f"the manifest is {len(payload)} bytes, over the limit of {MAX_MANIFEST_BYTES}")
    raw = _parquet_hashes(payload, field_name) if payload[:4] == b"PAR1" else _text_hashes(payload, field_name)
    for row, value in enumerate(raw, start=1):
        if not isinstance(value, str) or not _HASH_PATTERN.match(value):
            raise InvalidInput(field_name, f"row {row}: {str(value)[:80]!r} is not an example hash (sha256: and 64 hex digits)")
    if not raw:
        raise InvalidInput(field_name, "the manifest holds no hashes")
    return pa.table({MANIFEST_COLUMN: pa.array(sorted(set(raw)), pa.string())})


def _parquet_hashes(payload: bytes, field_name: str) -> list:
    try:
        table = pq.read_table(io.BytesIO(payload))
    except (pa.ArrowException, OSError) as error:
        raise InvalidInput(field_name, f"the Parquet file could not be read: {error}") from error
    if MANIFEST_COLUMN not in table.column_names:
        raise InvalidInput(field_name, f"the Parquet file has no {MANIFEST_COLUMN!r} column (columns: {table.column_names})")
    return table.column(MANIFEST_COLUMN).to_pylist()


def _text_hashes(payload: bytes, field_name: str) -> list:
    if payload[:1] == b"\x80":  # every pickle of protocol 2 or later starts with the PROTO opcode
        raise InvalidInput(field_name, "a pickle is refused: give Parquet or text with one hash per line")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(field_name, "not Parquet and not UTF-8 text: give Parquet or one hash per line") from error
    lines = [line.strip() for line in text.splitlines()]
    if lines and lines[0] == MANIFEST_COLUMN:
        lines = lines[1:]
    return [line for line in lines if line]


def manifest_table(hashes: Sequence[str]) -> pa.Table:
    """The canonical manifest table of ``hashes`` (unique, sorted): what ``hash-examples`` writes."""
    return pa.table({MANIFEST_COLUMN: pa.array(sorted(set(hashes)), pa.string())})


# the leakage report -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeakageReport:
    """How many examples of one dataset version a model version may have trained on.

    ``before_cutoff``: examples with time ``<= training_cutoff`` (None: not checked, for want of a cutoff or
    a time column); ``in_manifest``: examples whose content hash is in the training manifest (None: no
    manifest, or no content columns); ``leaked``: examples counted by either, once; ``example_ids``: the
    first few of them, in dataset order.
    """

    n_examples: int
    leaked: int = 0
    before_cutoff: int | None = None
    in_manifest: int | None = None
    training_cutoff: datetime | None = None
    time_column: str | None = None
    example_ids: tuple[str, ...] = ()
    not_checked: tuple[str, ...] = field(default_factory=tuple)

    @property
    def checked(self) -> bool:
        return self.before_cutoff is not None or self.in_manifest is not None

    def message(self) -> str:
        """What a gate's reason says: each count and what it counts. No example ids: gate reasons reach teams
        that may read only a dataset's aggregates (the ids are in :attr:`example_ids`, withheld from them)."""
        parts = []
        if self.before_cutoff:
            cutoff = self.training_cutoff.isoformat() if self.training_cutoff else "?"
            parts.append(f"{self.before_cutoff} of {self.n_examples} examples are at or before the model's training cutoff "
                         f"{cutoff} (time column {self.time_column!r})")
        if self.in_manifest:
            parts.append(f"{self.in_manifest} of {self.n_examples} examples are in the model's training manifest (same content hash)")
        if not parts:
            return f"no leakage found in {self.n_examples} examples"
        return "; ".join(parts) + (f" ({self.leaked} distinct)" if self.before_cutoff and self.in_manifest else "")

    def to_record(self) -> dict:
        """The JSON kept with the run's results."""
        return {"n_examples": self.n_examples, "leaked": self.leaked, "before_cutoff": self.before_cutoff,
                "in_manifest": self.in_manifest, "time_column": self.time_column,
                "training_cutoff": self.training_cutoff.isoformat() if self.training_cutoff else None,
                "example_ids": list(self.example_ids), "not_checked": list(self.not_checked), "message": self.message()}


def example_ids(frame: pd.DataFrame, schema: Mapping[str, Any], mask: Any, limit: int = EXAMPLE_IDS_SHOWN) -> tuple[str, ...]:
    """The ids (``a/b`` for several id columns; the row number counted from 1 without any) of the first
    ``limit`` rows of ``mask``."""
    rows = [int(i) for i in pd.Series(mask).to_numpy().nonzero()[0][:limit]]
    ids = [c for c in schema.get("id_columns", ()) if c in frame.columns]
    if not ids:
        return tuple(f"row {r + 1}" for r in rows)
    return tuple("/".join(str(frame[c].iloc[r]) for c in ids) for r in rows)


def leakage_report(dataset_frame: pd.DataFrame, schema: Mapping[str, Any], training_cutoff: datetime | str | None,
                   manifest_hashes: Sequence[str] | pa.Array | None) -> LeakageReport:
    """Count the examples of ``dataset_frame`` a model with this cutoff and manifest may have trained on.

    * temporal: ``t <= training_cutoff`` for the schema's ``time_column`` (both UTC); not checked without a
      cutoff or without a time column (said in ``not_checked``);
    * content: the example's :func:`~eval_platform.core.hashing.example_hash` over :func:`content_columns`
      is in ``manifest_hashes``; not checked without a manifest or without content columns.

    An example at exactly the cutoff counts (the cutoff is the newest time trained on). No rows give a
    report of zeros. A time column that is missing or unparseable raises :class:`InvalidInput` naming
    ``time_column`` (a registered dataset's never does: registration checked it).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"example_id": ["a", "b"], "x": [1.0, 2.0], "ts": ["2025-12-31", "2026-02-01"]})
    >>> schema = {"id_columns": ["example_id"], "label_column": "label", "feature_columns": ["x"], "time_column": "ts"}
    >>> leakage_report(frame, schema, "2026-01-01", None).before_cutoff
    1
    """
    cutoff = parse_cutoff(training_cutoff)
    n = len(dataset_frame)
    not_checked = []
    leaked = pd.Series(False, index=dataset_frame.index)
    before = in_manifest = None
    time_column = schema.get("time_column")
    if cutoff is None:
        not_checked.append("the model declares no training cutoff")
    elif not time_column:
        not_checked.append("the dataset declares no time column")
    else:
        times = parse_time_column(dataset_frame, time_column)
        at_or_before = times <= pd.Timestamp(cutoff)
        before, leaked = int(at_or_before.sum()), leaked | at_or_before
    columns = content_columns(schema)
    if manifest_hashes is None:
        not_checked.append("the model has no training manifest")
    elif not columns:
        not_checked.append("the dataset has no input columns to hash")
    else:
        known = pa.array(manifest_hashes, pa.string()) if not isinstance(manifest_hashes, pa.Array) else manifest_hashes
        hashes = example_hashes(dataset_frame, columns)
        seen = pd.Series(pc.is_in(pa.array(hashes.tolist(), pa.string()), value_set=known).to_numpy(zero_copy_only=False),
                         index=dataset_frame.index) if n else pd.Series(False, index=dataset_frame.index)
        in_manifest, leaked = int(seen.sum()), leaked | seen
    return LeakageReport(n_examples=n, leaked=int(leaked.sum()), before_cutoff=before, in_manifest=in_manifest,
                         training_cutoff=cutoff, time_column=time_column, example_ids=example_ids(dataset_frame, schema, leaked),
                         not_checked=tuple(not_checked))


# duplicates ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceDuplicates:
    """One slice column's duplicates: contents found under more than one of its values."""

    slice_column: str
    contents: int
    examples: int
    example_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DuplicateReport:
    """Exact duplicate examples (same content hash) of one dataset version.

    ``within_version``: rows whose content another row of the version repeats (every row of such a group);
    ``between_slices``: per slice column, contents under two or more of its values (an example counted in
    two slices); ``across_versions``: per earlier version key, rows of this version whose content it has.
    """

    n_examples: int
    content_columns: tuple[str, ...]
    within_version: int = 0
    between_slices: tuple[SliceDuplicates, ...] = ()
    across_versions: Mapping[str, int] = field(default_factory=dict)
    example_ids: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.within_version or any(s.examples for s in self.between_slices) or any(self.across_versions.values()))

    def to_record(self) -> dict:
        return {"n_examples": self.n_examples, "content_columns": list(self.content_columns), "within_version": self.within_version,
                "between_slices": {s.slice_column: {"contents": s.contents, "examples": s.examples, "example_ids": list(s.example_ids)}
                                   for s in self.between_slices},
                "across_versions": dict(self.across_versions), "example_ids": list(self.example_ids)}


def duplicate_report(frame: pd.DataFrame, schema: Mapping[str, Any],
                     earlier_versions: Mapping[str, tuple[pd.DataFrame, Mapping[str, Any]]] = {}) -> DuplicateReport:  # noqa: B006 - read only
    """Exact duplicates of a dataset version by content hash (:func:`content_columns` of ``schema``).

    ``earlier_versions`` maps each earlier version's key to its rows and schema (each hashed over its own
    content columns). Duplicates between slices: for each slice column, the contents that occur under more
    than one of its values (nulls are a value of their own); ``examples`` counts every row of such a
    content. A dataset without input columns has nothing to compare: a report of zeros.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"example_id": [1, 2, 3], "x": [0.5, 0.5, 1.0], "group": ["a", "b", "a"]})
    >>> schema = {"id_columns": ["example_id"], "feature_columns": ["x"], "slice_columns": ["group"]}
    >>> report = duplicate_report(frame, schema)
    >>> report.within_version, report.between_slices[0].examples
    (2, 2)
    """
    columns = content_columns(schema)
    if not columns or not len(frame):
        return DuplicateReport(len(frame), tuple(columns))
    hashes = example_hashes(frame, columns)
    repeated = hashes.duplicated(keep=False)
    per_slice = []
    for column in schema.get("slice_columns", ()):
        if column not in frame.columns:
            continue
        values = frame[column].astype(object).where(frame[column].notna(), "<null>").astype(str)
        distinct = pd.DataFrame({"h": hashes, "v": values}).groupby("h")["v"].nunique()
        shared = set(distinct.index[distinct > 1])
        mask = hashes.isin(shared)
        per_slice.append(SliceDuplicates(column, len(shared), int(mask.sum()), example_ids(frame, schema, mask)))
    across = {}
    seen_before = pd.Series(False, index=frame.index)
    for key, (earlier, earlier_schema) in earlier_versions.items():
        earlier_columns = content_columns(earlier_schema)
        found = hashes.isin(set(example_hashes(earlier, earlier_columns))) if earlier_columns and len(earlier) else seen_before & False
        across[key] = int(found.sum())
        seen_before |= found
    return DuplicateReport(len(frame), tuple(columns), int(repeated.sum()), tuple(per_slice), across,
                           example_ids(frame, schema, repeated | seen_before))


__all__ = ["MANIFEST_COLUMN", "TRAINING_MANIFESTS", "DuplicateReport", "LeakageReport", "SliceDuplicates",
           "content_columns", "duplicate_report", "example_ids", "leakage_report", "manifest_table", "parse_cutoff",
           "parse_time_column", "read_training_manifest"]
