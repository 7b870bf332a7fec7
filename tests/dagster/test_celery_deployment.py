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
a surviving worker (only that shard runs twice), the decision still arrives, and the server answered no call
twice beyond those the dead worker had not committed to the LLM call cache when it died (counted at the kill;
the cache serves the rest to the survivor).

Every wait polls for its condition and fails at once, with the logs, if a process of the deployment exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Callable, Iterator
from importlib import resources as package_files
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy import select

from eval_platform.llm.cache import LLMCache
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.llm_schema import LLMCallRecord
from tests.celery_harness import Deployment, DeploymentSpec, celery_deployment
from tests.judge_calibration import calibration_frame, judge_license, license_judge
from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: rows per shard (EVAL_PLATFORM_SHARD_SIZE of the deployment): a cell's 20 examples are 4 shards
SHARD_SIZE = 5
EXAMPLES = 20
SHARDS = EXAMPLES // SHARD_SIZE
PREDICT_SHARDS = tuple(f"predictions.predict_shard[r0_s{i}]" for i in range(SHARDS))
JUDGE_SHARDS = tuple(f"judgments.judge_shard[r0_s{i}]" for i in range(SHARDS))
#: the eval cell job's steps (canary_metrics materializes only for a cell run that evaluated canary runs): the
#: graph-backed predictions and judgments are a plan step, one step per shard and a merge step each
EVAL_STEPS = ("predictions.plan_prediction_shards", *PREDICT_SHARDS, "predictions.merge_prediction_shards",
              "judgments.plan_judgment_shards", *JUDGE_SHARDS, "judgments.merge_judgment_shards",
              "metric_table", "comparison", "canary_metrics")
#: 20 answers and 3 judge samples of each: the calls one fresh evaluation makes
JUDGE_SAMPLES = 3
CALLS_PER_EVAL = EXAMPLES + JUDGE_SAMPLES * EXAMPLES
#: the suites' LLM concurrency: at most this many calls are in flight in one step
CONCURRENCY = 2
#: the candidate's prompt template (tests/llm/test_llm_runs.py candidate_file), rendered by hand
CANDIDATE_PROMPT = "Question: {prompt}\nAnswer briefly."


def _ancestors(pid: int) -> set[int]:
    """The pids above ``pid`` up to init, read from /proc (the process must be alive)."""
    found = set()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def _questions(rows: slice) -> list[str]:
    records = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    return [record["question"] for record in records[rows]]


def _dataset(service: EvalPlatform, name: str, rows: slice) -> None:
    records = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(records[rows]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    service.register_dataset(name, frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                             label_policy="human_reviewed", slice_columns=["category"])


def _shard_questions(rows: slice, step: str) -> list[str]:
    """The questions of shard step ``...[r0_sN]``: rows [N * SHARD_SIZE, (N + 1) * SHARD_SIZE) of the dataset."""
    index = int(step.rsplit("_s", 1)[1].rstrip("]"))
    return _questions(rows)[index * SHARD_SIZE:(index + 1) * SHARD_SIZE]


def _cached_calls(service: EvalPlatform, kind: str, questions: list[str]) -> int:
    """Rows of the LLM call cache of ``kind`` asked about one of ``questions``: a candidate call by its
    rendered prompt, a judge call by the question among its inputs (and a candidate's answer, not a calibration one)."""
    wanted = set(questions)
    prompts = {CANDIDATE_PROMPT.format(prompt=question) for question in questions}
    with service.registry.engine.connect() as connection:
        requests = [row[0] for row in connection.execute(select(LLMCallRecord.request).where(LLMCallRecord.kind == kind))]

    # the judge license's verdicts (first test) graded the calibration set's answers to some of the same questions
    calibration_answers = set(calibration_frame()["answer"])

    def about(request: dict[str, Any]) -> bool:
        if kind == "judge":
            inputs = request.get("inputs") or {}
            return inputs.get("question") in wanted and inputs.get("answer") not in calibration_answers
        return any(message.get("content") in prompts for message in request.get("messages") or [])

    return sum(about(request) for request in requests)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_server) -> Iterator[Deployment]:
    # two workers of one pool process each keep the deployment light on a busy machine; the operator's shard
    # size makes the 20 examples of a cell 4 shards, spread over the workers
    spec = DeploymentSpec(workers=2, worker_processes=1, llm_latency=0.2, postgres_url=postgres_server,
                          env={"EVAL_PLATFORM_SHARD_SIZE": str(SHARD_SIZE)})
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
    taken = deployment.step_workers(cell_run.run_id)
    # the shards of the one eval cell ran on both workers
    assert {taken[step][0] for step in PREDICT_SHARDS + JUDGE_SHARDS} == nodes, taken
    materializations = deployment.materializations(cell_run.run_id)
    for asset in ("predictions", "judgments"):
        # each shard's worker is in the merge's metadata: a pool process of one of the two workers
        shard_workers = materializations[asset]["shard_workers"].value
        assert set(shard_workers) == {f"r0_s{i}" for i in range(SHARDS)}, shard_workers
        for worker in shard_workers.values():
            host, pid = worker.rsplit(":", 1)
            assert host == socket.gethostname() and _ancestors(int(pid)) & worker_pids, (asset, worker)

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


