"""The HTTP API on a real server (uvicorn on 127.0.0.1) over the real PostgreSQL registry (and SQLite):
idempotent requests, comparisons, team access control, RFC 9457 errors, retention, /metrics and logs.

Evaluations run without Dagster (``tests.evaluation.test_runner.evaluate``), standing in for the sensor and the
eval job, as the API only records requests.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from eval_platform.api.app import create_app, openapi_json
from eval_platform.gates import releases
from eval_platform.governance import retention
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    EvalDataset,
    EvalRun,
    Model,
    PredictionSet,
    access,
)
from eval_platform.registry.access import create_token
from eval_platform.registry.api_schema import IdempotencyRecord, PurgeLogEntry, RunPurge
from eval_platform.registry.schema import utcnow
from tests.conftest import ROOT
from tests.evaluation.test_runner import evaluate

SECRET = "SECRET-PATIENT-NOTE"
SUITE = {
    "suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"metric": "roc_auc@1"}, {"name": "accuracy", "metric": "accuracy@1"}],
    "slices": ["tumour_size"], "min_slice_size": 10,
    "comparison": {"bootstrap_resamples": 200, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "approvers": ["alpha"], "rules": [
        {"metric": "roc_auc", "min": 0.5},
        {"metric": "roc_auc", "non_inferiority": 0.5, "mode": "lenient"},
        {"metric": "accuracy", "max_regressions": 1000}]},
}


#: the done-when tests run on the real PostgreSQL registry; a few others on SQLite (the default installation)
ON_POSTGRES = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# a real server ------------------------------------------------------------------------------------------
class Server:
    """uvicorn serving ``app`` on a free port of 127.0.0.1 in a thread."""

    def __init__(self, app):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.socket.close()


def parquet_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


class World:
    """An installation with a served API, three team tokens, restricted datasets and evaluated models."""

    def __init__(self, platform: EvalPlatform, url: str, tokens: dict[str, str], model_files: dict[str, Path]):
        self.platform, self.url, self.tokens, self.model_files = platform, url, tokens, model_files
        self.client = httpx.Client(base_url=url, timeout=60)

    def as_(self, team: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[team]}"} if team else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def counts(self) -> dict:
        with self.platform.registry.session() as session:
            tables = {t.__tablename__: session.scalar(select(func.count()).select_from(t))
                      for t in (EvalDataset, Model, EvalRun, IdempotencyRecord)}
        models_dir = self.platform.config.home / "models"
        return tables | {"artifacts": self.platform.store.count(),
                         "model_files": len(list(models_dir.iterdir())) if models_dir.exists() else 0}

    def run_of(self, model_key: str, dataset_key: str) -> EvalRun:
        return next(r for r in self.platform.runs(model_key) if r.dataset_key == dataset_key and r.status != "superseded")


def register_world(world: World, frame) -> None:
    alpha = world.as_("alpha")
    secret_frame = frame.assign(note=[f"{SECRET}-{i}" for i in range(len(frame))])
    common = {"taskType": "binary_classification", "labelPolicy": "human_reviewed", "sliceColumns": ["tumour_size"]}
    # restricted to alpha (Parquet upload); restricted with aggregates for everyone (CSV upload); internal
    response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(secret_frame))},
                          data={**common, "datasetId": "bc", "accessLevel": "restricted", "teams": ["alpha"]})
    assert response.status_code == 201, response.text
    response = alpha.post("/v1/datasets", files={"file": ("bc-agg.csv", secret_frame.to_csv(index=False).encode())},
                          data={**common, "datasetId": "bc-agg", "accessLevel": "restricted", "teams": ["alpha"], "allowAggregates": "true"})
    assert response.status_code == 201, response.text
    response = alpha.post("/v1/datasets", files={"file": ("bc-int.parquet", parquet_bytes(frame))},
                          data={**common, "datasetId": "bc-int", "accessLevel": "internal"})
    assert response.status_code == 201, response.text
    assert alpha.post("/v1/metric-suites", json=SUITE).status_code == 201
    for name, plan in (("logistic_regression", ["bc:bc-release", "bc-agg:bc-release", "bc-int:bc-release"]),
                       ("gradient_boosting", []), ("decision_stump", [])):
        response = alpha.post("/v1/models", files={"file": (f"{name}.skops", world.model_files[name].read_bytes())},
                              data={"name": "det", "evalPlan": plan})
        assert response.status_code == 201, response.text
        key = response.json()["key"]
        evaluate(world.platform, key)
        if key == "det@1":
            releases.promote(world.platform, "det@1", promoted_by="alpha")  # what the release job does


@pytest.fixture
def world(tmp_path, db_url, model_files, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    # alpha's default principal may also override gates (the suite names team alpha); an admin of team ops
    tokens = {team: create_token(platform, team, roles=("member", "approver") if team == "alpha" else ("member",))
              for team in ("alpha", "beta", "gamma")}
    tokens["admin"] = create_token(platform, "ops", principal="root", roles=("admin",))
    with Server(create_app(platform)) as server:
        world = World(platform, server.url, tokens, model_files)
        register_world(world, breast_cancer[2])
        yield world
    platform.close()


# tests ------------------------------------------------------------------------------------------------
def _paths(world: World) -> list[tuple[str, str]]:
    run = world.run_of("det@2", "bc@1").run_id
    values = {"runId": run, "datasetKey": "bc@1", "modelKey": "det@2", "suiteKey": "bc-release@1", "metricKey": "roc_auc@1"}
    document = world.client.get("/openapi.json").json()
    return [(method.upper(), re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "unknown"), path))
            for path, methods in document["paths"].items() for method in methods]


@ON_SQLITE
def test_every_route_needs_a_valid_token(world):
    routes = _paths(world)
    assert len(routes) >= 20
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer evalp_not-a-token"}, {"Authorization": "Basic YWxwaGE6eA=="}):
            response = world.client.request(method, path, headers=headers)
            if path == "/healthz":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["type"] == "urn:evalp:problem:unauthenticated"
    revoked = create_token(world.platform, "delta")
    assert world.client.get("/v1/models", headers={"Authorization": f"Bearer {revoked}"}).status_code == 200
    access.revoke_token(world.platform, access.list_tokens(world.platform, "delta")[0].id)
    assert world.client.get("/v1/models", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
    with world.platform.registry.session() as session:
        stored = [t.token_hash for t in session.scalars(select(access.ApiToken))]
    assert all(token not in str(stored) for token in world.tokens.values())  # only hashes are kept


def explore_suite(world: World) -> str:
    """A second suite: (model, dataset, suite) triples no run has used yet."""
    response = world.as_("alpha").post("/v1/metric-suites", json=SUITE | {"suite_id": "bc-explore", "purpose": "exploratory"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_idempotent_post_returns_the_same_run(world):
    alpha = world.as_("alpha")
    explore_suite(world)
    body = {"modelVersion": "det@3", "datasetId": "bc-int", "metricSuiteId": "bc-explore", "baseline": "det@2"}
    before = world.counts()
    first = alpha.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": "ci-1234"})
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True and first.json()["status"] == "queued"
    assert first.headers["location"] == f"/v1/eval-runs/{first.json()['runId']}"
    for _ in range(3):
        again = alpha.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": "ci-1234"})
        assert again.status_code == 200 and again.json()["runId"] == first.json()["runId"]
        assert again.headers["idempotent-replayed"] == "true"
    after = world.counts()
    assert after["eval_runs"] == before["eval_runs"] + 1 and after["idempotency_keys"] == before["idempotency_keys"] + 1

    other = alpha.post("/v1/eval-runs", json=body | {"baseline": "det@1"}, headers={"Idempotency-Key": "ci-1234"})
    assert other.status_code == 409 and other.json()["field"] == "Idempotency-Key"
    assert world.counts() == after  # nothing new
    # keys are per team: another team's identical key is its own request (an admin's: alpha's model is not ops's)
    admin = world.as_("admin")
    assert admin.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": "ci-1234"}).json()["runId"] == first.json()["runId"]
    assert world.counts()["idempotency_keys"] == after["idempotency_keys"] + 1

    # concurrent retries of one request, and concurrent requests for the same evaluation: one run
    stump = {"modelVersion": "det@3", "datasetId": "bc-int", "metricSuiteId": "bc-explore"}
    world.platform.update_run(first.json()["runId"], status="failed")
    runs_before = world.counts()["eval_runs"]

    def post(i):
        return alpha.post("/v1/eval-runs", json=stump, headers={"Idempotency-Key": "retry" if i % 2 else f"key-{i}"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(16)))
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["runId"] for r in responses}) == 1
    assert sum(r.status_code == 201 for r in responses) == 1
    assert world.counts()["eval_runs"] == runs_before + 1


@ON_POSTGRES
def test_post_eval_run_errors_name_the_field_and_write_nothing(world):
    alpha = world.as_("alpha")
    before = world.counts()
    cases = [
        ({"modelVersion": "nope@1", "datasetId": "bc", "metricSuiteId": "bc-release"}, "modelVersion"),
        ({"modelVersion": "det", "datasetId": "bc", "metricSuiteId": "bc-release"}, "modelVersion"),
        ({"modelVersion": "det@1", "datasetId": "missing", "metricSuiteId": "bc-release"}, "datasetId"),
        ({"modelVersion": "det@1", "datasetId": "bc", "metricSuiteId": "bc-release@9"}, "metricSuiteId"),
        ({"modelVersion": "det@1", "datasetId": "bc", "metricSuiteId": "bc-release", "baseline": "det@99"}, "baseline"),
        ({"modelVersion": "det@1", "datasetId": "bc"}, "metricSuiteId"),
        ({"modelVersion": "det@1", "datasetId": "bc", "metricSuiteId": "bc-release", "colour": "red"}, "colour"),
        ({"modelVersion": "", "datasetId": "bc", "metricSuiteId": "bc-release"}, "modelVersion"),
    ]
    for body, field in cases:
        response = alpha.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": f"bad-{field}-{len(body)}"})
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["field"] == field and problem["status"] == 422 and problem["type"] == "urn:evalp:problem:invalid-input"
        assert problem["detail"] and problem["instance"] == "/v1/eval-runs"
    # datasets: bad metadata, a bad file, bad labels; a pickle as a model file; a suite naming an unknown metric
    frame = world.platform.load_dataset(world.platform.dataset("bc-int@1"))
    upload = {"file": ("x.parquet", parquet_bytes(frame))}
    base = {"datasetId": "new", "taskType": "binary_classification", "labelPolicy": "human_reviewed"}
    for data, files, field in [
        (base | {"taskType": "regression"}, upload, "taskType"),
        (base | {"labelPolicy": "vibes"}, upload, "labelPolicy"),
        (base | {"accessLevel": "restricted"}, upload, "teams"),
        (base | {"accessLevel": "secret"}, upload, "accessLevel"),
        (base | {"sliceColumns": ["nope"]}, upload, "sliceColumns"),
        (base | {"datasetId": "a@b"}, upload, "datasetId"),
        (base, {"file": ("x.parquet", b"not parquet")}, "file"),
        (base, {"file": ("x.csv", frame.assign(label=7).to_csv(index=False).encode())}, "column 'label'"),
        ({k: v for k, v in base.items() if k != "taskType"}, upload, "taskType"),
    ]:
        response = alpha.post("/v1/datasets", data=data, files=files)
        assert response.status_code == 422 and response.json()["field"] == field, (field, response.text)
    pickled = io.BytesIO()
    __import__("pickle").dump({"a": 1}, pickled)
    response = alpha.post("/v1/models", data={"name": "evil"}, files={"file": ("evil.skops", pickled.getvalue())})
    assert response.status_code == 422 and response.json()["field"] == "file"
    home = str(world.platform.config.home)
    assert home not in response.text  # an error never shows where the server keeps its files
    response = alpha.post("/v1/models", data={"name": "evil", "kind": "predictions"},
                          files={"file": ("scores.parquet", b"PAR1 not really parquet PAR1")})
    assert response.status_code == 422 and response.json()["field"] == "file" and home not in response.text, response.text
    response = alpha.post("/v1/models", data={"name": "det", "evalPlan": ["bc"]},
                          files={"file": ("m.skops", world.model_files["decision_stump"].read_bytes())})
    assert response.status_code == 422 and response.json()["field"] == "evalPlan"
    response = alpha.post("/v1/metric-suites", json=SUITE | {"suite_id": "x", "metrics": [{"metric": "nope@1"}]})
    assert response.status_code == 422 and "metric" in response.json()["field"]
    assert world.counts() == before
    # not found and conflicts
    assert alpha.get("/v1/eval-runs/run-nope").status_code == 404
    assert alpha.get("/v1/datasets/bc@7/examples").json()["status"] == 404
    assert alpha.get("/v1/datasets/bc/examples").json()["field"] == "datasetKey"
    response = alpha.post("/v1/models/det@3/gate/override", json={"reason": "ship it"})
    assert response.status_code == 409 and response.json()["type"] == "urn:evalp:problem:conflict"


def test_uploads_are_bounded(tmp_path):
    platform = EvalPlatform.open(tmp_path / "home")
    token = create_token(platform, "alpha")
    with Server(create_app(platform, max_upload_bytes=1000)) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        data = {"datasetId": "x", "taskType": "binary_classification", "labelPolicy": "human_reviewed"}
        response = client.post("/v1/datasets", data=data, files={"file": ("x.csv", b"example_id,label\n1,0\n" * 200)})
        assert response.status_code == 413 and response.json()["field"] == "file"
        response = client.post("/v1/models", data={"name": "m"}, files={"file": ("m.skops", b"0" * 5000)})
        assert response.status_code == 413
        response = client.post("/v1/models", data={"name": "m"}, files={"file": ("m.skops", b"0" * (3 << 20))})
        assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert platform.store.count() == 0 and not any((platform.config.home / "models").glob("*"))
    platform.close()


@ON_POSTGRES
def test_comparison_endpoint(world):
    alpha = world.as_("alpha")
    run2 = world.run_of("det@2", "bc@1")
    comparison = alpha.get(f"/v1/eval-runs/{run2.run_id}/comparison").json()
    assert comparison["source"] == "recorded"
    assert comparison["baseline"]["modelVersion"] == "det@1" and comparison["baseline"]["state"] == "ok"
    base_run = world.run_of("det@1", "bc@1")
    assert comparison["baseline"]["runId"] == base_run.run_id
    roc = comparison["metrics"]["roc_auc"]
    assert roc["ciLow"] <= roc["delta"] <= roc["ciHigh"] and roc["resamples"] == 200
    assert roc["delta"] == pytest.approx(run2.results["metrics"]["roc_auc"] - base_run.results["metrics"]["roc_auc"])
    assert set(comparison["slices"]["roc_auc"]) == {"tumour_size=small", "tumour_size=medium", "tumour_size=large"}
    small = comparison["slices"]["accuracy"]["tumour_size=small"]
    assert small["delta"] == pytest.approx(small["candidate"] - small["baseline"])
    assert isinstance(comparison["regressions"]["accuracy"], list)
    assert comparison["regressionCounts"]["accuracy"] == len(comparison["regressions"]["accuracy"])
    gate = comparison["gate"]
    assert gate["decision"] == "pass" and {r["kind"] for r in gate["reasons"]} >= {"min", "non_inferiority", "max_regressions"}
    # the same baseline named explicitly is the recorded comparison
    assert alpha.get(f"/v1/eval-runs/{run2.run_id}/comparison", params={"baseline": "det@1"}).json()["source"] == "recorded"
    # another baseline: computed on the fly, from the same predictions
    run3 = world.run_of("det@3", "bc@1")
    computed = alpha.get(f"/v1/eval-runs/{run3.run_id}/comparison", params={"baseline": "det@2"}).json()
    assert computed["source"] == "computed" and computed["baseline"]["runId"] == run2.run_id
    assert computed["metrics"]["roc_auc"]["delta"] == pytest.approx(
        run3.results["metrics"]["roc_auc"] - run2.results["metrics"]["roc_auc"])
    by_run_id = alpha.get(f"/v1/eval-runs/{run3.run_id}/comparison", params={"baseline": run2.run_id}).json()
    assert by_run_id["metrics"] == computed["metrics"]
    # errors
    response = alpha.get(f"/v1/eval-runs/{run3.run_id}/comparison", params={"baseline": "det@99"})
    assert response.status_code == 422 and response.json()["field"] == "baseline"
    explore_suite(world)
    queued = alpha.post("/v1/eval-runs", json={"modelVersion": "det@2", "datasetId": "bc-int", "metricSuiteId": "bc-explore",
                                               "baseline": "det@3"}).json()
    assert queued["status"] == "queued" and queued["requestedBaseline"] == "det@3"
    assert alpha.get(f"/v1/eval-runs/{queued['runId']}/comparison").status_code == 409
    # the run itself: status, results, gate and lineage
    detail = alpha.get(f"/v1/eval-runs/{run2.run_id}").json()
    assert detail["status"] == "succeeded" and detail["results"]["metrics"]["roc_auc"] == run2.results["metrics"]["roc_auc"]
    assert detail["lineage"]["dataset"]["contentHash"] == world.platform.dataset("bc@1").content_hash
    assert detail["lineage"]["metrics"] == {"roc_auc": "roc_auc@1", "accuracy": "accuracy@1"}
    # the model file by its name and hash; where the server keeps it is not shown
    assert detail["lineage"]["model"]["uri"] == Path(run2.lineage["model"]["uri"]).name
    assert str(world.platform.config.home) not in json.dumps(detail)
    assert detail["gate"]["decision"] == "pass" and detail["queueSeconds"] >= 0


def _assert_leaks_nothing(response: httpx.Response, world: World, dataset_key: str) -> None:
    """A 403 problem and nothing else: no rows, no counts, no example ids, no metric values."""
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) <= {"type", "title", "status", "detail", "instance", "field"}
    assert problem["type"] == "urn:evalp:problem:forbidden" and SECRET not in response.text
    assert not re.search(r"\d", problem["detail"].replace(dataset_key, "")), problem["detail"]


@ON_POSTGRES
def test_restricted_rows_are_403_for_other_teams(world):
    alpha, beta, gamma = world.as_("alpha"), world.as_("beta"), world.as_("gamma")
    run = world.run_of("det@2", "bc@1")
    agg_run = world.run_of("det@2", "bc-agg@1")
    row_endpoints = [
        ("bc@1", f"/v1/eval-runs/{run.run_id}/predictions"),
        ("bc@1", f"/v1/eval-runs/{run.run_id}"),  # aggregates of a dataset without allow_aggregates
        ("bc@1", f"/v1/eval-runs/{run.run_id}/comparison"),
        ("bc@1", f"/v1/eval-runs/{run.run_id}/comparison?baseline=det@3"),
        ("bc-agg@1", "/v1/datasets/bc-agg@1/examples"),
        ("bc-agg@1", f"/v1/eval-runs/{agg_run.run_id}/predictions"),
    ]
    for team in (beta, gamma):
        for dataset_key, path in row_endpoints:
            if dataset_key == "bc@1":  # a dataset the team may not know of: its runs answer as absent runs
                absent = path.replace(run.run_id, "run-0123456789abcdef")
                for params in ({}, {"offset": 0, "limit": 1000}):
                    got, expected = team.get(path, params=params), team.get(absent, params=params)
                    assert got.status_code == expected.status_code == 404 and SECRET not in got.text
                    assert _problem(got) == {**_problem(expected), "detail": expected.json()["detail"].replace("run-0123456789abcdef", run.run_id)}
                continue
            _assert_leaks_nothing(team.get(path), world, dataset_key)
            _assert_leaks_nothing(team.get(path, params={"offset": 0, "limit": 1000}), world, dataset_key)
        got, expected = team.get("/v1/datasets/bc@1/examples"), team.get("/v1/datasets/bc@9/examples")
        assert got.status_code == expected.status_code == 404 and SECRET not in got.text
        response = team.post("/v1/eval-runs", json={"modelVersion": "det@3", "datasetId": "bc", "metricSuiteId": "bc-release"})
        assert response.status_code == 422 and response.json()["field"] == "datasetId" and SECRET not in response.text
    # the allowed team reads the rows
    examples = alpha.get("/v1/datasets/bc@1/examples", params={"limit": 5}).json()
    assert examples["total"] == 228 and len(examples["rows"]) == 5 and examples["rows"][0]["note"].startswith(SECRET)
    predictions = alpha.get(f"/v1/eval-runs/{run.run_id}/predictions", params={"offset": 220, "limit": 100}).json()
    assert predictions["total"] == 228 and len(predictions["rows"]) == 8 and set(predictions["columns"]) >= {"example_id", "score"}
    # aggregates only: results and comparison deltas, but no example ids of regressions
    detail = gamma.get(f"/v1/eval-runs/{agg_run.run_id}")
    assert detail.status_code == 200 and detail.json()["results"]["metrics"]["roc_auc"] > 0.5
    comparison = gamma.get(f"/v1/eval-runs/{agg_run.run_id}/comparison").json()
    assert comparison["regressions"] is None and comparison["redacted"] is True and "accuracy" in comparison["regressionCounts"]
    regressions_reason = next(r for r in comparison["gate"]["reasons"] if r["kind"] == "max_regressions")
    assert "regressions" not in regressions_reason and "regressionCount" in regressions_reason
    assert SECRET not in json.dumps(comparison)
    # listings and gates withhold what the team may not see
    items = {i["runId"]: i for i in beta.get("/v1/eval-runs", params={"limit": 100}).json()["items"]}
    assert run.run_id not in items  # a dataset beta may not know of: its runs are not listed
    assert items[agg_run.run_id]["redacted"] is False and items[agg_run.run_id]["results"] is not None
    assert items[world.run_of("det@2", "bc-int@1").run_id]["results"] is not None
    gate = beta.get("/v1/models/det@2/gate").json()
    hidden = [g for g in gate["reasons"] if g.get("redacted")]
    assert hidden == [{"run": "(withheld)", "outcome": "pass", "redacted": True}]  # not bc@1, nor the run, nor its suite
    assert "bc@1" not in json.dumps(gate) and run.run_id not in json.dumps(gate)
    by_dataset = {g["run"].split("(")[1].split(",")[0]: g for g in gate["reasons"] if not g.get("redacted")}
    assert "reasons" in by_dataset["bc-int@1"]
    # every restricted read and every refusal is in the access log
    log = access.access_log(world.platform)
    granted = [(e.team, e.action, e.dataset_key, e.rows) for e in log if e.outcome == "granted"]
    assert ("alpha", "examples", "bc@1", 5) in granted and ("alpha", "predictions", "bc@1", 8) in granted
    denied = {(e.team, e.action, e.dataset_key) for e in log if e.outcome == "denied"}
    assert {("beta", "examples", "bc@1"), ("beta", "predictions", "bc@1"), ("gamma", "examples", "bc-agg@1"),
            ("gamma", "predictions", "bc-agg@1"), ("beta", "aggregates", "bc@1")} <= denied
    assert all(e.at is not None and e.token_id is not None for e in log)


@ON_POSTGRES
def test_retention_purge_and_recompute(world):
    platform = world.platform
    restricted = world.run_of("det@2", "bc@1")
    internal = world.run_of("det@2", "bc-int@1")
    purged_hash, results, lineage, metrics_hash = restricted.predictions_hash, restricted.results, restricted.lineage, restricted.metrics_hash
    with platform.registry.session() as session:
        cache_rows = session.scalar(select(func.count()).select_from(PredictionSet))
    dry = retention.purge_expired(platform, now=utcnow() + timedelta(days=31), dry_run=True)
    assert dry.purged and platform.store.has_table("predictions", purged_hash)

    report = retention.purge_expired(platform, now=utcnow() + timedelta(days=31))
    # bc and bc-agg (restricted) share content, hence predictions: purged; bc-int (internal) shares them too,
    # so the strictest classification wins for the shared artifact
    hashes = {a.artifact_hash for a in report.purged}
    assert purged_hash in hashes and all(a.classification == "restricted" and a.retention_days == 30 for a in report.purged)
    assert not platform.store.has_table("predictions", purged_hash)
    assert restricted.run_id in report.runs_marked and internal.run_id in report.runs_marked
    after = platform.run(restricted.run_id)
    assert after.predictions_hash is None and after.results == results and after.lineage == lineage and after.metrics_hash == metrics_hash
    assert platform.store.has_table("metric_tables", metrics_hash)
    with platform.registry.session() as session:
        assert session.scalar(select(func.count()).select_from(PredictionSet)) < cache_rows
        log = list(session.scalars(select(PurgeLogEntry)))
        assert {e.artifact_hash for e in log} == hashes and all(e.store_deleted for e in log)
        assert session.get(RunPurge, restricted.run_id).predictions_hash == purged_hash
    alpha = world.as_("alpha")
    assert alpha.get(f"/v1/eval-runs/{restricted.run_id}/predictions").status_code == 410
    detail = alpha.get(f"/v1/eval-runs/{restricted.run_id}").json()
    assert detail["predictionsPurgedAt"] and detail["results"]["metrics"] == results["metrics"]
    # nothing more to purge; public outputs are kept forever
    assert not retention.purge_expired(platform, now=utcnow() + timedelta(days=31)).purged
    policy = retention.RetentionPolicy.parse("restricted=30,internal=365,public=forever")
    assert policy.for_level("public") is None and retention.RetentionPolicy.parse("internal=7").days["internal"] == 7

    # a purged run is recomputed from its lineage: same inputs, same predictions, same numbers
    again = platform.request_eval(restricted.model_key, restricted.dataset_key, restricted.suite_key, recompute=True)
    assert again.run_id != restricted.run_id and platform.run(restricted.run_id).status == "superseded"
    evaluate(platform, restricted.model_key, dagster_run_id="recompute")
    recomputed = platform.run(again.run_id)
    assert recomputed.status == "succeeded" and recomputed.predictions_hash == purged_hash
    assert recomputed.results["metrics"] == results["metrics"]
    assert recomputed.lineage["dataset"] == lineage["dataset"] and recomputed.lineage["model"] == lineage["model"]


def test_retention_keeps_what_is_not_expired(tmp_path, model_files, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home")
    frame = breast_cancer[2]
    platform.register_dataset("pub", frame, "binary_classification", "human_reviewed", {"level": "public"})
    platform.register_dataset("int", frame.assign(note="internal"), "binary_classification", "human_reviewed", {"level": "internal"})
    platform.register_suite(SUITE)
    platform.register_model("a", model_files["logistic_regression"], eval_plan=[("int", "bc-release")])
    platform.register_model("b", model_files["gradient_boosting"], eval_plan=[("pub", "bc-release")])
    evaluate(platform, "a@1")
    evaluate(platform, "b@1")
    assert not retention.purge_expired(platform, now=utcnow() + timedelta(days=364)).purged
    report = retention.purge_expired(platform, now=utcnow() + timedelta(days=366))
    assert [(a.datasets, a.classification, a.retention_days) for a in report.purged] == [(["int@1"], "internal", 365)]
    assert platform.runs("b@1")[0].predictions_hash is not None
    assert not retention.purge_expired(platform, now=utcnow() + timedelta(days=36500)).purged  # public: forever
    platform.close()


def test_retention_schedule_runs_the_purge(tmp_path, model_files, breast_cancer, monkeypatch):
    import dagster as dg

    from eval_platform_dagster.jobs.retention import retention_job, retention_schedule
    from eval_platform_dagster.resources import EvalPlatformResource

    home = tmp_path / "home"
    platform = EvalPlatform.open(home)
    platform.register_dataset("r", breast_cancer[2], "binary_classification", "human_reviewed", {"level": "restricted", "teams": ["a"]})
    platform.register_suite(SUITE)
    platform.register_model("m", model_files["logistic_regression"], eval_plan=[("r", "bc-release")])
    evaluate(platform, "m@1")
    monkeypatch.setenv("EVAL_PLATFORM_RETENTION_DAYS", "restricted=0")
    result = retention_job.execute_in_process(resources={"platform": EvalPlatformResource(home=str(home))})
    assert result.success and len(result.output_for_node("purge_expired_predictions")["purged"]) == 1
    assert platform.runs("m@1")[0].predictions_hash is None
    assert retention_schedule.cron_schedule == "17 3 * * *" and retention_schedule.job_name == "retention_job"
    dg.Definitions(jobs=[retention_job], schedules=[retention_schedule], resources={"platform": EvalPlatformResource()})
    platform.close()


def prometheus(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


@ON_POSTGRES
def test_metrics_endpoint_follows_the_runs(world):
    from eval_platform.gates.releases import override_gate

    alpha = world.as_("alpha")
    response = alpha.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    before = prometheus(response.text)
    assert before["evalp_eval_queue_depth"] == 0 and before["evalp_eval_run_failure_ratio"] == 0
    succeeded = before['evalp_eval_runs{status="succeeded"}']
    assert before["evalp_eval_queue_seconds_count"] == succeeded == before["evalp_metric_computation_seconds_count"]
    assert before["evalp_gate_overrides_all"] == 0

    queued = alpha.post("/v1/eval-runs", json={"modelVersion": "det@3", "datasetId": "bc-int", "metricSuiteId": "bc-release",
                                               "baseline": "det@1"})
    # det@3's plan run on bc-int is live, compared with det@1 (promoted): the same run (another baseline is a 409)
    assert queued.status_code == 200
    world.platform.update_run(queued.json()["runId"], status="failed", finished_at=utcnow())
    failed = prometheus(alpha.get("/metrics").text)
    assert failed['evalp_eval_runs{status="failed"}'] == 1 and failed["evalp_eval_run_failure_ratio"] > 0
    # asking again queues a new attempt, which supersedes the failed one (a rerun heals the gate)
    new = alpha.post("/v1/eval-runs", json={"modelVersion": "det@3", "datasetId": "bc-int", "metricSuiteId": "bc-release"}).json()
    time.sleep(0.05)
    middle = prometheus(alpha.get("/metrics").text)
    assert middle["evalp_eval_queue_depth"] == 1 and middle["evalp_eval_queue_oldest_seconds"] > 0
    assert 'evalp_eval_runs{status="failed"}' not in middle and middle['evalp_eval_runs{status="superseded"}'] >= 1

    evaluate(world.platform, "det@3", dagster_run_id="second-run")
    after = prometheus(alpha.get("/metrics").text)
    assert after["evalp_eval_queue_depth"] == 0
    assert after['evalp_eval_runs{status="succeeded"}'] == succeeded  # the failed run's replacement took its place
    assert after["evalp_eval_queue_seconds_count"] == before["evalp_eval_queue_seconds_count"] + 1
    assert after["evalp_metric_computation_seconds_count"] == before["evalp_metric_computation_seconds_count"] + 1
    assert world.platform.run(new["runId"]).status == "succeeded"

    # a failing gate overridden by an approver team, and a stale baseline
    world.platform.record_gate("model_version", "det@3", "fail", [{"rule": "x", "outcome": "fail"}])
    override_gate(world.platform, "det@3", approver="alpha", reason="known issue, fixed in det@4")
    world.platform.update_run(new["runId"], comparison={"stale_baseline_run_id": "run-x"})
    final = prometheus(alpha.get("/metrics").text)
    assert final["evalp_gate_overrides_all"] == 1 and final['evalp_gate_overrides{suite="bc-release@1"}'] == 1
    assert final["evalp_stale_baselines"] == before["evalp_stale_baselines"] + 1
    assert final['evalp_http_requests_total{method="GET",route="/metrics",status="200"}'] >= 3
    assert final["evalp_eval_run_cost_per_run"] == 0


@ON_SQLITE
def test_gate_override_and_promotion_name_the_team(world):
    alpha, beta = world.as_("alpha"), world.as_("beta")
    world.platform.record_gate("model_version", "det@3", "fail", [{"rule": "x", "outcome": "fail"}])
    response = beta.post("/v1/models/det@3/gate/override", json={"reason": "please"})
    assert response.status_code == 403 and response.json()["field"] == "Authorization"  # det is alpha's
    assert alpha.post("/v1/models/det@3/gate/override", json={"reason": ""}).json()["field"] == "reason"
    response = alpha.post("/v1/models/det@3/gate/override", json={"reason": "accepted risk"})
    assert response.status_code == 201 and response.json()["approver"] == "alpha"
    assert alpha.get("/v1/models/det@3/gate").json()["decision"] == "overridden"
    response = alpha.post("/v1/models/det@3/promote", json={"reason": "release 7"})
    assert response.status_code == 202 and response.json()["requestedBy"] == "alpha" and response.json()["kind"] == "promotion"
    models = {m["key"]: m for m in alpha.get("/v1/models").json()}
    assert models["det@1"]["promoted"] is True and models["det@3"]["gate"] == "fail"
    metrics = {m["metric"]: m for m in alpha.get("/v1/metrics").json()}
    assert "roc_auc@1" in metrics and metrics["roc_auc@1"]["buggy"] is False
    assert alpha.post("/v1/metrics/nope@1/mark-buggy", json={"reason": "x"}).status_code == 404
    assert alpha.post("/v1/metrics/accuracy@1/mark-buggy", json={"reason": "off by one"}).status_code == 403  # admins only
    admin = world.as_("admin")
    impact = admin.post("/v1/metrics/accuracy@1/mark-buggy", json={"reason": "off by one"}).json()
    assert impact["reportedBy"] == "ops:root" and impact["affectedRuns"]
    assert alpha.get("/v1/metrics").json() and {m["metric"]: m for m in alpha.get("/v1/metrics").json()}["accuracy@1"]["buggy"]
    assert alpha.post("/v1/recompute", json={"affectedBy": "accuracy@1"}).status_code == 403  # admins only
    recompute = admin.post("/v1/recompute", json={"affectedBy": "accuracy@1"})
    assert recompute.status_code == 409  # no fixed version of accuracy exists yet
    impact = alpha.post("/v1/datasets/bc-int@1/invalidate", json={"reason": "leaked into training"}).json()
    assert impact["kind"] == "dataset_contamination" and len(impact["affectedRuns"]) == 3
    response = alpha.post("/v1/eval-runs", json={"modelVersion": "det@3", "datasetId": "bc-int@1", "metricSuiteId": "bc-release"})
    assert response.status_code == 409
    listed = {d["key"]: d for d in alpha.get("/v1/datasets").json()}
    assert listed["bc-int@1"]["status"] == "contaminated" and listed["bc@1"]["accessPolicy"] == {
        "level": "restricted", "teams": ["alpha"], "allowAggregates": False, "minSliceSize": 10}
    assert [s["key"] for s in alpha.get("/v1/metric-suites").json()] == ["bc-release@1"]


@ON_SQLITE
def test_logs_are_json_and_hold_no_tokens_or_rows(world):
    from eval_platform.governance.observability import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("eval_platform")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        alpha, beta = world.as_("alpha"), world.as_("beta")
        run = world.run_of("det@2", "bc@1")
        assert alpha.get("/v1/datasets/bc@1/examples", params={"limit": 1000}).status_code == 200
        assert alpha.get(f"/v1/eval-runs/{run.run_id}/predictions").status_code == 200
        assert beta.get("/v1/datasets/bc@1/examples").status_code == 404  # hidden: answers as absent
        world.client.get("/v1/models", headers={"Authorization": f"Bearer {world.tokens['alpha']}x"})
        logging.getLogger("eval_platform.test").info(f"a careless line with {world.tokens['beta']} and Bearer abc.def")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len([line for line in lines if line["message"] == "request"]) >= 4
    assert {"ts", "level", "request_id", "route", "status", "ms", "team"} <= set(next(x for x in lines if x["message"] == "request"))
    text = stream.getvalue()
    assert SECRET not in text and "Bearer abc" not in text
    assert all(token not in text for token in world.tokens.values())
    assert {line["route"] for line in lines if line["message"] == "request"} >= {"/v1/datasets/{datasetKey}/examples"}


def test_cli_tokens_status_and_purge(tmp_path, capsys, model_files, breast_cancer):
    from eval_platform.cli import api as cli_api

    home = str(tmp_path / "home")
    assert cli_api.main(["tokens", "create", "--team", "ml-eval", "--home", home]) == 0
    token = capsys.readouterr().out.strip()
    platform = EvalPlatform.open(home)
    assert access.authenticate(platform, token).team == "ml-eval"
    assert cli_api.main(["tokens", "create", "--team", "has space", "--home", home]) == 2
    assert "team" in capsys.readouterr().err
    assert cli_api.main(["tokens", "list", "--json", "--home", home]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["team"] == "ml-eval" and token not in json.dumps(listed)

    platform.register_dataset("r", breast_cancer[2], "binary_classification", "human_reviewed", {"level": "restricted", "teams": ["a"]})
    platform.register_suite(SUITE)
    platform.register_model("m", model_files["logistic_regression"], eval_plan=[("r", "bc-release")])
    evaluate(platform, "m@1")
    assert cli_api.main(["status", "--json", "--home", home]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["runs"]["by_status"] == {"succeeded": 1} and figures["queue_seconds"]["count"] == 1
    assert figures["failure_rate"]["rate"] == 0 and figures["gate_overrides"]["total"] == 0 and figures["stale_baselines"] == 0
    assert cli_api.main(["status", "--home", home]) == 0
    assert "queue time" in capsys.readouterr().out
    assert cli_api.main(["retention", "purge", "--json", "--home", home]) == 0
    assert json.loads(capsys.readouterr().out)["purged"] == []
    assert cli_api.main(["retention", "purge", "--home", home, "--dry-run"]) == 0
    assert "would purge 0" in capsys.readouterr().out
    assert cli_api.main(["tokens", "revoke", "1", "--home", home]) == 0
    with pytest.raises(access.Unauthenticated):
        access.authenticate(platform, token)
    platform.close()


def test_migration_matches_the_tables(platform):
    """0003 creates exactly the API tables (Alembic sees no difference between them and the migrated schema)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from eval_platform.registry.schema import Base

    assert platform.registry.schema_revision() == "0003" or platform.registry.schema_revision() > "0003"
    with platform.registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    api_tables = {"api_tokens", "access_log", "idempotency_keys", "purge_log", "eval_run_purges"}
    assert [d for d in diff if any(t in str(d) for t in api_tables)] == []


