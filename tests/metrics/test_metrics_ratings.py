"""Human ratings as labels inside suites: the rating scale, registration of rater columns, and the rating metrics
end to end through EvalPlatform (register, run, gate), checked against reference packages on the same ratings.

References: ``krippendorff`` (alpha at every level, missing ratings allowed), statsmodels' ``DescrStatsW``
(Student-t interval of a mean) and ``proportion_confint(method="wilson")``; the judge's scores are read back
from the verdicts the run stored and put on the human scale by hand (``1 + 4 s`` on a 1-5 Likert scale).
"""

from __future__ import annotations

import json
from importlib import resources as package_files

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from eval_platform.core.errors import InvalidInput
from eval_platform.evaluation import predicting, runner
from eval_platform.gates import releases
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.ratings import (
    RatingScale,
    human_preference_rate,
    human_rating_mean,
    judge_agreement,
    rater_agreement,
)
from eval_platform.platform.service import EvalPlatform
from tests.evaluation.test_runner import evaluate
from tests.judge_calibration import judge_license, license_judge

RATERS = ["rater_a", "rater_b", "rater_c"]
LIKERT = {"type": "likert", "levels": [1, 2, 3, 4, 5]}


def noisy_ratings(truth: np.ndarray, rng: np.random.Generator, missing: float = 0.1, spread: int = 1) -> np.ndarray:
    """Three raters: the truth plus noise in [-spread, spread], clipped to 1-5; None where missing (object)."""
    out = np.empty((len(truth), len(RATERS)), dtype=object)
    for j in range(len(RATERS)):
        values = np.clip(truth + rng.integers(-spread, spread + 1, len(truth)), 1, 5).astype(object)
        values[rng.random(len(truth)) < missing] = None
        out[:, j] = values
    return out


def as_float(table: np.ndarray) -> np.ndarray:
    return np.asarray([[np.nan if v is None else float(v) for v in row] for row in table])


# the scale and the library functions ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_rater_agreement_matches_krippendorff_on_every_scale(seed):
    rng = np.random.default_rng(seed)
    raw = noisy_ratings(rng.integers(1, 6, 50), rng, missing=0.2)
    numbers = as_float(raw)
    likert = RatingScale.from_raw(LIKERT)
    assert rater_agreement(likert.encode(raw), likert, n_resamples=0).value == pytest.approx(
        krippendorff.alpha(numbers.T, level_of_measurement="interval"), abs=1e-12)
    # ordinal levels given as words: only their order counts, so the package on the numbers agrees
    words = ["awful", "poor", "fair", "good", "great"]
    ordinal = RatingScale.from_raw({"type": "ordinal", "levels": words})
    as_words = np.where(pd.isna(raw), None, np.asarray(["", *words], dtype=object)[np.nan_to_num(numbers, nan=0).astype(int)])
    assert rater_agreement(ordinal.encode(as_words), ordinal, n_resamples=0).value == pytest.approx(
        krippendorff.alpha(numbers.T, level_of_measurement="ordinal"), abs=1e-12)
    nominal = RatingScale.from_raw({"type": "nominal", "levels": words})
    assert rater_agreement(nominal.encode(as_words), nominal, n_resamples=0).value == pytest.approx(
        krippendorff.alpha(numbers.T, level_of_measurement="nominal"), abs=1e-12)
    # a preference is ordinal over B < tie < A
    letters = np.where(pd.isna(raw), None, np.asarray(["", "B", "B", "tie", "A", "A"], dtype=object)[np.nan_to_num(numbers, nan=0).astype(int)])
    preference = RatingScale.from_raw({"type": "preference"})
    codes = as_float(np.where(pd.isna(letters), None, np.vectorize(lambda v: {"B": 0, "tie": 1, "A": 2}.get(v, 0))(letters)))
    assert rater_agreement(preference.encode(letters), preference, n_resamples=0).value == pytest.approx(
        krippendorff.alpha(codes.T, level_of_measurement="ordinal"), abs=1e-12)


