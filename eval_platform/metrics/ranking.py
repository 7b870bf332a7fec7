"""Ranking and search metrics over (run, qrels) arrays, equal to trec_eval's as pytrec_eval-terrier computes them.

Inputs are a **run**, the system's output (``query_id``, ``doc_id``, ``score`` per row, higher score means
ranked higher), and **qrels**, the judgments (``query_id``, ``doc_id``, integer ``relevance >= 0`` per row).
:func:`prepare_ranking` validates them and orders every query's documents once; the per-query metric
functions then read the prepared :class:`RankingData` with numpy group operations only (no Python loop over
queries or rows) and return ``(query_ids, values)``; the catalog metric is the mean of ``values``.

Decisions shared by every metric here, each chosen to reproduce trec_eval (9.x, as wrapped by
pytrec_eval-terrier) exactly:

* **Ordering.** A query's documents are ranked by score descending; equal scores are broken by document id
  descending in byte order (C ``strcmp``, i.e. Unicode code-point order), whatever order the rows came in.
  trec_eval keeps scores as C ``float``, so scores are rounded to float32 first: two scores that differ
  only beyond float32 precision are a tie. ``-0.0`` equals ``0.0``. Integer ids are compared as their
  decimal strings for tie-breaking (``"9"`` ranks above ``"10"`` on a tie), as trec_eval sees them.
  The rank column of a TREC run file is ignored, as trec_eval ignores it.
* **Relevance.** A document is relevant when its judged relevance is ``>= 1``; documents missing from the
  qrels are non-relevant (relevance 0). NDCG uses the relevance value itself as the gain.
* **Which queries are averaged.** Only queries present in both the run and the qrels. A query only in the
  run, or only in the qrels, has no value and is not averaged (pytrec_eval's behaviour; the ``trec_eval -c``
  option is not reproduced). A query judged but with no relevant document *is* averaged, with value 0 for
  every metric. With no query in common, the mean is ``nan`` (the gate treats ``nan`` as missing).
* **Duplicates.** A (query, document) pair appearing twice in the run, or twice in the qrels, is rejected
  with :class:`~eval_platform.core.errors.InvalidInput` naming the pair (trec_eval also refuses duplicate
  documents; a dictionary, as pytrec_eval takes, cannot hold them).
* **Cut-offs.** ``k`` is an integer ``>= 1``. A query with fewer than ``k`` retrieved documents is not padded
  except that P@k still divides by ``k`` (trec_eval's ``P_k``); ``k`` larger than every list is allowed.
* **Validation.** Empty run or qrels, arrays of unequal lengths, NaN scores, non-integer or negative
  relevance, and missing ids raise ``InvalidInput``. Ids must be strings or integers; string ids must not
  contain NUL characters. Scores may be infinite.
* **Output.** ``query_ids`` are the evaluated queries sorted by id (lexicographically for strings,
  numerically for integers), so two runs on the same qrels give aligned arrays.
* **Ids.** Strings (numpy ``str``/``object``, pandas including Arrow-backed ``str``, Arrow arrays) or
  integers; when one side is integer and the other string, the integers are compared as decimal strings.
  Ids of at most 8 UTF-8 bytes are packed into one exact integer key; longer ids are hashed (64 bit) and
  every hash equality that matters (same query, same document) is checked against the strings, falling
  back to exact dictionary codes on a collision, so results never depend on the hash.

How it stays vectorised: ids become integer keys and queries dense codes (a run grouped by query needs no
global sort); every per-query ordering is a *value* sort of the rows of one padded 2-D array
(``_segmented_sort``), several times cheaper than an argsort, with a row's position packed into the low
bits of its value when it must be recovered. The join sorts each query's document keys that way (the high
bits are the key times an odd constant; every equality found is checked on the full key, and any
collision falls back to an exact argsort join), and each relevant judgment binary-searches its query's
sorted run keys. A relevant retrieved document's rank is a binary search of its score among its query's
value-sorted scores; only queries where it ties with another document are fully ranked, to break the tie
by document id. Every metric is then a ``bincount`` over the relevant retrieved documents; the whole run
in rank order (coverage) is computed only when asked for. The relevance threshold is trec_eval's default
(``relevance_level = 1``); ``judged_docs_only`` is off. On a machine with two or more cores the document
keys and the run's side of the join run on a second thread (numpy and Arrow release the GIL); set
``PARALLEL = False`` to keep one. Results do not depend on it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # third-party typing gap: pandas-stubs is not installed
import pyarrow as pa
import pyarrow.compute as pc

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as _clf
from eval_platform.metrics.base import MetricDefinition, Param

__all__ = [
    "RankingData",
    "prepare_ranking",
    "prepare_columns",
    "ndcg_at_k",
    "average_precision",
    "reciprocal_rank",
    "precision_at_k",
    "recall_at_k",
    "r_precision",
    "success_at_k",
    "hit_at_k",
    "mean_over_queries",
    "catalog_coverage",
    "engagement_calibration_error",
    "latency_percentile",
    "METRICS",
]

# --------------------------------------------------------------------------------------------------------
# Identifiers: every id column becomes one uint64 key per row, either exact (integers, or strings of at most
# eight UTF-8 bytes packed big-endian, whose integer order is the strings' byte order) or a 64-bit hash that
# is verified against the strings wherever two keys compare equal.
# --------------------------------------------------------------------------------------------------------

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


@dataclass
class _Ids:
    """One id column: integers (``values``) or strings (``strings``, an Arrow large_string ChunkedArray,
    kept in its chunks: nothing is concatenated)."""

    column: str
    values: np.ndarray | None = None
    strings: pa.ChunkedArray | None = None
    _chunks: list | None = None  # per chunk: (row offset, starts, lengths, end, data buffer)
    _max: int = 0
    _keys: dict = field(default_factory=dict)

    @property
    def is_int(self) -> bool:
        return self.values is not None

    def __len__(self) -> int:
        return len(self.values) if self.is_int else len(self.strings)

    def as_strings(self) -> _Ids:
        if not self.is_int:
            return self
        return _Ids(self.column, strings=_check_strings(pa.array(self.values).cast(pa.large_string()), self.column))

    def max_bytes(self) -> int:
        self._layout()
        return self._max

    def _layout(self) -> None:
        """Per Arrow chunk: its first row, its offsets and data buffer; and the longest id. String lengths
        are recomputed per chunk where needed rather than kept (a column-sized array costs more to keep)."""
        if self._chunks is not None:
            return
        self._chunks, row = [], 0
        for chunk in self.strings.chunks:
            buffers = chunk.buffers()
            offsets = np.frombuffer(buffers[1], dtype=np.int64, count=len(chunk) + 1, offset=chunk.offset * 8)
            if len(chunk):
                self._max = max(self._max, int((offsets[1:] - offsets[:-1]).max()))
            self._chunks.append((row, offsets, int(offsets[-1]) if len(chunk) else 0, buffers[2]))
            row += len(chunk)

    def _lengths(self) -> np.ndarray:
        self._layout()
        return np.concatenate([offsets[1:] - offsets[:-1] for _, offsets, _, _ in self._chunks])

    def _word(self, index: int, out: np.ndarray) -> np.ndarray:
        """The ``index``-th eight-byte word of every string, big-endian and zero-padded (0 past the end)."""
        self._layout()
        for row, offsets, end, data in self._chunks:  # a loop over Arrow chunks, not rows
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
        if self.is_int:
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
        if self.is_int:
            return self.values[rows]
        return _take_rows(self.strings, rows).to_numpy(zero_copy_only=False)

    def take_strings(self, rows: np.ndarray) -> pa.Array:
        """The ids of ``rows`` as an Arrow string array (integers in decimal, as trec_eval reads them)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.is_int:
            return pa.array(self.values[rows]).cast(pa.large_string())
        return _take_rows(self.strings, rows)


