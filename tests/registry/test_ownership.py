"""Principals, roles and ownership of names (issue 11, attacks 3, 4, 6 and 7), through the real API.

Team ``alpha`` registers a dataset, suites and a model over the API; team ``beta`` then tries what the
attacker of issue 11 did. The attack regressions drive a real ``evalp serve`` process; the roles x
operations matrix drives the app on a uvicorn server in this process (``tests.api.test_api.Server``).
Evaluations run without Dagster (``tests.evaluation.test_runner.evaluate``), standing in for the sensor.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta

import httpx
import pandas as pd
import pytest
from sqlalchemy import func, select

from eval_platform.api.app import create_app
from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    DagsterRequest,
    EvalDataset,
    EvalPlanEntry,
    EvalRun,
    GateOverride,
    Incident,
    MetricSuite,
    Model,
    access,
)
from eval_platform.registry.access import create_token
from tests.api.test_api import Server, _serve_in_a_process, parquet_bytes
from tests.evaluation.test_runner import evaluate

SUITE = {
    "suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
    "metrics": [{"metric": "roc_auc@1"}, {"name": "accuracy", "metric": "accuracy@1"}],
    "comparison": {"bootstrap_resamples": 100, "confidence": 0.95, "seed": 0},
    "gate": {"require_baseline": False, "approvers": ["alpha"], "rules": [{"metric": "roc_auc", "min": 0.5}]},
    "online": {"confidence": 0.95, "guardrails": [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05}]},
}
OFFLINE_SUITE = {k: v for k, v in SUITE.items() if k != "online"}
COMMON = {"taskType": "binary_classification", "labelPolicy": "human_reviewed"}


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _counts(platform: EvalPlatform) -> dict[str, int]:
    with platform.registry.session() as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t))
                for t in (EvalDataset, MetricSuite, Model, EvalPlanEntry, EvalRun, GateOverride, DagsterRequest, Incident)}


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"] == "urn:evalp:problem:forbidden" and problem["field"] == field, problem


def _alpha_world(platform: EvalPlatform, alpha: httpx.Client, frame: pd.DataFrame, model_files) -> None:
    """alpha's names: bc (restricted to alpha), bc-int (internal), bc-release; det@1 (promoted) and det@2 (gate failed)."""
    response = alpha.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(frame))},
                          data={**COMMON, "datasetId": "bc", "accessLevel": "restricted", "teams": ["alpha"]})
    assert response.status_code == 201, response.text
    response = alpha.post("/v1/datasets", files={"file": ("bc-int.parquet", parquet_bytes(frame))}, data={**COMMON, "datasetId": "bc-int"})
    assert response.status_code == 201, response.text
    assert alpha.post("/v1/metric-suites", json=SUITE).status_code == 201
    for model in ("logistic_regression", "decision_stump"):
        response = alpha.post("/v1/models", files={"file": (f"{model}.skops", model_files[model].read_bytes())},
                              data={"name": "det", "evalPlan": ["bc:bc-release", "bc-int:bc-release"]})
        assert response.status_code == 201, response.text
        assert response.json()["queuedRuns"], response.text
        evaluate(platform, response.json()["key"])
    releases.promote(platform, "det@1", promoted_by="alpha")  # what the release job does
    platform.record_gate("model_version", "det@2", "fail", [{"rule": "x", "outcome": "fail"}])


