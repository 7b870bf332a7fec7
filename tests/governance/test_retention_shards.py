"""Retention of shard artifacts (eval_platform/governance/retention.py with eval_platform/evaluation/shards.py):
a sharded run's shard artifacts and shard index entries are purged and logged with its merged predictions and
verdicts, kept while a run whose outputs are kept uses them, and a shard whose index entry names a missing
artifact is computed again. Real registry (SQLite and PostgreSQL), real store, the project's local
OpenAI-compatible server (its completions are counted)."""

import json
from datetime import UTC, timedelta
from importlib import resources as package_files

import pandas as pd
import pytest
from sqlalchemy import delete, select, update

from eval_platform.cli import main as cli
from eval_platform.core.store import JUDGE_VERDICTS, PREDICTIONS
from eval_platform.evaluation import runner, shards
from eval_platform.governance import retention
from eval_platform.llm.server import LocalLLMServer
from eval_platform.registry import EvalRun
from eval_platform.registry.api_schema import PurgeLogEntry, RunPurge
from eval_platform.registry.llm_schema import LLMCallRecord
from eval_platform.registry.schema import utcnow
from tests.llm.test_llm_runs import _service, candidate_file, judged_suite

ROWS, SIZE = 12, 5  # shards [0, 5), [5, 10), [10, 12): three prediction and three judgment shards per run
CALLS = ROWS + ROWS * 3  # one candidate answer and three judge samples per row


@pytest.fixture(scope="module")
def server():
    local = LocalLLMServer()
    base_url = local.start()
    yield local, base_url
    local.stop()


@pytest.fixture
def service_on_each_db(tmp_path, server, monkeypatch, db_url):
    yield from _service(tmp_path, server, monkeypatch, db_url)


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    yield from _service(tmp_path, server, monkeypatch, None)


