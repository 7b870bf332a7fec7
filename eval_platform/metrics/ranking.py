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
  qrels are non-relevant (relevance 0). NDCG uses the relevance value itself as the gain. Only bpref tells
  unjudged documents from documents *judged* non-relevant (relevance 0): it skips the former. Negative
  relevance (TREC's "in the pool, unjudged") is refused unless ``prepare_ranking(..., keep_negative=True)``
  (as TREC files are read): then it is neither relevant nor judged non-relevant.
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
(:func:`~eval_platform.metrics.ranking_sort.segmented_sort`), several times cheaper than an argsort, with a row's position packed into the low
bits of its value when it must be recovered. The join sorts each query's document keys that way (the high
bits are the key times an odd constant; every equality found is checked on the full key, and any
collision falls back to an exact argsort join), and each relevant judgment binary-searches its query's
sorted run keys. A relevant retrieved document's rank is a binary search of its score among its query's
value-sorted scores; only queries where it ties with another document are fully ranked, to break the tie
by document id. Every metric is then a ``bincount`` over the relevant retrieved documents; the whole run
in rank order (coverage) is computed only when asked for. The relevance threshold is trec_eval's default
(``relevance_level = 1``); ``judged_docs_only`` is off. On a machine with two or more cores the document
keys and the run's side of the join run on a second thread (numpy and Arrow release the GIL); set
``ranking_prepare.PARALLEL = False`` to keep one. Results do not depend on it.

Where the parts live: ids as keys in :mod:`~eval_platform.metrics.ranking_ids`, the grouped sorts and
searches in :mod:`~eval_platform.metrics.ranking_sort`, validation, join and ordering (:func:`prepare_ranking`,
:class:`RankingData`) in :mod:`~eval_platform.metrics.ranking_prepare`; the metrics and their catalog entries
here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow.compute as pc

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as _clf
from eval_platform.metrics.base import MetricDefinition, Param
from eval_platform.metrics.ranking_ids import as_ids
from eval_platform.metrics.ranking_prepare import RankingData, prepare_ranking

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
    "ndcg_uncut",
    "map_at_k",
    "bpref",
    "set_precision",
    "set_recall",
    "set_f1",
    "num_relevant",
    "num_retrieved",
    "num_relevant_retrieved",
    "mean_over_queries",
    "catalog_coverage",
    "engagement_calibration_error",
    "latency_percentile",
    "METRICS",
]


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


# trec_eval's measures beyond the common ones: uncut NDCG, MAP at a cut-off, bpref, the set measures
# (the whole retrieved list as an unranked set) and the counts.


