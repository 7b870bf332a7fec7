"""Everything validated before anything is written (issue 18, item 9).

* a ``predictions`` model file that evaluation would refuse (non-finite scores, duplicate or missing ids, wrong
  columns) is refused at registration, naming the column and the row, and nothing is written;
* an infinite feature value is refused at dataset registration, naming the column and the row;
* YAML and JSON documents are parsed with limits on size, nesting and aliases: an alias bomb and a
  20,000-deep document are refused quickly with an error naming the limit (library, CLI and API);
* a baseline asked for while a live run exists is honoured (a queued run takes it) or refused with a 409
  naming the live run's baseline.
"""

from __future__ import annotations

import time
import tracemalloc

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select

from eval_platform.api.app import create_app
from eval_platform.cli.main import main
from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.core.yamlsafe import (
    Limits,
    check_structure,
    load_json,
    load_yaml,
)
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalPlanEntry, EvalRun, Model, access
from eval_platform.registry.access import create_token
from tests.api.test_api import Server
from tests.conftest import ROOT
from tests.evaluation.test_runner import evaluate

SUITE = {"suite_id": "s", "purpose": "exploratory", "task_type": "binary_classification", "metrics": ["roc_auc@1"],
         "comparison": {"bootstrap_resamples": 100, "seed": 0}}