def _register(service, tmp_path, level="restricted"):
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:ROWS]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    service.register_dataset("qa-secret", frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                             label_policy="human_reviewed", access_policy={"level": level, "teams": ["qa"]}, slice_columns=["category"])
    service.register_suite(judged_suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa-secret", "qa")])


def _sharded_run(service, dagster_run_id, size=SIZE):
    """Claim the queued run, run its shards (as the Dagster steps do, without Dagster) and finish it."""
    [run] = service.claim_runs("qa-bot@1", dagster_run_id, requested=True)
    planned = shards.plan_predictions(service, [run], size)
    predicted = [shards.run_prediction_shard(service, shard, "test:0") for shard in planned]
    [shards.merge_predictions(service, run, predicted)]
    planned_judge = shards.plan_judgments(service, [run], size)
    judged = [shards.run_judgment_shard(service, shard, "test:0") for shard in planned_judge]
    shards.merge_judgments(service, run, judged)
    finished = service.run(run.run_id)
    runner.compute_metrics(service, finished)
    runner.compare_with_baseline(service, finished)
    runner.finish_runs(service, "qa-bot@1", [service.run(run.run_id)])
    assert service.run(run.run_id).status == "succeeded"
    return service.run(run.run_id), predicted, judged


def _stored(service, predicted, judged):
    """``{(kind, artifact): (artifact stored?, index entry)}`` of the shards' artifacts and keys."""
    found = {}
    for kind, results in ((shards.PREDICTION_SHARDS, predicted), (shards.JUDGMENT_SHARDS, judged)):
        for result in results:
            found[(kind, result.artifact)] = (service.store.has_table(kind, result.artifact),
                                              service.store.index_entry(shards.SHARD_INDEX, result.shard.key))
    return found


def _backdate(service, run_id, days):
    then = utcnow() - timedelta(days=days)
    with service.registry.session() as session:
        session.execute(update(EvalRun).where(EvalRun.run_id == run_id).values(requested_at=then, started_at=then))


def test_a_purged_sharded_run_loses_its_shards_and_index_entries_logged_and_recomputes_them(service_on_each_db, server, tmp_path,
                                                                                              monkeypatch, capsys):
    service, (local, _) = service_on_each_db, server
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    local.reset_stats()
    run, predicted, judged = _sharded_run(service, "first")
    assert local.stats()["completions"] == CALLS
    assert len(predicted) == 3 and len(judged) == 3 and all(r.artifact for r in predicted + judged)
    before = _stored(service, predicted, judged)
    assert all(stored and entry == artifact for (_, artifact), (stored, entry) in before.items())
    verdicts = run.results["judge"]["verdicts"]

    assert not retention.purge_expired(service, now=utcnow() + timedelta(days=29)).purged  # restricted: 30 days
    dry = retention.purge_expired(service, now=utcnow() + timedelta(days=31), dry_run=True)
    assert (dry.shard_artifacts, dry.shard_index_entries) == (6, 6)
    assert _stored(service, predicted, judged) == before  # a dry run deletes nothing
    monkeypatch.setenv("EVAL_PLATFORM_RETENTION_DAYS", "restricted=0")  # the command line purges "now": as if 31 days had passed
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", service.config.db_url)
    assert cli.main(["retention", "purge", "--dry-run", "--home", str(service.config.home)]) == 0
    out = capsys.readouterr().out
    assert "would purge 8 prediction artifact(s) of 1 run(s)" in out and "6 shard artifact(s), with 6 shard index entr" in out
    monkeypatch.delenv("EVAL_PLATFORM_RETENTION_DAYS")

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    purged = {(a.kind, a.artifact_hash): a for a in report.purged}
    assert set(purged) == {(PREDICTIONS, run.predictions_hash), (JUDGE_VERDICTS, verdicts)} | set(before)
    assert (report.shard_artifacts, report.shard_index_entries) == (6, 6) and report.runs_marked == [run.run_id]
    for kind, results in ((shards.PREDICTION_SHARDS, predicted), (shards.JUDGMENT_SHARDS, judged)):
        for result in results:
            assert purged[(kind, result.artifact)].cache_keys == [result.shard.key]  # the index entry it had
            assert purged[(kind, result.artifact)].run_ids == [run.run_id] and purged[(kind, result.artifact)].store_deleted
    # the bytes and the index entries are gone: nothing of the restricted rows stays under the shards
    assert all(not stored and entry is None for stored, entry in _stored(service, predicted, judged).values())
    with service.registry.session() as session:
        log = {(e.kind, e.artifact_hash): e for e in session.scalars(select(PurgeLogEntry))}
    assert set(before) <= set(log)
    for key in before:
        entry = log[key]
        assert entry.store_deleted and entry.run_ids == [run.run_id] and entry.classification == "restricted"
        assert entry.retention_days == 30 and entry.datasets == ["qa-secret@1"] and entry.purge_id == report.purge_id

    # recomputed from its lineage: every shard is computed again, its calls made again (they were purged too)
    local.reset_stats()
    again = service.request_eval("qa-bot@1", "qa-secret", "qa", recompute=True)
    recomputed, predicted_again, judged_again = _sharded_run(service, "recompute")
    assert recomputed.run_id == again.run_id
    assert local.stats()["completions"] == CALLS
    assert not any(r.reused for r in predicted_again + judged_again)
    assert recomputed.results["metrics"] == run.results["metrics"]
    assert [r.shard.key for r in predicted_again] == [r.shard.key for r in predicted]  # the same shards, indexed again
    assert all(stored and entry == artifact for (_, artifact), (stored, entry) in _stored(service, predicted_again, judged_again).items())


def test_shard_bytes_a_kept_run_still_uses_are_kept(service_on_each_db, server, tmp_path, monkeypatch):
    """Shards are content-addressed and shared: a run planned with another shard size reuses the shard whose rows
    coincide ([10, 12)). Its other rows answered afresh (the call cache emptied meanwhile), its merged predictions
    differ from the old run's: the old run's expiry purges its own shards, not the one the new run still uses."""
    service, (local, _) = service_on_each_db, server
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    old, predicted, judged = _sharded_run(service, "old")
    _backdate(service, old.run_id, 40)  # as if it had run 40 days ago: past the restricted 30 days
    with service.registry.session() as session:
        session.execute(delete(LLMCallRecord))

    local.reset_stats()
    service.request_eval("qa-bot@1", "qa-secret", "qa", recompute=True)
    new, predicted_new, judged_new = _sharded_run(service, "new", size=10)  # shards [0, 10), [10, 12)
    assert [r.reused for r in predicted_new] == [False, True] and predicted_new[1].artifact == predicted[2].artifact
    assert local.stats()["completions"] == 10 + ROWS * 3  # the reused shard's two rows were not asked again
    assert new.predictions_hash != old.predictions_hash
    # the verdicts carry no latency: the same verdicts as the old run's, one artifact named by both runs' results
    assert new.results["judge"]["verdicts"] == old.results["judge"]["verdicts"]
    shared = (shards.PREDICTION_SHARDS, predicted[2].artifact)
    old_shards, new_shards = set(_stored(service, predicted, judged)), set(_stored(service, predicted_new, judged_new))
    new_predicted = {(shards.PREDICTION_SHARDS, r.artifact) for r in predicted_new}
    new_judged = {(shards.JUDGMENT_SHARDS, r.artifact) for r in judged_new}

    report = retention.purge_expired(service)  # today: the old run is past its retention, the new one is not
    assert report.runs_marked == [old.run_id]  # the new run keeps its predictions...
    # ...and its verdicts. They were asserted purged here before (dated from the old run, 40 days ago, the new run lost
    # them at once); the new run produced them again today, and an artifact counts from its newest live production
    verdicts = new.results["judge"]["verdicts"]
    assert not report.judgments_purged and service.store.has_table(JUDGE_VERDICTS, verdicts)
    # the old run's own shards go (its age is past its retention, though its verdicts, the new run's too, stay); the
    # two shard artifacts both runs use stay: the prediction shard of rows [10, 12) and the judgment shard of those rows
    # (one artifact under two keys, one per run's predictions)
    both = old_shards & new_shards
    assert both == {shared, (shards.JUDGMENT_SHARDS, judged[2].artifact)} and judged[2].artifact == judged_new[1].artifact
    purged = {(a.kind, a.artifact_hash) for a in report.purged if a.kind in retention.SHARD_KINDS}
    assert purged == old_shards - both and len(purged) == 4
    assert {(a.kind, a.artifact_hash) for a in report.purged} == {(PREDICTIONS, old.predictions_hash)} | purged
    keys = {r.shard.key for kind, results in ((shards.PREDICTION_SHARDS, predicted), (shards.JUDGMENT_SHARDS, judged))
            for r in results if (kind, r.artifact) in purged}
    assert report.shard_artifacts == len(purged) and report.shard_index_entries == len(keys) == len(purged)
    after = _stored(service, predicted, judged) | _stored(service, predicted_new, judged_new)
    assert after[shared] == (True, predicted[2].artifact)  # bytes and index entry kept for the new run
    assert all(stored and entry == artifact for (_, artifact), (stored, entry) in _stored(service, predicted_new, judged_new).items())
    assert all(not stored and entry is None for key, (stored, entry) in after.items() if key in purged)
    assert service.run(new.run_id).predictions_hash == new.predictions_hash

    # once the new run's outputs expire too, the shared shards go with them, logged with both runs
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    entries = {(a.kind, a.artifact_hash): a for a in report.purged if a.kind in retention.SHARD_KINDS}
    assert set(entries) == new_predicted | new_judged and report.runs_marked == [new.run_id]
    # nothing purged before is purged (and logged) again: only the new run's predictions, verdicts and their shards
    assert {(a.kind, a.artifact_hash) for a in report.purged} == ({(PREDICTIONS, new.predictions_hash), (JUDGE_VERDICTS, verdicts)}
                                                                  | new_predicted | new_judged)
    assert report.judgments_purged == sorted([old.run_id, new.run_id])  # the old run was never purged of them
    assert entries[shared].run_ids == sorted([old.run_id, new.run_id]) and entries[shared].store_deleted
    assert entries[shared].cache_keys == [predicted[2].shard.key] and entries[shared].classification == "restricted"
    assert all(not stored and entry is None for stored, entry in _stored(service, predicted_new, judged_new).values())
    assert not service.store.has_table(JUDGE_VERDICTS, verdicts)
    assert not new_shards - old_shards - new_predicted - new_judged


def test_shards_of_a_public_dataset_are_kept(service, server, tmp_path, monkeypatch):
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path, level="public")
    _, predicted, judged = _sharded_run(service, "public")
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=36500))
    assert not report.purged and report.kept == 8
    assert all(stored for stored, _ in _stored(service, predicted, judged).values())


