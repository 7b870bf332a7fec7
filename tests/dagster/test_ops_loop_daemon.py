"""The ops loop under the real ``dagster-daemon`` with the shipped ``dagster.yaml``: a run worker killed
with SIGKILL in the middle of an evaluation (an out-of-memory kill) is detected by run monitoring, its pool
slot is freed, Dagster retries the run and the retry finishes the eval runs the dead worker had claimed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from eval_platform.gates.waiting import gate_status
from tests.conftest import ROOT, local_llm_server
from tests.llm.test_llm_runs import _service, candidate_file, suite

pytestmark = pytest.mark.slow

#: a safety net only: every wait below polls for its condition and returns as soon as it holds
SAFETY_SECONDS = 900


def wait_for(condition, what: str, daemon: subprocess.Popen, log: Path):
    started = time.monotonic()
    while time.monotonic() - started < SAFETY_SECONDS:
        value = condition()
        if value:
            return value
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {SAFETY_SECONDS} s:\n{log.read_text()[-3000:]}")


def worker_pid(instance, run_id: str) -> int | None:
    """The run worker's pid, as the run's own event log reports it ("Started process for run (pid: N).")."""
    for entry in instance.all_logs(run_id):
        found = re.search(r"Started process for run \(pid: (\d+)\)", entry.message or "")
        if found:
            return int(found.group(1))
    return None


@pytest.fixture
def slow_server():
    yield from local_llm_server(latency=1.5)  # 20 answers one at a time: about 30 s of candidate calls


def test_a_killed_run_worker_is_detected_its_slot_freed_and_the_eval_finished_by_the_retry(tmp_path, slow_server, monkeypatch):
    local, _ = slow_server
    service = next(_service(tmp_path, slow_server, monkeypatch, None))
    home = tmp_path / "home"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")  # the shipped configuration, unchanged
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "EVAL_PLATFORM_HOME": str(home)}
    env.pop("EVAL_PLATFORM_DB_URL", None)
    log = dagster_home / "daemon.log"
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                              cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    try:
        service.register_suite(suite(concurrency=1))
        service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
        with dg.DagsterInstance.get() as instance:
            def claimed():
                [run] = service.runs("qa-bot@1")
                return run.dagster_run_id if run.status == "running" and local.stats()["completions"] >= 2 else None

            first_run_id = wait_for(claimed, "eval run claimed by a Dagster run with calls made", daemon, log)
            pid = wait_for(lambda: worker_pid(instance, first_run_id), "run worker's pid in the run's events", daemon, log)
            # the predictions step holds a slot of the model_inference pool while it calls the model
            assert first_run_id in instance.event_log_storage.get_concurrency_info("model_inference").active_run_ids
            [run] = service.runs("qa-bot@1")
            assert run.status == "running", "the eval finished before the worker could be killed"
            os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does

            def finished():
                [run] = service.runs("qa-bot@1")
                return run if run.status in ("succeeded", "failed") else None

            run = wait_for(finished, "finished eval run", daemon, log)
            assert run.status == "succeeded", run.status_reason
            assert run.dagster_run_id != first_run_id  # finished by Dagster's retry of the killed run
            killed = instance.get_run_by_id(first_run_id)
            assert killed.status == dg.DagsterRunStatus.FAILURE
            retry = instance.get_run_by_id(run.dagster_run_id)
            assert retry.tags.get("dagster/parent_run_id") == first_run_id
            # the comparison step marks its runs succeeded, then decides the version's gate: wait until it is
            # settled (decided after its last run ended), as `evalp gate wait` does
            status = wait_for(lambda: (s := gate_status(service, "qa-bot@1")).settled and s, "the settled gate decision", daemon, log)
            assert status.decision == "pass"
            assert run.lineage["candidate_calls"]["cache_hits"] >= 2  # the answers paid for before the kill were kept

            def slots_free():
                return instance.event_log_storage.get_concurrency_info("model_inference").active_slot_count == 0

            assert wait_for(slots_free, "the dead run's pool slot freed", daemon, log)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        service.close()