def _within_query_positions(code: np.ndarray) -> np.ndarray:
    """1, 2, ... within each run of equal codes (``code`` sorted)."""
    n = code.size
    first = np.ones(n, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    starts = np.flatnonzero(first)
    return np.arange(1, n + 1) - np.repeat(starts, np.diff(np.r_[starts, n]))


def ndcg_uncut(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``ndcg`` (uncut): ``DCG / IDCG`` over the whole retrieved list.

    ``DCG = sum over retrieved d of rel(d) / log2(rank(d) + 1)`` (rank from 1, gain = the judged relevance
    level, 0 when unjudged, judged 0 or negative); ``IDCG`` is the same sum over every judgment of the query
    sorted by relevance, descending, however long (relevant documents the run never retrieved count). 0 when
    the query has no judgment with relevance > 0. Equals :func:`ndcg_at_k` with ``k`` at least as large as
    both the run and the qrels of every query.

    Run a (rel 1), b (unjudged), c (rel 2); the qrels also hold d (rel 1), never retrieved:
    DCG = 1/log2(2) + 2/log2(4) = 2, IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 3.1309..., ndcg = 0.6388.

    >>> data = prepare_ranking(np.array(["q"] * 3), np.array(["a", "b", "c"]), np.array([3.0, 2.0, 1.0]),
    ...                        np.array(["q"] * 3), np.array(["a", "c", "d"]), np.array([1, 2, 1]))
    >>> print(ndcg_uncut(data)[1].round(4))
    [0.6388]
    """
    k = max(int(data.run_count.max(initial=0)), int(data.num_rel_by_code.max(initial=0)), 1)
    return ndcg_at_k(data, k)


def map_at_k(data: RankingData, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``map_cut_k``: average precision over the top ``k`` only.

    ``sum over relevant d ranked <= k of P@rank(d)``, divided by the number R of relevant judged documents
    (retrieved or not, so a relevant document below ``k`` or never retrieved counts as a miss); 0 when R = 0.
    When ``k`` exceeds the number retrieved the value is :func:`average_precision` (trec_eval: "nonrelevant
    docs fill in the rest").

    Ranking relevant, non-relevant, relevant with R = 3: ``map_cut_1 = map_cut_2 = 1/3``, ``map_cut_3 = (1 + 2/3)/3``.

    >>> data = prepare_ranking(np.array(["q"] * 3), np.array(["a", "b", "c"]), np.array([3.0, 2.0, 1.0]),
    ...                        np.array(["q"] * 3), np.array(["a", "c", "d"]), np.array([1, 1, 1]))
    >>> print(map_at_k(data, 2)[1].round(4), map_at_k(data, 3)[1].round(4))
    [0.3333] [0.5556]
    """
    k = _check_k(k)
    code, rank = data.hits_by_rank
    top = rank < k
    total = np.bincount(code[top], weights=_within_query_positions(code)[top] / (rank[top] + 1.0), minlength=data.n_codes)
    return data.per_query(_ratio(total, data.num_rel_by_code))


def bpref(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``bpref`` (Buckley and Voorhees, SIGIR 2004): preferences of relevant over judged
    non-relevant documents that the ranking keeps.

    ``bpref = (1/R) sum over relevant retrieved r of (1 - min(n_r, R) / min(N, R))``, where R is the number
    of relevant judged documents, N the number of documents *judged* non-relevant (relevance 0, retrieved or
    not) and ``n_r`` the judged non-relevant documents ranked above ``r``; a term with ``n_r = 0`` is 1 (so
    N = 0 gives recall). Unjudged documents are skipped, not counted as non-relevant, and so are negative
    judgments (TREC's "in the pool, unjudged"). Relevant documents never retrieved add 0. 0 when R = 0.

    Ranking n1 (rel 0), r1 (rel 1), u (unjudged), r2 (rel 1); R = 2, N = 3 (n1 and two never retrieved):
    r1 adds ``1 - min(1, 2)/min(3, 2) = 0.5``, r2 the same (u is skipped), so bpref = (0.5 + 0.5) / 2.

    >>> data = prepare_ranking(np.array(["q"] * 4), np.array(["n1", "r1", "u", "r2"]), np.array([4.0, 3.0, 2.0, 1.0]),
    ...                        np.array(["q"] * 5), np.array(["n1", "n2", "n3", "r1", "r2"]), np.array([0, 0, 0, 1, 1]))
    >>> print(bpref(data)[1])
    [0.5]
    """
    code, rank = data.hits_by_rank
    nonrel_code, nonrel_rank = data.nonrel_by_rank
    # n_r per relevant hit: judged non-relevant of its query ranked above it (a search in code-then-rank order)
    width = max(int(data.run_count.max(initial=0)), 1)
    above = np.searchsorted(nonrel_code * width + nonrel_rank, code * width + rank) - np.searchsorted(nonrel_code, code)
    num_rel = data.num_rel_by_code[code]
    limit = np.minimum(data.num_nonrel_by_code[code], num_rel)
    term = np.where(above > 0, 1.0 - np.minimum(above, num_rel) / np.maximum(limit, 1).astype(np.float64), 1.0)
    total = np.bincount(code, weights=term, minlength=data.n_codes)
    return data.per_query(_ratio(total, data.num_rel_by_code))


def num_relevant(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``num_rel``: relevant judged documents (relevance >= 1), retrieved or not."""
    return data.per_query(data.num_rel_by_code)


def num_retrieved(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``num_ret``: documents the run retrieved for the query (the whole list, no cut-off)."""
    return data.per_query(data.run_count)


def num_relevant_retrieved(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``num_rel_ret``: retrieved documents judged relevant."""
    return data.per_query(np.bincount(data.hit_code, minlength=data.n_codes))


def set_precision(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``set_P``: ``num_rel_ret / num_ret``, the whole retrieved list read as a set.
    (An evaluated query retrieved at least one document, so the ratio is always defined.)"""
    return data.per_query(_ratio(np.bincount(data.hit_code, minlength=data.n_codes).astype(np.float64), data.run_count))


def set_recall(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``set_recall``: ``num_rel_ret / num_rel``; 0 when the query has no relevant document."""
    return data.per_query(_ratio(np.bincount(data.hit_code, minlength=data.n_codes).astype(np.float64), data.num_rel_by_code))


def set_f1(data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """trec_eval ``set_F`` (beta = 1): ``2 P R / (P + R)`` with P = ``set_P`` and R = ``set_recall``;
    0 when nothing relevant was retrieved (P = R = 0) or the query has no relevant document."""
    _, p = set_precision(data)
    _, r = set_recall(data)
    return data.query_ids, _ratio(2.0 * p * r, p + r)


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
    items = as_ids(catalog, "catalog")
    if len(items) == 0:
        raise InvalidInput("catalog", "is empty")
    rank = np.arange(data.run_ranked.size) - np.repeat(np.cumsum(data.run_count) - data.run_count, data.run_count)
    shown_rows = data.run_ranked[rank < k]
    docs = data.run_docs
    if docs.values is not None and items.values is not None:
        distinct = np.unique(items.values)
        return float(np.isin(distinct, docs.values[shown_rows]).sum() / distinct.size)
    distinct = pc.unique(items.as_strings().string_column())
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
_per_query_metric("ndcg_uncut", ndcg_uncut)
_per_query_metric("map_at_k", map_at_k, _k(10))
_per_query_metric("bpref", bpref)
_per_query_metric("set_precision", set_precision)
_per_query_metric("set_recall", set_recall)
_per_query_metric("set_f1", set_f1)


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
