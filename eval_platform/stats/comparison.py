"""Comparison statistics: candidate minus baseline on the same examples, with paired bootstrap intervals.

Both runs are evaluated on the same dataset version, so each resample draws one set of example indices
(or whole queries, for ranking metrics) and computes the metric for both models on it; the interval is
the percentile interval of the resampled deltas. The seed and the number of resamples are part of the
suite, recorded with every comparison, so a comparison recomputes to the same numbers.

Edge cases: a resample on which a metric is undefined for either model (for example no positive drawn
for ROC-AUC) is left out and counted in ``undefined_resamples``; when fewer than half of the resamples
are defined the interval is ``nan`` and the gate cannot use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.base import Columns, MetricDefinition
from eval_platform.stats.drift import jensen_shannon_distance, ks_two_sample, population_stability_index


def _take(columns: Columns, index: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[index] for name, values in columns.items()}


_RUN_COLUMNS = ("run_query", "run_doc", "run_score", "latency")
_QRELS_COLUMNS = ("qrels_query", "qrels_doc", "qrels_relevance")


def _rows_by_query(columns: Columns, queries: np.ndarray) -> dict[str, list[np.ndarray]]:
    """For the run and the qrels arrays: the row indices of each query, in ``queries`` order."""
    out = {}
    for prefix, key in (("run", "run_query"), ("qrels", "qrels_query")):
        order = np.argsort(columns[key], kind="stable")
        sorted_keys = columns[key][order]
        starts = np.searchsorted(sorted_keys, queries, side="left")
        ends = np.searchsorted(sorted_keys, queries, side="right")
        out[prefix] = [order[a:b] for a, b in zip(starts, ends, strict=True)]
    return out


def _take_queries(columns: Columns, rows: dict[str, list[np.ndarray]], chosen: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of a query resample; a query drawn twice appears twice under a new query id."""
    out = {}
    for prefix, names in (("run", _RUN_COLUMNS), ("qrels", _QRELS_COLUMNS)):
        parts = [rows[prefix][q] for q in chosen]
        index = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        copy = np.repeat(np.arange(len(chosen)), [len(p) for p in parts])
        for name in names:
            if name in columns:
                out[name] = columns[name][index]
        out[f"{prefix}_query"] = copy  # draws of the same query must not merge
    for name, value in columns.items():
        out.setdefault(name, value)  # whole-run inputs such as the catalog
    return out


def paired_bootstrap(
    definition: MetricDefinition,
    params: Mapping,
    candidate: Columns,
    baseline: Columns,
    resamples: int,
    confidence: float,
    seed: int,
) -> dict:
    """Delta and percentile interval of ``metric(candidate) - metric(baseline)`` over paired resamples."""
    cand_value = definition.compute(candidate, **params)
    base_value = definition.compute(baseline, **params)
    rng = np.random.default_rng(seed)
    if definition.per_unit is not None:
        cand_units, cand_per = definition.per_unit(candidate, **params)
        base_units, base_per = definition.per_unit(baseline, **params)
        if not np.array_equal(cand_units, base_units):
            raise InvalidInput("baseline", "candidate and baseline were evaluated on different queries")
        n = len(cand_per)
        index = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=np.int64)
        deltas = (cand_per[index] - base_per[index]).mean(axis=1) if n else np.full(resamples, np.nan)
    elif definition.unit == "query":
        # a whole-run ranking metric (coverage, latency percentiles): resample queries, keep their rows
        queries = np.unique(np.concatenate([candidate["run_query"], baseline["run_query"], candidate["qrels_query"]]))
        n = len(queries)
        deltas = np.empty(resamples)
        cand_rows, base_rows = _rows_by_query(candidate, queries), _rows_by_query(baseline, queries)
        for i in range(resamples):
            chosen = rng.integers(0, n, size=n)
            deltas[i] = (definition.compute(_take_queries(candidate, cand_rows, chosen), **params)
                         - definition.compute(_take_queries(baseline, base_rows, chosen), **params))
    else:
        n = len(next(iter(candidate.values())))
        deltas = np.empty(resamples)
        for i in range(resamples):
            index = rng.integers(0, n, size=n)
            deltas[i] = definition.compute(_take(candidate, index), **params) - definition.compute(_take(baseline, index), **params)
    return interval_result(cand_value, base_value, deltas, resamples, confidence, seed, definition.unit, n)


