"""The review queue: judged runs against the local LLM server put examples up for review for the three reasons
(each known by construction), reviewers label them (append-only history), and labels are published as new
versions of a calibration dataset, with the access rules of the datasets they come from."""

import json
from datetime import UTC, datetime
from importlib import resources as package_files
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from eval_platform.cli.main import main as evalp_main
from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.evaluation import runner
from eval_platform.evaluation.review_queue import (
    CALIBRATION_COLUMNS,
    PROVENANCE_COLUMNS,
    get_item,
    label_item,
    list_items,
    publish,
)
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import Forbidden, access_log, authenticate, create_token
from eval_platform.registry.schema import Base
from tests.evaluation.test_runner import evaluate
from tests.llm.test_llm_runs import candidate_file, judge_config


def qa_frame(n=20):
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:n]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference", "category"]]


@pytest.fixture
def service(tmp_path, server, monkeypatch):
    _, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    platform = EvalPlatform.open(tmp_path / "home")
    platform.register_dataset("qa", qa_frame(), task_type="generation", label_policy="human_reviewed")
    yield platform
    platform.close()


@pytest.fixture
def people(service):
    """Principals of real tokens (the access log refers to them): reviewers rita and rex and member mia of team
    alpha, reviewer bob of team beta."""
    return SimpleNamespace(**{name: authenticate(service, create_token(service, team, principal=name, kind="person", roles=roles))
                              for team, name, roles in (("alpha", "rita", ("member", "reviewer")), ("alpha", "rex", ("member", "reviewer")),
                                                        ("alpha", "mia", ("member",)), ("beta", "bob", ("member", "reviewer")))})


def review_suite(judge_model="rule-judge-1", samples=3, review=None, suite_id="qa"):
    from eval_platform.llm.judge import JudgeConfig

    judge = judge_config() | {"model": judge_model}
    params = {k: v for k, v in JudgeConfig.from_dict(judge).pin().items() if k != "judge_config_hash"}
    raw = {"suite_id": suite_id, "purpose": "exploratory", "task_type": "generation", "min_slice_size": 1,
           "metrics": ["exact_match@1", "token_f1@1", {"name": "judge", "metric": "judge_score@1", "params": params}],
           "llm": {"budget": {"candidate": {"max_tokens": 100_000}}, "concurrency": 4, "judge": judge, "judge_samples": samples}}
    if review is not None:
        raw["review"] = review
    return raw


def judged_run(service, tmp_path, model="kb-qa-verbose", judge_model="rule-judge-1", review=None, name="qa-bot", samples=3):
    service.register_suite(review_suite(judge_model, samples=samples, review=review))
    service.register_model(name, candidate_file(tmp_path, model=model), kind="openai_chat", eval_plan=[("qa", "qa")])
    evaluate(service, f"{name}@1")
    return service.runs(f"{name}@1")[-1]


def by_reason(service, run_id, reason):
    items, _ = list_items(service, reason=reason, limit=1000)
    return sorted(i.example_id for i in items if i.run_id == run_id)


def test_judge_vs_reference_and_a_seeded_audit_sample(service, tmp_path):
    """kb-qa-verbose answers "The answer is X.": the exact judge passes every answer (it contains the reference), exact
    match is 0 for every one (by construction), so all 20 disagree; the judge's samples never do."""
    run = judged_run(service, tmp_path, review={"audit_sample": 6, "seed": 7})
    ids = sorted(qa_frame()["example_id"].astype(str))
    assert by_reason(service, run.run_id, "judge_vs_reference") == ids
    assert by_reason(service, run.run_id, "judge_samples_disagree") == []
    # one stratum (every verdict pass): the audit sample is 6 examples drawn with the seed over the ids in order
    expected = sorted(np.asarray(ids)[np.sort(np.random.default_rng(7).choice(len(ids), size=6, replace=False))])
    assert by_reason(service, run.run_id, "audit_sample") == expected
    item = list_items(service, reason="judge_vs_reference", limit=1)[0][0]
    assert (item.judge_label, item.judge_score, item.reference_metric, item.reference_value) == ("pass", 1.0, "exact_match", 0.0)
    assert (item.dataset_key, item.model_key, item.status) == ("qa@1", "qa-bot@1", "open")

    # computing the metrics again queues nothing twice
    before = list_items(service, limit=1000)[1]
    runner.compute_metrics(service, service.run(run.run_id))
    assert list_items(service, limit=1000)[1] == before == 26


