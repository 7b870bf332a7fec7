"""When retention counts a prediction artifact from (eval_platform/governance/retention.py): its newest live
production. A run served by the prediction cache did not produce the predictions: the cache row (when they were
computed) dates them, so re-running a model on a restricted dataset does not keep its outputs longer. Real
registry (SQLite and PostgreSQL) and store."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from eval_platform.governance import retention
from eval_platform.registry import EvalRun, PredictionSet
from eval_platform.registry.schema import utcnow
from tests.evaluation.test_runner import evaluate
from tests.governance.test_retention_model_files import SUITE


def test_a_run_served_by_the_prediction_cache_does_not_date_the_predictions(platform, model_files, breast_cancer):
    platform.register_dataset("bc", breast_cancer[2], "binary_classification", "human_reviewed", {"level": "restricted", "teams": ["qa"]})
    platform.register_suite(SUITE)
    platform.register_model("det", model_files["logistic_regression"], eval_plan=[("bc", "bc-release")])
    evaluate(platform, "det@1")
    [first] = platform.runs("det@1")
    computed = utcnow() - timedelta(days=20)  # computed 20 days ago, by the first run
    with platform.registry.session() as session:
        session.execute(update(EvalRun).where(EvalRun.run_id == first.run_id).values(requested_at=computed, started_at=computed))
        session.execute(update(PredictionSet).where(PredictionSet.artifact_hash == first.predictions_hash).values(created_at=computed))

    again = platform.request_eval("det@1", first.dataset_key, first.suite_key, recompute=True)  # today: a cache hit
    evaluate(platform, "det@1", dagster_run_id="again")
    assert platform.run(again.run_id).predictions_hash == first.predictions_hash

    assert not retention.purge_expired(platform, now=utcnow() + timedelta(days=9)).purged  # day 29 of the predictions
    report = retention.purge_expired(platform, now=utcnow() + timedelta(days=11))  # day 31: the second run's day 11
    [purged] = report.purged
    assert (purged.kind, purged.artifact_hash) == ("predictions", first.predictions_hash)
    assert purged.produced_at == computed.isoformat() and purged.run_ids == sorted([first.run_id, again.run_id])
    assert report.runs_marked == sorted([first.run_id, again.run_id])
    assert not platform.store.has_table("predictions", first.predictions_hash)