def test_judge_agreement_is_alpha_with_the_judge_minus_alpha_without():
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 6, 80)
    raw = noisy_ratings(truth, rng)
    scores = np.clip((truth - 1) / 4 + rng.normal(0, 0.1, 80), 0, 1)
    scale = RatingScale.from_raw(LIKERT)
    result = judge_agreement(scale.encode(raw), scores, scale, n_resamples=200)
    humans = krippendorff.alpha(as_float(raw).T, level_of_measurement="interval")
    together = krippendorff.alpha(np.column_stack([as_float(raw), 1 + 4 * scores]).T, level_of_measurement="interval")
    assert result.humans.value == pytest.approx(humans, abs=1e-12)
    assert result.difference == pytest.approx(together - humans, abs=1e-12)
    assert result.difference_ci_low <= result.difference <= result.difference_ci_high
    # on a 3-level ordinal scale the judge's score snaps to the nearest level: 0.3 -> level 1 (of 0, 1, 2)
    ordinal = RatingScale.from_raw({"type": "ordinal", "levels": ["bad", "ok", "good"]})
    snapped = judge_agreement(ordinal.encode([["bad", "bad"], ["ok", "ok"], ["good", "ok"]]), [0.1, 0.3, 0.9], ordinal,
                              n_resamples=0)
    assert snapped.with_judge.value == pytest.approx(
        krippendorff.alpha(np.array([[0, 0, 0], [1, 1, 1], [2, 1, 2]], float).T, level_of_measurement="ordinal"), abs=1e-12)


def test_mean_rating_and_preference_rate_match_statsmodels():
    rng = np.random.default_rng(3)
    raw = noisy_ratings(rng.integers(1, 6, 40), rng, missing=0.3)
    raw[0, :] = None  # an example nobody rated is left out
    scale = RatingScale.from_raw(LIKERT)
    mean = human_rating_mean(scale.encode(raw), scale, confidence=0.9)
    unit_means = np.nanmean(as_float(raw)[1:], axis=1)
    low, high = DescrStatsW(unit_means).tconfint_mean(alpha=0.1)
    assert (mean.value, mean.ci_low, mean.ci_high, mean.n_units) == pytest.approx((unit_means.mean(), low, high, 39))

    votes = np.array([["A", "A", "B"], ["A", "tie", None], ["B", "B", "A"], ["tie", "tie", None], ["A", "B", None],
                      ["A", "A", "A"], [None, None, None], ["B", None, None]] * 5, dtype=object)
    preference = RatingScale.from_raw({"type": "preference"})
    rate = human_preference_rate(preference.encode(votes), preference)
    # by hand per block of 8: preferred A (rows 1, 2, 6), B (rows 3, 8), ties (rows 4, 5), unrated (row 7)
    assert (rate.n_preferred, rate.n_decisive, rate.n_ties) == (15, 25, 10)
    low, high = proportion_confint(15, 25, alpha=0.05, method="wilson")
    assert (rate.value, rate.ci_low, rate.ci_high) == pytest.approx((0.6, low, high), abs=1e-12)


@pytest.mark.parametrize(
    "raw, field, problem",
    [
        ("likert", "rating_scale", "must be a mapping"),
        ({"type": "stars"}, "rating_scale.type", "must be one of"),
        ({"type": "likert", "levels": ["low", "high"]}, "rating_scale.levels", "must be numbers"),
        ({"type": "likert", "levels": [5, 1]}, "rating_scale.levels", "increasing"),
        ({"type": "ordinal", "levels": ["a"]}, "rating_scale.levels", "at least 2"),
        ({"type": "nominal", "levels": ["a", "a"]}, "rating_scale.levels", "distinct"),
        ({"type": "nominal", "levels": ["a", float("nan")]}, "rating_scale.levels", "finite numbers"),
        ({"type": "preference", "levels": ["yes", "no"]}, "rating_scale.levels", "leave them out"),
        ({"type": "likert", "levels": [1, 2], "anchors": {}}, "rating_scale", "unknown key"),
    ],
)
def test_a_bad_scale_is_refused_naming_the_field(raw, field, problem):
    with pytest.raises(InvalidInput) as error:
        RatingScale.from_raw(raw)
    assert error.value.field == field and problem in error.value.problem