def test_an_index_entry_whose_artifact_is_gone_is_not_trusted(service, server, tmp_path, monkeypatch):
    local, _ = server
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path, level="internal")
    run, predicted, judged = _sharded_run(service, "first")
    prediction, judgment = predicted[1], judged[2]
    service.store.fs.rm(service.store._path(shards.PREDICTION_SHARDS, prediction.artifact, ".parquet"))
    service.store.fs.rm(service.store._path(shards.JUDGMENT_SHARDS, judgment.artifact, ".parquet"))
    # the judgment shard's entry even names another (missing) artifact, as a shard computed again with other answers would
    stale = "sha256:" + "0" * 64
    service.store.fs.rm(service.store._path(shards.SHARD_INDEX, judgment.shard.key, ".ref"))
    service.store.put_index_entry(shards.SHARD_INDEX, judgment.shard.key, stale)

    local.reset_stats()
    again = shards.run_prediction_shard(service, prediction.shard, "test:1")
    judged_again = shards.run_judgment_shard(service, judgment.shard, "test:1")
    for result, before, kind in ((again, prediction, shards.PREDICTION_SHARDS), (judged_again, judgment, shards.JUDGMENT_SHARDS)):
        assert not result.reused and result.reports  # computed again, not read from the index
        assert result.artifact == before.artifact and service.store.has_table(kind, result.artifact)
        assert service.store.index_entry(shards.SHARD_INDEX, result.shard.key) == result.artifact
    # its calls came from the LLM call cache (not purged here): the server was not asked again
    assert local.stats()["completions"] == 0
    assert again.reports["candidate"]["cache_hits"] == prediction.shard.rows
    # a shard whose entry names a stored artifact is still reused
    assert shards.run_prediction_shard(service, predicted[0].shard, "test:1").reused
    merged = shards.merge_predictions(service, service.run(run.run_id), [predicted[0], again, predicted[2]])
    assert merged.predictions_hash == run.predictions_hash


