"""The canary schedule, evaluated by Dagster on a real instance, and the ``canary_within_bounds`` check: an LLM
candidate served by the project's local OpenAI-compatible server (real HTTP, the real openai client) is
promoted; the schedule queues a canary run on its canary dataset only; the eval-request sensor launches it; an
unchanged endpoint keeps the check green, and an endpoint whose answers changed (the server now answers half
the questions wrongly: a model swapped behind the same name) turns it red, naming the metric. The canary runs
never enter the model version's gate, and another team reads them as it reads a run that does not exist."""

import json
from datetime import UTC, datetime
from importlib import resources as package_files

import dagster as dg
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from eval_platform.api.app import create_app
from eval_platform.core.states import CANARY_TRIGGER, RunStatus
from eval_platform.gates import releases
from eval_platform.llm.server import CandidateModel
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import create_token
from eval_platform_dagster.assets.canaries import CANARY_WITHIN_BOUNDS
from eval_platform_dagster.jobs.canaries import CANARY_CRON_ENV, canary_cron, canary_schedule
from eval_platform_dagster.sensors import eval_request_sensor
from tests.conftest import local_llm_server
from tests.dagster_helpers import execute, resources, tick
from tests.evaluation.test_runner import evaluate
from tests.llm.test_llm_runs import candidate_file, suite

CANARY_KEY = dg.AssetKey("canary_metrics")


@pytest.fixture
def server():
    """A server of this test's own: its candidate's answers are changed midway."""
    yield from local_llm_server()


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    _, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    yield platform
    platform.close()


def qa_frame() -> pd.DataFrame:
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:20]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference", "category"]]


def evaluate_queued(instance, service) -> list:
    """Tick the eval-request sensor and execute the eval-cell runs it requests; their results."""
    requests = tick(eval_request_sensor, instance, service).run_requests
    return [execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags) for request in requests]


def schedule_tick(instance, service) -> str:
    """One evaluation of the canary schedule through Dagster's own tick evaluation; its skip message."""
    with dg.build_schedule_context(instance=instance, resources=resources(service),
                                   scheduled_execution_time=datetime.now(UTC)) as context:
        data = canary_schedule.evaluate_tick(context)
    assert not data.run_requests  # it queues registry rows; the sensor launches them
    return data.skip_message or ""


def canary_check(result) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CANARY_WITHIN_BOUNDS]
    return evaluation


