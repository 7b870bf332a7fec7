"""``evalp gate wait``: the CI contract's exit codes, its Markdown and JUnit outputs, locally and against a
served API (README "CI contract").

One installation serves every test: ``good`` (version 2 compared with the promoted version 1) passes,
``weak`` (a one-split stump) fails, ``broken``'s run failed terminally (no_decision recorded with the cause),
``queued`` has a queued run and the interim no_decision the launch sensor records while it retries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

from eval_platform.cli.main import build_parser, main
from eval_platform.evaluation import runner
from eval_platform.gates import releases
from eval_platform.gates.ci_report import junit_xml, markdown_summary
from eval_platform.gates.waiting import GateOverrideInfo, GateStatus, gate_status
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import create_token
from tests.conftest import ROOT
from tests.evaluation.test_runner import evaluate

PLAN = [("bc", "breast-cancer-release")]
NASTY = "a | b <script>alert(1)</script> & c\nsecond line @octo-org/team *bold* `code` [link](x) \x1b[31m"


@pytest.fixture(scope="module")
def world(tmp_path_factory, breast_cancer, model_files, release_suite):
    home = tmp_path_factory.mktemp("gatewait") / "home"
    platform = EvalPlatform.open(home)
    _, _, frame = breast_cancer
    # restricted to team alpha: another team may not know of the models evaluated on it (the API answers 404)
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                              access_policy={"level": "restricted", "teams": ["alpha"]}, slice_columns=["tumour_size"])
    platform.register_suite(release_suite)
    platform.register_model("good", model_files["logistic_regression"], eval_plan=PLAN)
    evaluate(platform, "good@1")
    releases.promote(platform, "good@1", promoted_by="release-manager")  # good@2's baseline
    platform.register_model("good", model_files["gradient_boosting"], eval_plan=PLAN)
    evaluate(platform, "good@2")
    for name in ("weak", "waived"):
        platform.register_model(name, model_files["decision_stump"], eval_plan=PLAN)
        evaluate(platform, f"{name}@1")
    platform.register_model("broken", model_files["logistic_regression"], eval_plan=PLAN)
    # what the evaluation asset does when its step dies: the claimed runs fail, the gate is decided again
    platform.claim_runs("broken@1", "dagster-run-broken", requested=True)
    assert platform.fail_runs_of("dagster-run-broken", "RuntimeError: the step's process was killed")
    runner.decide_model_version(platform, "broken@1")
    platform.register_model("queued", model_files["gradient_boosting"], eval_plan=PLAN)
    runner.decide_model_version(platform, "queued@1")  # the launch sensor's interim no_decision while it retries
    yield platform
    platform.close()


def evalp(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wait(capsys, world: EvalPlatform, model: str, *extra: str) -> tuple[int, str, str]:
    return evalp(capsys, "--home", str(world.config.home), "gate", "wait", model, "--poll-interval", "0.05", *extra)


# exit codes -------------------------------------------------------------------------------------------
def test_exit_codes_pass_fail_no_decision(capsys, world):
    code, out, _ = wait(capsys, world, "good@2", "--timeout", "5")
    assert code == 0 and out.startswith("gate decision for good@2: PASS")
    code, out, _ = wait(capsys, world, "weak@1", "--timeout", "5")
    assert code == 1 and out.startswith("gate decision for weak@1: FAIL") and "[fail] roc_auc >= 0.97" in out
    # a run that failed for good: the gate will never decide otherwise, so no_decision is the answer, not a wait
    started = time.monotonic()
    code, out, _ = wait(capsys, world, "broken@1", "--timeout", "30")
    assert code == 2 and time.monotonic() - started < 10
    assert "NO_DECISION" in out and "is failed: RuntimeError: the step's process was killed" in out


def test_an_interim_no_decision_is_waited_through_until_the_timeout(capsys, world):
    assert world.gate_decision("queued@1").decision == "no_decision"  # recorded while its run is queued
    started = time.monotonic()
    code, out, err = wait(capsys, world, "queued@1", "--timeout", "0.5")
    elapsed = time.monotonic() - started
    assert code == 3 and 0.5 <= elapsed < 5
    assert ("timed out after 0.5 s waiting for queued@1's gate decision: 1 release-blocking eval run(s) still queued "
            "or running (current decision: no_decision)") in err
    assert out.startswith("gate decision for queued@1: NOT DECIDED\n")
    assert "not decided within 0.5 s (1 eval run(s) pending; current: no_decision)" in out


def test_wait_blocks_until_the_decision_arrives(world, tmp_path, model_files):
    """A real ``evalp`` process waits; the evaluation finishes meanwhile; the process exits with the decision."""
    world.register_model("late", model_files["logistic_regression"], eval_plan=PLAN)
    process = subprocess.Popen([sys.executable, "-m", "eval_platform.cli.main", "--home", str(world.config.home), "gate", "wait",
                                "late@1", "--timeout", "120", "--poll-interval", "0.1", "--junit", str(tmp_path / "junit.xml")],
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        # its first look found the run queued (the line is printed once, before its first pause)
        assert process.stderr.readline() == ("evalp: gate wait: waiting up to 120 s for late@1's gate decision "
                                             "(1 eval run(s) pending)\n")
        evaluate(world, "late@1")
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.startswith("gate decision for late@1: PASS")
    assert ET.parse(tmp_path / "junit.xml").getroot().get("failures") == "0"


def test_an_override_counts_and_is_shown(capsys, world):
    code, _, _ = wait(capsys, world, "waived@1", "--timeout", "5")
    assert code == 1
    releases.override_gate(world, "waived@1", approver="release-manager", reason=NASTY)
    code, out, _ = wait(capsys, world, "waived@1", "--timeout", "5", "--format", "markdown")
    assert code == 0
    assert out.startswith("### Release gate for waived&#64;1: OVERRIDDEN")
    assert "> Overridden by release-manager (recorded decision: fail): a \\| b &lt;script&gt;" in out
    code, out, _ = wait(capsys, world, "waived@1", "--timeout", "5")
    assert code == 0 and "overridden by release-manager (recorded fail)" in out


def test_not_found_and_usage_errors_exit_4(capsys, world, tmp_path):
    code, _, err = wait(capsys, world, "nobody@1", "--timeout", "5")
    assert code == 4 and err == "evalp: error: model version 'nobody@1' not found\n"
    code, _, err = wait(capsys, world, "good", "--timeout", "5")  # no version
    assert code == 4 and "good" in err
    for bad in (["--timeout", "-1"], ["--timeout", "nan"], ["--timeout", "soon"], ["--poll-interval", "0"], ["--format", "html"],
                ["--unknown"]):
        with pytest.raises(SystemExit) as exited:
            main(["gate", "wait", "good@2", *bad])
        assert exited.value.code == 4, bad
    capsys.readouterr()
    code, _, err = evalp(capsys, "gate", "wait", "good@2", "--api", "http://127.0.0.1:9", "--token-env", "EVALP_TEST_UNSET_TOKEN")
    assert code == 4 and "$EVALP_TEST_UNSET_TOKEN is empty or unset" in err


# outputs ----------------------------------------------------------------------------------------------
def test_markdown_is_the_comparison_table_and_reasons(capsys, world):
    code, out, _ = wait(capsys, world, "good@2", "--timeout", "5", "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "### Release gate for good&#64;2: PASS"
    header = lines.index("| Eval run | Metric | Candidate | Baseline | Delta [interval] | Rule | Verdict |")
    rows = [line for line in lines[header + 2:] if line.startswith("| ")]
    reasons = world.gate_decision("good@2").reasons[0]["reasons"]
    assert len(rows) == len(reasons) == 7
    for row, reason in zip(rows, reasons, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 7
        assert cells[1] == reason["metric"].replace("_", "\\_")
        assert float(cells[2]) == pytest.approx(reason["observed"], rel=1e-3)
        assert float(cells[3]) == pytest.approx(reason["baseline"], rel=1e-3)
        delta, interval = cells[4].split(" ", 1)
        low, high = (float(v) for v in interval.strip("[]").split(", "))
        assert float(delta) == pytest.approx(reason["delta"], rel=1e-3, abs=1e-6) and low <= float(delta) <= high
        assert cells[6] == "✅ pass"
    assert "**Reasons**" in lines and any("whole interval" in line for line in lines)


def _status(message: str, slice_value: str = "size=<1cm|&") -> GateStatus:
    reason = {"rule": "roc_auc >= 0.97", "metric": "roc_auc", "kind": "min", "threshold": 0.97, "observed": 0.9,
              "baseline": None, "delta": None, "interval": None, "slice": slice_value, "outcome": "fail", "message": message}
    return GateStatus("m@1", "fail", "fail", "2026-01-01T00:00:00+00:00", True, 0, [
        {"run": "run-1 (bc@1, s@1)", "outcome": "fail", "reasons": [reason, {**reason, "outcome": "no_decision"},
                                                                     {**reason, "outcome": "not_applicable"}]},
        {"run": "run-2 (bc@1, s@1)", "outcome": "pass", "reasons": [{**reason, "outcome": "pass"}]}],
        GateOverrideInfo("ops", NASTY, "fail"))


def test_markdown_escapes_user_text():
    out = markdown_summary(_status(NASTY))
    table = [line for line in out.splitlines() if line.startswith("| run-1")]
    assert len(table) == 3
    for line in table:  # an unescaped | would add cells
        assert len([c for c in line.replace("\\|", "").split("|")]) == 9
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; c<br>second line" in out
    assert "&#64;octo-org/team" in out and "@octo" not in out  # nobody is mentioned
    assert "\\*bold\\*" in out and "\\`code\\`" in out and "\\[link\\](x)" in out
    assert "roc\\_auc (size=&lt;1cm\\|&amp;)" in out


def test_junit_structure_and_escaping(tmp_path):
    root = ET.fromstring(junit_xml(_status(NASTY)))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["run-1 (bc@1, s@1)", "run-2 (bc@1, s@1)"]
    first = suites[0]
    assert (first.get("tests"), first.get("failures"), first.get("errors"), first.get("skipped")) == ("3", "1", "1", "1")
    cases = first.findall("testcase")
    assert [c.get("name") for c in cases] == ["roc_auc >= 0.97 / size=<1cm|&"] * 3
    failure, error, skipped = cases[0].find("failure"), cases[1].find("error"), cases[2].find("skipped")
    assert failure is not None and error is not None and skipped is not None
    # the text survives the round trip exactly, the escape character (not XML 1.0) spelled out
    assert failure.get("message") == NASTY.replace("\x1b", "\\x1b") and failure.get("type") == "gate_fail"
    assert error.get("type") == "gate_no_decision" and "observed: 0.9" in (error.text or "")
    assert suites[1].find("testcase/failure") is None and suites[1].get("failures") == "0"
    properties = {p.get("name"): p.get("value") for p in first.findall("properties/property")}
    assert properties["override.reason"] == NASTY.replace("\x1b", "\\x1b") and properties["gate_decision"] == "fail"


def test_junit_file_of_a_real_gate_and_of_a_timeout(capsys, world, tmp_path):
    report = tmp_path / "gate.xml"
    code, _, _ = wait(capsys, world, "weak@1", "--timeout", "5", "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    reasons = world.gate_decision("weak@1").reasons[0]["reasons"]
    failed = [r for r in reasons if r["outcome"] == "fail"]
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(reasons) and int(root.get("failures")) == len(failed) > 0
    assert sorted(c.find("failure").get("message") for c in cases if c.find("failure") is not None) == sorted(r["message"] for r in failed)
    code, _, _ = wait(capsys, world, "queued@1", "--timeout", "0.2", "--junit", str(report))
    assert code == 3
    timeout_case = ET.parse(report).getroot().find("testsuite[@name='gate wait']/testcase/error")
    assert timeout_case is not None and timeout_case.get("type") == "gate_timeout"
    assert not (tmp_path / "gate.xml.partial").exists()


def test_gate_status_is_settled_only_after_the_last_run_ended(world):
    status = gate_status(world, "queued@1")
    assert (status.settled, status.pending_runs, status.decision) == (False, 1, "no_decision")
    assert gate_status(world, "broken@1").settled and gate_status(world, "good@2").settled


# the HTTP API ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(world):
    from tests.servers import serve_process

    process, url = serve_process(world.config.home)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_wait_against_the_api_with_a_team_token(capsys, world, served, monkeypatch, model_files):
    monkeypatch.setenv("EVALP_TOKEN", create_token(world, "alpha", name="ci"))
    monkeypatch.setenv("OTHER_TEAM_TOKEN", create_token(world, "beta", name="ci"))
    api = ["--api", served, "--poll-interval", "0.05"]
    code, remote_md, _ = evalp(capsys, "gate", "wait", "good@2", "--timeout", "10", "--format", "markdown", *api)
    assert code == 0
    _, local_md, _ = wait(capsys, world, "good@2", "--timeout", "5", "--format", "markdown")
    assert remote_md == local_md  # the API's camelCase reasons read back as the recorded ones
    assert evalp(capsys, "gate", "wait", "weak@1", "--timeout", "10", *api)[0] == 1
    assert evalp(capsys, "gate", "wait", "broken@1", "--timeout", "10", *api)[0] == 2
    code, _, err = evalp(capsys, "gate", "wait", "queued@1", "--timeout", "0.3", *api)
    assert code == 3 and "1 release-blocking eval run(s) still queued or running" in err

    # another team's token gets exactly what a model that does not exist gets
    other = [*api, "--token-env", "OTHER_TEAM_TOKEN"]
    hidden = evalp(capsys, "gate", "wait", "good@2", "--timeout", "10", *other)
    absent = evalp(capsys, "gate", "wait", "ghost@2", "--timeout", "10", *other)
    assert hidden[0] == absent[0] == 4 and hidden[2].replace("good@2", "X") == absent[2].replace("ghost@2", "X")

    # the example workflow's registration: the file uploaded as the token's team, its eval queued
    code, out, err = evalp(capsys, "--json", "models", "register", "from-ci", "--file", str(model_files["logistic_regression"]),
                           "--eval", "bc:breast-cancer-release", "--description", "PR #7", "--api", served)
    registered = json.loads(out)
    assert code == 0, err
    assert registered["key"] == "from-ci@1" and registered["created"] is True and len(registered["queuedRuns"]) == 1
    assert world.model("from-ci@1").owner_team == "alpha" and world.model("from-ci@1").description == "PR #7"
    code, _, err = evalp(capsys, "gate", "wait", "from-ci@1", "--timeout", "0.2", *api)
    assert code == 3 and "1 release-blocking eval run(s) still queued or running" in err
    code, _, err = evalp(capsys, "models", "register", "from-ci", "--file", str(model_files["decision_stump"]),
                         "--api", served, "--token-env", "OTHER_TEAM_TOKEN")  # alpha's name
    assert code == 2 and "the API refused the registration (HTTP 403)" in err
    assert [m.key for m in world.models() if m.name == "from-ci"] == ["from-ci@1"]

    monkeypatch.setenv("EVALP_TOKEN", "evalp_not-a-token")
    code, _, err = evalp(capsys, "gate", "wait", "good@2", "--timeout", "10", *api)
    assert code == 4 and "the API refused" in err


def test_an_unreachable_api_is_retried_then_reported(capsys, monkeypatch):
    from tests.servers import free_port

    monkeypatch.setenv("EVALP_TOKEN", "evalp_x")
    code, _, err = evalp(capsys, "gate", "wait", "good@2", "--timeout", "0.3", "--poll-interval", "0.05",
                         "--api", f"http://127.0.0.1:{free_port()}")
    assert code == 75 and "unreachable" in err and "gave up after 0.3 s" in err


# the GitHub Actions example ---------------------------------------------------------------------------
def _commands(run: str) -> list[list[str]]:
    """The evalp command lines of a workflow step's shell script (continuations joined, ${{ }} and $VARS kept as words)."""
    import shlex

    script = run.replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        for part in line.split("|")[0].split("&&"):
            words = shlex.split(part.split(">")[0], comments=True) if part.strip() else []
            if words[:1] == ["evalp"]:
                commands.append(words[1:])
    return commands


