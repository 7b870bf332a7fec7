"""Cost before recompute: ``evalp recompute --affected-by X --dry-run`` estimates the LLM calls a recompute makes
(cache misses), and a recompute over budget needs an admin's confirmation.

The LLM is the project's local OpenAI-compatible server over real HTTP with the real ``openai`` client; the
recompute runs through the runner's steps as the other LLM tests do, and the calls are counted at the server."""

import json
from importlib import resources as package_files
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from eval_platform.api.app import create_app
from eval_platform.cli.main import main
from eval_platform.core.errors import InvalidInput
from eval_platform.governance import incidents
from eval_platform.governance.incidents import recompute_within_budget
from eval_platform.governance.recompute_cost import OverBudget, PlannedRun, estimate_for, estimate_recompute
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.base import MetricDefinition
from eval_platform.metrics.catalog import all_metrics, register_metric
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import DagsterRequest
from eval_platform.registry.access import Forbidden, Principal, create_token
from eval_platform.registry.api_schema import AccessLogEntry
from eval_platform.registry.llm_schema import LLMCallRecord
from eval_platform.registry.schema import Base
from tests.evaluation.test_runner import evaluate


def _register_toy_answer_length():
    """A generation metric version with a bug (lengths off by one) and its fix."""
    known = {m.key for m in all_metrics()}
    for version, shift in ((1, 1.0), (2, 0.0)):
        metric = MetricDefinition("toy_answer_length", version, "higher", frozenset({"generation"}), ("prediction",),
                                  lambda c, shift=shift: float(pd.Series(c["prediction"]).str.len().mean()) + shift)
        if metric.key not in known:
            register_metric(metric)


_register_toy_answer_length()

PRICES = {"default": {"input_per_1k": 1.0, "output_per_1k": 2.0}}
CANDIDATE_MAX_TOKENS, JUDGE_MAX_TOKENS = 32, 200  # the candidate file's max_tokens; the judge's default decoding


def _qa_rows() -> pd.DataFrame:
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference", "category"]]


@pytest.fixture
def evaluated(request, tmp_path, server, monkeypatch):
    """qa@1 (20 questions) evaluated once by an LLM candidate with a pinned judge (2 samples per answer);
    ``request.param``: the dataset's access policy (default none)."""
    policy = getattr(request, "param", None)
    local, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    monkeypatch.delenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", raising=False)
    platform = EvalPlatform.open(tmp_path / "home")
    rows = _qa_rows()
    platform.register_dataset("qa", rows.iloc[:20], task_type="generation", label_policy="human_reviewed", access_policy=policy)
    judge = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}
    pin = {k: v for k, v in JudgeConfig.from_dict(judge).pin().items() if k != "judge_config_hash"}
    platform.register_suite({"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation",
                             "metrics": ["exact_match@1", {"name": "judge", "metric": "judge_score@1", "params": pin}],
                             "min_slice_size": 1,
                             "llm": {"judge": judge, "judge_samples": 2, "prices": PRICES, "concurrency": 4,
                                     "budget": {"candidate": {"max_tokens": 100_000}}},
                             "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.5}]}})
    spec = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "kb-qa-v1", "model_version": "1",
            "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\nAnswer briefly."},
            "decoding": {"temperature": 0.0, "max_tokens": CANDIDATE_MAX_TOKENS}}
    path = tmp_path / "qa-bot.json"
    path.write_text(json.dumps(spec))
    platform.register_model("qa-bot", path, kind="openai_chat", eval_plan=[("qa", "qa")])
    local.reset_stats()
    evaluate(platform, "qa-bot@1")
    assert local.stats()["completions"] == 20 + 40
    yield platform, local, rows
    platform.close()


def _row_counts(platform) -> dict[str, int]:
    with platform.registry.engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables}