def test_a_purge_marks_the_run_and_keeps_results_when_its_shards_go(service, server, tmp_path, monkeypatch):
    """The run's record (results, lineage, metrics) stays; only its outputs go, shards included."""
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    run, _, _ = _sharded_run(service, "first")
    retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    after = service.run(run.run_id)
    assert after.predictions_hash is None and after.results == run.results and after.lineage == run.lineage
    with service.registry.session() as session:
        assert session.get(RunPurge, run.run_id).predictions_hash == run.predictions_hash


def test_shards_of_a_run_stopped_before_its_merge_wait_while_it_runs_then_follow_its_own_age(service, server, tmp_path, monkeypatch):
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    [run] = service.claim_runs("qa-bot@1", "stopped", requested=True)
    predicted = [shards.run_prediction_shard(service, shard, "test:0") for shard in shards.plan_predictions(service, [run], SIZE)]
    digests = sorted(r.artifact for r in predicted)
    # running: a purge past its retention leaves its shards for the next purge
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    assert report.deferred == digests and not report.purged
    service.fail_runs_of("stopped", "worker lost")
    assert service.run(run.run_id).status == "failed"
    # stopped without predictions: its shards (a re-execution would reuse them) stay for its dataset's retention
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=29))
    assert not report.purged and report.kept == 3
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    assert sorted(a.artifact_hash for a in report.purged) == digests and report.shard_index_entries == 3
    assert all(not stored and entry is None for stored, entry in _stored(service, predicted, []).values())


def _log(service):
    with service.registry.session() as session:
        return list(session.scalars(select(PurgeLogEntry).where(PurgeLogEntry.kind != retention.LLM_CALLS).order_by(PurgeLogEntry.id)))