def test_the_github_actions_example_uses_commands_the_cli_has():
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/checkout@") for u in uses) and any(u.startswith("actions/upload-artifact@") for u in uses)
    commands = [c for step in steps if "run" in step for c in _commands(step["run"])]
    assert [c[:2] for c in commands if c[0] != "--json"] == [["gate", "wait"]] and ["models", "register"] in [
        c[1:3] for c in commands if c[0] == "--json"]
    parser = build_parser()
    for words in commands:
        args = parser.parse_args(words)  # SystemExit (a failed test) for a command or option the CLI lacks
        assert callable(args.func)
    gate = next(parser.parse_args(c) for c in commands if c[:2] == ["gate", "wait"])
    assert gate.api and gate.format == "markdown" and gate.junit and gate.timeout > 0


def test_an_api_url_that_is_not_the_api_is_a_usage_error(capsys, served, monkeypatch):
    monkeypatch.setenv("EVALP_TOKEN", "evalp_x")
    # /docs answers HTML (not JSON) for every model path below it: a URL that is not the API's root
    code, _, err = evalp(capsys, "gate", "wait", "good@2", "--timeout", "5", "--api", f"{served}/docs#")
    assert code == 4 and "--api" in err
    code, _, err = evalp(capsys, "gate", "wait", "good@2", "--timeout", "5", "--api", "ftp://example.com")
    assert code == 4 and "must be an http:// or https:// URL" in err
