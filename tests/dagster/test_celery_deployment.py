"""The Celery profile (README "Scaling out"), deployed for real on loopback: PostgreSQL for Dagster's storage
and for the registry (fresh databases), RabbitMQ (a fresh virtual host), two workers started with the README's
``dagster-celery worker start`` command and the shipped ``deploy/celery/run_config.yaml``, and the real
``dagster-daemon`` on the shipped ``dagster.celery.yaml`` with ``EVAL_PLATFORM_EXECUTOR=celery``.

A model version whose suite calls the candidate model and a pinned judge on the project's local
OpenAI-compatible server is registered; its gate decision arrives, and every step of its eval cell and of its
gate job ran on a worker: Dagster's step events name the Celery worker, and the step's own ``worker`` metadata
is a pool process of one of the two workers. With ``EVAL_PLATFORM_SHARD_SIZE=5`` a cell's 20 examples are 4
prediction shards and 4 judge shards, which spread over both workers (each shard's ``host:pid`` is in the
merge step's ``shard_workers`` metadata). Then a worker is killed with SIGKILL while it runs a prediction
shard, and (after a third worker joined) another while it runs a judge shard: the broker hands the shard to
a surviving worker, the decision still arrives, and the server answered no call twice beyond those in flight
when the worker died (the LLM call cache serves the rest; the shards other workers finished are not re-run).

Every wait polls for its condition and fails at once, with the logs, if a process of the deployment exits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources as package_files
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy

from eval_platform.llm.server import LocalLLMServer
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.assets.partitions import split_cell
from tests.conftest import ROOT
from tests.llm.test_llm_runs import candidate_file, judged_suite

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: a safety net only: every wait polls its condition and returns as soon as it holds
SAFETY_SECONDS = 300
BIN = Path(sys.executable).parent
QUEUES = ("dagster", "model_inference", "judge", "cpu_metrics")
#: rows per shard (EVAL_PLATFORM_SHARD_SIZE of the deployment): a cell's 20 examples are 4 shards
SHARD_SIZE = 5
SHARDS = 4
PREDICT_SHARDS = tuple(f"predictions.predict_shard[r0_s{i}]" for i in range(SHARDS))
JUDGE_SHARDS = tuple(f"judgments.judge_shard[r0_s{i}]" for i in range(SHARDS))
#: the eval cell job's steps (canary_metrics materializes only for a cell run that evaluated canary runs): the
#: graph-backed predictions and judgments are a plan step, one step per shard and a merge step each
EVAL_STEPS = ("predictions.plan_prediction_shards", *PREDICT_SHARDS, "predictions.merge_prediction_shards",
              "judgments.plan_judgment_shards", *JUDGE_SHARDS, "judgments.merge_judgment_shards",
              "metric_table", "comparison", "canary_metrics")
#: 20 answers and 3 judge samples of each: the calls one fresh evaluation makes
CALLS_PER_EVAL = 20 + 3 * 20
#: the suites' LLM concurrency: at most this many calls are in flight in one step
CONCURRENCY = 2


@dataclass
class Deployment:
    service: EvalPlatform
    llm: LocalLLMServer
    instance: dg.DagsterInstance
    daemon: subprocess.Popen
    workers: dict[str, subprocess.Popen]
    logs: list[Path]
    home: Path
    start_worker: Callable[[str], subprocess.Popen]
    killed: set[str] = field(default_factory=set)

    def report(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}" for log in self.logs if log.exists())

    def wait_for(self, condition: Callable[[], object], what: str, poll: float = 0.2):
        """``condition()``'s first truthy value; fails with the logs if a process dies or nothing moves."""
        started = time.monotonic()
        while time.monotonic() - started < SAFETY_SECONDS:
            value = condition()
            if value:
                return value
            alive = {"daemon": self.daemon, **{n: w for n, w in self.workers.items() if n not in self.killed}}
            dead = [name for name, process in alive.items() if process.poll() is not None]
            if dead:
                raise AssertionError(f"{', '.join(dead)} exited while waiting for {what}:\n{self.report()}")
            time.sleep(poll)
        raise AssertionError(f"no {what} after {SAFETY_SECONDS} s:\n{self.report()}")

    def node(self, name: str) -> str:
        """The Celery node name of worker ``name`` (``dagster-celery worker start -n NAME`` -> ``NAME@host``)."""
        return f"{name}@{socket.gethostname()}"

    def add_worker(self, name: str) -> None:
        """Start one more worker (after a kill, so the next kill still leaves one) and wait until it is ready."""
        self.workers[name] = self.start_worker(name)
        log = self.home.parent / f"{name}.log"
        self.wait_for(lambda: f"{self.node(name)} ready." in log.read_text(errors="replace"), f"worker {name} ready")