EXAMPLES = pd.DataFrame({"example_id": [1, 2, 3, 4, 5, 6], "label": [0, 1, 0, 1, 1, 0],
                         "x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})


def scores(ids=(1, 2, 3, 4, 5, 6), values=(0.2, 0.9, 0.1, 0.7, 0.8, 0.3)) -> pd.DataFrame:
    return pd.DataFrame({"example_id": list(ids), "score": list(values)})


def written(platform: EvalPlatform) -> dict:
    """What a registration could write: registry rows, artifacts and files copied under the home."""
    with platform.registry.session() as session:
        rows = {t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in (Model, EvalPlanEntry, EvalRun)}
    models_dir = platform.config.home / "models"
    return rows | {"artifacts": platform.store.count(),
                   "model_files": sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []}


@pytest.fixture
def installed(platform):
    platform.register_dataset("bc", EXAMPLES, task_type="binary_classification", label_policy="human_reviewed")
    platform.register_suite(SUITE)
    return platform


# predictions files ---------------------------------------------------------------------------------------
BAD_SCORE_FILES = {
    # name: (table, words the error must contain: the column and the row, counted from 1)
    "nan score": (scores(values=(0.2, 0.9, np.nan, 0.7, 0.8, 0.3)), ["'score'", "nan", "row 3"]),
    "inf score": (scores(values=(0.2, 0.9, 0.1, 0.7, np.inf, 0.3)), ["'score'", "inf", "row 5"]),
    "-inf score": (scores(values=(-np.inf, 0.9, 0.1, 0.7, 0.8, 0.3)), ["'score'", "-inf", "row 1"]),
    "duplicate id": (scores(ids=(1, 2, 3, 4, 2, 5, 6), values=(0.2, 0.9, 0.1, 0.7, 0.8, 0.3, 0.5)),
                     ["duplicate", "example_id=2", "rows 2 and 5"]),
    "missing id": (scores(ids=(1, 2, 3, 5, 6), values=(0.2, 0.9, 0.1, 0.8, 0.3)),
                   ["no row for 1 example(s)", "bc@1", "example_id=4", "dataset row 4"]),
    "wrong column": (scores().rename(columns={"score": "probability"}), ["lacks column(s) ['score']", "probability"]),
    "no id column": (scores().rename(columns={"example_id": "id"}), ["lacks column(s) ['example_id']"]),
    "text score": (scores(values=("0.2", "high", "0.1", "0.7", "0.8", "0.3")), ["'score'", "must be numbers", "row 2", "'high'"]),
    "text ids": (scores(ids=("1", "2", "3", "4", "5", "6")), ["'example_id'", "numbers", "row 1", "'1'"]),
    "null id": (scores(ids=(1, 2, None, 4, 5, 6)), ["'example_id'", "empty at row 3"]),
}


@pytest.mark.parametrize("case", list(BAD_SCORE_FILES))
def test_a_bad_predictions_file_is_refused_at_registration_and_nothing_is_written(installed, tmp_path, case):
    table, words = BAD_SCORE_FILES[case]
    path = tmp_path / "scores.parquet"  # Parquet keeps the types a CSV would re-infer (text ids, text scores)
    table.to_parquet(path)
    before = written(installed)
    with pytest.raises(InvalidInput) as refused:
        installed.register_model("ext", path, kind="predictions", eval_plan=[("bc", "s")])
    assert refused.value.field == "model_file"
    for word in words:
        assert word in refused.value.problem, refused.value.problem
    assert written(installed) == before  # no model, no plan entry, no queued run, no artifact


def test_the_file_is_checked_against_every_dataset_the_registration_would_queue(installed, tmp_path):
    """The name's plan already evaluates ``bc``; a new version's file covering only the dataset it adds is
    refused for ``bc``, and one covering both is accepted with one queued run per dataset."""
    first = tmp_path / "v1.csv"
    scores().to_csv(first, index=False)
    installed.register_model("ext", first, kind="predictions", eval_plan=[("bc", "s")])
    other = pd.DataFrame({"example_id": [101, 102, 103], "label": [1, 0, 1], "x": [1.0, 2.0, 3.0]})
    installed.register_dataset("bc2", other, task_type="binary_classification", label_policy="synthetic")
    only_new = tmp_path / "v2.csv"
    scores(ids=(101, 102, 103), values=(0.9, 0.1, 0.8)).to_csv(only_new, index=False)
    before = written(installed)
    with pytest.raises(InvalidInput, match=r"no row for 6 example\(s\) for dataset bc@1 .*example_id=1 \(dataset row 1\)"):
        installed.register_model("ext", only_new, kind="predictions", eval_plan=[("bc2", "s")])
    assert written(installed) == before
    both = tmp_path / "v2-both.csv"
    pd.concat([scores(), scores(ids=(101, 102, 103), values=(0.9, 0.1, 0.8))]).to_csv(both, index=False)
    result = installed.register_model("ext", both, kind="predictions", eval_plan=[("bc2", "s")])
    assert result.created and result.record.key == "ext@2"
    assert sorted(r.dataset_key for r in installed.runs("ext@2")) == ["bc2@1", "bc@1"]


def test_other_task_types_are_checked_too(platform, tmp_path):
    platform.register_dataset("qa", pd.DataFrame({"example_id": [1, 2, 3], "prompt": ["a", "b", "c"], "reference": ["x", "y", "z"]}),
                              task_type="generation", label_policy="synthetic")
    platform.register_suite({"suite_id": "qa", "purpose": "exploratory", "task_type": "generation", "metrics": ["exact_match@1"]})
    answers = tmp_path / "answers.jsonl"
    pd.DataFrame({"example_id": [1, 2, 3], "prediction": ["x", None, "z"]}).to_json(answers, orient="records", lines=True)
    with pytest.raises(InvalidInput, match=r"'prediction' is empty \(null\) at row 2"):
        platform.register_model("bot", answers, kind="predictions", eval_plan=[("qa", "qa")])

    platform.register_dataset("iris", pd.DataFrame({"example_id": [1, 2, 3], "label": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]}),
                              task_type="multiclass_classification", label_policy="synthetic")
    platform.register_suite({"suite_id": "iris", "purpose": "exploratory", "task_type": "multiclass_classification",
                             "metrics": [{"name": "f1", "metric": "multiclass_f1_macro@1"}]})
    proba = tmp_path / "proba.csv"
    pd.DataFrame({"example_id": [1, 2, 3], "proba_a": [0.8, 0.1, 0.1], "proba_b": [0.2, 0.9, 0.9]}).to_csv(proba, index=False)
    with pytest.raises(InvalidInput, match=r"no proba_<class> column for class 'c' .*dataset row 3"):
        platform.register_model("clf", proba, kind="predictions", eval_plan=[("iris", "iris")])

    judged = pd.DataFrame({"query_id": ["q1", "q1", "q2", "q3"], "doc_id": ["d1", "d2", "d1", "d3"], "relevance": [1, 0, 2, 1]})
    platform.register_dataset("search", judged, task_type="ranking", label_policy="human_reviewed")
    platform.register_suite({"suite_id": "search", "purpose": "exploratory", "task_type": "ranking", "metrics": ["map@1"]})
    run = tmp_path / "run.csv"
    pd.DataFrame({"query_id": ["q1", "q1", "q3"], "doc_id": ["d1", "d9", "d3"], "score": [2.0, 1.0, 0.5]}).to_csv(run, index=False)
    with pytest.raises(InvalidInput, match=r"ranks nothing for 1 quer\(ies\) .*query_id='q2' \(dataset row 3\)"):
        platform.register_model("ranker", run, kind="predictions", eval_plan=[("search", "search")])
    with platform.registry.session() as session:
        assert session.scalar(select(func.count()).select_from(Model)) == 0


def test_cli_and_api_refuse_a_bad_predictions_file_before_writing(tmp_path, capsys):
    home = tmp_path / "home"
    platform = EvalPlatform.open(home)
    try:
        platform.register_dataset("bc", EXAMPLES, task_type="binary_classification", label_policy="human_reviewed")
        platform.register_suite(SUITE)
        bad = tmp_path / "nan.csv"
        bad.write_text("example_id,score\n1,0.2\n2,0.9\n3,\n4,0.7\n5,0.8\n6,0.3\n")  # row 3 has no score: NaN
        before = written(platform)
        code = main(["--home", str(home), "models", "register", "ext", "--file", str(bad), "--kind", "predictions", "--eval", "bc:s"])
        err = capsys.readouterr().err
        assert code != 0 and "'score'" in err and "row 3" in err, err
        assert written(platform) == before

        token = create_token(platform, "alpha")
        with Server(create_app(platform)) as server:
            client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            response = client.post("/v1/models", files={"file": ("nan.csv", bad.read_bytes())},
                                   data={"name": "ext", "kind": "predictions", "evalPlan": ["bc:s"]})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["field"] == "file" and "'score'" in problem["detail"] and "row 3" in problem["detail"]
            assert written(platform) == before  # the uploaded copy is gone too
            good = scores().to_csv(index=False).encode()
            response = client.post("/v1/models", files={"file": ("good.csv", good)},
                                   data={"name": "ext", "kind": "predictions", "evalPlan": ["bc:s"]})
            assert response.status_code == 201, response.text
            assert len(response.json()["queuedRuns"]) == 1
    finally:
        platform.close()


def test_a_run_asked_for_on_a_dataset_the_file_does_not_cover_is_refused(installed, tmp_path, capsys, monkeypatch):
    """Registration checked the plan's datasets; a run asked for later (CLI, API) on another dataset is
    checked the same way before it is queued."""
    path = tmp_path / "v1.csv"
    scores().to_csv(path, index=False)
    installed.register_model("ext", path, kind="predictions", eval_plan=[("bc", "s")])
    other = pd.DataFrame({"example_id": [101, 102, 103], "label": [1, 0, 1], "x": [1.0, 2.0, 3.0]})
    installed.register_dataset("bc2", other, task_type="binary_classification", label_policy="synthetic")
    before = written(installed)
    with pytest.raises(InvalidInput, match=r"no row for 3 example\(s\) for dataset bc2@1 .*example_id=101"):
        installed.request_eval("ext@1", "bc2", "s")
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", installed.config.db_url)
    assert main(["--home", str(installed.config.home), "runs", "request", "--model", "ext@1", "--dataset", "bc2", "--suite", "s"]) == 2
    assert "example_id=101" in capsys.readouterr().err
    for kind, name in ((access.MODEL, "ext"), (access.DATASET, "bc"), (access.DATASET, "bc2"), (access.SUITE, "s")):
        access.set_owner(installed, kind, name, "alpha")  # the operator gives the names it registered to team alpha
    token = create_token(installed, "alpha")
    with Server(create_app(installed)) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        response = client.post("/v1/eval-runs", json={"modelVersion": "ext@1", "datasetId": "bc2", "metricSuiteId": "s"})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "modelVersion" and "example_id=101" in response.json()["detail"]
    assert written(installed) == before


# non-finite features -------------------------------------------------------------------------------------
def test_an_infinite_feature_is_refused_at_dataset_registration(platform):
    frame = EXAMPLES.assign(y=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    frame.loc[3, "y"] = -np.inf  # the 4th row
    with pytest.raises(InvalidInput) as refused:
        platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed")
    assert refused.value.field == "column 'y'"
    assert "-inf" in refused.value.problem and "row 4" in refused.value.problem
    assert platform.datasets() == [] and platform.store.count() == 0
    # a missing value (NaN) is not infinite: estimators that handle missing values may be evaluated on it
    platform.register_dataset("bc", EXAMPLES.assign(y=[1.0, np.nan, 3.0, 4.0, 5.0, 6.0]), task_type="binary_classification",
                              label_policy="human_reviewed")
    # a column that is not a feature (a slice) is not checked
    assert platform.register_dataset("bc-sliced", EXAMPLES.assign(size=[1.0, np.inf, 1.0, 2.0, 2.0, 1.0]), slice_columns=["size"],
                                     feature_columns=["x"], task_type="binary_classification", label_policy="human_reviewed").created


def test_an_infinite_relevance_is_refused_and_the_asset_check_reports_infinite_features():
    from eval_platform.core.tasks import get_task_type
    from eval_platform.datasets.validation import CHECK_FINITE, validate_frame

    judged = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["d1", "d2", "d1"], "relevance": [1, np.inf, 0]})
    report = validate_frame(judged, get_task_type("ranking"))
    assert not report.success
    with pytest.raises(InvalidInput, match=r"row 2"):
        report.raise_for_failures()
    report = validate_frame(EXAMPLES.assign(x=[0.1, np.inf, 0.3, 0.4, 0.5, 0.6]), get_task_type("binary_classification"),
                            feature_columns=["x"])
    failures = report.by_check()[CHECK_FINITE]
    assert [(o.column, o.success, o.unexpected_count) for o in failures] == [("x", False, 1)]
    assert "row 2" in failures[0].problem


