"""The registry on SQLite and on the real PostgreSQL server: versions, eval plans, requests, bad input."""

import pickle

import pytest
from sqlalchemy import func, select

from eval_platform.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    UnsafeModelFile,
)
from eval_platform.registry import (
    EvalDataset,
    EvalRun,
    MetricSuite,
    Model,
)

DATASET = "bc"


def register_dataset(platform, frame, **overrides):
    arguments = dict(task_type="binary_classification", label_policy="human_reviewed", slice_columns=["tumour_size"])
    arguments.update(overrides)
    return platform.register_dataset(DATASET, frame, **arguments)


def counts(platform) -> dict:
    with platform.registry.session() as session:
        tables = {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in (EvalDataset, MetricSuite, Model, EvalRun)}
    return tables | {"artifacts": platform.store.count()}


def test_schema_is_migrated(platform):
    from alembic.script import ScriptDirectory

    from eval_platform.registry.database import MIGRATIONS

    assert platform.registry.schema_revision() == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_dataset_versions_are_content_addressed(platform, breast_cancer):
    _, _, frame = breast_cancer
    first = register_dataset(platform, frame)
    assert first.created and first.record.version == 1 and first.record.row_count == len(frame)
    again = register_dataset(platform, frame.copy())
    assert not again.created and again.record.version == 1
    changed = frame.copy()
    changed.loc[0, "label"] = 1 - changed.loc[0, "label"]
    second = register_dataset(platform, changed)
    assert second.created and second.record.version == 2
    assert second.record.content_hash != first.record.content_hash
    assert platform.latest_dataset(DATASET).version == 2
    assert first.record.schema["slice_columns"] == ["tumour_size"]
    assert "mean_radius" in first.record.schema["feature_columns"]
    assert "tumour_size" not in first.record.schema["feature_columns"]


def test_suite_versions(platform, release_suite):
    first = platform.register_suite(release_suite)
    assert first.created and first.record.version == 1
    assert not platform.register_suite(dict(release_suite)).created
    changed = dict(release_suite, min_slice_size=10)
    second = platform.register_suite(changed)
    assert second.created and second.record.version == 2
    assert platform.latest_suite("breast-cancer-release").version == 2


def test_model_registration_queues_the_eval_plan_once(platform, breast_cancer, model_files, release_suite):
    _, _, frame = breast_cancer
    register_dataset(platform, frame)
    platform.register_suite(release_suite)
    plan = [(DATASET, "breast-cancer-release")]
    first = platform.register_model("detector", model_files["logistic_regression"], eval_plan=plan)
    assert first.created and first.record.version == 1
    queued = platform.queued_runs()
    assert list(queued) == ["detector@1"]
    assert [(r.dataset_key, r.suite_key, r.trigger) for r in queued["detector@1"]] == [
        ("bc@1", "breast-cancer-release@1", "registration")]
    again = platform.register_model("detector", model_files["logistic_regression"], eval_plan=plan)
    assert not again.created and again.record.version == 1
    assert len(platform.runs()) == 1  # the same triple is evaluated once
    second = platform.register_model("detector", model_files["gradient_boosting"])  # plan is per name
    assert second.record.version == 2
    assert sorted(platform.queued_runs()) == ["detector@1", "detector@2"]
    run = platform.request_eval("detector@1", DATASET, "breast-cancer-release")
    assert run.run_id == queued["detector@1"][0].run_id  # asking again returns the existing run


def test_claim_and_recompute(platform, breast_cancer, model_files, release_suite):
    _, _, frame = breast_cancer
    register_dataset(platform, frame)
    platform.register_suite(release_suite)
    platform.register_model("detector", model_files["logistic_regression"], eval_plan=[(DATASET, "breast-cancer-release")])
    claimed = platform.claim_runs("detector@1", "dagster-run-a", requested=True)
    assert [r.status for r in claimed] == ["running"]
    # a second sensor-launched run for the same partition finds nothing left to do
    assert platform.claim_runs("detector@1", "dagster-run-b", requested=True) == []
    # later assets of the first run see the same runs
    assert [r.run_id for r in platform.claim_runs("detector@1", "dagster-run-a", requested=True)] == [claimed[0].run_id]
    with pytest.raises(Conflict):
        platform.request_eval("detector@1", DATASET, "breast-cancer-release", recompute=True)
    platform.update_run(claimed[0].run_id, status="succeeded")
    recomputed = platform.request_eval("detector@1", DATASET, "breast-cancer-release", recompute=True)
    assert recomputed.attempt == 2 and recomputed.status == "queued"
    assert platform.run(claimed[0].run_id).status == "superseded"


def test_bad_dataset_inputs_change_nothing(platform, breast_cancer):
    _, _, frame = breast_cancer
    before = counts(platform)
    cases = {
        "task_type": dict(task_type="regression"),
        "label_policy": dict(label_policy="guessed"),
        "access_policy.teams": dict(access_policy={"level": "restricted"}),
        "slice_columns": dict(slice_columns=["no_such_column"]),
    }
    for field, overrides in cases.items():
        with pytest.raises(InvalidInput) as error:
            register_dataset(platform, frame, **overrides)
        assert error.value.field == field
    bad_frames = {
        "example_id": frame.assign(example_id=0),  # duplicate ids
        "label": frame.assign(label=frame["label"] * 3),  # outside {0, 1}
    }
    for column, bad in bad_frames.items():
        with pytest.raises(InvalidInput, match=column):
            register_dataset(platform, bad)
    with pytest.raises(InvalidInput, match="'label'.*missing"):
        register_dataset(platform, frame.drop(columns=["label"]))
    assert counts(platform) == before


def test_bad_suites_and_models_change_nothing(platform, breast_cancer, model_files, release_suite, tmp_path):
    _, _, frame = breast_cancer
    register_dataset(platform, frame)
    platform.register_suite(release_suite)
    before = counts(platform)
    unknown_metric = dict(release_suite, metrics=[{"metric": "roc_auc@1"}, {"metric": "accuracy_score@1"}])
    with pytest.raises(InvalidInput, match="metrics\\[1\\].metric: unknown metric 'accuracy_score@1'"):
        platform.register_suite(unknown_metric)
    unversioned = dict(release_suite, metrics=["roc_auc"])
    with pytest.raises(InvalidInput, match="name@version"):
        platform.register_suite(unversioned)
    bad_rule = dict(release_suite, gate={"rules": [{"metric": "nope", "min": 1}]})
    with pytest.raises(InvalidInput, match="gate.rules\\[0\\].metric"):
        platform.register_suite(bad_rule)

    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(UnsafeModelFile, match="pickles are refused"):
        platform.register_model("detector", pickled, eval_plan=[(DATASET, "breast-cancer-release")])
    garbage = tmp_path / "model.skops"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidInput, match="model_file"):
        platform.register_model("detector", garbage)
    with pytest.raises(NotFound):
        platform.register_model("detector", model_files["logistic_regression"], eval_plan=[("nope", "breast-cancer-release")])
    with pytest.raises(InvalidInput, match="kind"):
        platform.register_model("detector", model_files["logistic_regression"], kind="onnx")
    assert counts(platform) == before
    assert platform.eval_plan("detector") == []