def test_a_metric_on_the_wrong_scale_is_refused():
    nominal = RatingScale.from_raw({"type": "nominal", "levels": ["x", "y"]})
    table = nominal.encode([["x", "y"], ["y", "y"]])
    for call in (lambda: human_rating_mean(table, nominal), lambda: human_preference_rate(table, nominal),
                 lambda: judge_agreement(table, [0.5, 0.5], nominal)):
        with pytest.raises(InvalidInput) as error:
            call()
        assert error.value.field == "rating_scale"


# registration -----------------------------------------------------------------------------------------------

@pytest.fixture
def platform(tmp_path):
    service = EvalPlatform.open(tmp_path / "home")
    yield service
    service.close()


def qa_frame(n: int) -> pd.DataFrame:
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:n]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference", "category"]]


@pytest.mark.parametrize(
    "change, columns, scale, field, problem",
    [
        (None, ["rater_a", "nobody"], LIKERT, "rating_columns", "'nobody' is not in the dataset"),
        (None, ["rater_a"], LIKERT, "rating_columns", "at least 2 raters"),
        (None, ["rater_a", "rater_a"], LIKERT, "rating_columns", "twice"),
        (None, ["rater_a", "reference"], LIKERT, "rating_columns", "id or label column"),
        (None, "rater_a", LIKERT, "rating_columns", "list of column names"),
        (None, RATERS, None, "rating_scale", "is required"),
        (None, None, LIKERT, "rating_columns", "needs the rating_columns"),
        (("rater_b", 3, 7), RATERS, LIKERT, "rating_columns[rater_b]", "row 4: 7 is not a level"),
        (("rater_c", 0, "5"), RATERS, LIKERT, "rating_columns[rater_c]", "row 1: '5' is not a level"),
        (("rater_a", 1, float("inf")), RATERS, LIKERT, "rating_columns[rater_a]", "row 2: inf is not a level"),
        ("no overlap", RATERS, LIKERT, "rating_columns", "no example has ratings from two raters"),
    ],
)
def test_registration_refuses_bad_ratings_naming_the_field(platform, change, columns, scale, field, problem):
    frame = qa_frame(12)
    for rater in RATERS:
        frame[rater] = pd.Series([3] * 12, dtype=object)
    if change == "no overlap":  # each example rated by one rater only
        for j, rater in enumerate(RATERS):
            frame[rater] = [3 if i % 3 == j else None for i in range(12)]
    elif change is not None:
        rater, row, value = change
        frame.loc[row, rater] = value
    with pytest.raises(InvalidInput) as error:
        platform.register_dataset("rated", frame, task_type="generation", label_policy="human_reviewed",
                                  rating_columns=columns, rating_scale=scale)
    assert error.value.field == field and problem in error.value.problem
    assert platform.datasets() == []  # nothing half-written


def test_rating_columns_are_recorded_and_never_model_features(platform):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"]).assign(example_id=range(60), label=rng.integers(0, 2, 60))
    frame["rater_a"], frame["rater_b"] = rng.integers(1, 6, 60), rng.integers(1, 6, 60)
    record = platform.register_dataset("bc-rated", frame, task_type="binary_classification", label_policy="human_reviewed",
                                       rating_columns=["rater_a", "rater_b"], rating_scale=LIKERT).record
    assert record.schema["ratings"] == {"columns": ["rater_a", "rater_b"], "scale": LIKERT}
    assert record.schema["feature_columns"] == ["a", "b", "c"]
    # the same rows without the declaration are another version; declaring nothing keeps the old schema
    plain = platform.register_dataset("bc-rated", frame, task_type="binary_classification", label_policy="human_reviewed").record
    assert plain.version == 2 and "ratings" not in plain.schema


# end to end: register, run, gate ------------------------------------------------------------------------------

def judge_config():
    return {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}


def judge_pin():
    return {k: v for k, v in JudgeConfig.from_dict(judge_config()).pin().items() if k != "judge_config_hash"}


def rated_suite(rules, suite_id="rated"):
    return {"suite_id": suite_id, "purpose": "release_blocking", "task_type": "generation", "slices": ["category"],
            "min_slice_size": 1, "llm": {"judge": judge_config(), "judge_license": judge_license()},
            "metrics": ["rater_agreement@1", {"metric": "judge_human_agreement@1", "params": judge_pin()},
                        {"name": "judge_agreement_low", "metric": "judge_human_agreement@1", "params": {**judge_pin(), "bound": "lower"}},
                        "human_rating_mean@1", {"name": "exact", "metric": "exact_match@1"}],
            "gate": {"require_baseline": False, "rules": rules}}