def test_the_api_refuses_an_infinite_feature_naming_the_column_and_row(tmp_path):
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        token = create_token(platform, "alpha")
        with Server(create_app(platform)) as server:
            client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            csv = "example_id,label,x\n1,0,0.1\n2,1,0.2\n3,0,inf\n4,1,0.4\n"
            response = client.post("/v1/datasets", files={"file": ("bc.csv", csv.encode())},
                                   data={"datasetId": "bc", "taskType": "binary_classification", "labelPolicy": "human_reviewed"})
            assert response.status_code == 422, response.text
            assert response.json()["field"] == "column 'x'" and "row 3" in response.json()["detail"]
        assert platform.datasets() == []
    finally:
        platform.close()


# YAML and JSON with limits -------------------------------------------------------------------------------
def alias_bomb(levels: int = 9) -> str:
    """The billion laughs under a suite's ``llm.prices``: 9 aliases of 9 aliases ... (9**9 leaves)."""
    lines = ["suite_id: bomb", "purpose: exploratory", "task_type: generation", "metrics: [exact_match@1]", "llm:", "  prices:",
             '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"    {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_an_alias_bomb_is_refused_in_well_under_a_second_and_little_memory():
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as refused:
        load_yaml(alias_bomb(), field="file", source="bomb.yaml")
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 20 * 2**20, (seconds, peak)
    assert refused.value.field == "file"
    assert "bomb.yaml" in str(refused.value) and "limit 100000" in str(refused.value)
    # few aliases, each expanding to a lot, is what the expanded-node limit is for; many aliases are refused too
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    with pytest.raises(InvalidInput, match=r"more than 100 aliases \(limit 100\)"):
        load_yaml(many, field="file")


def test_a_parsed_bomb_handed_to_the_library_is_refused_too():
    """A caller that loaded the bomb with its own ``yaml.safe_load`` (shared references, small) hands it to
    ``register_suite``: the definition is refused before anything walks every expanded node."""
    from eval_platform.suites.definition import parse_suite

    shared = yaml.safe_load(alias_bomb())
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match=r"more than 100000 nodes"):
        parse_suite(shared)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("text", [deep(20_000), deep(65), "a:\n" + "".join("  " * i + "  b:\n" for i in range(100)) + "  " * 101 + "c"])