def _pg(admin: sqlalchemy.Engine, statement: str) -> None:
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(statement))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's session (a worker's pool, the daemon's code server), then SIGKILL to whatever
    of the session outlives its leader (a code server still waiting on a run of a failed test)."""
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole session has ended
        pass
    process.wait()


def _ancestors(pid: int) -> set[int]:
    """The pids above ``pid`` up to init, read from /proc (the process must be alive)."""
    found = set()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def _dataset(service: EvalPlatform, name: str, rows: slice) -> None:
    records = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(records[rows]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    service.register_dataset(name, frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                             label_policy="human_reviewed", slice_columns=["category"])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_server) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("celery")
    suffix = uuid.uuid4().hex[:10]
    dagster_db, registry_db, vhost = f"evalp_dagster_{suffix}", f"evalp_registry_{suffix}", f"evalp_{suffix}"
    admin = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    server_url = postgres_server.rsplit("/", 1)[0]
    started: list[subprocess.Popen] = []
    llm = LocalLLMServer(latency=0.2)
    base_url = llm.start()
    _pg(admin, f'CREATE DATABASE "{dagster_db}"')
    _pg(admin, f'CREATE DATABASE "{registry_db}"')
    _rabbitmqctl("add_vhost", vhost)
    service = None
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        home = tmp / "home"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.celery.yaml", dagster_home / "dagster.yaml")  # the shipped profile, unchanged
        env = {**os.environ,
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
               "DAGSTER_HOME": str(dagster_home),
               "DAGSTER_PG_URL": server_url.replace("postgresql+psycopg2://", "postgresql://") + f"/{dagster_db}",
               "EVAL_PLATFORM_HOME": str(home), "EVAL_PLATFORM_DB_URL": f"{server_url}/{registry_db}",
               "EVAL_PLATFORM_EXECUTOR": "celery", "EVAL_LLM_BASE_URL": base_url,
               "DAGSTER_CELERY_BROKER_URL": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               "DAGSTER_CELERY_BACKEND_URL": "rpc://",
               # the operator's shard size: the 20 examples of a cell are 4 shards, spread over the workers
               "EVAL_PLATFORM_SHARD_SIZE": str(SHARD_SIZE)}
        env.pop("EVAL_PLATFORM_CELERY_CONFIG", None)  # the shipped deploy/celery/run_config.yaml
        logs = []

        def start(name: str, command: list[str]) -> subprocess.Popen:
            log = tmp / f"{name}.log"
            logs.append(log)
            with open(log, "wb") as output:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            started.append(process)
            return process

        def start_worker(name: str) -> subprocess.Popen:
            # the README's command; one pool process each keeps two workers light on a busy machine. The queues
            # are one comma-separated -q: dagster-celery turns each -q into a celery -Q, and celery 5 keeps only
            # the last of several -Q
            return start(name, [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                "-y", str(ROOT / "deploy/celery/run_config.yaml"), "-n", name,
                                "-q", ",".join(QUEUES), "--", "--concurrency", "1"])

        workers = {name: start_worker(name) for name in ("w1", "w2")}
        daemon = start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        service = EvalPlatform.open(home, db_url=env["EVAL_PLATFORM_DB_URL"])
        saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "EVAL_LLM_BASE_URL")}
        os.environ.update({key: env[key] for key in saved})
        try:
            with dg.DagsterInstance.get() as instance:
                deployment = Deployment(service, llm, instance, daemon, workers, logs, home, start_worker)
                for name in workers:
                    deployment.wait_for(lambda name=name: f"{deployment.node(name)} ready." in (tmp / f"{name}.log").read_text(errors="replace"),
                                        f"worker {name} ready")
                yield deployment
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    finally:
        for process in started:
            _stop(process)
        if service is not None:
            service.close()
        llm.stop()
        _rabbitmqctl("delete_vhost", vhost)
        _pg(admin, f'DROP DATABASE IF EXISTS "{dagster_db}" WITH (FORCE)')
        _pg(admin, f'DROP DATABASE IF EXISTS "{registry_db}" WITH (FORCE)')
        admin.dispose()


def _runs(instance: dg.DagsterInstance, job: str, model_key: str) -> list[dg.DagsterRun]:
    """The job's runs of the model version: its eval cells' runs, or its gate's."""
    def model_of(partition: str) -> str:
        return split_cell(partition)[0] if job == "evaluate_eval_cell" else partition

    return [run for run in instance.get_runs(dg.RunsFilter(job_name=job))
            if model_of(run.tags.get("dagster/partition", "")) == model_key]


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """step key -> the Celery workers that took it, in order, from the engine event dagster-celery's task
    records when a worker starts a step ("Executing steps X in celery worker", metadata "Celery worker")."""
    taken: dict[str, list[str]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.is_engine_event and "in celery worker" in (event.message or ""):
            metadata = event.engine_event_data.metadata
            taken.setdefault(event.step_key, []).append(metadata["Celery worker"].value)
    return taken


def _materialization_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """asset -> the ``worker`` (host:pid) metadata of its materialization in the run."""
    return {asset: metadata["worker"].value for asset, metadata in _materializations(instance, run_id).items()}


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    """asset -> the metadata of its materialization in the run."""
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        found[materialization.asset_key.to_user_string()] = materialization.metadata
    return found


def _finished_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {entry.step_key for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_SUCCESS,
                                                                           dg.DagsterEventType.STEP_FAILURE})}