class Kill:
    """What a kill left: the killed worker's node, the shard step it ran, and (in this order) the call cache's
    rows committed since the eval began, then the server's counters."""

    def __init__(self, deployment: Deployment, cache: LLMCache, cached_before: int, model_key: str,
                 steps: tuple[str, ...], calls_made: Callable[[], bool]):
        def running():
            """(step, node) of a shard in ``steps`` taken by a worker and not finished, once ``calls_made()``."""
            cells = deployment.runs("evaluate_eval_cell", model_key)
            if not cells or not calls_made():
                return None
            taken, finished = deployment.step_workers(cells[0].run_id), deployment.finished_steps(cells[0].run_id)
            busy = [(step, taken[step][-1]) for step in steps if step in taken and step not in finished]
            return busy[0] if busy else None

        self.step, self.node = deployment.wait_for(running, f"a step of {steps[0].split('[')[0]} running on a worker",
                                                   poll=0.05)
        [victim] = [name for name in deployment.workers
                    if deployment.node(name) == self.node and name not in deployment.killed]
        os.killpg(deployment.workers[victim].pid, signal.SIGKILL)  # the worker and its pool process, as a lost machine
        deployment.killed.add(victim)
        # the dead worker's committed rows are final (its cache writer died with it). The cache is counted
        # before the server: every row the survivors committed by then was requested by then, so
        # requests - committed >= what the dead worker asked and had not committed
        self.committed = cache.count() - cached_before
        self.stats = deployment.llm.stats()

    def most_requests(self) -> int:
        """The most requests the eval may make: each of its calls once, plus each call asked before the kill
        and not committed to the cache (only the dead worker's of those are asked again)."""
        return CALLS_PER_EVAL + self.stats["requests"] - self.committed


def _survivor(deployment: Deployment) -> str:
    [alive] = [deployment.node(name) for name in deployment.workers if name not in deployment.killed]
    return alive