def test_a_deep_document_is_refused_with_a_clear_error(text):
    with pytest.raises(InvalidInput, match=r"^file: s\.yaml: nested deeper than 64 levels \(limit 64\)"):
        load_yaml(text, field="file", source="s.yaml")


def test_json_limits():
    with pytest.raises(InvalidInput, match=r"nested deeper than 64 levels"):
        load_json(deep(20_000), field="model_file")
    # brackets inside strings do not nest
    assert load_json('{"a": "' + "[" * 500 + '", "b": [[1]]}', field="body") == {"a": "[" * 500, "b": [[1]]}
    with pytest.raises(InvalidInput, match=r"the document is 2000\d+ bytes, over the limit of 1048576 bytes"):
        load_json('"' + "x" * 2_000_000 + '"', field="body")
    nested: dict = {}
    inner = nested
    for _ in range(100):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(InvalidInput, match=r"nested deeper than 10 levels"):
        check_structure(nested, field="body", limits=Limits(max_depth=10))


def test_shipped_suites_load_as_with_safe_load():
    for path in (ROOT / "demo").glob("*.yaml"):
        assert load_yaml(path.read_text(), field="file", source=str(path)) == yaml.safe_load(path.read_text())
    anchors = "base: &base {min: 0.5}\nrules:\n  - {<<: *base, metric: auc}\n  - *base\n"
    assert load_yaml(anchors, field="file") == yaml.safe_load(anchors)


