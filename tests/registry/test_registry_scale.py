"""The registry's read paths at scale (issue 18): ``/metrics``, ``evalp status`` and the list routes take a
fixed number of SQL statements whatever the number of runs and model versions, their figures agree with
the rows, and a run's recorded cost is what its LLM calls cost.

Timings at 1k-100k runs are printed by ``bench/bench_registry_scale.py``; these tests count statements."""

from __future__ import annotations

import statistics
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from bench.bench_registry_scale import fill
from eval_platform.governance import observability
from eval_platform.governance.observability import collect, render_prometheus, status_text
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    EvalRun,
    GateDecisionRecord,
    Model,
    Promotion,
    access,
)


@contextmanager
def statements(engine):
    """The SQL statements ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(connection, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def expected_figures(platform: EvalPlatform, now: datetime, window_days: float = 7.0) -> dict:
    """The figures computed the slow, obvious way from every row (the comparison JSON included)."""
    with platform.registry.session() as session:
        rows = session.execute(select(EvalRun.status, EvalRun.requested_at, EvalRun.started_at, EvalRun.finished_at,
                                      EvalRun.metric_seconds, EvalRun.cost, EvalRun.comparison)).all()

    def aware(value):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)

    since = now - timedelta(days=window_days)
    window = sorted((r for r in rows if aware(r.requested_at) >= since), key=lambda r: aware(r.requested_at), reverse=True)
    finished = [r for r in window if r.finished_at is not None]
    costs = [r.cost for r in window if r.cost is not None]
    queue = [(aware(r.started_at) - aware(r.requested_at)).total_seconds() for r in window if r.started_at]
    return {
        "by_status": {s: sum(1 for r in rows if r.status == s) for s in sorted({r.status for r in rows})},
        "requested_in_window": len(window),
        "finished": len(finished), "failed": sum(1 for r in finished if r.status == "failed"),
        # newest first, None where the run has not started
        "queue": queue, "queue_by_recency": [(aware(r.started_at) - aware(r.requested_at)).total_seconds() if r.started_at else None
                                             for r in window],
        "metric": [r.metric_seconds for r in window if r.metric_seconds is not None],
        "cost_per_run": (sum(costs) / len(costs)) if costs else 0.0, "cost_count": len(costs),
        "stale": sum(1 for r in rows if (r.comparison or {}).get("stale_baseline_run_id")),
    }


def test_figures_take_the_same_statements_at_any_size(tmp_path, db_url, monkeypatch):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    engine = platform.registry.engine
    now = datetime.now(UTC)
    fill(engine, 300, names=10, versions=30, days=30, now=now)
    with statements(engine) as small:
        collect(platform, now=now)
    fill(engine, 3000, names=10, versions=30, days=30, now=now, first_run=300, seed=1)
    with statements(engine) as large:
        figures = collect(platform, now=now)
    assert len(small) == len(large) <= 12  # no statement per run

    expected = expected_figures(platform, now)
    runs, fr = figures["runs"], figures["failure_rate"]
    assert runs["by_status"] == expected["by_status"] and runs["total"] == 3300
    assert runs["requested_in_window"] == expected["requested_in_window"] > 300  # the window is a fraction of the runs
    assert (fr["finished"], fr["failed"]) == (expected["finished"], expected["failed"]) and fr["failed"] > 0
    queue = figures["queue_seconds"]
    assert queue["count"] == len(expected["queue"])
    assert queue["sum"] == pytest.approx(sum(expected["queue"]), abs=1e-3 * len(expected["queue"]))
    assert queue["p50"] == pytest.approx(statistics.median(expected["queue"]), abs=1e-3)
    assert queue["buckets"]["60"] == sum(1 for q in expected["queue"] if q <= 60)
    assert figures["metric_seconds"]["p90"] == pytest.approx(observability.percentile(expected["metric"], 90))
    assert figures["metric_seconds"]["count"] == len(expected["metric"])
    assert figures["cost"]["per_run"] == pytest.approx(expected["cost_per_run"]) and expected["cost_per_run"] > 0
    assert figures["cost"]["count"] == expected["cost_count"]
    assert figures["stale_baselines"] == expected["stale"] > 0
    assert "stale baselines: " + str(expected["stale"]) in status_text(figures)
    assert "evalp_eval_run_cost_per_run " in render_prometheus(figures)

    # the percentiles read a bounded sample: the most recently requested runs of the window
    monkeypatch.setattr(observability, "PERCENTILE_SAMPLE", 50)
    with statements(engine) as bounded:
        sampled = collect(platform, now=now)
    recent = [q for q in expected["queue_by_recency"][:50] if q is not None]
    assert sampled["queue_seconds"]["p50"] == pytest.approx(statistics.median(recent), abs=1e-3)
    assert sampled["queue_seconds"]["count"] == len(expected["queue"])  # counts are over the whole window
    assert len(bounded) == len(large)
    platform.close()


def test_list_routes_take_the_same_statements_for_any_page(tmp_path, db_url):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    engine = platform.registry.engine
    fill(engine, 2000, names=12, versions=25, days=30)
    token = access.create_token(platform, "bench")
    with TestClient(create_app_for(platform)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        counts = {}
        for path, sizes in (("/v1/models", (5, 300)), ("/v1/eval-runs", (5, 500)), ("/v1/datasets", (1, 10)),
                            ("/v1/metric-suites", (1, 10))):
            for limit in sizes:
                client.get(path, params={"limit": limit})  # warm (first-use caches)
                with statements(engine) as seen:
                    response = client.get(path, params={"limit": limit})
                assert response.status_code == 200, response.text
                counts[(path, limit)] = len(seen)
            assert counts[(path, sizes[0])] == counts[(path, sizes[1])], (path, counts)

        # every model version, page by page, with its own gate decision and promotion
        with platform.registry.session() as session:
            decisions = {}
            for d in session.scalars(select(GateDecisionRecord).where(GateDecisionRecord.scope == "model_version",
                                                                      GateDecisionRecord.superseded.is_(False))
                                     .order_by(GateDecisionRecord.id)):
                decisions[f"{d.model_name}@{d.model_version}"] = d.decision
            promoted = {}
            for p in session.scalars(select(Promotion).order_by(Promotion.id)):
                promoted[p.model_name] = p.model_version
            keys = [f"{m.name}@{m.version}" for m in session.scalars(select(Model).order_by(Model.name, Model.version))]
        listed = []
        for offset in range(0, 300, 70):
            response = client.get("/v1/models", params={"offset": offset, "limit": 70})
            assert response.headers["X-Total-Count"] == "300" and response.headers["X-Offset"] == str(offset)
            listed.extend(response.json())
        assert [m["key"] for m in listed] == keys
        assert {m["key"]: m["gate"] for m in listed} == decisions
        assert {m["key"] for m in listed if m["promoted"]} == {f"{n}@{v}" for n, v in promoted.items()}
        named = client.get("/v1/models", params={"name": "model-003", "offset": 20}).json()
        assert [m["key"] for m in named] == [f"model-003@{v}" for v in range(21, 26)]

        # the dataset restricted to another team is neither listed nor counted
        response = client.get("/v1/datasets", params={"limit": 2, "offset": 3})
        assert [d["key"] for d in response.json()] == ["bench-data@4"] and response.headers["X-Total-Count"] == "4"
        response = client.get("/v1/metric-suites", params={"limit": 1, "offset": 1})
        assert [s["key"] for s in response.json()] == ["bench-suite@2"] and response.headers["X-Total-Count"] == "2"
        assert client.get("/v1/models", params={"limit": 0}).status_code == 422
    platform.close()


def create_app_for(platform):
    from eval_platform.api.app import create_app

    return create_app(platform)


# cost per run ------------------------------------------------------------------------------------------------
PRICES = {"models": {"kb-qa-v1": {"input_per_1k": 0.5, "output_per_1k": 1.5}, "kb-qa-v2": {"input_per_1k": 0.5, "output_per_1k": 1.5},
                     "rule-judge-1": {"input_per_1k": 0.25, "output_per_1k": 1.0}}}


@pytest.fixture
def llm_service(tmp_path, server, monkeypatch, db_url):
    from tests.llm.test_llm_runs import _service

    yield from _service(tmp_path, server, monkeypatch, db_url)


def call_costs(platform: EvalPlatform) -> dict[str, float]:
    """Every LLM call the registry recorded (its call cache): key -> the cost recorded with the call."""
    from eval_platform.registry.llm_schema import LLMCallRecord

    with platform.registry.session() as session:
        return dict(session.execute(select(LLMCallRecord.cache_key, LLMCallRecord.cost)).all())


def test_cost_per_run_is_what_its_calls_cost(llm_service, tmp_path):
    from eval_platform.evaluation import judging, predicting
    from tests.evaluation.test_runner import evaluate
    from tests.judge_calibration import judge_license, license_judge
    from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite

    service = llm_service
    service.register_suite(judged_suite(prices=PRICES, judge_license=judge_license()))
    license_judge(service, judge_config())  # a release-blocking judge gates only with a license
    licensing = call_costs(service)  # the license's calls are no run's
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    assert evaluate(service, "qa-bot@1").decision == "pass"
    calls = {k: c for k, c in call_costs(service).items() if k not in licensing}
    spent = sum(calls.values())
    assert len(calls) == 20 + 60 and all(c is not None and c > 0 for c in calls.values())  # answers, 3 judge samples each
    run = service.runs("qa-bot@1")[0]
    assert run.cost == pytest.approx(spent) and spent > 0
    assert run.queue_seconds == pytest.approx((run.started_at - run.requested_at).total_seconds())
    figures = collect(service)
    assert figures["cost"]["per_run"] == pytest.approx(spent) and figures["cost"]["count"] == 1
    line = next(x for x in render_prometheus(figures).splitlines() if x.startswith("evalp_eval_run_cost_per_run "))
    assert float(line.split()[1]) == pytest.approx(spent)

    # a rerun is served from the call cache: it costs nothing, and the mean over the two runs halves
    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    assert {k: c for k, c in call_costs(service).items() if k not in licensing} == calls and service.runs("qa-bot@1")[-1].cost == 0
    assert collect(service)["cost"]["per_run"] == pytest.approx(spent / 2)

    # a run that fails after its calls (its results cleared as it fails) still records what they cost
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat")
    [failing] = service.claim_runs("qa-bot@2", "doomed", requested=True)
    predicting.produce_predictions(service, failing)
    judging.judge_outputs(service, failing)
    assert service.fail_runs_of("doomed", "killed by signal 9") == [failing.run_id]
    new_calls = {k: c for k, c in call_costs(service).items() if k not in calls and k not in licensing}
    failed = service.run(failing.run_id)
    assert failed.status == "failed" and failed.results is None and len(new_calls) > 0
    assert failed.cost == pytest.approx(sum(new_calls.values()))
    assert collect(service)["cost"]["per_run"] == pytest.approx((spent + sum(new_calls.values())) / 3)


def test_migration_0006_derives_the_new_columns_of_existing_runs(db_url):
    """Runs recorded before 0006 get their queue time, cost and stale baseline from what they recorded."""
    import sqlalchemy as sa
    from alembic import command

    from eval_platform.registry.database import Registry, _alembic_config

    registry = Registry(db_url)
    config = _alembic_config()
    with registry.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    before_0006 = sa.table("eval_runs", *(sa.column(c) for c in (
        "run_id", "model_name", "model_version", "dataset_id", "dataset_version", "suite_id", "suite_version", "attempt",
        "status", "trigger", "requested_at", "started_at", "finished_at")),
        sa.column("results", sa.JSON), sa.column("comparison", sa.JSON), sa.column("lineage", sa.JSON))
    requested = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    common = {"model_name": "m", "model_version": 1, "dataset_id": "d", "dataset_version": 1, "suite_id": "s", "suite_version": 1,
              "trigger": "registration", "requested_at": requested}
    llm_results = {"metrics": {}, "judge": {"report": {"cost": 0.25}}, "judge_pairwise": {"verdicts": "sha256:v", "report": {"cost": 0.5}}}
    pairwise = {"pairwise": {"a": {"verdicts": "sha256:v", "report": {"cost": 0.5}}, "b": {"verdicts": "sha256:v", "report": {"cost": 0.5}}},
                "stale_baseline_run_id": "run-old"}
    with registry.engine.begin() as connection:
        connection.execute(sa.insert(before_0006), [
            {**common, "run_id": "run-llm", "attempt": 1, "status": "succeeded", "results": llm_results, "comparison": pairwise,
             "lineage": {"candidate_calls": {"cost": 1.0}}, "started_at": requested + timedelta(seconds=90.5),
             "finished_at": requested + timedelta(seconds=200)},
            {**common, "run_id": "run-plain", "attempt": 2, "status": "failed", "results": None, "comparison": None,
             "lineage": None, "started_at": requested + timedelta(seconds=3), "finished_at": requested + timedelta(seconds=4)},
            {**common, "run_id": "run-queued", "attempt": 3, "status": "queued", "results": None, "comparison": None,
             "lineage": None, "started_at": None, "finished_at": None}])
    registry.migrate()
    with registry.engine.connect() as connection:
        rows = {r.run_id: r for r in connection.execute(sa.text(
            "SELECT run_id, queue_seconds, cost, stale_baseline_run_id FROM eval_runs"))}
    assert rows["run-llm"].cost == pytest.approx(1.75)  # candidate 1 + judge 0.25 + the one pairwise judging 0.5
    assert rows["run-llm"].queue_seconds == pytest.approx(90.5, abs=1e-3) and rows["run-llm"].stale_baseline_run_id == "run-old"
    assert (rows["run-plain"].cost, rows["run-plain"].stale_baseline_run_id) == (0.0, None)
    assert rows["run-plain"].queue_seconds == pytest.approx(3, abs=1e-3)
    assert (rows["run-queued"].cost, rows["run-queued"].queue_seconds) == (None, None)
    registry.dispose()
