"""Benchmark of a generation eval scaled out on Celery workers (a script, not a test).

    .venv/bin/python bench/bench_scale_out.py                          # 20000 examples on 1, 2 and 4 workers
    .venv/bin/python bench/bench_scale_out.py --examples 1000 --widths 1,2 --json out.json

Needs the test servers (PostgreSQL at 127.0.0.1:5432, RabbitMQ at :5672 with ``rabbitmqctl``; see
``tests/celery_harness.py``). For each width W a fresh deployment of the Celery profile (fresh PostgreSQL
databases for Dagster and the registry, so no call is cached; a fresh RabbitMQ virtual host; W workers of
``--worker-processes`` pool processes each; the real ``dagster-daemon``) and a fresh local OpenAI-compatible
server answering in ``--latency`` seconds. A generation dataset of ``--examples`` distinct prompts, a suite with a
pinned judge (one sample per example) and ``--step-concurrency`` calls in flight per step, then a model version
are registered; the clock runs from the model's registration to its gate decision. Printed per width:

* wall time, and the calls counted at the server (expected: ``2 x examples``, one answer and one verdict each);
* the ideal ``calls x latency / total concurrency``, total concurrency = ``W x worker processes x step
  concurrency`` (every call slot of every worker busy all the time), and ``wall / ideal`` (goal <= 1.3);
* the speed-up against width 1 of the same run (goal: near W);
* where the time went: the span of the LLM steps (``predictions*`` / ``judgments*``, sharded or not) and the rest
  (sensor tick, run launch, metrics, gate), the peak of replies in flight at the server, and the CPU the
  deployment's processes used against the machine's cores (is the client side CPU-bound?).

First, ``--probe-seconds`` per width of the server alone under a light raw-HTTP client at each width's total
concurrency: its calls per second against ``concurrency / latency`` and its CPU, the ceiling no deployment can pass.

The client side is the ceiling on a small machine, not the server: a call costs the step's process about 2.5-3.5
ms of CPU (the openai client's request path, the call cache on PostgreSQL, the judge's parsing; ``bench/bench_llm.py``
prints it; 4-5 ms before the client skipped openai's per-call parameter transform) against under 1 ms at the
server, and one process holds one core at most, so one step makes at most ~300 calls/s and two cores ~600 in all,
shared with Dagster, the broker and PostgreSQL. Hence the default of 16 calls per step: 64 in flight at 4 workers.

Without sharded predictions and judgments (``EVAL_PLATFORM_SHARD_SIZE``, ``--shard-size``), one cell's calls run in
one step at a time, so the wall time does not fall with width: the ratio grows with W, as expected until then.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import pandas as pd  # noqa: E402

from eval_platform.evaluation.judge_license import unchecked_judges  # noqa: E402
from eval_platform.llm.judge import JudgeConfig  # noqa: E402
from eval_platform.llm.server import qa_dataset  # noqa: E402
from tests.celery_harness import (  # noqa: E402
    PG_ADMIN_URL,
    POOLS,
    Deployment,
    DeploymentSpec,
    celery_deployment,
    llm_command,
    llm_listening,
    stop_session,
)
from tests.judge_calibration import CALIBRATION_ID, register_calibration  # noqa: E402

#: the steps of the LLM calls: ``predictions`` and ``judgments``, or, sharded, their graphs' shard steps
#: (``predictions.predict_shard[r0_s3]``) without the graphs' plan and merge steps, which make no call
LLM_STEP_PREFIXES = ("predictions", "judgments")
NO_CALL_STEPS = (".plan_", ".merge_")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class WidthResult:
    workers: int
    total_concurrency: int
    wall_seconds: float
    calls: int
    expected_calls: int
    ideal_seconds: float
    ratio: float
    speedup: float | None
    llm_steps: int
    llm_span_seconds: float
    #: the LLM steps' durations added up (equal to the span when they run one after another)
    llm_step_seconds: float
    other_seconds: float
    #: phase -> seconds, from the runs' records and step events (see :func:`_phases`)
    phases: dict[str, float]
    in_flight_peak: int
    #: launches of the eval's Dagster run (more than 1: a launch never reached Dagster and was retried after
    #: EVAL_PLATFORM_LAUNCH_GRACE_SECONDS, which shows as a long ``sensor`` phase)
    launch_attempts: int
    cpu_seconds: float
    cpu_cores_busy: float
    decision: str
    #: (job, step, start, end) of every step of the model's runs, seconds after the registration (the shard
    #: steps of a phase as one line: its first start and last end)
    timeline: list[tuple[str, str, float, float]] = field(default_factory=list)


@dataclass
class ProbeResult:
    concurrency: int
    calls_per_second: float
    ideal_calls_per_second: float
    fraction_of_ideal: float
    server_cpu_percent: float
    client_cpu_percent: float


# the server alone ---------------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def probe_server(latency: float, concurrencies: list[int], seconds: float, tmp: Path) -> list[ProbeResult]:
    """Calls per second of the local server alone at each concurrency, from threads with keep-alive connections
    (lighter than the openai client, so the server's ceiling shows before the client's)."""
    log = tmp / "probe-llm.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(llm_command(DeploymentSpec(llm_latency=latency)), cwd=ROOT, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        url = urlsplit(llm_listening(process, log, 60).base_url)
        questions = qa_dataset()["prompt"].tolist()
        return [_probe_once(url.hostname or "127.0.0.1", url.port or 80, process.pid, questions, latency, n, seconds)
                for n in concurrencies]
    finally:
        stop_session(process)


def _probe_once(host: str, port: int, server_pid: int, questions: list[str], latency: float, concurrency: int,
                seconds: float) -> ProbeResult:
    stop_at = time.monotonic() + seconds
    done: list[int] = []

    def loop(first: int) -> None:
        connection, made, index = http.client.HTTPConnection(host, port, timeout=120), 0, first
        while time.monotonic() < stop_at:
            body = json.dumps({"model": "kb-qa-v1", "max_tokens": 32, "messages": [
                {"role": "user", "content": f"(probe {index}) Question: {questions[index % len(questions)]}\nAnswer briefly."}]})
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            connection.getresponse().read()
            made, index = made + 1, index + concurrency
        connection.close()
        done.append(made)  # list.append is atomic

    server_cpu, client_cpu, started = _process_cpu(server_pid), time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    rate, ideal = sum(done) / wall, concurrency / latency
    return ProbeResult(concurrency, rate, ideal, rate / ideal, 100 * (_process_cpu(server_pid) - server_cpu) / wall,
                       100 * (time.process_time() - client_cpu) / wall)


# one width ----------------------------------------------------------------------------------------------


def examples_frame(n: int) -> pd.DataFrame:
    """``n`` distinct prompts over the shipped questions (so ``n`` distinct candidate and judge calls)."""
    qa = qa_dataset()
    rows = [qa.iloc[i % len(qa)] for i in range(n)]
    return pd.DataFrame({"example_id": [f"ex-{i:06d}" for i in range(n)],
                         "prompt": [f"(request {i}) {row['prompt']}" for i, row in enumerate(rows)],
                         "reference": [row["reference"] for row in rows], "category": [row["category"] for row in rows]})


def judged_suite(step_concurrency: int) -> dict:
    """A generation suite with a pinned judge, one judge sample per example (the gate requires the pin)."""
    judge = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}
    pinned = {k: v for k, v in JudgeConfig.from_dict(judge).pin().items() if k != "judge_config_hash"}
    return {"suite_id": "scale", "purpose": "release_blocking", "task_type": "generation", "min_slice_size": 1,
            "metrics": ["exact_match@1", {"name": "judge", "metric": "judge_score@1", "params": pinned}],
            # a release-blocking judge gates only with a license: checked by the deployment's judge-license sensor
            # on the calibration set before the clock starts
            "llm": {"concurrency": step_concurrency, "judge": judge, "judge_samples": 1,
                    "judge_license": {"calibration_dataset": CALIBRATION_ID}},
            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.8}, {"metric": "judge", "min": 0.8}]}}


def candidate_file(directory: Path) -> Path:
    spec = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "kb-qa-v1", "model_version": "1",
            "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\nAnswer briefly."},
            "decoding": {"temperature": 0.0, "max_tokens": 32}}
    path = directory / "candidate.json"
    path.write_text(json.dumps(spec))
    return path


def _sessions_cpu(leaders: set[int]) -> float:
    """CPU seconds (own and reaped children's) of every live process in the sessions of ``leaders``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[3]) in leaders:  # field 6 of stat, the session id
            total += sum(int(value) for value in fields[11:15]) / CLOCK_TICK
    return total


def _validations_done(deployment: Deployment) -> bool:
    runs = deployment.instance.get_runs(dg.RunsFilter(job_name="validate_dataset_version"))
    return bool(runs) and all(run.is_finished for run in runs)


def _llm_spans(deployment: Deployment, model_key: str) -> list[tuple[float, float]]:
    """(start, end) of each LLM step of the model's cell runs (epoch seconds)."""
    return [span for run in deployment.runs("evaluate_eval_cell", model_key)
            for key, span in deployment.step_spans(run.run_id).items()
            if key.startswith(LLM_STEP_PREFIXES) and not any(part in key for part in NO_CALL_STEPS)]


def _timeline(deployment: Deployment, model_key: str, registered: float) -> list[tuple[str, str, float, float]]:
    """(job, step, start, end) of each step of the model's cell and gate runs, relative to ``registered``; a
    mapped step's instances (``predictions.predict_shard[r0_s3]``) make one line, from the first start to the last end."""
    lines: dict[tuple[str, str], tuple[float, float]] = {}
    for job in ("evaluate_eval_cell", "decide_gate"):
        for run in deployment.runs(job, model_key):
            for key, (start, end) in deployment.step_spans(run.run_id).items():
                name = key.split("[", 1)[0] + ("[*]" if "[" in key else "")
                first, last = lines.get((job, name), (start, end))
                lines[(job, name)] = (min(first, start), max(last, end))
    return sorted(((job, step, start - registered, end - registered) for (job, step), (start, end) in lines.items()),
                  key=lambda line: line[2])


def _phases(deployment: Deployment, model_key: str, registered: float, spans: list[tuple[float, float]]) -> dict[str, float]:
    """Where the wall time went, in order: ``sensor`` (registration to the cell run's creation), ``launch`` (to the
    run's start: queue and run worker), ``to_calls`` (to the first LLM step's start: code load, Celery dispatch),
    ``calls`` (the LLM steps' span), ``after_calls`` (to the cell run's end: metrics, comparison) and ``gate``
    (to the gate run's end)."""
    def records(job: str) -> list:
        ids = [run.run_id for run in deployment.runs(job, model_key)]
        return list(deployment.instance.get_run_records(dg.RunsFilter(run_ids=ids))) if ids else []

    cells, gates = records("evaluate_eval_cell"), records("decide_gate")
    if not (cells and gates and spans):
        return {}
    created = min(record.create_timestamp.timestamp() for record in cells)
    started = min(record.start_time or created for record in cells)
    first_call, last_call = min(start for start, _ in spans), max(end for _, end in spans)
    cell_end = max(record.end_time or last_call for record in cells)
    gate_end = max(record.end_time or cell_end for record in gates)
    marks = [registered, created, started, first_call, last_call, cell_end, gate_end]
    names = ["sensor", "launch", "to_calls", "calls", "after_calls", "gate"]
    return {name: marks[i + 1] - marks[i] for i, name in enumerate(names)}


def pool_limit(args: argparse.Namespace, workers: int) -> int:
    """The Dagster pool limit of the deployment: ``--pool-limit``, else the shard steps of one phase (at least
    the workers' slots), so that no shard step waits on a pool claim and the broker queues them for the workers.

    Why not the workers' slots: a step blocked on its pool is re-checked by the run's executor at growing
    intervals (Dagster's pending-claim backoff, 1.1^n s up to 15 s, on dagster-celery's 1 s loop tick), and a
    slot freed is seen only at the next tick, so with the limit at exactly the slots every worker idles 1-5 s
    between two shard steps (measured: 32 shard steps of 2 s each spread over 164 s on one worker)."""
    if args.pool_limit is not None:
        return args.pool_limit
    shards = -(-args.examples // args.shard_size) if args.shard_size else 1
    return max(workers * args.worker_processes, shards)


def run_width(args: argparse.Namespace, workers: int, examples: pd.DataFrame, tmp: Path) -> WidthResult:
    total = workers * args.worker_processes * args.step_concurrency
    expected = 2 * len(examples)
    env = {"EVAL_PLATFORM_SHARD_SIZE": str(args.shard_size)} if args.shard_size else {}
    # unsharded, the calls run one step at a time whatever the width: the safety net allows for that
    safety = 600 + 3 * expected * args.latency / args.step_concurrency
    limit = pool_limit(args, workers)
    spec = DeploymentSpec(workers=workers, worker_processes=args.worker_processes, llm_latency=args.latency,
                          llm_capacity=args.capacity, pool_limits=dict.fromkeys(POOLS, limit), env=env,
                          postgres_url=args.postgres, safety_seconds=safety)
    with celery_deployment(spec, tmp) as deployment:
        service = deployment.service
        service.register_dataset("scale", examples, task_type="generation", label_policy="human_reviewed",
                                 slice_columns=["category"])
        register_calibration(service)
        service.register_suite(judged_suite(args.step_concurrency))
        # the datasets' validation runs and the judge's license check end first, so they do not share the cores
        # with the eval being timed
        deployment.wait_for(lambda: _validations_done(deployment), "the datasets' validation runs")
        deployment.wait_for(lambda: not unchecked_judges(service), "the judge's license check")
        deployment.llm.reset_stats()
        leaders = {process.pid for process in (deployment.daemon, deployment.llm.process, *deployment.workers.values())}
        cpu_before, started, registered = _sessions_cpu(leaders), time.perf_counter(), time.time()
        service.register_model("scale-bot", candidate_file(tmp), kind="openai_chat", eval_plan=[("scale", "scale")])
        decision = deployment.wait_for(lambda: deployment.decided("scale-bot@1"), "the gate decision", poll=0.5)
        wall = time.perf_counter() - started
        cpu = _sessions_cpu(leaders) - cpu_before
        stats = deployment.llm.stats()
        eval_runs = service.runs("scale-bot@1")
        failed = [run.status_reason for run in eval_runs if run.status != "succeeded"]
        if failed:
            raise RuntimeError(f"the eval run failed at width {workers}: {failed}")
        spans = _llm_spans(deployment, "scale-bot@1")
        phases = _phases(deployment, "scale-bot@1", registered, spans)
        timeline = _timeline(deployment, "scale-bot@1", registered)
    ideal = stats["requests"] * args.latency / total
    span = phases.get("calls", 0.0)
    return WidthResult(workers, total, wall, stats["requests"], expected, ideal, wall / ideal, None, len(spans), span,
                       sum(end - start for start, end in spans), wall - span, phases, stats["in_flight_peak"],
                       max(run.launch_attempts or 0 for run in eval_runs), cpu, cpu / wall, decision.decision,
                       timeline)


# the script ---------------------------------------------------------------------------------------------


def _widths(text: str) -> list[int]:
    try:
        widths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths: comma-separated worker counts, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--widths: at least one worker count, each >= 1, got {text!r}")
    return widths


def _interrupted(*_) -> None:
    raise KeyboardInterrupt  # SIGTERM tears the deployment down as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per reply")
    parser.add_argument("--widths", type=_widths, default=[1, 2, 4], help="worker counts, e.g. 1,2,4")
    parser.add_argument("--worker-processes", type=int, default=1, help="Celery --concurrency of each worker")
    parser.add_argument("--step-concurrency", type=int, default=16, help="calls in flight per step (suite llm.concurrency)")
    parser.add_argument("--capacity", type=int, default=None, help="replies the server serves at once (default unbounded)")
    parser.add_argument("--shard-size", type=int, default=None, help="EVAL_PLATFORM_SHARD_SIZE of the deployment")
    parser.add_argument("--pool-limit", type=int, default=None,
                        help="the Dagster pool limits (default: the shard steps of one phase, at least the workers' slots)")
    parser.add_argument("--probe-seconds", type=float, default=4.0, help="per concurrency; 0 skips the server probe")
    parser.add_argument("--postgres", default=PG_ADMIN_URL, help="admin URL of the PostgreSQL server")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--timeline", action="store_true", help="print each width's steps, seconds after the registration")
    parser.add_argument("--logs", type=Path, default=None, help="keep each deployment's logs and files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    for name in ("examples", "worker_processes", "step_concurrency", "shard_size", "pool_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.latency <= 0:
        parser.error("--latency must be > 0 (the ideal divides by it)")
    signal.signal(signal.SIGTERM, _interrupted)

    per_worker = args.worker_processes * args.step_concurrency
    print(f"Scale-out benchmark: {args.examples} examples x (1 answer + 1 judge verdict), server latency "
          f"{args.latency * 1000:.0f} ms, capacity {args.capacity or 'unbounded'}; per worker {args.worker_processes} "
          f"process(es) x {args.step_concurrency} calls = {per_worker}; shard size "
          f"{args.shard_size or os.environ.get('EVAL_PLATFORM_SHARD_SIZE') or 'unset (one step per cell)'}; pool limits "
          f"{', '.join(str(pool_limit(args, w)) for w in args.widths)} (widths {','.join(map(str, args.widths))}); "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    report: dict = {"examples": args.examples, "latency": args.latency, "worker_processes": args.worker_processes,
                    "step_concurrency": args.step_concurrency, "capacity": args.capacity, "shard_size": args.shard_size,
                    "pool_limits": {w: pool_limit(args, w) for w in args.widths},
                    "cores": os.cpu_count(), "probe": [], "widths": []}
    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as directory:
        tmp = args.logs or Path(directory)
        tmp.mkdir(parents=True, exist_ok=True)  # a --logs folder that does not exist yet
        if args.probe_seconds > 0:
            print("  the server alone (raw HTTP client in threads):", flush=True)
            for probe in probe_server(args.latency, sorted({w * per_worker for w in args.widths}), args.probe_seconds, tmp):
                report["probe"].append(asdict(probe))
                print(f"    concurrency {probe.concurrency:5d}: {probe.calls_per_second:7.1f} calls/s of ideal "
                      f"{probe.ideal_calls_per_second:7.1f} ({probe.fraction_of_ideal:.2f}); server CPU "
                      f"{probe.server_cpu_percent:.0f}%, client CPU {probe.client_cpu_percent:.0f}%", flush=True)
        examples = examples_frame(args.examples)
        results: list[WidthResult] = []
        for workers in args.widths:
            result = run_width(args, workers, examples, tmp / f"width-{workers}")
            base = next((r for r in results if r.workers == 1), None)
            result.speedup = base.wall_seconds / result.wall_seconds if base else (1.0 if workers == 1 else None)
            results.append(result)
            report["widths"].append(asdict(result))
            duplicate = "" if result.calls == result.expected_calls else f" (expected {result.expected_calls}!)"
            speedup = f"{result.speedup:.2f}x (goal ~{workers})" if result.speedup is not None else "n/a (no width 1)"
            print(f"  {workers} worker(s), total concurrency {result.total_concurrency}: wall {result.wall_seconds:.1f} s, "
                  f"calls {result.calls}{duplicate}, ideal {result.ideal_seconds:.1f} s, ratio {result.ratio:.2f}x "
                  f"(goal <= 1.3), speed-up {speedup}; decision {result.decision}", flush=True)
            phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.phases.items())
            print(f"      {result.llm_steps} LLM step(s) ({result.llm_step_seconds:.1f} step-seconds) over "
                  f"{result.llm_span_seconds:.1f} s (span/ideal "
                  f"{result.llm_span_seconds / result.ideal_seconds:.2f}x), other {result.other_seconds:.1f} s [{phases}]; "
                  f"server peak in flight {result.in_flight_peak}; launches {result.launch_attempts}; deployment CPU {result.cpu_seconds:.0f} s "
                  f"= {result.cpu_cores_busy:.2f} of {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}", flush=True)
            if args.timeline:
                for job, step, start, end in result.timeline:
                    print(f"        {start:7.1f} - {end:7.1f} s  {job}: {step}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    ok = all(r.ratio <= 1.3 and r.calls == r.expected_calls and r.decision == "pass" for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
