"""Benchmark of the paired bootstrap of the whole binary suite (a script, not a test).

    .venv/bin/python bench/bench_bootstrap.py                      # 1M rows, 1000 resamples
    .venv/bin/python bench/bench_bootstrap.py --rows 200000 --ref-resamples 50

On N rows of seeded data (two informative probability models of the same labels, the baseline the
noisier), for the twelve metrics of the binary suite at their catalog defaults (ROC-AUC, PR-AUC,
precision/recall/F1/accuracy/FPR at 0.5, recall at precision 0.95 and its threshold, log loss, Brier,
ECE with 10 bins):

* ours: ``bootstrap.paired_bootstrap_binary`` with ``--resamples`` resamples, timed once end to end
  (validation, point values, sorts, resampling, intervals), wall clock and CPU time (target: under 10 s
  at 1M rows x 1000 resamples);
* the reference: ``comparison.paired_bootstrap`` called metric by metric, as the runner does, with
  ``--ref-resamples`` resamples (its cost is linear in the resamples, so it is extrapolated to
  ``--resamples``), printed with its per-metric times and as a ratio to ours;
* peak memory: ``tracemalloc`` peak (numpy's buffers included) of one call of ours with 64 resamples
  (the working set is per batch and does not grow with the resamples), and the process's ``ru_maxrss``.

It also checks that the point values (candidate, baseline, delta) of both are identical and prints how
far apart the interval ends are, in units of the interval's width.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval_platform.metrics.catalog import get_metric
from eval_platform.metrics.classification import BINARY_SUITE_KEYS
from eval_platform.stats import bootstrap
from eval_platform.stats.comparison import paired_bootstrap


def make_data(rows: int, seed: int, prevalence: float, decimals: int | None):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < prevalence).astype(np.int64)
    noise = rng.normal(size=(2, rows))
    cand = 1 / (1 + np.exp(-(2.0 * y - 1.0 + noise[0] - 2.0)))  # AUC ~ 0.92
    base = 1 / (1 + np.exp(-(1.6 * y - 0.8 + noise[1] - 2.0)))  # AUC ~ 0.87
    if decimals is not None:
        cand, base = np.round(cand, decimals), np.round(base, decimals)
    return y, cand, base


def mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--ref-resamples", type=int, default=20, help="resamples of the reference, per metric")
    parser.add_argument("--ref-rows", type=int, default=None, help="rows for the reference (default --rows)")
    parser.add_argument("--prevalence", type=float, default=0.05)
    parser.add_argument("--decimals", type=int, default=None, help="round scores (ties) to this many decimals")
    parser.add_argument("--workers", type=int, default=None, help="threads of ours (default: CPU count, at most 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = args.rows
    y, cand, base = make_data(rows, args.seed, args.prevalence, args.decimals)
    metrics = [(name, name, {}) for name in BINARY_SUITE_KEYS]
    workers = args.workers or min(4, os.cpu_count() or 1)
    print(f"paired bootstrap benchmark: {rows:,} rows, prevalence {args.prevalence}, {len(metrics)} metrics, "
          f"{args.resamples} resamples, confidence 0.95; ours on {workers} thread(s), {os.cpu_count()} CPUs")

    wall, cpu = time.perf_counter(), time.process_time()
    ours = bootstrap.paired_bootstrap_binary(metrics, y, cand, base, args.resamples, 0.95, args.seed, workers=workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if rows < 1_000_000 or args.resamples < 1000:
        target = "n/a at this size"
    else:
        target = "met" if wall < 10 else "MISSED"
    print(f"\nours: {wall:.2f} s wall, {cpu:.2f} s CPU  (target under 10 s at 1M x 1000: {target})")
    rss_after_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    ref_rows = args.ref_rows or rows
    if ref_rows != rows:
        ry, rc, rb = make_data(ref_rows, args.seed, args.prevalence, args.decimals)
        wall_small = time.perf_counter()
        ours_small = bootstrap.paired_bootstrap_binary(metrics, ry, rc, rb, args.resamples, 0.95, args.seed, workers=workers)
        wall_small = time.perf_counter() - wall_small
        print(f"ours on the reference's {ref_rows:,} rows: {wall_small:.2f} s")
    else:
        ry, rc, rb, ours_small, wall_small = y, cand, base, ours, wall
    print(f"\nreference comparison.paired_bootstrap, metric by metric, {ref_rows:,} rows, {args.ref_resamples} resamples each:")
    total = 0.0
    worst_point, worst_end = 0.0, 0.0
    for suite_name, name, params in metrics:
        definition = get_metric(f"{name}@1")
        started = time.perf_counter()
        ref = paired_bootstrap(definition, definition.resolve_params(params), {"label": ry, "score": rc},
                               {"label": ry, "score": rb}, args.ref_resamples, 0.95, args.seed)
        seconds = time.perf_counter() - started
        total += seconds
        got = ours_small[suite_name]
        for key in ("candidate", "baseline", "delta"):
            a, b = got[key], ref[key]
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                worst_point = max(worst_point, abs(a - b) if math.isfinite(a - b) else math.inf)
        width = got["ci_high"] - got["ci_low"]
        if width > 0 and args.ref_resamples >= 200:
            worst_end = max(worst_end, abs(got["ci_low"] - ref["ci_low"]) / width, abs(got["ci_high"] - ref["ci_high"]) / width)
        print(f"  {suite_name:28s} {seconds:8.2f} s  -> {seconds * args.resamples / args.ref_resamples:9.1f} s for {args.resamples}")
    extrapolated = total * args.resamples / args.ref_resamples
    print(f"  {'all twelve':28s} {total:8.2f} s  -> {extrapolated:9.1f} s for {args.resamples} resamples (extrapolated)")
    print(f"\nspeed-up: ours {wall_small:.2f} s vs reference {extrapolated:.1f} s (extrapolated) on {ref_rows:,} rows: "
          f"{extrapolated / wall_small:,.0f}x faster")
    print(f"point values (candidate, baseline, delta) identical to the reference: {'yes' if worst_point == 0 else f'NO (max diff {worst_point})'}")
    if args.ref_resamples >= 200:
        print(f"largest difference of an interval end: {worst_end:.2f} x the interval's width (Monte-Carlo error)")

    tracemalloc.start()
    bootstrap.paired_bootstrap_binary(metrics, y, cand, base, 64, 0.95, args.seed, workers=workers)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\npeak memory of ours (tracemalloc, 64 resamples, {rows:,} rows): {mb(peak)}; "
          f"process ru_maxrss after ours: {mb(rss_after_ours)} (inputs included)")


if __name__ == "__main__":
    main()
