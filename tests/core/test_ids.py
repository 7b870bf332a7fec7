"""One id grammar (issue 11, item 9): dataset ids, suite ids, model names and experiment ids are 1-128 ASCII
letters, digits, '-', '_' or '.', not starting with '.', refused before anything is written at every entry
(API through a real server process, CLI, YAML files), with the field named. And an unhandled exception of a
route is a logged 500 problem, whatever the log level."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from eval_platform.api.app import openapi_document
from eval_platform.core.errors import InvalidInput
from eval_platform.core.keys import (
    ID_OR_KEY_PATTERN,
    ID_PATTERN,
    KEY_PATTERN,
    validate_id,
)
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    EvalDataset,
    EvalRun,
    MetricSuite,
    Model,
)
from eval_platform.registry.access import create_token
from eval_platform.registry.online_schema import Experiment
from tests.api.test_api import SUITE, parquet_bytes
from tests.core.test_operator_config import ROOT, serve, stop

BAD_IDS = [" ", "..", ".hidden", "", "bc é", "détecteur", "a\r\nLocation: /evil", "a\nb", "a/b", "a@b", "a b", "x" * 129, "tab\t"]
GOOD_IDS = ["bc", "breast-cancer_v2.1", "A", "0", "x" * 128, "a..b", "-x", "_"]


@pytest.mark.parametrize("value", GOOD_IDS)
def test_good_ids(value):
    assert validate_id(value, "dataset_id") == value
    for pattern in (ID_PATTERN, ID_OR_KEY_PATTERN):
        assert re.fullmatch(pattern.strip("^$"), value)
    assert re.fullmatch(KEY_PATTERN.strip("^$"), value + "@12")


@pytest.mark.parametrize("value", [*BAD_IDS, None, 3, ["bc"]])
def test_bad_ids_name_the_field_and_show_the_value_escaped(value):
    with pytest.raises(InvalidInput) as refused:
        validate_id(value, "suite_id")
    assert refused.value.field == "suite_id"
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)  # one line, whatever the id held


def test_the_openapi_document_declares_the_grammar():
    document = openapi_document()
    form = document["components"]["schemas"]["Body_register_dataset_v1_datasets_post"]["properties"]
    assert form["datasetId"]["pattern"] == ID_PATTERN and form["datasetId"]["maxLength"] == 128
    assert document["components"]["schemas"]["Body_register_model_v1_models_post"]["properties"]["name"]["pattern"] == ID_PATTERN
    run = document["components"]["schemas"]["EvalRunRequest"]["properties"]
    assert run["modelVersion"]["pattern"] == KEY_PATTERN and run["datasetId"]["pattern"] == ID_OR_KEY_PATTERN
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/v1/datasets/{datasetKey}"]["get"]["parameters"]}
    assert parameters["datasetKey"]["pattern"] == KEY_PATTERN


def _counts(platform: EvalPlatform) -> dict:
    with platform.registry.session() as session:
        return {table.__tablename__: session.scalar(select(func.count()).select_from(table))
                for table in (EvalDataset, MetricSuite, Model, EvalRun, Experiment)}


def test_bad_ids_through_the_api_are_422_and_nothing_is_written(tmp_path, db_url, breast_cancer, model_files):
    home = tmp_path / "home"
    platform = EvalPlatform.open(home, db_url=db_url)
    token = create_token(platform, "beta")
    frame = breast_cancer[2].head(60)
    before = _counts(platform)
    process, url = serve(home, {"EVAL_PLATFORM_DB_URL": db_url})
    try:
        beta = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        model_bytes = model_files["logistic_regression"].read_bytes()
        for bad in BAD_IDS:
            response = beta.post("/v1/datasets", files={"file": ("d.parquet", parquet_bytes(frame))},
                                 data={"datasetId": bad, "taskType": "binary_classification", "labelPolicy": "human_reviewed"})
            assert (response.status_code, response.json()["field"]) == (422, "datasetId"), (bad, response.text)
            response = beta.post("/v1/models", data={"name": bad}, files={"file": ("m.skops", model_bytes)})
            assert (response.status_code, response.json()["field"]) == (422, "name"), (bad, response.text)
            response = beta.post("/v1/metric-suites", json={**SUITE, "suite_id": bad})
            assert (response.status_code, response.json()["field"]) == (422, "suite_id"), (bad, response.text)
            response = beta.post("/v1/experiments", json={"experimentId": bad, "arms": {"control": "a@1", "treatment": "b@1"}})
            assert (response.status_code, response.json()["field"]) == (422, "experiment_id"), (bad, response.text)
            response = beta.post("/v1/eval-runs", json={"modelVersion": f"{bad}@1", "datasetId": "bc", "metricSuiteId": "s"})
            assert (response.status_code, response.json()["field"]) == (422, "modelVersion"), (bad, response.text)
        # the server is still answering, and nothing was committed
        assert beta.get("/v1/datasets").json() == [] and beta.get("/v1/models").json() == []
        assert not list((home / "models").glob("sha256-*"))
        # a good id still goes through
        response = beta.post("/v1/datasets", files={"file": ("d.parquet", parquet_bytes(frame))},
                             data={"datasetId": "bc.v2", "taskType": "binary_classification", "labelPolicy": "human_reviewed"})
        assert response.status_code == 201 and response.headers["location"] == "/v1/datasets/bc.v2@1"
    finally:
        stderr = stop(process)
    assert '"status": 500' not in stderr and "Traceback" not in stderr
    after = _counts(platform)
    assert after == {**before, "eval_datasets": before["eval_datasets"] + 1}
    platform.close()


def test_bad_ids_through_the_cli_and_files_are_refused_and_nothing_is_written(tmp_path, breast_cancer, model_files, capsys):
    from eval_platform.cli.main import main

    home = tmp_path / "home"
    platform = EvalPlatform.open(home)
    before = _counts(platform)
    data = tmp_path / "bc.parquet"
    breast_cancer[2].head(60).to_parquet(data)
    for bad in ["..", " ", "détecteur", "a\r\nb", ".hidden"]:
        commands = {
            "dataset_id": ["datasets", "register", bad, "--file", str(data), "--task-type", "binary_classification",
                           "--label-policy", "human_reviewed"],
            "name": ["models", "register", bad, "--file", str(model_files["logistic_regression"])],
        }
        suite_file = tmp_path / "suite.yaml"
        suite_file.write_text(yaml.safe_dump({**SUITE, "suite_id": bad}))
        commands["suite_id"] = ["suites", "register", str(suite_file)]
        experiment_file = tmp_path / "exp.yaml"
        experiment_file.write_text(yaml.safe_dump({"experiment_id": bad, "arms": {"control": "a@1", "treatment": "b@1"}}))
        commands["experiment_id"] = ["experiments", "register", str(experiment_file)]
        for field, argv in commands.items():
            assert main([*argv, "--home", str(home)]) == 2, (field, bad)
            error = capsys.readouterr().err
            assert error.startswith(f"evalp: error: {field}: must be 1-128 ASCII") and error.count("\n") == 1, error
    assert _counts(platform) == before
    assert not (home / "store" / "datasets").exists() or not any((home / "store" / "datasets").rglob("*.parquet"))
    platform.close()


def test_an_experiment_id_leaves_room_for_its_events_dataset(platform):
    from eval_platform.online.experiments import register_experiment

    with pytest.raises(InvalidInput, match="at most 117") as refused:
        register_experiment(platform, {"experiment_id": "e" * 118, "arms": {"control": "a@1", "treatment": "b@1"}}, "t")
    assert refused.value.field == "experiment_id"


BOOM_SERVER = textwrap.dedent("""
    import sys
    import uvicorn
    from eval_platform.api.app import create_app
    from eval_platform.governance.observability import configure_logging

    configure_logging("WARNING")  # below INFO: the level at which the observer used to swallow the exception
    app = create_app(home=sys.argv[1])

    @app.get("/v1/test-only/boom")
    def boom():
        raise RuntimeError("boom for the test")

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_config=None, access_log=False)
""")


def test_an_unhandled_route_exception_is_a_logged_500_problem(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", BOOM_SERVER, str(tmp_path / "home"), str(port)], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.1)
        response = httpx.get(f"{url}/v1/test-only/boom", timeout=30)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 500 and "boom for the test" not in response.text  # no internals
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # and the server goes on
    finally:
        stderr = stop(process)
    assert "unhandled error" in stderr and "RuntimeError: boom for the test" in stderr