def _take_rows(strings: pa.ChunkedArray, rows) -> pa.Array:
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


def _check_strings(arr: pa.Array | pa.ChunkedArray, field_name: str) -> pa.ChunkedArray:
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


def _as_ids(values: Any, field_name: str) -> _Ids:
    """Accepts numpy arrays, pandas Series/Index (including Arrow-backed strings) and Arrow arrays."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_integer(values.type):
            if values.null_count:
                raise InvalidInput(field_name, "has missing ids")
            return _Ids(field_name, values=np.asarray(values).astype(np.int64))
        return _Ids(field_name, strings=_check_strings(values, field_name))
    if isinstance(values, (pd.Series, pd.Index)):
        if pd.api.types.is_integer_dtype(values.dtype):
            if values.isna().any():
                raise InvalidInput(field_name, "has missing ids")
            return _Ids(field_name, values=values.to_numpy(dtype=np.int64))
        if pd.api.types.is_string_dtype(values.dtype) and not isinstance(values.dtype, np.dtype):
            return _Ids(field_name, strings=_check_strings(pa.array(values), field_name))
        values = values.to_numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise InvalidInput(field_name, "must be one-dimensional")
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
            raise InvalidInput(field_name, "integer ids must fit in int64")
        return _Ids(field_name, values=array.astype(np.int64, copy=False))
    if array.dtype.kind == "U":
        return _Ids(field_name, strings=_check_strings(pa.array(array, type=pa.large_string()), field_name))
    if array.dtype.kind == "O":
        try:
            strings = pa.array(array, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            try:
                return _Ids(field_name, values=np.asarray(array.tolist(), dtype=np.int64))
            except (TypeError, ValueError, OverflowError):
                raise InvalidInput(field_name, "ids must be all strings or all integers") from None
        return _Ids(field_name, strings=_check_strings(strings, field_name))
    raise InvalidInput(field_name, f"ids must be strings or integers, got dtype {array.dtype}")


def _harmonise(a: _Ids, b: _Ids, decide: bool = True) -> tuple[_Ids, _Ids, bool]:
    """Bring two id columns to one key space; returns them and (when ``decide``) whether keys must be hashes."""
    if a.is_int and b.is_int:
        return a, b, False
    a, b = a.as_strings(), b.as_strings()
    return a, b, decide and max(a.max_bytes(), b.max_bytes()) > 8


def _take_concatenated(ids: list[_Ids], rows: np.ndarray) -> pa.Array:
    """The strings at positions ``rows`` of the concatenation of ``ids`` (without concatenating them)."""
    rows = np.asarray(rows, dtype=np.int64)
    pieces, positions, offset = [], [], 0
    for part in ids:
        inside = np.flatnonzero((rows >= offset) & (rows < offset + len(part)))
        pieces.append(_take_rows(part.strings, rows[inside] - offset))
        positions.append(inside)
        offset += len(part)
    if len(pieces) == 1:
        return pieces[0]
    order = np.argsort(np.concatenate(positions), kind="stable")
    out = pa.concat_arrays(pieces).take(pa.array(order))
    return out


def _strings_equal(ids: list[_Ids], rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Exact equality of ids at concatenated positions ``rows_a`` and ``rows_b`` (string ids)."""
    left = _take_concatenated(ids, rows_a)
    right = _take_concatenated(ids, rows_b)
    return pc.equal(left, right).to_numpy(zero_copy_only=False).astype(bool)


def _exact_keys(ids: list[_Ids]) -> list[np.ndarray]:
    """Exact (collision-free) uint64 keys for harmonised string columns: dictionary codes."""
    encoded = pc.dictionary_encode(pa.chunked_array([c for i in ids for c in i.strings.chunks], type=pa.large_string()).combine_chunks())
    codes = encoded.indices.to_numpy().astype(np.uint64)
    out, start = [], 0
    for i in ids:
        out.append(codes[start : start + len(i)])
        start += len(i)
    return out


# --------------------------------------------------------------------------------------------------------
# Grouping and per-group sorting without a loop over groups.
# --------------------------------------------------------------------------------------------------------