class Listener:
    """A TCP listener on loopback that records whether anything connected (the attacker's server)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/v1"
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.socket.close()


# attacks 3 and 4 of issue 11, through a real `evalp serve` process ----------------------------------------
def test_another_team_cannot_take_over_names_through_a_served_api(tmp_path, db_url, model_files, breast_cancer):
    """beta (an ordinary member token) against alpha's names on `evalp serve`: no new version of alpha's model
    (an LLM model pointing at beta's server, inheriting alpha's plan on a restricted dataset), dataset or suite;
    no override, promotion or invalidation of alpha's things. Each refusal names the field, writes nothing,
    sends nothing to beta's listener and is in the access log."""
    home = tmp_path / "home"
    platform = EvalPlatform.open(home, db_url=db_url)
    tokens = {"alpha": create_token(platform, "alpha", roles=("member", "approver")),
              "beta": create_token(platform, "beta", principal="mallory", kind="person", roles=("member", "approver"))}
    process, url = _serve_in_a_process(home, db_url)
    listener = Listener()
    try:
        alpha, beta = _client(url, tokens["alpha"]), _client(url, tokens["beta"])
        frame = breast_cancer[2]
        _alpha_world(platform, alpha, frame, model_files)
        before, models_dir = _counts(platform), sorted((home / "models").iterdir())

        # attack 3: a new version of alpha's model name, an openai_chat model sending every prompt and label to beta
        llm = {"base_url": listener.url, "model": "exfil", "model_version": "1", "api_key_env": "EVAL_PLATFORM_DB_URL",
               "prompt": {"version": "1", "template": "{prompt} || label={reference}"}}
        response = beta.post("/v1/models", data={"name": "det", "kind": "openai_chat"},
                             files={"file": ("m.json", json.dumps(llm).encode())})
        _refused(response, "name")
        assert "another team" in response.json()["detail"]
        # nor through another plan entry, nor with a sklearn file
        response = beta.post("/v1/models", data={"name": "det", "evalPlan": ["bc-int:bc-release"]},
                             files={"file": ("m.skops", model_files["gradient_boosting"].read_bytes())})
        _refused(response, "name")

        # attack 4: alpha's dataset id (flipped labels) and suite id (beta as approver, a rule that always passes)
        flipped = frame.assign(label=1 - frame["label"])
        response = beta.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(flipped))},
                             data={**COMMON, "datasetId": "bc-int"})
        _refused(response, "datasetId")
        response = beta.post("/v1/datasets", files={"file": ("bc.parquet", parquet_bytes(flipped))},
                             data={**COMMON, "datasetId": "bc", "accessLevel": "restricted", "teams": ["beta"]})
        _refused(response, "datasetId")
        rigged = SUITE | {"gate": {"require_baseline": False, "approvers": ["beta"], "rules": [{"metric": "roc_auc", "min": 0.0}]}}
        _refused(beta.post("/v1/metric-suites", json=rigged), "suite_id")
        # ... then override and promote alpha's model, invalidate alpha's dataset
        _refused(beta.post("/v1/models/det@2/gate/override", json={"reason": "trust me"}), "Authorization")
        _refused(beta.post("/v1/models/det@2/online-gate/override", json={"reason": "trust me"}), "Authorization")
        _refused(beta.post("/v1/models/det@1/promote", json={"reason": "ship"}), "modelKey")
        _refused(beta.post("/v1/datasets/bc-int@1/invalidate", json={"reason": "sabotage"}), "datasetKey")
        _refused(beta.post("/v1/eval-runs", json={"modelVersion": "det@2", "datasetId": "bc-int", "metricSuiteId": "bc-release"}),
                 "modelVersion")
        # platform-wide operations need an admin
        _refused(beta.post("/v1/metrics/roc_auc@1/mark-buggy", json={"reason": "freeze everyone"}), "Authorization")
        _refused(beta.post("/v1/recompute", json={"affectedBy": "roc_auc@1"}), "Authorization")

        assert _counts(platform) == before and sorted((home / "models").iterdir()) == models_dir
        assert platform.dataset("bc-int@1").status == "active" and listener.connections == 0
        assert alpha.get("/v1/models/det@2/gate").json()["decision"] == "fail"  # no override
        denied = {(e.team, e.action, e.dataset_key) for e in access.access_log(platform, team="beta") if e.outcome == "denied"}
        assert {("beta", "change", "model:det"), ("beta", "change", "dataset:bc-int"), ("beta", "change", "dataset:bc"),
                ("beta", "change", "suite:bc-release"), ("beta", "change", "metric:roc_auc@1")} <= denied, denied

        # beta's own names are beta's: the same requests under them are accepted
        response = beta.post("/v1/datasets", files={"file": ("b.parquet", parquet_bytes(flipped))}, data={**COMMON, "datasetId": "beta-bc"})
        assert response.status_code == 201, response.text
        assert beta.post("/v1/metric-suites", json=rigged | {"suite_id": "beta-release"}).status_code == 201
        response = beta.post("/v1/models", data={"name": "beta-det", "evalPlan": ["beta-bc:beta-release"]},
                             files={"file": ("m.skops", model_files["gradient_boosting"].read_bytes())})
        assert response.status_code == 201, response.text
        with platform.registry.session() as session:
            owners = {(m.name, m.version): m.owner_team for m in session.scalars(select(Model))}
        assert owners == {("det", 1): "alpha", ("det", 2): "alpha", ("beta-det", 1): "beta"}
        # alpha's approver overrides its own model's gate; the record names the token's principal
        response = alpha.post("/v1/models/det@2/gate/override", json={"reason": "accepted risk"})
        assert response.status_code == 201 and response.json()["approver"] == "alpha", response.text
    finally:
        listener.close()
        process.terminate()
        process.wait(timeout=30)
        platform.close()