def test_samples_disagreeing_and_a_judge_failing_a_right_answer(service, tmp_path):
    """kb-qa-v1 answers every question with its reference (exact match 1); rule-judge-noisy flips a sample's score with
    probability 0.2: the examples whose 3 sample scores differ, and those whose majority is fail, are read from the
    judge's raw samples (score >= 0.5 is pass), independently of the verdict columns the queue reads."""
    run = judged_run(service, tmp_path, model="kb-qa-v1", judge_model="rule-judge-noisy", review={"audit_sample": 5})
    verdicts = service.store.get_table("judge_verdicts", run.results["judge"]["verdicts"])
    disagree, majority_fail, labels = [], [], {}
    for example_id, samples in zip(verdicts["example_id"].astype(str), verdicts["samples"], strict=True):
        passes = [s["score"] >= 0.5 for s in json.loads(samples)]
        labels[example_id] = "pass" if sum(passes) * 2 > len(passes) else "fail"
        if len(set(passes)) > 1:
            disagree.append(example_id)
        if labels[example_id] == "fail":
            majority_fail.append(example_id)
    assert disagree and len(disagree) < 20  # the construction makes some, not all, disagree
    assert majority_fail  # and the majority of some fails a right answer
    assert by_reason(service, run.run_id, "judge_samples_disagree") == sorted(disagree)
    assert by_reason(service, run.run_id, "judge_vs_reference") == sorted(majority_fail)
    audit = by_reason(service, run.run_id, "audit_sample")
    assert len(audit) == 5 and {labels[e] for e in audit} == {"pass", "fail"}  # both strata, at least one of each


def test_labels_history_roles_and_visibility(service, people, tmp_path):
    run = judged_run(service, tmp_path)
    first = list_items(service, reason="judge_vs_reference", limit=1)[0][0]
    before = datetime.now(UTC)
    label_item(service, first.id, "fail", "restates the question", principal=people.rita)
    view = label_item(service, first.id, "pass", principal=people.rex)
    after = datetime.now(UTC)
    assert [(x.label, x.reviewer, x.note) for x in view.labels] == [("fail", "alpha:rita", "restates the question"), ("pass", "alpha:rex", "")]
    assert view.label.label == "pass" and view.status == "labelled"
    stamp = view.labels[0].labelled_at.replace(tzinfo=view.labels[0].labelled_at.tzinfo or UTC)
    assert before <= stamp <= after
    # what the reviewer reads: the question and reference of the dataset, and the judged answer
    shown = get_item(service, first.id, people.rita)
    reference = qa_frame().set_index("example_id").loc[first.example_id, "reference"]
    assert shown.example.answer == f"The answer is {reference}." and shown.example.reference == reference

    with pytest.raises(Forbidden) as refused:
        label_item(service, first.id, "pass", principal=people.mia)
    assert refused.value.field == "Authorization"
    with pytest.raises(InvalidInput) as bad:
        label_item(service, first.id, "maybe", principal=people.rita)
    assert bad.value.field == "label"

    # a restricted dataset: another team sees its items exactly as absent ones
    restricted = qa_frame().assign(example_id=lambda f: "r" + f["example_id"].astype(str))
    service.register_dataset("secret", restricted, task_type="generation", label_policy="human_reviewed",
                             access_policy={"level": "restricted", "teams": ["alpha"], "allow_aggregates": True})
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-verbose"), kind="openai_chat", eval_plan=[("secret", "qa")])
    service.request_eval("qa-bot@1", "secret", "qa")
    evaluate(service, "qa-bot@1", dagster_run_id="secret")
    hidden = list_items(service, dataset="secret", limit=1)[0][0]
    assert list_items(service, people.bob, dataset="secret")[1] == 0
    assert list_items(service, people.rita, dataset="secret")[1] > 0
    absent_id = 10**6
    with pytest.raises(NotFound) as as_hidden:
        get_item(service, hidden.id, people.bob)
    with pytest.raises(NotFound) as as_absent:
        get_item(service, absent_id, people.bob)
    assert str(as_hidden.value).replace(str(hidden.id), "N") == str(as_absent.value).replace(str(absent_id), "N")
    with pytest.raises(NotFound):
        label_item(service, hidden.id, "pass", principal=people.bob)
    assert run.run_id != hidden.run_id
    log = [(e.team, e.outcome, e.detail) for e in access_log(service, dataset_key="secret@1")]
    assert ("alpha", "granted", "review items listed") in log and ("beta", "denied", "review item") in log


