"""Schemathesis against the served OpenAPI document: generated requests (valid and not) to every operation
of a real server on 127.0.0.1 must never get a 5xx, and a request the document says is well formed must never
be rejected as malformed. Bounded: a few examples per operation.

"Rejected as malformed" is a 400, or a 422 whose reason is the request's shape: what request validation says
(a missing or unknown field, a value of the wrong type, length or pattern) or the id grammar. Those are the
document lying about what the API accepts. A 422 about what a well-formed request *means* (it names a model or
dataset that does not exist, or uploads bytes that are no Parquet file) is an answer no schema can spare a
client, and schemathesis's own ``positive_data_acceptance`` (which accepts only 401/403/404/409 then) would
count every random name and every random upload as a failure."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from eval_platform.api.app import create_app, openapi_document
from eval_platform.core.keys import GRAMMAR
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import create_token, set_owner
from tests.api.test_api import SUITE, Server
from tests.evaluation.test_runner import evaluate

#: generated examples per operation; EVALP_FUZZ_EXAMPLES=200 for a longer hunt
MAX_EXAMPLES = int(os.environ.get("EVALP_FUZZ_EXAMPLES") or 15)


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_files, breast_cancer):
    """An installation with a dataset, a suite and an evaluated model, served by uvicorn (SQLite registry)."""
    platform = EvalPlatform.open(tmp_path_factory.mktemp("fuzz") / "home")
    token = create_token(platform, "fuzz")
    platform.register_dataset("bc", breast_cancer[2], "binary_classification", "human_reviewed",
                              {"level": "restricted", "teams": ["fuzz"]}, slice_columns=["tumour_size"])
    platform.register_suite(SUITE)
    platform.register_model("det", model_files["logistic_regression"], eval_plan=[("bc", "bc-release")])
    evaluate(platform, "det@1")
    for kind, name in (("dataset", "bc"), ("suite", "bc-release"), ("model", "det")):  # the operator's names: give them to fuzz
        set_owner(platform, kind, name, "fuzz")
    with Server(create_app(platform)) as server:
        yield server.url, token
    platform.close()


#: what request validation (pydantic, via problems._validation_message) and the id grammar say: the shape
SHAPE_WORDS = ("is required", "is not a known field", "should ", "Input should", "Field required", GRAMMAR, "JSON decode")


@schemathesis.check
def schema_valid_request_accepted(ctx, response, case):
    """A request generated as valid by the document is not refused for its shape (400, or a shape 422)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code == 400 or (response.status_code == 422 and any(
            word in (response.json().get("detail") or "") for word in SHAPE_WORDS)):
        raise AssertionError(f"Schema-valid request rejected: {response.status_code} {response.text[:500]}")
    return None


# the app's document (the one it serves; test_api checks openapi.json is the same)
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
def test_no_server_errors(case, served):
    url, token = served
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error, schema_valid_request_accepted])