# the roles x operations matrix ----------------------------------------------------------------------------
WHO = ("member", "approver", "admin", "other team")
#: operation -> the principals allowed (everyone else gets a 403)
ALLOWED = {
    "register dataset version": {"member", "admin"},
    "register model version": {"member", "admin"},
    "change plan": {"member", "admin"},
    "invalidate": {"member", "admin"},
    "override": {"approver"},  # an approver named in the suite: an admin is not one
    "promote": {"member", "admin"},
    "mark-buggy": {"admin"},
    "recompute": {"admin"},
}


def _predictions_model(frame: pd.DataFrame) -> bytes:
    """A ``predictions`` model file: outputs computed elsewhere, keyed by the dataset's id column."""
    return parquet_bytes(pd.DataFrame({"example_id": frame["example_id"], "score": (frame["label"] * 0.8 + 0.1).astype(float)}))


def _register_what_the_operations_act_on(platform: EvalPlatform, alpha: httpx.Client, frame: pd.DataFrame, model_files) -> None:
    """bc-int@1, bc-inv@1..3 (one to invalidate per allowed principal), the release and exploratory suites, det@1
    and det@2 registered and evaluated, and a failed gate on det@2 (to override)."""
    response = alpha.post("/v1/datasets", files={"file": ("d.parquet", parquet_bytes(frame))}, data={**COMMON, "datasetId": "bc-int"})
    assert response.status_code == 201
    for version in (1, 2, 3):  # bc-inv@1..3: one to invalidate per allowed principal
        response = alpha.post("/v1/datasets", files={"file": ("d.parquet", parquet_bytes(frame.iloc[version:]))},
                              data={**COMMON, "datasetId": "bc-inv"})
        assert response.status_code == 201
    assert alpha.post("/v1/metric-suites", json=OFFLINE_SUITE).status_code == 201
    assert alpha.post("/v1/metric-suites", json=OFFLINE_SUITE | {"suite_id": "bc-explore", "purpose": "exploratory"}).status_code == 201
    for model in ("logistic_regression", "decision_stump"):
        response = alpha.post("/v1/models", files={"file": ("m.skops", model_files[model].read_bytes())},
                              data={"name": "det", "evalPlan": ["bc-int:bc-release"]})
        assert response.status_code == 201, response.text
        evaluate(platform, response.json()["key"])
    platform.record_gate("model_version", "det@2", "fail", [{"rule": "x", "outcome": "fail"}])


