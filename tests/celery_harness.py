"""A real broker-backed deployment of the Celery profile (README "Scaling out") on loopback, for the slow test
``tests/dagster/test_celery_deployment.py`` and for ``bench/bench_scale_out.py`` (importable without pytest).

:func:`celery_deployment` starts, in this order, each process in a session of its own:

* the project's local OpenAI-compatible server (``python -m eval_platform.llm.server``) answering in
  ``llm_latency`` seconds with at most ``llm_capacity`` replies at once, as its own process so its threads
  do not share this process's interpreter lock;
* fresh PostgreSQL databases for Dagster's storage and for the registry (so no LLM call is cached), and a fresh
  RabbitMQ virtual host;
* ``workers`` workers started with the README's ``dagster-celery worker start`` command and the shipped
  ``deploy/celery/run_config.yaml``, each with ``worker_processes`` pool processes (Celery ``--concurrency``);
* the real ``dagster-daemon`` on the shipped ``dagster.celery.yaml`` with ``EVAL_PLATFORM_EXECUTOR=celery``.

It is ready when every worker logs ``NAME@host ready.`` and the daemon's sensor and run-queue daemons have
heartbeated (polled, never a fixed sleep). Teardown runs on any exit, a failure or Ctrl-C included: SIGTERM
then SIGKILL to each process group, then the databases and the virtual host are dropped. A second Ctrl-C during
teardown is ignored, so nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy

from eval_platform.platform.service import EvalPlatform

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("EVAL_PLATFORM_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
#: every queue of the eval steps (deploy/celery/run_config.yaml); each worker listens on all of them
QUEUES = ("dagster", "model_inference", "judge", "cpu_metrics")
#: the Dagster pools of the eval steps (assets/evaluation.py); their limits are set to the workers' slots
POOLS = ("model_inference", "judge", "cpu_metrics")
#: the daemons a decision needs: the sensors queue the eval runs, the run queue launches them
REQUIRED_DAEMONS = ("SENSOR", "QUEUED_RUN_COORDINATOR")


@dataclass(frozen=True)
class DeploymentSpec:
    """The shape of one deployment."""

    workers: int = 2
    #: Celery ``--concurrency`` of each worker: the steps one worker runs at once
    worker_processes: int = 1
    #: seconds the LLM server takes per reply
    llm_latency: float = 0.2
    #: replies the LLM server serves at once (None: unbounded)
    llm_capacity: int | None = None
    #: the Dagster pool limits; None sets each pool to the workers' slots (workers x worker_processes), so the
    #: pools never bound below the workers (the profile's default_limit is 4)
    pool_limits: Mapping[str, int] | None = None
    #: extra environment of every process (e.g. EVAL_PLATFORM_SHARD_SIZE)
    env: Mapping[str, str] = field(default_factory=dict)
    postgres_url: str = PG_ADMIN_URL
    #: a safety net only: every wait polls its condition and returns as soon as it holds
    safety_seconds: float = 300.0

    def __post_init__(self) -> None:
        for name in ("workers", "worker_processes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.llm_latency < 0:
            raise ValueError(f"llm_latency must be >= 0, got {self.llm_latency}")
        if self.llm_capacity is not None and self.llm_capacity < 1:
            raise ValueError(f"llm_capacity must be at least 1 or None, got {self.llm_capacity}")


class LLMServerProcess:
    """The local LLM server as a process of its own; ``stats()`` / ``reset_stats()`` read and reset the counters
    its ``/v1/_stats`` and ``/v1/_reset`` routes keep (the same dict as ``LocalLLMServer.stats()``)."""

    def __init__(self, process: subprocess.Popen, base_url: str):
        self.process, self.base_url = process, base_url

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=30) as response:
            return json.loads(response.read())

    def reset_stats(self) -> None:
        request = urllib.request.Request(f"{self.base_url}/_reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass


@dataclass
class Deployment:
    spec: DeploymentSpec
    service: EvalPlatform
    llm: LLMServerProcess
    instance: dg.DagsterInstance
    daemon: subprocess.Popen
    workers: dict[str, subprocess.Popen]
    logs: list[Path]
    home: Path
    #: starts one more worker process of this deployment under the given name (see :meth:`add_worker`)
    start_worker: Callable[[str], subprocess.Popen]
    killed: set[str] = field(default_factory=set)

    def report(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}" for log in self.logs if log.exists())

    def wait_for(self, condition: Callable[[], Any], what: str, poll: float = 0.2, timeout: float | None = None) -> Any:
        """``condition()``'s first truthy value; fails with the logs if a process dies or nothing comes."""
        limit = self.spec.safety_seconds if timeout is None else timeout
        started = time.monotonic()
        while time.monotonic() - started < limit:
            value = condition()
            if value:
                return value
            alive = {"daemon": self.daemon, "llm": self.llm.process,
                     **{n: w for n, w in self.workers.items() if n not in self.killed}}
            dead = [name for name, process in alive.items() if process.poll() is not None]
            if dead:
                raise AssertionError(f"{', '.join(dead)} exited while waiting for {what}:\n{self.report()}")
            time.sleep(poll)
        raise AssertionError(f"no {what} after {limit:.0f} s:\n{self.report()}")

    def add_worker(self, name: str) -> None:
        """One more worker (e.g. after a kill, so a second kill still leaves one), once it is ready."""
        if name in self.workers:
            raise ValueError(f"worker {name} exists")
        self.workers[name] = self.start_worker(name)
        self.wait_for_worker(name)

    def wait_for_worker(self, name: str) -> None:
        log = next(log for log in self.logs if log.name == f"{name}.log")
        self.wait_for(lambda: f"{self.node(name)} ready." in log.read_text(errors="replace"), f"worker {name} ready")

    def node(self, name: str) -> str:
        """The Celery node name of worker ``name`` (``dagster-celery worker start -n NAME`` -> ``NAME@host``)."""
        return f"{name}@{socket.gethostname()}"

    def runs(self, job: str, model_key: str) -> list[dg.DagsterRun]:
        """The job's runs of the model version: its eval cells' runs (``evaluate_eval_cell``), or its gate's."""
        from eval_platform_dagster.assets.partitions import split_cell

        def model_of(partition: str) -> str:
            return split_cell(partition)[0] if job == "evaluate_eval_cell" else partition

        return [run for run in self.instance.get_runs(dg.RunsFilter(job_name=job))
                if model_of(run.tags.get("dagster/partition", "")) == model_key]

    def decided(self, model_key: str):
        """The model version's gate decision once its gate job has succeeded and its eval runs finished, else None."""
        runs = self.service.runs(model_key)
        gates = self.runs("decide_gate", model_key)
        if runs and all(run.status in ("succeeded", "failed") for run in runs) and \
                any(run.status == dg.DagsterRunStatus.SUCCESS for run in gates):
            return self.service.gate_decision(model_key)
        return None

    def step_workers(self, run_id: str) -> dict[str, list[str]]:
        """step key -> the Celery workers that took it, in order, from the engine event dagster-celery's task
        records when a worker starts a step ("Executing steps X in celery worker", metadata "Celery worker")."""
        taken: dict[str, list[str]] = {}
        for entry in self.instance.all_logs(run_id):
            event = entry.dagster_event
            if event is not None and event.is_engine_event and "in celery worker" in (event.message or ""):
                metadata = event.engine_event_data.metadata
                taken.setdefault(event.step_key or "", []).append(str(metadata["Celery worker"].value))
        return taken

    def step_spans(self, run_id: str) -> dict[str, tuple[float, float]]:
        """step key -> (start, end) wall-clock timestamps of each step that succeeded in the run."""
        started: dict[str, float] = {}
        spans: dict[str, tuple[float, float]] = {}
        for entry in self.instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}):
            key = entry.step_key or ""
            if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                started[key] = entry.timestamp
            elif key in started:
                spans[key] = (started[key], entry.timestamp)
        return spans

    def materialization_workers(self, run_id: str) -> dict[str, str]:
        """asset -> the ``worker`` (host:pid) metadata of its materialization in the run."""
        return {asset: str(metadata["worker"].value) for asset, metadata in self.materializations(run_id).items()}

    def materializations(self, run_id: str) -> dict[str, Mapping[str, Any]]:
        """asset -> the metadata (name -> ``MetadataValue``) of its materialization in the run."""
        found: dict[str, Mapping[str, Any]] = {}
        for entry in self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            if materialization is not None:
                found[materialization.asset_key.to_user_string()] = materialization.metadata
        return found

    def finished_steps(self, run_id: str) -> set[str]:
        """The step keys of the run that succeeded or failed (a step taken and not in here is still running)."""
        return {entry.step_key or "" for entry in self.instance.all_logs(
            run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE})}


