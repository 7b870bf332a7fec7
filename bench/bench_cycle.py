"""Benchmark of one eval cycle on the embedded default: model registration to gate decision (a script, not a test).

    .venv/bin/python bench/bench_cycle.py                       # 200 rows, then 100k rows; MLflow side by side
    .venv/bin/python bench/bench_cycle.py --rows 200 --idle-seconds 0 --no-mlflow

For each ``--rows`` (default 200 and 100,000), on a fresh temporary installation (SQLite registry, Dagster
SQLite storage under a temporary DAGSTER_HOME with the shipped ``dagster.yaml``) and a real
``dagster-daemon run`` on the shipped ``workspace.yaml``:

* a seeded binary-classification dataset (8 features, a 3-valued slice column) and a release-blocking suite
  (6 metrics, slices, a 1000-resample paired bootstrap, a gate) are registered and validated (timed
  separately: it is not part of the model's cycle);
* **first run**: a baseline model version is registered with that eval plan; the time until its gate decision
  is in the registry is the cycle. Dagster's event log of the run attributes it: sensor wait (registration ->
  Dagster run created), queue (created -> dequeued), launch (dequeued -> RUN_START: run-worker process start and
  ``import definitions``), run setup (RUN_START -> first STEP_START), each step (STEP_START -> STEP_SUCCESS),
  gaps between steps, run end (last step -> RUN_SUCCESS) and the bench's own poll (-> gate seen);
* **with baseline**: the baseline is promoted (directly in the registry), a candidate version registered: same
  breakdown; this one pays the comparison's bootstrap;
* **cached recompute**: ``request_eval(candidate, recompute=True)`` (predictions cached by model file and data),
  printed as a ratio of the candidate's first run (goal: at most 10%);
* CPU: CPU-seconds of the daemon's process tree (daemon, code server, run workers; sampled from /proc every
  0.1 s, so a process's last < 0.1 s may be missed) plus the bench process's own (the registration calls);
* the idle daemon: CPU-seconds it burns per minute with nothing to do, over ``--idle-seconds``, split into the
  daemon process and the code server (the shipped ``workspace.yaml`` makes the daemon start a fresh code
  server every 60 s; ``--code-server`` runs a persistent ``dagster api grpc`` instead, the production
  layout, to show what that saves).

MLflow's path side by side (when ``mlflow`` imports; ``pip install mlflow-skinny``, the ``bench`` extra), in a
child process on the same seeded data and the same two fitted models: SQLite tracking and registry store,
``mlflow.sklearn.log_model`` (registered) of both models, ``mlflow.models.evaluate`` (classifier, default
evaluator) of both, ``mlflow.validate_evaluation_results`` of the candidate against the baseline. Timed from
before ``import mlflow`` to the end; ``ratio`` is ours / MLflow's (two models: baseline first run + promotion
+ candidate first run against MLflow's whole path).

Machine cores and load average are printed: the timings are only comparable on a similarly loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_FEATURES = 8
TRAIN_ROWS = 4000
DATASET_ID = "bench-cycle"
MODEL_NAME = "bench-detector"
SUITE = {
    "suite_id": "bench-cycle-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "description": "benchmark suite: the demo's metrics, slices, bootstrap and gate",
    "metrics": [
        {"metric": "roc_auc@1"},
        {"name": "pr_auc", "metric": "average_precision@1"},
        {"name": "precision", "metric": "precision@1", "params": {"threshold": 0.5}},
        {"name": "recall", "metric": "recall@1", "params": {"threshold": 0.5}},
        {"name": "f1", "metric": "f1@1", "params": {"threshold": 0.5}},
        {"name": "log_loss", "metric": "log_loss@1"},
    ],
    "slices": ["segment"], "min_slice_size": 30,
    "comparison": {"bootstrap_resamples": 1000, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "rules": [
        {"metric": "roc_auc", "min": 0.6},
        {"metric": "roc_auc", "non_inferiority": 0.05, "mode": "strict"},
    ]},
}
STEPS = ["predictions", "judgments", "metric_table", "comparison", "gate_decision"]


# data and models (identical in the parent and the MLflow child: same seeds) ----------------------------------
def make_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES))
    logit = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 1.0
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["segment"] = np.array(["a", "b", "c"])[rng.integers(0, 3, rows)]
    frame["label"] = label
    frame.insert(0, "example_id", np.arange(rows, dtype="int64"))
    return frame


def fit_models():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    train = make_frame(TRAIN_ROWS, seed=1)
    x, y = train[[f"f{i}" for i in range(N_FEATURES)]].to_numpy(), train["label"].to_numpy()
    baseline = LogisticRegression(max_iter=1000).fit(x, y)
    candidate = GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=0).fit(x, y)
    return baseline, candidate


# CPU of the daemon's process tree ----------------------------------------------------------------------------
class SessionCPU:
    """CPU-seconds of every process of some sessions (the daemon and the code server are started as session
    leaders), sampled from /proc; a process that exits keeps its last sampled figure."""

    def __init__(self, sids: list[int]):
        self.sids, self.seen, self.kinds = set(sids), {}, {}
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> float:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the command: state ppid pgrp session ... utime(11) stime(12) ... starttime(19)
            if int(fields[3]) in self.sids:
                key = (int(entry), fields[19])
                if key not in self.kinds:
                    try:
                        with open(f"/proc/{entry}/cmdline", "rb") as f:
                            command = f.read().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        command = ""
                    self.kinds[key] = next((kind for marker, kind in self.KINDS if marker in command), "other")
                self.seen[key] = (int(fields[11]) + int(fields[12])) / self.tick
        return sum(self.seen.values())

    KINDS = (("dagster-daemon", "daemon"), ("execute_run", "run worker"), ("code-server", "code server"),
             ("api grpc", "code server"))

    def by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for key, seconds in self.seen.items():
            totals[self.kinds.get(key, "other")] = totals.get(self.kinds.get(key, "other"), 0.0) + seconds
        return totals


class Daemon:
    """``dagster-daemon run`` on the shipped workspace.yaml (it starts a fresh code server for the code location
    every 60 s), or with ``code_server``: a persistent ``dagster api grpc`` on a socket and a workspace pointing
    the daemon at it (``grpc_server``), the production layout (README, "Running it in production")."""

    def __init__(self, home: Path, code_server: bool = False):
        self.home, self.code_server = home, code_server
        self.log_path = home / "dagster" / "daemon.log"
        self.processes: list[subprocess.Popen] = []
        self.process = None
        self.cpu = None

    def _spawn(self, args: list[str]) -> subprocess.Popen:
        process = subprocess.Popen([str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=ROOT,
                                   stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def start(self) -> None:
        workspace = ROOT / "workspace.yaml"
        if self.code_server:
            from dagster._grpc.client import DagsterGrpcClient

            socket = self.home / "dagster" / "code.sock"
            # ``dagster api grpc``: one process serving the code location, as in Dagster's Helm chart (``dagster
            # code-server start`` adds a proxy process that reloads code: 0.5 CPU-s a minute more when idle)
            server = self._spawn(["dagster", "api", "grpc", "-m", "eval_platform_dagster.definitions", "-d", str(ROOT), "--socket", str(socket)])
            while True:  # until the server answers
                if server.poll() is not None:
                    raise SystemExit(f"the code server exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if socket.exists() and DagsterGrpcClient(socket=str(socket)).ping("ready"):
                        break
                except Exception:
                    pass
                time.sleep(0.2)
            workspace = self.home / "dagster" / "workspace.yaml"
            workspace.write_text(f"load_from:\n  - grpc_server:\n      socket: {socket}\n      location_name: eval_platform\n")
        self.process = self._spawn(["dagster-daemon", "run", "-w", str(workspace)])
        self.cpu = SessionCPU([p.pid for p in self.processes])

    def stop(self) -> None:
        import signal

        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def poll(condition, daemon: Daemon, what: str, timeout: float = 1800.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        daemon.cpu.sample()
        value = condition()
        if value:
            return value
        if daemon.process.poll() is not None:
            raise SystemExit(f"the daemon exited while waiting for {what}:\n{daemon.log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}:\n{daemon.log_path.read_text()[-3000:]}")
        time.sleep(interval)


def dagster_idle(instance, platform) -> bool:
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                  DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    return not platform.runs(statuses=["queued", "running"]) and not instance.get_run_records(RunsFilter(statuses=unfinished))


# breakdown from Dagster's event log ----------------------------------------------------------------------------
def breakdown(instance, dagster_run_id: str, registered_at: float, gate_seen_at: float) -> list[tuple[str, float]]:
    record = instance.get_run_record_by_id(dagster_run_id)
    created = record.create_timestamp.timestamp()
    events = {}
    steps: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(dagster_run_id):
        if entry.dagster_event is None:
            continue
        kind = entry.dagster_event.event_type.name  # RUN_START (its value is the legacy PIPELINE_START)
        events.setdefault(kind, entry.timestamp)
        if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE") and entry.step_key:
            steps.setdefault(entry.step_key, {})[kind] = entry.timestamp
    starting = events.get("RUN_STARTING", events.get("RUN_DEQUEUED", created))
    run_start = events["RUN_START"]
    parts = [("sensor wait (registration -> run created)", created - registered_at),
             ("run queue (created -> RUN_STARTING)", starting - created),
             ("launch: process start, imports (RUN_STARTING -> RUN_START)", run_start - starting)]
    ordered = sorted(steps.items(), key=lambda kv: kv[1].get("STEP_START", 0))
    previous_end = None
    gaps = 0.0
    for step_key, stamps in ordered:
        start, end = stamps.get("STEP_START"), stamps.get("STEP_SUCCESS", stamps.get("STEP_FAILURE"))
        if start is None or end is None:
            continue
        if previous_end is None:
            parts.append(("run setup (RUN_START -> first step)", start - run_start))
        else:
            gaps += start - previous_end
        parts.append((f"step {step_key.split('.')[-1]}", end - start))
        previous_end = end
    parts.append(("between steps (events, materializations, checks)", gaps))
    run_end = events.get("RUN_SUCCESS", events.get("RUN_FAILURE", previous_end))
    parts.append(("run end (last step -> RUN_SUCCESS)", run_end - previous_end))
    parts.append(("to gate seen by the bench (poll 0.1 s; negative: decided before RUN_SUCCESS)", gate_seen_at - run_end))
    return parts


def run_ours(rows: int, frame: pd.DataFrame, models, idle_seconds: float, code_server: bool = False) -> dict:
    import skops.io

    home = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    os.environ["EVAL_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    from dagster import DagsterInstance

    from eval_platform.gates import releases
    from eval_platform.platform.service import EvalPlatform

    instance = DagsterInstance.get()
    platform = EvalPlatform.open(home)
    files = {}
    for name, model in zip(("baseline", "candidate"), models, strict=True):
        files[name] = home / "models" / f"{name}.skops"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        skops.io.dump(model, files[name])
    daemon = Daemon(home, code_server)
    result: dict = {"rows": rows, "code_server": code_server}
    try:
        daemon.start()
        wall = time.perf_counter()
        platform.register_dataset(DATASET_ID, frame, task_type="binary_classification", label_policy="human_reviewed",
                                            slice_columns=["segment"], feature_columns=[f"f{i}" for i in range(N_FEATURES)])
        suite = platform.register_suite(json.loads(json.dumps(SUITE)))
        result["dataset_register_s"] = time.perf_counter() - wall
        poll(lambda: dagster_idle(instance, platform) and instance.get_run_records(), daemon, "the dataset validation")
        result["dataset_total_s"] = time.perf_counter() - wall
        plan = [(DATASET_ID, suite.record.suite_id)]

        def cycle(label: str, action) -> dict:
            before_cpu = daemon.cpu.sample() + time.process_time()
            started = time.time()
            t0 = time.perf_counter()
            model_key, previous_gate_id = action()

            def decided():
                record = platform.gate_decision(model_key)
                return record if record is not None and record.id != previous_gate_id else None

            gate = poll(decided, daemon, f"the gate of {model_key}")
            seen = time.time()
            wall_s = time.perf_counter() - t0
            poll(lambda: dagster_idle(instance, platform), daemon, "Dagster idle")
            cpu_s = daemon.cpu.sample() + time.process_time() - before_cpu
            # the Dagster run that evaluated this cycle: the newest eval run of the model version
            runs = [r for r in platform.runs(model_key) if r.dagster_run_id]
            dagster_run_id = runs[-1].dagster_run_id if runs else None
            parts = breakdown(instance, dagster_run_id, started, seen) if dagster_run_id else []
            return {"label": label, "model": model_key, "wall_s": wall_s, "cpu_s": cpu_s, "decision": gate.decision,
                    "parts": parts}

        def register(name):
            def action():
                registered = platform.register_model(MODEL_NAME, files[name], eval_plan=plan, description=name)
                return registered.record.key, None
            return action

        first = cycle("first run (no baseline)", register("baseline"))
        t0, cpu0 = time.perf_counter(), time.process_time()
        releases.promote(platform, first["model"], promoted_by="bench", reason="benchmark baseline")
        promote_s, promote_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        second = cycle("first run (with baseline, bootstrap)", register("candidate"))

        def recompute():
            key = second["model"]
            previous = platform.gate_decision(key)
            platform.request_eval(key, DATASET_ID, suite.record.suite_id, trigger="bench", recompute=True)
            return key, previous.id

        cached = cycle("cached recompute (recompute=True)", recompute)
        result.update(cycles=[first, second, cached], promote_s=promote_s, promote_cpu_s=promote_cpu,
                      two_model_wall_s=first["wall_s"] + promote_s + second["wall_s"],
                      two_model_cpu_s=first["cpu_s"] + promote_cpu + second["cpu_s"])
        if idle_seconds > 0:
            time.sleep(5)  # let the last run's processes exit
            before, kinds_before, t0 = daemon.cpu.sample(), daemon.cpu.by_kind(), time.perf_counter()
            while time.perf_counter() - t0 < idle_seconds:
                time.sleep(0.1)
                daemon.cpu.sample()
            minutes = (time.perf_counter() - t0) / 60
            result["idle_cpu_per_min"] = (daemon.cpu.sample() - before) / minutes
            result["idle_by_kind"] = {kind: (seconds - kinds_before.get(kind, 0.0)) / minutes
                                      for kind, seconds in daemon.cpu.by_kind().items()}
    finally:
        daemon.stop()
        instance.dispose()
        platform.close()
        if os.environ.get("BENCH_KEEP_HOME"):
            print(f"  (kept {home})")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return result


# MLflow's path ----------------------------------------------------------------------------------------------------
def mlflow_child(rows: int) -> None:
    """Runs in a child process: data and models as the parent's; timed from before ``import mlflow``."""
    import warnings

    warnings.filterwarnings("ignore")
    frame = make_frame(rows, seed=0)
    baseline, candidate = fit_models()
    data = frame[[f"f{i}" for i in range(N_FEATURES)] + ["label"]]
    home = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    os.chdir(home)  # MLflow writes its artifacts (./mlruns) under the working directory
    wall, cpu = time.perf_counter(), time.process_time()
    import mlflow
    from mlflow.models import MetricThreshold

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_experiment("bench-cycle")
    results = {}
    for name, model in (("baseline", baseline), ("candidate", candidate)):
        with mlflow.start_run(run_name=name):
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name="bench-detector",
                                            input_example=data.iloc[:5, :N_FEATURES],
                                            skops_trusted_types=["sklearn.tree._tree.Tree"])
            results[name] = mlflow.models.evaluate(info.model_uri, data, targets="label", model_type="classifier",
                                                   evaluators=["default"])
    thresholds = {"roc_auc": MetricThreshold(threshold=0.6, greater_is_better=True)}
    try:
        mlflow.validate_evaluation_results(thresholds, results["candidate"], results["baseline"])
        decision = "pass"
    except Exception as error:  # ModelValidationFailedException: the gate's "fail"
        decision = f"fail ({type(error).__name__})"
    out = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "decision": decision,
           "roc_auc": results["candidate"].metrics.get("roc_auc")}
    shutil.rmtree(home, ignore_errors=True)
    print("MLFLOW_RESULT " + json.dumps(out))


