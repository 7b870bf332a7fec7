"""Text that looks like a number or a missing value stays text through an ``evalp serve`` process (issue 17,
items 1 and 2): generation datasets and predictions files uploaded as CSV and JSONL answering "42" or "NA"
register and evaluate exactly (hand-counted: 0.5 and 2/3); what is missing is refused naming row and column.
Evaluations run without Dagster (the API only records requests; tests/dagster/test_text_eval.py runs Dagster)."""

from __future__ import annotations

import json
import pickle

import httpx
import pytest

from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import create_token
from tests.cli.test_text_columns import NA, NUMERIC, SUITE
from tests.evaluation.test_runner import evaluate
from tests.servers import serve_process


def csv_of(columns: dict, names) -> bytes:
    lines = [",".join(names)] + [",".join(row) for row in zip(*(columns[n] for n in names), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def jsonl_of(columns: dict, names) -> bytes:
    rows = [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server process for the module's tests (starting one takes seconds)."""
    home = tmp_path_factory.mktemp("text-uploads") / "home"
    platform = EvalPlatform.open(home)
    token = create_token(platform, "alpha")
    process, url = serve_process(home)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            yield platform, client
    finally:
        process.terminate()
        process.wait(timeout=30)
        platform.close()


FORM = {"taskType": "generation", "labelPolicy": "synthetic"}


def test_numeric_looking_and_na_answers_register_and_evaluate_exactly(served):
    platform, client = served
    assert client.post("/v1/metric-suites", json=SUITE).status_code == 201
    cases = [("num", NUMERIC, csv_of, ".csv", 0.5), ("na", NA, jsonl_of, ".jsonl", 2 / 3)]
    for name, data, encode, suffix, _ in cases:
        response = client.post("/v1/datasets", data=FORM | {"datasetId": name},
                               files={"file": (f"{name}{suffix}", encode(data, ["example_id", "prompt", "reference"]))})
        assert response.status_code == 201, response.text
        assert response.json()["rowCount"] == len(data["reference"])
        # the predictions file the other way round: JSONL for the CSV dataset, CSV for the JSONL one
        answers = (jsonl_of if encode is csv_of else csv_of)(data, ["example_id", "prediction"])
        response = client.post("/v1/models", data={"name": f"bot-{name}", "kind": "predictions", "evalPlan": [f"{name}:qa"]},
                               files={"file": (f"answers{'.jsonl' if encode is csv_of else '.csv'}", answers)})
        assert response.status_code == 201, response.text
    for name, data, _, _, expected in cases:
        stored = platform.load_dataset(platform.dataset(f"{name}@1"))
        assert stored["reference"].tolist() == data["reference"] and stored["example_id"].tolist() == data["example_id"]
        evaluate(platform, f"bot-{name}@1")
        [run] = platform.runs(f"bot-{name}@1")
        body = client.get(f"/v1/eval-runs/{run.run_id}").json()
        assert body["status"] == "succeeded" and body["results"]["metrics"]["exact_match"] == expected


def test_missing_text_and_pickles_are_refused_and_nothing_is_registered(served, tmp_path):
    platform, client = served
    missing = b'{"example_id": "a", "prompt": "p", "reference": "NA"}\n{"example_id": "b", "prompt": "q", "reference": null}\n'
    response = client.post("/v1/datasets", data=FORM | {"datasetId": "qa"}, files={"file": ("qa.jsonl", missing)})
    assert response.status_code == 422 and response.json()["field"] == "file"
    assert "row 2, column 'reference': the value is missing" in response.json()["detail"]
    number = b'{"example_id": "a", "prompt": "p", "reference": 42}\n'
    response = client.post("/v1/datasets", data=FORM | {"datasetId": "qa"}, files={"file": ("qa.jsonl", number)})
    assert response.status_code == 422 and "row 1, column 'reference': must be text, got int 42" in response.json()["detail"]

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    response = client.post("/v1/datasets", data=FORM | {"datasetId": "qa"}, files={"file": ("qa.csv", pickle.dumps(Exploit()))})
    assert response.status_code == 422 and "is a pickle; refused" in response.json()["detail"]
    assert not (tmp_path / "pwned").exists() and "qa" not in {d.dataset_id for d in platform.datasets()}