def test_a_recompute_after_a_purge_keeps_its_identical_verdicts_and_shards_for_its_own_retention(service_on_each_db, server, tmp_path,
                                                                                                    monkeypatch):
    """Purge at day 31, recompute at day 31, purge at day 32: the recompute's verdicts (the same artifact as the purged
    run's: they carry no latency) and its shards stay; the purged run's results still name them but no longer date
    them. At day 62 they go, logged with the recompute only."""
    service = service_on_each_db
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    first, predicted, judged = _sharded_run(service, "first")
    verdicts = first.results["judge"]["verdicts"]
    _backdate(service, first.run_id, 31)  # "today" is day 31 of the first run

    report = retention.purge_expired(service)  # day 31
    assert report.runs_marked == [first.run_id] and report.judgments_purged == [first.run_id] and report.shard_artifacts == 6
    assert not service.store.has_table(JUDGE_VERDICTS, verdicts)

    service.request_eval("qa-bot@1", "qa-secret", "qa", recompute=True)  # day 31
    again, predicted_again, judged_again = _sharded_run(service, "recompute")
    assert again.results["judge"]["verdicts"] == verdicts and service.store.has_table(JUDGE_VERDICTS, verdicts)
    # the judgment shards are the same artifacts as the first run's too (same predictions, same verdicts)
    assert [r.artifact for r in judged_again] == [r.artifact for r in judged]
    kept = _stored(service, predicted_again, judged_again)
    assert len(kept) == 6 and all(stored and entry == artifact for (_, artifact), (stored, entry) in kept.items())
    logged = len(_log(service))

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=1))  # day 32: the recompute is a day old
    assert not report.purged and not report.judgments_purged and not report.runs_marked and not report.deferred
    assert service.store.has_table(JUDGE_VERDICTS, verdicts) and _stored(service, predicted_again, judged_again) == kept
    assert service.run(again.run_id).predictions_hash == again.predictions_hash and len(_log(service)) == logged
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=29))  # day 60: still within the recompute's 30 days
    assert not report.purged

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))  # day 62
    purged = {(a.kind, a.artifact_hash): a for a in report.purged}
    assert set(purged) == {(PREDICTIONS, again.predictions_hash), (JUDGE_VERDICTS, verdicts)} | set(kept)
    assert report.runs_marked == [again.run_id] and report.judgments_purged == [again.run_id]
    # logged with the recompute only: the first run was purged of them at day 31 (logged then), not again
    assert all(a.run_ids == [again.run_id] and a.store_deleted for a in purged.values())
    assert purged[(JUDGE_VERDICTS, verdicts)].produced_at == _aware_iso(service.run(again.run_id).started_at)
    assert not service.store.has_table(JUDGE_VERDICTS, verdicts)
    assert all(not stored and entry is None for stored, entry in _stored(service, predicted_again, judged_again).values())
    # the verdicts' bytes were deleted twice (day 31 and day 62), each deletion logged once, with the runs that lost them
    entries = [e for e in _log(service) if (e.kind, e.artifact_hash) == (JUDGE_VERDICTS, verdicts)]
    assert [e.run_ids for e in entries] == [[first.run_id], [again.run_id]] and all(e.store_deleted for e in entries)
    assert not retention.purge_expired(service, now=utcnow() + timedelta(days=62)).purged


def _aware_iso(value):
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def test_bytes_whose_purge_is_pending_are_not_logged_again(service_on_each_db, server, tmp_path, monkeypatch):
    """A purge that stopped after its registry commit, before deleting the bytes (simulated: the bytes and index
    entries put back, the log entries not deleted yet): the next purge deletes them without logging them again."""
    service = service_on_each_db
    monkeypatch.setenv(shards.SHARD_SIZE_VARIABLE, str(SIZE))
    _register(service, tmp_path)
    run, predicted, judged = _sharded_run(service, "first")
    verdicts = run.results["judge"]["verdicts"]
    fs = service.store.fs
    files = [service.store._path(kind, digest, ".parquet")
             for kind, digest in [(PREDICTIONS, run.predictions_hash), (JUDGE_VERDICTS, verdicts)]
             + [(shards.PREDICTION_SHARDS, r.artifact) for r in predicted] + [(shards.JUDGMENT_SHARDS, r.artifact) for r in judged]]
    files += [service.store._path(shards.SHARD_INDEX, r.shard.key, ".ref") for r in predicted + judged]
    saved = {path: fs.cat_file(path) for path in files}

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    assert len(report.purged) == 8 and not any(fs.exists(path) for path in saved)
    for path, data in saved.items():
        fs.pipe_file(path, data)
    with service.registry.session() as session:
        session.execute(update(PurgeLogEntry).values(store_deleted=False))
    logged = _log(service)
    assert len(logged) == 8 and len({(e.kind, e.artifact_hash) for e in logged}) == 8

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=32))
    assert not report.purged and report.retried_deletes == 8 and report.shard_index_entries == 6
    assert [(e.id, e.run_ids) for e in _log(service)] == [(e.id, e.run_ids) for e in logged]
    assert all(e.store_deleted for e in _log(service)) and not any(fs.exists(path) for path in saved)