class _Operations:
    """Each operation of the matrix as one principal (``who``) attempts it through the API."""

    def __init__(self, clients: dict[str, httpx.Client], frame: pd.DataFrame, model_files):
        self.clients, self.frame, self.model_files = clients, frame, model_files
        self.files = {"member": ("g.skops", model_files["gradient_boosting"].read_bytes()),
                      "admin": ("p.parquet", _predictions_model(frame))}
        self.invalidated = iter(("bc-inv@1", "bc-inv@2", "bc-inv@3"))
        self.by_name = {"register dataset version": self.register_dataset_version, "register model version": self.register_model_version,
                        "change plan": self.change_plan, "invalidate": self.invalidate, "override": self.override,
                        "promote": self.promote, "mark-buggy": self.mark_buggy, "recompute": self.recompute}

    def attempt(self, operation: str, who: str) -> httpx.Response:
        if operation not in self.by_name:
            raise AssertionError(operation)
        return self.by_name[operation](self.clients[who], who)

    def register_dataset_version(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post("/v1/datasets", files={"file": ("d.parquet", parquet_bytes(self.frame.iloc[10 + WHO.index(who):]))},
                           data={**COMMON, "datasetId": "bc-int"})

    def register_model_version(self, client: httpx.Client, who: str) -> httpx.Response:
        upload = self.files.get(who, self.files["member"])
        kind = "predictions" if upload[0].endswith(".parquet") else "sklearn"
        return client.post("/v1/models", data={"name": "det", "kind": kind}, files={"file": upload})

    def change_plan(self, client: httpx.Client, who: str) -> httpx.Response:  # the same file (no new version), a new plan entry
        return client.post("/v1/models", data={"name": "det", "evalPlan": ["bc-int:bc-explore"]},
                           files={"file": ("m.skops", self.model_files["logistic_regression"].read_bytes())})

    def invalidate(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post(f"/v1/datasets/{next(self.invalidated) if who in ALLOWED['invalidate'] else 'bc-inv@3'}/invalidate",
                           json={"reason": "leaked"})

    def override(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post("/v1/models/det@2/gate/override", json={"reason": "accepted risk"})

    def promote(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post("/v1/models/det@1/promote", json={"reason": "release"})

    def mark_buggy(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post("/v1/metrics/accuracy@1/mark-buggy", json={"reason": "off by one"})

    def recompute(self, client: httpx.Client, who: str) -> httpx.Response:
        return client.post("/v1/recompute", json={"affectedBy": "accuracy@1"})


def _attempt_every_operation(platform: EvalPlatform, operations: _Operations) -> dict[tuple[str, str], int]:
    """Every (operation, principal) attempted, the refused first; a refusal is a 403 naming a field that changes nothing."""
    outcome: dict[tuple[str, str], int] = {}
    for operation in ALLOWED:
        # the refused first: a refusal must change nothing the allowed attempt then relies on
        for who in sorted(WHO, key=lambda w: w in ALLOWED[operation]):
            before = _counts(platform)
            response = operations.attempt(operation, who)
            outcome[(operation, who)] = response.status_code
            if who not in ALLOWED[operation]:
                assert response.status_code == 403, (operation, who, response.text)
                assert response.json()["field"], response.text
                assert _counts(platform) == before, (operation, who)
            else:
                assert response.status_code in (200, 201, 202, 409), (operation, who, response.text)
    return outcome


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_roles_by_operations_matrix(tmp_path, db_url, model_files, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    owner = create_token(platform, "alpha", principal="builder", roles=("member", "approver"))
    tokens = {"member": create_token(platform, "alpha", principal="dev", kind="person", roles=("member",)),
              "approver": create_token(platform, "alpha", principal="lead", kind="person", roles=("approver",)),
              "admin": create_token(platform, "ops", principal="root", kind="person", roles=("admin",)),
              "other team": create_token(platform, "beta", roles=("member", "approver"))}
    frame = breast_cancer[2]
    with Server(create_app(platform)) as server:
        alpha = _client(server.url, owner)
        as_ = {who: _client(server.url, token) for who, token in tokens.items()}
        _register_what_the_operations_act_on(platform, alpha, frame, model_files)
        outcome = _attempt_every_operation(platform, _Operations(as_, frame, model_files))
        table = "\n".join(f"{op:<26}" + " ".join(f"{outcome[(op, who)]:>10}" for who in WHO) for op in ALLOWED)
        expected = {
            "register dataset version": {"member": 201, "admin": 201},
            "register model version": {"member": 201, "admin": 201},
            "change plan": {"member": 200, "admin": 200},
            "invalidate": {"member": 200, "admin": 200},
            "override": {"approver": 201},
            "promote": {"member": 202, "admin": 202},
            "mark-buggy": {"admin": 200},
            "recompute": {"admin": 409},  # allowed; no fixed version of accuracy exists to recompute with
        }
        for (operation, who), status in outcome.items():
            assert status == expected[operation].get(who, 403), f"{operation} by {who}: {status}\n{table}"
        # what was recorded names the token's principal
        with platform.registry.session() as session:
            assert [o.approver for o in session.scalars(select(GateOverride))] == ["alpha:lead"]
            assert sorted(r.requested_by for r in session.scalars(select(DagsterRequest).where(DagsterRequest.kind == "promotion"))) == [
                "alpha:dev", "ops:root"]
            assert [(i.target, i.reported_by) for i in session.scalars(select(Incident).where(Incident.kind == "metric_bug"))] == [
                ("accuracy@1", "ops:root")]
            versions = {(d.dataset_id, d.version): d.owner_team for d in session.scalars(select(EvalDataset))}
        assert versions[("bc-int", 2)] == versions[("bc-int", 3)] == "alpha"  # the admin's version stays alpha's
        assert {e.dataset_key for e in access.access_log(platform, team="beta") if e.action == "change"} >= {
            "dataset:bc-int", "model:det", "dataset:bc-inv", "metric:accuracy@1", "recompute:accuracy@1"}
    platform.close()


# tokens ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_expired_token_is_refused_with_401(tmp_path, db_url):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    expired = create_token(platform, "alpha", principal="ci", expires_in=timedelta(microseconds=1))
    fresh = create_token(platform, "alpha", principal="ci", expires_in="1h")
    with Server(create_app(platform)) as server:
        response = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {expired}"})
        assert response.status_code == 401 and response.json()["type"] == "urn:evalp:problem:unauthenticated"
        assert "expired" in response.json()["detail"] and response.headers["www-authenticate"].startswith("Bearer")
        # the hot POST path checks expiry too
        body = {"modelVersion": "nope@1", "datasetId": "x", "metricSuiteId": "y"}
        assert httpx.post(f"{server.url}/v1/eval-runs", json=body, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
        assert httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    with pytest.raises(access.Unauthenticated):
        access.authenticate(platform, expired)
    platform.close()


def test_cli_creates_principals_with_roles_and_expiry(tmp_path, capsys):
    from eval_platform.cli import api as cli_api

    home = str(tmp_path / "home")
    assert cli_api.main(["tokens", "create", "--team", "alpha", "--principal", "alice", "--kind", "person", "--role", "member",
                         "--role", "approver", "--expires-in", "30d", "--home", home]) == 0
    token = capsys.readouterr().out.strip()
    platform = EvalPlatform.open(home)
    principal = access.authenticate(platform, token)
    assert (principal.team, principal.name, principal.kind, principal.roles, principal.label) == (
        "alpha", "alice", "person", ("approver", "member"), "alpha:alice")
    assert cli_api.main(["tokens", "create", "--team", "alpha", "--home", home]) == 0  # the team's default principal
    default = access.authenticate(platform, capsys.readouterr().out.strip())
    assert (default.name, default.roles, default.label) == ("alpha", ("member",), "alpha")
    assert cli_api.main(["tokens", "list", "--json", "--home", home]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["principal"], t["roles"], t["expires_at"] is not None) for t in listed] == [
        ("alice", ["approver", "member"], True), ("alpha", ["member"], False)]
    for bad, field in ((["--expires-in", "soon"], "expires_in"), (["--principal", "has space"], "principal"),
                       (["--expires-in", "0d"], "expires_in")):
        assert cli_api.main(["tokens", "create", "--team", "alpha", *bad, "--home", home]) == 2
        assert field in capsys.readouterr().err
    assert len(access.list_tokens(platform)) == 2  # nothing written by a refused command
    platform.close()


def test_migration_keeps_old_tokens_as_the_teams_member_principal(tmp_path, db_url, monkeypatch):
    """A registry at 0005 with a team token and an API-made experiment: after 0007 the token stands for principal
    ``<team>`` with role ``member``; the experiment belongs to its team; datasets, suites and models are unowned."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from eval_platform.registry.database import Registry, _alembic_config

    engine = create_engine(db_url)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    token = "evalp_" + "x" * 43
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO api_tokens (team, name, token_hash, prefix, created_at) "
                                "VALUES ('alpha', 'ci', :digest, 'evalp_xxxxxx', CURRENT_TIMESTAMP)"), {"digest": access.hash_token(token)})
        connection.execute(text(
            "INSERT INTO experiments (experiment_id, mode, config, config_hash, candidate_models, control_model, offline_gate, "
            "access_policy, description, status, created_by, created_at) VALUES "
            "('by-api', 'ab', '{}', 'h', '[]', 'm@1', '{}', '{}', '', 'running', 'alpha', CURRENT_TIMESTAMP), "
            "('by-cli', 'ab', '{}', 'h', '[]', 'm@1', '{}', '{}', '', 'running', 'someone', CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO eval_datasets (dataset_id, version, task_type, label_policy, access_policy, content_hash, version_hash, "
            "row_count, schema, description, status, created_at) VALUES ('old', 1, 'binary_classification', 'human_reviewed', "
            "'{}', 'c', 'v', 1, '{}', '', 'active', CURRENT_TIMESTAMP)"))
    engine.dispose()
    registry = Registry.open(db_url)  # migrates to head
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    principal = access.authenticate(platform, token)
    assert (principal.team, principal.name, principal.roles, principal.label) == ("alpha", "alpha", ("member",), "alpha")
    with registry.engine.connect() as connection:
        owners = dict(connection.execute(text("SELECT experiment_id, owner_team FROM experiments")).all())
        assert owners == {"by-api": "alpha", "by-cli": None}
        assert connection.execute(text("SELECT owner_team FROM eval_datasets")).scalar() is None
    # an unowned (legacy) name: only an admin may add a version of it; the operator hands it to a team
    with pytest.raises(access.Forbidden) as refused:
        access.require_owner(platform, principal, access.DATASET, "old", "register a version of it", "dataset_id")
    assert refused.value.field == "dataset_id" and "no team" in str(refused.value)
    admin = access.Principal("ops", name="root", roles=(access.ADMIN,))
    assert access.require_owner(platform, admin, access.DATASET, "old", "register a version of it", "dataset_id") is None
    from eval_platform.cli import api as cli_api

    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", db_url)
    assert cli_api.main(["owners", "set", "dataset", "old", "--team", "alpha", "--home", str(tmp_path / "home")]) == 0
    assert access.require_owner(platform, principal, access.DATASET, "old", "register a version of it", "dataset_id") == "alpha"
    assert cli_api.main(["owners", "set", "dataset", "old", "--team", "beta", "--home", str(tmp_path / "home")]) == 2  # not unowned
    registry.dispose()
    platform.close()


# every door checked ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_online_gate_listings_and_comparisons_follow_the_access_policy(tmp_path, db_url, model_files, breast_cancer):
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    tokens = {team: create_token(platform, team) for team in ("alpha", "beta")}
    with Server(create_app(platform)) as server:
        alpha, beta = _client(server.url, tokens["alpha"]), _client(server.url, tokens["beta"])
        _alpha_world(platform, alpha, breast_cancer[2], model_files)
        # a model evaluated only on bc (hidden from beta) is not listed to beta, and answers as absent
        response = alpha.post("/v1/models", files={"file": ("m.skops", model_files["gradient_boosting"].read_bytes())},
                              data={"name": "secret-det", "evalPlan": ["bc:bc-release"]})
        assert response.status_code == 201, response.text
        evaluate(platform, "secret-det@1")
        assert "secret-det@1" in {m["key"] for m in alpha.get("/v1/models").json()}
        listed = {m["key"] for m in beta.get("/v1/models").json()}
        assert "secret-det@1" not in listed and {"det@1", "det@2"} <= listed  # det is evaluated on bc-int too
        for path in ("/v1/models/{}/gate", "/v1/models/{}/online-gate"):
            got, absent = beta.get(path.format("secret-det@1")), beta.get(path.format("nope@1"))
            assert got.status_code == absent.status_code == 404
            assert got.json()["detail"].replace("secret-det@1", "nope@1") == absent.json()["detail"]

        # a comparison against a run of a hidden dataset: as if no such run existed (the 409 named it before)
        int_run = next(r for r in platform.runs("det@2") if r.dataset_id == "bc-int")
        hidden_run = next(r for r in platform.runs("det@1") if r.dataset_id == "bc")
        got = beta.get(f"/v1/eval-runs/{int_run.run_id}/comparison", params={"baseline": hidden_run.run_id})
        absent = beta.get(f"/v1/eval-runs/{int_run.run_id}/comparison", params={"baseline": "run-0123456789abcdef"})
        assert got.status_code == absent.status_code == 422 and got.json()["field"] == "baseline" and "bc@1" not in got.text
        assert got.json()["detail"].replace(hidden_run.run_id, "X") == absent.json()["detail"].replace("run-0123456789abcdef", "X")

        # the online gate of det@2: evidence from an experiment restricted to alpha is withheld from beta (logged)
        spec = {"experimentId": "exp-a", "access_policy": {"level": "restricted", "teams": ["alpha"]},
                "arms": [{"name": "control", "model_version": "det@1", "split": 0.5},
                         {"name": "treatment", "model_version": "det@2", "split": 0.5}],
                "primary_metric": {"metric": "click", "direction": "higher", "aggregate": "sum"},
                "metrics": {"latency_ms": {"aggregate": "mean"}},
                "guardrails": [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05}]}
        _refused(beta.post("/v1/experiments", json=spec | {"experimentId": "exp-b"}), "arms")  # not beta's model
        response = alpha.post("/v1/experiments", json=spec)
        assert response.status_code == 201, response.text
        assert response.json()["createdBy"] == "alpha"
        mine = alpha.get("/v1/models/det@2/online-gate").json()
        assert any("exp-a" in json.dumps(r) for r in mine["reasons"])
        theirs = beta.get("/v1/models/det@2/online-gate")
        assert theirs.status_code == 200 and "exp-a" not in theirs.text
        assert theirs.json()["decision"] == mine["decision"] and all(r["redacted"] for r in theirs.json()["reasons"])
        assert beta.get("/v1/experiments/exp-a").status_code == beta.get("/v1/experiments/nope").status_code == 404
        log = [(e.team, e.dataset_key, e.outcome) for e in access.access_log(platform) if e.dataset_key == "experiment:exp-a"]
        assert ("alpha", "experiment:exp-a", "granted") in log and ("beta", "experiment:exp-a", "denied") in log
        # ingests into alpha's experiment are alpha's
        events = pd.DataFrame({"unit_id": ["u1", "u2"], "arm": ["control", "treatment"], "timestamp": ["2026-01-01", "2026-01-01"],
                               "click": [1, 0], "latency_ms": [10.0, 11.0]})
        upload = {"file": ("e.csv", events.to_csv(index=False).encode())}
        assert beta.post("/v1/experiments/exp-a/ingests", files=upload).status_code == 404  # hidden: as absent
    platform.close()
