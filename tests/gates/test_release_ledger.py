"""The release ledger: "what served at T" across a promotion, a second promotion, a rollback and a demotion;
who may roll back and to what; the hash chain catching an edited or deleted row; the evidence bundle; and the
API routes with another team's token. On SQLite and on the real PostgreSQL server (whose trigger refuses
edits outright)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from datetime import timedelta
from html.parser import HTMLParser

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from eval_platform.api.app import create_app
from eval_platform.cli.main import main
from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.store import PLOTS
from eval_platform.gates import releases
from eval_platform.gates.evidence_bundle import export_bundle
from eval_platform.gates.ledger import demote, history, rollback, serving_at, verify_chain
from eval_platform.governance.incidents import invalidate_dataset
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import Promotion, ReleaseLedgerEntry, ledger
from eval_platform.registry.access import Forbidden, Principal, create_token
from eval_platform.registry.schema import Base, utcnow
from tests.api.test_api import Server
from tests.evaluation.test_runner import evaluate

SUITE = {"suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
         "metrics": [{"metric": "roc_auc@1"}],
         "gate": {"require_baseline": False, "approvers": ["alpha"], "rules": [{"metric": "roc_auc", "min": 0.5}]}}
ALPHA_MEMBER = Principal("alpha", None, name="mia", roles=("member",))
ALPHA_APPROVER = Principal("alpha", None, name="ann", roles=("member", "approver"))
BETA_APPROVER = Principal("beta", None, name="bob", roles=("member", "approver"))
ADMIN = Principal("ops", None, name="root", roles=("admin",))


def _tick() -> None:
    """Let the clock move past the last entry's microsecond, so a time taken now is strictly between events."""
    start = utcnow()
    while utcnow() <= start:
        time.sleep(0.001)


def _world(platform: EvalPlatform, model_files, frame, versions=("logistic_regression", "gradient_boosting")) -> None:
    """Team alpha owns dataset ``bc``, the suite and model name ``det``; every version is evaluated (gate: pass)."""
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed", principal=ALPHA_MEMBER)
    platform.register_suite(SUITE, principal=ALPHA_MEMBER)
    for index, name in enumerate(versions, start=1):
        platform.register_model("det", model_files[name], eval_plan=[("bc", "bc-release")] if index == 1 else (),
                                principal=ALPHA_MEMBER)
        assert evaluate(platform, f"det@{index}").decision == "pass"


@pytest.fixture
def alpha(platform, model_files, breast_cancer):
    _world(platform, model_files, breast_cancer[2])
    return platform


