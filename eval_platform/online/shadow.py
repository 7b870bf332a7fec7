"""Shadow mode: a candidate's logged outputs against production's on the same requests.

The statistics (:func:`label_agreement`, the rank correlations, :func:`overlap_at_k`,
:func:`ranking_agreement`) work on aligned plain sequences; :func:`shadow_comparison` aligns two logs keyed by
request id, and :func:`analyze_shadow` reads a shadow log (one row per request and source) into the shadow
metrics a suite's online requirements judge (``shadow_agreement``, ``shadow_spearman``, ``shadow_kendall``,
``shadow_overlap_at_k``, ``shadow_coverage``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.records import json_safe
from eval_platform.online.stats import Record, checked_count, proportion_ci, python_scalar

SHADOW_SOURCES = ("candidate", "production")
SHADOW_KINDS = ("labels", "rankings")


def _kind(kind: str) -> str:
    if kind not in SHADOW_KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(SHADOW_KINDS)}; got {kind!r}")
    return kind


# ------------------------------------------------------------------------------------------------------
# Statistics over aligned requests


@dataclass(frozen=True)
class AgreementResult(Record):
    """Share of requests on which the candidate's label equals production's, with a Wilson interval."""

    n: int
    agreements: int
    rate: float
    ci_low: float
    ci_high: float


def label_agreement(candidate: Sequence, production: Sequence, confidence: float = 0.95) -> AgreementResult:
    """``agreement = #{i: candidate_i == production_i} / n`` over aligned requests (same order).

    Labels are compared with ``==`` (strings, integers, booleans). A missing label (``None`` or ``nan``) is
    rejected naming the row: whether a missing output counts as disagreement is the caller's decision,
    made when aligning requests. Empty input is rejected.
    """
    c, p = list(candidate), list(production)
    if len(c) != len(p):
        raise InvalidInput("production", f"has {len(p)} labels for {len(c)} candidate labels")
    if not c:
        raise InvalidInput("candidate", "is empty: no requests to compare")
    for name, labels in (("candidate", c), ("production", p)):
        for row, label in enumerate(labels):
            if label is None or (isinstance(label, float | np.floating) and math.isnan(label)):
                raise InvalidInput(name, f"label missing at row {row}")
    agreements = sum(1 for a, b in zip(c, p, strict=True) if a == b)
    interval = proportion_ci(agreements, len(c), confidence)
    return AgreementResult(len(c), agreements, agreements / len(c), interval.ci_low, interval.ci_high)


def _ranking(items, field: str) -> list:
    items = list(items)
    seen: set = set()
    for position, item in enumerate(items):
        if item is None or (isinstance(item, float) and math.isnan(item)):
            raise InvalidInput(field, f"item missing at position {position}")
        if item in seen:
            raise InvalidInput(field, f"item {python_scalar(item)!r} appears twice (position {position})")
        seen.add(item)
    return items


def _common_positions(candidate, production) -> tuple[np.ndarray, np.ndarray]:
    """Positions, in each list, of the items both rankings contain (in the candidate's order)."""
    c = _ranking(candidate, "candidate")
    p = _ranking(production, "production")
    where = {item: position for position, item in enumerate(p)}
    pairs = [(i, where[item]) for i, item in enumerate(c) if item in where]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.asarray(pairs, dtype=np.int64)
    return a[:, 0], a[:, 1]


def spearman_rank_correlation(candidate: Sequence, production: Sequence) -> float:
    """Spearman's rho between two rankings (item ids, best first) over the items both contain.

    The common items are re-ranked 1..m in each list (positions are distinct, so there are no ties) and
    ``rho = 1 - 6 sum d_i^2 / (m (m^2 - 1))``: ``scipy.stats.spearmanr`` of their positions. Items in only
    one list do not enter (:func:`overlap_at_k` measures membership); ``nan`` when fewer than two items are
    common. Duplicate or missing items are rejected.
    """
    pc, pp = _common_positions(candidate, production)
    m = pc.size
    if m < 2:
        return float("nan")
    # pc is increasing (candidate order), so its ranks are 0..m-1; rank pp among the common items
    ranks = np.empty(m, np.int64)
    ranks[np.argsort(pp)] = np.arange(m)
    d = np.arange(m) - ranks
    return float(1 - 6 * np.dot(d, d) / (m * (m * m - 1)))


def kendall_rank_correlation(candidate: Sequence, production: Sequence) -> float:
    """Kendall's tau between two rankings over the items both contain: ``(concordant - discordant) /
    (m (m - 1) / 2)`` over pairs of common items (no ties, so tau-a = tau-b = ``scipy.stats.kendalltau``).
    ``nan`` when fewer than two items are common."""
    pc, pp = _common_positions(candidate, production)
    m = pc.size
    if m < 2:
        return float("nan")
    upper = np.triu_indices(m, 1)
    sign = np.sign(pp[:, None] - pp[None, :])[upper]  # pc increases, so its pair signs are all -1 (i < j)
    return float(-np.sum(sign) / (m * (m - 1) / 2))


def overlap_at_k(candidate: Sequence, production: Sequence, k: int) -> float:
    """``|top_k(candidate) & top_k(production)| / max(|top_k(candidate)|, |top_k(production)|)``.

    With both lists at least ``k`` long this is the familiar ``|intersection| / k``; two identical lists
    shorter than ``k`` overlap fully (1.0) rather than being penalised for length. ``nan`` when both lists
    are empty. ``k`` is an integer ``>= 1``.
    """
    k = checked_count(k, "k", 1)
    c = _ranking(candidate, "candidate")[:k]
    p = _ranking(production, "production")[:k]
    size = max(len(c), len(p))
    if size == 0:
        return float("nan")
    return len(set(c) & set(p)) / size


def ranking_agreement(candidate_rankings: Sequence[Sequence], production_rankings: Sequence[Sequence],
                      k: int = 10) -> dict[str, Any]:
    """Mean Spearman rho, Kendall tau and overlap@k over aligned requests (one ranking per request each).

    A request whose correlation is undefined (fewer than two common items) is left out of that mean and
    counted in ``n_undefined_correlation``; means over no request are ``nan``.
    """
    c, p = list(candidate_rankings), list(production_rankings)
    if len(c) != len(p):
        raise InvalidInput("production_rankings", f"has {len(p)} requests for {len(c)} candidate requests")
    if not c:
        raise InvalidInput("candidate_rankings", "is empty: no requests to compare")
    k = checked_count(k, "k", 1)
    rho = np.array([spearman_rank_correlation(a, b) for a, b in zip(c, p, strict=True)], dtype=np.float64)
    tau = np.array([kendall_rank_correlation(a, b) for a, b in zip(c, p, strict=True)], dtype=np.float64)
    overlap = np.array([overlap_at_k(a, b, k) for a, b in zip(c, p, strict=True)], dtype=np.float64)

    def mean(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else float("nan")

    return {"n_requests": len(c), "k": k, "spearman": mean(rho), "kendall": mean(tau),
            f"overlap_at_{k}": mean(overlap), "overlap_at_k": mean(overlap),
            "n_undefined_correlation": int(np.count_nonzero(~np.isfinite(rho)))}


# ------------------------------------------------------------------------------------------------------
# Logs keyed by request id


def shadow_comparison(candidate: Mapping[Any, Any], production: Mapping[Any, Any], kind: str = "labels",
                      k: int = 10, confidence: float = 0.95) -> dict[str, Any]:
    """Compare a shadow candidate's logged outputs with production's, keyed by request id.

    ``kind="labels"``: outputs are labels, compared by :func:`~eval_platform.online.label_agreement`
    (metric ``shadow_agreement``). ``kind="rankings"``: outputs are ranked item lists (best first), compared
    by Spearman, Kendall and overlap@k (:func:`~eval_platform.online.ranking_agreement`; metrics
    ``shadow_spearman``, ``shadow_kendall``, ``shadow_overlap_at_k``). Only requests both sides logged are
    compared; the others are counted (``only_candidate``, ``only_production``) and ``coverage`` is the share
    of production's requests the candidate answered, so a candidate that silently drops requests shows.
    A request whose output is ``None`` on either side counts as not logged. No common request gives ``nan``
    metrics.
    """
    _kind(kind)
    if not isinstance(candidate, Mapping) or not isinstance(production, Mapping):
        raise InvalidInput("candidate/production", "must be mappings from request id to output")
    cand = {r: v for r, v in candidate.items() if v is not None}
    prod = {r: v for r, v in production.items() if v is not None}
    common = [r for r in prod if r in cand]
    out: dict[str, Any] = {"kind": kind, "n_candidate": len(cand), "n_production": len(prod), "n_common": len(common),
                           "only_candidate": len(set(cand) - set(prod)), "only_production": len(set(prod) - set(cand)),
                           "coverage": len(common) / len(prod) if prod else float("nan")}
    if kind == "labels":
        if common:
            agreement = label_agreement([cand[r] for r in common], [prod[r] for r in common], confidence)
            out["metrics"] = {"shadow_agreement": agreement.rate}
            out["agreement"] = agreement.as_dict()
        else:
            out["metrics"] = {"shadow_agreement": float("nan")}
        return out
    if common:
        rankings = ranking_agreement([cand[r] for r in common], [prod[r] for r in common], k)
        out["metrics"] = {"shadow_spearman": rankings["spearman"], "shadow_kendall": rankings["kendall"],
                          "shadow_overlap_at_k": rankings["overlap_at_k"]}
        out["rankings"] = rankings
    else:
        out["metrics"] = {"shadow_spearman": float("nan"), "shadow_kendall": float("nan"), "shadow_overlap_at_k": float("nan")}
    out["k"] = k
    return out


def analyze_shadow(log: pd.DataFrame, kind: str = "labels", k: int = 10, confidence: float = 0.95) -> dict[str, Any]:
    """:func:`shadow_comparison` of a shadow log: one row per (``request_id``, ``source``) with ``source``
    ``candidate`` or ``production`` and the logged ``output`` (a label, or a list of item ids best first).

    The result has ``metrics`` (the shadow metrics plus ``shadow_coverage``, the share of production's
    requests the candidate answered), the comparison's counts, and ``trustworthy``: false, with the reason,
    when the two sides have no request in common. Raises ``InvalidInput`` for a missing column, an unknown
    source, or a request logged twice by one source.
    """
    _kind(kind)
    for column in ("request_id", "source", "output"):
        if column not in log.columns:
            raise InvalidInput(column, "column missing from the shadow log")
    unknown = sorted(set(log["source"].dropna().astype(str)) - set(SHADOW_SOURCES))
    if unknown or log["source"].isna().any():
        raise InvalidInput("source", f"must be candidate or production; found {unknown or ['a missing value']}")
    duplicated = log.duplicated(["request_id", "source"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InvalidInput("request_id", f"row {row}: request {log['request_id'].iloc[row]!r} is logged twice by one source")

    def outputs(source: str) -> dict:
        side = log[log["source"] == source]
        values = side["output"].tolist()
        if kind == "rankings":
            values = [None if v is None else list(v) for v in values]
        return dict(zip(side["request_id"].tolist(), values, strict=True))

    comparison = shadow_comparison(outputs("candidate"), outputs("production"), kind, k, confidence)
    comparison["metrics"]["shadow_coverage"] = comparison["coverage"]
    reasons = [] if comparison["n_common"] else ["the candidate and production logged no request in common"]
    return json_safe({**comparison, "trustworthy": not reasons, "untrustworthy_reasons": reasons,
                      "config": {"kind": kind, "k": k, "confidence": confidence}})