def run_mlflow(rows: int) -> dict | None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, __file__, "--mlflow-child", str(rows)], capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((text for text in done.stdout.splitlines() if text.startswith("MLFLOW_RESULT ")), None)
    if line is None:
        print(f"  MLflow path failed:\n{done.stderr[-2000:]}")
        return None
    out = json.loads(line[len("MLFLOW_RESULT "):])
    out["process_cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return out


def mlflow_available() -> str | None:
    done = subprocess.run([sys.executable, "-c", "import mlflow, mlflow.sklearn; print(mlflow.__version__)"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def report(result: dict, mlflow: dict | None) -> None:
    rows = result["rows"]
    mode = "persistent code server (grpc_server workspace)" if result["code_server"] else "shipped workspace.yaml"
    print(f"\n== ours, {rows:,} rows, daemon on the {mode} ==")
    print(f"dataset registration {result['dataset_register_s']:.2f} s, + validation run {result['dataset_total_s']:.2f} s "
          f"(not part of the model's cycle)")
    for c in result["cycles"]:
        print(f"{c['label']}: {c['model']} registration -> gate ({c['decision']}): {c['wall_s']:.2f} s wall, {c['cpu_s']:.2f} CPU-s")
        for name, seconds in c["parts"]:
            print(f"    {name:<80} {seconds:7.2f} s")
    first, cached = result["cycles"][1], result["cycles"][2]
    print(f"cached recompute / first run (with baseline): {cached['wall_s'] / first['wall_s']:.0%} wall, "
          f"{cached['cpu_s'] / max(first['cpu_s'], 1e-9):.0%} CPU (goal: at most 10%)")

    def steps(cycle) -> float:
        return sum(seconds for name, seconds in cycle["parts"] if name.startswith("step "))

    def fixed(cycle) -> float:  # what every Dagster run pays whatever its work: poll, queue, process start
        return sum(seconds for name, seconds in cycle["parts"] if name.startswith(("sensor wait", "run queue", "launch")))

    print(f"    of which the steps: {steps(cached):.2f} s of the first run's {steps(first):.2f} s "
          f"({steps(cached) / max(steps(first), 1e-9):.0%}); sensor wait, queue and process start: {fixed(cached):.2f} s "
          f"(first run {fixed(first):.2f} s)")
    print(f"promotion (registry call): {result['promote_s']:.2f} s")
    print(f"two-model cycle (baseline, promotion, candidate): {result['two_model_wall_s']:.2f} s wall, "
          f"{result['two_model_cpu_s']:.2f} CPU-s")
    if "idle_cpu_per_min" in result:
        kinds = ", ".join(f"{kind} {seconds:.2f}" for kind, seconds in sorted(result["idle_by_kind"].items()) if seconds > 0.005)
        print(f"idle daemon: {result['idle_cpu_per_min']:.2f} CPU-s per minute (goal: under 1): {kinds}")
    if mlflow:
        print(f"MLflow, {rows:,} rows, two models (log_model + evaluate + validate_evaluation_results, SQLite store): "
              f"{mlflow['wall_s']:.2f} s wall, {mlflow['cpu_s']:.2f} CPU-s in-process "
              f"({mlflow['process_cpu_s']:.2f} CPU-s for the whole child, data and training included); gate {mlflow['decision']}")
        print(f"ratio ours / MLflow, two-model cycle: {result['two_model_wall_s'] / mlflow['wall_s']:.2f}x wall, "
              f"{result['two_model_cpu_s'] / mlflow['cpu_s']:.2f}x CPU (goal at 100k rows: at most 1x wall)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[200, 100_000])
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="measure the idle daemon's CPU (0: skip)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--code-server", action="store_true",
                        help="a persistent `dagster api grpc` and a grpc_server workspace for the daemon")
    parser.add_argument("--mlflow-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mlflow_child:
        mlflow_child(args.mlflow_child)
        return
    load = os.getloadavg()
    print(f"eval cycle benchmark: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    version = None if args.no_mlflow else mlflow_available()
    print(f"MLflow: {version or 'not installed (pip install mlflow-skinny): our figures alone'}")
    models = fit_models()
    for i, rows in enumerate(args.rows):
        frame = make_frame(rows, seed=0)
        # the idle daemon is measured once, after the first size
        result = run_ours(rows, frame, models, args.idle_seconds if i == 0 else 0, args.code_server)
        mlflow = run_mlflow(rows) if version else None
        report(result, mlflow)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
