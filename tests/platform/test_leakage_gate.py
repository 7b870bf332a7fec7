"""Leakage through the platform: a dataset with a time column and a model with a training cutoff or manifest
give a release-blocking gate ``no_decision`` naming the count; without them the gate decides as before."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.core.hashing import example_hashes
from eval_platform.datasets.leakage import content_columns
from eval_platform.evaluation import runner
from eval_platform.gates.blockers import BlockerKind
from eval_platform.registry import EvalDataset, Model
from tests.evaluation.test_runner import evaluate

#: rows 0..11 of the eval dataset are dated before the cutoff, the rest after it
EARLY = 12
CUTOFF = "2026-01-01T00:00:00Z"


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    times = ["2025-12-15T08:00:00Z"] * EARLY + ["2026-02-01T08:00:00+01:00"] * (len(frame) - EARLY)
    return frame.assign(ts=times)


@pytest.fixture
def dated(platform, breast_cancer, release_suite):
    frame = _dated(breast_cancer[2])
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                              slice_columns=["tumour_size"], time_column="ts")
    platform.register_suite(release_suite)
    return frame


def test_a_cutoff_after_some_examples_blocks_the_release_gate(platform, dated, model_files, release_suite):
    assert platform.dataset("bc@1").schema["time_column"] == "ts"
    platform.register_model("leaky", model_files["logistic_regression"], eval_plan=[("bc", release_suite["suite_id"])],
                            training_cutoff=CUTOFF)
    decision = evaluate(platform, "leaky@1")
    assert decision.decision == "no_decision"
    run = platform.runs("leaky@1")[0]
    assert run.results["leakage"]["before_cutoff"] == EARLY and run.results["leakage"]["leaked"] == EARLY
    expected = (f"{EARLY} of {len(dated)} examples are at or before the model's training cutoff 2026-01-01T00:00:00+00:00 "
                "(time column 'ts')")
    reasons = [r["message"] for r in decision.reasons[0]["reasons"] if r["rule"] == "precondition"]
    assert len(reasons) == 1 and expected in reasons[0]
    # no example id in a gate reason (aggregates-only teams read gates); the ids stay in the run's results
    assert "e.g." not in reasons[0] and run.results["leakage"]["example_ids"] == [str(i) for i in dated["example_id"][:5]]
    assert [b.kind for b in runner.gate_blockers(platform, run)] == [BlockerKind.TRAINING_LEAKAGE]
    assert run.lineage["model"]["training_cutoff"] == "2026-01-01T00:00:00+00:00"

    # the same file without a cutoff (another name): the gate decides on the metrics, as it always did
    platform.register_model("clean", model_files["logistic_regression"], eval_plan=[("bc", release_suite["suite_id"])])
    assert evaluate(platform, "clean@1").decision == "pass"
    assert "leakage" not in platform.runs("clean@1")[0].results

    # a cutoff before every example: checked, nothing found, the gate decides
    platform.register_model("early", model_files["logistic_regression"], eval_plan=[("bc", release_suite["suite_id"])],
                            training_cutoff="2025-01-01")
    assert evaluate(platform, "early@1").decision == "pass"
    assert platform.runs("early@1")[0].results["leakage"]["before_cutoff"] == 0


def test_a_manifest_counts_trained_on_examples_and_exploratory_suites_only_report(platform, dated, model_files, release_suite,
                                                                                   tmp_path):
    exploratory = release_suite | {"suite_id": "bc-explore", "purpose": "exploratory"}
    platform.register_suite(exploratory)
    schema = platform.dataset("bc@1").schema
    # the training file: seven eval examples' inputs under other ids and without labels, plus unrelated rows
    training = dated.iloc[[20, 40, 60, 80, 100, 120, 140]][content_columns(schema)]
    training = pd.concat([training, training.iloc[:2] * 1.5], ignore_index=True)
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"example_hash": example_hashes(training, content_columns(schema)).tolist()}), manifest)
    platform.register_model("trained", model_files["logistic_regression"], eval_plan=[("bc", "bc-explore")],
                            training_manifest=manifest)
    model = platform.model("trained@1")
    assert model.training_manifest_hash and platform.training_manifest(model).size == 9
    evaluate(platform, "trained@1")
    run = platform.runs("trained@1")[0]
    assert run.results["leakage"]["in_manifest"] == 7 and run.results["leakage"]["before_cutoff"] is None
    assert run.results["leakage"]["example_ids"] == [str(dated["example_id"].iloc[i]) for i in (20, 40, 60, 80, 100)]
    assert runner.gate_blockers(platform, run) == []  # exploratory: reported, never a blocker


def test_the_same_file_cannot_change_its_training_facts(platform, dated, model_files):
    first = platform.register_model("det", model_files["logistic_regression"], training_cutoff=CUTOFF)
    again = platform.register_model("det", model_files["logistic_regression"], training_cutoff="2026-01-01T01:00:00+01:00")
    assert first.created and not again.created and again.record.version == 1  # the same instant
    with pytest.raises(Conflict, match="training cutoff"):
        platform.register_model("det", model_files["logistic_regression"], training_cutoff="2026-02-01")


def _counts(platform):
    with platform.registry.session() as session:
        return (session.query(EvalDataset).count(), session.query(Model).count(), platform.store.count())


def test_bad_time_columns_and_manifests_write_nothing(platform, breast_cancer, model_files, tmp_path):
    frame = breast_cancer[2]
    before = _counts(platform)
    cases = [(frame.assign(ts=["2026-01-01"] * (len(frame) - 1) + [None]), "ts", "null value"),
             (frame.assign(ts=range(len(frame))), "ts", "holds numbers"),
             (frame, "when", "not in the dataset"),
             (frame, "label", "id or label column"),
             (frame.assign(ts="2026-01-01"), "ts", "feature column")]
    for data, column, problem in cases:
        with pytest.raises(InvalidInput) as error:
            platform.register_dataset("bc", data, task_type="binary_classification", label_policy="human_reviewed", time_column=column,
                                      feature_columns=["mean_radius", "ts"] if problem == "feature column" else None)
        assert error.value.field == "time_column" and problem in error.value.problem
    bad = tmp_path / "manifest.txt"
    bad.write_bytes(b"sha256:" + b"a" * 64 + b"\nnot-a-hash\n")
    for kwargs, field in (({"training_manifest": bad}, "training_manifest"),
                          ({"training_manifest": tmp_path / "absent.parquet"}, "training_manifest"),
                          ({"training_manifest": io.BytesIO(b"x").getvalue()}, "training_manifest"),
                          ({"training_cutoff": "next tuesday"}, "training_cutoff")):
        with pytest.raises(InvalidInput) as error:
            platform.register_model("det", model_files["logistic_regression"], **kwargs)
        assert error.value.field == field
    assert _counts(platform) == before