def interval_result(cand_value: float, base_value: float, deltas: np.ndarray, resamples: int, confidence: float,
                    seed: int, unit: str, n: int) -> dict:
    """The comparison record of one metric from its resampled deltas: percentile interval, with the
    undefined resamples left out and counted (fewer than half defined: no interval)."""
    defined = deltas[np.isfinite(deltas)]
    alpha = (1 - confidence) / 2
    if len(defined) >= resamples / 2:
        low, high = np.quantile(defined, [alpha, 1 - alpha])
    else:
        low = high = float("nan")
    return {
        "candidate": float(cand_value),
        "baseline": float(base_value),
        "delta": float(cand_value - base_value) if math.isfinite(cand_value) and math.isfinite(base_value) else float("nan"),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "resamples": resamples,
        "undefined_resamples": int(resamples - len(defined)),
        "seed": seed,
        "unit": unit,
        "n_units": int(n),
    }


def point_delta(definition: MetricDefinition, params: Mapping, candidate: Columns, baseline: Columns) -> dict:
    """Candidate minus baseline without resampling, for a metric the suite compares by its point delta only
    (``bootstrap: false``): the record of :func:`paired_bootstrap` with no interval (``ci_low``/``ci_high``
    NaN, ``resamples`` 0), so ``min``, ``max``, ``min_delta`` and ``min_relative_delta`` rules decide on it
    and a non-inferiority rule, which needs the interval, is refused when the suite is registered."""
    cand_value = float(definition.compute(candidate, **params))
    base_value = float(definition.compute(baseline, **params))
    delta = cand_value - base_value if math.isfinite(cand_value) and math.isfinite(base_value) else float("nan")
    n = len(next(iter(candidate.values()))) if candidate else 0
    return {"candidate": cand_value, "baseline": base_value, "delta": delta, "ci_low": float("nan"), "ci_high": float("nan"),
            "confidence": None, "resamples": 0, "undefined_resamples": 0, "seed": None, "unit": definition.unit,
            "n_units": int(n), "method": "point delta (bootstrap: false)"}


def mcnemar_exact(candidate_correct: np.ndarray, baseline_correct: np.ndarray) -> dict:
    """Exact (binomial) McNemar test on paired correctness: two-sided p-value over the discordant pairs."""
    from scipy.stats import binomtest

    candidate_correct = np.asarray(candidate_correct, dtype=bool)
    baseline_correct = np.asarray(baseline_correct, dtype=bool)
    only_candidate = int(np.count_nonzero(candidate_correct & ~baseline_correct))
    only_baseline = int(np.count_nonzero(~candidate_correct & baseline_correct))
    discordant = only_candidate + only_baseline
    p_value = 1.0 if discordant == 0 else float(binomtest(only_candidate, discordant, 0.5).pvalue)
    return {"only_candidate_correct": only_candidate, "only_baseline_correct": only_baseline, "p_value": p_value}


def prediction_drift(candidate: np.ndarray, baseline: np.ndarray, categorical: bool = False, column: str = "score") -> dict:
    """How far the candidate's predictions on the dataset moved from the baseline's on the same examples:
    PSI (on the baseline's quantile bins, or per class), base-2 Jensen-Shannon distance and, for numeric
    scores, the two-sample KS statistic and p-value (eval_platform.stats.drift). Rows where either model has
    no prediction are left out and counted in ``n_missing``; with none left every measure is None."""
    candidate, baseline = np.asarray(candidate), np.asarray(baseline)
    if candidate.shape != baseline.shape or candidate.ndim != 1:
        raise InvalidInput("baseline", "candidate and baseline predictions must be one value per example of the same dataset")
    present = ~(_missing(candidate) | _missing(baseline))
    record: dict = {"column": column, "kind": "categorical" if categorical else "numeric", "n_examples": int(present.sum()),
                    "n_missing": int((~present).sum()), "psi": None, "js": None, "ks_statistic": None, "ks_p_value": None}
    if not present.any():
        return record
    cand, base = candidate[present], baseline[present]
    record["psi"] = population_stability_index(base, cand, categorical=categorical).value
    record["js"] = jensen_shannon_distance(base, cand, categorical=categorical).value
    if not categorical:
        ks = ks_two_sample(base, cand)
        record.update(ks_statistic=ks.statistic, ks_p_value=ks.p_value)
    return record


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return ~np.isfinite(values)
    return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
