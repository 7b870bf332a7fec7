"""Retention of ``predictions``-kind model files (issue 11, attack 8), uploaded through the real API.

Outputs computed elsewhere on a restricted dataset are model outputs like the predictions the platform
computes: the copy the API keeps under ``<home>/models/`` goes when the dataset's retention passes, logged,
while the run's metrics, results and lineage stay.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd
import pytest

from eval_platform.api.app import create_app
from eval_platform.governance import retention
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import create_token
from eval_platform.registry.schema import utcnow
from tests.api.test_api import Server, parquet_bytes
from tests.evaluation.test_runner import evaluate

SUITE = {
    "suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"metric": "roc_auc@1"}], "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "approvers": ["alpha"], "rules": [{"metric": "roc_auc", "min": 0.5}]},
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retention_purges_copied_predictions_files_and_keeps_results(tmp_path, db_url, breast_cancer):
    home = tmp_path / "home"
    platform = EvalPlatform.open(home, db_url=db_url)
    frame = breast_cancer[2]
    with Server(create_app(platform)) as server:
        alpha = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {create_token(platform, 'alpha')}"}, timeout=60)
        response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(frame))},
                              data={"taskType": "binary_classification", "labelPolicy": "human_reviewed", "datasetId": "bc",
                                    "accessLevel": "restricted", "teams": ["alpha"]})
        assert response.status_code == 201, response.text
        assert alpha.post("/v1/metric-suites", json=SUITE).status_code == 201
        outputs = pd.DataFrame({"example_id": frame["example_id"], "score": (frame["label"] * 0.8 + 0.1).astype(float)})
        response = alpha.post("/v1/models", files={"file": ("outputs.parquet", parquet_bytes(outputs))},
                              data={"name": "ext", "kind": "predictions", "evalPlan": ["bc:bc-release"]})
        assert response.status_code == 201, response.text
    evaluate(platform, "ext@1")
    model = platform.model("ext@1")
    copied = home / "models" / f"sha256-{model.file_hash.removeprefix('sha256:')}.parquet"
    assert copied.is_file() and str(copied.resolve()) == str(type(copied)(model.uri).resolve())
    run = platform.runs("ext@1")[0]
    assert run.status == "succeeded", run.status_reason
    results, lineage, metrics_hash = run.results, run.lineage, run.metrics_hash

    # not yet expired: kept
    assert not [a for a in retention.purge_expired(platform, now=utcnow() + timedelta(days=29)).purged if a.kind == retention.MODEL_FILES]
    assert copied.is_file()
    report = retention.purge_expired(platform, now=utcnow() + timedelta(days=31))
    purged = [a for a in report.purged if a.kind == retention.MODEL_FILES]
    assert [(a.artifact_hash, a.classification, a.retention_days, a.run_ids, a.datasets, a.store_deleted) for a in purged] == [
        (model.file_hash, "restricted", 30, [run.run_id], ["bc@1"], True)]
    assert not copied.exists()
    logged = [e for e in retention.purge_log(platform) if e.kind == retention.MODEL_FILES]
    assert [(e.artifact_hash, e.run_ids, e.store_deleted) for e in logged] == [(model.file_hash, [run.run_id], True)]
    # the numbers, results and lineage stay; the model version stays registered
    after = platform.run(run.run_id)
    assert (after.results, after.lineage, after.metrics_hash) == (results, lineage, metrics_hash)
    assert platform.store.has_table("metric_tables", metrics_hash)
    assert platform.model("ext@1").file_hash == model.file_hash
    # a second purge finds nothing left to do for it
    assert not [a for a in retention.purge_expired(platform, now=utcnow() + timedelta(days=62)).purged if a.kind == retention.MODEL_FILES]
    platform.close()


def test_a_file_registered_by_path_is_the_callers_and_stays(tmp_path, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        frame = breast_cancer[2]
        platform.register_dataset("bc", frame, "binary_classification", "human_reviewed", {"level": "restricted", "teams": ["alpha"]})
        platform.register_suite(SUITE)
        outputs = tmp_path / "outputs.parquet"
        pd.DataFrame({"example_id": frame["example_id"], "score": frame["label"].astype(float)}).to_parquet(outputs)
        platform.register_model("ext", outputs, kind="predictions", eval_plan=[("bc", "bc-release")])
        report = retention.purge_expired(platform, now=utcnow() + timedelta(days=31))
        assert not [a for a in report.purged if a.kind == retention.MODEL_FILES] and outputs.is_file()
    finally:
        platform.close()
