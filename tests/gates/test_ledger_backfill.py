"""Migration 0014 back-fills the release ledger from the records made before it existed.

A registry is taken back to revision 0010 and up to 0011 with alembic (on a real SQLite file and on the real
PostgreSQL server): its promotions, override and gate decisions are there, its ledger is empty, and "what served
at T" answers nothing. Upgrading to the head back-fills the chain: ``serving_at`` gives, at each time, the version
the promotion rows say (read by hand from the table below, not from the code under test), and the hash chain
verifies (``evalp releases verify``). A ledger 0011 already started (an event recorded at 0011) keeps its entries;
the older records are added after them, and both answer correctly."""

from __future__ import annotations

import json
import time

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from eval_platform.cli.main import main
from eval_platform.evaluation import runner
from eval_platform.gates import releases
from eval_platform.gates.ledger import serving_at, verify_chain
from eval_platform.registry import ReleaseLedgerEntry
from eval_platform.registry.database import _PG_MIGRATION_LOCK, _alembic_config
from eval_platform.registry.schema import utcnow
from tests.gates.test_release_ledger import ALPHA_APPROVER, ALPHA_MEMBER, _world

#: the revision the back-fill (0014) follows
BEFORE_BACKFILL = ScriptDirectory.from_config(_alembic_config()).get_revision("0014").down_revision


def _tick() -> None:
    start = utcnow()
    while utcnow() <= start:
        time.sleep(0.001)


def _alembic(platform, direction: str, revision: str) -> None:
    """``alembic upgrade|downgrade REVISION`` on the platform's database, as ``Registry.migrate`` runs it."""
    platform.registry.engine.dispose()  # no pooled connection holds the tables the migration alters
    config = _alembic_config()
    with platform.registry.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _ledger_rows(platform) -> int:
    with platform.registry.session() as session:
        return session.scalar(select(func.count()).select_from(ReleaseLedgerEntry))


def _records(platform) -> int:
    """Gate decisions (of a version or online), overrides and promotion rows: one ledger entry each."""
    with platform.registry.engine.connect() as connection:
        return sum(connection.execute(text(query)).scalar_one() for query in (
            "SELECT count(*) FROM gate_decisions WHERE scope != 'run'", "SELECT count(*) FROM gate_overrides",
            "SELECT count(*) FROM model_promotions"))


def test_upgrade_backfills_serving_at_and_the_chain_verifies(platform, model_files, breast_cancer, capsys, monkeypatch):
    _world(platform, model_files, breast_cancer[2])
    moments = {"t0": utcnow()}
    _tick()
    releases.promote(platform, "det@1", promoted_by="alpha:ann", reason="first release")
    _tick()
    moments["t1"] = utcnow()
    _tick()
    releases.promote(platform, "det@2", promoted_by="alpha:ann", reason="better AUC")
    _tick()
    moments["t2"] = utcnow()
    _tick()
    releases.promote(platform, "det@1", promoted_by="alpha:bob", reason="back to v1 (before rollbacks existed)")
    _tick()
    moments["t3"] = utcnow()
    # what served when, read from the promotion rows by hand: nothing, det@1, det@2, det@1
    expected = {"t0": None, "t1": "det@1", "t2": "det@2", "t3": "det@1"}

    # the registry as it was before the ledger: 0011's table, empty, over the same records
    _alembic(platform, "downgrade", "0010")
    _alembic(platform, "upgrade", "0011")
    assert _ledger_rows(platform) == 0
    assert {label: serving_at(platform, "det", t).model_key for label, t in moments.items()} == dict.fromkeys(moments)

    _alembic(platform, "upgrade", "head")
    answers = {label: serving_at(platform, "det", t) for label, t in moments.items()}
    assert {label: a.model_key for label, a in answers.items()} == expected
    assert answers["t2"].entry.actor == "alpha:ann" and answers["t3"].entry.reason == "back to v1 (before rollbacks existed)"
    assert answers["t2"].entry.evidence["backfilled"] == "migration 0014"
    # the serving entry rests on the version's gate decision, back-filled too, with the run's lineage
    decision = platform.gate_decision("det@2")
    assert answers["t2"].entry.evidence["gate_decision_id"] == decision.id
    assert [e.evidence["gate_decision_id"] for e in answers["t2"].supporting] == [decision.id]
    [run] = answers["t2"].entry.evidence["runs"]
    assert run["predictions_hash"] == platform.runs("det@2")[0].predictions_hash
    assert run["dataset_content_hash"] == platform.dataset("bc@1").content_hash
    check = verify_chain(platform, "det")
    assert check.ok and check.entries == _records(platform) >= 2 + 3  # two versions' decisions, three promotions

    home = ["--home", str(platform.config.home)]
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", platform.config.db_url)
    assert main(["releases", "verify", "det", *home]) == 0
    assert "chain intact" in capsys.readouterr().out
    assert main(["--json", "releases", "at", "det", "--time", moments["t2"].isoformat(), *home]) == 0
    assert json.loads(capsys.readouterr().out)["serving"] == "det@2"

    # the upgrade is idempotent: running the back-fill again adds nothing
    _alembic(platform, "downgrade", "0011")
    _alembic(platform, "upgrade", "head")
    assert _ledger_rows(platform) == check.entries and verify_chain(platform, "det").ok


