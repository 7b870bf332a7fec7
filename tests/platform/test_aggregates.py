"""Aggregates-only access (issue 11, attack 5), through the real API served by uvicorn in this process.

Team ``alpha`` owns ``bc-agg``, restricted to alpha with ``allow_aggregates``, declaring ``size_bucket`` and
``region`` as slice columns. Team ``beta`` may read its aggregates only. Before, a suite slicing on
``example_id`` (or a free-text column) gave beta every label; now beta cannot ask for such a run, and a run
someone else asked for shows it only the declared slices large enough to aggregate.
"""

from __future__ import annotations

import dataclasses
import json

import httpx
import numpy as np
import pandas as pd
import pytest

from eval_platform.api.app import create_app
from eval_platform.platform.aggregates import AggregateView, check_aggregate_use, shown_slices
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import access
from eval_platform.registry.access import create_token
from eval_platform.suites.definition import parse_suite
from tests.api.test_api import Server, parquet_bytes
from tests.evaluation.test_runner import evaluate

COMMON = {"taskType": "binary_classification", "labelPolicy": "human_reviewed"}
ALPHA_SUITE = {
    "suite_id": "bc-agg-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"name": "accuracy", "metric": "accuracy@1"}], "slices": ["size_bucket", "region"],
    "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "approvers": ["alpha"], "rules": [{"metric": "accuracy", "min": 0.5}]},
}
# the attacker's suite: a slice (and a per-slice guardrail) per example, and one on a free-text column
LEAKY_SUITE = {
    "suite_id": "leaky", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"name": "accuracy", "metric": "accuracy@1"}], "slices": ["example_id", "note", "size_bucket"], "min_slice_size": 1,
    "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "approvers": ["beta"],
             "rules": [{"metric": "accuracy", "min": 0.5}, {"metric": "accuracy", "slice": "example_id", "min": 0.5}]},
}


def _string_leaves(document) -> list[str]:
    if isinstance(document, dict):
        return [leaf for value in document.values() for leaf in _string_leaves(value)]
    if isinstance(document, list):
        return [leaf for value in document for leaf in _string_leaves(value)]
    return [document] if isinstance(document, str) else []


