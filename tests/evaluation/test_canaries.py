"""Golden and canary datasets: the role at registration, the suite's canary bounds, the canary runs the schedule
queues (fresh, beside the triple's own run, never a baseline nor part of a gate) and the canary check's rule,
against hand-computed values. The Dagster side (schedule, asset, check, a changed endpoint) is
tests/dagster/test_canaries.py."""

import json

import pytest
from sqlalchemy import select

from eval_platform.core.errors import InvalidInput
from eval_platform.core.states import CANARY_TRIGGER, RunStatus
from eval_platform.evaluation import canaries, predicting
from eval_platform.evaluation.baselines import find_baseline
from eval_platform.evaluation.canaries import MetricDrift, canary_series, check_canary, queue_canary_runs
from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun, PredictionSet
from eval_platform.suites.definition import parse_suite
from tests.cli.test_cli import evalp
from tests.evaluation.test_runner import evaluate


def bounded_suite(release_suite: dict, bounds: dict | None = None) -> dict:
    return release_suite | {"canary": {"bounds": bounds or {"roc_auc": 0.02}}}


@pytest.fixture
def service(tmp_path, breast_cancer, release_suite, db_url):
    """On SQLite and on the real PostgreSQL server (the canary queries filter and group on the run's trigger)."""
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    _, _, frame = breast_cancer
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed", slice_columns=["tumour_size"])
    platform.register_dataset("bc-canary", frame, task_type="binary_classification", label_policy="human_reviewed", role="canary",
                              slice_columns=["tumour_size"])
    platform.register_suite(bounded_suite(release_suite))
    yield platform
    platform.close()


def test_the_role_is_part_of_the_version_and_validated_by_name(service, breast_cancer):
    _, _, frame = breast_cancer
    assert service.latest_dataset("bc").role == "standard" and service.latest_dataset("bc-canary").role == "canary"
    # the same rows as a golden set are a new version (the role is metadata of the version)...
    golden = service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed", role="golden",
                                      slice_columns=["tumour_size"])
    assert golden.created and golden.record.version == 2 and golden.record.role == "golden"
    # ...and the standard role keeps the hash a version registered before roles existed had
    again = service.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed", slice_columns=["tumour_size"])
    assert not again.created and again.record.version == 1
    for bad in ("gold", "", None, 3, "CANARY"):
        with pytest.raises(InvalidInput) as error:
            service.register_dataset("bc-x", frame, task_type="binary_classification", label_policy="human_reviewed", role=bad)
        assert error.value.field == "role"
    assert [d.dataset_id for d in service.datasets()].count("bc-x") == 0  # nothing half-written


def test_canary_bounds_name_the_suite_metrics(release_suite):
    assert parse_suite(bounded_suite(release_suite, {"roc_auc": 0.02, "f1": 0})).canary == {
        "bounds": {"f1": 0.0, "roc_auc": 0.02}}
    cases = [({"bounds": {"auc": 0.02}}, "canary.bounds.auc"), ({"bounds": {"roc_auc": -0.1}}, "canary.bounds.roc_auc"),
             ({"bounds": {"roc_auc": float("inf")}}, "canary.bounds.roc_auc"), ({"bounds": {"roc_auc": "0.1"}}, "canary.bounds.roc_auc"),
             ({"bounds": {}}, "canary.bounds"), ({"bound": {"roc_auc": 1}}, "canary"), (["roc_auc"], "canary")]
    for section, field in cases:
        with pytest.raises(InvalidInput) as error:
            parse_suite(release_suite | {"canary": section})
        assert error.value.field == field, section
    # a suite without the section keeps its normalised definition (and so its version hash)
    assert "canary" not in parse_suite(release_suite).as_json()


def test_the_schedule_queues_fresh_runs_of_promoted_versions_on_canary_datasets_only(service, model_files):
    service.register_model("clf", model_files["logistic_regression"], eval_plan=[("bc", "breast-cancer-release"),
                                                                    ("bc-canary", "breast-cancer-release")])
    assert queue_canary_runs(service).queued == ()  # nothing promoted yet
    assert evaluate(service, "clf@1").decision == "pass"
    releases.promote(service, "clf@1", promoted_by="alice")
    own = {run.dataset_id: run for run in service.runs("clf@1")}

    first = queue_canary_runs(service)
    assert [(r.model_key, r.dataset_key, r.trigger, r.status) for r in first.queued] == [
        ("clf@1", "bc-canary@1", CANARY_TRIGGER, RunStatus.QUEUED)]  # not the standard dataset "bc"
    assert first.queued[0].run_id != own["bc-canary"].run_id and first.queued[0].attempt == 2
    # one re-measurement at a time: a second tick before the first ran queues nothing
    assert queue_canary_runs(service).queued == ()
    # an eval asked for the triple is still its own run, not the canary
    assert service.request_eval("clf@1", "bc-canary", "breast-cancer-release").run_id == own["bc-canary"].run_id

    # the canary predicts afresh: no prediction set is served to it, and it writes none
    with service.registry.session() as session:
        cached = session.scalars(select(PredictionSet)).all()
    assert len(cached) == 1
    canary = service.claim_runs("clf@1", "dagster-canary", requested=True)
    assert [r.run_id for r in canary] == [first.queued[0].run_id]
    report = predicting.produce_predictions(service, canary[0])
    assert not report.cache_hit and report.rows == own["bc-canary"].results["n_examples"]["roc_auc"]
    evaluate(service, "clf@1", dagster_run_id="dagster-canary")
    with service.registry.session() as session:
        assert len(session.scalars(select(PredictionSet)).all()) == 1

    done = service.run(first.queued[0].run_id)
    assert done.status == RunStatus.SUCCEEDED and done.results["metrics"] == own["bc-canary"].results["metrics"]
    # never a baseline, never in the gate: the version's gate combines its own two runs only
    reasons = str(service.gate_decision("clf@1").reasons)
    assert done.run_id not in reasons and own["bc"].run_id in reasons
    service.register_model("clf", model_files["gradient_boosting"])
    candidate = service.runs("clf@2")[0]
    _, baseline, _ = find_baseline(service, candidate)
    assert baseline is not None and baseline.trigger != CANARY_TRIGGER
    # a second canary tick queues the next measurement of the promoted version, still clf@1
    assert [r.model_key for r in queue_canary_runs(service).queued] == ["clf@1"]