def test_checked_in_openapi_matches_the_app():
    """Regenerate with: .venv/bin/python -m eval_platform.api.app > openapi.json"""
    checked_in = (ROOT / "openapi.json").read_text()
    assert checked_in == openapi_json(), "openapi.json is stale: run `.venv/bin/python -m eval_platform.api.app > openapi.json`"


def _problem(response: httpx.Response) -> dict:
    body = response.json()
    body.pop("instance", None)
    return body


@ON_SQLITE
def test_datasets_a_team_may_not_know_are_hidden(world):
    """A restricted dataset outside a team's policy (no aggregates either) is not listed to it, and every
    request that names it answers exactly as if it did not exist; every attempt is logged."""
    alpha, beta, gamma = world.as_("alpha"), world.as_("beta"), world.as_("gamma")
    listed = {team: {d["key"] for d in client.get("/v1/datasets").json()} for team, client in
              (("alpha", alpha), ("beta", beta), ("gamma", gamma))}
    assert listed["alpha"] == {"bc@1", "bc-agg@1", "bc-int@1"}
    # bc-agg allows aggregates to every team: its metadata is visible (its rows are not)
    assert listed["beta"] == listed["gamma"] == {"bc-agg@1", "bc-int@1"}
    assert beta.get("/v1/datasets", params={"datasetId": "bc"}).json() == []
    assert alpha.get("/v1/datasets/bc@1").json()["rowCount"] == 228
    assert beta.get("/v1/datasets/bc-agg@1").status_code == 200
    assert beta.get("/v1/datasets/bc-agg@1/examples").status_code == 403

    def as_absent(got: httpx.Response, expected: httpx.Response, hidden: str, absent: str) -> None:
        assert got.status_code == expected.status_code and got.status_code in (404, 422), got.text
        assert got.headers["content-type"] == expected.headers["content-type"]
        assert json.dumps(_problem(got)) == json.dumps(_problem(expected)).replace(absent, hidden)
        assert SECRET not in got.text and "228" not in got.text

    for team in (beta, gamma):
        for path in ("/v1/datasets/{}", "/v1/datasets/{}/examples"):
            as_absent(team.get(path.format("bc@1")), team.get(path.format("nx@1")), "bc@1", "nx@1")
        as_absent(team.post("/v1/datasets/bc@1/invalidate", json={"reason": "x"}),
                  team.post("/v1/datasets/nx@1/invalidate", json={"reason": "x"}), "bc@1", "nx@1")
        for named, absent in (("bc", "nx"), ("bc@1", "nx@1")):
            body = {"modelVersion": "det@3", "metricSuiteId": "bc-release"}
            as_absent(team.post("/v1/eval-runs", json=body | {"datasetId": named}),
                      team.post("/v1/eval-runs", json=body | {"datasetId": absent}), named, absent)
        files = {"file": ("m.skops", world.model_files["decision_stump"].read_bytes())}
        as_absent(team.post("/v1/models", data={"name": "mine", "evalPlan": ["bc:bc-release"]}, files=files),
                  team.post("/v1/models", data={"name": "mine", "evalPlan": ["nx:bc-release"]}, files=files), "'bc'", "'nx'")
    assert world.platform.dataset("bc@1").status == "active"  # nothing was invalidated
    assert len(world.platform.models()) == 3  # nothing was registered
    # nor are its runs listed to them (the allowed team sees them)
    for team, client in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        page = client.get("/v1/eval-runs", params={"limit": 1000}).json()
        datasets = {item["datasetId"] for item in page["items"]}
        assert ("bc@1" in datasets) == (team == "alpha") and page["total"] == len(page["items"])
    # a run of such a dataset answers as an absent run
    run = world.run_of("det@2", "bc@1")
    as_absent(beta.get(f"/v1/eval-runs/{run.run_id}"), beta.get("/v1/eval-runs/run-0123456789abcdef"), run.run_id, "run-0123456789abcdef")
    denied = [(e.team, e.action, e.dataset_key) for e in access.access_log(world.platform) if e.outcome == "denied"]
    for team in ("beta", "gamma"):
        assert (team, "metadata", "bc@1") in denied and (team, "examples", "bc@1") in denied
        assert (team, "invalidate", "bc@1") in denied and denied.count((team, "aggregates", "bc@1")) >= 3