def test_serving_at_t_across_promotion_rollback_and_demotion(alpha, model_files):
    t0 = utcnow()
    _tick()
    releases.promote(alpha, "det@1", promoted_by="alpha:ann", reason="first release")
    _tick()
    t1 = utcnow()
    _tick()
    releases.promote(alpha, "det@2", promoted_by="alpha:ann", reason="better AUC")
    _tick()
    t2 = utcnow()
    _tick()
    entry = rollback(alpha, "det", 1, by="ignored", reason="v2 misbehaves in production", principal=ALPHA_APPROVER)
    _tick()
    t3 = utcnow()
    _tick()
    demote(alpha, "det", by="ignored", reason="incident: stop serving", principal=ADMIN)
    _tick()
    t4 = utcnow()

    assert entry.kind == "rollback" and entry.actor == "alpha:ann" and entry.evidence["rolled_back_from"] == 2
    answers = {label: serving_at(alpha, "det", moment) for label, moment in
               {"t0": t0, "t1": t1, "t2": t2, "t3": t3, "t4": t4}.items()}
    assert {label: a.model_key for label, a in answers.items()} == {
        "t0": None, "t1": "det@1", "t2": "det@2", "t3": "det@1", "t4": None}
    assert answers["t3"].entry.kind == "rollback" and answers["t1"].entry.kind == "promotion"
    assert answers["t4"].entry.kind == "demotion" and answers["t4"].entry.evidence["demoted_version"] == 1
    # the evidence: the gate decision entry the serving entry rests on, with the lineage hashes of its run
    model = alpha.model("det@1")
    run = alpha.runs("det@1")[0]
    for label in ("t1", "t3"):
        decisions = [e for e in answers[label].supporting if e.kind == "gate_decision"]
        assert decisions and decisions[-1].evidence["gate_decision_id"] == answers[label].entry.evidence["gate_decision_id"]
        evidence = answers[label].entry.evidence
        assert evidence["model_file_hash"] == model.file_hash
        assert evidence["model_file_hash"] == "sha256:" + hashlib.sha256(model_files["logistic_regression"].read_bytes()).hexdigest()
        assert evidence["runs"] == [{
            "run_id": run.run_id, "status": "succeeded", "dataset": "bc@1", "suite": "bc-release@1",
            "dataset_content_hash": alpha.dataset("bc@1").content_hash, "suite_definition_hash": alpha.suite("bc-release@1").definition_hash,
            "metrics_hash": run.metrics_hash, "predictions_hash": run.predictions_hash,
            "curves_png": run.results["artifacts"]["curves_png"]}]
    # the serving version (and baseline) follows the newest promotion row: none after the demotion
    assert alpha.promoted_version("det") is None
    # a rollback after a demotion serves again
    rollback(alpha, "det", 2, by="ann", reason="fixed upstream", principal=ALPHA_APPROVER)
    assert alpha.promoted_version("det") == 2 and serving_at(alpha, "det", utcnow()).model_key == "det@2"
    # each promotion decided the version's online gate (not required here): a gate decision like any other
    assert [(e.kind, e.model_version) for e in history(alpha, "det")] == [
        ("gate_decision", 1), ("gate_decision", 2), ("gate_decision", 1), ("promotion", 1), ("gate_decision", 2),
        ("promotion", 2), ("rollback", 1), ("demotion", None), ("rollback", 2)]
    check = verify_chain(alpha, "det")
    assert check.ok and check.entries == 9


def test_rollback_and_demotion_are_governed(alpha):
    releases.promote(alpha, "det@1", promoted_by="ann")
    releases.promote(alpha, "det@2", promoted_by="ann")
    entries_before = len(history(alpha, "det"))
    # a member of the owner team without the approver role: 403
    with pytest.raises(Forbidden):
        rollback(alpha, "det", 1, by="mia", reason="r", principal=ALPHA_MEMBER)
    with pytest.raises(Forbidden):
        demote(alpha, "det", by="mia", reason="r", principal=ALPHA_MEMBER)
    # another team's approver: exactly what a name that does not exist gets
    with pytest.raises(NotFound) as other:
        rollback(alpha, "det", 1, by="bob", reason="r", principal=BETA_APPROVER)
    with pytest.raises(NotFound) as absent:
        rollback(alpha, "nope", 1, by="bob", reason="r", principal=BETA_APPROVER)
    assert str(other.value).replace("det", "X") == str(absent.value).replace("nope", "X")
    with pytest.raises(NotFound):
        serving_at(alpha, "det", utcnow(), principal=BETA_APPROVER)
    # bad input names its field
    for kwargs, field in (({"reason": " "}, "reason"), ({"reason": "r", "to_version": 0}, "to_version"),
                          ({"reason": "r", "to_version": "1"}, "to_version")):
        with pytest.raises(InvalidInput) as error:
            rollback(alpha, "det", kwargs.get("to_version", 1), by="ann", reason=kwargs["reason"], principal=ALPHA_APPROVER)
        assert error.value.field == field
    with pytest.raises(InvalidInput) as error:
        serving_at(alpha, "det", "yesterday")
    assert error.value.field == "time"
    # the serving version itself, and a version never registered
    with pytest.raises(Conflict, match="already the serving version"):
        rollback(alpha, "det", 2, by="ann", reason="r", principal=ALPHA_APPROVER)
    with pytest.raises(NotFound):
        rollback(alpha, "det", 9, by="ann", reason="r", principal=ALPHA_APPROVER)
    assert len(history(alpha, "det")) == entries_before  # nothing written by any refusal
    assert alpha.promoted_version("det") == 2


