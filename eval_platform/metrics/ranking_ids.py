"""Id columns of a run and its qrels as uint64 keys, for :mod:`eval_platform.metrics.ranking`.

Every id column becomes one key per row, either exact (integers, or strings of at most eight UTF-8 bytes
packed big-endian, whose integer order is the strings' byte order) or a 64-bit hash that is verified against
the strings wherever two keys compare equal. String ids stay in their Arrow chunks: nothing is concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eval_platform.core.errors import InvalidInput

_WORD_MASKS = np.array(
    [0] + [((1 << (8 * b)) - 1) << (8 * (8 - b)) for b in range(1, 8)] + [(1 << 64) - 1], dtype=np.uint64
)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


#: one Arrow chunk of a string column: its first row, its offsets, the end of its data and its data buffer
_Chunk = tuple[int, np.ndarray, int, Any]


@dataclass
class IdColumn:
    """One id column: integers (``values``) or strings (``strings``, an Arrow large_string ChunkedArray,
    kept in its chunks: nothing is concatenated)."""

    column: str
    values: np.ndarray | None = None
    strings: pa.ChunkedArray | None = None
    _chunks: list[_Chunk] | None = None
    _max: int = 0
    _keys: dict[bool, np.ndarray] = field(default_factory=dict)

    @property
    def is_int(self) -> bool:
        return self.values is not None

    def __len__(self) -> int:
        return len(self.values) if self.values is not None else len(self.string_column())

    def string_column(self) -> pa.ChunkedArray:
        """The string ids (an integer column has none until :meth:`as_strings`)."""
        if self.strings is None:
            raise TypeError(f"{self.column}: integer ids have no strings; use as_strings() first")
        return self.strings

    def as_strings(self) -> IdColumn:
        if not self.is_int:
            return self
        return IdColumn(self.column, strings=check_strings(pa.array(self.values).cast(pa.large_string()), self.column))

    def max_bytes(self) -> int:
        self._layout()
        return self._max

    def _layout(self) -> list[_Chunk]:
        """Per Arrow chunk: its first row, its offsets and data buffer; and the longest id. String lengths
        are recomputed per chunk where needed rather than kept (a column-sized array costs more to keep)."""
        if self._chunks is not None:
            return self._chunks
        chunks: list[_Chunk] = []
        row = 0
        for chunk in self.string_column().chunks:
            buffers = chunk.buffers()
            offsets = np.frombuffer(buffers[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
            if len(chunk):
                self._max = max(self._max, int((offsets[1:] - offsets[:-1]).max()))
            chunks.append((row, offsets, int(offsets[-1]) if len(chunk) else 0, buffers[2]))
            row += len(chunk)
        self._chunks = chunks
        return chunks

    def _lengths(self) -> np.ndarray:
        return np.concatenate([offsets[1:] - offsets[:-1] for _, offsets, _, _ in self._layout()])

    def _word(self, index: int, out: np.ndarray) -> np.ndarray:
        """The ``index``-th eight-byte word of every string, big-endian and zero-padded (0 past the end)."""
        for row, offsets, end, data in self._layout():  # a loop over Arrow chunks, not rows
            starts = offsets[:-1]
            lengths = offsets[1:] - starts
            n = starts.size
            word = out[row : row + n]
            position = starts if index == 0 else starts + 8 * index
            # rows whose eight bytes would run past the data buffer: a suffix, since starts never decrease
            safe = int(np.searchsorted(position, end - 8, side="right")) if end >= 8 else 0
            if safe:
                # element i of this view is the eight bytes starting at byte i, read big-endian
                view = np.ndarray(shape=(end - 7,), dtype=">u8", buffer=data, offset=0, strides=(1,))
                word[:safe] = view[position[:safe]]  # gathers big-endian, stores native
            if safe < n:
                base = max(end - 8, 0)
                tail = np.zeros(16, dtype=np.uint8)
                if end:
                    tail[: end - base] = np.frombuffer(data, dtype=np.uint8, count=end - base, offset=base)
                tail_view = np.ndarray(shape=(9,), dtype=">u8", buffer=tail, offset=0, strides=(1,))
                word[safe:] = tail_view[np.minimum(position[safe:], end) - base]
            if index == 0 and self._max <= 8:
                word &= _WORD_MASKS[lengths]
            else:
                word &= _WORD_MASKS[np.clip(lengths - 8 * index, 0, 8)]
        return out

    def keys(self, hashed: bool) -> np.ndarray:
        """uint64 per row: the integer itself, the packed bytes (``hashed=False``, <= 8 bytes), or a hash."""
        if self.values is not None:
            return self.values.view(np.uint64)
        if hashed not in self._keys:
            self._keys[hashed] = self._hash() if hashed else self._word(0, np.empty(len(self), dtype=np.uint64))
        return self._keys[hashed]

    def _hash(self) -> np.ndarray:
        lengths = self._lengths()
        h = _mix(lengths.astype(np.uint64) ^ np.uint64(0x9E3779B97F4A7C15))
        word = np.empty(len(self), dtype=np.uint64)
        for index in range((self._max + 7) // 8):  # loop over 8-byte words of the longest id
            h = np.where(lengths > 8 * index, _mix(h ^ self._word(index, word)), h)
        return h

    def take(self, rows) -> np.ndarray:
        """The original ids of ``rows`` as a numpy array (object array of str for string ids)."""
        if self.values is not None:
            return self.values[rows]
        return take_rows(self.string_column(), rows).to_numpy(zero_copy_only=False)

    def take_strings(self, rows: np.ndarray) -> pa.Array:
        """The ids of ``rows`` as an Arrow string array (integers in decimal, as trec_eval reads them)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.values is not None:
            return pa.array(self.values[rows]).cast(pa.large_string())
        return take_rows(self.string_column(), rows)