def _frame(breast_cancer) -> pd.DataFrame:
    frame = breast_cancer[2].copy().reset_index(drop=True)
    # tiny (3 examples) is below the minimum of 10: suppressed; small (40) goes with it so that tiny is not
    # the overall figure minus the rest; large is shown; region splits the rows in two big halves
    frame["size_bucket"] = np.where(frame.index < 3, "tiny", np.where(frame.index < 43, "small", "large"))
    frame["region"] = np.where(frame.index % 2 == 0, "east", "west")
    frame["note"] = [f"patient note {i}: {'malignant' if y else 'benign'}" for i, y in enumerate(frame["label"])]
    return frame


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_complementary_suppression_leaves_no_small_group_derivable():
    sizes = {("size_bucket", "tiny"): 3, ("size_bucket", "small"): 40, ("size_bucket", "large"): 185,
             ("region", "east"): 114, ("region", "west"): 114, ("example_id", "e1"): 1, ("c", "a"): 4, ("c", "b"): 5, ("c", "z"): 50,
             ("c", "y"): 60}
    shown = shown_slices(sizes, ("size_bucket", "region", "c"), 10)
    # c: a and b (4+5 = 9 < 10 together) are suppressed, then z too, so what is left out adds up to at least 10
    assert shown == {"size_bucket=large", "region=east", "region=west", "c=y"}
    assert shown_slices({("s", "x"): 50, ("s", "y"): 50}, ("s",), 10) == {"s=x", "s=y"}
    view = AggregateView(access.AGGREGATES, shown)
    assert view.reasons([{"run": "r", "reasons": [{"slice": "example_id=e1"}, {"slice": "region=east"}, {"rule": "x"}]}]) == [
        {"run": "r", "reasons": [{"slice": "region=east"}, {"rule": "x"}]}]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_aggregates_only_team_gets_no_row_level_results(tmp_path, db_url, model_files, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    tokens = {team: create_token(platform, team) for team in ("alpha", "beta")}
    frame = _frame(breast_cancer)
    with Server(create_app(platform)) as server:
        alpha, beta = _client(server.url, tokens["alpha"]), _client(server.url, tokens["beta"])
        response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(frame))},
                              data={**COMMON, "datasetId": "bc-agg", "accessLevel": "restricted", "teams": ["alpha"],
                                    "allowAggregates": "true", "sliceColumns": ["size_bucket", "region"]})
        assert response.status_code == 201, response.text
        assert response.json()["accessPolicy"]["minSliceSize"] == 10
        assert alpha.post("/v1/metric-suites", json=ALPHA_SUITE).status_code == 201
        assert beta.post("/v1/metric-suites", json=LEAKY_SUITE).status_code == 201

        # beta may not ask for a run on bc-agg slicing on undeclared columns: not in a plan, not by request
        model = beta.post("/v1/models", files={"file": ("m.skops", model_files["logistic_regression"].read_bytes())},
                          data={"name": "beta-det", "evalPlan": ["bc-agg:leaky"]})
        assert model.status_code == 403 and model.json()["field"] == "evalPlan", model.text
        assert "example_id" in model.json()["detail"] and "note" in model.json()["detail"]
        model = beta.post("/v1/models", files={"file": ("m.skops", model_files["logistic_regression"].read_bytes())},
                          data={"name": "beta-det"})
        assert model.status_code == 201, model.text
        refused = beta.post("/v1/eval-runs", json={"modelVersion": "beta-det@1", "datasetId": "bc-agg", "metricSuiteId": "leaky"})
        assert refused.status_code == 403 and refused.json()["field"] == "metricSuiteId", refused.text
        assert "example_id" in refused.json()["detail"] and "size_bucket" in refused.json()["detail"]
        assert not [r for r in platform.runs("beta-det@1")]
        # the declared columns are fine
        allowed = beta.post("/v1/eval-runs", json={"modelVersion": "beta-det@1", "datasetId": "bc-agg", "metricSuiteId": "bc-agg-release"})
        assert allowed.status_code == 201, allowed.text

        # attack 5 as it was: a run slicing per example (here asked for by alpha, who may read the rows)
        model = alpha.post("/v1/models", files={"file": ("m.skops", model_files["logistic_regression"].read_bytes())},
                           data={"name": "alpha-det", "evalPlan": ["bc-agg:leaky"]})
        assert model.status_code == 201, model.text
        evaluate(platform, "alpha-det@1")
        run = platform.runs("alpha-det@1")[0]
        assert run.status == "succeeded", run.status_reason
        mine = alpha.get(f"/v1/eval-runs/{run.run_id}").json()
        # alpha (rows) sees every slice: one per example and one per note, i.e. every label
        assert sum(s["slice"].startswith("example_id=") for s in mine["results"]["slices"]) == len(frame)
        assert any("example_id=" in json.dumps(r) for r in mine["gate"]["reasons"])
        # ... and that read was one of rows, and is logged as such (not as an aggregate read)
        alpha_log = access.access_log(platform, team="alpha", dataset_key="bc-agg@1")
        assert [(e.action, e.outcome, e.rows) for e in alpha_log if e.run_id == run.run_id] == [("examples", "granted", 2 * len(frame) + 2)]

        theirs = beta.get(f"/v1/eval-runs/{run.run_id}")
        assert theirs.status_code == 200, theirs.text
        shown = {s["slice"] for s in theirs.json()["results"]["slices"]}
        assert shown == {"size_bucket=large"}  # tiny (3) suppressed, small with it; no example_id, no note
        text = theirs.text
        for i in range(len(frame)):
            assert f"patient note {i}:" not in text
        assert "example_id=" not in text
        # no example id as a value anywhere (a substring test would also match digits inside a content hash)
        ids = {str(value) for value in frame["example_id"]}
        assert not ids & set(_string_leaves(theirs.json()))
        assert theirs.json()["results"]["metrics"] == mine["results"]["metrics"]  # the aggregates themselves
        assert theirs.json()["gate"]["decision"] == mine["gate"]["decision"]
        listed = beta.get("/v1/eval-runs", params={"model": "alpha-det@1"}).json()["items"][0]
        assert listed["results"]["slices"] == [] and "example_id" not in json.dumps(listed)

        comparison = beta.get(f"/v1/eval-runs/{run.run_id}/comparison")
        assert comparison.status_code == 200, comparison.text
        assert "example_id=" not in comparison.text and "patient note" not in comparison.text
        assert comparison.json()["regressions"] is None
        gate = beta.get("/v1/models/alpha-det@1/gate")
        assert gate.status_code == 200 and "example_id=" not in gate.text, gate.text
        assert beta.get(f"/v1/eval-runs/{run.run_id}/predictions").status_code == 403

        # the reads are logged as aggregate reads, saying what was left out; the refusals as denied
        log = access.access_log(platform, team="beta", dataset_key="bc-agg@1")
        assert any(e.action == "aggregates" and e.outcome == "granted" and "suppressed" in e.detail and e.run_id == run.run_id
                   for e in log)
        assert any(e.outcome == "denied" and "example_id" in e.detail for e in log)  # the refused requests
        assert any(e.action == "predictions" and e.outcome == "denied" for e in log)
        assert not any(e.action in ("examples", "predictions", "regressions") and e.outcome == "granted" for e in log)


