"""Benchmark of the registry's read paths at scale (a script, not a test).

    .venv/bin/python bench/bench_registry_scale.py                       # 1k, 10k, 100k runs; SQLite and PostgreSQL
    .venv/bin/python bench/bench_registry_scale.py --runs 1000 10000 --db sqlite

Fills a fresh registry (bulk inserts: the registry's own tables, written directly) with 10,000 model
versions (100 names x 100 versions, each with its gate decision, a promotion per name), 5 dataset versions
(one restricted to another team, so listings hide its runs), 2 suite versions, and N eval runs with their
run-scope gate decisions: requested over the last ``--days`` days (default 365: 100k runs is ~1,900 a
week, the brief's "thousands of eval runs per week"), mostly succeeded, some failed, superseded, queued
or running; a fifth priced as LLM runs; 1% with a stale baseline; results and comparison JSON of a
realistic size; then ``ANALYZE`` (and on PostgreSQL ``VACUUM``, as autovacuum would). On PostgreSQL the
database is a throwaway one on 127.0.0.1:5432, dropped afterwards.

At each N it prints the median of ``--repeat`` calls (after one warm-up) of:

* the ``/metrics`` scrape: ``collect`` + ``render_prometheus`` (goal: under 200 ms at 100k runs), and the
  same with every run moved into the 7-day window (the worst case: all runs requested this week);
* ``evalp status`` (the command in-process: opening the installation, the figures, the text);
* ``GET /v1/models``, ``GET /v1/eval-runs``, ``GET /v1/datasets``, ``GET /v1/metric-suites`` (first page
  of 100) and the last page of ``/v1/models``, through the app in-process (auth included; goal: each under
  100 ms at 10k model versions and 100k runs).

References measured in the same run, printed as ratios: ``SELECT count(*) FROM eval_runs`` (the least a
figure over the runs can cost), and the implementation before migration 0006 (every run of the window
read with its JSON, every run loaded for the stale-baseline count; the model listing with one gate and
one promotion query per model version), measured once at the sizes up to ``--reference-max-runs``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_api import create_pg_database, drop_pg_database  # noqa: E402 - one throwaway-database helper for the benchmarks

GOAL_SCRAPE_MS = 200.0
GOAL_LIST_MS = 100.0
TEAM = "bench"


# filling ---------------------------------------------------------------------------------------------
def fill(engine, runs: int, names: int = 100, versions: int = 100, days: float = 365.0, seed: int = 0,
         now: datetime | None = None, chunk: int = 5000, first_run: int = 0) -> dict:
    """Bulk-insert a registry's worth of rows (see the module docstring) into a migrated, empty registry.

    ``first_run`` > 0 adds runs ``first_run..first_run+runs-1`` to a registry this function already filled
    (with the same ``names`` and ``versions``): only runs and their decisions are written then.
    Returns what was written: ``{"models", "runs", "datasets", "suites"}`` counts."""
    from sqlalchemy import insert

    from eval_platform.registry.schema import EvalRun, GateDecisionRecord

    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    datasets = [("bench-data", v, {"level": "internal"}) for v in (1, 2, 3, 4)]
    datasets.append(("bench-secret", 1, {"level": "restricted", "teams": ["someone-else"]}))
    suites = [("bench-suite", 1), ("bench-suite", 2)]
    combos = [(d, v, s, sv) for d, v, _ in datasets for s, sv in suites]
    schema = {"id_columns": ["example_id"], "label_column": "label", "feature_columns": [f"f{i}" for i in range(8)],
              "slice_columns": ["region"], "columns": {"example_id": "int64", "label": "int64"}}

    def chunks(rows):
        for start in range(0, len(rows), chunk):
            yield rows[start:start + chunk]

    models = [{"name": f"model-{n:03d}", "version": v, "kind": "sklearn", "uri": f"/models/m{n}-{v}.skops",
               "file_hash": f"sha256:{n}-{v}", "trusted_types": [], "description": "",
               "registered_at": now - timedelta(days=days * (1 - v / versions))}
              for n in range(names) for v in range(1, versions + 1)]
    with engine.begin() as connection:
        if first_run == 0:
            _fill_catalog(connection, rng, now, days, datasets, suites, schema, models, names, versions, chunks)
        n_models = names * versions
        run_rows, run_decisions = [], []
        for i in range(first_run, first_run + runs):
            run_row, decision = _run_rows(rng, i, first_run, runs, now, days, models, combos)
            run_rows.append(run_row)
            if decision is not None:
                run_decisions.append(decision)
        for part in chunks(run_rows):
            connection.execute(insert(EvalRun), part)
        for part in chunks(run_decisions):
            connection.execute(insert(GateDecisionRecord), part)
    return {"models": n_models, "runs": runs, "datasets": len(datasets), "suites": len(suites)}


def _run_rows(rng: random.Random, i: int, first_run: int, runs: int, now: datetime, days: float, models: list[dict],
              combos: list[tuple]) -> tuple[dict, dict | None]:
    """Run ``i``'s row and, when it succeeded, its gate decision's row (the draws from ``rng`` in a fixed order)."""
    n_models = len(models)
    model = models[i % n_models]
    # each model version's runs cycle through the combinations from a different start, so the
    # datasets (the hidden one too) interleave in request order; unique per (version, combo, attempt)
    dataset_id, dataset_version, suite_id, suite_version = combos[(i // n_models + i % n_models) % len(combos)]
    # request times in run order (with jitter), so the last runs are the recent ones
    requested = now - timedelta(seconds=(1 - (i - first_run + rng.random()) / runs) * days * 86400)
    recent = i - first_run >= runs - max(1, runs // 200)  # the last 0.5% requested: still queued or running
    status = (rng.choice(("queued", "running")) if recent else
              rng.choices(("succeeded", "failed", "superseded"), (93, 4, 3))[0])
    started = requested + timedelta(seconds=rng.expovariate(1 / 30)) if status != "queued" else None
    finished = started + timedelta(seconds=rng.uniform(5, 60)) if status in ("succeeded", "failed", "superseded") else None
    llm = rng.random() < 0.2
    stale = f"run-{i - 1:08d}" if status == "succeeded" and rng.random() < 0.01 else None
    results = None
    if status in ("succeeded", "superseded"):
        results = {"metrics": {"roc_auc": rng.random(), "accuracy": rng.random()},
                   "n_examples": {"roc_auc": 1000, "accuracy": 1000},
                   "slices": [{"metric": "roc_auc", "slice": f"region={r}", "value": rng.random(), "n_examples": 250,
                               "flagged": False} for r in "abcd"],
                   "artifacts": {"roc_curve": "sha256:" + "0" * 64, "pr_curve": "sha256:" + "1" * 64}}
    comparison = None
    if status == "succeeded":
        comparison = {"baseline_state": "stale" if stale else "ok", "baseline_model": f"{model['name']}@1",
                      "metrics": {"roc_auc": {"candidate": 0.9, "baseline": 0.89, "delta": 0.01, "ci_low": -0.01, "ci_high": 0.03}},
                      "slices": {}, "regressions": {}}
        if stale:
            comparison["stale_baseline_run_id"] = stale
    run_id = f"run-{i:08d}"
    run_row = {
        "run_id": run_id, "model_name": model["name"], "model_version": model["version"],
        "dataset_id": dataset_id, "dataset_version": dataset_version, "suite_id": suite_id, "suite_version": suite_version,
        "attempt": 1 + i // (n_models * len(combos)), "status": status, "trigger": "registration",
        "results": results, "comparison": comparison, "lineage": {"code": {"platform": "bench"}},
        "metric_seconds": rng.uniform(0.01, 5) if results else None,
        "cost": (round(rng.uniform(0.01, 0.1), 6) if llm else 0.0) if status in ("succeeded", "failed") else None,
        "stale_baseline_run_id": stale, "queue_seconds": (started - requested).total_seconds() if started else None,
        "requested_at": requested, "started_at": started, "finished_at": finished}
    decision = None
    if status == "succeeded":
        decision = {"scope": "run", "model_name": model["name"], "model_version": model["version"],
                              "eval_run_id": run_id, "decision": "pass", "reasons": [{"rule": "roc_auc", "outcome": "pass"}],
                              "superseded": False, "decided_at": finished}
    return run_row, decision


def _fill_catalog(connection, rng, now, days, datasets, suites, schema, models, names, versions, chunks) -> None:
    from sqlalchemy import insert

    from eval_platform.registry.schema import (
        EvalDataset,
        GateDecisionRecord,
        MetricSuite,
        Model,
        Promotion,
    )

    connection.execute(insert(EvalDataset), [
        {"dataset_id": d, "version": v, "task_type": "binary_classification", "label_policy": "human_reviewed",
         "access_policy": policy, "content_hash": f"sha256:{d}{v}", "version_hash": f"sha256:v{d}{v}", "row_count": 1000,
         "schema": schema, "description": "", "status": "active", "created_at": now - timedelta(days=days + 1)}
        for d, v, policy in datasets])
    connection.execute(insert(MetricSuite), [
        {"suite_id": s, "version": v, "purpose": "release_blocking", "task_type": "binary_classification",
         "metric_defs": {"suite_id": s, "metrics": [{"name": "roc_auc", "metric": "roc_auc@1"}]},
         "definition_hash": f"sha256:{s}{v}", "created_at": now - timedelta(days=days + 1)} for s, v in suites])
    for part in chunks(models):
        connection.execute(insert(Model), part)
    decisions = []
    for model in models:
        if rng.random() < 0.1:  # an earlier decision, superseded
            decisions.append({"scope": "model_version", "model_name": model["name"], "model_version": model["version"],
                              "decision": "no_decision", "reasons": [], "superseded": True, "decided_at": now})
        decisions.append({"scope": "model_version", "model_name": model["name"], "model_version": model["version"],
                          "decision": rng.choice(("pass", "pass", "fail", "no_decision")), "reasons": [{"rule": "roc_auc"}],
                          "superseded": False, "decided_at": now})
    for part in chunks(decisions):
        connection.execute(insert(GateDecisionRecord), part)
    connection.execute(insert(Promotion), [
        {"model_name": f"model-{n:03d}", "model_version": rng.randint(1, versions), "promoted_by": TEAM, "reason": "",
         "promoted_at": now} for n in range(names)])


# the implementation before migration 0006 (the reference) --------------------------------------------
def collect_before_0006(platform, window_days: float = 7.0) -> dict:
    """What ``collect`` did before: every run of the window read with its results JSON, every run of the
    registry loaded for the stale-baseline count (the figures' shape does not matter here, the reads do)."""
    from sqlalchemy import func, select

    from eval_platform.registry import EvalRun, GateOverride

    since = datetime.now(UTC) - timedelta(days=window_days)
    with platform.registry.session() as session:
        by_status = dict(session.execute(select(EvalRun.status, func.count()).group_by(EvalRun.status)).all())
        rows = list(session.execute(select(EvalRun.status, EvalRun.requested_at, EvalRun.started_at, EvalRun.finished_at,
                                           EvalRun.metric_seconds, EvalRun.results).where(EvalRun.requested_at >= since)))
        overrides = list(session.scalars(select(GateOverride)))
    queue = sorted((r.started_at - r.requested_at).total_seconds() for r in rows if r.started_at and r.requested_at)
    stale = sum(1 for run in platform.runs() if (run.comparison or {}).get("stale_baseline_run_id"))
    return {"by_status": by_status, "queue": queue, "stale": stale, "overrides": len(overrides)}


def list_models_before_0006(platform) -> list:
    """The model listing before: every model version, one gate and one promotion query each."""
    return [(m.key, platform.gate_decision(m.key), platform.promoted_version(m.name)) for m in platform.models()]


# measuring -------------------------------------------------------------------------------------------
def timed(function, repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in ms, after one warm-up call."""
    function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def once(function) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def settle(engine) -> None:
    """What a registry in steady state has after bulk writes: planner statistics, and on PostgreSQL the
    visibility map that index-only scans need (autovacuum's work, done now rather than whenever it runs)."""
    from sqlalchemy import text

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def verdict(ms: float, goal: float) -> str:
    return f"{'meets' if ms < goal else 'MISSES'} the {goal:.0f} ms goal"


def _evalp_status(cli_api, home: Path, db_url: str) -> None:
    """``evalp status`` against ``db_url`` (its output discarded), the environment restored after."""
    previous = os.environ.get("EVAL_PLATFORM_DB_URL")
    os.environ["EVAL_PLATFORM_DB_URL"] = db_url
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_api.main(["status", "--home", str(home)]) == 0
    finally:
        if previous is None:
            os.environ.pop("EVAL_PLATFORM_DB_URL", None)
        else:
            os.environ["EVAL_PLATFORM_DB_URL"] = previous


def _get_ok(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])


def _request_every_run_in_the_window(platform) -> None:
    """Move every run's request time into the last 7 days (shuffled), the worst case of the 7-day scrape."""
    from sqlalchemy import select, update

    from eval_platform.registry import EvalRun

    with platform.registry.engine.begin() as connection:
        now = datetime.now(UTC)
        ids = [r for (r,) in connection.execute(select(EvalRun.run_id))]
        random.Random(1).shuffle(ids)
        for start in range(0, len(ids), 5000):
            part = ids[start:start + 5000]
            offset = timedelta(seconds=start / max(len(ids), 1) * 6.9 * 86400)
            connection.execute(update(EvalRun).where(EvalRun.run_id.in_(part)).values(
                requested_at=now - offset - timedelta(seconds=120), started_at=now - offset - timedelta(seconds=90),
                finished_at=now - offset - timedelta(seconds=30), queue_seconds=30.0))


def measure(db: str, runs: int, args) -> dict:
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from eval_platform.api.app import create_app
    from eval_platform.cli import api as cli_api
    from eval_platform.governance.observability import collect, render_prometheus
    from eval_platform.platform.service import EvalPlatform
    from eval_platform.registry import EvalRun, access

    pg_name = None
    with tempfile.TemporaryDirectory(prefix="evalp-bench-scale-") as tmp:
        home = Path(tmp) / "home"
        if db == "postgresql":
            db_url, pg_name = create_pg_database()
        else:
            db_url = f"sqlite:///{home / 'registry.db'}"
        try:
            platform = EvalPlatform.open(home, db_url=db_url)
            started = time.perf_counter()
            written = fill(platform.registry.engine, runs, days=args.days)
            fill_seconds = time.perf_counter() - started
            settle(platform.registry.engine)
            token = access.create_token(platform, TEAM)
            client = TestClient(create_app(platform))
            client.__enter__()  # the app's lifespan, as when served
            client.headers["Authorization"] = f"Bearer {token}"

            def scrape():
                return render_prometheus(collect(platform))

            def status():
                _evalp_status(cli_api, home, db_url)

            def get(path):
                return lambda: _get_ok(client, path)

            def count_runs():
                with platform.registry.session() as session:
                    session.scalar(select(func.count()).select_from(EvalRun))

            out = {"db": db, "runs": runs, "written": written, "fill_s": fill_seconds}
            out["count_ms"] = timed(count_runs, args.repeat)
            out["scrape_ms"] = timed(scrape, args.repeat)
            out["status_ms"] = timed(status, args.repeat)
            last_page = (written["models"] - 1) // 100 * 100
            for name, path in (("models_ms", "/v1/models"), ("models_last_ms", f"/v1/models?offset={last_page}"),
                               ("eval_runs_ms", "/v1/eval-runs"), ("datasets_ms", "/v1/datasets"),
                               ("suites_ms", "/v1/metric-suites")):
                out[name] = timed(get(path), args.repeat)
            if runs <= args.reference_max_runs:
                out["ref_scrape_ms"] = once(lambda: collect_before_0006(platform))
                if args.reference_models and runs == min(args.runs):  # the model versions are the same at every N
                    out["ref_models_ms"] = once(lambda: list_models_before_0006(platform))
            _request_every_run_in_the_window(platform)  # the worst case for the scrape
            settle(platform.registry.engine)
            out["scrape_all_in_window_ms"] = timed(scrape, args.repeat)
            client.__exit__(None, None, None)
            platform.close()
            return out
        finally:
            if pg_name:
                drop_pg_database(pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--days", type=float, default=365.0, help="the runs' request times spread over this many days")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference-max-runs", type=int, default=10_000,
                        help="measure the pre-0006 implementation (once) up to this many runs")
    parser.add_argument("--no-reference-models", dest="reference_models", action="store_false",
                        help="skip the pre-0006 model listing (20k queries at 10k model versions)")
    args = parser.parse_args()
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load_before = os.getloadavg()
    print(f"registry read benchmark: {', '.join(f'{n:,}' for n in args.runs)} eval runs, 10,000 model versions, "
          f"runs requested over {args.days:g} days; median of {args.repeat} after a warm-up")
    print(f"goals: /metrics scrape under {GOAL_SCRAPE_MS:.0f} ms at 100k runs; each list route under {GOAL_LIST_MS:.0f} ms\n")
    results = []
    for db in databases:
        for runs in args.runs:
            r = measure(db, runs, args)
            results.append(r)
            floor = r["count_ms"]
            print(f"{db} {runs:>7,} runs (filled in {r['fill_s']:.1f} s; SELECT count(*) {floor:.1f} ms):")
            print(f"  /metrics scrape        {r['scrape_ms']:8.1f} ms  ({r['scrape_ms'] / floor:5.1f}x count(*); "
                  f"{verdict(r['scrape_ms'], GOAL_SCRAPE_MS)})")
            print(f"    all runs in window   {r['scrape_all_in_window_ms']:8.1f} ms  ({r['scrape_all_in_window_ms'] / floor:5.1f}x count(*); "
                  f"{verdict(r['scrape_all_in_window_ms'], GOAL_SCRAPE_MS)})")
            if "ref_scrape_ms" in r:
                print(f"    before 0006          {r['ref_scrape_ms']:8.1f} ms  (now {r['ref_scrape_ms'] / r['scrape_ms']:.0f}x faster)")
            print(f"  evalp status           {r['status_ms']:8.1f} ms  (opening the installation included)")
            for key, label in (("models_ms", "GET /v1/models"), ("models_last_ms", "  last page"),
                               ("eval_runs_ms", "GET /v1/eval-runs"), ("datasets_ms", "GET /v1/datasets"),
                               ("suites_ms", "GET /v1/metric-suites")):
                print(f"  {label:22s} {r[key]:8.1f} ms  ({verdict(r[key], GOAL_LIST_MS)})")
            if "ref_models_ms" in r:
                print(f"    models before 0006   {r['ref_models_ms']:8.1f} ms  (all 10,000, two queries each; "
                      f"now {r['ref_models_ms'] / r['models_ms']:.0f}x faster per page)")
    load_after = os.getloadavg()
    print(f"\nconditions: {os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          "(other processes share the cores: compare figures from one run)")


if __name__ == "__main__":
    main()