def test_a_worker_killed_mid_prediction_shard_another_finishes_it_and_no_call_is_paid_twice(
        deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    rows = slice(20, 40)  # other questions: none of their calls is in the cache yet
    _dataset(service, "qa2", rows)
    cache = LLMCache(service.registry)
    cached_before = cache.count()
    llm.reset_stats()
    service.register_model("qa-bot-2", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa2", "qa")])

    kill = Kill(deployment, cache, cached_before, "qa-bot-2@1", PREDICT_SHARDS, lambda: llm.stats()["completions"] >= 1)
    # the killed shard's answers committed to the cache before it died: the survivor is served these
    killed_shard_committed = _cached_calls(service, "candidate", _shard_questions(rows, kill.step))
    [cell_run] = deployment.runs("evaluate_eval_cell", "qa-bot-2@1")
    assert "predictions" not in deployment.materialization_workers(cell_run.run_id), "predictions finished before the kill"
    assert kill.stats["completions"] < EXAMPLES

    decision = deployment.wait_for(lambda: deployment.decided("qa-bot-2@1"), "gate decision of qa-bot-2@1")
    assert decision.decision == "pass", decision.reasons
    taken = deployment.step_workers(cell_run.run_id)
    assert taken[kill.step] == [kill.node, _survivor(deployment)], taken  # the broker handed the shard over
    # one shard run twice, every other shard and step once (the shards other workers finished are not re-run)
    assert all(len(workers) == 1 for step, workers in taken.items() if step != kill.step), taken
    assert sum(len(taken[step]) for step in PREDICT_SHARDS) == SHARDS + 1, taken
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS  # the same run, no retry

    # counted at the server: only the calls the dead worker had asked for but not committed to the call cache
    # when it died (in flight, or answered while the cache's writer thread had not committed them yet: a few
    # on a loaded machine) are asked again; every committed answer is served from the cache to the survivor
    stats = llm.stats()
    record_property("calls", {"at_kill": kill.stats["requests"], "answered_at_kill": kill.stats["completions"],
                              "committed_at_kill": kill.committed, "killed_shard_committed": killed_shard_committed,
                              "total": stats["requests"]})
    assert CALLS_PER_EVAL <= stats["requests"] <= kill.most_requests(), (stats, kill.stats, kill.committed)
    assert _cached_calls(service, "candidate", _questions(rows)) == EXAMPLES  # the rows are told apart right
    [run] = service.runs("qa-bot-2@1")
    assert run.lineage["candidate_calls"]["cache_hits"] >= killed_shard_committed
    assert run.lineage["candidate_calls"]["calls"] + run.lineage["candidate_calls"]["cache_hits"] == EXAMPLES


def test_a_third_worker_joins_and_one_killed_mid_judge_shard_the_decision_arrives_and_no_call_is_paid_twice(
        deployment, tmp_path, record_property):
    service, instance, llm = deployment.service, deployment.instance, deployment.llm
    deployment.add_worker("w3")  # the previous test killed one of the two
    rows = slice(40, 60)
    _dataset(service, "qa3", rows)
    cache = LLMCache(service.registry)
    cached_before = cache.count()
    llm.reset_stats()
    service.register_model("qa-bot-3", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa3", "qa")])

    kill = Kill(deployment, cache, cached_before, "qa-bot-3@1", JUDGE_SHARDS,
                lambda: llm.stats()["completions_by_model"].get("rule-judge-1", 0) >= 1)
    killed_shard_committed = _cached_calls(service, "judge", _shard_questions(rows, kill.step))
    [cell_run] = deployment.runs("evaluate_eval_cell", "qa-bot-3@1")
    assert "judgments" not in deployment.materialization_workers(cell_run.run_id), "judgments finished before the kill"

    decision = deployment.wait_for(lambda: deployment.decided("qa-bot-3@1"), "gate decision of qa-bot-3@1")
    assert decision.decision == "pass", decision.reasons
    taken = deployment.step_workers(cell_run.run_id)
    assert taken[kill.step] == [kill.node, _survivor(deployment)], taken
    assert all(len(workers) == 1 for step, workers in taken.items() if step != kill.step), taken
    assert sum(len(taken[step]) for step in JUDGE_SHARDS) == SHARDS + 1, taken
    # the joined worker took steps of this cell
    assert deployment.node("w3") in {workers[0] for workers in taken.values()}, taken
    assert instance.get_run_by_id(cell_run.run_id).status == dg.DagsterRunStatus.SUCCESS

    stats = llm.stats()
    record_property("calls", {"at_kill": kill.stats["requests"], "answered_at_kill": kill.stats["completions"],
                              "committed_at_kill": kill.committed, "killed_shard_committed": killed_shard_committed,
                              "total": stats["requests"]})
    # repeated calls: only the judge calls the dead worker had not committed to the cache
    assert CALLS_PER_EVAL <= stats["requests"] <= kill.most_requests(), (stats, kill.stats, kill.committed)
    assert _cached_calls(service, "judge", _questions(rows)) == JUDGE_SAMPLES * EXAMPLES
    [run] = service.runs("qa-bot-3@1")
    assert run.status == "succeeded" and run.results["judge"]["summary"]["n_scored"] == EXAMPLES
    judge_calls = run.results["judge"]["report"]
    assert judge_calls["cache_hits"] >= killed_shard_committed
    assert judge_calls["calls"] + judge_calls["cache_hits"] == JUDGE_SAMPLES * EXAMPLES