def test_llm_judges_and_candidates_are_refused_on_aggregates_only_data(tmp_path, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        frame = _frame(breast_cancer)
        dataset = platform.register_dataset("bc-agg", frame, "binary_classification", "human_reviewed",
                                            {"level": "restricted", "teams": ["alpha"], "allow_aggregates": True, "min_slice_size": 25},
                                            slice_columns=["size_bucket"]).record
        assert dataset.access_policy["min_slice_size"] == 25
        beta = access.authenticate(platform, create_token(platform, "beta"))
        # a suite's judge as parse_suite records it (the endpoint itself does not matter: nothing is called)
        judged = dataclasses.replace(parse_suite({**ALPHA_SUITE, "slices": ["size_bucket"]}), llm={"judge": {
            "endpoint": {"name": "judge", "base_url": "http://127.0.0.1:1/v1"}, "model": "j", "model_version": "1"}})
        with pytest.raises(access.Forbidden, match="judge") as refusal:
            check_aggregate_use(platform, beta, dataset, judged, "sklearn")
        assert refusal.value.field == "metricSuiteId"
        with pytest.raises(access.Forbidden, match="openai_chat") as refusal:
            check_aggregate_use(platform, beta, dataset, parse_suite({**ALPHA_SUITE, "slices": ["size_bucket"]}), "openai_chat")
        assert refusal.value.field == "modelVersion"
        check_aggregate_use(platform, beta, dataset, parse_suite({**ALPHA_SUITE, "slices": ["size_bucket"]}), "sklearn")
        check_aggregate_use(platform, access.authenticate(platform, create_token(platform, "alpha")), dataset, judged, "openai_chat")  # rows: allowed
        denied = [e for e in access.access_log(platform, team="beta") if e.outcome == "denied"]
        assert len(denied) == 2 and all(e.dataset_key == "bc-agg@1" for e in denied)
    finally:
        platform.close()


def test_min_slice_size_is_a_positive_whole_number_and_optional():
    from eval_platform.core.errors import InvalidInput
    from eval_platform.core.tasks import check_access_policy

    base = {"level": "restricted", "teams": ["alpha"], "allow_aggregates": True}
    assert "min_slice_size" not in check_access_policy(base)  # absent: the version hash of older datasets is kept
    assert check_access_policy(base | {"min_slice_size": 50})["min_slice_size"] == 50
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(InvalidInput) as refusal:
            check_access_policy(base | {"min_slice_size": bad})
        assert refusal.value.field == "access_policy.min_slice_size"
