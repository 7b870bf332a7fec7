"""LLM candidates as eval runs: an OpenAI-compatible endpoint (the shipped local server, over real HTTP
with the real openai client) evaluated through the runner and Dagster, cached and budgeted."""

import json
from importlib import resources as package_files

import dagster as dg
import pandas as pd
import pytest

from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.sensors import eval_request_sensor
from tests.dagster_helpers import execute, tick
from tests.evaluation.test_runner import evaluate
from tests.judge_calibration import judge_license, license_judge


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    yield from _service(tmp_path, server, monkeypatch, None)


@pytest.fixture
def service_on_each_db(tmp_path, server, monkeypatch, db_url):
    """The same, on SQLite and on the real PostgreSQL server (JSON records, bulk deletes)."""
    yield from _service(tmp_path, server, monkeypatch, db_url)


def _service(tmp_path, server, monkeypatch, db_url):
    _, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:20]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    platform.register_dataset("qa", frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                              label_policy="human_reviewed", slice_columns=["category"])
    yield platform
    platform.close()


def suite(**llm):
    return {"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation",
            "metrics": ["exact_match@1", "token_f1@1"], "min_slice_size": 1,
            "llm": {"budget": {"candidate": {"max_tokens": 100_000}}, "concurrency": 4, **llm},
            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.8}]}}


