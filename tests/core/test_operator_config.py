"""The operator decides what runs (issue 11, attacks 1 and 2): the installation's allow-lists for skops types,
LLM endpoints and the environment variables model and judge files may read; a caller may only narrow them.

The attacks go through a real ``evalp serve`` process, and the run-time check through the runner in a process
of its own (as a Dagster run is); a marker file proves no code ran, a listening socket that nothing was sent."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import zipfile
from importlib import resources as package_files
from pathlib import Path

import httpx
import pandas as pd
import pytest
import skops.io
from sqlalchemy import func, select

from eval_platform.core.errors import InvalidInput
from eval_platform.core.installation import (
    INSTALL_CONFIG_ENV,
    InstallationConfig,
    NotAllowed,
    installation_config,
    reset_installation_config,
)
from eval_platform.llm.specs import Endpoint
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import MetricSuite, Model, access
from eval_platform.registry.access import create_token
from tests.servers import serve_process

ROOT = Path(__file__).resolve().parents[2]
SECRET_PASSWORD = "hunter2-db-password"
SECRET_KEY = "sk-live-secret-key"


@pytest.fixture(autouse=True)
def _fresh_installation_config(monkeypatch):
    """Each test reads its own installation file (the cache is per process, keyed by the file's path)."""
    monkeypatch.delenv(INSTALL_CONFIG_ENV, raising=False)
    reset_installation_config()
    yield
    reset_installation_config()


def serve(home: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``evalp serve`` in a process of its own on a free loopback port; waits for /healthz."""
    return serve_process(home, env)


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr or ""


class Listener:
    """A TCP listener on loopback that records every connection and every byte it is sent."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.settimeout(1)
            try:
                self.received += connection.recv(65536)
            except OSError:
                pass
            connection.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


def posix_system_skops(marker: Path) -> bytes:
    """A skops file whose only node calls ``posix.system("touch <marker>")`` when loaded: skops' schema lets a
    ``ConstructorFromReduceNode`` name any callable as the "type" and its arguments (built by hand, as skops
    itself never writes one for a function)."""
    arguments = json.loads(zipfile.ZipFile(io.BytesIO(skops.io.dumps((f"touch {marker}",)))).read("schema.json"))
    payload = {"__class__": "system", "__module__": "posix", "__loader__": "ConstructorFromReduceNode",
               "content": arguments, "protocol": arguments["protocol"], "_skops_version": arguments["_skops_version"],
               "__id__": 1}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(payload))
    return buffer.getvalue()


def count(platform: EvalPlatform, table) -> int:
    with platform.registry.session() as session:
        return session.scalar(select(func.count()).select_from(table))


# the configuration itself -----------------------------------------------------------------------------------


def test_defaults_allow_loopback_only_the_demo_variable_and_the_tree_type():
    config = InstallationConfig()
    assert config.source == "defaults"
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:1/v1", "http://[::1]:5/v1"):
        assert config.check_url(url, "f") == url
    for url in ("http://127.0.0.1.evil.example:8000/v1",  # a host that starts like loopback
                "http://127.0.0.1:80@evil.example/v1",  # user information: the host is evil.example
                "https://127.0.0.1:8000/v1",  # another scheme
                "http://10.0.0.1/v1", "http://example.com/v1"):
        with pytest.raises(NotAllowed) as refused:
            config.check_url(url, "endpoint.base_url")
        assert refused.value.field == "endpoint.base_url"
    assert config.expandable_env == ("EVAL_LLM_BASE_URL",)
    assert config.trusted_types == ("sklearn.tree._tree.Tree",)
    with pytest.raises(NotAllowed, match="posix.system"):
        config.check_trusted_types(["posix.system"], "trustedTypes")


def test_an_operator_file_sets_the_lists_and_path_prefixes_match_on_segments(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "installation.yaml").write_text(
        "llm:\n  allowed_base_urls: [https://api.example.com/v1, 'http://127.0.0.1:9000']\n"
        "  expandable_env: [OPENAI_API_KEY]\nskops:\n  trusted_types: []\n")
    config = installation_config(home)
    assert config.source == str(home / "installation.yaml") and installation_config(home) is config  # read once
    assert config.check_url("https://api.example.com/v1/chat", "f")
    assert config.check_url("https://api.example.com:443/v1", "f")
    assert config.check_url("http://127.0.0.1:9000/anything", "f")
    for url in ("https://api.example.com/v10", "https://api.example.com/", "http://127.0.0.1:9001/v1"):
        with pytest.raises(NotAllowed):
            config.check_url(url, "f")
    config.check_endpoint(Endpoint("openai", "https://api.example.com/v1", api_key_env="OPENAI_API_KEY"), "endpoint")
    with pytest.raises(NotAllowed, match="EVAL_LLM_BASE_URL"):  # a file's list replaces the default
        config.expand("${EVAL_LLM_BASE_URL}/v1", "endpoint.base_url")
    with pytest.raises(NotAllowed, match="may not be trusted"):  # an empty list: nothing beyond skops' defaults
        config.check_trusted_types(["sklearn.tree._tree.Tree"], "trustedTypes")
    # the variable names a file explicitly; a missing one is an error, not the defaults
    monkeypatch.setenv(INSTALL_CONFIG_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(InvalidInput, match=INSTALL_CONFIG_ENV):
        installation_config(home)


@pytest.mark.parametrize("text, field", [
    ("llm: {allowed_base_urls: [ftp://x]}", "llm.allowed_base_urls"),
    ("llm: {expandable_env: ['A B']}", "llm.expandable_env"),
    ("skops: {trusted_typs: []}", "installation"),
    ("!!python/object/apply:os.system ['true']", "installation"),  # safe_load: no tag builds an object
])
def test_a_bad_operator_file_is_refused_naming_the_key(tmp_path, text, field):
    path = tmp_path / "installation.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        InstallationConfig.load(path)
    assert refused.value.field == field


# attack 1: code execution through a skops file --------------------------------------------------------------


def test_a_skops_file_calling_posix_system_is_refused_through_the_api_and_never_runs(tmp_path, model_files):
    home = tmp_path / "home"
    marker = tmp_path / "executed"
    evil = posix_system_skops(marker)
    assert skops.io.get_untrusted_types(data=evil) == ["posix.system"]  # what a caller would be asked to trust
    platform = EvalPlatform.open(home)
    token = create_token(platform, "beta")
    process, url = serve(home)
    try:
        beta = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        # the caller names the type: refused before the upload is stored, let alone loaded
        response = beta.post("/v1/models", data={"name": "evil", "trustedTypes": ["posix.system"]},
                             files={"file": ("evil.skops", evil)})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["field"] == "trustedTypes" and "posix.system" in problem["detail"]
        # without trusting it: refused by what the file needs, still without loading it
        response = beta.post("/v1/models", data={"name": "evil"}, files={"file": ("evil.skops", evil)})
        assert response.status_code == 422 and response.json()["field"] == "file"
        assert "posix.system" in response.json()["detail"]
        # a type the operator allows passes (the caller narrowed nothing away that a model needs)
        response = beta.post("/v1/models", data={"name": "forest", "trustedTypes": ["sklearn.tree._tree.Tree"]},
                             files={"file": ("gb.skops", model_files["gradient_boosting"].read_bytes())})
        assert response.status_code == 201, response.text
    finally:
        stop(process)
    assert not marker.exists()
    assert [m.key for m in platform.models()] == ["forest@1"]
    assert sorted(p.name for p in (home / "models").iterdir()) == [f"sha256-{_sha256(model_files['gradient_boosting'])}.skops"]
    refusals = [e for e in access.access_log(platform, team="beta") if e.action == "model_file"]
    assert len(refusals) == 1 and refusals[0].outcome == access.DENIED and "posix.system" in refusals[0].detail
    platform.close()


def test_the_cli_refuses_the_same_file_and_runs_nothing(tmp_path, capsys):
    from eval_platform.cli.main import main

    home = tmp_path / "home"
    marker = tmp_path / "executed"
    path = tmp_path / "evil.skops"
    path.write_bytes(posix_system_skops(marker))
    assert main(["models", "register", "evil", "--file", str(path), "--trust", "posix.system", "--home", str(home)]) == 2
    assert "trusted_types" in capsys.readouterr().err
    assert not marker.exists()
    platform = EvalPlatform.open(home)
    assert platform.models() == []
    platform.close()


def test_a_trusted_type_the_operator_removes_is_refused_at_load(tmp_path, model_files, monkeypatch):
    """A model registered while a type was allowed is not loaded once the operator withdraws it."""
    home = tmp_path / "home"
    platform = EvalPlatform.open(home)
    platform.register_model("forest", model_files["gradient_boosting"])  # the tree type: trusted by default
    record = platform.model("forest@1")
    (home / "installation.yaml").write_text("skops: {trusted_types: []}\n")
    reset_installation_config()
    later = EvalPlatform.open(home)  # the next process reads the file as it is then
    with pytest.raises(InvalidInput, match="sklearn.tree._tree.Tree"):
        later.load_model(record)
    later.close()
    platform.close()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# attack 2: secrets sent to the caller's server ---------------------------------------------------------------


def _chat_file(base_url: str, api_key_env: str | None = None, prompt_version: str = "1") -> bytes:
    endpoint = {"name": "local-kb", "base_url": base_url, **({"api_key_env": api_key_env} if api_key_env else {})}
    return json.dumps({"endpoint": endpoint, "model": "kb-qa-v1", "model_version": "1",
                       "prompt": {"id": "qa", "version": prompt_version, "text": "Question: {prompt}\nAnswer briefly."},
                       "decoding": {"max_tokens": 32}}).encode()


def _qa_frame() -> pd.DataFrame:
    rows = [json.loads(line) for line in package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows[:6]).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference"]]


QA_SUITE = {"suite_id": "qa", "purpose": "release_blocking", "task_type": "generation", "metrics": ["exact_match@1"],
            "min_slice_size": 1, "llm": {"budget": {"candidate": {"max_tokens": 100_000}}, "concurrency": 2},
            "gate": {"require_baseline": False, "rules": [{"metric": "exact_match", "min": 0.0}]}}

RUN_ONE = """
import sys
from eval_platform.platform.service import EvalPlatform
from tests.evaluation.test_runner import evaluate
platform = EvalPlatform.open(sys.argv[1])
print(evaluate(platform, sys.argv[2]).decision)
"""


@pytest.fixture
def llm_and_listener(tmp_path, monkeypatch):
    """The project's local LLM server (the one endpoint the operator allows), a listener standing for the
    caller's own server (loopback too, on another port), secrets in the environment, and a home whose
    installation file allows only the local server's origin."""
    from eval_platform.llm.server import LocalLLMServer

    llm = LocalLLMServer()
    llm_url = llm.start()
    listener = Listener()
    home = tmp_path / "home"
    home.mkdir()
    llm_origin = llm_url.rsplit("/", 1)[0]
    (home / "installation.yaml").write_text(f"llm:\n  allowed_base_urls: ['{llm_origin}']\n  expandable_env: [EVAL_LLM_BASE_URL]\n")
    secrets = {"SECRET_DB_PASSWORD": SECRET_PASSWORD, "SECRET_API_KEY": SECRET_KEY, "EVAL_LLM_BASE_URL": llm_url}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    platform = EvalPlatform.open(home)
    platform.register_dataset("qa", _qa_frame(), task_type="generation", label_policy="human_reviewed")
    yield platform, llm, listener, secrets
    platform.close()
    listener.close()
    llm.stop()
    assert listener.connections == 0 and listener.received == b"", "something was sent to the caller's server"


def test_endpoints_and_variables_outside_the_operators_lists_are_refused_at_registration(llm_and_listener):
    platform, llm, listener, secrets = llm_and_listener
    home, caller_url, llm_origin = platform.config.home, f"http://127.0.0.1:{listener.port}", secrets["EVAL_LLM_BASE_URL"].rsplit("/", 1)[0]
    token = create_token(platform, "beta")
    process, url = serve(home, secrets)
    try:
        beta = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        attempts = [
            (_chat_file(caller_url + "/${SECRET_DB_PASSWORD}"), "endpoint.base_url", "SECRET_DB_PASSWORD"),
            (_chat_file(caller_url + "/v1"), "endpoint.base_url", "not an allowed LLM endpoint"),
            (_chat_file(f"{llm_origin}@127.0.0.1:{listener.port}/v1"), "endpoint.base_url", "user information"),
            (_chat_file("${EVAL_LLM_BASE_URL}", api_key_env="SECRET_API_KEY"), "endpoint.api_key_env", "SECRET_API_KEY"),
        ]
        for content, field, words in attempts:
            response = beta.post("/v1/models", data={"name": "qa-bot", "kind": "openai_chat"},
                                 files={"file": ("bot.json", content)})
            assert response.status_code == 422, response.text
            assert response.json()["field"] == field and words in response.json()["detail"]
            assert SECRET_PASSWORD not in response.text and SECRET_KEY not in response.text
        # a suite's judge: the same lists
        judge = {"endpoint": {"name": "judge", "base_url": caller_url + "/v1"}, "model": "rule-judge-1", "model_version": "1"}
        response = beta.post("/v1/metric-suites", json={**QA_SUITE, "llm": {**QA_SUITE["llm"], "judge": judge}})
        assert response.status_code == 422 and response.json()["field"] == "llm.judge.endpoint.base_url", response.text
        assert count(platform, Model) == 0 and count(platform, MetricSuite) == 0
        assert not list((home / "models").glob("sha256-*"))  # every refused upload removed
        # what the operator allows is registered
        assert beta.post("/v1/metric-suites", json=QA_SUITE).status_code == 201
        response = beta.post("/v1/models", data={"name": "qa-bot", "kind": "openai_chat", "evalPlan": ["qa:qa"]},
                             files={"file": ("bot.json", _chat_file("${EVAL_LLM_BASE_URL}"))})
        assert response.status_code == 201, response.text
    finally:
        stop(process)
    refusals = [e for e in access.access_log(platform, team="beta") if e.action == "model_file"]
    assert len(refusals) == 4 and all(e.outcome == access.DENIED for e in refusals)
    assert not any(SECRET_PASSWORD in e.detail or SECRET_KEY in e.detail for e in refusals)


def test_at_run_time_the_client_checks_again_before_the_first_call(llm_and_listener, tmp_path, monkeypatch):
    """Registered while its variable pointed at the operator's endpoint; when the run executes (in a process of
    its own, as a Dagster run does) the variable points at the caller's server: the client refuses before any
    call. The control run, with the variable as the operator set it, calls the local server."""
    from tests.evaluation.test_runner import evaluate

    platform, llm, listener, secrets = llm_and_listener
    home = platform.config.home
    platform.register_suite(QA_SUITE)
    platform.register_model("qa-bot", _write(tmp_path / "bot.json", _chat_file("${EVAL_LLM_BASE_URL}", api_key_env=None)),
                            kind="openai_chat", eval_plan=[("qa", "qa")])
    env = {**os.environ, "EVAL_PLATFORM_HOME": str(home), "EVAL_LLM_BASE_URL": f"http://127.0.0.1:{listener.port}/v1",
           "PYTHONPATH": str(ROOT)}
    refused = subprocess.run([sys.executable, "-c", RUN_ONE, str(home), "qa-bot@1"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "endpoint.base_url" in refused.stderr and "not an allowed LLM endpoint" in refused.stderr, refused.stderr
    # the control, in this process: same file, the variable as the operator set it
    platform.register_model("qa-bot", _write(tmp_path / "bot2.json", _chat_file("${EVAL_LLM_BASE_URL}", prompt_version="2")),
                            kind="openai_chat")
    llm.reset_stats()
    evaluate(platform, "qa-bot@2")
    assert llm.stats()["completions"] == 6


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path
