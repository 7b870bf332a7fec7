"""Benchmark of the binary suite's one-sort fast path (a script, not a test).

    .venv/bin/python bench/bench_classification.py                 # 10M rows
    .venv/bin/python bench/bench_classification.py --rows 1000000 --sklearn-rows 1000000

Times, on N rows of seeded imbalanced data with informative probability scores:

* the floor: one ``numpy.argsort`` of the scores (best of ``--repeat``);
* ``binary_suite`` (ROC-AUC, PR-AUC, P/R/F1/accuracy/FPR at a threshold, recall at precision, log loss,
  Brier, ECE), best of ``--repeat``, as a ratio to the floor (target: at most 3x);
* the same metrics from scikit-learn called one by one, once, on ``--sklearn-rows`` rows (default N;
  pass a smaller number when N is too slow for it: the speed-up is then measured against our suite on
  the same smaller sample, and the report says so). Recall at precision is ``precision_recall_curve``
  plus a scan; ECE is ``calibration_curve`` plus the bin counts (scikit-learn has no ECE).
* peak memory of one ``binary_suite`` call (``tracemalloc``, numpy's buffers included) and the process's
  ``ru_maxrss`` before scikit-learn runs (target under 3 GB).

It also checks that the suite's numbers equal scikit-learn's to 1e-9.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval_platform.metrics.classification import binary_suite

THRESHOLD, MIN_PRECISION, N_BINS = 0.5, 0.95, 10


def make_data(rows: int, seed: int, prevalence: float, decimals: int | None):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < prevalence).astype(np.int64)
    s = np.clip(0.45 * y + 0.55 * rng.random(rows) ** 1.5, 0.0, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def best_of(repeat: int, fn, *args, **kwargs):
    best, result = math.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return best, result


def sklearn_one_by_one(y, s):
    """The suite's metrics from scikit-learn, each call on its own: ``({name: value}, {name: seconds})``."""
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve

    values, seconds = {}, {}

    def timed(name, fn):
        started = time.perf_counter()
        values[name] = fn()
        seconds[name] = time.perf_counter() - started

    def recall_at_precision():
        precision, recall, _ = skm.precision_recall_curve(y, s)
        ok = precision[:-1] >= MIN_PRECISION
        return float(recall[:-1][ok].max()) if ok.any() else 0.0

    def ece():
        prob_true, prob_pred = calibration_curve(y, s, n_bins=N_BINS, strategy="uniform")
        bins = np.searchsorted(np.linspace(0.0, 1.0 + 1e-8, N_BINS + 1)[1:-1], s)  # calibration_curve's binning
        counts = np.bincount(bins, minlength=N_BINS)
        return float(np.sum(counts[counts > 0] * np.abs(prob_true - prob_pred)) / y.size)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timed("roc_auc", lambda: skm.roc_auc_score(y, s))
        timed("average_precision", lambda: skm.average_precision_score(y, s))
        timed("precision", lambda: skm.precision_score(y, (s >= THRESHOLD).astype(np.int64), zero_division=0))
        timed("recall", lambda: skm.recall_score(y, (s >= THRESHOLD).astype(np.int64), zero_division=0))
        timed("f1", lambda: skm.f1_score(y, (s >= THRESHOLD).astype(np.int64), zero_division=0))
        timed("recall_at_precision", recall_at_precision)
        timed("log_loss", lambda: skm.log_loss(y, s, labels=[0, 1]))
        timed("brier_score", lambda: skm.brier_score_loss(y, s))
        timed("expected_calibration_error", ece)
    return values, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sklearn-rows", type=int, default=None, help="rows for the scikit-learn reference (default --rows)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prevalence", type=float, default=0.05)
    parser.add_argument("--decimals", type=int, default=None, help="round scores (ties) to this many decimals")
    args = parser.parse_args(argv)
    rows, sk_rows = args.rows, args.sklearn_rows or args.rows

    y, s = make_data(rows, args.seed, args.prevalence, args.decimals)
    print(f"binary suite benchmark: {rows:,} rows, prevalence {args.prevalence}, "
          f"{'continuous scores' if args.decimals is None else f'scores rounded to {args.decimals} decimals'}, "
          f"best of {args.repeat}")

    floor, _ = best_of(args.repeat, np.argsort, s)
    ours, result = best_of(args.repeat, binary_suite, y, s, THRESHOLD, MIN_PRECISION, N_BINS)

    tracemalloc.start()
    binary_suite(y, s, THRESHOLD, MIN_PRECISION, N_BINS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux

    print(f"  {'numpy.argsort (floor)':34s} {floor:8.3f} s   1.00x floor")
    print(f"  {'binary_suite':34s} {ours:8.3f} s   {ours / floor:5.2f}x floor ({floor:.3f} s)   target <= 3x")
    print(f"  peak memory of one binary_suite call (tracemalloc, beyond the inputs): {peak / 2**30:.2f} GiB")
    print(f"  process ru_maxrss before scikit-learn runs (inputs included):          {maxrss / 2**30:.2f} GiB   target < 3 GB")

    if sk_rows != rows:
        y_ref, s_ref = y[:sk_rows].copy(), s[:sk_rows].copy()
        ours_ref, result_ref = best_of(args.repeat, binary_suite, y_ref, s_ref, THRESHOLD, MIN_PRECISION, N_BINS)
        print(f"  scikit-learn is run on the first {sk_rows:,} rows (scaled down from {rows:,}); "
              f"binary_suite on those rows: {ours_ref:.3f} s")
    else:
        y_ref, s_ref, ours_ref, result_ref = y, s, ours, result
    values, seconds = sklearn_one_by_one(y_ref, s_ref)
    total = sum(seconds.values())
    for name, took in seconds.items():
        print(f"    sklearn {name:26s} {took:8.3f} s")
    print(f"  {'scikit-learn one by one':34s} {total:8.3f} s   "
          f"{total / ours_ref:5.1f}x binary_suite ({ours_ref:.3f} s at {sk_rows:,} rows)   target >= 10x")

    mismatches = [name for name, value in values.items() if not abs(value - result_ref[name]) <= 1e-9]
    print("  values equal to scikit-learn's to 1e-9:" + (" yes" if not mismatches else f" NO for {mismatches}"))
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
