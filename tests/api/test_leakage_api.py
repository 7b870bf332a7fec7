"""Leakage fields over the HTTP API (a real uvicorn server): ``timeColumn`` on a dataset, ``trainingCutoff`` and
``trainingManifest`` on a model, their field errors, the counts in a run's results, and another team's token."""

from __future__ import annotations

import pickle

import httpx
import pytest
from sqlalchemy import func, select

from eval_platform.api.app import create_app
from eval_platform.core.hashing import example_hashes
from eval_platform.datasets.leakage import content_columns
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, Model
from eval_platform.registry.access import create_token
from tests.api.test_api import Server, parquet_bytes
from tests.evaluation.test_runner import evaluate

SUITE = {
    "suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"metric": "roc_auc@1"}], "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "rules": [{"metric": "roc_auc", "min": 0.5}]},
}
COMMON = {"taskType": "binary_classification", "labelPolicy": "human_reviewed"}
EARLY = 30


@pytest.fixture
def served(tmp_path, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'registry.db'}")
    tokens = {team: create_token(platform, team) for team in ("alpha", "beta")}
    frame = breast_cancer[2]
    frame = frame.assign(ts=["2025-06-01"] * EARLY + ["2026-06-01"] * (len(frame) - EARLY))
    with Server(create_app(platform)) as server:
        clients = {t: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {k}"}, timeout=60) for t, k in tokens.items()}
        yield platform, clients, frame
    platform.close()


def _counts(platform):
    with platform.registry.session() as session:
        return (session.scalar(select(func.count()).select_from(EvalDataset)), session.scalar(select(func.count()).select_from(Model)),
                platform.store.count(), len(list((platform.config.home / "models").glob("*"))))


def _problem(response: httpx.Response) -> dict:
    body = response.json()
    body.pop("instance", None)
    return body


def test_time_column_cutoff_and_manifest_over_the_api(served, model_files):
    platform, clients, frame = served
    alpha, beta = clients["alpha"], clients["beta"]
    for data, problem in (({"timeColumn": "when"}, "not in the dataset"), ({"timeColumn": "label"}, "id or label column")):
        response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(frame))},
                              data={**COMMON, "datasetId": "bc", **data})
        assert response.status_code == 422 and response.json()["field"] == "timeColumn", response.text
        assert problem in response.json()["detail"]
    response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(frame))},
                          data={**COMMON, "datasetId": "bc", "timeColumn": "ts", "accessLevel": "restricted", "teams": ["alpha"]})
    assert response.status_code == 201, response.text
    assert response.json()["schema"]["timeColumn"] == "ts"
    assert alpha.post("/v1/metric-suites", json=SUITE).status_code == 201

    before = _counts(platform)
    model = model_files["logistic_regression"].read_bytes()
    bad_manifest = b"sha256:" + b"0" * 64 + b"\nnope\n"
    for extra, field in (({"data": {"trainingCutoff": "soon"}}, "trainingCutoff"),
                         ({"files": {"trainingManifest": ("m.pkl", pickle.dumps(["x"]))}}, "trainingManifest"),
                         ({"files": {"trainingManifest": ("m.txt", bad_manifest)}}, "trainingManifest")):
        files = {"file": ("m.skops", model), **extra.get("files", {})}
        response = alpha.post("/v1/models", files=files, data={"name": "det", "evalPlan": ["bc:bc-release"], **extra.get("data", {})})
        assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert _counts(platform) == before  # no model row, manifest artifact or model file

    # a manifest of 5 eval examples' inputs, and a cutoff after the 30 early ones
    schema = platform.dataset("bc@1").schema
    manifest = "\n".join(example_hashes(frame.iloc[100:105], content_columns(schema))).encode()
    response = alpha.post("/v1/models", files={"file": ("m.skops", model), "trainingManifest": ("m.txt", manifest)},
                          data={"name": "det", "evalPlan": ["bc:bc-release"], "trainingCutoff": "2026-01-01T00:00:00+02:00"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["trainingCutoff"] == "2025-12-31T22:00:00+00:00" and body["trainingManifestHash"].startswith("sha256:")
    assert evaluate(platform, "det@1").decision == "no_decision"
    run_id = body["queuedRuns"][0]
    leakage = alpha.get(f"/v1/eval-runs/{run_id}").json()["results"]["leakage"]
    assert (leakage["before_cutoff"], leakage["in_manifest"], leakage["leaked"]) == (EARLY, 5, EARLY + 5)
    gate = alpha.get("/v1/models/det@1/gate").json()
    assert f"{EARLY} of {len(frame)} examples are at or before" in str(gate)

    # another team: the restricted dataset (and its time column) is exactly as absent as a dataset that does not exist
    def same(hidden_path: str, absent_path: str, hidden_name: str, absent_name: str) -> None:
        hidden, absent = beta.get(hidden_path), beta.get(absent_path)
        assert hidden.status_code == absent.status_code == 404
        assert _problem(hidden) == {k: v.replace(absent_name, hidden_name) if isinstance(v, str) else v
                                    for k, v in _problem(absent).items()}

    same("/v1/datasets/bc@1", "/v1/datasets/nosuch@1", "bc@1", "nosuch@1")
    same(f"/v1/eval-runs/{run_id}", "/v1/eval-runs/run-0000000000000000", run_id, "run-0000000000000000")
    hidden = beta.post("/v1/models", files={"file": ("m.skops", model)}, data={"name": "beta-det", "evalPlan": ["bc:bc-release"],
                                                                               "trainingCutoff": "2026-01-01"})
    absent = beta.post("/v1/models", files={"file": ("m.skops", model)}, data={"name": "beta-det", "evalPlan": ["nosuch:bc-release"],
                                                                               "trainingCutoff": "2026-01-01"})
    assert hidden.status_code == absent.status_code == 422 and _problem(hidden)["field"] == _problem(absent)["field"] == "evalPlan"
    # a version of alpha's model name: refused as alpha's before the (bad) cutoff is even read
    response = beta.post("/v1/models", files={"file": ("m.skops", model)}, data={"name": "det", "trainingCutoff": "soon"})
    assert response.status_code == 403 and response.json()["field"] == "name", response.text