@pytest.fixture
def rated(tmp_path, server, monkeypatch, platform):
    """60 QA examples (two categories), three raters on a 1-5 scale who rate correct answers high, a predictions
    file answering 60% correctly, and the suite's pinned rule judge."""
    monkeypatch.setenv("EVAL_LLM_BASE_URL", server[1])
    frame = qa_frame(48)
    rng = np.random.default_rng(7)
    correct = rng.random(len(frame)) < 0.6
    ratings = noisy_ratings(np.where(correct, 5, 1), rng)
    for j, rater in enumerate(RATERS):
        frame[rater] = ratings[:, j]
    platform.register_dataset("qa-rated", frame, task_type="generation", label_policy="human_reviewed", slice_columns=["category"],
                              rating_columns=RATERS, rating_scale=LIKERT)
    license_judge(platform, judge_config())  # a release-blocking judge gates only with a license
    predictions = pd.DataFrame({"example_id": frame["example_id"], "prediction": np.where(correct, frame["reference"], "I do not know")})
    predictions.to_parquet(tmp_path / "answers.parquet")
    return platform, frame, ratings, tmp_path / "answers.parquet"


def test_rating_metrics_end_to_end_match_the_references_and_gate(rated):
    platform, frame, ratings, answers = rated
    platform.register_suite(rated_suite([{"metric": "rater_agreement", "min": 0.6},
                                         {"metric": "judge_agreement_low", "min": -0.1},
                                         {"metric": "human_rating_mean", "min": 2.0}]))
    platform.register_model("bot", answers, kind="predictions", eval_plan=[("qa-rated", "rated")])
    assert evaluate(platform, "bot@1").decision == "pass"
    run = platform.runs("bot@1")[0]
    metrics, estimates = run.results["metrics"], run.results["estimates"]

    numbers = as_float(ratings)
    humans = krippendorff.alpha(numbers.T, level_of_measurement="interval")
    assert metrics["rater_agreement"] == pytest.approx(humans, abs=1e-12)
    low, high = estimates["rater_agreement"]["ci_low"], estimates["rater_agreement"]["ci_high"]
    assert low < humans < high and estimates["rater_agreement"]["confidence"] == 0.95

    verdicts = platform.store.get_table("judge_verdicts", run.results["judge"]["verdicts"]).set_index("example_id")
    judge = 1 + 4 * frame["example_id"].map(verdicts["score"]).to_numpy(np.float64)  # the judge on the 1-5 scale
    together = krippendorff.alpha(np.column_stack([numbers, judge]).T, level_of_measurement="interval")
    assert metrics["judge_human_agreement"] == pytest.approx(together - humans, abs=1e-12)
    assert metrics["judge_agreement_low"] == pytest.approx(estimates["judge_human_agreement"]["ci_low"])
    assert metrics["judge_agreement_low"] < metrics["judge_human_agreement"]

    unit_means = np.nanmean(numbers[~np.isnan(numbers).all(axis=1)], axis=1)
    assert metrics["human_rating_mean"] == pytest.approx(unit_means.mean())
    assert (estimates["human_rating_mean"]["ci_low"], estimates["human_rating_mean"]["ci_high"]) == pytest.approx(
        DescrStatsW(unit_means).tconfint_mean(alpha=0.05))
    # per slice: alpha on that category's examples only
    capital = (frame["category"] == "capital").to_numpy()
    by_slice = {s["slice"]: s["value"] for s in run.results["slices"] if s["metric"] == "rater_agreement"}
    assert by_slice["category=capital"] == pytest.approx(krippendorff.alpha(numbers[capital].T, level_of_measurement="interval"))
    assert set(estimates["rater_agreement"]["slices"]) == {"category=capital", "category=chemical_symbol"}

    # a stricter lower bound fails, naming the bound
    platform.register_suite(rated_suite([{"metric": "judge_agreement_low", "min": 0.5}], suite_id="strict"))
    platform.register_model("bot2", answers, kind="predictions", eval_plan=[("qa-rated", "strict")])
    decision = evaluate(platform, "bot2@1")
    assert decision.decision == "fail"
    reason = decision.reasons[0]["reasons"][0]
    assert reason["metric"] == "judge_agreement_low" and reason["observed"] == pytest.approx(metrics["judge_agreement_low"])