def candidate_file(tmp_path, model="kb-qa-v1", prompt_version="1", temperature=0.0):
    spec = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": model, "model_version": "1",
            "prompt": {"id": "qa-short", "version": prompt_version, "text": "Question: {prompt}\nAnswer briefly."},
            "decoding": {"temperature": temperature, "max_tokens": 32}}
    path = tmp_path / f"{model}-{prompt_version}-{temperature}.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_chat_model_is_evaluated_and_a_rerun_makes_no_call(service, server, tmp_path):
    local, _ = server
    service.register_suite(suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    assert evaluate(service, "qa-bot@1").decision == "pass"
    assert local.stats()["completions"] == 20
    run = service.runs("qa-bot@1")[0]
    assert run.lineage["prompt_version"] == "qa-short@1"
    assert run.lineage["candidate_calls"]["calls"] == 20

    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    rerun = service.runs("qa-bot@1")[-1]
    assert rerun.attempt == 2 and rerun.lineage["candidate_calls"]["calls"] == 0
    assert rerun.lineage["candidate_calls"]["cache_hits"] == 20
    assert local.stats()["completions"] == 20  # nothing new was paid for
    assert rerun.results["metrics"] == run.results["metrics"]

    # a new prompt version is a new model version and misses the cache for every example
    service.register_model("qa-bot", candidate_file(tmp_path, prompt_version="2"), kind="openai_chat")
    evaluate(service, "qa-bot@2")
    assert local.stats()["completions"] == 40


def test_over_budget_the_run_fails_and_the_gate_has_no_decision(service, server, tmp_path):
    service.register_suite(suite(budget={"candidate": {"max_tokens": 50}}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat", eval_plan=[("qa", "qa")])
    with dg.instance_for_test() as instance:
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        result = execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags, raise_on_error=False)
    assert not result.success
    run = service.runs("qa-bot@1")[0]
    assert run.status == "failed" and "budget" in run.status_reason
    decision = service.gate_decision("qa-bot@1")
    assert decision.decision == "no_decision" and "budget" in str(decision.reasons)


def judge_config():
    return {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}


def judged_suite(pin=True, **llm):
    from eval_platform.llm.judge import JudgeConfig

    params = {k: v for k, v in JudgeConfig.from_dict(judge_config()).pin().items() if k != "judge_config_hash"} if pin else {}
    raw = suite(judge=judge_config(), judge_samples=3, **llm)
    raw["metrics"] = ["exact_match@1", {"name": "judge", "metric": "judge_score@1", "params": params}]
    raw["gate"]["rules"].append({"metric": "judge", "min": 0.8})
    return raw


def test_a_pinned_judge_scores_each_example_and_is_recorded(service, server, tmp_path):
    local, _ = server
    service.register_suite(judged_suite(judge_license=judge_license()))
    license_judge(service, judge_config())  # a release-blocking judge gates only with a license
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    assert evaluate(service, "qa-bot@1").decision == "pass"
    run = service.runs("qa-bot@1")[0]
    judge = run.results["judge"]
    assert judge["summary"]["n"] == 3 and judge["summary"]["n_scored"] == 20
    assert run.results["metrics"]["judge"] == pytest.approx(judge["summary"]["mean"])
    assert run.lineage["judge"]["model"] == "rule-judge-1" and run.lineage["judge_config_hash"].startswith("sha256:")
    verdicts = service.store.get_table("judge_verdicts", judge["verdicts"])
    assert len(verdicts) == 20 and set(verdicts["judge_model"]) == {"local-kb/rule-judge-1@1"}
    assert local.stats()["completions"] == 20 + 60  # 20 answers, 3 judge samples each

    service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    assert local.stats()["completions"] == 80  # the rerun is served from the cache: zero calls


def test_judge_pins_must_match_and_an_unpinned_judge_blocks(service, tmp_path):
    from eval_platform.core.errors import InvalidInput

    wrong = judged_suite()
    wrong["metrics"][1]["params"]["judge_model"] = "someone-else@9"
    with pytest.raises(InvalidInput, match="judge.params.judge_model"):
        service.register_suite(wrong)
    service.register_suite(judged_suite(pin=False))
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    decision = evaluate(service, "qa-bot@1")
    assert decision.decision == "no_decision" and "judge of judge is not pinned" in str(decision.reasons)


# stratified judge sampling, pairwise judging, the judge pool and retention of judge outputs ---------------


def pin_of(config):
    from eval_platform.llm.judge import JudgeConfig

    return {k: v for k, v in JudgeConfig.from_dict(config).pin().items() if k != "judge_config_hash"}


def register_full_qa(service, dataset_id="qa-all", access=None):
    """All 84 questions of the shipped set (four categories), not only the first 20 capitals."""
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    service.register_dataset(dataset_id, frame[["example_id", "prompt", "reference", "category"]], task_type="generation",
                             label_policy="human_reviewed", access_policy=access, slice_columns=["category"])
    return frame


def sampled_suite(sample, suite_id="qa", rules=None):
    raw = suite(judge=judge_config(), judge_samples=1, judge_sample=sample, judge_license=judge_license())
    raw.update(suite_id=suite_id, slices=["category"], metrics=["exact_match@1", "token_f1@1",
                                                                {"name": "judge", "metric": "judge_score@1", "params": pin_of(judge_config())}])
    raw["gate"]["rules"] = rules or [{"metric": "judge", "min": 0.7}]
    return raw


def pairwise_config(model="rule-judge-1"):
    return {**judge_config(), "model": model, "output": "pairwise"}


def pairwise_suite(model="rule-judge-1", rule=None):
    raw = suite(pairwise_judge=pairwise_config(model))
    raw["metrics"] = ["exact_match@1", {"name": "preference", "metric": "judge_preference@1", "params": pin_of(pairwise_config(model))}]
    raw["gate"]["rules"] = [rule or {"metric": "preference", "non_inferiority": 0.05}]
    return raw


def test_judge_sampling_and_pairwise_config_errors_name_the_field(service):
    from eval_platform.core.errors import InvalidInput
    from eval_platform.suites.definition import parse_suite

    def refused(raw, field):
        with pytest.raises(InvalidInput) as error:
            parse_suite(raw)
        assert error.value.field == field, error.value

    no_judge = suite(judge_sample={"size": 10})
    refused(no_judge, "llm.judge_sample")
    refused(sampled_suite({"size": 0}), "llm.judge_sample.size")
    refused(sampled_suite({"size": 10, "sedd": 1}), "llm.judge_sample")
    refused(sampled_suite({"size": 10, "seed": -1}), "llm.judge_sample.seed")
    refused(sampled_suite({"size": 10, "strata": {"metric": "bleu"}}), "llm.judge_sample.strata.metric")
    refused(sampled_suite({"size": 10, "strata": {"metric": "judge"}}), "llm.judge_sample.strata.metric")  # not cheaper
    refused(sampled_suite({"size": 10, "strata": {"metric": "token_f1", "bins": [0.8, 0.2]}}), "llm.judge_sample.strata.bins")
    refused(sampled_suite({"size": 10, "strata": {"column": ""}}), "llm.judge_sample.strata.column")
    refused(sampled_suite({"size": 10, "strata": {"column": "a", "metric": "token_f1"}}), "llm.judge_sample.strata")
    refused(sampled_suite({"size": 10, "confidence": 1.0}), "llm.judge_sample.confidence")

    refused(suite(pairwise_judge=judge_config()), "llm.pairwise_judge.output")  # a score judge is not pairwise
    refused(suite(judge=pairwise_config()), "llm.judge.output")
    refused(suite(pairwise_judge={**pairwise_config(), "model_version": ""}), "llm.pairwise_judge.model_version")
    missing = pairwise_suite()
    del missing["llm"]["pairwise_judge"]
    refused(missing, "llm.pairwise_judge")
    wrong_pin = pairwise_suite()
    wrong_pin["metrics"][1]["params"]["judge_model"] = "local-kb/rule-judge-noisy@1"
    refused(wrong_pin, "preference.params.judge_model")

    parsed = parse_suite(sampled_suite({"size": 10, "strata": {"metric": "token_f1", "bins": 3}, "seed": 4}))
    assert parsed.llm["judge_sample"] == {"size": 10, "strata": {"metric": "token_f1", "bins": 3}, "seed": 4,
                                          "min_per_stratum": 2, "confidence": 0.95}
    with pytest.raises(InvalidInput, match="llm.judge_sample.strata.column"):  # known only once the dataset is
        service.register_suite(sampled_suite({"size": 10, "strata": {"column": "topic"}}))
        service.register_model("qa-bot", candidate_file(service.config.home), kind="openai_chat", eval_plan=[("qa", "qa")])
        evaluate(service, "qa-bot@1")


def test_a_suite_judges_a_stratified_sample_and_gates_on_the_estimate(service_on_each_db, server, tmp_path):
    service = service_on_each_db
    from eval_platform.llm.cache import MemoryCache
    from eval_platform.llm.generate import judge_predictions
    from eval_platform.llm.judge import JudgeConfig

    local, _ = server
    frame = register_full_qa(service)
    service.register_suite(sampled_suite({"size": 24, "strata": {"column": "category"}, "seed": 7}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat", eval_plan=[("qa-all", "qa")])
    license_judge(service, judge_config())  # a release-blocking judge gates only with a license
    local.reset_stats()
    decision = evaluate(service, "qa-bot@1")
    calls = local.stats()["completions_by_model"]
    assert calls == {"kb-qa-v2": 84, "rule-judge-1": 24}  # the judge saw the sample only

    run = service.runs("qa-bot@1")[0]
    sampling = run.results["judge"]["sampling"]
    assert sampling["strata"] == {"column": "category"} and sampling["seed"] == 7 and sampling["n_sampled"] == 24
    assert sampling["population"] == frame["category"].value_counts().to_dict()
    assert sum(sampling["sampled"].values()) == 24 and min(sampling["sampled"].values()) >= 2

    # the reported value is sum_h N_h/N * mean_h over the stored verdicts, recomputed here by hand
    verdicts = service.store.get_table("judge_verdicts", run.results["judge"]["verdicts"])
    strata = verdicts["example_id"].map(frame.set_index("example_id")["category"])
    by_hand = sum(sampling["population"][h] / 84 * verdicts.loc[strata == h, "score"].mean() for h in sampling["population"])
    estimate = run.results["estimates"]["judge"]
    assert run.results["metrics"]["judge"] == pytest.approx(by_hand) == pytest.approx(estimate["mean"])
    assert estimate["ci_low"] < estimate["mean"] < estimate["ci_high"] and estimate["n_sampled"] == 24
    assert estimate["strata"] == {"column": "category"} and estimate["seed"] == 7 and estimate["label_efficiency"] > 0
    assert run.results["n_examples"]["judge"] == 24  # what the estimate rests on, not the 84 rows
    table = service.store.get_table("metric_tables", run.metrics_hash)
    capital = table[(table["metric"] == "judge") & (table["slice_value"] == "capital")].iloc[0]
    assert capital["n_examples"] == sampling["sampled"]["capital"]
    # the population mean (every example judged) lies inside the interval
    full = judge_predictions(service.store.get_table("predictions", run.predictions_hash).merge(frame, on="example_id"),
                             JudgeConfig.from_dict(judge_config()), MemoryCache())
    assert estimate["ci_low"] <= full.summary["mean"] <= estimate["ci_high"]

    reason = next(r for r in decision.reasons[0]["reasons"] if r["metric"] == "judge")
    assert reason["observed"] == pytest.approx(estimate["mean"]) and reason["estimate_interval"] == [estimate["ci_low"], estimate["ci_high"]]
    assert decision.decision == ("pass" if estimate["mean"] >= 0.7 else "fail")

    # the same seed draws the same sample: a recompute makes no call at all
    calls = local.stats()["completions_by_model"]
    service.request_eval("qa-bot@1", "qa-all", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="again")
    assert local.stats()["completions_by_model"] == calls
    assert service.runs("qa-bot@1")[-1].results["estimates"]["judge"]["mean"] == estimate["mean"]


def test_strata_from_a_cheaper_metric_and_an_undefined_interval_fails_closed(service, server, tmp_path):
    register_full_qa(service)
    # one example per stratum allowed: a stratum judged once has an unknown variance
    service.register_suite(sampled_suite({"size": 3, "strata": {"metric": "exact_match", "bins": [0.5]}, "min_per_stratum": 1}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat", eval_plan=[("qa-all", "qa")])
    decision = evaluate(service, "qa-bot@1")
    run = service.runs("qa-bot@1")[0]
    sampling = run.results["judge"]["sampling"]
    assert set(sampling["population"]) == {"<0.5", ">=0.5"}  # wrong and right answers by exact match
    assert sampling["population"]["<0.5"] == round((1 - run.results["metrics"]["exact_match"]) * 84)
    assert sampling["sampled"]["<0.5"] == 1 and run.results["estimates"]["judge"]["ci_low"] is None
    assert sampling["label_efficiency"]["label_efficiency"] is None
    assert decision.decision == "no_decision"
    assert "without a defined confidence interval" in str(decision.reasons)

    # with two per stratum the interval is defined and the gate decides on the estimate
    service.register_suite(sampled_suite({"size": 12, "strata": {"metric": "exact_match"}}, suite_id="qa2"))
    service.request_eval("qa-bot@1", "qa-all", "qa2")
    evaluate(service, "qa-bot@1", dagster_run_id="qa2")
    second = [r for r in service.runs("qa-bot@1") if r.suite_id == "qa2"][0]
    estimate = second.results["estimates"]["judge"]
    assert estimate["ci_low"] is not None and service.gate_decision("qa-bot@1") is not None
    reasons = [r for d in service.gate_decision("qa-bot@1").reasons for r in d["reasons"] if r.get("metric") == "judge"]
    assert any(r["outcome"] in ("pass", "fail") for r in reasons)


def test_pairwise_judging_against_the_baseline_gates_on_the_preference(service_on_each_db, server, tmp_path):
    service = service_on_each_db
    local, _ = server
    service.register_suite(pairwise_suite())
    service.register_model("base-bot", candidate_file(tmp_path, model="kb-qa-v1"), kind="openai_chat", eval_plan=[("qa", "qa")])
    first = evaluate(service, "base-bot@1")
    # no baseline: the pairwise metric does not exist, and the gate fails closed
    assert first.decision == "no_decision" and "only defined against a baseline; baseline is none" in str(first.reasons)

    service.register_model("cand-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat")
    service.request_eval("cand-bot@1", "qa", "qa", baseline="base-bot@1")
    local.reset_stats()
    decision = evaluate(service, "cand-bot@1")
    run = service.runs("cand-bot@1")[0]
    record = run.comparison["pairwise"]["preference"]
    candidate = service.store.get_table("predictions", run.predictions_hash).set_index("example_id")["prediction"]
    baseline = service.store.get_table("predictions", service.run(record["baseline_run_id"]).predictions_hash).set_index("example_id")["prediction"]
    differ = int((candidate != baseline.reindex(candidate.index)).sum())
    assert differ > 0
    # identical answers make one call (both orders are the same prompt), differing ones two
    assert local.stats()["completions_by_model"]["rule-judge-1"] == (20 - differ) + 2 * differ
    # kb-qa-v2's mistakes lose to kb-qa-v1's right answers; everything else is a tie
    assert record["losses"] == differ and record["wins"] == 0 and record["ties"] == 20 - differ
    assert record["preference"] == pytest.approx((20 - differ) * 0.5 / 20)
    assert record["ci_low"] < record["preference"] < record["ci_high"]
    assert record["first_position_rate"] == 0.5 and record["order_disagreements"] == [] and record["n_judge_errors"] == 0
    assert run.comparison["metrics"]["preference"]["delta"] == pytest.approx(record["preference"] - 0.5)
    reason = decision.reasons[0]["reasons"][0]
    assert reason["metric"] == "preference" and reason["observed"] == pytest.approx(record["preference"])
    assert decision.decision == "fail"  # the whole interval of preference - 0.5 is not above -0.05

    # verdicts are stored and named; rejudging is free
    verdicts = service.store.get_table("judge_verdicts", record["verdicts"])
    assert len(verdicts) == 20 and set(verdicts["judge_model"]) == {"local-kb/rule-judge-1@1"}
    # the judgments step (Dagster's pool "judge") judges pairwise when the baseline's run is known, and
    # the comparison uses its record; a rerun is served from the cache
    from eval_platform.evaluation import judging, predicting, runner

    again = service.request_eval("cand-bot@1", "qa", "qa", baseline="base-bot@1", recompute=True)
    before = local.stats()["completions"]
    [claimed] = service.claim_runs("cand-bot@1", "again", requested=True)
    predicting.produce_predictions(service, claimed)
    step = judging.judge_outputs(service, claimed)
    assert step.pairwise_state == "ok" and step.pairwise.to_record()["report"]["calls"] == 0
    assert step.pairwise.to_record()["verdicts"] == record["verdicts"]
    runner.compute_metrics(service, claimed)
    runner.compare_with_baseline(service, claimed)
    assert local.stats()["completions"] == before
    assert service.run(again.run_id).comparison["pairwise"]["preference"] == step.pairwise.to_record()


def test_pairwise_position_bias_cancels_and_unparsable_replies_are_judge_errors(service, server, tmp_path):
    service.register_suite(pairwise_suite("rule-judge-biased"))
    service.register_model("base-bot", candidate_file(tmp_path, model="kb-qa-v1"), kind="openai_chat", eval_plan=[("qa", "qa")])
    evaluate(service, "base-bot@1")
    # the same answers under another prompt version: every verdict is a tie the biased judge gives to the first shown
    service.register_model("cand-bot", candidate_file(tmp_path, model="kb-qa-v1", prompt_version="2"), kind="openai_chat")
    service.request_eval("cand-bot@1", "qa", "qa", baseline="base-bot@1")
    decision = evaluate(service, "cand-bot@1")
    record = service.runs("cand-bot@1")[0].comparison["pairwise"]["preference"]
    assert record["first_position_rate"] == 1.0 and len(record["order_disagreements"]) == 20
    assert record["preference"] == 0.5 and record["ties"] == 20  # both orders cancel the bias out
    assert decision.decision == "pass"

    service.register_suite(pairwise_suite("rule-judge-flaky"))  # answers prose instead of JSON 30% of the time
    service.request_eval("base-bot@1", "qa", "qa")
    evaluate(service, "base-bot@1", dagster_run_id="flaky-base")
    service.request_eval("cand-bot@1", "qa", "qa", baseline="base-bot@1")
    decision = evaluate(service, "cand-bot@1", dagster_run_id="flaky")
    run = [r for r in service.runs("cand-bot@1") if r.status == "succeeded"][-1]
    record = run.comparison["pairwise"]["preference"]
    assert record["n_judge_errors"] > 0 and record["preference"] is None
    assert all("unparsable judge reply" in str(e["errors"]) for e in record["judge_errors"])
    assert decision.decision == "no_decision" and "missing or undefined" in str(decision.reasons)


def test_the_judgments_asset_runs_judge_calls_in_its_own_step(service, server, tmp_path):
    local, _ = server
    service.register_suite(judged_suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa")])
    with dg.instance_for_test() as instance:
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        local.reset_stats()
        result = execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags)
        assert result.success
        step = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("judgments")][0]
        metadata = step.materialization.metadata
        assert metadata["judge_calls"].value == 60 and metadata["judge_cache_hits"].value == 0
        assert local.stats()["completions_by_model"]["rule-judge-1"] == 60
        # the metric table used the judge step's verdicts: no second judging
        run = service.runs("qa-bot@1")[0]
        assert run.results["judge"]["verdicts"] in str(metadata["verdict_artifacts"].value)
        assert run.results["metrics"]["judge"] == pytest.approx(run.results["judge"]["summary"]["mean"])

        service.request_eval("qa-bot@1", "qa", "qa", recompute=True)
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        again = execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags)
        step = [e for e in again.get_asset_materialization_events() if e.asset_key == dg.AssetKey("judgments")][0]
        assert step.materialization.metadata["judge_calls"].value == 0
        assert step.materialization.metadata["judge_cache_hits"].value == 60


def test_retention_purges_judge_verdicts_and_llm_calls_and_the_run_can_be_recomputed(service_on_each_db, server, tmp_path):
    service = service_on_each_db
    from datetime import timedelta

    from sqlalchemy import func, select

    from eval_platform.governance import retention
    from eval_platform.registry.api_schema import PurgeLogEntry
    from eval_platform.registry.llm_schema import LLMCallRecord
    from eval_platform.registry.schema import utcnow

    local, _ = server
    register_full_qa(service, "qa-secret", access={"level": "restricted", "teams": ["qa"]})
    service.register_suite(judged_suite())
    service.register_model("qa-bot", candidate_file(tmp_path), kind="openai_chat", eval_plan=[("qa", "qa"), ("qa-secret", "qa")])
    local.reset_stats()
    evaluate(service, "qa-bot@1")
    secret, internal = (next(r for r in service.runs("qa-bot@1") if r.dataset_id == d) for d in ("qa-secret", "qa"))
    verdicts, results, lineage, metrics_hash = secret.results["judge"]["verdicts"], secret.results, secret.lineage, secret.metrics_hash

    def llm_rows(dataset=None):
        with service.registry.session() as session:
            query = select(func.count()).select_from(LLMCallRecord)
            return session.scalar(query.where(LLMCallRecord.dataset == dataset) if dataset else query)

    # the 20 questions of qa are among qa-secret's 84: their calls were made once, for whichever came first
    assert llm_rows() == 84 + 84 * 3
    assert not retention.purge_expired(service, now=utcnow() + timedelta(days=29)).purged
    dry = retention.purge_expired(service, now=utcnow() + timedelta(days=31), dry_run=True)
    assert dry.judgments_purged == [secret.run_id] and service.store.has_table("judge_verdicts", verdicts)

    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    kinds = {(a.kind, tuple(a.run_ids)) for a in report.purged}
    assert kinds == {("predictions", (secret.run_id,)), ("judge_verdicts", (secret.run_id,))}
    assert not service.store.has_table("judge_verdicts", verdicts) and not service.store.has_table("predictions", secret.predictions_hash)
    assert service.store.has_table("judge_verdicts", internal.results["judge"]["verdicts"])  # internal: a year
    # every call behind the restricted run's answers and verdicts is gone, shared ones included (strictest wins)
    assert report.llm_calls_deleted == 84 + 84 * 3 and llm_rows() == 0
    with service.registry.session() as session:
        log = {e.kind: e for e in session.scalars(select(PurgeLogEntry))}
    assert log["judge_verdicts"].artifact_hash == verdicts and log["judge_verdicts"].run_ids == [secret.run_id]
    assert len(log["judge_verdicts"].cache_keys) == 84 * 3 and log["judge_verdicts"].store_deleted
    after = service.run(secret.run_id)
    assert after.results == results and after.lineage == lineage and after.metrics_hash == metrics_hash
    assert service.store.has_table("metric_tables", metrics_hash)

    # recomputed from its lineage: the calls are made again and give the same numbers
    before = local.stats()["completions"]
    again = service.request_eval("qa-bot@1", "qa-secret", "qa", recompute=True)
    evaluate(service, "qa-bot@1", dagster_run_id="recompute")
    recomputed = service.run(again.run_id)
    assert recomputed.status == "succeeded" and recomputed.results["metrics"] == results["metrics"]
    assert local.stats()["completions"] - before == 84 + 84 * 3
    assert recomputed.results["judge"]["verdicts"] == verdicts and service.store.has_table("judge_verdicts", verdicts)


def test_orphan_llm_calls_past_retention_are_purged(service, server, tmp_path):
    """Calls of a run that stopped before writing anything that names them still expire with their dataset."""
    from datetime import timedelta

    from eval_platform.governance import retention
    from eval_platform.llm.cache import LLMCache
    from eval_platform.registry.schema import utcnow

    register_full_qa(service, "qa-secret", access={"level": "restricted", "teams": ["qa"]})
    service.register_suite(suite(budget={"candidate": {"max_tokens": 100_000}}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-v2"), kind="openai_chat", eval_plan=[("qa-secret", "qa")])
    evaluate(service, "qa-bot@1")
    run = service.runs("qa-bot@1")[0]
    service.update_run(run.run_id, predictions_hash=None)  # as if the run had died before recording its predictions
    cache = LLMCache.from_platform(service)
    assert cache.count("candidate") == 84
    report = retention.purge_expired(service, now=utcnow() + timedelta(days=31))
    assert not report.purged and report.llm_calls_deleted == 84 and cache.count() == 0
    entry = retention.purge_log(service)[0]
    assert entry.kind == "llm_calls" and len(entry.cache_keys) == 84 and entry.store_deleted


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("down", ["judge", "candidate"])
def test_a_run_whose_every_judge_or_candidate_call_failed_is_a_failed_run_with_the_cause(service, server, tmp_path, monkeypatch, down):
    """The judge's (or the candidate's) endpoint is down (nothing listens on its port): the run fails, its
    reason names the phase and the refused connection, and the gate has no decision. Before, a run whose
    every judge call failed was recorded ``succeeded`` with 20 judge errors."""
    from eval_platform.llm import client
    from eval_platform.llm.client import circuit_breaker

    monkeypatch.setattr(client, "_breakers", {})  # the dead URL's open breaker is this test's only
    port = _closed_port()
    dead = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("EVAL_DEAD_URL", dead)
    # the operator lets model and judge files name the dead endpoint's variable (installation.yaml in the home)
    from eval_platform.core.installation import installation_config, reset_installation_config

    (service.config.home / "installation.yaml").write_text("llm:\n  expandable_env: [EVAL_LLM_BASE_URL, EVAL_DEAD_URL]\n")
    reset_installation_config()
    monkeypatch.setattr(service, "installation", installation_config(service.config.home))
    raw = judged_suite()
    if down == "judge":
        raw["llm"]["judge"]["endpoint"]["base_url"] = "${EVAL_DEAD_URL}"  # same endpoint name: the pin is unchanged
        service.register_suite(raw)
        path = candidate_file(tmp_path)
    else:
        service.register_suite(raw)
        spec = json.loads(candidate_file(tmp_path).read_text())
        spec["endpoint"]["base_url"] = "${EVAL_DEAD_URL}"
        path = tmp_path / "dead-candidate.json"
        path.write_text(json.dumps(spec))
    service.register_model("qa-bot", path, kind="openai_chat", eval_plan=[("qa", "qa")])
    with dg.instance_for_test() as instance:
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        result = execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags, raise_on_error=False)
    assert not result.success
    run = service.runs("qa-bot@1")[0]
    calls = 20 * 3 if down == "judge" else 20
    assert run.status == "failed"
    assert run.status_reason.startswith(f"LLMCallsFailed: every {down} call to endpoint local-kb failed ({calls} of {calls}): "
                                        f"connection to {dead} failed: ")
    assert "Connection refused" in run.status_reason and "circuit breaker opened" in run.status_reason
    # the endpoint got the breaker's threshold and the calls in flight, not 6 attempts per call
    assert circuit_breaker(dead).snapshot()["consecutive_failures"] <= 10 + 4
    decision = service.gate_decision("qa-bot@1")
    assert decision.decision == "no_decision" and "LLMCallsFailed" in str(decision.reasons)