def _contaminate_and_forget_judge_calls(platform, rows, forget: int = 3) -> list:
    """qa@2 keeps 15 of qa@1's questions and adds 5 new ones; qa@1 is contaminated; the judge's cached
    calls of the first ``forget`` questions are deleted (their keys read from the run's stored verdicts)."""
    run = platform.runs("qa-bot@1")[0]
    verdicts = platform.store.get_table("judge_verdicts", run.results["judge"]["verdicts"]).set_index("example_id")
    forgotten = [s["cache_key"] for example in rows["example_id"].iloc[:forget] for s in json.loads(verdicts.loc[example, "samples"])]
    assert len(forgotten) == 2 * forget
    with platform.registry.session() as session:
        session.execute(delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(forgotten)))
    platform.register_dataset("qa", pd.concat([rows.iloc[:15], rows.iloc[20:25]]), task_type="generation",
                              label_policy="human_reviewed", access_policy=platform.dataset("qa@1").access_policy)
    incidents.invalidate_dataset(platform, "qa@1", reason="leaked into training", reported_by="alice")
    return forgotten


def test_the_dry_run_estimates_exactly_the_calls_the_recompute_then_makes(evaluated, capsys):
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    before = _row_counts(platform)

    estimate = estimate_for(platform, "qa@1")
    # candidate: 15 answers cached, 5 new questions; judge: 2 samples of 20 answers, of which the 5 new
    # questions' (answers not cached yet) and the 3 forgotten questions' are misses
    [run] = estimate.runs
    assert (run.run.dataset_key, run.run.model_key, run.run.suite_key) == ("qa@2", "qa-bot@1", "qa@1")
    by_phase = {m.phase: m for m in estimate.by_model}
    assert (by_phase["candidate"].calls, by_phase["candidate"].cache_hits, by_phase["candidate"].misses) == (20, 15, 5)
    assert (by_phase["judge"].calls, by_phase["judge"].cache_hits, by_phase["judge"].misses) == (40, 24, 16)
    assert (estimate.calls, estimate.misses, estimate.unknown_answers) == (60, 21, 10)
    # worst case priced as the budget prices it: max_tokens per miss, at 1 per 1k in and 2 per 1k out
    assert by_phase["candidate"].max_completion_tokens == 5 * CANDIDATE_MAX_TOKENS
    assert by_phase["judge"].max_completion_tokens == 16 * JUDGE_MAX_TOKENS
    prompt = sum(m.prompt_tokens for m in estimate.by_model)
    completion = 5 * CANDIDATE_MAX_TOKENS + 16 * JUDGE_MAX_TOKENS
    assert estimate.cost == pytest.approx(prompt / 1000 * 1.0 + completion / 1000 * 2.0)
    assert estimate.over_budget == ()

    # the command line's table and JSON say the same, and nothing was written by either
    assert main(["--home", str(platform.config.home), "recompute", "--affected-by", "qa@1", "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "qa-bot@1" in table and "qa@2" in table and "dry run: nothing was queued" in table
    total = next(line for line in table.splitlines() if line.startswith("TOTAL")).split()
    assert total[1:4] == ["60", "39", "21"]
    assert main(["--home", str(platform.config.home), "recompute", "--affected-by", "qa@1", "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["misses"] == 21 and data["runs"][0]["dataset"] == "qa@2" and data["exact"] is False
    assert _row_counts(platform) == before
    assert platform.run(run.run.affected_run_id).status == "invalid"  # no incident state changed

    # the recompute then makes exactly the estimated calls, counted at the server
    local.reset_stats()
    queued, request, _ = recompute_within_budget(platform, "qa@1", requested_by="alice")
    assert request is not None and [r.dataset_key for r in queued] == ["qa@2"]
    evaluate(platform, "qa-bot@1", dagster_run_id="recompute")
    stats = local.stats()
    assert stats["requests"] == stats["completions"] == estimate.misses == 21
    assert stats["completions_by_model"] == {"kb-qa-v1": 5, "rule-judge-1": 16}
    # the worst case bounds what the server counted (the same tokenizer: prompts of known calls are exact)
    assert stats["prompt_tokens"] <= prompt + 10 * CANDIDATE_MAX_TOKENS
    # after it, everything is cached: a second dry run of the same target would pay nothing
    assert estimate_recompute_misses(platform) == 0


def estimate_recompute_misses(platform) -> int:
    run = platform.runs("qa-bot@1")[-1]
    planned = PlannedRun(run.run_id, run.model_key, run.dataset_key, run.suite_key, dict(platform.suite(run.suite_key).metric_defs), None)
    return estimate_recompute(platform, "qa@1", plan=[planned]).misses


def test_an_exactly_keyed_estimate_when_every_answer_is_cached(evaluated):
    """Judge calls forgotten on an unchanged dataset: every key is known, so the estimate is exact (no upper bound)."""
    platform, local, rows = evaluated
    run = platform.runs("qa-bot@1")[0]
    verdicts = platform.store.get_table("judge_verdicts", run.results["judge"]["verdicts"])
    keys = [s["cache_key"] for samples in verdicts["samples"].iloc[:7] for s in json.loads(samples)]
    with platform.registry.session() as session:
        session.execute(delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(keys)))
    # a clean version with the very same rows: every candidate answer is cached
    platform.register_dataset("qa", rows.iloc[:20].iloc[::-1].reset_index(drop=True), task_type="generation",
                              label_policy="human_reviewed")
    incidents.invalidate_dataset(platform, "qa@1", reason="mislabelled", reported_by="alice")
    estimate = estimate_for(platform, "qa@1")
    assert (estimate.misses, estimate.unknown_answers, estimate.to_dict()["exact"]) == (14, 0, True)
    local.reset_stats()
    recompute_within_budget(platform, "qa@1", requested_by="alice")
    evaluate(platform, "qa-bot@1", dagster_run_id="recompute")
    assert local.stats()["completions_by_model"] == {"rule-judge-1": 14}


def test_over_budget_needs_an_admins_confirmation(evaluated, monkeypatch, capsys):
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "0.01")
    estimate = estimate_for(platform, "qa@1")
    assert estimate.cost > 0.01 and [b.budget for b in estimate.over_budget] == ["EVAL_PLATFORM_RECOMPUTE_MAX_COST"]
    before = _row_counts(platform)

    member = Principal(team="alpha", name="bob", roles=("member",))
    with pytest.raises(Forbidden, match="admin"):
        recompute_within_budget(platform, "qa@1", requested_by="bob", principal=member, confirm_over_budget=True)
    admin = Principal(team="ops", name="root", roles=("admin",))
    with pytest.raises(OverBudget) as refused:
        recompute_within_budget(platform, "qa@1", requested_by="root", principal=admin)
    assert refused.value.field == "confirm_over_budget"
    assert "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in str(refused.value) and f"{estimate.cost:.6g}" in str(refused.value)
    # refused: nothing queued, no run superseded; only the refusals are in the access log
    after = _row_counts(platform)
    assert {k: v for k, v in after.items() if k != "access_log"} == {k: v for k, v in before.items() if k != "access_log"}
    assert after["access_log"] == before["access_log"] + 2

    # the command line (the local operator) is refused the same way without the flag
    assert main(["--home", str(platform.config.home), "recompute", "--affected-by", "qa@1"]) != 0
    assert "confirm" in capsys.readouterr().err

    queued, request, _ = recompute_within_budget(platform, "qa@1", requested_by="root", principal=admin, confirm_over_budget=True)
    assert [r.dataset_key for r in queued] == ["qa@2"]
    with platform.registry.session() as session:
        assert "confirmed by ops:root" in session.get_one(DagsterRequest, request.id).reason
        entry = session.scalars(select(AccessLogEntry).where(AccessLogEntry.action == "recompute_over_budget",
                                                             AccessLogEntry.outcome == "granted")).one()
        assert entry.team == "ops" and "confirmed by ops:root" in entry.detail and "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in entry.detail


def test_a_suites_budget_counts_every_run_the_recompute_pays_for(evaluated):
    """The suite's budget is per run; a recompute of many runs of it is over when their sum is."""
    platform, _, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    estimate = estimate_for(platform, "qa@1")
    per_run = estimate.runs[0].tokens["judge"]
    suite = platform.suite("qa@1")
    definition = dict(suite.metric_defs)
    definition["llm"] = {**definition["llm"], "budget": {"judge": {"max_tokens": per_run - 1}}}
    planned = estimate.runs[0].run
    over = estimate_recompute(platform, "qa@1", plan=[type(planned)(planned.affected_run_id, planned.model_key,
                                                                   planned.dataset_key, planned.suite_key, definition, None)])
    assert [b.budget for b in over.over_budget] == ["suite qa@1 budget.judge.max_tokens"]
    assert over.over_budget[0].estimate == per_run and over.over_budget[0].limit == per_run - 1


def test_a_target_that_is_no_incident_is_refused_naming_the_field(evaluated):
    platform, _, _ = evaluated
    for target in ("qa@1", "nothing@3", "exact_match@1"):
        with pytest.raises(InvalidInput) as refused:
            estimate_for(platform, target)
        assert refused.value.field == "affected_by"


@pytest.mark.parametrize("evaluated", [{"level": "restricted", "teams": ["alpha"]}], indirect=True)
def test_through_the_api_same_rules_and_another_teams_target_is_no_target(evaluated, monkeypatch):
    platform, local, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    alpha_admin = create_token(platform, "alpha", principal="root", roles=("admin",))
    alpha_member = create_token(platform, "alpha", principal="bob", roles=("member",))
    ops_admin = create_token(platform, "ops", principal="root", roles=("admin",))

    def post(token, path, body):
        return api.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

    with TestClient(create_app(platform)) as api:
        before = _row_counts(platform)
        estimate = post(alpha_admin, "/v1/recompute/estimate", {"affectedBy": "qa@1"})
        assert estimate.status_code == 200, estimate.text
        body = estimate.json()
        assert (body["calls"], body["cacheHits"], body["misses"], body["exact"]) == (60, 39, 21, False)
        assert body["runs"][0]["dataset"] == "qa@2" and body["overBudget"] == []
        assert _row_counts(platform) == before  # the dry run writes nothing

        assert post(alpha_member, "/v1/recompute/estimate", {"affectedBy": "qa@1"}).status_code == 403  # admins only
        # another team's admin may know nothing of qa: its estimate and its recompute answer as for no target at all
        hidden = post(ops_admin, "/v1/recompute/estimate", {"affectedBy": "qa@1"})
        absent = post(ops_admin, "/v1/recompute/estimate", {"affectedBy": "qb@1"})
        assert hidden.status_code == absent.status_code == 422
        assert hidden.json()["field"] == absent.json()["field"] == "affectedBy"
        assert hidden.json()["detail"].replace("qa@1", "X") == absent.json()["detail"].replace("qb@1", "X")
        refused = post(ops_admin, "/v1/recompute", {"affectedBy": "qa@1"})
        assert refused.status_code == 422 and refused.json()["field"] == "affectedBy"

        monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "0.01")
        over = post(alpha_admin, "/v1/recompute", {"affectedBy": "qa@1"})
        assert over.status_code == 422 and over.json()["field"] == "confirmOverBudget"
        assert "EVAL_PLATFORM_RECOMPUTE_MAX_COST" in over.json()["detail"]
        assert platform.run(platform.runs("qa-bot@1")[0].run_id).status == "invalid"  # nothing queued
        confirmed = post(alpha_admin, "/v1/recompute", {"affectedBy": "qa@1", "confirmOverBudget": True})
        assert confirmed.status_code == 202 and confirmed.json()["partitions"] == ["qa@2|qa-bot@1"]
    local.reset_stats()
    evaluate(platform, "qa-bot@1", dagster_run_id="recompute")
    assert local.stats()["completions"] == body["misses"]


def test_sampled_pairwise_and_perplexity_calls_are_estimated_exactly(tmp_path, server, monkeypatch):
    """A suite with every kind of call: answers with log-probabilities, reference scoring, a judge on a stratified
    sample and a pairwise judge against the baseline in both orders. With every answer cached the keys are all
    known; part of the other calls are forgotten, and the dry run's misses are what the server then answers."""
    local, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    monkeypatch.delenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", raising=False)
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        rows = _qa_rows().iloc[:16].reset_index(drop=True)
        platform.register_dataset("qa", rows, task_type="generation", label_policy="human_reviewed")
        endpoint = {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}
        judge = {"endpoint": endpoint, "model": "rule-judge-1", "model_version": "1"}
        pairwise = {**judge, "output": "pairwise"}

        def pin(config):
            return {k: v for k, v in JudgeConfig.from_dict(config).pin().items() if k != "judge_config_hash"}

        platform.register_suite({
            "suite_id": "qa-all", "purpose": "release_blocking", "task_type": "generation", "min_slice_size": 1,
            "metrics": ["exact_match@1", {"name": "judge", "metric": "judge_score@1", "params": pin(judge)},
                        {"name": "preference", "metric": "judge_preference@1", "params": pin(pairwise)},
                        {"name": "ppl", "metric": "perplexity@1"},
                        {"name": "ref_ppl", "metric": "perplexity@1", "params": {"source": "reference"}}],
            "llm": {"judge": judge, "judge_samples": 2, "judge_sample": {"size": 6, "strata": {"column": "category"}, "seed": 3},
                    "pairwise_judge": pairwise, "prices": PRICES, "concurrency": 4},
            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.0}]}})
        for name, model in (("base-bot", "kb-qa-v1"), ("cand-bot", "kb-qa-v2")):
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps({"endpoint": endpoint, "model": model, "model_version": "1",
                                        "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\nAnswer briefly."},
                                        "decoding": {"temperature": 0.0, "max_tokens": CANDIDATE_MAX_TOKENS}}))
            platform.register_model(name, path, kind="openai_chat")
        platform.request_eval("base-bot@1", "qa", "qa-all")
        evaluate(platform, "base-bot@1")
        platform.request_eval("cand-bot@1", "qa", "qa-all", baseline="base-bot@1")
        evaluate(platform, "cand-bot@1")
        assert platform.runs("cand-bot@1")[0].results.get("judge_pairwise") or platform.runs("cand-bot@1")[0].comparison["pairwise"]

        # forget every third cached call that is not a candidate's answer (judge, pairwise, reference scoring)
        with platform.registry.session() as session:
            keys = sorted(session.scalars(select(LLMCallRecord.cache_key).where(LLMCallRecord.kind != "candidate")))
            kinds = dict(session.execute(select(LLMCallRecord.cache_key, LLMCallRecord.kind)).all())
            forgotten = keys[::3]
            session.execute(delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(forgotten)))
        assert {kinds[k] for k in forgotten} >= {"judge"} and len({kinds[k] for k in keys}) == 2  # judge and scoring calls
        # the clean version has the same rows in another order: a new sample is drawn, every answer is cached
        platform.register_dataset("qa", rows.iloc[::-1].reset_index(drop=True), task_type="generation", label_policy="human_reviewed")
        incidents.invalidate_dataset(platform, "qa@1", reason="mislabelled", reported_by="alice")

        estimate = estimate_for(platform, "qa@1")
        assert estimate.unknown_answers == 0 and estimate.to_dict()["exact"]
        assert sorted(r.run.model_key for r in estimate.runs) == ["base-bot@1", "cand-bot@1"]
        phases = {(m.phase, m.model): m for m in estimate.by_model}
        assert phases[("candidate", "kb-qa-v1")].misses > 0 and phases[("candidate", "kb-qa-v2")].misses > 0  # references forgotten
        assert estimate.misses >= len(forgotten) // 2 > 0

        local.reset_stats()
        recompute_within_budget(platform, "qa@1", requested_by="alice")
        evaluate(platform, "base-bot@1", dagster_run_id="recompute")
        evaluate(platform, "cand-bot@1", dagster_run_id="recompute")
        stats = local.stats()
        recomputed = platform.runs("cand-bot@1")[-1]
        assert recomputed.dataset_key == "qa@2" and recomputed.comparison["pairwise"]["preference"]["n_examples"] == 16
        assert stats["requests"] == stats["completions"] == estimate.misses, (stats, estimate.to_dict()["totals"])
        by_model = {}
        for m in estimate.by_model:
            if m.misses:
                by_model[m.model] = by_model.get(m.model, 0) + m.misses
        assert stats["completions_by_model"] == by_model
    finally:
        platform.close()