def _decided(deployment: Deployment, model_key: str):
    """The model version's decision once its gate job has succeeded and its eval run finished."""
    runs = deployment.service.runs(model_key)
    gates = _runs(deployment.instance, "decide_gate", model_key)
    if runs and all(run.status in ("succeeded", "failed") for run in runs) and \
            any(run.status == dg.DagsterRunStatus.SUCCESS for run in gates):
        return deployment.service.gate_decision(model_key)
    return None


def test_the_gate_decision_arrives_with_every_step_run_on_the_celery_workers(deployment, tmp_path):
    service, instance = deployment.service, deployment.instance
    _dataset(service, "qa", slice(0, 20))
    service.register_suite(judged_suite(concurrency=CONCURRENCY))
    deployment.llm.reset_stats()
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])

    decision = deployment.wait_for(lambda: _decided(deployment, "qa-bot@1"), "gate decision of qa-bot@1")
    assert decision.decision == "pass", decision.reasons
    [run] = service.runs("qa-bot@1")
    assert run.status == "succeeded", run.status_reason
    assert deployment.llm.stats()["completions"] == CALLS_PER_EVAL

    nodes = {deployment.node(name) for name in deployment.workers}
    worker_pids = {process.pid for process in deployment.workers.values()}
    [cell_run] = _runs(instance, "evaluate_eval_cell", "qa-bot@1")
    taken = _step_workers(instance, cell_run.run_id)
    # the shards of the one eval cell ran on both workers
    assert {taken[step][0] for step in PREDICT_SHARDS + JUDGE_SHARDS} == nodes, taken
    for asset in ("predictions", "judgments"):
        # each shard's worker is in the merge's metadata: a pool process of one of the two workers
        shard_workers = _materializations(instance, cell_run.run_id)[asset]["shard_workers"].value
        assert set(shard_workers) == {f"r0_s{i}" for i in range(SHARDS)}, shard_workers
        for worker in shard_workers.values():
            host, pid = worker.rsplit(":", 1)
            assert host == socket.gethostname() and _ancestors(int(pid)) & worker_pids, (asset, worker)
    [cell_run] = _runs(instance, "evaluate_eval_cell", "qa-bot@1")
    [gate_run] = [run for run in _runs(instance, "decide_gate", "qa-bot@1") if run.status == dg.DagsterRunStatus.SUCCESS]
    for dagster_run, steps in ((cell_run, EVAL_STEPS), (gate_run, ("gate_decision",))):
        taken = _step_workers(instance, dagster_run.run_id)
        assert set(taken) == set(steps), taken
        assert all(len(workers) == 1 and workers[0] in nodes for workers in taken.values()), taken
        for asset, worker in _materialization_workers(instance, dagster_run.run_id).items():
            host, pid = worker.rsplit(":", 1)
            assert host == socket.gethostname()
            # the step ran in a pool process of one of the two workers started above, not in the run's process
            assert _ancestors(int(pid)) & worker_pids, (asset, worker)