def test_a_dataset_no_longer_canary_is_not_scheduled(service, model_files, breast_cancer):
    _, _, frame = breast_cancer
    service.register_model("clf", model_files["logistic_regression"], eval_plan=[("bc-canary", "breast-cancer-release")])
    evaluate(service, "clf@1")
    releases.promote(service, "clf@1", promoted_by="alice")
    service.register_dataset("bc-canary", frame, task_type="binary_classification", label_policy="human_reviewed")  # version 2, standard
    assert [d.key for d in canaries.tracked_datasets(service)] == []
    assert queue_canary_runs(service).queued == ()


def test_the_check_rule_by_hand():
    assert MetricDrift("roc_auc", 0.95, 0.93, 0.02).beyond_bound is False  # |-0.02| is not more than 0.02
    assert MetricDrift("roc_auc", 0.95, 0.929, 0.02).beyond_bound is True
    assert MetricDrift("roc_auc", 0.95, 0.97, 0.02).beyond_bound is False
    assert MetricDrift("roc_auc", 0.90, 0.95, 0.02).beyond_bound is True  # a move up is drift too
    assert MetricDrift("roc_auc", 0.95, None, 0.02).beyond_bound is True  # became undefined
    assert MetricDrift("roc_auc", None, None, 0.0).beyond_bound is False
    assert MetricDrift("brier", 0.1, 0.9, None).beyond_bound is False  # unbounded: tracked, never alerted on
    assert MetricDrift("roc_auc", 0.95, 0.929, 0.02).change == pytest.approx(-0.021)


def test_check_canary_compares_the_latest_run_with_the_first(service, model_files):
    service.register_model("clf", model_files["logistic_regression"], eval_plan=[("bc-canary", "breast-cancer-release")])
    evaluate(service, "clf@1")
    releases.promote(service, "clf@1", promoted_by="alice")
    values = [0.95, 0.96, 0.925]
    for index, value in enumerate(values):
        run = queue_canary_runs(service).queued[0]
        # the recorded results of three measurements (the Dagster test moves a real endpoint)
        service.update_run(run.run_id, status=RunStatus.SUCCEEDED, results={"metrics": {"roc_auc": value, "f1": 0.9}},
                           finished_at=service.run(run.run_id).requested_at)
        series = canary_series(service, "clf@1", "bc-canary@1", "breast-cancer-release@1")
        check = check_canary(service, series)
        assert check.series_length == index + 1 and check.reference_run_id == series[0].run_id
        assert [d.metric for d in check.drifted] == ([] if index < 2 else ["roc_auc"])
    assert check.drifted[0].reference == 0.95 and check.drifted[0].current == 0.925 and check.drifted[0].bound == 0.02
    assert check_canary(service, []).passed is False  # nothing measured is not green
    with service.registry.session() as session:
        assert len(session.scalars(select(EvalRun).where(EvalRun.trigger == CANARY_TRIGGER)).all()) == 3


def test_the_cli_registers_a_canary_set_and_names_a_bad_role(capsys, tmp_path, breast_cancer):
    _, _, frame = breast_cancer
    path = tmp_path / "bc.parquet"
    frame.to_parquet(path)
    home = str(tmp_path / "home")
    common = ["--home", home, "datasets", "register", "bc", "--file", str(path), "--task-type", "binary_classification",
              "--label-policy", "human_reviewed"]
    code, out, _ = evalp(capsys, *common, "--role", "canary", "--json")
    assert code == 0 and json.loads(out)["role"] == "canary" and json.loads(out)["key"] == "bc@1"
    code, _, err = evalp(capsys, *common, "--role", "gold")
    assert code == 2 and "role: must be one of standard, golden, canary, calibration, got 'gold'" in err
    code, out, _ = evalp(capsys, "--home", home, "datasets", "list", "--json")
    assert [(d["key"], d["role"]) for d in json.loads(out)] == [("bc@1", "canary")]