def published_rows(service, key):
    return service.load_dataset(service.dataset(key))


def test_publish_appends_versions_with_lineage_and_refuses_leaks(service, people, tmp_path):
    run = judged_run(service, tmp_path, review={"audit_sample": 0})
    items = list_items(service, reason="judge_vs_reference", limit=1000)[0]
    for item in items[:3]:
        label_item(service, item.id, "pass", principal=people.rita)
    label_item(service, items[0].id, "fail", principal=people.rex)  # a relabel: the newest counts
    with pytest.raises(Forbidden):
        publish(service, "calib", items=[items[0].id], principal=people.mia)
    with pytest.raises(InvalidInput) as unlabelled:
        publish(service, "calib", items=[items[0].id, items[5].id], principal=people.rita)
    assert unlabelled.value.field == "items[1]"

    first = publish(service, "calib", items=[i.id for i in items[:3]], principal=people.rita)
    assert (first.dataset.key, first.created, first.label_policy, first.dataset.role) == ("calib@1", True, "human_reviewed", "calibration")
    assert first.dataset.label_policy == "human_reviewed"
    rows = published_rows(service, "calib@1")
    assert list(rows.columns) == [*CALIBRATION_COLUMNS, *PROVENANCE_COLUMNS]
    references = qa_frame().set_index("example_id")["reference"]
    expected = {f"{run.run_id}/{i.example_id}": ("fail" if i.id == items[0].id else "pass", references[i.example_id]) for i in items[:3]}
    assert sorted(rows["example_id"]) == sorted(expected)
    for row in rows.itertuples():
        label, reference = expected[row.example_id]
        assert (row.human_label, row.reference, row.answer) == (label, reference, f"The answer is {reference}.")
        assert (row.source_run, row.source_dataset) == (run.run_id, "qa@1")
    assert first.dataset.lineage["parent"] is None and first.dataset.lineage["review_items"] == sorted(i.id for i in items[:3])
    assert first.dataset.lineage["reviewers"] == ["alpha:rex", "alpha:rita"]
    assert {i.status for i in list_items(service, limit=1000)[0] if i.id in first.item_ids} == {"published"}
    with pytest.raises(Conflict):
        label_item(service, items[0].id, "pass", principal=people.rita)

    # a second publish appends to the previous version
    label_item(service, items[3].id, "fail", principal=people.rita)
    second = publish(service, "calib", dataset="qa", principal=people.rita)
    assert second.dataset.key == "calib@2" and second.item_ids == (items[3].id,) and second.dataset.lineage["parent"] == "calib@1"
    rows = published_rows(service, "calib@2")
    assert len(rows) == 4 and set(rows["example_id"]) == set(expected) | {f"{run.run_id}/{items[3].example_id}"}

    # a target whose labels partly came from elsewhere (label policy mixed): its new version stays "mixed"
    seed = pd.DataFrame([{"example_id": "seed-1", "prompt": "2+2?", "reference": "4", "answer": "4", "human_label": "pass",
                          "source_run": "", "source_dataset": "", "reviewer": "", "labelled_at": ""}])
    service.register_dataset("calib-mixed", seed, task_type="generation", label_policy="mixed", role="calibration", principal=people.mia)
    label_item(service, items[4].id, "pass", principal=people.rita)
    mixed = publish(service, "calib-mixed", items=[items[4].id], principal=people.rita)
    assert (mixed.dataset.key, mixed.label_policy, len(published_rows(service, "calib-mixed@2"))) == ("calib-mixed@2", "mixed", 2)