def take_rows(strings: pa.ChunkedArray, rows) -> pa.Array:
    """``strings[rows]`` as one Arrow array, taken chunk by chunk (a loop over chunks, not rows): Arrow's
    take on a chunked array first concatenates every chunk, a copy of the whole column."""
    rows = np.asarray(rows, dtype=np.int64)
    if strings.num_chunks == 1:
        return strings.chunk(0).take(pa.array(rows))
    if strings.num_chunks == 0 or rows.size == 0:
        return pa.array([], type=strings.type)
    bounds = np.cumsum([len(chunk) for chunk in strings.chunks])
    which = np.searchsorted(bounds, rows, side="right")
    order = None
    if rows.size > 1 and bool((which[1:] < which[:-1]).any()):
        order = np.argsort(which, kind="stable")
        rows, which = rows[order], which[order]
    cuts = np.searchsorted(which, np.arange(strings.num_chunks + 1))
    pieces = [
        strings.chunk(c).take(pa.array(rows[cuts[c] : cuts[c + 1]] - (bounds[c - 1] if c else 0)))
        for c in range(strings.num_chunks)
        if cuts[c + 1] > cuts[c]
    ]
    taken = pa.concat_arrays(pieces)
    if order is not None:
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        taken = taken.take(pa.array(inverse))
    return taken