def _pg(admin: sqlalchemy.Engine, statement: str) -> None:
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(statement))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def stop_session(process: subprocess.Popen) -> None:
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


@contextmanager
def _teardown_not_interrupted() -> Iterator[None]:
    """Ctrl-C ignored while the deployment is torn down (only the main thread may set a signal handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def llm_command(spec: DeploymentSpec) -> list[str]:
    command = [sys.executable, "-m", "eval_platform.llm.server", "--port", "0", "--latency", str(spec.llm_latency)]
    return command + (["--capacity", str(spec.llm_capacity)] if spec.llm_capacity is not None else [])


def llm_listening(process: subprocess.Popen, log: Path, safety_seconds: float) -> LLMServerProcess:
    """The server once it prints ``serving ... at http://127.0.0.1:PORT/v1`` (it listens before printing)."""
    started = time.monotonic()
    while time.monotonic() - started < safety_seconds:
        text = log.read_text(errors="replace")
        if " at http://" in text:
            return LLMServerProcess(process, "http://" + text.split(" at http://", 1)[1].split()[0])
        if process.poll() is not None:
            raise RuntimeError(f"the LLM server exited with {process.returncode}:\n{text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"the LLM server did not listen within {safety_seconds} s")


def _daemons_ready(instance: dg.DagsterInstance) -> bool:
    beats = instance.get_daemon_heartbeats()
    return all(name in beats for name in REQUIRED_DAEMONS)


@contextmanager
def celery_deployment(spec: DeploymentSpec, tmp: Path) -> Iterator[Deployment]:
    """The deployment of ``spec`` with its files under ``tmp`` (see the module docstring), torn down on exit."""
    suffix = uuid.uuid4().hex[:10]
    dagster_db, registry_db, vhost = f"evalp_dagster_{suffix}", f"evalp_registry_{suffix}", f"evalp_{suffix}"
    admin = sqlalchemy.create_engine(spec.postgres_url, isolation_level="AUTOCOMMIT")
    server_url = spec.postgres_url.rsplit("/", 1)[0]
    started: list[subprocess.Popen] = []
    created: list[str] = []
    service = None
    saved: dict[str, str | None] = {}
    logs: list[Path] = []
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        code_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the same code as this process
        logs.append(tmp / "llm.log")
        with open(logs[-1], "wb") as output:
            started.append(subprocess.Popen(llm_command(spec), cwd=ROOT, env=code_env, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        llm = llm_listening(started[-1], logs[-1], spec.safety_seconds)
        for database in (dagster_db, registry_db):
            _pg(admin, f'CREATE DATABASE "{database}"')
            created.append(database)
        _rabbitmqctl("add_vhost", vhost)
        created.append(vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        home = tmp / "home"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.celery.yaml", dagster_home / "dagster.yaml")  # the shipped profile, unchanged
        env = {**code_env,
               "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
               "DAGSTER_HOME": str(dagster_home),
               "DAGSTER_PG_URL": server_url.replace("postgresql+psycopg2://", "postgresql://") + f"/{dagster_db}",
               "EVAL_PLATFORM_HOME": str(home), "EVAL_PLATFORM_DB_URL": f"{server_url}/{registry_db}",
               "EVAL_PLATFORM_EXECUTOR": "celery", "EVAL_LLM_BASE_URL": llm.base_url,
               "DAGSTER_CELERY_BROKER_URL": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
               "DAGSTER_CELERY_BACKEND_URL": "rpc://", **spec.env}
        env.pop("EVAL_PLATFORM_CELERY_CONFIG", None)  # the shipped deploy/celery/run_config.yaml

        def start(name: str, command: list[str]) -> subprocess.Popen:
            log = tmp / f"{name}.log"
            logs.append(log)
            with open(log, "wb") as output:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            started.append(process)
            return process

        def start_worker(name: str) -> subprocess.Popen:
            # the README's command. The queues are one comma-separated -q: dagster-celery turns each -q into a
            # celery -Q, and celery 5 keeps only the last of several -Q
            return start(name, [str(BIN / "dagster-celery"), "worker", "start", "-A", "eval_platform_dagster.jobs.celery_worker",
                                "-y", str(ROOT / "deploy/celery/run_config.yaml"), "-n", name,
                                "-q", ",".join(QUEUES), "--", "--concurrency", str(spec.worker_processes)])

        workers = {f"w{index}": start_worker(f"w{index}") for index in range(1, spec.workers + 1)}
        daemon = start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
        service = EvalPlatform.open(home, db_url=env["EVAL_PLATFORM_DB_URL"])
        saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "DAGSTER_PG_URL", "EVAL_LLM_BASE_URL")}
        os.environ.update({key: env[key] for key in saved})
        with dg.DagsterInstance.get() as instance:
            slots = spec.workers * spec.worker_processes
            limits = spec.pool_limits if spec.pool_limits is not None else dict.fromkeys(POOLS, slots)
            for pool, limit in limits.items():
                instance.event_log_storage.set_concurrency_slots(pool, limit)
            deployment = Deployment(spec, service, llm, instance, daemon, workers, logs, home, start_worker)
            for name in workers:
                deployment.wait_for_worker(name)
            deployment.wait_for(lambda: _daemons_ready(instance), "daemon heartbeats")
            yield deployment
    finally:
        with _teardown_not_interrupted():
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
            for process in reversed(started):  # the daemon first: it launches no run on a stopped worker
                stop_session(process)
            if service is not None:
                service.close()
            _drop(admin, created, vhost)


def _drop(admin: sqlalchemy.Engine, created: list[str], vhost: str) -> None:
    """The virtual host and the databases this deployment created (``created`` lists what exists)."""
    try:
        if vhost in created:
            _rabbitmqctl("delete_vhost", vhost)
    finally:
        for name in created:
            if name != vhost:
                _pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
