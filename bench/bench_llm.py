"""Benchmark of LLM candidate and judge calls against the local server (a script, not a test).

    .venv/bin/python bench/bench_llm.py                       # 1000 + 1000 calls, 200 ms, concurrency 32
    .venv/bin/python bench/bench_llm.py --concurrency 16 --calls 500

The bundled OpenAI-compatible server runs as its own process (``python -m eval_platform.llm.server``) with
``--latency`` seconds per reply. Through the real ``openai`` client, the registry-backed cache (SQLite in a
temporary directory) and the thread pool of ``generate_predictions`` / ``judge_predictions``:

* ``--calls`` candidate calls (distinct prompts over the shipped QA set), then as many judge calls;
* their wall time against the concurrency-limited ideal ``2 * calls * latency / concurrency`` (target:
  within 1.3x), and the mean latency the client saw;
* the rerun of both phases: its wall time and the calls it made (target: zero; the server's own counter
  is checked too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from eval_platform.llm import (
    CandidateSpec,
    Decoding,
    Endpoint,
    LLMCache,
    LLMClient,
    Price,
    PriceTable,
    PromptTemplate,
    RetryPolicy,
    default_judge,
    generate_predictions,
    judge_predictions,
)
from eval_platform.llm.server import qa_dataset
from eval_platform.registry import Registry


def server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/_stats", timeout=10) as response:
        return json.loads(response.read())


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time (user + system) of this process, or of another one on Linux (``/proc``)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="candidate calls (and as many judge calls)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)

    qa = qa_dataset()
    rows = [qa.iloc[i % len(qa)] for i in range(args.calls)]
    # distinct prompts (so distinct candidate and judge calls) over the shipped questions
    examples = pd.DataFrame({"example_id": [f"ex-{i:05d}" for i in range(args.calls)],
                             "prompt": [f"(request {i}) {r['prompt']}" for i, r in enumerate(rows)],
                             "reference": [r["reference"] for r in rows]})
    server = subprocess.Popen([sys.executable, "-m", "eval_platform.llm.server", "--port", "0", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().rsplit(" ", 1)[-1].strip()
        with tempfile.TemporaryDirectory() as home:
            registry = Registry.open(f"sqlite:///{home}/registry.db")
            cache = LLMCache(registry)
            endpoint = Endpoint("bench-local", base_url)
            prompt = PromptTemplate("bench-qa", "1", "Answer with only the answer.\nQuestion: {prompt}\nAnswer:")
            candidate = CandidateSpec(endpoint, "kb-qa-v2", "1", prompt, Decoding(max_tokens=16))
            judge = default_judge(endpoint, "rule-judge-1")
            prices = PriceTable({"kb-qa-v2": Price(0.15, 0.6), "rule-judge-1": Price(2.5, 10.0)})
            # one client per endpoint for the process (as a runner holds it): its connection pool serves both phases
            client = LLMClient(endpoint, RetryPolicy(timeout=30.0), prices)

            def one_run():
                started = time.perf_counter()
                predictions, cand = generate_predictions(candidate, examples, cache, client=client,
                                                         concurrency=args.concurrency)
                frame = examples.merge(predictions[["example_id", "prediction"]], on="example_id")
                judged = judge_predictions(frame, judge, cache, client=client, concurrency=args.concurrency)
                return time.perf_counter() - started, cand, judged

            print(f"LLM call benchmark: {args.calls} candidate + {args.calls} judge calls, server latency "
                  f"{args.latency * 1000:.0f} ms, concurrency {args.concurrency}, registry cache on SQLite")
            client_cpu, server_cpu = cpu_seconds(), cpu_seconds(server.pid)
            wall, cand, judged = one_run()
            client_cpu, server_cpu = cpu_seconds() - client_cpu, (cpu_seconds(server.pid) or 0) - (server_cpu or 0)
            ideal = 2 * args.calls * args.latency / args.concurrency
            made = cand.calls + judged.report.calls
            print(f"  first run   {wall:8.2f} s   ideal {ideal:.2f} s   ratio {wall / ideal:.3f}x   target <= 1.3x")
            for report in (cand, judged.report):
                print(f"    {report.summary()}; wall {report.wall_seconds:.2f} s, latency p50 "
                      f"{report.latency_p50 * 1000:.0f} ms p95 {report.latency_p95 * 1000:.0f} ms")
            print(f"    judge mean score {judged.summary['mean']:.3f}; server completions {server_stats(base_url)['completions']}; "
                  f"CPU: client {client_cpu:.2f} s, server {server_cpu:.2f} s; load average {os.getloadavg()[0]:.2f} "
                  f"on {os.cpu_count()} cores")
            before = server_stats(base_url)["completions"]
            rerun_wall, cand2, judged2 = one_run()
            rerun_calls = cand2.calls + judged2.report.calls
            served = server_stats(base_url)["completions"] - before
            print(f"  rerun       {rerun_wall:8.2f} s   calls {rerun_calls} (server saw {served})   cache hits "
                  f"{cand2.cache_hits + judged2.report.cache_hits}   target: 0 calls")
            print(f"  cache rows {cache.count()}   first-run calls {made}")
            client.close()
            registry.dispose()
        ok = wall / ideal <= 1.3 and rerun_calls == 0 and served == 0
        return 0 if ok else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
