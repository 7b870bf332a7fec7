"""``bootstrap: false`` on a suite's metric: compared with the baseline by its point delta only.

FID recomputes a matrix square root per bootstrap resample; with the switch off the comparison computes it twice
(candidate, baseline), gates on ``min``/``max``/``min_delta``, and a non-inferiority rule (which needs the
interval) is refused when the suite is registered. The expected FIDs come from pytorch-fid's algorithm
(``tests.metrics.test_metrics_embeddings.pytorch_fid_reference``), not from the code under test.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from eval_platform.metrics.catalog import get_metric
from eval_platform.platform.service import EvalPlatform
from eval_platform.stats.comparison import paired_bootstrap
from eval_platform.suites.definition import parse_suite
from tests.evaluation.test_runner import evaluate
from tests.metrics.test_metrics_embeddings import pytorch_fid_reference, stats_of

N, DIM = 200, 32


def fid_suite(suite_id: str, bootstrap: bool, rules: list[dict]) -> dict:
    entry = {"metric": "fid_embeddings@1"} if bootstrap else {"metric": "fid_embeddings@1", "bootstrap": False}
    return {"suite_id": suite_id, "purpose": "release_blocking", "task_type": "generation", "metrics": [entry],
            "gate": {"require_baseline": False, "rules": rules}}


def predictions_file(path, generated: np.ndarray):
    frame = pd.DataFrame({"example_id": range(N), "prediction": [f"g{i}.png" for i in range(N)]})
    for j in range(DIM):
        frame[f"prediction_emb_{j}"] = generated[:, j]
    frame.to_parquet(path)
    return path


def test_fid_without_bootstrap_compares_by_point_delta_and_gates(tmp_path):
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(N, DIM))
    dataset = pd.DataFrame({"example_id": range(N), "prompt": [f"p{i}" for i in range(N)], "reference": [f"r{i}.png" for i in range(N)]})
    for j in range(DIM):
        dataset[f"reference_emb_{j}"] = reference[:, j]
    far = rng.normal(0.5, 1.5, size=(N, DIM))
    close = reference + rng.normal(0, 0.3, size=(N, DIM))
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        platform.register_dataset("images", dataset, task_type="generation", label_policy="human_reviewed")
        # FID must improve (lower) by at least 1 against the baseline: a min_delta rule on the point delta
        platform.register_suite(fid_suite("point", False, [{"metric": "fid_embeddings", "min_delta": 1.0},
                                                            {"metric": "fid_embeddings", "max": 50.0}]))
        platform.register_model("painter", predictions_file(tmp_path / "far.parquet", far), kind="predictions",
                                eval_plan=[("images", "point")])
        evaluate(platform, "painter@1")
        releases.promote(platform, "painter@1", promoted_by="tester")
        platform.register_model("painter", predictions_file(tmp_path / "close.parquet", close), kind="predictions")
        (run,) = platform.claim_runs("painter@2", "local", requested=True)
        predicting.produce_predictions(platform, run)
        runner.compute_metrics(platform, run)
        started = time.perf_counter()
        runner.compare_with_baseline(platform, run)
        point_seconds = time.perf_counter() - started
        decision = runner.finish_runs(platform, "painter@2", [run])
        point = platform.run(run.run_id).comparison["metrics"]["fid_embeddings"]
    finally:
        platform.close()

    expected_candidate = pytorch_fid_reference(*stats_of(reference), *stats_of(close))
    expected_baseline = pytorch_fid_reference(*stats_of(reference), *stats_of(far))
    assert point["candidate"] == pytest.approx(expected_candidate, rel=1e-6)
    assert point["baseline"] == pytest.approx(expected_baseline, rel=1e-6)
    assert point["delta"] == pytest.approx(expected_candidate - expected_baseline, rel=1e-6)
    assert point["method"] == "point delta (bootstrap: false)" and point["resamples"] == 0
    assert point["ci_low"] is None or np.isnan(point["ci_low"])  # no interval
    assert decision.decision == "pass"
    (delta_rule,) = [r for r in decision.reasons[0]["reasons"] if r["kind"] == "min_delta"]
    assert delta_rule["outcome"] == "pass" and delta_rule["delta"] == pytest.approx(point["delta"])

    # the same comparison with the bootstrap: the suite's 100 paired resamples, each recomputing both FIDs
    definition = get_metric("fid_embeddings@1")
    started = time.perf_counter()
    resampled = paired_bootstrap(definition, {}, {"reference_embedding": reference, "prediction_embedding": close},
                                 {"reference_embedding": reference, "prediction_embedding": far}, 100, 0.95, 0)
    bootstrap_seconds = time.perf_counter() - started
    assert resampled["delta"] == pytest.approx(point["delta"]) and resampled["ci_high"] < 0
    print(f"comparison: point delta {point_seconds:.3f} s (whole step), bootstrap {bootstrap_seconds:.3f} s (FIDs only)")
    assert point_seconds < bootstrap_seconds


def test_non_inferiority_on_a_point_delta_metric_is_refused_naming_the_rule():
    raw = fid_suite("point", False, [{"metric": "fid_embeddings", "max": 50.0},
                                     {"metric": "fid_embeddings", "non_inferiority": 2.0}])
    with pytest.raises(InvalidInput) as error:
        parse_suite(raw)
    assert error.value.field == "gate.rules[1].non_inferiority"
    assert "metrics[0].bootstrap is false" in error.value.problem
    # on a slice, the same; with the bootstrap on, the rule is accepted
    raw["gate"]["rules"][1]["slice"] = "style"
    raw["slices"] = ["style"]
    with pytest.raises(InvalidInput) as error:
        parse_suite(raw)
    assert error.value.field == "gate.rules[1].non_inferiority"
    assert parse_suite(fid_suite("resampled", True, [{"metric": "fid_embeddings", "non_inferiority": 2.0}])).rules[0].kind == "non_inferiority"


@pytest.mark.parametrize(
    "entry, field, problem",
    [
        ({"metric": "fid_embeddings@1", "bootstrap": "no"}, "metrics[0].bootstrap", "must be true or false"),
        ({"metric": "rater_agreement@1", "bootstrap": True}, "metrics[0].bootstrap", "cannot be switched on"),
    ],
)
def test_a_bad_bootstrap_switch_is_refused(entry, field, problem):
    with pytest.raises(InvalidInput) as error:
        parse_suite({"suite_id": "s", "purpose": "exploratory", "task_type": "generation", "metrics": [entry]})
    assert error.value.field == field and problem in error.value.problem


def test_the_switch_keeps_existing_suite_versions_and_round_trips():
    plain = parse_suite(fid_suite("s", True, []) | {"purpose": "exploratory"})
    assert "bootstrap" not in plain.as_json()["metrics"][0]  # suites that never say it hash as before
    off = parse_suite(fid_suite("s", False, []) | {"purpose": "exploratory"})
    assert off.as_json()["metrics"][0]["bootstrap"] is False
    assert parse_suite(off.as_json()) == off
