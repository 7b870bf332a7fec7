"""Grouping and per-group sorting without a loop over groups, for :mod:`eval_platform.metrics.ranking`.

Every per-query ordering is a *value* sort of the rows of one padded 2-D array (:func:`segmented_sort`),
several times cheaper than an argsort, with a row's position packed into the low bits of its value when it
must be recovered; binary searches run on all groups at once (:func:`lower_bound`).
"""

from __future__ import annotations

import numpy as np


def group_order(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray | None, np.ndarray]:
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


def sort_within(keys: np.ndarray, sizes: np.ndarray) -> np.ndarray:
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
    classes: list[np.ndarray | None]
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


def descending_score_keys(score32: np.ndarray) -> np.ndarray:
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


def segmented_sort(values: np.ndarray, sizes: np.ndarray, pack_bits: int = 0, overwrite: bool = False) -> np.ndarray:
    """``values`` (grouped in consecutive segments of ``sizes``) sorted ascending inside each segment, by value.

    A value sort (numpy's vectorised sort of each row of a padded 2-D array) instead of an argsort, which
    costs a few times more. With ``pack_bits`` the low ``pack_bits`` bits of every value must be zero and
    are set to the value's position inside its segment before sorting, so the result still tells where each
    value came from (``pack_bits`` must exceed the bit length of the largest segment minus one, so that no
    packed value equals the dtype's maximum, the padding). Without it no value may equal that maximum.
    Segments of very different sizes are bucketed by power-of-two size class, as in :func:`sort_within`.
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
    classes: list[np.ndarray | None]
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


def lower_bound(sorted_values: np.ndarray, start: np.ndarray, count: np.ndarray, target: np.ndarray) -> np.ndarray:
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
            left = width
            while left > 1:
                half = left >> 1
                base += (sorted_values[base + half] < goal) * half
                left -= half
            if width:
                base += sorted_values[base] < goal
        else:
            size = count[block]
            remaining = size.astype(np.int64)
            for _ in range(width.bit_length()):
                halves = remaining >> 1
                base += halves * (np.take(sorted_values, base + halves, mode="clip") < goal)  # clip: empty ranges
                remaining -= halves
            base += (size > 0) & (np.take(sorted_values, base, mode="clip") < goal)
        out[block] = base
    return out


def equal_neighbours(values: np.ndarray, low: np.uint64, start: np.ndarray, count: np.ndarray) -> np.ndarray:
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

