"""Benchmark: run + qrels Parquet tables -> NDCG@10, MAP, MRR, P@10, Recall@100 means.

Not a test. Builds ``--queries`` queries x ``--candidates`` candidates (default 100000 x 100 = 10M run rows)
as Parquet tables, reads them back into pandas DataFrames, and times, from those DataFrames to the five
means:

* ours: ``eval_platform.metrics.ranking.prepare_ranking`` + the five per-query functions;
* pytrec_eval (the reference) including building its input dicts from the DataFrames;
* pytrec_eval's ``evaluate()`` call alone (dicts and evaluator already built);
* ranx including its conversion (``Qrels.from_df`` / ``Run.from_df``), when it imports.

Each is run ``--repeat`` times (default 3) and the best time is kept; ranx's numba functions are compiled
on a small input first. Before timing, a few GB are touched once so that the virtual machine's
first-touch cost of fresh memory does not land on whichever approach runs first.
Our means are checked against pytrec_eval's to 1e-9.

The tables look like a candidate-generation output: the run is grouped by query (queries in id order of
creation, candidates in random order within a query, float32-valued scores); the qrels judge ~20% of each
query's candidates plus a few relevant documents the run missed, with graded relevance 0-3; 1% of the
run's queries have no judgments and 1% of the judged queries were not run. Ids are TREC-like strings.

    python bench/bench_ranking.py                 # full size (needs ~10 GB RAM and a few minutes)
    python bench/bench_ranking.py --queries 2000  # quick check
    python bench/bench_ranking.py --one-thread    # ours without its second thread (a busy machine)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from eval_platform.metrics import ranking, ranking_prepare

MEASURES = {  # our name -> (pytrec_eval measure, ranx metric)
    "NDCG@10": ("ndcg_cut_10", "ndcg@10"),
    "MAP": ("map", "map"),
    "MRR": ("recip_rank", "mrr"),
    "P@10": ("P_10", "precision@10"),
    "Recall@100": ("recall_100", "recall@100"),
}


def build_tables(queries: int, candidates: int, seed: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    universe = 2_000_003
    q = np.repeat(np.arange(queries), candidates)
    base = rng.integers(0, universe, queries)[:, None]
    step = rng.integers(1, universe // candidates, queries)[:, None]
    docs = ((base + np.arange(candidates)[None, :] * step) % universe).ravel()  # distinct within a query
    score = rng.random(q.size).astype(np.float32).astype(np.float64)
    run = pa.table({
        "query_id": pa.array(np.char.add("q", q.astype(str)), pa.large_string()),
        "doc_id": pa.array(np.char.add("d", docs.astype(str)), pa.large_string()),
        "score": score,
    })
    judged = rng.random(q.size) < 0.2
    extra_q = np.repeat(np.arange(queries), 3)  # relevant documents the run did not retrieve
    extra_d = rng.integers(universe, 2 * universe, extra_q.size)
    qrels_q = np.concatenate([q[judged], extra_q])
    qrels_d = np.concatenate([docs[judged], extra_d])
    grade = rng.choice(4, size=qrels_q.size, p=[0.5, 0.25, 0.15, 0.10])
    grade[judged.sum():] = rng.integers(1, 4, extra_q.size)
    order = np.argsort(qrels_q, kind="stable")
    qrels_q, qrels_d, grade = qrels_q[order], qrels_d[order], grade[order]
    unjudged = rng.random(queries) < 0.01
    keep = ~unjudged[qrels_q]
    qrels_q, qrels_d, grade = qrels_q[keep], qrels_d[keep], grade[keep]
    not_run = np.arange(queries, queries + max(1, queries // 100))
    qrels_q = np.concatenate([qrels_q, np.repeat(not_run, 5)])
    qrels_d = np.concatenate([qrels_d, rng.integers(0, universe, not_run.size * 5)])
    grade = np.concatenate([grade, rng.integers(0, 4, not_run.size * 5)])
    qrels = pa.table({
        "query_id": pa.array(np.char.add("q", qrels_q.astype(str)), pa.large_string()),
        "doc_id": pa.array(np.char.add("d", qrels_d.astype(str)), pa.large_string()),
        "relevance": grade.astype(np.int64),
    })
    return run, qrels


def warm_memory(gigabytes: int) -> None:
    blocks = []
    for _ in range(gigabytes):
        block = np.empty(1 << 27, dtype=np.int64)
        block.fill(1)
        blocks.append(block)
    del blocks


def ours(run: pd.DataFrame, qrels: pd.DataFrame) -> dict[str, float]:
    data = ranking.prepare_ranking(
        run["query_id"], run["doc_id"], run["score"].to_numpy(), qrels["query_id"], qrels["doc_id"], qrels["relevance"].to_numpy()
    )
    return {
        "NDCG@10": ranking.mean_over_queries(ranking.ndcg_at_k(data, 10)),
        "MAP": ranking.mean_over_queries(ranking.average_precision(data)),
        "MRR": ranking.mean_over_queries(ranking.reciprocal_rank(data)),
        "P@10": ranking.mean_over_queries(ranking.precision_at_k(data, 10)),
        "Recall@100": ranking.mean_over_queries(ranking.recall_at_k(data, 100)),
    }


def pytrec_dicts(run: pd.DataFrame, qrels: pd.DataFrame) -> tuple[dict, dict]:
    run_dict: dict = defaultdict(dict)
    for q, d, s in zip(run["query_id"].tolist(), run["doc_id"].tolist(), run["score"].tolist(), strict=True):
        run_dict[q][d] = s
    qrels_dict: dict = defaultdict(dict)
    for q, d, r in zip(qrels["query_id"].tolist(), qrels["doc_id"].tolist(), qrels["relevance"].tolist(), strict=True):
        qrels_dict[q][d] = r
    return run_dict, qrels_dict


def pytrec_means(per_query: dict) -> dict[str, float]:
    return {name: float(np.mean([v[measure] for v in per_query.values()])) for name, (measure, _) in MEASURES.items()}


def pytrec_full(run: pd.DataFrame, qrels: pd.DataFrame) -> dict[str, float]:
    import pytrec_eval

    run_dict, qrels_dict = pytrec_dicts(run, qrels)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels_dict, {m for m, _ in MEASURES.values()})
    return pytrec_means(evaluator.evaluate(run_dict))


def ranx_full(run: pd.DataFrame, qrels: pd.DataFrame) -> dict[str, float]:
    from ranx import Qrels, Run, evaluate

    as_object = {"query_id": object, "doc_id": object}  # ranx.from_df insists on object-dtype id columns
    ranx_qrels = Qrels.from_df(qrels.astype(as_object), q_id_col="query_id", doc_id_col="doc_id", score_col="relevance")
    ranx_run = Run.from_df(run.astype(as_object), q_id_col="query_id", doc_id_col="doc_id", score_col="score")
    scores = evaluate(ranx_qrels, ranx_run, [r for _, r in MEASURES.values()], make_comparable=True)
    return {name: float(scores[r]) for name, (_, r) in MEASURES.items()}


def best_of(repeat: int, fn, *args):
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per approach; the best time is kept")
    parser.add_argument("--warm-gb", type=int, default=6, help="GB of memory to touch once before timing")
    parser.add_argument("--skip-ranx", action="store_true")
    parser.add_argument("--one-thread", action="store_true", help="ours on one thread (ranking_prepare.PARALLEL = False)")
    args = parser.parse_args(argv)
    if args.one_thread:
        ranking_prepare.PARALLEL = False

    with tempfile.TemporaryDirectory() as directory:
        run_path, qrels_path = os.path.join(directory, "run.parquet"), os.path.join(directory, "qrels.parquet")
        start = time.perf_counter()
        run_table, qrels_table = build_tables(args.queries, args.candidates, args.seed)
        pq.write_table(run_table, run_path)
        pq.write_table(qrels_table, qrels_path)
        del run_table, qrels_table
        print(f"built {args.queries} queries x {args.candidates} candidates in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        run = pd.read_parquet(run_path)
        qrels = pd.read_parquet(qrels_path)
        print(f"read Parquet into pandas: {time.perf_counter() - start:.2f} s (not counted below); "
              f"run {len(run):,} rows, qrels {len(qrels):,} rows")
    warm_memory(args.warm_gb)
    load_before = os.getloadavg()

    t_ours, ours_means = best_of(args.repeat, ours, run, qrels)

    import pytrec_eval

    t_pytrec, pytrec_result = best_of(args.repeat, pytrec_full, run, qrels)
    run_dict, qrels_dict = pytrec_dicts(run, qrels)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels_dict, {m for m, _ in MEASURES.values()})
    t_evaluate, per_query = best_of(args.repeat, evaluator.evaluate, run_dict)
    reference = pytrec_means(per_query)
    del run_dict, qrels_dict, evaluator, per_query
    gc.collect()

    t_ranx = ranx_means = None
    if not args.skip_ranx:
        try:
            import ranx  # noqa: F401
        except Exception as error:  # noqa: BLE001 - report and continue
            print(f"ranx does not import ({type(error).__name__}: {error}); skipping it")
        else:
            small_run, small_qrels = run.iloc[:1000], qrels[qrels["query_id"].isin(set(run["query_id"].iloc[:1000]))]
            ranx_full(small_run, small_qrels)  # compile ranx's numba functions outside the timing
            t_ranx, ranx_means = best_of(args.repeat, ranx_full, run, qrels)

    print()
    print(f"{'measure':<12}{'ours':>22}{'pytrec_eval':>22}{'|diff|':>12}")
    worst = 0.0
    for name in MEASURES:
        diff = abs(ours_means[name] - reference[name])
        worst = max(worst, diff, abs(pytrec_result[name] - reference[name]))
        print(f"{name:<12}{ours_means[name]:>22.15f}{reference[name]:>22.15f}{diff:>12.1e}")
    equal = worst <= 1e-9
    print(f"ours == pytrec_eval to 1e-9: {'yes' if equal else 'NO'} (max |diff| {worst:.1e})")
    if ranx_means is not None:
        print("ranx means (its own conventions): " + ", ".join(f"{k} {v:.6f}" for k, v in ranx_means.items()))

    print()
    # the machine may be shared: the ratios compare timings of one run, and the load says how busy it was
    load_after = os.getloadavg()
    print(f"conditions: {os.cpu_count()} cores; 1-minute load average {load_before[0]:.2f} before timing, "
          f"{load_after[0]:.2f} after; ranking_prepare.PARALLEL = {ranking_prepare.PARALLEL}")
    print(f"ours, from the DataFrames to the five means: {t_ours:.2f} s (best of {args.repeat})")
    rows = [  # (reference, its time, how many times faster ours must be, strictly)
        ("pytrec_eval incl. building its dicts", t_pytrec, 10.0, False),
        ("pytrec_eval evaluate() alone", t_evaluate, 1.0, False),
    ]
    if t_ranx is not None:
        rows.append(("ranx incl. its conversion", t_ranx, 1.0, True))
    ok = equal
    for label, reference_time, target, strict in rows:
        ratio = reference_time / t_ours
        met = ratio > target if strict else ratio >= target
        ok &= met
        wanted = f"{'>' if strict else '>='} {target:g}x"
        print(f"  {label:<38} {reference_time:8.2f} s   ours is {ratio:6.1f}x faster (target {wanted}: {'met' if met else 'NOT met'})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