def test_rollback_refuses_a_never_promoted_or_invalidated_version(platform, model_files, breast_cancer):
    _world(platform, model_files, breast_cancer[2], versions=("logistic_regression", "gradient_boosting", "decision_stump"))
    releases.promote(platform, "det@1", promoted_by="ann")
    releases.promote(platform, "det@3", promoted_by="ann")
    with pytest.raises(Conflict, match="never promoted"):
        rollback(platform, "det", 2, by="ann", reason="r", principal=ALPHA_APPROVER)
    # the dataset behind det@1's evidence turns out contaminated: its gate is re-decided, the rollback fails closed
    invalidate_dataset(platform, "bc@1", reason="labels leaked", reported_by="ann")
    with pytest.raises(Conflict, match="evidence no longer holds"):
        rollback(platform, "det", 1, by="ann", reason="r", principal=ALPHA_APPROVER)
    assert platform.promoted_version("det") == 3
    # the re-decided gate is in the ledger too, and the chain still holds
    decisions = [e for e in history(platform, "det") if e.kind == "gate_decision" and e.model_version == 1
                 and e.evidence["scope"] == "model_version"]
    assert [e.evidence["decision"] for e in decisions] == ["pass", "no_decision"]
    assert decisions[-1].evidence["runs"][0]["status"] == "invalid"
    assert verify_chain(platform, "det").ok


def test_override_is_in_the_ledger_in_its_transaction(platform, model_files, breast_cancer):
    strict = SUITE | {"gate": SUITE["gate"] | {"rules": [{"metric": "roc_auc", "min": 0.999}]}}
    platform.register_dataset("bc", breast_cancer[2], task_type="binary_classification", label_policy="human_reviewed")
    platform.register_suite(strict)
    platform.register_model("det", model_files["decision_stump"], eval_plan=[("bc", "bc-release")])
    assert evaluate(platform, "det@1").decision == "fail"
    with pytest.raises(InvalidInput):  # refused: no override, no ledger entry
        releases.override_gate(platform, "det@1", approver="alpha", reason=" ")
    assert [e.kind for e in history(platform, "det")] == ["gate_decision"]
    override = releases.override_gate(platform, "det@1", approver="alpha", reason="known limitation, accepted")
    releases.promote(platform, "det@1", promoted_by="alpha")
    serving = serving_at(platform, "det", utcnow())
    assert serving.model_key == "det@1"
    assert [e.kind for e in serving.supporting] == ["gate_decision", "override"]
    assert serving.supporting[1].evidence["override_id"] == override.id
    assert serving.entry.evidence["offline_gate"] == "overridden"


def test_chain_detects_an_edited_or_deleted_row(alpha, db_url, monkeypatch, capsys):
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", db_url)
    releases.promote(alpha, "det@1", promoted_by="ann", reason="first")
    releases.promote(alpha, "det@2", promoted_by="ann", reason="second")
    assert verify_chain(alpha, "det").ok
    first = next(e for e in history(alpha, "det") if e.kind == "promotion")
    where = f"WHERE model_name = 'det' AND sequence = {first.sequence}"
    with alpha.registry.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # the trigger refuses an edit outright; the test drops it to play an attacker with DDL rights
            with pytest.raises(Exception, match="append-only"):
                with connection.begin_nested():
                    connection.execute(text(f"UPDATE release_ledger SET reason = 'x' {where}"))
            connection.execute(text("DROP TRIGGER release_ledger_append_only ON release_ledger"))
        connection.execute(text(f"UPDATE release_ledger SET reason = 'promoted on a whim' {where}"))
    check = verify_chain(alpha, "det")
    assert not check.ok and check.broken_at == first.sequence and "edited" in check.problem
    capsys.readouterr()
    assert main(["releases", "verify", "det", "--home", str(alpha.config.home)]) == 2
    assert f"broken at entry {first.sequence}" in capsys.readouterr().err
    with alpha.registry.engine.begin() as connection:
        connection.execute(text(f"UPDATE release_ledger SET reason = 'first' {where}"))
    assert verify_chain(alpha, "det").ok  # restored: the hash covers exactly the content
    with alpha.registry.engine.begin() as connection:
        connection.execute(text(f"DELETE FROM release_ledger {where}"))
    check = verify_chain(alpha, "det")
    assert not check.ok and check.broken_at == first.sequence + 1 and "deleted" in check.problem


