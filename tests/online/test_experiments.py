"""Online experiments in the registry: registration, ingest as dataset versions, analyses with lineage, the
online gate beside the offline one (failing closed), overrides, contamination, shadow mode and the
offline-online agreement record. The statistics themselves are checked in test_online_stats.py."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.gates import releases
from eval_platform.governance import incidents
from eval_platform.online import experiments as ex
from eval_platform.online.analysis import analyze_experiment
from eval_platform.online.simulate import simulate_experiment
from eval_platform.platform.requests import get_request
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import DagsterRequest, EvalDataset
from eval_platform.registry.online_schema import Experiment, ExperimentIngest
from tests.evaluation.test_runner import evaluate

GUARDRAILS = [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05},
              {"metric": "click", "direction": "higher", "tolerance": 0.10}]


def suite(online=None):
    raw = {"suite_id": "bc-release", "purpose": "release_blocking", "task_type": "binary_classification",
           "metrics": ["roc_auc@1"], "comparison": {"bootstrap_resamples": 200},
           "gate": {"require_baseline": False, "approvers": ["rita"], "rules": [{"metric": "roc_auc", "min": 0.9}]}}
    if online is not None:
        raw["online"] = online
    return raw


def ab_spec(experiment_id="exp-1", control="detector@1", treatment="detector@2", **extra):
    return {"experiment_id": experiment_id, "offline_metric": "roc_auc",
            "arms": [{"name": "control", "model_version": control, "split": 0.5},
                     {"name": "treatment", "model_version": treatment, "split": 0.5}],
            "primary_metric": {"metric": "conversion", "direction": "higher", "aggregate": "max"},
            "metrics": {"click": {"aggregate": "sum"}, "latency_ms": {"aggregate": "mean"}},
            "guardrails": GUARDRAILS, "covariate": {"click": "pre_clicks"}, **extra}


def events(seed=3, n_units=6000, days=6, **kwargs):
    frame = simulate_experiment(seed=seed, n_units=n_units, days=days, **kwargs)
    return frame


@pytest.fixture
def service(tmp_path, db_url, breast_cancer, model_files):
    """A baseline (detector@1, promoted) and a candidate (detector@2) whose offline gate passed; on SQLite
    and on the real PostgreSQL server."""
    platform = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    _, _, frame = breast_cancer
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed")
    platform.register_suite(suite(online={"guardrails": GUARDRAILS}))
    platform.register_model("detector", model_files["logistic_regression"], eval_plan=[("bc", "bc-release")])
    assert evaluate(platform, "detector@1").decision == "pass"
    releases.promote(platform, "detector@1", promoted_by="test")
    platform.register_model("detector", model_files["gradient_boosting"])
    assert evaluate(platform, "detector@2").decision == "pass"
    yield platform
    platform.close()


def counts(platform):
    with platform.registry.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t)) for t in (Experiment, ExperimentIngest, EvalDataset, DagsterRequest))


def test_the_first_version_needs_no_online_evidence_but_a_candidate_does(service):
    assert releases.release_state(service, "detector@1").online == "not_applicable"
    state = releases.release_state(service, "detector@2")
    assert (state.state, state.offline, state.online) == ("no_decision", "pass", "no_decision")
    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "no_decision"
    assert "no A/B experiment has this model version as its candidate" in str(decision.reasons)
    with pytest.raises(Conflict, match="online gate no_decision"):
        releases.request_promotion(service, "detector@2", requested_by="ml-eng")
    with pytest.raises(Conflict, match="online gate no_decision"):
        releases.promote(service, "detector@2", promoted_by="ml-eng")


def test_bad_experiments_and_batches_are_refused_and_leave_nothing_behind(service):
    before = counts(service)
    with pytest.raises(InvalidInput) as error:
        ex.register_experiment(service, ab_spec(treatment="detector@9"), created_by="ml-eng")
    assert error.value.field == "arms[1].model_version"
    with pytest.raises(InvalidInput) as error:
        ex.register_experiment(service, ab_spec(srm_alpha=2), created_by="ml-eng")
    assert error.value.field == "srm_alpha"
    with pytest.raises(InvalidInput) as error:
        ex.register_experiment(service, ab_spec(treatment="detector@1"), created_by="ml-eng")
    assert error.value.field == "arms"
    with pytest.raises(InvalidInput) as error:
        ex.register_experiment(service, {"experiment_id": "s", "mode": "shadow", "candidate": "detector@2",
                                         "production": "detector@1", "kind": "scores"}, created_by="ml-eng")
    assert error.value.field == "kind"
    assert counts(service) == before

    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    assert not ex.register_experiment(service, ab_spec(), created_by="ml-eng").created  # the same spec again
    with pytest.raises(Conflict, match="immutable"):
        ex.register_experiment(service, ab_spec(confidence=0.9), created_by="ml-eng")
    before = counts(service)
    batch = events()
    for broken, field in ((batch.drop(columns=["timestamp"]), "timestamp"),
                          (batch.assign(latency_ms=batch["latency_ms"].astype(str)), "latency_ms"),
                          (batch.assign(click=np.where(np.arange(len(batch)) == 7, np.inf, batch["click"])), "click")):
        with pytest.raises(InvalidInput) as error:
            ex.ingest(service, "exp-1", broken, ingested_by="pipeline")
        assert error.value.field == field
    assert "row 7" in str(error.value)
    assert counts(service) == before


def test_an_ingest_is_a_dataset_version_and_queues_an_analysis(service):
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    batch = events()
    ingest, created = ex.ingest(service, "exp-1", batch, ingested_by="pipeline")
    assert created
    dataset = service.dataset(ingest.dataset_key)
    assert (dataset.dataset_id, dataset.task_type, dataset.row_count) == ("experiment-exp-1", "online_events", len(batch))
    assert ingest.content_hash == dataset.content_hash
    pending = ex.pending_analysis_requests(service)
    assert [(r.partitions, r.reason) for r in pending] == [(["exp-1"], f"ingest of {ingest.dataset_key}")]
    again, created = ex.ingest(service, "exp-1", batch, ingested_by="pipeline")
    assert not created and again.id == ingest.id and len(ex.pending_analysis_requests(service)) == 1


def test_a_candidate_without_regression_passes_and_ships(service):
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    batch = events(true_effect=0.12)
    first_days = batch["timestamp"] < batch["timestamp"].min().floor("D") + pd.Timedelta(days=3)
    ex.ingest(service, "exp-1", batch[first_days], ingested_by="pipeline")
    ex.ingest(service, "exp-1", batch[~first_days], ingested_by="pipeline")
    analysis = ex.analyze(service, "exp-1", dagster_run_id="r1")

    # the recorded analysis is the library's analysis of the union of the ingests, with its lineage
    direct = analyze_experiment(batch.reset_index(drop=True), ex.experiment(service, "exp-1").config).as_json()
    assert analysis.result["primary"] == direct["primary"] and analysis.result["guardrails"] == direct["guardrails"]
    assert [i["dataset"] for i in analysis.inputs] == ["experiment-exp-1@1", "experiment-exp-1@2"]
    assert sum(i["rows"] for i in analysis.inputs) == len(batch)
    assert analysis.trustworthy and analysis.guardrail_verdict == "pass"

    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "pass"
    assert {r["rule"] for r in decision.reasons} == {"latency_ms must not increase by more than 5.00%",
                                                     "click must not decrease by more than 10.00%"}
    assert releases.release_state(service, "detector@2").state == "pass"
    assert releases.promote(service, "detector@2", promoted_by="ml-eng").model_version == 2


def test_a_latency_regression_fails_the_release_until_an_approver_overrides(service):
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    ex.ingest(service, "exp-1", events(latency_effect=0.25), ingested_by="pipeline")
    ex.analyze(service, "exp-1")
    state = releases.release_state(service, "detector@2")
    assert (state.state, state.offline, state.online) == ("fail", "pass", "fail")
    failed = [r for r in state.online_record.reasons if r["outcome"] == "fail"]
    assert [r["rule"] for r in failed] == ["latency_ms must not increase by more than 5.00%"]
    assert failed[0]["interval"][0] > 0.05  # the whole regression interval is beyond the tolerance

    with pytest.raises(InvalidInput, match="not an approver"):
        releases.override_gate(service, "detector@2", approver="mallory", reason="ship it", scope="online")
    override = releases.override_gate(service, "detector@2", approver="rita", reason="latency fix lands next week",
                                      scope="online")
    assert override.overridden_decision == "fail"
    state = releases.release_state(service, "detector@2")
    assert (state.state, state.online) == ("pass", "overridden")


def test_untrustworthy_or_stale_online_data_gives_no_decision(service, model_files):
    # an experiment whose control is not the current baseline says nothing about this release
    service.register_model("detector", model_files["decision_stump"])
    ex.register_experiment(service, ab_spec("exp-0", control="detector@3"), created_by="ml-eng")
    ex.ingest(service, "exp-0", events(seed=4), ingested_by="pipeline")
    ex.analyze(service, "exp-0")
    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "no_decision"
    assert "its control is detector@3, not the current baseline detector@1" in str(decision.reasons)

    # a skewed split: the sample-ratio check fires and no guardrail may pass
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    ex.ingest(service, "exp-1", events(split=(0.46, 0.54)), ingested_by="pipeline")
    analysis = ex.analyze(service, "exp-1")
    assert not analysis.trustworthy and analysis.result["srm"]["fired"]
    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "no_decision"
    assert all("untrustworthy" in r["message"] for r in decision.reasons)

    # a suite asking for more confidence than the analysis had
    service.register_suite(suite(online={"guardrails": GUARDRAILS, "confidence": 0.99}))
    service.request_eval("detector@2", "bc", "bc-release")
    evaluate(service, "detector@2")
    ex.register_experiment(service, ab_spec("exp-3"), created_by="ml-eng")
    ex.ingest(service, "exp-3", events(seed=5), ingested_by="pipeline")
    ex.analyze(service, "exp-3")
    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "no_decision" and "the suite requires 99%" in str(decision.reasons)


def test_a_contaminated_ingest_invalidates_the_analysis_and_queues_a_new_one(service):
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    batch = events(true_effect=0.12)
    half = batch["unit_id"].str[-1].isin(list("02468"))
    good, _ = ex.ingest(service, "exp-1", batch[half], ingested_by="pipeline")
    bad, _ = ex.ingest(service, "exp-1", batch[~half], ingested_by="pipeline")
    first = ex.analyze(service, "exp-1")
    assert service.gate_decision("detector@2", "online").decision == "pass"
    requests_before = len(ex.pending_analysis_requests(service))

    impact = incidents.invalidate_dataset(service, bad.dataset_key, reason="bot traffic", reported_by="ops")
    assert impact.experiments == ("exp-1",)
    assert ex.latest_analysis(service, "exp-1").status == "invalid"
    decision = service.gate_decision("detector@2", "online")
    assert decision.decision == "no_decision" and f"dataset {bad.dataset_key} invalidated" in str(decision.reasons)
    pending = ex.pending_analysis_requests(service)
    assert len(pending) == requests_before + 1 and pending[-1].reason == f"re-analysis without {bad.dataset_key}"

    again = ex.analyze(service, "exp-1")
    assert [i["dataset"] for i in again.inputs] == [good.dataset_key]
    assert again.result["data_quality"]["ingests_left_out"][0]["dataset"] == bad.dataset_key
    assert again.result["arms"]["control"]["units"] < first.result["arms"]["control"]["units"]


def test_offline_and_online_deltas_are_recorded_side_by_side(service):
    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    ex.ingest(service, "exp-1", events(true_effect=0.12, n_units=10000), ingested_by="pipeline")
    analysis = ex.analyze(service, "exp-1")
    [record] = analysis.agreement
    run = next(r for r in service.runs("detector@2") if r.status == "succeeded")
    assert record["offline_delta"] == pytest.approx(run.comparison["metrics"]["roc_auc"]["delta"], abs=1e-12)
    assert record["online_delta"] == pytest.approx(analysis.result["primary"]["treatment"]["lift"], abs=1e-12)
    assert record["candidate"] == "detector@2" and record["offline_metric"] == "roc_auc"
    report = ex.agreement_report(service)
    assert report["n"] == 1 and report["records"][0]["same_sign"] == ((record["offline_delta"] > 0) == (record["online_delta"] > 0))


def test_shadow_mode_metrics_gate_like_any_other(service, model_files):
    shadow_suite = {**suite(online={"shadow": [{"metric": "shadow_agreement", "min": 0.9},
                                               {"metric": "shadow_coverage", "min": 0.95}]}), "suite_id": "bc-shadow"}
    service.register_suite(shadow_suite)
    service.register_model("shadowed", model_files["logistic_regression"], eval_plan=[("bc", "bc-shadow")])
    evaluate(service, "shadowed@1")
    releases.promote(service, "shadowed@1", promoted_by="test")
    service.register_model("shadowed", model_files["gradient_boosting"])
    evaluate(service, "shadowed@2")
    assert releases.release_state(service, "shadowed@2").online == "no_decision"
    ex.register_experiment(service, {"experiment_id": "shadow-1", "mode": "shadow", "candidate": "shadowed@2",
                                     "production": "shadowed@1", "kind": "labels"}, created_by="ml-eng")
    rng = np.random.default_rng(0)
    production = rng.integers(0, 2, 2000)
    candidate = np.where(rng.random(2000) < 0.95, production, 1 - production)
    log = pd.DataFrame({"request_id": np.tile(np.arange(2000), 2), "source": ["production"] * 2000 + ["candidate"] * 2000,
                        "output": np.concatenate([production, candidate])})
    ingest, _ = ex.ingest(service, "shadow-1", log, ingested_by="shadow-logger")
    assert service.dataset(ingest.dataset_key).task_type == "shadow_log"
    analysis = ex.analyze(service, "shadow-1")
    assert analysis.result["metrics"]["shadow_agreement"] == pytest.approx(float(np.mean(candidate == production)))
    assert service.gate_decision("shadowed@2", "online").decision == "pass"

    # the candidate drops a tenth of the requests: coverage fails
    ex.register_experiment(service, {"experiment_id": "shadow-2", "mode": "shadow", "candidate": "shadowed@2",
                                     "production": "shadowed@1"}, created_by="ml-eng")
    ex.ingest(service, "shadow-2", log[(log["source"] == "production") | (log["request_id"] % 10 != 0)], ingested_by="shadow-logger")
    ex.analyze(service, "shadow-2")
    decision = service.gate_decision("shadowed@2", "online")
    assert decision.decision == "fail"
    assert [r["rule"] for r in decision.reasons if r["outcome"] == "fail"] == ["shadow_coverage >= 0.95"]

    with pytest.raises(InvalidInput) as error:
        ex.ingest(service, "shadow-2", log.assign(source="canary"), ingested_by="shadow-logger")
    assert error.value.field == "source"


def test_the_online_section_of_a_suite_is_validated():
    from eval_platform.suites.definition import parse_suite

    for online, field in (({}, "online"), ({"guardrails": [{"metric": "x", "direction": "up", "tolerance": 0.1}]},
                                            "online.guardrails[0].direction"),
                          ({"guardrails": [{"metric": "x", "direction": "lower", "tolerance": -1}]}, "online.guardrails[0].tolerance"),
                          ({"shadow": [{"metric": "ctr", "min": 0.5}]}, "online.shadow[0].metric"),
                          ({"guardrails": GUARDRAILS, "max_age_days": 0}, "online.max_age_days"),
                          ({"guardrails": GUARDRAILS, "typo": 1}, "online")):
        with pytest.raises(InvalidInput) as error:
            parse_suite(suite(online=online))
        assert error.value.field == field
    normalised = parse_suite(suite(online={"guardrails": GUARDRAILS})).as_json()["online"]
    assert normalised["guardrails"][0] == {**GUARDRAILS[0], "relative": True} and normalised["confidence"] == 0.95


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_sensor_analyses_ingests_and_the_release_job_checks_the_online_gate(service):
    import dagster as dg

    from eval_platform_dagster.sensors import promotion_request_sensor
    from eval_platform_dagster.sensors.experiments import experiment_request_sensor
    from tests.dagster_helpers import execute, tick

    ex.register_experiment(service, ab_spec(), created_by="ml-eng")
    batch = events(latency_effect=0.25)
    ex.ingest(service, "exp-1", batch[batch["unit_id"].str[-1] < "5"], ingested_by="pipeline")
    ex.ingest(service, "exp-1", batch[batch["unit_id"].str[-1] >= "5"], ingested_by="pipeline")
    with dg.instance_for_test() as instance:
        ticked = tick(experiment_request_sensor, instance, service)
        [request] = ticked.run_requests  # two ingests between ticks: one analysis carries both requests
        assert request.partition_key == "exp-1" and len(request.tags["eval_platform/experiment_request"].split(",")) == 2
        assert instance.get_dynamic_partitions("experiments") == ["exp-1"]
        assert execute("analyze_experiment", instance, service, "exp-1", request.tags).success
        assert ex.pending_analysis_requests(service) == []
        assert tick(experiment_request_sensor, instance, service, cursor=ticked.cursor).run_requests == []
        metadata = instance.get_latest_materialization_event(dg.AssetKey("experiment_analysis")).asset_materialization.metadata
        assert metadata["guardrail_verdict"].value == "fail"
        assert [i["dataset"] for i in metadata["inputs"].value] == ["experiment-exp-1@1", "experiment-exp-1@2"]

        # the release job: the offline gate passes, the online gate's blocking check stops the promotion
        instance.add_dynamic_partitions("model_versions", ["detector@2"])
        blocked = execute("release_model_version", instance, service, "detector@2", raise_on_error=False)
        assert not blocked.success and service.promoted_version("detector") == 1
        checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
                  for e in blocked.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        assert checks == {"gate_passed": True, "online_gate_passed": False}

        releases.override_gate(service, "detector@2", approver="rita", reason="latency fix ships with it", scope="online")
        request = releases.request_promotion(service, "detector@2", requested_by="rita")
        launched = tick(promotion_request_sensor, instance, service).run_requests
        assert execute("release_model_version", instance, service, "detector@2", launched[0].tags).success
        assert service.promoted_version("detector") == 2 and get_request(service, request.id).status == "done"


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_api_registers_ingests_and_reads_experiments_with_access_control(service):
    import io

    import httpx

    from eval_platform.api.app import create_app
    from eval_platform.registry import access
    from tests.api.test_api import Server

    tokens = {team: access.create_token(service, team, roles=("member", "approver")) for team in ("growth", "search")}
    access.set_owner(service, access.MODEL, "detector", "growth")  # registered by the operator: unowned until given
    spec = {**ab_spec(), "experimentId": "exp-api", "access_policy": {"level": "restricted", "teams": ["growth"]}}
    spec.pop("experiment_id")
    batch = events(true_effect=0.12)
    buffer = io.BytesIO()
    batch.to_parquet(buffer)
    with Server(create_app(service)) as server:
        growth, search = (httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {tokens[t]}"})
                          for t in ("growth", "search"))
        bad = growth.post("/v1/experiments", json={**spec, "arms": [spec["arms"][0], {**spec["arms"][1], "split": -1}]})
        assert bad.status_code == 422 and bad.json()["field"] == "arms[1].split"
        created = growth.post("/v1/experiments", json=spec)
        assert created.status_code == 201 and created.json()["candidateModels"] == ["detector@2"]
        assert growth.post("/v1/experiments", json=spec).status_code == 200  # the same spec: the same experiment

        # another team learns nothing about a restricted experiment
        assert [e["experimentId"] for e in search.get("/v1/experiments").json()] == []
        assert search.get("/v1/experiments/exp-api").status_code == 404  # answers as an absent experiment
        refused = search.post("/v1/experiments/exp-api/ingests", files={"file": ("b.parquet", buffer.getvalue())})
        assert refused.status_code == 404 and len(ex.ingests(service, "exp-api")) == 0

        broken = io.BytesIO()
        batch.drop(columns=["arm"]).to_parquet(broken)
        bad = growth.post("/v1/experiments/exp-api/ingests", files={"file": ("b.parquet", broken.getvalue())})
        assert bad.status_code == 422 and bad.json()["field"] == "arm"
        ingested = growth.post("/v1/experiments/exp-api/ingests", files={"file": ("b.parquet", buffer.getvalue())})
        assert ingested.status_code == 201 and ingested.json()["rowCount"] == len(batch)
        assert growth.post("/v1/experiments/exp-api/ingests", files={"file": ("b.parquet", buffer.getvalue())}).status_code == 200

        ex.analyze(service, "exp-api")  # what the sensor does
        shown = growth.get("/v1/experiments/exp-api").json()
        assert shown["latestAnalysis"]["guardrailVerdict"] == "pass" and shown["ingests"] == 1
        gate = growth.get("/v1/models/detector@2/online-gate").json()
        assert gate["decision"] == "pass" and {r["experiment"] for r in gate["reasons"]} == {"exp-api"}
        assert growth.get("/v1/online/agreement").json()["n"] == 1
        assert search.get("/v1/online/agreement").json()["n"] == 0
        assert growth.post("/v1/experiments/exp-api/analyses").status_code == 202
        passed = growth.post("/v1/models/detector@2/online-gate/override", json={"reason": "nothing to override"})
        assert passed.status_code == 409 and "only fail or no_decision" in passed.json()["detail"]
    reads = access.access_log(service, team="growth")
    assert any(entry.dataset_key == "experiment:exp-api" and entry.outcome == "granted" for entry in reads)
    assert any(entry.dataset_key == "experiment:exp-api" and entry.outcome == "denied" for entry in access.access_log(service, team="search"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_cli_registers_ingests_and_shows_experiments(service, tmp_path, capsys, monkeypatch):
    import json

    import yaml

    from eval_platform.cli.main import main

    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", service.config.db_url)
    home = ["--home", str(service.config.home)]
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(ab_spec()))
    assert main(["experiments", "register", str(spec), "--json", *home]) == 0
    assert json.loads(capsys.readouterr().out)["created"] is True
    data = tmp_path / "batch.csv"
    events(true_effect=0.12).to_csv(data, index=False)
    assert main(["experiments", "ingest", "exp-1", "--file", str(data), "--by", "pipeline", *home]) == 0
    assert "queued: the experiment sensor runs the analysis" in capsys.readouterr().out
    assert main(["experiments", "show", "exp-1", *home]) == 0
    assert "not analysed yet (1 ingests)" in capsys.readouterr().out
    ex.analyze(service, "exp-1")
    assert main(["experiments", "show", "exp-1", *home]) == 0
    shown = capsys.readouterr().out
    assert "online guardrails: pass" in shown and "experiment-exp-1@1" in shown
    assert main(["experiments", "gate", "detector@2", *home]) == 0
    assert capsys.readouterr().out.startswith("online gate of detector@2: pass")
    assert main(["experiments", "list", "--json", *home]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["experiment_id"], row["guardrails"], row["ingests"]) == ("exp-1", "pass", 1)
    assert main(["experiments", "agreement", "--json", *home]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 1

    bad = tmp_path / "bad.csv"
    events().drop(columns=["unit_id"]).to_csv(bad, index=False)
    assert main(["experiments", "ingest", "exp-1", "--file", str(bad), *home]) == 2
    assert "unit_id" in capsys.readouterr().err