@ON_POSTGRES
def test_every_granted_read_of_a_restricted_dataset_is_logged(world):
    """Rows and aggregates alike: who read what of which restricted dataset, when; public and internal
    datasets' reads are not logged."""
    alpha, gamma = world.as_("alpha"), world.as_("gamma")
    run, agg_run, int_run = world.run_of("det@2", "bc@1"), world.run_of("det@2", "bc-agg@1"), world.run_of("det@2", "bc-int@1")
    started = utcnow()

    def granted_since(team):
        return [e for e in access.access_log(world.platform, team=team) if e.outcome == "granted" and e.at >= started]

    assert granted_since("alpha") == []
    reads = [  # (request, action, dataset, run id logged)
        (f"/v1/eval-runs/{run.run_id}", "aggregates", "bc@1", run.run_id),
        (f"/v1/eval-runs/{run.run_id}/comparison", "aggregates", "bc@1", run.run_id),
        (f"/v1/eval-runs/{run.run_id}/comparison?baseline=det@3", "aggregates", "bc@1", run.run_id),
        (f"/v1/eval-runs/{run.run_id}/predictions?limit=3", "predictions", "bc@1", run.run_id),
        ("/v1/datasets/bc@1/examples?limit=2", "examples", "bc@1", None),
        (f"/v1/eval-runs/{int_run.run_id}", None, None, None),  # internal: not logged
        (f"/v1/eval-runs/{int_run.run_id}/comparison", None, None, None),
        ("/v1/datasets/bc-int@1/examples?limit=2", None, None, None),
    ]
    for path, action, dataset_key, run_id in reads:
        before = len(granted_since("alpha"))
        response = alpha.get(path)
        assert response.status_code == 200, (path, response.text)
        new = granted_since("alpha")[: len(granted_since("alpha")) - before]  # newest first
        if action is None:
            assert new == [], path
            continue
        assert [(e.action, e.dataset_key, e.run_id) for e in new if e.action == action] == [(action, dataset_key, run_id)], path
        entry = next(e for e in new if e.action == action)
        assert entry.token_id is not None and entry.at >= started
    rows = {e.action: e.rows for e in granted_since("alpha") if e.action in ("predictions", "examples")}
    assert rows == {"predictions": 3, "examples": 2}

    # aggregates-only team: each aggregate read of the restricted dataset is logged too
    gamma.get(f"/v1/eval-runs/{agg_run.run_id}").raise_for_status()
    gamma.get(f"/v1/eval-runs/{agg_run.run_id}/comparison").raise_for_status()
    logged = [(e.action, e.dataset_key, e.run_id, e.detail.split(" ")[0]) for e in granted_since("gamma")]
    assert ("aggregates", "bc-agg@1", agg_run.run_id, "run") in logged and ("aggregates", "bc-agg@1", agg_run.run_id, "comparison") in logged

    # listings and gates that show a restricted dataset's results: one entry per dataset, naming the runs
    listed = alpha.get("/v1/eval-runs", params={"limit": 100}).json()["items"]
    shown = {i["runId"] for i in listed if i["datasetId"] == "bc@1" and i["results"] is not None}
    entry = next(e for e in granted_since("alpha") if e.detail.startswith("run listing") and e.dataset_key == "bc@1")
    assert entry.rows == len(shown) and set(entry.detail.split(": ")[1].split()) == shown
    assert not any(e.dataset_key == "bc-int@1" for e in granted_since("alpha"))
    gate = alpha.get("/v1/models/det@2/gate").json()
    assert gate["reasons"]
    assert any(e.detail == "gate reasons of det@2" and e.dataset_key == "bc@1" and e.run_id == run.run_id for e in granted_since("alpha"))
    # gamma sees bc@1's gate reasons redacted: nothing read, nothing granted
    gamma.get("/v1/models/det@2/gate").raise_for_status()
    assert not any(e.dataset_key == "bc@1" for e in granted_since("gamma"))