def test_export_is_self_contained_and_escapes_text(alpha, tmp_path):
    hostile = '<script>alert("x")</script> & <img src=http://evil.example/x.png>'
    releases.promote(alpha, "det@1", promoted_by="ann", reason=hostile)
    bundle = export_bundle(alpha, "det@1", tmp_path / "bundle")
    page = bundle.html_path.read_text()
    facts = json.loads(bundle.json_path.read_text())
    assert bundle.html_path.name == "det@1.html" and bundle.json_path.name == "det@1.json"
    tags = _tags(page)
    assert "&lt;script&gt;" in page and not {"script", "link", "iframe", "object", "embed", "base"} & {t for t, _ in tags}
    # no external reference: the only attribute values that are addresses are inline data
    addresses = [v for _, attrs in tags for k, v in attrs if k in ("src", "href", "action", "srcset", "poster")]
    assert addresses and all(v.startswith("data:image/png;base64,") for v in addresses)
    assert "url(" not in page and "@import" not in page
    assert [t for t, _ in tags].count("img") == 1  # the hostile reason's <img> is text, not a tag
    # the plot is the stored PNG, inline
    run = alpha.runs("det@1")[0]
    png = alpha.store.get_blob(PLOTS, run.results["artifacts"]["curves_png"], ".png")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    # the JSON says the same facts
    assert facts["model"] == "det@1" and facts["gate"]["effective"] == "pass" and facts["chain"]["ok"]
    assert [(e["kind"], e["evidence"].get("scope")) for e in facts["ledger"]] == [
        ("gate_decision", "model_version"), ("gate_decision", "online"), ("promotion", None)]
    assert facts["ledger"][-1]["reason"] == hostile
    assert facts["ledger"][-1]["entry_hash"] in page and facts["chain"]["head_hash"] in page
    assert facts["suites"]["bc-release@1"]["gate"]["rules"][0]["metric"] == "roc_auc"
    with pytest.raises(InvalidInput) as error:
        export_bundle(alpha, "det@1", tmp_path / "bundle.pdf")
    assert error.value.field == "out"
    (tmp_path / "audit.v1").mkdir()  # an existing directory, whatever its name looks like
    assert export_bundle(alpha, "det@1", tmp_path / "audit.v1").html_path == tmp_path / "audit.v1" / "det@1.html"
    with pytest.raises(InvalidInput) as error:
        export_bundle(alpha, "det", tmp_path / "x.html")
    assert error.value.field == "model"


