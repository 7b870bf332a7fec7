"""The Celery profile (README "Scaling out"), deployed for real on loopback: PostgreSQL for Dagster's storage
and for the registry (fresh databases), RabbitMQ (a fresh virtual host), two workers started with the README's
``dagster-celery worker start`` command and the shipped ``deploy/celery/run_config.yaml``, and the real
``dagster-daemon`` on the shipped ``dagster.celery.yaml`` with ``EVAL_PLATFORM_EXECUTOR=celery``.

A model version whose suite calls the candidate model and a pinned judge on the project's local
OpenAI-compatible server is registered; its gate decision arrives, and every step of its eval cell and of its
gate job ran on a worker: Dagster's step events name the Celery worker, and the step's own ``worker`` metadata
is a pool process of one of the two workers. Then a worker is killed with SIGKILL while it runs a model
version's predictions step: the broker hands the step to the other worker, the decision still arrives, and the
server answered no call twice beyond those in flight when the worker died (the LLM call cache serves the rest).

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
from tests.judge_calibration import judge_license, license_judge
from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: a safety net only: every wait polls its condition and returns as soon as it holds
SAFETY_SECONDS = 300
BIN = Path(sys.executable).parent
QUEUES = ("dagster", "model_inference", "judge", "cpu_metrics")
#: the eval cell job's steps (canary_metrics materializes only for a cell run that evaluated canary runs)
EVAL_STEPS = ("predictions", "judgments", "metric_table", "comparison", "canary_metrics")
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
               "DAGSTER_CELERY_BACKEND_URL": "rpc://"}
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

        workers = {}
        for name in ("w1", "w2"):
            # the README's command; one pool process each keeps two workers light on a busy machine. The queues
            # are one comma-separated -q: dagster-celery turns each -q into a celery -Q, and celery 5 keeps only
            # the last of several -Q
            workers[name] = start(name, [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                         "-y", str(ROOT / "deploy/celery/run_config.yaml"), "-n", name,
                                         "-q", ",".join(QUEUES), "--", "--concurrency", "1"])
        daemon = start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        service = EvalPlatform.open(home, db_url=env["EVAL_PLATFORM_DB_URL"])
        saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "EVAL_LLM_BASE_URL")}
        os.environ.update({key: env[key] for key in saved})
        try:
            with dg.DagsterInstance.get() as instance:
                deployment = Deployment(service, llm, instance, daemon, workers, logs, home)
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
    found = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        found[materialization.asset_key.to_user_string()] = materialization.metadata["worker"].value
    return found


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
    # a release-blocking judge gates only with a license: checked before the suite exists, so the daemon's
    # judge-license run finds every verdict in the call cache and the call count below stays the eval's
    license_judge(service, judge_config())
    service.register_suite(judged_suite(concurrency=CONCURRENCY, judge_license=judge_license()))
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


def test_a_worker_killed_mid_step_the_other_finishes_it_and_no_call_is_paid_twice(deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    _dataset(service, "qa2", slice(20, 40))  # other questions: none of their calls is in the cache yet
    llm.reset_stats()
    service.register_model("qa-bot-2", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa2", "qa")])

    def predicting_on():
        """The worker running the predictions step, once it has made a few candidate calls."""
        cells = _runs(instance, "evaluate_eval_cell", "qa-bot-2@1")
        taken = _step_workers(instance, cells[0].run_id).get("predictions") if cells else None
        return taken[0] if taken and llm.stats()["completions"] >= 4 else None

    node = deployment.wait_for(predicting_on, "candidate calls made on a worker", poll=0.05)
    [victim] = [name for name in deployment.workers if deployment.node(name) == node]
    os.killpg(deployment.workers[victim].pid, signal.SIGKILL)  # the worker and its pool process, as a lost machine
    deployment.killed.add(victim)
    at_kill = llm.stats()
    [cell_run] = _runs(instance, "evaluate_eval_cell", "qa-bot-2@1")
    assert "predictions" not in _materialization_workers(instance, cell_run.run_id), "predictions finished before the kill"
    assert at_kill["completions"] < 20

    decision = deployment.wait_for(lambda: _decided(deployment, "qa-bot-2@1"), "gate decision of qa-bot-2@1")
    assert decision.decision == "pass", decision.reasons
    [survivor] = [name for name in deployment.workers if name != victim]
    taken = _step_workers(instance, cell_run.run_id)
    assert taken["predictions"] == [node, deployment.node(survivor)]  # the broker handed the step over
    assert all(workers == [deployment.node(survivor)] for step, workers in taken.items() if step != "predictions")
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS  # the same run, no retry

    # counted at the server: only a call in flight when the worker died (at most the suite's concurrency; a
    # reply the cache's writer thread had not committed yet would also count, but it commits within
    # milliseconds of a reply and the server takes 200 ms per call) is asked again; every answer the dead
    # worker had received was served from the call cache to the survivor
    stats = llm.stats()
    record_property("calls", {"at_kill": at_kill["requests"], "answered_at_kill": at_kill["completions"], "total": stats["requests"]})
    assert CALLS_PER_EVAL <= stats["requests"] <= CALLS_PER_EVAL + CONCURRENCY, (stats, at_kill)
    [run] = service.runs("qa-bot-2@1")
    assert run.lineage["candidate_calls"]["cache_hits"] >= at_kill["completions"] - CONCURRENCY
    assert run.lineage["candidate_calls"]["calls"] + run.lineage["candidate_calls"]["cache_hits"] == 20