def _serve_in_a_process(home: Path, db_url: str) -> tuple:
    from tests.servers import serve_process

    return serve_process(home, {"EVAL_PLATFORM_DB_URL": db_url})


def test_a_revoked_token_is_refused_at_once_by_every_server_process(tmp_path, db_url, monkeypatch):
    """Two servers on one registry (one in this process, one an `evalp serve` process), the token revoked by a
    third (the CLI): the very next request to either server is a 401, on the hot POST path too."""
    from eval_platform.cli import api as cli_api

    home = tmp_path / "home"
    platform = EvalPlatform.open(home, db_url=db_url)
    token = create_token(platform, "delta")
    token_id = access.list_tokens(platform, "delta")[0].id
    other_process, other_url = _serve_in_a_process(home, db_url)
    try:
        with Server(create_app(platform)) as here:
            clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
                       for url in (here.url, other_url)]
            body = {"modelVersion": "nope@1", "datasetId": "x", "metricSuiteId": "y"}
            for client in clients:  # accepted, several times (anything a server might remember, it has seen)
                for _ in range(3):
                    assert client.get("/v1/models").status_code == 200
                    assert client.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": "k"}).status_code == 422
            monkeypatch.setenv("EVAL_PLATFORM_DB_URL", db_url)
            assert cli_api.main(["tokens", "revoke", str(token_id), "--home", str(home)]) == 0  # a third process's work
            for client in clients:
                response = client.get("/v1/models")
                assert response.status_code == 401 and response.json()["type"] == "urn:evalp:problem:unauthenticated"
                response = client.post("/v1/eval-runs", json=body, headers={"Idempotency-Key": "k"})
                assert response.status_code == 401
            # the team's other tokens still work
            fresh = create_token(platform, "delta")
            for url in (here.url, other_url):
                assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    finally:
        other_process.terminate()
        other_process.wait(timeout=30)
        platform.close()