def test_the_cli_refuses_bombs_and_deep_documents(tmp_path, capsys):
    home = str(tmp_path / "home")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    started = time.perf_counter()
    assert main(["--home", home, "suites", "register", str(bomb)]) == 2
    assert time.perf_counter() - started < 5  # the CLI's own start included; the bomb itself takes milliseconds
    err = capsys.readouterr().err
    assert "bomb.yaml" in err and "expands to more than 100000 nodes" in err
    nested = tmp_path / "deep.yaml"
    nested.write_text(deep(20_000))
    for command in (["suites", "register"], ["experiments", "register", "--by", "alice"]):
        assert main(["--home", home, *command, str(nested)]) == 2
        err = capsys.readouterr().err
        assert "deep.yaml" in err and "nested deeper than 64 levels (limit 64)" in err and "Recursion" not in err
    assert not (tmp_path / "home").exists()  # refused before the installation was even opened
    # a JSON model file (an openai_chat candidate spec) is bounded the same way
    spec = tmp_path / "candidate.json"
    spec.write_text(deep(20_000))
    assert main(["--home", home, "models", "register", "bot", "--file", str(spec), "--kind", "openai_chat"]) == 2
    assert "nested deeper than 64 levels" in capsys.readouterr().err
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        assert platform.suites() == [] and platform.models() == []
    finally:
        platform.close()


def test_the_api_refuses_deep_and_oversized_json_bodies(tmp_path):
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        token = create_token(platform, "alpha")
        with Server(create_app(platform)) as server:
            client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "application/json"}, timeout=60)
            for path in ("/v1/metric-suites", "/v1/experiments", "/v1/eval-runs"):
                for body in (deep(20_000), '{"suite_id": ' + deep(100) + "}"):
                    response = client.post(path, content=body)
                    assert response.status_code == 422, (path, response.text)
                    assert response.json()["field"] == "body"
                    assert "nested deeper than 64 levels (limit 64)" in response.json()["detail"]
            response = client.post("/v1/metric-suites", content='{"suite_id": "' + "x" * (2 << 20) + '"}')
            assert response.status_code == 422 and "over the limit of 1048576 bytes" in response.json()["detail"]
            # not JSON at all: answered as before (FastAPI's decoding error)
            response = client.post("/v1/metric-suites", content="{nope")
            assert response.status_code == 422 and "JSON decode error" in response.json()["detail"]
            # a normal suite still registers
            assert client.post("/v1/metric-suites", json=SUITE).status_code == 201
        assert [s.key for s in platform.suites()] == ["s@1"]
    finally:
        platform.close()


# a baseline asked for while a live run exists ------------------------------------------------------------
@pytest.fixture
def three_versions(installed, tmp_path):
    for version, values in enumerate([(0.2, 0.9, 0.1, 0.7, 0.8, 0.3), (0.3, 0.8, 0.2, 0.6, 0.9, 0.1), (0.1, 0.7, 0.4, 0.9, 0.6, 0.2)], 1):
        path = tmp_path / f"v{version}.csv"
        scores(values=values).to_csv(path, index=False)
        installed.register_model("ext", path, kind="predictions", eval_plan=[("bc", "s")])
    return installed


def test_a_queued_run_takes_the_baseline_asked_for(three_versions):
    platform = three_versions
    queued = platform.runs("ext@3")[0]
    assert queued.status == "queued" and queued.requested_baseline is None
    run = platform.request_eval("ext@3", "bc", "s", baseline="ext@1")
    assert run.run_id == queued.run_id and platform.run(run.run_id).requested_baseline == "ext@1"
    assert platform.request_eval("ext@3", "bc", "s", baseline="ext@1").run_id == queued.run_id  # the same ask: the same run
    assert platform.request_eval("ext@3", "bc", "s").run_id == queued.run_id  # no baseline asked: the run as it is
    with pytest.raises(Conflict) as refused:
        platform.request_eval("ext@3", "bc", "s", baseline="ext@2")
    assert "against baseline ext@1, not ext@2" in str(refused.value) and "--recompute" in str(refused.value)
    assert [r.requested_baseline for r in platform.runs("ext@3")] == ["ext@1"]
    evaluate(platform, "ext@1")
    evaluate(platform, "ext@3")
    assert platform.run(queued.run_id).comparison["baseline_model"] == "ext@1"  # honoured


