"""Validating a run and its qrels and ordering every query's documents once: :func:`prepare_ranking`.

The rules it implements (ordering, relevance, which queries are evaluated, duplicates, validation) are
those of :mod:`eval_platform.metrics.ranking`, whose docstring states them; the metrics there read the
:class:`RankingData` built here. On a machine with two or more cores the document keys and the run's side
of the join run on a second thread (numpy and Arrow release the GIL); set ``PARALLEL = False`` to keep one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.ranking_ids import IdColumn, as_ids, exact_keys, harmonise, strings_equal, take_rows
from eval_platform.metrics.ranking_sort import (
    descending_score_keys,
    equal_neighbours,
    group_order,
    lower_bound,
    segmented_sort,
    sort_within,
)

#: an odd multiplier (a bijection of uint64): the high bits of ``key * _SPREAD`` depend on every bit of key
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


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
    ``run_relevance``, computed on first use). ``nonrel_by_rank`` and ``num_nonrel_by_code`` (judged
    non-relevant documents, for bpref) are also computed on first use.
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
    run_docs: IdColumn = field(repr=False)
    _lazy: dict[str, Callable[[], Any]] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    def _computed(self, name: str) -> Any:
        """A field computed on first use (arrays, or a pair of arrays: the typed properties below say which)."""
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
    def nonrel_by_rank(self) -> tuple[np.ndarray, np.ndarray]:
        """(code, rank) of the retrieved documents judged non-relevant (relevance 0), sorted by code, then
        rank. Unjudged documents and negative judgments (TREC's "in pool, unjudged") are not among them."""
        return self._computed("nonrel_by_rank")

    @property
    def num_nonrel_by_code(self) -> np.ndarray:
        """Per code: judgments with relevance 0 (retrieved or not); negative judgments are not counted."""
        return self._computed("num_nonrel_by_code")

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


def _relevance(values: Any, keep_negative: bool = False) -> np.ndarray:
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
    if not keep_negative and negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise InvalidInput("qrels_relevance", f"must be >= 0; row {row} is {int(rel[row])}")
    return rel


def _query_codes(run_q: IdColumn, qrels_q: IdColumn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Dense query codes in order of first appearance (run first, then qrels-only queries).

    Consecutive rows of one query are collapsed first (an exact comparison of neighbours), so a table
    grouped by query costs one comparison per row and a factorisation per query. Returns the run's
    segment heads and their codes (the run's codes are expanded only when needed), the qrels codes, the
    number of codes and, per code, one row of the concatenation (run rows, then qrels rows) holding it.
    """
    n_run = len(run_q)
    heads, head_ids = [], []
    for ids, offset in ((run_q, 0), (qrels_q, n_run)):
        part, head = _segment_heads(ids)
        heads.append(part + offset)
        head_ids.append(head)
    # every row equals its segment's head, so the heads tell whether ids fit the exact 8-byte keys
    hashed = not run_q.is_int and max(i.max_bytes() for i in head_ids) > 8
    head_keys = [i.keys(hashed) for i in head_ids]
    all_heads = np.concatenate(heads)
    head_codes, uniques = pd.factorize(np.concatenate(head_keys))
    representative = np.empty(len(uniques), dtype=np.int64)
    representative[head_codes] = all_heads
    if hashed and not strings_equal([run_q, qrels_q], all_heads, representative[head_codes]).all():
        exact = np.concatenate(exact_keys([run_q, qrels_q]))  # a hash collision: use exact codes
        head_codes, uniques = pd.factorize(exact[all_heads])
        representative = np.empty(len(uniques), dtype=np.int64)
        representative[head_codes] = all_heads
    head_codes = head_codes.astype(np.int64, copy=False)
    n_run_heads = heads[0].size
    qrels_heads = heads[1] - n_run
    qrels_code = np.repeat(head_codes[n_run_heads:], np.diff(np.r_[qrels_heads, len(qrels_q)]))
    return heads[0], head_codes[:n_run_heads], qrels_code, len(uniques), representative


def _segment_heads(ids: IdColumn) -> tuple[np.ndarray, IdColumn]:
    """The rows where a run of equal consecutive ids begins (row 0 included), and the ids there."""
    if ids.values is not None:
        part = np.concatenate([[0], np.flatnonzero(ids.values[1:] != ids.values[:-1]) + 1])
        return part, IdColumn(ids.column, values=ids.values[part])
    strings = ids.string_column()
    # the positions straight from Arrow's bitmap, without a boolean array per row
    changes = pc.indices_nonzero(pc.not_equal(strings[1:], strings[:-1])).to_numpy().astype(np.int64)
    part = np.concatenate([[0], changes + 1])
    return part, IdColumn(ids.column, strings=pa.chunked_array([take_rows(strings, part)]))


def _sorted_query_order(run_q: IdColumn, qrels_q: IdColumn, representative: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The given codes sorted by query id, and those ids."""
    rows = representative[codes]
    n_run = len(run_q)
    if run_q.values is not None and qrels_q.values is not None:
        ids = np.where(rows < n_run, run_q.values[np.minimum(rows, n_run - 1)], qrels_q.values[np.maximum(rows - n_run, 0)])
        order = np.argsort(ids, kind="stable")
        return codes[order], ids[order]
    from_run = rows < n_run
    ids = pa.concat_arrays([
        take_rows(run_q.as_strings().string_column(), rows[from_run]),
        take_rows(qrels_q.as_strings().string_column(), rows[~from_run] - n_run),
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
    run_query: IdColumn
    run_doc: IdColumn
    qrels_query: IdColumn
    qrels_doc: IdColumn
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
        equal[equal] = strings_equal([ids_d], left[equal], right[equal])
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
    packed = segmented_sort(spread, count, pack_bits=bits, overwrite=True)
    flagged = equal_neighbours(packed, low, start, count)
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
    at = lower_bound(packed, start, count, target)
    value = np.take(packed, at, mode="clip")
    found = np.flatnonzero((at < start + count) & ((value & ~low) == target))
    run_rows = start[found] + (value[found] & low).astype(np.int64)
    if lay.run_group is not None:
        run_rows = lay.run_group[run_rows]
    qrels_rows = positive[found]
    if not (run_keys[run_rows] == qrels_keys[qrels_rows]).all():
        return None
    if lay.hashed and qrels_rows.size and not strings_equal([lay.qrels_doc, lay.run_doc], qrels_rows, run_rows + len(lay.qrels_doc)).all():
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
        position = sort_within(grouped_keys, count)
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
    low = lower_bound(r_keys, start, count, qrels_keys)
    found = np.flatnonzero((low < start + count) & (np.take(r_keys, low, mode="clip") == qrels_keys))
    pairs = found, r_rows[low[found]]
    if lay.hashed and found.size and not strings_equal([lay.qrels_doc, lay.run_doc], pairs[0], pairs[1] + len(lay.qrels_doc)).all():
        return None
    return pairs


def _rank_rows(score_keys: np.ndarray, rows: np.ndarray, sizes: np.ndarray, docs: IdColumn, hashed: bool) -> np.ndarray:
    """``rows`` (grouped by query, ``sizes`` rows per query) in trec_eval's rank order inside each query:
    float32 score descending (``score_keys``, one per run row), then document id descending (strcmp)."""
    ranked = rows[sort_within(score_keys[rows], sizes)]
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
            order = sort_within(~docs.keys(False)[tied], group_sizes)
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
    at = lower_bound(sorted_scores, start, count, key)
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
    value-sorted (:func:`segmented_sort`); otherwise the two are packed in one integer and value-sorted.
    """
    rank_bits = max(int(max_rank).bit_length(), 1)
    code_bits = max(int(n_codes).bit_length(), 1)
    if code.size < 2 or bool((code[1:] >= code[:-1]).all()):
        if rank_bits < 32:
            ranks = segmented_sort(rank.astype(np.uint32), np.bincount(code, minlength=n_codes), overwrite=True)
            return code, ranks.astype(np.int64)
    if code_bits + rank_bits > 64:  # pragma: no cover - beyond 2**64 (query, rank) cells
        order = np.lexsort((rank, code))
        return code[order], rank[order]
    kind = np.uint32 if code_bits + rank_bits <= 32 else np.uint64
    packed = np.left_shift(code.astype(kind), kind(rank_bits))
    packed |= rank.astype(kind)
    packed.sort()
    return (packed >> kind(rank_bits)).astype(np.int64), (packed & kind((1 << rank_bits) - 1)).astype(np.int64)


def prepare_ranking(run_query, run_doc, run_score, qrels_query, qrels_doc, qrels_relevance, *,
                    keep_negative: bool = False) -> RankingData:
    """Validate a run and its qrels, join them and rank the relevant retrieved documents (see the module docs).

    Negative relevance is refused unless ``keep_negative``: then a negative judgment is read as trec_eval
    reads it (TREC's "in the pool but unjudged"): not relevant, zero gain, not judged non-relevant either
    (bpref skips it), and it makes its query a judged one.

    Ids may be numpy arrays (str, object or integer), pandas Series (including Arrow-backed strings) or
    Arrow arrays. Cost: O(n) passes plus per-query value sorts; a run already grouped by query (as TREC runs
    and most candidate tables are) needs no global sort at all.
    """
    run_query_ids, run_doc_ids, score, score32, qrels_query_ids, qrels_doc_ids, relevance = _checked_inputs(
        run_query, run_doc, run_score, qrels_query, qrels_doc, qrels_relevance, keep_negative)
    n_run = len(run_query_ids)

    with _executor() as pool:
        # document keys on a second thread while the queries are coded on this one
        run_doc_ids, qrels_doc_ids, hashed_d = harmonise(run_doc_ids, qrels_doc_ids)
        keys_job = pool.submit(lambda: (qrels_doc_ids.keys(hashed_d), run_doc_ids.keys(hashed_d)))
        run_query_ids, qrels_query_ids, _ = harmonise(run_query_ids, qrels_query_ids, decide=False)
        run_heads, run_head_codes, qrels_code, n_codes, representative = _query_codes(run_query_ids, qrels_query_ids)
        run_group, run_count = _run_grouping(run_head_codes, np.diff(np.r_[run_heads, n_run]), n_codes)
        qrels_group, qrels_count = group_order(qrels_code, n_codes)
        lay = _Layout(
            run_group, np.cumsum(run_count) - run_count, run_count, qrels_group, np.cumsum(qrels_count) - qrels_count,
            qrels_count, qrels_code, run_query_ids, run_doc_ids, qrels_query_ids, qrels_doc_ids, hashed_d,
        )

        # ---- the join: which retrieved documents are judged relevant (relevance >= 1). The run's keys are
        # sorted on the second thread while this one sorts the scores and the judgments' keys.
        run_job = pool.submit(lambda: _sorted_doc_keys(lay, "run", keys_job.result()[1]))
        score_keys = descending_score_keys(score32)
        sorted_score = segmented_sort(score_keys if run_group is None else score_keys[run_group], run_count, overwrite=run_group is not None)
        positive = np.flatnonzero(relevance > 0)
        all_qrels_keys, all_run_keys = keys_job.result()
        qrels_sorted_ok = _sorted_doc_keys(lay, "qrels", all_qrels_keys) is not None
        qrels_rows, run_rows = _judged_retrieved(lay, all_qrels_keys, all_run_keys, run_job.result(), relevance > 0, positive,
                                                 qrels_sorted_ok)

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

        ideal = _ideal_rankings(relevance, positive, positive_code, n_codes)

        def run_ranked() -> np.ndarray:
            rows = np.arange(n_run) if run_group is None else run_group
            return _rank_rows(score_keys, rows, run_count, run_doc_ids, hashed_d)

        def run_relevance() -> np.ndarray:
            out = np.zeros(n_run, dtype=np.int64)
            out[run_rows] = relevance[qrels_rows]
            return out

        def nonrel_by_rank() -> tuple[np.ndarray, np.ndarray]:
            # the sorted keys and scores are rebuilt rather than kept: only bpref needs them again
            judged_nonrel = relevance == 0
            rows = np.flatnonzero(judged_nonrel)
            qrels_keys, run_keys = qrels_doc_ids.keys(hashed_d), run_doc_ids.keys(hashed_d)
            run_sorted = _sorted_doc_keys(lay, "run", run_keys)
            nonrel_q, nonrel_r = _judged_retrieved(lay, qrels_keys, run_keys, run_sorted, judged_nonrel, rows, qrels_sorted_ok)
            code = qrels_code[nonrel_q]
            scores_sorted = segmented_sort(score_keys if run_group is None else score_keys[run_group], run_count,
                                           overwrite=run_group is not None)
            rank = _hit_ranks(lay, score_keys, scores_sorted, code, nonrel_r, hashed_d)
            return _sorted_by_code_then_rank(code, rank, n_codes, int(run_count.max()))

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
                "nonrel_by_rank": nonrel_by_rank,
                "num_nonrel_by_code": lambda: np.bincount(qrels_code[relevance == 0], minlength=n_codes),
            },
        )


class _Inputs(NamedTuple):
    """A run and its qrels as validated columns: ids, scores (float64, and float32 as trec_eval keeps them)
    and integer relevance."""

    run_query: IdColumn
    run_doc: IdColumn
    score: np.ndarray
    score32: np.ndarray
    qrels_query: IdColumn
    qrels_doc: IdColumn
    relevance: np.ndarray


def _checked_inputs(run_query: Any, run_doc: Any, run_score: Any, qrels_query: Any, qrels_doc: Any,
                    qrels_relevance: Any, keep_negative: bool = False) -> _Inputs:
    """Every column validated, then refused when the run or the qrels is ragged or empty."""
    inputs = _Inputs(as_ids(run_query, "run_query"), as_ids(run_doc, "run_doc"), *_scores(run_score),
                     as_ids(qrels_query, "qrels_query"), as_ids(qrels_doc, "qrels_doc"), _relevance(qrels_relevance, keep_negative))
    n_run, n_qrels = len(inputs.run_query), len(inputs.qrels_query)
    if not (len(inputs.run_doc) == inputs.score.size == n_run):
        raise InvalidInput("run", f"run_query, run_doc and run_score have different lengths "
                                  f"({n_run}, {len(inputs.run_doc)}, {inputs.score.size})")
    if not (len(inputs.qrels_doc) == inputs.relevance.size == n_qrels):
        raise InvalidInput("qrels", f"qrels_query, qrels_doc and qrels_relevance have different lengths "
                                    f"({n_qrels}, {len(inputs.qrels_doc)}, {inputs.relevance.size})")
    if n_run == 0:
        raise InvalidInput("run", "is empty: no ranked documents to evaluate")
    if n_qrels == 0:
        raise InvalidInput("qrels", "is empty: no relevance judgments")
    return inputs


def _run_grouping(run_head_codes: np.ndarray, run_lengths: np.ndarray, n_codes: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Row order grouping the run by query code (None when grouped already), and each code's row count."""
    if run_head_codes.size < 2 or bool(np.all(run_head_codes[1:] > run_head_codes[:-1])):
        run_count = np.zeros(n_codes, dtype=np.int64)
        run_count[run_head_codes] = run_lengths
        return None, run_count  # the run is grouped by query already
    return group_order(np.repeat(run_head_codes, run_lengths), n_codes)


def _judged_retrieved(lay: _Layout, qrels_keys: np.ndarray, run_keys: np.ndarray, run_sorted, wanted: np.ndarray,
                      rows: np.ndarray, qrels_sorted_ok: bool) -> tuple[np.ndarray, np.ndarray]:
    """(qrels row, run row) of each retrieved document whose judgment is one of ``rows`` (the qrels rows
    where ``wanted`` is true): a join on packed sorted keys (``run_sorted``, from :func:`_sorted_doc_keys`),
    or, when two keys collide (``run_sorted`` None, or ``qrels_sorted_ok`` false when the qrels' own keys
    did), on the full keys, or on exact dictionary codes."""
    if qrels_sorted_ok and run_sorted is not None:
        matched = _join_packed(lay, run_sorted, qrels_keys, run_keys, rows)
        if matched is not None:
            return matched
    matched = _join_sorted(lay, qrels_keys, run_keys)
    if matched is None:
        matched = _join_sorted(lay, *exact_keys([lay.qrels_doc, lay.run_doc]))
    keep = wanted[matched[0]]
    return matched[0][keep], matched[1][keep]


def _ideal_rankings(relevance: np.ndarray, positive: np.ndarray, positive_code: np.ndarray,
                    n_codes: int) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each query's positive judgments by relevance, descending: counts per (code, grade) when there are few
    grades, else each judgment's (code, ideal rank, relevance)."""
    positive_rel = relevance[positive]
    top_level = int(positive_rel.max(initial=0))
    if top_level <= 64:  # few grades: per-query counts of each grade are the ideal ranking
        counts = np.bincount(positive_code * (top_level + 1) + positive_rel, minlength=n_codes * (top_level + 1))
        return counts.reshape(n_codes, top_level + 1)
    # many grades: sort each query's judgments
    positive_group, positive_count = group_order(positive_code, n_codes)
    if positive_group is not None:
        positive_code, positive_rel = positive_code[positive_group], positive_rel[positive_group]
    ideal_order = sort_within((top_level - positive_rel).astype(np.uint64), positive_count)
    positive_start = np.cumsum(positive_count) - positive_count
    return positive_code, np.arange(positive.size) - positive_start[positive_code], positive_rel[ideal_order]