def check_strings(arr: pa.Array | pa.ChunkedArray, field_name: str) -> pa.ChunkedArray:
    arr = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    if pa.types.is_dictionary(arr.type):
        arr = pa.chunked_array([chunk.dictionary_decode() for chunk in arr.chunks], type=arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise InvalidInput(field_name, f"ids must be strings or integers, got {arr.type}")
    if arr.null_count:
        first = int(np.flatnonzero(arr.is_null().to_numpy())[0])
        raise InvalidInput(field_name, f"has a missing id at row {first}")
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    if not arr.num_chunks:
        arr = pa.chunked_array([pa.array([], pa.large_string())])
    for chunk in arr.chunks:
        data = chunk.buffers()[2]
        if data is not None and len(chunk):
            offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
            used = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
            if used.size and used.min() == 0:
                raise InvalidInput(field_name, "ids must not contain NUL characters")
    return arr


def as_ids(values: Any, field_name: str) -> IdColumn:
    """Accepts numpy arrays, pandas Series/Index (including Arrow-backed strings) and Arrow arrays."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return _arrow_ids(values, field_name)
    if isinstance(values, pd.Series | pd.Index):
        ids = _pandas_ids(values, field_name)
        if ids is not None:
            return ids
        values = values.to_numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(field_name, "must be one-dimensional")
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            raise InvalidInput(field_name, "integer ids must fit in int64")
        return IdColumn(field_name, values=array.astype(np.int64, copy=False))
    if array.dtype.kind == "U":
        return IdColumn(field_name, strings=check_strings(pa.array(array, type=pa.large_string()), field_name))
    if array.dtype.kind == "O":
        return _object_ids(array, field_name)
    raise InvalidInput(field_name, f"ids must be strings or integers, got dtype {array.dtype}")


def _arrow_ids(values: pa.Array | pa.ChunkedArray, field_name: str) -> IdColumn:
    if pa.types.is_integer(values.type):
        if values.null_count:
            raise InvalidInput(field_name, "has missing ids")
        return IdColumn(field_name, values=np.asarray(values).astype(np.int64))
    return IdColumn(field_name, strings=check_strings(values, field_name))


def _pandas_ids(values: Any, field_name: str) -> IdColumn | None:
    """Integer or Arrow-backed string ids of a pandas Series/Index; None for the others (read as numpy)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        if values.isna().any():
            raise InvalidInput(field_name, "has missing ids")
        return IdColumn(field_name, values=values.to_numpy(dtype=np.int64))
    if pd.api.types.is_string_dtype(values.dtype) and not isinstance(values.dtype, np.dtype):
        return IdColumn(field_name, strings=check_strings(pa.array(values), field_name))
    return None


def _object_ids(array: np.ndarray, field_name: str) -> IdColumn:
    """An object array holds strings (with pandas' missing values, refused by check_strings) or integers."""
    try:
        strings = pa.array(array, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        try:
            return IdColumn(field_name, values=np.asarray(array.tolist(), dtype=np.int64))
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(field_name, "ids must be all strings or all integers") from None
    return IdColumn(field_name, strings=check_strings(strings, field_name))


def harmonise(a: IdColumn, b: IdColumn, decide: bool = True) -> tuple[IdColumn, IdColumn, bool]:
    """Bring two id columns to one key space; returns them and (when ``decide``) whether keys must be hashes."""
    if a.is_int and b.is_int:
        return a, b, False
    a, b = a.as_strings(), b.as_strings()
    return a, b, decide and max(a.max_bytes(), b.max_bytes()) > 8


def _take_concatenated(ids: list[IdColumn], rows: np.ndarray) -> pa.Array:
    """The strings at positions ``rows`` of the concatenation of ``ids`` (without concatenating them)."""
    rows = np.asarray(rows, dtype=np.int64)
    pieces, positions, offset = [], [], 0
    for part in ids:
        inside = np.flatnonzero((rows >= offset) & (rows < offset + len(part)))
        pieces.append(take_rows(part.string_column(), rows[inside] - offset))
        positions.append(inside)
        offset += len(part)
    if len(pieces) == 1:
        return pieces[0]
    order = np.argsort(np.concatenate(positions), kind="stable")
    out = pa.concat_arrays(pieces).take(pa.array(order))
    return out


def strings_equal(ids: list[IdColumn], rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Exact equality of ids at concatenated positions ``rows_a`` and ``rows_b`` (string ids)."""
    left = _take_concatenated(ids, rows_a)
    right = _take_concatenated(ids, rows_b)
    return pc.equal(left, right).to_numpy(zero_copy_only=False).astype(bool)


def exact_keys(ids: list[IdColumn]) -> list[np.ndarray]:
    """Exact (collision-free) uint64 keys for harmonised string columns: dictionary codes."""
    encoded = pc.dictionary_encode(pa.chunked_array([c for i in ids for c in i.string_column().chunks], type=pa.large_string()).combine_chunks())
    codes = encoded.indices.to_numpy().astype(np.uint64)
    out, start = [], 0
    for i in ids:
        out.append(codes[start : start + len(i)])
        start += len(i)
    return out