def test_a_started_or_finished_run_refuses_another_baseline_until_recomputed(three_versions):
    platform = three_versions
    (running,) = platform.claim_runs("ext@2", "dagster-1", requested=True)
    with pytest.raises(Conflict, match=rf"run {running.run_id} \(running\) .* against the promoted version \(none yet\), not ext@3"):
        platform.request_eval("ext@2", "bc", "s", baseline="ext@3")
    with pytest.raises(Conflict, match="running"):  # a running run cannot be superseded either
        platform.request_eval("ext@2", "bc", "s", baseline="ext@3", recompute=True)
    evaluate(platform, "ext@3")  # finished, compared with no baseline (none is promoted)
    (finished,) = platform.runs("ext@3")
    assert finished.status == "succeeded"
    with pytest.raises(Conflict, match=rf"run {finished.run_id} \(succeeded\) .* against the promoted version \(none yet\), not ext@1"):
        platform.request_eval("ext@3", "bc", "s", baseline="ext@1")
    again = platform.request_eval("ext@3", "bc", "s", baseline="ext@1", recompute=True)
    assert again.run_id != finished.run_id and again.requested_baseline == "ext@1" and again.status == "queued"
    assert platform.run(finished.run_id).status == "superseded"


def test_cli_and_api_honour_or_refuse_a_baseline(three_versions, capsys, monkeypatch):
    platform = three_versions
    db = ["--home", str(platform.config.home)]
    queued = platform.runs("ext@3")[0]
    # the CLI opens the same installation (the fixture's registry may be PostgreSQL: pass its URL)
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", platform.config.db_url)
    code = main([*db, "runs", "request", "--model", "ext@3", "--dataset", "bc", "--suite", "s", "--baseline", "ext@1", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and queued.run_id in out
    assert platform.run(queued.run_id).requested_baseline == "ext@1"
    code = main([*db, "runs", "request", "--model", "ext@3", "--dataset", "bc", "--suite", "s", "--baseline", "ext@2"])
    err = capsys.readouterr().err
    assert code == 2 and "baseline ext@1, not ext@2" in err and "--recompute" in err

    for kind, name in ((access.MODEL, "ext"), (access.DATASET, "bc"), (access.SUITE, "s")):
        access.set_owner(platform, kind, name, "alpha")  # the operator gives the names it registered to team alpha
    token = create_token(platform, "alpha")
    with Server(create_app(platform)) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        ask = {"modelVersion": "ext@2", "datasetId": "bc", "metricSuiteId": "s"}
        response = client.post("/v1/eval-runs", json={**ask, "baseline": "ext@1"})
        assert response.status_code == 200 and response.json()["created"] is False, response.text
        assert response.json()["requestedBaseline"] == "ext@1"
        response = client.post("/v1/eval-runs", json={**ask, "baseline": "ext@3"})
        assert response.status_code == 409, response.text
        assert "baseline ext@1, not ext@3" in response.json()["detail"]
        response = client.post("/v1/eval-runs", json={**ask, "baseline": "ext@3", "recompute": True})
        assert response.status_code == 201 and response.json()["requestedBaseline"] == "ext@3", response.text
    assert sorted((r.status, r.requested_baseline) for r in platform.runs("ext@2")) == [("queued", "ext@3"), ("superseded", "ext@1")]



def test_a_recompute_onto_a_dataset_the_file_does_not_cover_queues_nothing(installed, tmp_path):
    """A contaminated dataset's replacement is checked against every affected predictions file before the first
    replacement run is queued: all or nothing."""
    from eval_platform.governance.incidents import invalidate_dataset, request_recompute

    path = tmp_path / "v1.csv"
    scores().to_csv(path, index=False)
    installed.register_model("ext", path, kind="predictions", eval_plan=[("bc", "s")])
    evaluate(installed, "ext@1")
    invalidate_dataset(installed, "bc@1", reason="labels leaked into the training set", reported_by="alpha")
    installed.register_dataset("bc", EXAMPLES.assign(example_id=[11, 12, 13, 14, 15, 16]), task_type="binary_classification",
                               label_policy="human_reviewed")
    before = written(installed)
    with pytest.raises(InvalidInput, match=r"dataset bc@2 .*example_id=11"):
        request_recompute(installed, "bc@1", requested_by="alpha")
    assert written(installed) == before