def test_a_changed_endpoint_turns_the_canary_check_red_and_nothing_else(service, server):
    local, _ = server
    frame = qa_frame()
    service.register_dataset("qa", frame, task_type="generation", label_policy="human_reviewed", slice_columns=["category"])
    alpha, beta = create_token(service, "alpha"), create_token(service, "beta")
    with TestClient(create_app(service)) as api:
        # the canary set is alpha's, restricted to alpha, registered through the API with its role
        response = api.post("/v1/datasets", headers={"Authorization": f"Bearer {alpha}"},
                            files={"file": ("qa.csv", frame.to_csv(index=False).encode())},
                            data={"datasetId": "qa-canary", "taskType": "generation", "labelPolicy": "human_reviewed",
                                  "accessLevel": "restricted", "teams": ["alpha"], "role": "canary"})
        assert response.status_code == 201, response.text
        assert response.json()["role"] == "canary"
        refused = api.post("/v1/datasets", headers={"Authorization": f"Bearer {alpha}"},
                           files={"file": ("qa.csv", frame.to_csv(index=False).encode())},
                           data={"datasetId": "qa-gold", "taskType": "generation", "labelPolicy": "human_reviewed", "role": "gold"})
        assert refused.status_code == 422 and "role" in refused.text
    service.register_suite(suite() | {"canary": {"bounds": {"exact_match": 0.05}}})
    service.register_model("qa-bot", candidate_file(service.config.home), kind="openai_chat",
                           eval_plan=[("qa", "qa"), ("qa-canary", "qa")])

    with dg.instance_for_test() as instance:
        assert "queued 0 canary run(s)" in schedule_tick(instance, service)  # nothing promoted yet
        assert evaluate(service, "qa-bot@1").decision == "pass"  # the version's own runs (the library's steps: faster)
        releases.promote(service, "qa-bot@1", promoted_by="alpha")
        own = {run.dataset_id: run for run in service.runs("qa-bot@1")}

        # the reference: the first canary run, only on the canary dataset, a new run with its own id
        message = schedule_tick(instance, service)
        [reference] = [r for r in service.runs("qa-bot@1") if r.trigger == CANARY_TRIGGER]
        assert "queued 1 canary run(s)" in message and reference.run_id in message
        assert reference.dataset_key == "qa-canary@1" and reference.run_id != own["qa-canary"].run_id
        local.reset_stats()
        [result] = evaluate_queued(instance, service)
        assert local.stats()["completions"] == 20  # every call went to the endpoint: none from the call cache
        assert canary_check(result).passed and canary_check(result).metadata["series_length"].value == 1
        tracked = result.asset_materializations_for_node("canary_metrics")
        assert [m.metadata["qa/exact_match"].value for m in tracked] == [1.0]

        # unchanged endpoint: green again, a series of two
        schedule_tick(instance, service)
        [result] = evaluate_queued(instance, service)
        assert local.stats()["completions"] == 40
        check = canary_check(result)
        assert check.passed and check.metadata["series_length"].value == 2 and check.metadata["drifted_metrics"].value == "none"

        # the endpoint now answers half the questions wrongly under the same model name
        local.candidates["kb-qa-v1"] = CandidateModel("kb-qa-v1", mistake_rate=0.5, seed=7)
        schedule_tick(instance, service)
        [result] = evaluate_queued(instance, service)
        check = canary_check(result)
        runs = [r for r in service.runs("qa-bot@1") if r.trigger == CANARY_TRIGGER]
        current = runs[-1].results["metrics"]["exact_match"]
        assert not check.passed and check.metadata["drifted_metrics"].value == "exact_match"
        detail = check.metadata["qa@1 exact_match"].value
        assert detail["reference"] == 1.0 and detail["current"] == current < 0.95 and detail["bound"] == 0.05
        assert detail["series_length"] == 3
        # the check is stored on the instance for the UI, red for this cell
        [record] = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(CANARY_KEY, CANARY_WITHIN_BOUNDS), limit=1)
        assert record.evaluation is not None and record.evaluation.passed is False

        # never a gate: the version's decision still rests on its own runs, which the canaries did not replace
        assert service.gate_decision("qa-bot@1").decision == "pass"
        assert service.request_eval("qa-bot@1", "qa-canary", "qa").run_id == own["qa-canary"].run_id
        assert all(r.status == RunStatus.SUCCEEDED for r in runs) and len(runs) == 3

    # the schedule acted as the operator on alpha's restricted dataset; reads stay filtered
    with TestClient(create_app(service)) as api:
        as_beta = api.get(f"/v1/eval-runs/{reference.run_id}", headers={"Authorization": f"Bearer {beta}"})
        missing = api.get("/v1/eval-runs/run-0000000000000000", headers={"Authorization": f"Bearer {beta}"})
        assert (as_beta.status_code, as_beta.json().get("detail")) == (missing.status_code, missing.json().get("detail").replace(
            "run-0000000000000000", reference.run_id))
        as_alpha = api.get(f"/v1/eval-runs/{reference.run_id}", headers={"Authorization": f"Bearer {alpha}"})
        assert as_alpha.status_code == 200 and as_alpha.json()["trigger"] == CANARY_TRIGGER


def test_the_operator_sets_the_cron(monkeypatch):
    assert canary_schedule.cron_schedule == canary_cron() == "0 5 * * *"
    monkeypatch.setenv(CANARY_CRON_ENV, "*/30 * * * *")
    assert canary_cron() == "*/30 * * * *"
    monkeypatch.setenv(CANARY_CRON_ENV, "every day")
    with pytest.raises(ValueError, match=CANARY_CRON_ENV):
        canary_cron()