def _kill_during(deployment: Deployment, model_key: str, steps: tuple[str, ...], calls_made: Callable[[], bool]):
    """SIGKILL the worker (and its pool process, as a lost machine) running one of ``steps`` of the model
    version's eval cell once ``calls_made()``; returns the killed worker, its node, the step and the server's
    counters at the kill."""
    instance = deployment.instance

    def running():
        cells = _runs(instance, "evaluate_eval_cell", model_key)
        if not cells or not calls_made():
            return None
        taken, finished = _step_workers(instance, cells[0].run_id), _finished_steps(instance, cells[0].run_id)
        busy = [(step, taken[step][-1]) for step in steps if step in taken and step not in finished]
        return busy[0] if busy else None

    step, node = deployment.wait_for(running, f"a step of {steps[0].split('[')[0]} running on a worker", poll=0.05)
    [victim] = [name for name in deployment.workers if deployment.node(name) == node and name not in deployment.killed]
    os.killpg(deployment.workers[victim].pid, signal.SIGKILL)
    deployment.killed.add(victim)
    return victim, node, step, deployment.llm.stats()


def _survivor(deployment: Deployment) -> str:
    return next(deployment.node(name) for name in deployment.workers if name not in deployment.killed)


def test_a_worker_killed_mid_shard_another_finishes_it_and_no_call_is_paid_twice(deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    _dataset(service, "qa2", slice(20, 40))  # other questions: none of their calls is in the cache yet
    llm.reset_stats()
    service.register_model("qa-bot-2", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa2", "qa")])

    victim, node, step, at_kill = _kill_during(deployment, "qa-bot-2@1", PREDICT_SHARDS,
                                               lambda: llm.stats()["completions"] >= 1)
    [cell_run] = _runs(instance, "evaluate_eval_cell", "qa-bot-2@1")
    assert "predictions" not in _materialization_workers(instance, cell_run.run_id), "predictions finished before the kill"

    decision = deployment.wait_for(lambda: _decided(deployment, "qa-bot-2@1"), "gate decision of qa-bot-2@1")
    assert decision.decision == "pass", decision.reasons
    taken = _step_workers(instance, cell_run.run_id)
    assert taken[step] == [node, _survivor(deployment)], taken  # the broker handed the shard over
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS  # the same run, no retry

    # counted at the server: only a call in flight when the worker died (at most the suite's concurrency; a
    # reply the cache's writer thread had not committed yet would also count, but it commits within
    # milliseconds of a reply and the server takes 200 ms per call) is asked again; every answer the dead
    # worker had received was served from the call cache to the survivor, and the shards other workers
    # finished were not run again
    stats = llm.stats()
    record_property("calls", {"at_kill": at_kill["requests"], "answered_at_kill": at_kill["completions"], "total": stats["requests"]})
    assert CALLS_PER_EVAL <= stats["requests"] <= CALLS_PER_EVAL + CONCURRENCY, (stats, at_kill)
    assert sum(len(taken[s]) for s in PREDICT_SHARDS) == SHARDS + 1  # one shard run twice, the rest once
    [run] = service.runs("qa-bot-2@1")
    assert run.lineage["candidate_calls"]["calls"] + run.lineage["candidate_calls"]["cache_hits"] == 20


def test_a_worker_killed_mid_judge_shard_the_decision_arrives_and_repeats_stay_within_the_calls_in_flight(
        deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    deployment.add_worker("w3")  # the previous test killed one of the two
    _dataset(service, "qa3", slice(40, 60))
    llm.reset_stats()
    service.register_model("qa-bot-3", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa3", "qa")])

    victim, node, step, at_kill = _kill_during(deployment, "qa-bot-3@1", JUDGE_SHARDS,
                                               lambda: llm.stats()["completions_by_model"].get("rule-judge-1", 0) >= 1)
    [cell_run] = _runs(instance, "evaluate_eval_cell", "qa-bot-3@1")
    assert "judgments" not in _materialization_workers(instance, cell_run.run_id), "judgments finished before the kill"

    decision = deployment.wait_for(lambda: _decided(deployment, "qa-bot-3@1"), "gate decision of qa-bot-3@1")
    assert decision.decision == "pass", decision.reasons
    taken = _step_workers(instance, cell_run.run_id)
    assert taken[step] == [node, _survivor(deployment)], taken
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS

    stats = llm.stats()
    record_property("calls", {"at_kill": at_kill["requests"], "answered_at_kill": at_kill["completions"], "total": stats["requests"]})
    # repeated calls: at most those in flight in the killed judge shard (the suite's concurrency)
    assert CALLS_PER_EVAL <= stats["requests"] <= CALLS_PER_EVAL + CONCURRENCY, (stats, at_kill)
    [run] = service.runs("qa-bot-3@1")
    assert run.status == "succeeded" and run.results["judge"]["summary"]["n_scored"] == 20
