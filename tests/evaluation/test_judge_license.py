"""Judges licensed by human agreement, end to end on the local OpenAI-compatible server: calibration contract,
the license's figures against sklearn and statsmodels, the gate failing closed, revocation by a new prompt
version, drift of a changed judge model, and a recheck that pays no call."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

from eval_platform.core.errors import InvalidInput
from eval_platform.evaluation import runner
from eval_platform.evaluation.judge_license import (
    LicenseRequirement,
    compute_license,
    judge_key,
    license_status,
    licenses,
    unchecked_judges,
)
from eval_platform.gates.blockers import BlockerKind
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.agreement import cohen_kappa_interval
from tests.evaluation.test_runner import evaluate
from tests.judge_calibration import CALIBRATION_ID, calibration_frame, judge_license, license_judges, register_calibration
from tests.llm.test_llm_runs import candidate_file, judge_config, judged_suite, service, service_on_each_db  # noqa: F401 (fixtures)

FLIPPED = frozenset(range(0, 60, 3))  # 20 of 60 human labels disagree with the rule: kappa 1/3 by construction


def _table(first, second) -> np.ndarray:
    labels = sorted(set(first) | set(second))
    table = np.zeros((len(labels), len(labels)))
    for a, b in zip(first, second, strict=True):
        table[labels.index(a), labels.index(b)] += 1
    return table


# the statistic ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,labels,flip", [(0, ("pass", "fail"), 0.1), (1, ("pass", "fail"), 0.35), (2, ("a", "b", "c"), 0.3),
                                              (3, ("pass", "fail"), 0.0)])
def test_kappa_and_its_interval_match_sklearn_and_statsmodels(seed, labels, flip):
    rng = np.random.default_rng(seed)
    first = rng.choice(labels, 80)
    second = first.copy()
    changed = rng.random(80) < flip
    second[changed] = rng.choice(labels, int(changed.sum()))
    result = cohen_kappa_interval(first, second, confidence=0.95)
    reference = cohens_kappa(_table(first, second))  # alpha 0.025 each side: the 95% interval
    assert result.value == pytest.approx(cohen_kappa_score(first, second)) == pytest.approx(reference.kappa)
    assert result.standard_error == pytest.approx(reference.std_kappa, abs=1e-12)
    assert (result.ci_low, result.ci_high) == (pytest.approx(reference.kappa_low), pytest.approx(reference.kappa_upp))
    wider = cohen_kappa_interval(first, second, confidence=0.99)
    assert wider.ci_low <= result.ci_low and wider.value == result.value


def test_kappa_of_raters_who_always_say_one_label_is_undefined():
    result = cohen_kappa_interval(["pass"] * 5, ["pass"] * 5)
    assert np.isnan(result.value) and np.isnan(result.ci_low)
    with pytest.raises(InvalidInput, match="confidence"):
        cohen_kappa_interval(["a", "b"], ["a", "b"], confidence=1.5)


# the calibration contract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("change,field", [
    (lambda f: f.drop(columns=["human_label"]), "human_label"),
    (lambda f: f.drop(columns=["answer"]), "answer"),
    (lambda f: f.assign(human_label=["pass", "maybe", *["fail"] * (len(f) - 2)]), "human_label"),
    (lambda f: f.assign(human_label=[None, *["fail"] * (len(f) - 1)]), "human_label"),
    (lambda f: f.assign(answer=[None, *["x"] * (len(f) - 1)]), "answer"),
])
def test_a_calibration_dataset_outside_the_contract_is_refused_naming_the_field(service, change, field):  # noqa: F811
    frame = change(calibration_frame(stop=24).drop(columns=["judge_expected"]))
    with pytest.raises(InvalidInput) as refused:
        service.register_dataset("cal", frame, task_type="generation", label_policy="human_reviewed", role="calibration")
    assert refused.value.field == field
    assert [d.dataset_id for d in service.datasets()] == ["qa"]  # nothing written


def test_a_calibration_dataset_is_labelled_by_people_and_a_generation_set(service):  # noqa: F811
    frame = calibration_frame(stop=24).drop(columns=["judge_expected"])
    with pytest.raises(InvalidInput) as refused:
        service.register_dataset("cal", frame, task_type="generation", label_policy="synthetic", role="calibration")
    assert refused.value.field == "label_policy"
    mixed = service.register_dataset("cal", frame, task_type="generation", label_policy="mixed", role="calibration").record
    assert mixed.role == "calibration" and mixed.key == "cal@1"


# licenses on the local server -------------------------------------------------------------------------------------


def _requirement(**changes) -> LicenseRequirement:
    return LicenseRequirement(CALIBRATION_ID, **changes)


def test_a_license_measures_kappa_as_sklearn_and_statsmodels_do_and_a_recheck_pays_no_call(service, server):  # noqa: F811
    local, _ = server
    calibration = register_calibration(service, flipped=FLIPPED)
    frame = calibration_frame(flipped=FLIPPED)
    config = JudgeConfig.from_dict(judge_config())
    local.reset_stats()
    first = compute_license(service, config, calibration, _requirement())
    assert local.stats()["completions_by_model"] == {"rule-judge-1": 60}
    # the judge says what the rule says on every row (checked by the kappa below), the humans differ on 20
    expected = cohen_kappa_score(frame["human_label"], frame["judge_expected"])
    reference = cohens_kappa(_table(list(frame["human_label"]), list(frame["judge_expected"])))
    assert first.estimate == pytest.approx(expected) == pytest.approx(1 / 3)
    assert (first.ci_low, first.ci_high) == (pytest.approx(reference.kappa_low), pytest.approx(reference.kappa_upp))
    assert first.n == 60 and first.n_judge_errors == 0 and not first.licensed and first.drift is None
    assert first.pass_rate == pytest.approx(0.5)
    assert first.calibration_key == f"{CALIBRATION_ID}@1" and first.calibration_content_hash == calibration.content_hash
    assert first.judge_key == judge_key(config) and first.judge_config_hash == config.config_hash
    assert not set("|,[] ") & set(first.judge_key)
    assert first.figures() == (f"judge {first.judge_key}: kappa 0.33, 95% lower bound {first.ci_low:.2f} < required 0.60 "
                               f"on 60 calibration examples of {CALIBRATION_ID}@1")

    # accuracy with its Wilson interval: 40 of 60 agree
    accuracy = compute_license(service, config, calibration, _requirement(measure="accuracy", min_lower_bound=0.5))
    low, high = proportion_confint(40, 60, alpha=0.05, method="wilson")
    assert accuracy.estimate == pytest.approx(40 / 60) and (accuracy.ci_low, accuracy.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert accuracy.licensed == (low >= 0.5)

    # a recheck of the same judge: every verdict comes from the call cache, and the history grows by one row
    local.reset_stats()
    again = compute_license(service, config, calibration, _requirement())
    assert local.stats()["completions"] == 0 and again.calls["calls"] == 0 and again.calls["cache_hits"] == 60
    assert again.estimate == first.estimate and again.id > accuracy.id > first.id
    assert [lic.id for lic in licenses(service, config.config_hash)] == [again.id, accuracy.id, first.id]


def _evaluated(service, tmp_path, suite_raw, model="qa-bot"):  # noqa: F811
    service.register_suite(suite_raw)
    record = service.register_model(model, candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")]).record
    return evaluate(service, record.key), record.key


def test_an_unlicensed_judge_blocks_the_gate_with_the_figures(service, server, tmp_path):  # noqa: F811
    register_calibration(service, flipped=FLIPPED)
    decision, model_key = _evaluated(service, tmp_path, judged_suite(judge_license=judge_license()))
    key = judge_key(JudgeConfig.from_dict(judge_config()))
    assert decision.decision == "no_decision"
    assert f"judge {key}: never checked on calibration dataset {CALIBRATION_ID}@1" in str(decision.reasons)
    run = service.runs(model_key)[0]
    assert [b.kind for b in runner.gate_blockers(service, run)] == [BlockerKind.UNLICENSED_JUDGE]

    [checked] = license_judges(service)
    assert not checked.licensed
    decision = runner.decide_model_version(service, model_key)
    assert decision.decision == "no_decision"
    assert re.search(rf"judge {re.escape(key)}: kappa 0\.33, 95% lower bound -?0\.\d\d < required 0\.60 on 60 calibration examples",
                     str(decision.reasons)), decision.reasons


def test_a_licensed_judge_gates_and_a_new_calibration_version_needs_a_new_check(service, server, tmp_path):  # noqa: F811
    register_calibration(service)  # the humans label by the judge's own rule: kappa 1
    service.register_suite(judged_suite(judge_license=judge_license()))
    key = judge_key(JudgeConfig.from_dict(judge_config()))
    assert unchecked_judges(service) == [f"{key} on {CALIBRATION_ID}@1"]  # what the license sensor has to run
    [checked] = license_judges(service)
    assert unchecked_judges(service) == []
    assert checked.licensed and checked.estimate == pytest.approx(1.0) and checked.ci_low == pytest.approx(1.0)
    decision, model_key = _evaluated(service, tmp_path, judged_suite(judge_license=judge_license()))
    assert decision.decision == "pass", decision.reasons  # kb-qa-v1 is right on every question
    status = license_status(service, service.latest_suite("qa"))
    assert status.licensed and status.license.id == checked.id and status.calibration_key == f"{CALIBRATION_ID}@1"

    # the review queue publishes the next calibration version: the license on @1 no longer counts
    register_calibration(service, start=24, stop=84)
    assert unchecked_judges(service) == [f"{key} on {CALIBRATION_ID}@2"]
    assert runner.decide_model_version(service, model_key).decision == "no_decision"
    assert f"never checked on calibration dataset {CALIBRATION_ID}@2" in str(service.gate_decision(model_key).reasons)
    license_judges(service)
    assert runner.decide_model_version(service, model_key).decision == "pass"


def test_changing_the_judge_prompt_version_revokes_the_license_until_rechecked(service, server, tmp_path):  # noqa: F811
    register_calibration(service)
    service.register_suite(judged_suite(judge_license=judge_license()))
    license_judges(service)
    first, _ = _evaluated(service, tmp_path, judged_suite(judge_license=judge_license()))
    assert first.decision == "pass"

    prompt = {"id": "qa-correctness-judge", "version": "2", "system": "You grade answers to factual questions strictly.",
              "text": ("Rubric: {rubric}\n\n[QUESTION]\n{question}\n[/QUESTION]\n[REFERENCE]\n{reference}\n[/REFERENCE]\n"
                       "[ANSWER]\n{answer}\n[/ANSWER]\n\n{output_instructions}")}
    changed = {**judge_config(), "prompt": prompt}
    raw = judged_suite(judge_license=judge_license())
    raw["llm"]["judge"] = changed
    raw["metrics"][1]["params"] = {k: v for k, v in JudgeConfig.from_dict(changed).pin().items() if k != "judge_config_hash"}
    service.register_suite(raw)  # qa@2
    service.request_eval("qa-bot@1", "qa", "qa")
    decision = evaluate(service, "qa-bot@1", dagster_run_id="prompt-2")
    new_key = judge_key(JudgeConfig.from_dict(changed))
    assert new_key != judge_key(JudgeConfig.from_dict(judge_config())) and ".qa-correctness-judge@2." in new_key
    assert decision.decision == "no_decision" and f"judge {new_key}: never checked" in str(decision.reasons)

    rechecked = [lic for lic in license_judges(service) if lic.judge_key == new_key]
    assert rechecked and rechecked[0].licensed
    assert runner.decide_model_version(service, "qa-bot@1").decision == "pass"


def test_a_changed_judge_model_reports_drift_against_the_previous_judge_version(service, server):  # noqa: F811
    calibration = register_calibration(service)
    before = compute_license(service, JudgeConfig.from_dict(judge_config()), calibration, _requirement())
    noisy = JudgeConfig.from_dict({**judge_config(), "model": "rule-judge-noisy"})  # flips a verdict with probability 0.2
    after = compute_license(service, noisy, calibration, _requirement())
    drift = after.drift
    assert drift is not None and drift.previous_judge_key == before.judge_key and drift.previous_license_id == before.id
    old, new = pd.Series(_verdicts(service, before.id)), pd.Series(_verdicts(service, after.id))
    assert (old != new).sum() > 0  # the noisy judge does disagree somewhere
    assert drift.n_common == 60
    assert drift.judge_kappa == pytest.approx(cohen_kappa_score(old[new.index], new))
    assert drift.agreement == pytest.approx((old[new.index] == new).mean())
    assert drift.pass_rate_change == pytest.approx((new == "pass").mean() - (old == "pass").mean())
    assert drift.measure_change == pytest.approx(after.estimate - before.estimate)
    assert after.estimate == pytest.approx(cohen_kappa_score(calibration_frame()["human_label"], new[calibration_frame()["example_id"]]))


def _verdicts(platform, license_id: int) -> dict:
    from eval_platform.registry.judge_license_schema import JudgeLicenseRecord

    with platform.registry.session() as session:
        return dict(session.get(JudgeLicenseRecord, license_id).verdicts)


def test_release_blocking_judges_fail_closed_and_exploratory_suites_are_not_blocked(service, server, tmp_path):  # noqa: F811
    # no judge_license stated in a release-blocking suite
    decision, model_key = _evaluated(service, tmp_path, judged_suite())
    assert decision.decision == "no_decision" and "states no llm.judge_license" in str(decision.reasons)
    # a calibration dataset that does not exist: never checked
    raw = judged_suite(judge_license=judge_license("nowhere"))
    service.register_suite(raw)
    status = license_status(service, service.latest_suite("qa"))
    assert not status.licensed and "calibration dataset nowhere has no active version" in status.message
    # an exploratory suite with the same unlicensed judge: reported, never blocked
    explore = {**judged_suite(), "suite_id": "qa-explore", "purpose": "exploratory"}
    service.register_suite(explore)
    service.request_eval(model_key, "qa", "qa-explore")
    evaluate(service, model_key, dagster_run_id="explore")
    run = next(r for r in service.runs(model_key) if r.suite_id == "qa-explore")
    assert BlockerKind.UNLICENSED_JUDGE not in [b.kind for b in runner.gate_blockers(service, run)]


def test_a_license_is_refused_for_a_dataset_that_is_not_a_calibration_set(service, server):  # noqa: F811
    with pytest.raises(InvalidInput) as refused:
        compute_license(service, JudgeConfig.from_dict(judge_config()), service.dataset("qa@1"), LicenseRequirement("qa"))
    assert refused.value.field == "calibration_dataset"
    assert licenses(service) == []


def test_the_migration_creates_the_license_table(service):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from eval_platform.registry.schema import Base

    with service.registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "judge_licenses" in str(d)] == []


def test_suite_config_names_the_field_of_a_bad_judge_license(service):  # noqa: F811
    for bad, field in (({"calibration_dataset": "cal", "measure": "f1"}, "llm.judge_license.measure"),
                       ({"calibration_dataset": "cal", "min_lower_bound": 2}, "llm.judge_license.min_lower_bound"),
                       ({"calibration_dataset": "cal", "confidence": 1.0}, "llm.judge_license.confidence"),
                       ({"measure": "kappa"}, "llm.judge_license.calibration_dataset")):
        with pytest.raises(InvalidInput) as refused:
            service.register_suite(judged_suite(judge_license=bad))
        assert refused.value.field == field


def test_the_license_history_is_append_only_on_each_database(service_on_each_db, server):  # noqa: F811
    from sqlalchemy import text

    platform = service_on_each_db
    calibration = register_calibration(platform)
    checked = compute_license(platform, JudgeConfig.from_dict(judge_config()), calibration, _requirement())
    assert checked.licensed and licenses(platform)[0].to_dict()["calibration_dataset"] == f"{CALIBRATION_ID}@1"
    if platform.registry.engine.dialect.name == "postgresql":  # the trigger of migration 0012 refuses edits
        for statement in ("UPDATE judge_licenses SET licensed = false", "DELETE FROM judge_licenses"):
            with pytest.raises(Exception, match="append-only"), platform.registry.session() as session:
                session.execute(text(statement))
    assert [lic.licensed for lic in licenses(platform)] == [True]


# a contaminated calibration version -------------------------------------------------------------------------------


def test_a_contaminated_calibration_version_takes_the_license_away_until_the_judge_is_checked_on_the_older_one(
        service, server, tmp_path):  # noqa: F811
    from eval_platform.governance.incidents import invalidate_dataset

    register_calibration(service)  # @1: the humans label by the judge's own rule
    service.register_suite(judged_suite(judge_license=judge_license()))
    [on_first] = license_judges(service)
    register_calibration(service, start=24, stop=84)  # @2, the review queue's next round
    [on_second] = license_judges(service)
    assert on_first.licensed and on_second.licensed and on_second.calibration_key == f"{CALIBRATION_ID}@2"
    decision, model_key = _evaluated(service, tmp_path, judged_suite(judge_license=judge_license()))
    assert decision.decision == "pass", decision.reasons
    key = judge_key(JudgeConfig.from_dict(judge_config()))

    impact = invalidate_dataset(service, f"{CALIBRATION_ID}@2", reason="its answers leaked into the judge's prompt", reported_by="ops")
    assert [lic.id for lic in impact.licenses] == [on_second.id] and impact.models == [model_key] and impact.runs == []
    # the gate that passed on the license is decided again, fail closed, naming the contaminated version
    gate = service.gate_decision(model_key)
    assert gate.decision == "no_decision"
    assert (f"judge {key}: license {on_second.id} invalidated (calibration version {CALIBRATION_ID}@2 contaminated: its answers "
            f"leaked into the judge's prompt); not checked again on the newest active calibration version {CALIBRATION_ID}@1") \
        in str(gate.reasons), gate.reasons
    # the license on @1, made before @2 existed, does not count by itself: the judge needs a check after the incident
    assert unchecked_judges(service) == [f"{key} on {CALIBRATION_ID}@1"]
    history = {lic.id: lic for lic in licenses(service)}
    assert history[on_second.id].invalidated and not history[on_first.id].invalidated
    assert history[on_second.id].invalidation.incident_id == impact.incident.id
    assert history[on_second.id].to_dict()["invalidated"] is True and history[on_second.id].licensed  # the figures stay as measured
    status = license_status(service, service.latest_suite("qa"))
    assert not status.licensed and status.calibration_key == f"{CALIBRATION_ID}@1" and status.license is None

    [rechecked] = license_judges(service)
    assert rechecked.calibration_key == f"{CALIBRATION_ID}@1" and rechecked.licensed and rechecked.id > on_second.id
    assert runner.decide_model_version(service, model_key).decision == "pass"
    assert license_status(service, service.latest_suite("qa")).license.id == rechecked.id

    # the last active version contaminated too: the blocker says no version is left
    again = invalidate_dataset(service, f"{CALIBRATION_ID}@1", reason="the same leak", reported_by="ops")
    assert sorted(lic.id for lic in again.licenses) == sorted([on_first.id, rechecked.id])
    gate = service.gate_decision(model_key)
    assert gate.decision == "no_decision"
    assert (f"judge {key}: license {rechecked.id} invalidated (calibration version {CALIBRATION_ID}@1 contaminated: the same leak); "
            f"calibration dataset {CALIBRATION_ID} has no active calibration version left") in str(gate.reasons), gate.reasons
    assert unchecked_judges(service) == []


def test_an_ordinary_dataset_contamination_invalidates_no_license(service, server, tmp_path):  # noqa: F811
    from eval_platform.governance.incidents import invalidate_dataset

    register_calibration(service)
    service.register_suite(judged_suite(judge_license=judge_license()))
    [checked] = license_judges(service)
    impact = invalidate_dataset(service, "qa@1", reason="leaked", reported_by="ops")
    assert impact.licenses == () and [lic.invalidated for lic in licenses(service)] == [False]
    assert license_status(service, service.latest_suite("qa")).license.id == checked.id


def test_license_invalidations_are_append_only_on_each_database(service_on_each_db, server):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import text

    from eval_platform.governance.incidents import invalidate_dataset
    from eval_platform.registry.schema import Base

    platform = service_on_each_db
    checked = compute_license(platform, JudgeConfig.from_dict(judge_config()), register_calibration(platform), _requirement())
    impact = invalidate_dataset(platform, f"{CALIBRATION_ID}@1", reason="leaked", reported_by="ops")
    assert [lic.id for lic in impact.licenses] == [checked.id]
    # a second contamination of the same version is refused: nothing is invalidated twice
    with pytest.raises(Exception, match="already marked contaminated"):
        invalidate_dataset(platform, f"{CALIBRATION_ID}@1", reason="again", reported_by="ops")
    with platform.registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "judge_license_invalidations" in str(d)] == []
    if platform.registry.engine.dialect.name == "postgresql":  # the trigger of migration 0015 refuses edits
        for statement in ("UPDATE judge_license_invalidations SET reason = 'x'", "DELETE FROM judge_license_invalidations"):
            with pytest.raises(Exception, match="append-only"), platform.registry.session() as session:
                session.execute(text(statement))
    [listed] = licenses(platform)
    assert listed.invalidated and listed.invalidation.reason == f"calibration version {CALIBRATION_ID}@1 contaminated: leaked"