def test_restricted_rows_are_not_published_where_others_may_read_them(service, people, tmp_path):
    service.register_dataset("secret", qa_frame(), task_type="generation", label_policy="human_reviewed",
                             access_policy={"level": "restricted", "teams": ["alpha"]})
    service.register_suite(review_suite(review={"audit_sample": 0}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-verbose"), kind="openai_chat", eval_plan=[("secret", "qa")])
    evaluate(service, "qa-bot@1")
    item = list_items(service, people.rita, dataset="secret", limit=1)[0][0]
    label_item(service, item.id, "pass", principal=people.rita)
    datasets_before = len(service.datasets())
    with pytest.raises(Forbidden) as leak:
        publish(service, "calib", items=[item.id], principal=people.rita)  # a new, internal target
    assert leak.value.field == "access_policy"
    with pytest.raises(Forbidden) as wider:
        publish(service, "calib", items=[item.id], principal=people.rita,
                access_policy={"level": "restricted", "teams": ["alpha", "beta"]})
    assert wider.value.field == "access_policy"
    assert len(service.datasets()) == datasets_before and get_item(service, item.id, with_example=False).status == "labelled"
    done = publish(service, "calib", items=[item.id], principal=people.rita, access_policy={"level": "restricted", "teams": ["alpha"]})
    assert done.dataset.access_policy["teams"] == ["alpha"]
    # an existing internal target is refused, naming it
    service.register_dataset("open-calib", published_rows(service, "calib@1"), task_type="generation", label_policy="human_reviewed",
                             role="calibration", principal=people.mia)
    other = list_items(service, people.rita, dataset="secret", status="open", limit=1)[0][0]
    label_item(service, other.id, "fail", principal=people.rita)
    with pytest.raises(Forbidden) as into:
        publish(service, "open-calib", items=[other.id], principal=people.rita)
    assert into.value.field == "into"


def test_review_section_errors_name_the_field(service):
    for review, field in (({"threshold": "high"}, "review.threshold"), ({"reference_metric": "judge"}, "review.reference_metric"),
                          ({"reference_metric": "bleu"}, "review.reference_metric"), ({"audit_sample": -1}, "review.audit_sample"),
                          ({"sample": 3}, "review.sample"), ("yes", "review")):
        with pytest.raises(InvalidInput) as refused:
            service.register_suite(review_suite(review=review))
        assert refused.value.field == field, (review, refused.value)
    assert service.suites() == []
    # written only when given: a suite without it keeps its definition
    assert "review" not in service.register_suite(review_suite()).record.metric_defs


def test_cli_round_trip(service, tmp_path, capsys):
    judged_run(service, tmp_path, review={"audit_sample": 0})
    home = str(service.config.home)

    def evalp(*argv):
        code = evalp_main(["--home", home, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = evalp("review", "list", "--reason", "judge_vs_reference", "--json")
    items = json.loads(out)
    assert code == 0 and len(items) == 20
    code, out, _ = evalp("review", "show", str(items[0]["id"]))
    assert code == 0 and "The answer is" in out
    code, out, _ = evalp("review", "label", str(items[0]["id"]), "--label", "fail", "--note", "verbose", "--by", "ann", "--json")
    assert code == 0 and json.loads(out)["label"] == "fail" and json.loads(out)["reviewer"] == "ann"
    code, out, _ = evalp("review", "publish", "--into", "calib", "--item", str(items[0]["id"]), "--json")
    assert code == 0 and json.loads(out)["dataset"] == "calib@1" and json.loads(out)["label_policy"] == "human_reviewed"
    code, _, err = evalp("review", "publish", "--into", "calib", "--item", str(items[1]["id"]))
    assert code == 2 and "items[0]" in err and "no label" in err


def test_migration_matches_the_tables(service):
    with service.registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if any(t in str(d) for t in ("review_items", "review_labels", "lineage"))] == []


def test_api_through_a_real_server(service, tmp_path, monkeypatch, capsys):
    """``evalp serve`` in its own process: listing and paging, another team's token answered as for a missing id, a
    malformed id, a non-reviewer, a huge body, labelling and publishing, and the command line's ``--api``."""
    import httpx

    from tests.servers import serve_process

    judged_run(service, tmp_path, review={"audit_sample": 0}, samples=1)
    service.register_dataset("secret", qa_frame(), task_type="generation", label_policy="human_reviewed",
                             access_policy={"level": "restricted", "teams": ["alpha"], "allow_aggregates": True})
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-verbose"), kind="openai_chat", eval_plan=[("secret", "qa")])
    service.request_eval("qa-bot@1", "secret", "qa")
    evaluate(service, "qa-bot@1", dagster_run_id="secret")
    tokens = {name: create_token(service, team, principal=name, kind="person", roles=roles)
              for team, name, roles in (("alpha", "rita", ("member", "reviewer")), ("alpha", "mia", ("member",)),
                                        ("beta", "bob", ("member", "reviewer")))}
    secret_id = list_items(service, dataset="secret", limit=1)[0][0].id
    public = list_items(service, dataset="qa", limit=1000)[0]
    process, url = serve_process(service.config.home)
    try:
        def client(name):
            return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=60)

        with client("rita") as rita, client("mia") as mia, client("bob") as bob:
            listed = rita.get("/v1/review/items", params={"offset": 1, "limit": 2})
            assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "40" and len(listed.json()) == 2
            assert [i["id"] for i in listed.json()] == [public[1].id, public[2].id]
            assert bob.get("/v1/review/items").headers["X-Total-Count"] == "20"  # the restricted dataset's items are not there
            assert rita.get("/v1/review/items", params={"status": "nope"}).json()["field"] == "status"

            # another team: a hidden item is exactly a missing one
            hidden, absent = bob.get(f"/v1/review/items/{secret_id}"), bob.get("/v1/review/items/999999")
            assert hidden.status_code == absent.status_code == 404
            assert json.dumps(hidden.json()).replace(str(secret_id), "N") == json.dumps(absent.json()).replace("999999", "N")
            hidden = bob.post(f"/v1/review/items/{secret_id}/label", json={"label": "pass"})
            absent = bob.post("/v1/review/items/999999/label", json={"label": "pass"})
            assert hidden.status_code == absent.status_code == 404
            assert json.dumps(hidden.json()).replace(str(secret_id), "N") == json.dumps(absent.json()).replace("999999", "N")
            shown = rita.get(f"/v1/review/items/{secret_id}").json()
            assert shown["example"]["answer"].startswith("The answer is") and shown["dataset"] == "secret@1"

            malformed = rita.get("/v1/review/items/abc")
            assert malformed.status_code == 422 and malformed.json()["field"] == "itemId"
            refused = mia.post(f"/v1/review/items/{public[0].id}/label", json={"label": "pass"})
            assert refused.status_code == 403 and refused.json()["field"] == "Authorization"
            huge = rita.post(f"/v1/review/items/{public[0].id}/label", content=b'{"label": "pass", "note": "' + b"x" * (2 << 20) + b'"}',
                             headers={"Content-Type": "application/json"})
            assert huge.status_code == 413 and huge.json()["field"] == "body"
            streamed = rita.post(f"/v1/review/items/{public[0].id}/label", content=iter([b" " * 100_000] * 4),
                                 headers={"Content-Type": "application/json"})  # chunked: no Content-Length to go by
            assert streamed.status_code == 413 and streamed.json()["field"] == "body"
            bad = rita.post(f"/v1/review/items/{public[0].id}/label", json={"label": "maybe"})
            assert bad.status_code == 422 and bad.json()["field"] == "label"
            assert get_item(service, public[0].id, with_example=False).labels == ()  # nothing refused was written

            labelled = rita.post(f"/v1/review/items/{public[0].id}/label", json={"label": "fail", "note": "verbose"})
            assert labelled.status_code == 201 and labelled.json()["reviewer"] == "alpha:rita" and labelled.json()["status"] == "labelled"
            # bob may not publish what he may not see: the same answer as an item that does not exist
            named_hidden = bob.post("/v1/review/publish", json={"into": "calib-beta", "items": [secret_id]})
            assert named_hidden.status_code == 422 and named_hidden.json()["field"] == "items[0]"
            published = rita.post("/v1/review/publish", json={"into": "calib", "items": [public[0].id]})
            assert published.status_code == 201, published.json()
            body = published.json()
            assert body["dataset"]["key"] == "calib@1" and body["labelPolicy"] == "human_reviewed" and body["dataset"]["role"] == "calibration"
            assert body["lineage"]["review_items"] == [public[0].id] and body["lineage"]["reviewers"] == ["alpha:rita"]

        # the command line against the server, as the token's principal
        monkeypatch.setenv("EVALP_TOKEN", tokens["rita"])
        assert evalp_main(["review", "label", str(public[1].id), "--label", "pass", "--api", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["reviewer"] == "alpha:rita"
        assert evalp_main(["review", "list", "--status", "labelled", "--api", url, "--json"]) == 0
        assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [public[1].id]
        assert evalp_main(["review", "publish", "--into", "calib", "--dataset", "qa", "--api", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["dataset"] == "calib@2"
        monkeypatch.setenv("EVALP_TOKEN", tokens["bob"])
        assert evalp_main(["review", "show", str(secret_id), "--api", url]) == 2
        assert "HTTP 404" in capsys.readouterr().err
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_dagster_run_queues_items(service, tmp_path):
    """The same queue when the eval runs in Dagster (the metric_table asset computes the run's metrics)."""
    import dagster as dg

    from eval_platform_dagster.sensors import eval_request_sensor
    from tests.dagster_helpers import execute, tick

    service.register_suite(review_suite(review={"audit_sample": 3}))
    service.register_model("qa-bot", candidate_file(tmp_path, model="kb-qa-verbose"), kind="openai_chat", eval_plan=[("qa", "qa")])
    with dg.instance_for_test() as instance:
        request = tick(eval_request_sensor, instance, service).run_requests[0]
        assert execute("evaluate_eval_cell", instance, service, request.partition_key, request.tags).success
    run = service.runs("qa-bot@1")[0]
    assert len(by_reason(service, run.run_id, "judge_vs_reference")) == 20
    assert len(by_reason(service, run.run_id, "audit_sample")) == 3


@pytest.mark.postgres
def test_on_postgresql_labels_are_append_only_and_publish_works(tmp_path, server, monkeypatch, postgres_url):
    """The same queue on the real PostgreSQL server: the migration matches the tables, and its trigger refuses an
    edit or deletion of a label (the history is append-only below the code too)."""
    import sqlalchemy

    _, base_url = server
    monkeypatch.setenv("EVAL_LLM_BASE_URL", base_url)
    service = EvalPlatform.open(tmp_path / "home", db_url=postgres_url)
    try:
        service.register_dataset("qa", qa_frame(), task_type="generation", label_policy="human_reviewed")
        rita = authenticate(service, create_token(service, "alpha", principal="rita", kind="person", roles=("member", "reviewer")))
        run = judged_run(service, tmp_path, review={"audit_sample": 2})
        assert len(by_reason(service, run.run_id, "judge_vs_reference")) == 20
        item = list_items(service, limit=1)[0][0]
        label_item(service, item.id, "pass", principal=rita)
        label_item(service, item.id, "fail", principal=rita)
        for statement in ("UPDATE review_labels SET label = 'pass'", "DELETE FROM review_labels"):
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"), service.registry.engine.begin() as connection:
                connection.execute(sqlalchemy.text(statement))
        assert [x.label for x in get_item(service, item.id, with_example=False).labels] == ["pass", "fail"]
        published = publish(service, "calib", items=[item.id], principal=rita)
        assert published.dataset.key == "calib@1" and published_rows(service, "calib@1")["human_label"].tolist() == ["fail"]
        with service.registry.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert [d for d in diff if any(t in str(d) for t in ("review_items", "review_labels", "lineage"))] == []
    finally:
        service.close()