def _group(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Row order grouping ``codes`` ascending (stable; ``None`` when already grouped), and each code's count."""
    counts = np.bincount(codes, minlength=n_codes)
    if codes.size < 2 or bool(np.all(codes[1:] >= codes[:-1])):
        return None, counts  # already grouped
    if n_codes <= 1 << 16:
        return np.argsort(codes.astype(np.uint16), kind="stable"), counts
    if n_codes <= 1 << 32:
        # LSD radix sort on two 16-bit digits (numpy's stable sort is a radix sort for 16-bit keys)
        low = np.argsort((codes & 0xFFFF).astype(np.uint16), kind="stable")
        high = np.argsort((codes[low] >> 16).astype(np.uint16), kind="stable")
        return low[high], counts
    return np.argsort(codes, kind="stable"), counts  # pragma: no cover - more than 2**32 queries


def _sort_within(keys: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Positions ordering ``keys`` ascending inside consecutive segments of ``sizes`` rows each.

    Equal keys come in any order. Each segment becomes one row of a padded 2-D array, sorted along its
    rows: many small in-cache sorts instead of one global sort (segments of equal size back to back need
    no copy at all). Segments of very different sizes are bucketed by power-of-two size class to bound
    the padding; the loop is over those few classes, never over segments.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    width = int(sizes.max())
    if (sizes == width).all():
        return (np.argsort(keys.reshape(sizes.size, width), axis=1) + starts[:, None]).ravel()
    if width * sizes.size <= 2 * n + 4096:
        classes = [None]  # one class: every segment, in order
    else:
        size_class = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
        classes = [np.flatnonzero(size_class == c) for c in np.unique(size_class)]
    sentinel = np.iinfo(keys.dtype).max
    # when no real key equals the padding value, padding sorts last and a segment's cells come first
    padding_last = not bool((keys == sentinel).any())
    out = np.empty(n, dtype=np.int64)
    for segments in classes:
        every = segments is None
        seg_sizes = sizes if every else sizes[segments]
        seg_starts = starts if every else starts[segments]
        width = int(seg_sizes.max())
        column = np.arange(width)[None, :]
        inside = column < seg_sizes[:, None]
        matrix = np.full((seg_sizes.size, width), sentinel, dtype=keys.dtype)
        positions = None if every else (seg_starts[:, None] + column)[inside]
        matrix[inside] = keys if every else keys[positions]
        order = np.argsort(matrix, axis=1)
        if padding_last:
            ordered = (order + seg_starts[:, None])[inside]
        else:  # padding may sort among real keys equal to it: select the real cells by column
            ordered = (order + seg_starts[:, None])[order < seg_sizes[:, None]]
        if every:
            return ordered
        out[positions] = ordered
    return out


def _descending_score_keys(score32: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the float32 scores' descending order (``-0.0 == 0.0``)."""
    bits = np.add(score32, np.float32(0.0)).view(np.uint32)  # -0.0 + 0.0 is +0.0
    # IEEE order as unsigned integers: flip all bits of negatives, only the sign bit of the others;
    # descending is the complement of that, i.e. flip the 31 low bits of non-negatives only
    step = 1 << 20
    for first in range(0, bits.size, step):  # blocks of fixed size: the temporaries stay in cache
        block = bits[first : first + step]
        flip = block.view(np.int32) >> 31  # 0 for non-negative, -1 for negative
        flip += 1  # 1 for non-negative, 0 for negative
        flip *= 0x7FFFFFFF
        block ^= flip.view(np.uint32)
    return bits


def _segmented_sort(values: np.ndarray, sizes: np.ndarray, pack_bits: int = 0, overwrite: bool = False) -> np.ndarray:
    """``values`` (grouped in consecutive segments of ``sizes``) sorted ascending inside each segment, by value.

    A value sort (numpy's vectorised sort of each row of a padded 2-D array) instead of an argsort, which
    costs a few times more. With ``pack_bits`` the low ``pack_bits`` bits of every value must be zero and
    are set to the value's position inside its segment before sorting, so the result still tells where each
    value came from (``pack_bits`` must exceed the bit length of the largest segment minus one, so that no
    packed value equals the dtype's maximum, the padding). Without it no value may equal that maximum.
    Segments of very different sizes are bucketed by power-of-two size class, as in :func:`_sort_within`.
    With ``overwrite`` the result may be ``values`` itself, sorted in place (no copy of a large array).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = values.size
    if n == 0:
        return values.copy()
    used = sizes > 0
    width = int(sizes.max())
    if (sizes[used] == width).all():  # equal segments back to back (empty ones take no room): one 2-D view
        matrix = values.reshape(-1, width) if overwrite else values.reshape(-1, width).copy()
        if pack_bits:
            matrix |= np.arange(width, dtype=values.dtype)
        matrix.sort(axis=1)
        return matrix.ravel()
    starts = np.cumsum(sizes) - sizes
    if width * sizes.size <= 2 * n + 4096:
        classes = [None]  # one class: every segment, in order
    else:
        size_class = np.ceil(np.log2(np.maximum(sizes, 1))).astype(np.int64)
        classes = [np.flatnonzero((size_class == c) & used) for c in np.unique(size_class[used])]
    sentinel = np.iinfo(values.dtype).max
    out = np.empty_like(values)
    for segments in classes:
        every = segments is None
        seg_sizes = sizes if every else sizes[segments]
        seg_starts = starts if every else starts[segments]
        width = int(seg_sizes.max())
        column = np.arange(width)
        inside = column[None, :] < seg_sizes[:, None]
        matrix = np.full((seg_sizes.size, width), sentinel, dtype=values.dtype)
        positions = None if every else (seg_starts[:, None] + column[None, :])[inside]
        matrix[inside] = values if every else values[positions]
        if pack_bits:
            matrix |= column.astype(values.dtype)  # padding stays at the maximum
        matrix.sort(axis=1)  # padding sorts last: a segment's values are its first cells
        if every:
            return matrix[inside]
        out[positions] = matrix[inside]
    return out


def _lower_bound(sorted_values: np.ndarray, start: np.ndarray, count: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per target, the first index in ``sorted_values[start : start + count]`` whose value is >= the target
    (``start + count`` when none): a fixed number of vectorised halvings, no loop over targets.

    Targets are taken in blocks of fixed size, every halving of a block before the next block: the ranges
    a block searches stay in the CPU cache across its halvings (targets of one query are usually together).
    """
    out = np.empty(target.size, dtype=np.int64)
    if target.size == 0:
        return out
    width = int(count.max())
    uniform = int(count.min()) == width  # ranges of one length (the common case): scalar steps, no clipping
    step = 1 << 16
    for first in range(0, target.size, step):  # a loop over blocks of targets
        block = slice(first, first + step)
        base = start[block].astype(np.int64)
        goal = target[block]
        if uniform:
            remaining = width
            while remaining > 1:
                half = remaining >> 1
                base += (sorted_values[base + half] < goal) * half
                remaining -= half
            if width:
                base += sorted_values[base] < goal
        else:
            size = count[block]
            remaining = size.astype(np.int64)
            for _ in range(width.bit_length()):
                half = remaining >> 1
                base += half * (np.take(sorted_values, base + half, mode="clip") < goal)  # clip: empty ranges
                remaining -= half
            base += (size > 0) & (np.take(sorted_values, base, mode="clip") < goal)
        out[block] = base
    return out


def _equal_neighbours(values: np.ndarray, low: np.uint64, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Positions ``i`` where ``values[i]`` and ``values[i + 1]`` agree above the ``low`` bits, inside one
    segment. Scanned in blocks of fixed size, so no temporary as large as ``values`` is made."""
    n = values.size
    found = []
    step = 1 << 18
    for first in range(0, max(n - 1, 0), step):  # a loop over blocks of rows, not over segments
        last = min(first + step, n - 1)
        same = np.flatnonzero((values[first + 1 : last + 1] ^ values[first:last]) <= low)
        if same.size:
            found.append(same + first)
    if not found:
        return np.zeros(0, dtype=np.int64)
    same = np.concatenate(found)
    ends = start + count
    return same[np.searchsorted(ends, same, side="right") == np.searchsorted(ends, same + 1, side="right")]


#: an odd multiplier (a bijection of uint64): the high bits of ``key * _SPREAD`` depend on every bit of key
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


# --------------------------------------------------------------------------------------------------------
# The prepared structure.
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RankingData:
    """A run joined with its qrels and ordered as trec_eval orders it; built by :func:`prepare_ranking`.

    ``query_ids`` are the evaluated queries (in both run and qrels) sorted by id and ``num_relevant``
    their number of judged documents with relevance >= 1. The other fields are internal, indexed by a
    dense query *code*: the relevant retrieved documents of evaluated queries (``hit_*``: code, 0-based
    rank, relevance, in no particular order; ``hits_by_rank`` sorts them), the ideal rankings (``ideal``: per code and grade the
    number of judgments, or with many grades each positive judgment's code, ideal rank and relevance), and
    what the metrics that are not per query need (``run_ranked``, the whole run in rank order, and
    ``run_relevance``, computed on first use).
    """

    query_ids: np.ndarray
    num_relevant: np.ndarray
    n_codes: int
    eval_codes: np.ndarray
    evaluated: np.ndarray
    num_rel_by_code: np.ndarray
    hit_code: np.ndarray
    hit_rank: np.ndarray
    hit_gain: np.ndarray
    ideal: np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]
    run_count: np.ndarray
    run_heads: np.ndarray
    run_head_codes: np.ndarray
    run_score: np.ndarray
    run_docs: _Ids = field(repr=False)
    _lazy: dict = field(default_factory=dict, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def _computed(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._lazy[name]()
        return self._cache[name]

    @property
    def run_ranked(self) -> np.ndarray:
        """Run rows grouped by query code, each query's rows in rank order."""
        return self._computed("run_ranked")

    @property
    def run_relevance(self) -> np.ndarray:
        """Per run row, its judged relevance (0 when unjudged or judged non-relevant)."""
        return self._computed("run_relevance")

    @property
    def hits_by_rank(self) -> tuple[np.ndarray, np.ndarray]:
        """(code, rank) of the relevant retrieved documents sorted by code, then rank."""
        return self._computed("hits_by_rank")

    @property
    def num_queries(self) -> int:
        return int(self.eval_codes.size)

    def per_query(self, by_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.query_ids, np.asarray(by_code, dtype=np.float64)[self.eval_codes]

    def hits_in_top(self, k: int) -> np.ndarray:
        """Per code: relevant documents ranked in the top ``k``."""
        key = ("top", k)
        if key not in self._cache:
            self._cache[key] = np.bincount(self.hit_code[self.hit_rank < k], minlength=self.n_codes).astype(np.float64)
        return self._cache[key]

    def ideal_dcg(self, k: int) -> np.ndarray:
        """Per code: DCG@k of the ideal ranking (judgments by relevance, descending)."""
        key = ("idcg", k)
        if key in self._cache:
            return self._cache[key]
        if isinstance(self.ideal, tuple):  # (code, ideal rank, relevance) of each positive judgment
            code, rank, gain = self.ideal
            top = rank < k
            value = np.bincount(code[top], weights=gain[top] / np.log2(rank[top] + 2.0), minlength=self.n_codes)
        else:  # counts[code, grade]: grade g fills ideal ranks [above, above + count) where above = higher grades
            counts = self.ideal
            above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1] - counts  # judgments of higher grades
            depth = min(k, int(counts.sum(axis=1).max(initial=0)))
            prefix = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(depth) + 2.0))]  # prefix[r] = sum_{i<r} 1/log2(i+2)
            first = np.minimum(above, depth)
            last = np.minimum(above + counts, depth)
            grades = np.arange(counts.shape[1], dtype=np.float64)
            value = ((prefix[last] - prefix[first]) * grades).sum(axis=1)
        self._cache[key] = value
        return value


def _scores(values: Any) -> tuple[np.ndarray, np.ndarray]:
    score = np.asarray(values)
    if score.ndim != 1:
        raise InvalidInput("run_score", "must be one-dimensional")
    if score.dtype.kind not in "iuf" or score.dtype.kind == "b":
        raise InvalidInput("run_score", f"must be numeric, got dtype {score.dtype}")
    score = score.astype(np.float64, copy=False)
    nan = np.isnan(score)
    if nan.any():
        raise InvalidInput("run_score", f"contains NaN at row {int(np.flatnonzero(nan)[0])}")
    with np.errstate(over="ignore"):
        score32 = score.astype(np.float32)  # trec_eval stores scores as C float
    return score, score32


def _relevance(values: Any) -> np.ndarray:
    rel = np.asarray(values)
    if rel.ndim != 1:
        raise InvalidInput("qrels_relevance", "must be one-dimensional")
    if rel.dtype.kind == "b":
        rel = rel.astype(np.int64)
    elif rel.dtype.kind == "f":
        bad = ~np.isfinite(rel) | (rel != np.round(rel))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInput("qrels_relevance", f"must be integers; row {row} is {rel[row]!r}")
        rel = rel.astype(np.int64)
    elif rel.dtype.kind not in "iu":
        raise InvalidInput("qrels_relevance", f"must be integers, got dtype {rel.dtype}")
    rel = rel.astype(np.int64, copy=False)
    negative = rel < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise InvalidInput("qrels_relevance", f"must be >= 0; row {row} is {int(rel[row])}")
    return rel


def _query_codes(run_q: _Ids, qrels_q: _Ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Dense query codes in order of first appearance (run first, then qrels-only queries).

    Consecutive rows of one query are collapsed first (an exact comparison of neighbours), so a table
    grouped by query costs one comparison per row and a factorisation per query. Returns the run's
    segment heads and their codes (the run's codes are expanded only when needed), the qrels codes, the
    number of codes and, per code, one row of the concatenation (run rows, then qrels rows) holding it.
    """
    n_run = len(run_q)
    heads, head_ids = [], []
    for ids, offset in ((run_q, 0), (qrels_q, n_run)):
        if ids.is_int:
            changes = np.flatnonzero(ids.values[1:] != ids.values[:-1])
        else:  # the positions straight from Arrow's bitmap, without a boolean array per row
            changes = pc.indices_nonzero(pc.not_equal(ids.strings[1:], ids.strings[:-1])).to_numpy().astype(np.int64)
        part = np.concatenate([[0], changes + 1])
        heads.append(part + offset)
        head_ids.append(_Ids(ids.column, values=ids.values[part]) if ids.is_int else _Ids(ids.column, strings=pa.chunked_array([_take_rows(ids.strings, part)])))
    # every row equals its segment's head, so the heads tell whether ids fit the exact 8-byte keys
    hashed = not run_q.is_int and max(i.max_bytes() for i in head_ids) > 8
    head_keys = [i.keys(hashed) for i in head_ids]
    all_heads = np.concatenate(heads)
    head_codes, uniques = pd.factorize(np.concatenate(head_keys))
    representative = np.empty(len(uniques), dtype=np.int64)
    representative[head_codes] = all_heads
    if hashed and not _strings_equal([run_q, qrels_q], all_heads, representative[head_codes]).all():
        exact = np.concatenate(_exact_keys([run_q, qrels_q]))  # a hash collision: use exact codes
        head_codes, uniques = pd.factorize(exact[all_heads])
        representative = np.empty(len(uniques), dtype=np.int64)
        representative[head_codes] = all_heads
    head_codes = head_codes.astype(np.int64, copy=False)
    n_run_heads = heads[0].size
    qrels_heads = heads[1] - n_run
    qrels_code = np.repeat(head_codes[n_run_heads:], np.diff(np.r_[qrels_heads, len(qrels_q)]))
    return heads[0], head_codes[:n_run_heads], qrels_code, len(uniques), representative


def _sorted_query_order(run_q: _Ids, qrels_q: _Ids, representative: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The given codes sorted by query id, and those ids."""
    rows = representative[codes]
    n_run = len(run_q)
    if run_q.is_int and qrels_q.is_int:
        ids = np.where(rows < n_run, run_q.values[np.minimum(rows, n_run - 1)], qrels_q.values[np.maximum(rows - n_run, 0)])
        order = np.argsort(ids, kind="stable")
        return codes[order], ids[order]
    from_run = rows < n_run
    ids = pa.concat_arrays([
        _take_rows(run_q.as_strings().strings, rows[from_run]),
        _take_rows(qrels_q.as_strings().strings, rows[~from_run] - n_run),
    ])
    codes = np.concatenate([codes[from_run], codes[~from_run]])
    order = pc.sort_indices(ids).to_numpy()
    return codes[order], ids.take(pa.array(order)).to_numpy(zero_copy_only=False)


class _Serial:
    """A stand-in for a thread pool that runs jobs at submission (one core, or threads disabled)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn, *args):
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # noqa: BLE001 - re-raised by result()
            future.set_exception(error)
        return future


#: set to False to keep every step on the calling thread
PARALLEL = True


def _executor():
    if PARALLEL and (os.cpu_count() or 1) > 1:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ranking")
    return _Serial()


@dataclass
class _Layout:
    """Where each query's rows are: the run and the qrels grouped by query code (``*_group`` is the row
    order that groups them, ``None`` when they already are), with each code's first grouped position and
    row count; and the id columns, for error messages and exact comparisons."""

    run_group: np.ndarray | None
    run_start: np.ndarray
    run_count: np.ndarray
    qrels_group: np.ndarray | None
    qrels_start: np.ndarray
    qrels_count: np.ndarray
    qrels_code: np.ndarray
    run_query: _Ids
    run_doc: _Ids
    qrels_query: _Ids
    qrels_doc: _Ids
    hashed: bool  # document keys are 64-bit hashes (ids longer than 8 bytes), to be verified on the strings

    def side(self, name: str):
        if name == "run":
            return self.run_group, self.run_start, self.run_count, self.run_query, self.run_doc
        return self.qrels_group, self.qrels_start, self.qrels_count, self.qrels_query, self.qrels_doc


def _duplicates(lay: _Layout, name: str, left: np.ndarray, right: np.ndarray, keys: np.ndarray) -> bool:
    """Rows ``left[i]`` and ``right[i]`` of one side share a query and a document key (or its high bits).

    Raises ``InvalidInput`` naming the pair when one of them is a real duplicate; returns True when none is
    (the keys collided, so the caller must compare exactly), False when there is nothing to check.
    """
    if not left.size:
        return False
    _, _, _, ids_q, ids_d = lay.side(name)
    equal = keys[left] == keys[right]
    if lay.hashed and equal.any():
        equal[equal] = _strings_equal([ids_d], left[equal], right[equal])
    if equal.any():
        row = [int(left[np.flatnonzero(equal)[0]])]
        raise InvalidInput(name, f"query {ids_q.take(row)[0]!r} lists document {ids_d.take(row)[0]!r} more than once")
    return True


def _sorted_doc_keys(lay: _Layout, name: str, keys: np.ndarray) -> tuple[np.ndarray, np.uint64] | None:
    """One side's document keys per query, value-sorted with their position packed into the low bits.

    The high bits are the key times an odd constant (all of its bits mixed in). Duplicates are neighbours
    with equal high bits: a real duplicate raises ``InvalidInput``; two distinct keys that met return
    ``None`` (the caller then joins exactly with :func:`_join_sorted`). Returns the sorted packed values
    (grouped layout) and the mask of the position bits.
    """
    group, start, count, _, _ = lay.side(name)
    bits = max(int(count.max(initial=0)).bit_length(), 1)
    if bits > 24:  # a query with millions of documents: too few bits would remain for the keys
        return None
    low = np.uint64((1 << bits) - 1)
    spread = np.multiply(keys if group is None else keys[group], _SPREAD)
    spread &= ~low
    packed = _segmented_sort(spread, count, pack_bits=bits, overwrite=True)
    flagged = _equal_neighbours(packed, low, start, count)
    if flagged.size:
        segment_start = start[np.searchsorted(start + count, flagged, side="right")]
        left = segment_start + (packed[flagged] & low).astype(np.int64)
        right = segment_start + (packed[flagged + 1] & low).astype(np.int64)
        if group is not None:
            left, right = group[left], group[right]
        if _duplicates(lay, name, left, right, keys):
            return None
    return packed, low


def _join_packed(lay: _Layout, run_sorted, qrels_keys: np.ndarray, run_keys: np.ndarray, positive: np.ndarray):
    """(qrels rows, run rows) of the judgments ``positive`` that name a retrieved document, each judgment
    binary-searching its query's sorted run keys (:func:`_sorted_doc_keys`); ``None`` when two distinct
    keys met. Every match is checked on the full keys (and on the strings when the keys are hashes)."""
    packed, low = run_sorted
    code = lay.qrels_code[positive]
    target = np.multiply(qrels_keys[positive], _SPREAD)
    target &= ~low
    start, count = lay.run_start[code], lay.run_count[code]
    at = _lower_bound(packed, start, count, target)
    value = np.take(packed, at, mode="clip")
    found = np.flatnonzero((at < start + count) & ((value & ~low) == target))
    run_rows = start[found] + (value[found] & low).astype(np.int64)
    if lay.run_group is not None:
        run_rows = lay.run_group[run_rows]
    qrels_rows = positive[found]
    if not (run_keys[run_rows] == qrels_keys[qrels_rows]).all():
        return None
    if lay.hashed and qrels_rows.size and not _strings_equal([lay.qrels_doc, lay.run_doc], qrels_rows, run_rows + len(lay.qrels_doc)).all():
        return None
    return qrels_rows, run_rows


def _join_sorted(lay: _Layout, qrels_keys: np.ndarray, run_keys: np.ndarray):
    """The exact join: (qrels rows, run rows) naming the same pair, by argsorting each query's rows on the
    full keys; ``None`` when hashed keys collided. Slower than :func:`_join_packed`; used after a collision."""

    def sorted_by_doc(name: str, keys: np.ndarray):
        """Per query, the keys in ascending order, a function mapping sorted positions back to rows, and
        the sorted positions whose key equals the next one's (in the same query)."""
        group, start, count, _, _ = lay.side(name)
        grouped_keys = keys if group is None else keys[group]
        position = _sort_within(grouped_keys, count)
        ordered_keys = grouped_keys[position]
        same = ordered_keys[1:] == ordered_keys[:-1]
        boundary = start[count > 0][1:]
        same[boundary - 1] = False
        all_rows = position if group is None else group[position]
        return ordered_keys, all_rows, np.flatnonzero(same)

    _, q_rows, q_equal = sorted_by_doc("qrels", qrels_keys)
    if _duplicates(lay, "qrels", q_rows[q_equal], q_rows[q_equal + 1], qrels_keys):
        return None
    r_keys, r_rows, r_equal = sorted_by_doc("run", run_keys)
    if _duplicates(lay, "run", r_rows[r_equal], r_rows[r_equal + 1], run_keys):
        return None
    start, count = lay.run_start[lay.qrels_code], lay.run_count[lay.qrels_code]
    low = _lower_bound(r_keys, start, count, qrels_keys)
    found = np.flatnonzero((low < start + count) & (np.take(r_keys, low, mode="clip") == qrels_keys))
    pairs = found, r_rows[low[found]]
    if lay.hashed and found.size and not _strings_equal([lay.qrels_doc, lay.run_doc], pairs[0], pairs[1] + len(lay.qrels_doc)).all():
        return None
    return pairs


def _rank_rows(score_keys: np.ndarray, rows: np.ndarray, sizes: np.ndarray, docs: _Ids, hashed: bool) -> np.ndarray:
    """``rows`` (grouped by query, ``sizes`` rows per query) in trec_eval's rank order inside each query:
    float32 score descending (``score_keys``, one per run row), then document id descending (strcmp)."""
    ranked = rows[_sort_within(score_keys[rows], sizes)]
    if ranked.size < 2:
        return ranked
    ranked_keys = score_keys[ranked]
    tie = ranked_keys[1:] == ranked_keys[:-1]
    starts = np.cumsum(sizes) - sizes
    boundary = starts[1:][sizes[1:] > 0]
    tie[boundary[boundary > 0] - 1] = False
    if tie.any():
        in_tie = np.zeros(ranked.size, dtype=bool)
        in_tie[:-1] |= tie
        in_tie[1:] |= tie
        positions = np.flatnonzero(in_tie)
        group_id = np.cumsum(np.r_[True, ~tie])[positions]
        tied = ranked[positions]
        if docs.is_int or hashed:
            table = pa.table({"g": pa.array(group_id), "d": docs.take_strings(tied)})
            order = pc.sort_indices(table, sort_keys=[("g", "ascending"), ("d", "descending")]).to_numpy()
        else:  # packed ids of <= 8 bytes: integer order is byte order
            group_sizes = np.bincount(group_id - group_id[0])
            group_sizes = group_sizes[group_sizes > 0]
            order = _sort_within(~docs.keys(False)[tied], group_sizes)
        ranked[positions] = tied[order]
    return ranked


def _grouped_rows(lay: _Layout, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The run rows of the given query codes, grouped by code in that order, and their counts."""
    sizes = lay.run_count[codes]
    offsets = np.cumsum(sizes) - sizes
    grouped = np.arange(int(sizes.sum())) + np.repeat(lay.run_start[codes] - offsets, sizes)
    return (grouped if lay.run_group is None else lay.run_group[grouped]), sizes


def _hit_ranks(lay, score_keys, sorted_scores, hit_code, run_rows, hashed) -> np.ndarray:
    """0-based rank of each retrieved relevant document (run row ``run_rows[i]`` of query ``hit_code[i]``).

    The documents scored strictly higher come first: a binary search of the document's score key among its
    query's value-sorted keys. Only queries where such a document shares its float32 score with another
    document are ranked fully, to break those ties by document id.
    """
    key = score_keys[run_rows]
    start, count = lay.run_start[hit_code], lay.run_count[hit_code]
    at = _lower_bound(sorted_scores, start, count, key)
    rank = at - start
    tie = (at + 1 < start + count) & (np.take(sorted_scores, at + 1, mode="clip") == key)
    if tie.any():
        codes = np.unique(hit_code[tie])
        rows, sizes = _grouped_rows(lay, codes)
        ranked = _rank_rows(score_keys, rows, sizes, lay.run_doc, hashed)
        rank_of = np.empty(score_keys.size, dtype=np.int64)  # written only at the rows of those queries
        rank_of[ranked] = np.arange(ranked.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rank[tie] = rank_of[run_rows[tie]]
    return rank


def _sorted_by_code_then_rank(code: np.ndarray, rank: np.ndarray, n_codes: int, max_rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(code, rank) pairs sorted by code then rank.

    Pairs already grouped by code (judgments grouped by query give them so) only need each code's ranks
    value-sorted (:func:`_segmented_sort`); otherwise the two are packed in one integer and value-sorted.
    """
    rank_bits = max(int(max_rank).bit_length(), 1)
    code_bits = max(int(n_codes).bit_length(), 1)
    if code.size < 2 or bool((code[1:] >= code[:-1]).all()):
        if rank_bits < 32:
            ranks = _segmented_sort(rank.astype(np.uint32), np.bincount(code, minlength=n_codes), overwrite=True)
            return code, ranks.astype(np.int64)
    if code_bits + rank_bits > 64:  # pragma: no cover - beyond 2**64 (query, rank) cells
        order = np.lexsort((rank, code))
        return code[order], rank[order]
    kind = np.uint32 if code_bits + rank_bits <= 32 else np.uint64
    packed = code.astype(kind) << kind(rank_bits)
    packed |= rank.astype(kind)
    packed.sort()
    return (packed >> kind(rank_bits)).astype(np.int64), (packed & kind((1 << rank_bits) - 1)).astype(np.int64)


def prepare_ranking(run_query, run_doc, run_score, qrels_query, qrels_doc, qrels_relevance) -> RankingData:
    """Validate a run and its qrels, join them and rank the relevant retrieved documents (see the module docs).

    Ids may be numpy arrays (str, object or integer), pandas Series (including Arrow-backed strings) or
    Arrow arrays. Cost: O(n) passes plus per-query value sorts; a run already grouped by query (as TREC runs
    and most candidate tables are) needs no global sort at all.
    """
    run_query_ids = _as_ids(run_query, "run_query")
    run_doc_ids = _as_ids(run_doc, "run_doc")
    qrels_query_ids = _as_ids(qrels_query, "qrels_query")
    qrels_doc_ids = _as_ids(qrels_doc, "qrels_doc")
    score, score32 = _scores(run_score)
    relevance = _relevance(qrels_relevance)
    n_run, n_qrels = len(run_query_ids), len(qrels_query_ids)
    if not (len(run_doc_ids) == score.size == n_run):
        raise InvalidInput("run", f"run_query, run_doc and run_score have different lengths ({n_run}, {len(run_doc_ids)}, {score.size})")
    if not (len(qrels_doc_ids) == relevance.size == n_qrels):
        raise InvalidInput("qrels", f"qrels_query, qrels_doc and qrels_relevance have different lengths ({n_qrels}, {len(qrels_doc_ids)}, {relevance.size})")
    if n_run == 0:
        raise InvalidInput("run", "is empty: no ranked documents to evaluate")
    if n_qrels == 0:
        raise InvalidInput("qrels", "is empty: no relevance judgments")

    with _executor() as pool:
        # document keys on a second thread while the queries are coded on this one
        run_doc_ids, qrels_doc_ids, hashed_d = _harmonise(run_doc_ids, qrels_doc_ids)
        keys_job = pool.submit(lambda: (qrels_doc_ids.keys(hashed_d), run_doc_ids.keys(hashed_d)))
        run_query_ids, qrels_query_ids, _ = _harmonise(run_query_ids, qrels_query_ids, decide=False)
        run_heads, run_head_codes, qrels_code, n_codes, representative = _query_codes(run_query_ids, qrels_query_ids)
        run_lengths = np.diff(np.r_[run_heads, n_run])
        if run_head_codes.size < 2 or bool(np.all(run_head_codes[1:] > run_head_codes[:-1])):
            run_group = None  # the run is grouped by query already
            run_count = np.zeros(n_codes, dtype=np.int64)
            run_count[run_head_codes] = run_lengths
        else:
            run_group, run_count = _group(np.repeat(run_head_codes, run_lengths), n_codes)
        qrels_group, qrels_count = _group(qrels_code, n_codes)
        lay = _Layout(
            run_group, np.cumsum(run_count) - run_count, run_count, qrels_group, np.cumsum(qrels_count) - qrels_count,
            qrels_count, qrels_code, run_query_ids, run_doc_ids, qrels_query_ids, qrels_doc_ids, hashed_d,
        )

        # ---- the join: which retrieved documents are judged relevant (relevance >= 1). The run's keys are
        # sorted on the second thread while this one sorts the scores and the judgments' keys.
        run_job = pool.submit(lambda: _sorted_doc_keys(lay, "run", keys_job.result()[1]))
        score_keys = _descending_score_keys(score32)
        sorted_score = _segmented_sort(score_keys if run_group is None else score_keys[run_group], run_count, overwrite=run_group is not None)
        positive = np.flatnonzero(relevance > 0)
        qrels_keys, run_keys = keys_job.result()
        qrels_sorted = _sorted_doc_keys(lay, "qrels", qrels_keys)
        run_sorted = run_job.result()
        matched = None
        if qrels_sorted is not None and run_sorted is not None:
            matched = _join_packed(lay, run_sorted, qrels_keys, run_keys, positive)
        if matched is None:  # two keys collided: join on the full keys, or on exact dictionary codes
            matched = _join_sorted(lay, qrels_keys, run_keys)
            if matched is None:
                matched = _join_sorted(lay, *_exact_keys([qrels_doc_ids, run_doc_ids]))
            keep = relevance[matched[0]] > 0
            matched = matched[0][keep], matched[1][keep]
        qrels_rows, run_rows = matched

        # ---- per query facts, and the ranks of the relevant retrieved documents
        evaluated = (run_count > 0) & (qrels_count > 0)
        eval_codes, query_ids = _sorted_query_order(run_query_ids, qrels_query_ids, representative, np.flatnonzero(evaluated))
        if isinstance(query_ids, np.ndarray):
            query_ids.flags.writeable = False
        positive_code = qrels_code[positive]
        num_rel = np.bincount(positive_code, minlength=n_codes)
        hit_code = qrels_code[qrels_rows]  # a matched pair's query is in both files: it is evaluated
        hit_rank = _hit_ranks(lay, score_keys, sorted_score, hit_code, run_rows, hashed_d)
        hit_gain = relevance[qrels_rows]

        # ---- the ideal rankings: each query's positive judgments by relevance, descending
        positive_rel = relevance[positive]
        top_level = int(positive_rel.max(initial=0))
        if top_level <= 64:  # few grades: per-query counts of each grade are the ideal ranking
            ideal = np.bincount(positive_code * (top_level + 1) + positive_rel, minlength=n_codes * (top_level + 1))
            ideal = ideal.reshape(n_codes, top_level + 1)
        else:  # many grades: sort each query's judgments
            positive_group, positive_count = _group(positive_code, n_codes)
            if positive_group is not None:
                positive_code, positive_rel = positive_code[positive_group], positive_rel[positive_group]
            ideal_order = _sort_within((top_level - positive_rel).astype(np.uint64), positive_count)
            positive_start = np.cumsum(positive_count) - positive_count
            ideal = (positive_code, np.arange(positive.size) - positive_start[positive_code], positive_rel[ideal_order])

        def run_ranked() -> np.ndarray:
            rows = np.arange(n_run) if run_group is None else run_group
            return _rank_rows(score_keys, rows, run_count, run_doc_ids, hashed_d)

        def run_relevance() -> np.ndarray:
            out = np.zeros(n_run, dtype=np.int64)
            out[run_rows] = relevance[qrels_rows]
            return out

        return RankingData(
            query_ids=query_ids,
            num_relevant=num_rel[eval_codes],
            n_codes=n_codes,
            eval_codes=eval_codes,
            evaluated=evaluated,
            num_rel_by_code=num_rel,
            hit_code=hit_code,
            hit_rank=hit_rank,
            hit_gain=hit_gain.astype(np.float64),
            ideal=ideal,
            run_count=run_count,
            run_heads=run_heads,
            run_head_codes=run_head_codes,
            run_score=score,
            run_docs=run_doc_ids,
            _lazy={
                "run_ranked": run_ranked,
                "run_relevance": run_relevance,
                "hits_by_rank": lambda: _sorted_by_code_then_rank(hit_code, hit_rank, n_codes, int(run_count.max())),
            },
        )


# --------------------------------------------------------------------------------------------------------
# Per-query metrics: each returns (query_ids, values) over the evaluated queries.
# --------------------------------------------------------------------------------------------------------


def _check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidInput(name, f"must be an integer >= 1, got {k!r}")
    return int(k)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape, dtype=np.float64), where=denominator > 0)


def ndcg_at_k(data: RankingData, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``ndcg_cut_k``: ``DCG@k / IDCG@k`` with ``DCG@k = sum_{rank<=k} rel / log2(rank + 1)``.

    The gain is the judged relevance (0 when unjudged); the ideal ranking is the query's judgments sorted
    by relevance, cut at ``k`` (judged documents the run never retrieved count in the ideal). 0 when the
    query has no document with relevance > 0.
    """
    k = _check_k(k)
    top = data.hit_rank < k
    dcg = np.bincount(data.hit_code[top], weights=data.hit_gain[top] / np.log2(data.hit_rank[top] + 2.0), minlength=data.n_codes)
    return data.per_query(_ratio(dcg, data.ideal_dcg(k)))


def average_precision(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``map`` per query: ``sum over relevant retrieved d of P@rank(d)``, divided by the number of
    relevant judged documents (retrieved or not); 0 when the query has none. The whole list is used."""
    code, rank = data.hits_by_rank
    n = code.size
    first = np.ones(n, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    starts = np.flatnonzero(first)
    hits = np.arange(1, n + 1) - np.repeat(starts, np.diff(np.r_[starts, n]))  # 1, 2, ... within a query
    total = np.bincount(code, weights=hits / (rank + 1.0), minlength=data.n_codes)
    return data.per_query(_ratio(total, data.num_rel_by_code))


def reciprocal_rank(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``recip_rank``: ``1 / rank`` of the first relevant document; 0 when none is retrieved."""
    code, rank = data.hits_by_rank
    first = np.ones(code.size, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    by_code = np.zeros(data.n_codes, dtype=np.float64)
    by_code[code[first]] = 1.0 / (rank[first] + 1.0)
    return data.per_query(by_code)


def precision_at_k(data: RankingData, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``P_k``: relevant documents in the top ``k`` divided by ``k``, even when fewer than ``k``
    documents were retrieved."""
    k = _check_k(k)
    return data.per_query(data.hits_in_top(k) / k)


def recall_at_k(data: RankingData, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``recall_k``: relevant documents in the top ``k`` divided by the number of relevant judged
    documents; 0 when the query has none."""
    k = _check_k(k)
    return data.per_query(_ratio(data.hits_in_top(k), data.num_rel_by_code))


def r_precision(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``Rprec``: precision at rank R, R = number of relevant judged documents (the denominator
    stays R when fewer than R documents were retrieved); 0 when R = 0."""
    within = data.hit_rank < data.num_rel_by_code[data.hit_code]
    hits = np.bincount(data.hit_code[within], minlength=data.n_codes).astype(np.float64)
    return data.per_query(_ratio(hits, data.num_rel_by_code))


def success_at_k(data: RankingData, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``success_k``: 1 when a relevant document is in the top ``k``, else 0."""
    k = _check_k(k)
    return data.per_query((data.hits_in_top(k) > 0).astype(np.float64))


def hit_at_k(data: RankingData, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Hit@k, the recommender name of :func:`success_at_k` (identical values)."""
    return success_at_k(data, k)


def mean_over_queries(per_query: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean of the per-query values; ``nan`` when no query was evaluated."""
    values = per_query[1]
    return float(values.mean()) if values.size else float("nan")


# --------------------------------------------------------------------------------------------------------
# Whole-run metrics.
# --------------------------------------------------------------------------------------------------------


def catalog_coverage(data: RankingData, catalog, k: int = 10) -> float:
    """Fraction of the distinct ``catalog`` items shown in the top ``k`` of at least one query.

    Every query of the run counts, judged or not (coverage needs no judgments), ranked as the other metrics
    rank them (ties broken by document id). Shown items missing from the catalog are ignored; duplicate
    catalog entries count once. An empty catalog raises ``InvalidInput``.
    """
    k = _check_k(k)
    items = _as_ids(catalog, "catalog")
    if len(items) == 0:
        raise InvalidInput("catalog", "is empty")
    rank = np.arange(data.run_ranked.size) - np.repeat(np.cumsum(data.run_count) - data.run_count, data.run_count)
    shown_rows = data.run_ranked[rank < k]
    docs = data.run_docs
    if docs.is_int and items.is_int:
        distinct = np.unique(items.values)
        return float(np.isin(distinct, docs.values[shown_rows]).sum() / distinct.size)
    distinct = pc.unique(items.as_strings().strings)
    shown = docs.take_strings(shown_rows)
    return float(pc.sum(pc.is_in(distinct, value_set=shown)).as_py() or 0) / len(distinct)


def engagement_calibration_error(data: RankingData, n_bins: int = 10) -> float:
    """Expected calibration error of scores read as engagement probabilities, against relevance >= 1.

    Over every retrieved document of the evaluated queries (unjudged documents count as not engaged),
    ``ECE = sum_b (n_b / n) |mean(label)_b - mean(p)_b|`` with ``n_bins`` equal-width bins of [0, 1], as
    :func:`eval_platform.metrics.classification.expected_calibration_error`. Scores outside [0, 1] raise
    ``InvalidInput``; ``nan`` when no query was evaluated.
    """
    n_bins = _check_k(n_bins, "n_bins")
    lengths = np.diff(np.r_[data.run_heads, data.run_score.size])
    rows = np.repeat(data.evaluated[data.run_head_codes], lengths)  # run rows of evaluated queries
    if not rows.any():
        return float("nan")
    p = data.run_score[rows]
    if (p < 0).any() or (p > 1).any():
        raise InvalidInput("run_score", "engagement calibration needs scores that are probabilities in [0, 1]")
    return _clf.expected_calibration_error((data.run_relevance[rows] >= 1).astype(np.int64), p, n_bins=n_bins)


def latency_percentile(latency, q: float) -> float:
    """The ``q``-th percentile (0-100) of request latencies, numpy's linear interpolation.

    Latencies must be finite and >= 0 (any unit; the result has the same unit). Empty input raises.
    """
    values = np.asarray(latency)
    if values.ndim != 1:
        raise InvalidInput("latency", "must be one-dimensional")
    if values.size == 0:
        raise InvalidInput("latency", "is empty: no requests to summarise")
    if values.dtype.kind not in "iuf" or values.dtype.kind == "b":
        raise InvalidInput("latency", f"must be numeric, got dtype {values.dtype}")
    values = values.astype(np.float64, copy=False)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("latency", f"must be finite and >= 0; row {row} is {values[row]!r}")
    return float(np.percentile(values, q, method="linear"))


# --------------------------------------------------------------------------------------------------------
# Catalog entries.
# --------------------------------------------------------------------------------------------------------

RUN_COLUMNS = ("run_query", "run_doc", "run_score")
QRELS_COLUMNS = ("qrels_query", "qrels_doc", "qrels_relevance")
_CACHE: OrderedDict[tuple[int, ...], tuple[tuple[Any, ...], RankingData]] = OrderedDict()
_CACHE_SIZE = 2  # a candidate and a baseline


def prepare_columns(columns: Mapping[str, Any]) -> RankingData:
    """:func:`prepare_ranking` on a columns mapping, cached so the metrics of one suite share one preparation.

    The cache holds the last two inputs and matches them by object identity (it keeps references, so an id
    cannot be reused while cached). Arrays must not be modified in place between calls.
    """
    missing = [name for name in RUN_COLUMNS + QRELS_COLUMNS if name not in columns]
    if missing:
        raise InvalidInput("columns", f"missing {', '.join(missing)}")
    arrays = tuple(columns[name] for name in RUN_COLUMNS + QRELS_COLUMNS)
    key = tuple(id(a) for a in arrays)
    hit = _CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], arrays, strict=True)):
        _CACHE.move_to_end(key)
        return hit[1]
    data = prepare_ranking(*arrays)
    _CACHE[key] = (arrays, data)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return data


METRICS: list[MetricDefinition] = []
RANKING = frozenset({"ranking", "search"})
SEARCH = frozenset({"search"})


def _per_query_metric(name: str, fn, params: Mapping[str, Param] | None = None) -> None:
    def per_unit(columns, **kwargs):
        return fn(prepare_columns(columns), **kwargs)

    def compute(columns, **kwargs):
        return mean_over_queries(per_unit(columns, **kwargs))

    METRICS.append(
        MetricDefinition(
            name=name,
            version=1,
            direction="higher",
            task_types=RANKING,
            required_columns=RUN_COLUMNS + QRELS_COLUMNS,
            compute=compute,
            params=dict(params or {}),
            unit="query",
            per_unit=per_unit,
            description=(fn.__doc__ or "").strip().splitlines()[0],
        )
    )


def _k(default: int) -> dict[str, Param]:
    return {"k": Param(int, default=default, minimum=1)}


_per_query_metric("ndcg", ndcg_at_k, _k(10))
_per_query_metric("map", average_precision)
_per_query_metric("mrr", reciprocal_rank)
_per_query_metric("precision_at_k", precision_at_k, _k(10))
_per_query_metric("recall_at_k", recall_at_k, _k(100))
_per_query_metric("r_precision", r_precision)
_per_query_metric("success_at_k", success_at_k, _k(10))
_per_query_metric("hit_at_k", hit_at_k, _k(10))


def _coverage(columns, k: int = 10) -> float:
    if "catalog" not in columns:
        raise InvalidInput("columns", "missing catalog")
    return catalog_coverage(prepare_columns(columns), columns["catalog"], k=k)


def _calibration(columns, n_bins: int = 10) -> float:
    return engagement_calibration_error(prepare_columns(columns), n_bins=n_bins)


METRICS.append(
    MetricDefinition(
        name="catalog_coverage",
        version=1,
        direction="higher",
        task_types=RANKING,
        required_columns=RUN_COLUMNS + QRELS_COLUMNS + ("catalog",),
        compute=_coverage,
        params=_k(10),
        unit="query",
        description="Fraction of the catalog shown in the top k of at least one query.",
    )
)
METRICS.append(
    MetricDefinition(
        name="engagement_calibration_error",
        version=1,
        direction="lower",
        task_types=RANKING,
        required_columns=RUN_COLUMNS + QRELS_COLUMNS,
        compute=_calibration,
        params={"n_bins": Param(int, default=10, minimum=1)},
        unit="query",
        description="Expected calibration error of scores read as engagement probabilities (relevance >= 1).",
    )
)


def _latency_metric(percent: int) -> None:
    def compute(columns, **_):
        if "latency" not in columns:
            raise InvalidInput("columns", "missing latency")
        return latency_percentile(columns["latency"], percent)

    METRICS.append(
        MetricDefinition(
            name=f"latency_p{percent}",
            version=1,
            direction="lower",
            task_types=SEARCH,
            required_columns=("latency",),
            compute=compute,
            unit="example",
            description=f"{percent}th percentile of request latency (numpy linear interpolation).",
        )
    )


for _percent in (50, 95, 99):
    _latency_metric(_percent)