def test_a_ledger_started_at_0011_keeps_its_entries_and_gains_the_older_ones(platform, model_files, breast_cancer):
    _world(platform, model_files, breast_cancer[2])
    platform.register_model("det", model_files["decision_stump"], principal=ALPHA_MEMBER)
    runner.decide_model_version(platform, "det@3")  # its run is still queued: no_decision
    moments = {"t0": utcnow()}
    _tick()
    releases.promote(platform, "det@1", promoted_by="alpha:ann", reason="first release")
    _tick()
    moments["t1"] = utcnow()
    _tick()
    # an approver lets det@3 through undecided, and it is promoted
    assert platform.gate_decision("det@3").decision == "no_decision"
    releases.override_gate(platform, "det@3", approver="ann", reason="known trade-off", principal=ALPHA_APPROVER)
    releases.promote(platform, "det@3", promoted_by="alpha:ann", reason="overridden release")
    _tick()
    moments["t2"] = utcnow()

    _alembic(platform, "downgrade", "0010")
    _alembic(platform, "upgrade", "0011")
    # the revisions between 0011 and the back-fill add tables and columns the code reads: up to the last of them,
    # the code writes the ledger, and a promotion of det@2 starts the chain before the back-fill has run
    _alembic(platform, "upgrade", BEFORE_BACKFILL)
    _tick()
    releases.promote(platform, "det@2", promoted_by="alpha:ann", reason="after the upgrade to 0011")
    _tick()
    moments["t3"] = utcnow()
    started = _ledger_rows(platform)
    assert started >= 1  # the promotion (and the online gate it decided)
    assert serving_at(platform, "det", moments["t2"]).model_key is None  # the gap this migration closes
    with platform.registry.session() as session:
        first = list(session.scalars(select(ReleaseLedgerEntry).order_by(ReleaseLedgerEntry.sequence)))

    _alembic(platform, "upgrade", "head")
    expected = {"t0": None, "t1": "det@1", "t2": "det@3", "t3": "det@2"}  # the promotion rows, by hand
    answers = {label: serving_at(platform, "det", t) for label, t in moments.items()}
    assert {label: a.model_key for label, a in answers.items()} == expected
    assert [e.kind for e in answers["t2"].supporting] == ["gate_decision", "override"]
    assert answers["t2"].supporting[1].actor == "alpha:ann" and answers["t2"].supporting[1].reason == "known trade-off"
    check = verify_chain(platform, "det")
    assert check.ok and check.entries == _records(platform)
    with platform.registry.session() as session:
        kept = list(session.scalars(select(ReleaseLedgerEntry).order_by(ReleaseLedgerEntry.sequence)))[:started]
    assert [(e.id, e.entry_hash) for e in kept] == [(e.id, e.entry_hash) for e in first]  # untouched, still first
    assert all("backfilled" not in e.evidence for e in kept) and check.entries > started
