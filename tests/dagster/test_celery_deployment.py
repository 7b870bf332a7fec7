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
import signal
import socket
from collections.abc import Iterator
from importlib import resources as package_files
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from eval_platform.llm.cache import LLMCache
from eval_platform.platform.service import EvalPlatform
from tests.celery_harness import Deployment, DeploymentSpec, celery_deployment
from tests.judge_calibration import judge_license, license_judge
from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: the eval cell job's steps (canary_metrics materializes only for a cell run that evaluated canary runs)
EVAL_STEPS = ("predictions", "judgments", "metric_table", "comparison", "canary_metrics")
#: 20 answers and 3 judge samples of each: the calls one fresh evaluation makes
CALLS_PER_EVAL = 20 + 3 * 20
#: the suites' LLM concurrency: at most this many calls are in flight in one step
CONCURRENCY = 2


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
    # two workers of one pool process each keep the deployment light on a busy machine
    spec = DeploymentSpec(workers=2, worker_processes=1, llm_latency=0.2, postgres_url=postgres_server)
    with celery_deployment(spec, tmp_path_factory.mktemp("celery")) as started:
        yield started


def test_the_gate_decision_arrives_with_every_step_run_on_the_celery_workers(deployment, tmp_path):
    service = deployment.service
    _dataset(service, "qa", slice(0, 20))
    # a release-blocking judge gates only with a license: checked before the suite exists, so the daemon's
    # judge-license run finds every verdict in the call cache and the call count below stays the eval's
    license_judge(service, judge_config())
    service.register_suite(judged_suite(concurrency=CONCURRENCY, judge_license=judge_license()))
    deployment.llm.reset_stats()
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])

    decision = deployment.wait_for(lambda: deployment.decided("qa-bot@1"), "gate decision of qa-bot@1")
    assert decision.decision == "pass", decision.reasons
    [run] = service.runs("qa-bot@1")
    assert run.status == "succeeded", run.status_reason
    assert deployment.llm.stats()["completions"] == CALLS_PER_EVAL

    nodes = {deployment.node(name) for name in deployment.workers}
    worker_pids = {process.pid for process in deployment.workers.values()}
    [cell_run] = deployment.runs("evaluate_eval_cell", "qa-bot@1")
    [gate_run] = [run for run in deployment.runs("decide_gate", "qa-bot@1") if run.status == dg.DagsterRunStatus.SUCCESS]
    for dagster_run, steps in ((cell_run, EVAL_STEPS), (gate_run, ("gate_decision",))):
        taken = deployment.step_workers(dagster_run.run_id)
        assert set(taken) == set(steps), taken
        assert all(len(workers) == 1 and workers[0] in nodes for workers in taken.values()), taken
        for asset, worker in deployment.materialization_workers(dagster_run.run_id).items():
            host, pid = worker.rsplit(":", 1)
            assert host == socket.gethostname()
            # the step ran in a pool process of one of the two workers started above, not in the run's process
            assert _ancestors(int(pid)) & worker_pids, (asset, worker)


def test_a_worker_killed_mid_step_the_other_finishes_it_and_no_call_is_paid_twice(deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    _dataset(service, "qa2", slice(20, 40))  # other questions: none of their calls is in the cache yet
    cache = LLMCache(service.registry)
    cached_before = cache.count()
    llm.reset_stats()
    service.register_model("qa-bot-2", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa2", "qa")])

    def predicting_on():
        """The worker running the predictions step, once it has made a few candidate calls."""
        cells = deployment.runs("evaluate_eval_cell", "qa-bot-2@1")
        taken = deployment.step_workers(cells[0].run_id).get("predictions") if cells else None
        return taken[0] if taken and llm.stats()["completions"] >= 4 else None

    node = deployment.wait_for(predicting_on, "candidate calls made on a worker", poll=0.05)
    [victim] = [name for name in deployment.workers if deployment.node(name) == node]
    os.killpg(deployment.workers[victim].pid, signal.SIGKILL)  # the worker and its pool process, as a lost machine
    deployment.killed.add(victim)
    at_kill = llm.stats()
    # the answers the dead worker had committed to the call cache (its writer died with it: the count is final)
    committed_at_kill = cache.count() - cached_before
    [cell_run] = deployment.runs("evaluate_eval_cell", "qa-bot-2@1")
    assert "predictions" not in deployment.materialization_workers(cell_run.run_id), "predictions finished before the kill"
    assert at_kill["completions"] < 20

    decision = deployment.wait_for(lambda: deployment.decided("qa-bot-2@1"), "gate decision of qa-bot-2@1")
    assert decision.decision == "pass", decision.reasons
    [survivor] = [name for name in deployment.workers if name != victim]
    taken = deployment.step_workers(cell_run.run_id)
    assert taken["predictions"] == [node, deployment.node(survivor)]  # the broker handed the step over
    assert all(workers == [deployment.node(survivor)] for step, workers in taken.items() if step != "predictions")
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS  # the same run, no retry

    # counted at the server: only the calls the dead worker had asked for but not committed to the call cache
    # when it died (in flight, or answered while the cache's writer thread had not committed them yet: a few
    # on a loaded machine) are asked again; every committed answer is served from the cache to the survivor
    stats = llm.stats()
    record_property("calls", {"at_kill": at_kill["requests"], "answered_at_kill": at_kill["completions"],
                              "committed_at_kill": committed_at_kill, "total": stats["requests"]})
    assert CALLS_PER_EVAL <= stats["requests"] <= CALLS_PER_EVAL + at_kill["requests"] - committed_at_kill, \
        (stats, at_kill, committed_at_kill)
    [run] = service.runs("qa-bot-2@1")
    assert run.lineage["candidate_calls"]["cache_hits"] >= committed_at_kill
    assert run.lineage["candidate_calls"]["calls"] + run.lineage["candidate_calls"]["cache_hits"] == 20
