"""Benchmark of dataset registration and evaluation at millions of rows (a script, not a test).

    .venv/bin/python bench/bench_scale_rows.py                    # 10M rows
    .venv/bin/python bench/bench_scale_rows.py --rows 1000000

On N rows of seeded binary-classification data (string ``example_id``, five float features, a 0/1
``label``, a ``segment`` slice column) written to a Parquet file, it times, each step in its own process
so each process's peak RSS (``VmHWM``) is its own:

* the reference: a plain ``pyarrow.parquet.write_table`` + ``read_table`` of the same data (same process
  kind, same run: the ratios below are against it, so a loaded machine moves both);
* ``register``: ``EvalPlatform.register_dataset`` of the Parquet file, as ``evalp datasets register --file``
  passes it, plus the suite;
* ``model``: ``register_model`` of a ``predictions``-kind model (a Parquet of scores keyed by id), which
  checks the file against the dataset; or, with ``--model sklearn``, a logistic regression (skops file)
  trained on 10k rows, which the eval then runs on every row;
* ``eval``: the runner steps the Dagster assets call (predictions, metric table with a slice, comparison,
  gate decision), as ``tests/evaluation/test_runner.py``'s ``evaluate`` helper runs them.

Goal (issue 18): every process under 3 GB peak RSS at 10M rows, registration in minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEATURES = [f"f{i}" for i in range(5)]
SEGMENTS = ["north", "south", "east", "west"]


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_data(rows: int, directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """The dataset and a predictions file, written in 1M-row pieces so the generator stays small."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    data_path, predictions_path = directory / "data.parquet", directory / "predictions.parquet"
    data_writer = predictions_writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        ids = pa.array(np.char.add("ex-", np.arange(start, start + n).astype(str)).astype(object), pa.string())
        label = (rng.random(n) < 0.3).astype(np.int64)
        columns = {"example_id": ids}
        for i, name in enumerate(FEATURES):
            columns[name] = rng.normal(size=n) + 0.3 * i * label
        columns["label"] = label
        columns["segment"] = pa.array(np.asarray(SEGMENTS, dtype=object)[rng.integers(0, 4, n)], pa.string())
        batch = pa.table(columns)
        score = np.clip(0.4 * label + 0.6 * rng.random(n), 0, 1)
        predictions = pa.table({"example_id": ids, "score": score})
        if data_writer is None:
            data_writer = pq.ParquetWriter(data_path, batch.schema)
            predictions_writer = pq.ParquetWriter(predictions_path, predictions.schema)
        data_writer.write_table(batch)
        predictions_writer.write_table(predictions)
    data_writer.close()
    predictions_writer.close()
    return data_path, predictions_path


# steps, each run in a child process ------------------------------------------------------------------
def step_reference(args) -> dict:
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pq.read_table(args.file)
    pq.write_table(table, Path(args.home) / "copy.parquet", compression="zstd")
    return {"seconds": time.perf_counter() - started}


def step_register(args) -> dict:
    from eval_platform.cli import inputs as cli
    from eval_platform.platform.service import EvalPlatform

    platform = EvalPlatform.open(args.home)
    started = time.perf_counter()
    # what `evalp datasets register --file` hands the platform (before this benchmark: a pandas frame)
    source = getattr(cli, "_dataset_source", cli.read_table)(args.file)
    result = platform.register_dataset("scale", source, task_type="binary_classification",
                                       label_policy="human_reviewed", slice_columns=["segment"])
    seconds = time.perf_counter() - started
    platform.register_suite({"suite_id": "scale", "purpose": "release_blocking", "task_type": "binary_classification",
                             "slices": ["segment"],
                             "metrics": [{"name": "auc", "metric": "roc_auc@1"}, {"name": "accuracy", "metric": "accuracy@1"},
                                         {"name": "log_loss", "metric": "log_loss@1"}],
                             "gate": {"require_baseline": False, "rules": [{"metric": "auc", "min": 0.5}]}})
    return {"seconds": seconds, "content_hash": result.record.content_hash, "rows": result.record.row_count}


def step_model(args) -> dict:
    from eval_platform.platform.service import EvalPlatform

    platform = EvalPlatform.open(args.home)
    if args.model == "sklearn":
        import pyarrow.parquet as pq
        import skops.io
        from sklearn.linear_model import LogisticRegression

        head = pq.ParquetFile(args.file).read_row_group(0).slice(0, 10_000).to_pandas()
        path = Path(args.home) / "model.skops"
        skops.io.dump(LogisticRegression(max_iter=1000).fit(head[FEATURES].to_numpy(), head["label"].to_numpy()), path)
        started = time.perf_counter()
        platform.register_model("scores", path, kind="sklearn", eval_plan=[("scale", "scale")])
    else:
        started = time.perf_counter()
        platform.register_model("scores", Path(args.predictions), kind="predictions", eval_plan=[("scale", "scale")])
    return {"seconds": time.perf_counter() - started}


def step_eval(args) -> dict:
    from eval_platform.evaluation import predicting, runner
    from eval_platform.platform.service import EvalPlatform

    platform = EvalPlatform.open(args.home)
    started, split = time.perf_counter(), {}
    runs = platform.claim_runs("scores@1", "bench", requested=True)
    for run in runs:
        predicting.produce_predictions(platform, run)
        split["predictions"] = time.perf_counter() - started
        runner.compute_metrics(platform, run)
        split["metrics"] = time.perf_counter() - started - split["predictions"]
        runner.compare_with_baseline(platform, run)
    decision = runner.finish_runs(platform, "scores@1", runs)
    run = platform.runs("scores@1")[0]
    return {"seconds": time.perf_counter() - started, "split": split, "decision": decision.decision,
            "auc": run.results["metrics"]["auc"]}


STEPS = {"reference": step_reference, "register": step_register, "model": step_model, "eval": step_eval}


def child(step: str, **paths) -> dict:
    command = [sys.executable, __file__, "--step", step, *(f"--{k}={v}" for k, v in paths.items())]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--model", choices=["predictions", "sklearn"], default="predictions",
                        help="the evaluated model: a predictions file (default) or a scikit-learn logistic regression")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--predictions", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        result = STEPS[args.step](args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    print(f"rows={args.rows:,} model={args.model} cores={os.cpu_count()} load={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        directory = Path(scratch)
        started = time.perf_counter()
        data, predictions = write_data(args.rows, directory)
        print(f"data written in {time.perf_counter() - started:.1f} s: {data.stat().st_size / 1e6:.0f} MB Parquet")
        home = directory / "home"
        home.mkdir()
        reference = child("reference", home=home, file=data)
        results = {"register": child("register", home=home, file=data),
                   "model": child("model", home=home, file=data, predictions=predictions, model=args.model),
                   "eval": child("eval", home=home)}
    print(f"reference (pyarrow read_table + write_table): {reference['seconds']:.1f} s, peak RSS {reference['peak_rss_mb']:.0f} MB")
    for name, result in results.items():
        extra = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()
                 if k not in ("seconds", "peak_rss_mb", "process_seconds")}
        print(f"{name:9s} {result['seconds']:7.1f} s ({result['seconds'] / reference['seconds']:5.1f}x reference), "
              f"process {result['process_seconds']:6.1f} s, peak RSS {result['peak_rss_mb']:6.0f} MB "
              f"({result['peak_rss_mb'] / reference['peak_rss_mb']:.1f}x reference) {extra}")
    worst = max(r["peak_rss_mb"] for r in results.values())
    print(f"goal: every process under 3072 MB peak RSS: {'met' if worst < 3072 else 'NOT met'} (worst {worst:.0f} MB); "
          f"load now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