def test_a_comparison_takes_the_rating_metrics_point_delta(rated):
    platform, _, _, answers = rated
    raw = rated_suite([{"metric": "rater_agreement", "min_delta": 0.0}, {"metric": "judge_agreement_low", "min": -0.1}])
    platform.register_suite(raw)
    platform.register_model("bot", answers, kind="predictions", eval_plan=[("qa-rated", "rated")])
    assert evaluate(platform, "bot@1").decision == "pass"  # min_delta: not applicable to a first version
    releases.promote(platform, "bot@1", promoted_by="tester")
    second = pd.read_parquet(answers)
    second.loc[0, "prediction"] = "something else"  # another file: the next version
    second.to_parquet(answers.with_name("second.parquet"))
    platform.register_model("bot", answers.with_name("second.parquet"), kind="predictions")
    decision = evaluate(platform, "bot@2")
    comparison = platform.runs("bot@2")[0].comparison["metrics"]["rater_agreement"]
    assert comparison["delta"] == 0.0 and comparison["method"] == "point delta (bootstrap: false)"
    assert decision.decision == "pass"


def test_missing_raters_fail_closed(tmp_path, server, monkeypatch, platform):
    """A rating metric on a dataset without declared raters: the metric step fails naming rating_columns, and the
    gate has no decision; a preference scale's undefined agreement (every rating 'tie') is no decision too."""
    monkeypatch.setenv("EVAL_LLM_BASE_URL", server[1])
    frame = qa_frame(20)
    platform.register_dataset("qa", frame, task_type="generation", label_policy="human_reviewed")
    pd.DataFrame({"example_id": frame["example_id"], "prediction": frame["reference"]}).to_parquet(tmp_path / "a.parquet")
    platform.register_suite({"suite_id": "pref", "purpose": "release_blocking", "task_type": "generation",
                             "metrics": ["rater_agreement@1", "human_preference_rate@1"],
                             "gate": {"require_baseline": False, "rules": [{"metric": "rater_agreement", "min": 0.0},
                                                                           {"metric": "human_preference_rate", "min": 0.5}]}})
    platform.register_model("bot", tmp_path / "a.parquet", kind="predictions", eval_plan=[("qa", "pref")])
    runs = platform.claim_runs("bot@1", "local", requested=True)
    predicting.produce_predictions(platform, runs[0])
    with pytest.raises(InvalidInput) as error:
        runner.compute_metrics(platform, runs[0])
    assert error.value.field == "rating_columns"
    assert runner.finish_runs(platform, "bot@1", runs).decision == "no_decision"

    frame["judge_1"], frame["judge_2"] = "tie", "tie"
    frame.loc[0, "judge_1"] = "A"
    platform.register_dataset("qa", frame, task_type="generation", label_policy="human_reviewed",
                              rating_columns=["judge_1", "judge_2"], rating_scale={"type": "preference"})
    platform.request_eval("bot@1", "qa", "pref")
    decision = evaluate(platform, "bot@1", dagster_run_id="again")
    run = platform.runs("bot@1")[-1]
    assert run.results["metrics"]["human_preference_rate"] == 1.0  # one decisive example, for A
    low, _ = proportion_confint(1, 1, method="wilson")
    assert run.results["estimates"]["human_preference_rate"]["ci_low"] == pytest.approx(low)
    assert decision.decision == "no_decision"
    assert any("rater_agreement" in str(r) and "undefined" in str(r) for r in decision.reasons[0]["reasons"])