def _tags(page: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every start tag of an HTML page with its attributes, as a browser's tokenizer reads them."""
    tags: list[tuple[str, list[tuple[str, str]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, [(k, v or "") for k, v in attrs]))

    Collector().feed(page)
    return tags


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_at_history_rollback_export(alpha, tmp_path, capsys, db_url, monkeypatch):
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", db_url)
    home = str(alpha.config.home)
    releases.promote(alpha, "det@1", promoted_by="ann")
    releases.promote(alpha, "det@2", promoted_by="ann")
    _tick()
    between = utcnow().isoformat()
    assert main(["releases", "rollback", "det", "--to", "1", "--by", "ann", "--reason", "v2 regressed", "--home", home]) == 0
    capsys.readouterr()
    assert main(["releases", "at", "det", "--time", between, "--json", "--home", home]) == 0
    assert json.loads(capsys.readouterr().out)["serving"] == "det@2"
    assert main(["releases", "at", "det", "--time", (utcnow() + timedelta(seconds=1)).isoformat(), "--json", "--home", home]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["serving"] == "det@1" and answer["entry"]["kind"] == "rollback" and answer["entry"]["actor"] == "ann"
    assert main(["releases", "history", "det", "--json", "--home", home]) == 0
    assert [e["kind"] for e in json.loads(capsys.readouterr().out)][-1] == "rollback"
    assert main(["releases", "export", "det@1", "--out", str(tmp_path / "x.html"), "--home", home]) == 0
    assert (tmp_path / "x.html").exists() and (tmp_path / "x.json").exists()
    assert main(["releases", "at", "det", "--time", "not-a-time", "--home", home]) == 2
    assert "time" in capsys.readouterr().err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_rollback_with_another_teams_token(alpha):
    releases.promote(alpha, "det@1", promoted_by="alpha")
    releases.promote(alpha, "det@2", promoted_by="alpha")
    tokens = {"approver": create_token(alpha, "alpha", principal="ann", roles=("member", "approver")),
              "member": create_token(alpha, "alpha", principal="mia", roles=("member",)),
              "beta": create_token(alpha, "beta", principal="bob", roles=("member", "approver"))}
    with Server(create_app(alpha)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        def call(who, method, path, **kwargs):
            return client.request(method, path, headers={"Authorization": f"Bearer {tokens[who]}"}, **kwargs)

        body = {"toVersion": 1, "reason": "v2 regressed"}
        other = call("beta", "POST", "/v1/releases/det/rollback", json=body)
        absent = call("beta", "POST", "/v1/releases/nope/rollback", json=body)
        assert other.status_code == absent.status_code == 404
        assert other.json()["detail"].replace("det", "X") == absent.json()["detail"].replace("nope", "X")
        for path in ("/v1/releases/det/history", "/v1/releases/det/serving"):
            assert call("beta", "GET", path).status_code == 404
        assert call("member", "POST", "/v1/releases/det/rollback", json=body).status_code == 403
        assert call("approver", "POST", "/v1/releases/det/rollback", json={"toVersion": 0, "reason": "r"}).status_code == 422
        done = call("approver", "POST", "/v1/releases/det/rollback", json=body)
        assert done.status_code == 201, done.text
        assert done.json()["kind"] == "rollback" and done.json()["actor"] == "alpha:ann"
        serving = call("approver", "GET", "/v1/releases/det/serving").json()
        assert serving["serving"] == "det@1" and serving["entry"]["entryHash"] == done.json()["entryHash"]
        assert call("approver", "POST", "/v1/releases/det/demote", json={"reason": "stop"}).status_code == 201
        assert call("approver", "GET", "/v1/releases/det/serving").json()["serving"] is None
        assert call("approver", "POST", "/v1/releases/det/demote", json={"reason": "again"}).status_code == 409
    with alpha.registry.session() as session:
        assert session.scalar(select(Promotion).order_by(Promotion.id.desc()).limit(1)).model_version is None
        assert [e.kind for e in session.scalars(select(ReleaseLedgerEntry).order_by(ReleaseLedgerEntry.id))][-2:] == [
            "rollback", "demotion"]


def test_migration_matches_the_tables(platform):
    """Migration 0011 creates what the ORM declares (the ledger, and the promotion row a demotion needs)."""
    with platform.registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if any(t in str(d) for t in ("release_ledger", "model_promotions"))] == []


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_concurrent_appends_extend_one_chain(platform):
    """Eight writers append to one name at once (each its own transaction, all started before any commits):
    each gets its own sequence and the chain verifies."""
    writers, barrier = 8, threading.Barrier(8)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            with platform.registry.session() as session:
                session.execute(text("SELECT 1"))  # the transaction is open before the others append
                barrier.wait(timeout=20)
                ledger.append(session, "det", index, "gate_decision", "gate", f"writer {index}", {"gate_decision_id": index})
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with platform.registry.session() as session:
        chain = ledger.entries(session, "det")
    assert sorted(e.sequence for e in chain) == list(range(1, writers + 1))
    assert sorted(e.model_version for e in chain) == list(range(writers))
    assert ledger.verify("det", chain).ok