def test_a_buggy_metrics_recompute_pays_only_what_the_cache_lost(tmp_path, server, monkeypatch):
    """The metric path: the runs are planned on the fixed suite version (not registered by the dry run); a
    judge call the cache lost is the only call the recompute makes."""
    local, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        platform.register_dataset("qa", _qa_rows().iloc[:10], task_type="generation", label_policy="human_reviewed",
                                  access_policy={"level": "restricted", "teams": ["alpha"]})
        judge = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}
        pin = {k: v for k, v in JudgeConfig.from_dict(judge).pin().items() if k != "judge_config_hash"}
        platform.register_suite({"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation", "min_slice_size": 1,
                                 "metrics": ["toy_answer_length@1", {"name": "judge", "metric": "judge_score@1", "params": pin}],
                                 "llm": {"judge": judge, "judge_samples": 3, "prices": PRICES},
                                 "gate": {"require_baseline": False, "rules": [{"metric": "judge", "min": 0.0}]}})
        path = tmp_path / "bot.json"
        path.write_text(json.dumps({"endpoint": judge["endpoint"], "model": "kb-qa-v1", "model_version": "1",
                                    "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\nAnswer briefly."},
                                    "decoding": {"temperature": 0.0, "max_tokens": CANDIDATE_MAX_TOKENS}}))
        platform.register_model("qa-bot", path, kind="openai_chat", eval_plan=[("qa", "qa")])
        evaluate(platform, "qa-bot@1")
        incidents.mark_metric_buggy(platform, "toy_answer_length@1", reason="off by one", reported_by="alice")
        run = platform.runs("qa-bot@1")[0]
        verdicts = platform.store.get_table("judge_verdicts", run.results["judge"]["verdicts"])
        lost = [json.loads(verdicts["samples"].iloc[4])[1]["cache_key"]]  # one sample of one answer
        with platform.registry.session() as session:
            session.execute(delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(lost)))
        suites_before = len(platform.suites())

        estimate = estimate_for(platform, "toy_answer_length@1")
        assert (estimate.calls, estimate.misses, estimate.to_dict()["exact"]) == (10 + 30, 1, True)
        assert len(platform.suites()) == suites_before  # the fixed suite version is not registered by a dry run
        # an admin of a team that may know nothing of qa sees the run's calls, not what it is
        with TestClient(create_app(platform)) as api:
            token = create_token(platform, "ops", principal="root", roles=("admin",))
            answer = api.post("/v1/recompute/estimate", json={"affectedBy": "toy_answer_length@1"},
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["misses"] == 1
        [withheld] = answer.json()["runs"]
        assert {withheld[k] for k in ("runId", "model", "dataset", "suite")} == {"(withheld)"} and withheld["calls"] == 40
        assert "qa" not in json.dumps(answer.json()["runs"])

        local.reset_stats()
        queued, _, _ = recompute_within_budget(platform, "toy_answer_length@1", requested_by="alice")
        evaluate(platform, "qa-bot@1", dagster_run_id="recompute")
        assert platform.run(queued[0].run_id).status == "succeeded"
        assert local.stats()["completions_by_model"] == {"rule-judge-1": 1}
    finally:
        platform.close()


def test_a_run_that_cannot_be_estimated_is_unknown_and_over_any_budget(evaluated, monkeypatch):
    platform, _, rows = evaluated
    _contaminate_and_forget_judge_calls(platform, rows)
    Path(platform.model("qa-bot@1").uri).unlink()  # the model's file is gone: its calls cannot be keyed
    estimate = estimate_for(platform, "qa@1")
    [run] = estimate.runs
    assert "qa-bot.json no longer exists" in run.error and estimate.cost is None
    # unknown is over every budget set: the suite's candidate token budget, and the installation's
    monkeypatch.setenv("EVAL_PLATFORM_RECOMPUTE_MAX_COST", "100")
    estimate = estimate_for(platform, "qa@1")
    assert [(b.budget, b.estimate) for b in estimate.over_budget] == [("suite qa@1 budget.candidate.max_tokens", None),
                                                                      ("EVAL_PLATFORM_RECOMPUTE_MAX_COST", None)]
    with pytest.raises(OverBudget, match="unknown"):
        recompute_within_budget(platform, "qa@1", requested_by="alice")


def test_a_predictions_files_judge_calls_are_keyed_from_its_stored_answers(tmp_path, server, monkeypatch):
    """A model of kind ``predictions`` makes no candidate call; its judge calls are keyed from its answers, joined
    to the examples by id (the file's rows in another order)."""
    local, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        rows = _qa_rows().iloc[:8]
        platform.register_dataset("qa", rows, task_type="generation", label_policy="human_reviewed")
        judge = {"endpoint": {"name": "local-kb", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "rule-judge-1", "model_version": "1"}
        pin = {k: v for k, v in JudgeConfig.from_dict(judge).pin().items() if k != "judge_config_hash"}
        platform.register_suite({"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation", "min_slice_size": 1,
                                 "metrics": ["toy_answer_length@1", {"name": "judge", "metric": "judge_score@1", "params": pin}],
                                 "llm": {"judge": judge, "prices": PRICES},
                                 "gate": {"require_baseline": False, "rules": [{"metric": "judge", "min": 0.0}]}})
        answers = pd.DataFrame({"example_id": rows["example_id"], "prediction": [f"it is {r}" for r in rows["reference"]]})
        path = tmp_path / "answers.jsonl"
        answers.iloc[::-1].to_json(path, orient="records", lines=True)
        platform.register_model("file-bot", path, kind="predictions", eval_plan=[("qa", "qa")])
        evaluate(platform, "file-bot@1")
        incidents.mark_metric_buggy(platform, "toy_answer_length@1", reason="off by one", reported_by="alice")
        verdicts = platform.store.get_table("judge_verdicts", platform.runs("file-bot@1")[0].results["judge"]["verdicts"])
        lost = [json.loads(samples)[0]["cache_key"] for samples in verdicts["samples"].iloc[:3]]
        with platform.registry.session() as session:
            session.execute(delete(LLMCallRecord).where(LLMCallRecord.cache_key.in_(lost)))

        estimate = estimate_for(platform, "toy_answer_length@1")
        assert (estimate.calls, estimate.misses, estimate.to_dict()["exact"]) == (8, 3, True)
        local.reset_stats()
        recompute_within_budget(platform, "toy_answer_length@1", requested_by="alice")
        evaluate(platform, "file-bot@1", dagster_run_id="recompute")
        assert local.stats()["completions_by_model"] == {"rule-judge-1": 3}
    finally:
        platform.close()