def test_the_cli_registers_raters_and_names_a_bad_rating(capsys, tmp_path):
    from eval_platform.cli.main import main

    frame = qa_frame(12)
    frame["rater_a"], frame["rater_b"] = [1, 2, 3] * 4, [1, 2, 2] * 4
    frame.to_parquet(tmp_path / "rated.parquet")
    common = ["--home", str(tmp_path / "home"), "datasets", "register", "rated", "--file", str(tmp_path / "rated.parquet"),
              "--task-type", "generation", "--label-policy", "human_reviewed", "--rating-column", "rater_a",
              "--rating-column", "rater_b", "--json"]
    assert main([*common, "--rating-scale", "likert:1,2"]) == 2
    assert "rating_columns[rater_a]: row 3: 3 is not a level" in capsys.readouterr().err
    assert main([*common, "--rating-scale", "{not json"]) == 2
    assert "rating_scale: is not valid JSON" in capsys.readouterr().err
    assert main([*common, "--rating-scale", "ordinal:1,2,3"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"]["ratings"] == {
        "columns": ["rater_a", "rater_b"], "scale": {"type": "ordinal", "levels": [1, 2, 3]}}


def test_catalog_metrics_refuse_a_bad_bound_and_fail_closed_on_a_judge_error():
    from eval_platform.metrics.catalog import get_metric
    from eval_platform.suites.definition import parse_suite

    with pytest.raises(InvalidInput) as error:
        parse_suite({"suite_id": "s", "purpose": "exploratory", "task_type": "generation",
                     "metrics": [{"metric": "rater_agreement@1", "params": {"bound": "median"}}]})
    assert error.value.field == "rater_agreement@1.params.bound" and "estimate, lower, upper" in error.value.problem

    scale = RatingScale.from_raw(LIKERT)
    ratings = scale.encode([[1, 1], [3, 4], [5, 5], [2, 2]])
    columns = {"human_ratings": ratings, "human_rating_scale": np.asarray([json.dumps(scale.as_json())] * 4),
               "judge_score": np.array([0.0, 0.6, 1.0, np.nan])}  # the last example's judge call failed
    definition = get_metric("judge_human_agreement@1")
    assert np.isnan(definition.compute(columns, **definition.resolve_params({})))
    # on a stratified sample an unjudged example is a missing rating, a judged one without a score is still an error
    columns["judge_sampled"] = np.array([True, True, True, False])
    value = definition.compute(columns, **definition.resolve_params({}))
    with_judge = krippendorff.alpha(np.array([[1, 1, 1], [3, 4, 3.4], [5, 5, 5], [2, 2, np.nan]]).T, level_of_measurement="interval")
    humans = krippendorff.alpha(as_float(np.array([[1, 1], [3, 4], [5, 5], [2, 2]], dtype=object)).T, level_of_measurement="interval")
    assert value == pytest.approx(with_judge - humans, abs=1e-12)


def test_the_api_registers_raters_and_names_the_field(platform):
    import httpx

    from eval_platform.api.app import create_app
    from eval_platform.registry.access import create_token
    from tests.api.test_api import Server, parquet_bytes

    frame = qa_frame(12)
    frame["rater_a"], frame["rater_b"] = [1, 2, 3] * 4, [1, 2, 2] * 4
    token = create_token(platform, "alpha", roles=("member",))
    base = {"datasetId": "rated", "taskType": "generation", "labelPolicy": "human_reviewed", "ratingColumns": ["rater_a", "rater_b"]}
    with Server(create_app(platform)) as server, httpx.Client(base_url=server.url, timeout=60,
                                                             headers={"Authorization": f"Bearer {token}"}) as client:
        def post(data):
            return client.post("/v1/datasets", data=data, files={"file": ("rated.parquet", parquet_bytes(frame))})

        for data, field in [(base | {"ratingScale": '{"type": "likert", "levels": [1, 2]}'}, "ratingColumns[rater_a]"),
                            (base | {"ratingScale": '{"type": "likert", "levels": ["a", "b"]}'}, "ratingScale.levels"),
                            (base | {"ratingScale": "likert"}, "ratingScale"),
                            (base | {"ratingScale": "[" * 5000}, "ratingScale"),  # nested past the JSON depth limit: 422, not a 500
                            (base, "ratingScale"),
                            (base | {"ratingColumns": ["rater_a"], "ratingScale": '{"type": "preference"}'}, "ratingColumns")]:
            response = post(data)
            assert response.status_code == 422 and response.json()["field"] == field, response.text
        assert platform.datasets() == []
        response = post(base | {"ratingScale": '{"type": "likert", "levels": [1, 2, 3]}'})
        assert response.status_code == 201, response.text
        assert response.json()["schema"]["ratings"] == {"columns": ["rater_a", "rater_b"], "scale": {"type": "likert", "levels": [1, 2, 3]}}
