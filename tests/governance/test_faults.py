"""Faults told as they are: a registry database outage (503 with Retry-After from a real `evalp serve`
process, one line from the real CLI), failure reasons that name the cause, an LLM endpoint that is down
(circuit breaker: bounded attempts whatever the dataset size) and replies completed after the client's
timeout (still charged to cost and budget)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from eval_platform.core.failures import (
    database_unreachable,
    describe_failure,
    describe_run_failure,
    redact_url,
)
from eval_platform.llm import (
    Decoding,
    Endpoint,
    LLMClient,
    MemoryCache,
    PriceTable,
    PromptTemplate,
    RetryPolicy,
    generate_predictions,
)
from eval_platform.llm.calls import calls_failure
from eval_platform.llm.client import CircuitBreaker
from eval_platform.llm.server import FaultPlan, LocalLLMServer, qa_dataset
from eval_platform.llm.specs import CandidateSpec

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _closed_port_url(port: int, password: str = "s3cret-pw") -> str:
    return f"postgresql+psycopg2://evalp:{password}@127.0.0.1:{port}/registry"


# the library: causes in one line -------------------------------------------------------------------------


def test_a_killed_worker_is_described_by_its_signal():
    assert describe_run_failure(None, -9) == "killed by signal 9 (SIGKILL: out of memory or killed)"
    assert describe_run_failure(exit_code=137) == "killed by signal 9 (SIGKILL: out of memory or killed)"  # a shell's 128+9
    assert describe_run_failure("worker gone", -15) == "killed by signal 15 (SIGTERM: terminated); worker gone"
    # Dagster's own words for a dead run worker carry the exit code or the signal
    message = "GRPC server: Subprocess for 4f1c terminated unexpectedly with exit code -9"
    assert describe_run_failure(message) == f"killed by signal 9 (SIGKILL: out of memory or killed); {message}"
    assert describe_run_failure("Run execution process was terminated by signal 9 (SIGKILL).").startswith(
        "killed by signal 9 (SIGKILL: out of memory or killed); ")
    assert describe_run_failure("step failed\nMemoryError: unable to allocate") == "out of memory; step failed"
    assert describe_run_failure("exited with code 3") == "exited with code 3"  # not said twice
    assert describe_run_failure("Run worker exited with code 3") == "exited with code 3; Run worker exited with code 3"
    assert describe_run_failure("Steps failed: ['predictions']") == "Steps failed: ['predictions']"
    assert describe_run_failure(None) == "the run failed without a reason"


def test_a_failure_is_described_by_its_root_cause():
    def failing():
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as error:
            raise RuntimeError("could not fetch the artifact") from error

    with pytest.raises(RuntimeError) as caught:
        failing()
    assert describe_failure(caught.value) == ("RuntimeError: could not fetch the artifact; "
                                              "cause: ConnectionRefusedError: [Errno 111] Connection refused")
    assert describe_failure(ValueError("bad\n  input")) == "ValueError: bad; input"
    assert describe_failure(KeyError("x")) == "KeyError: 'x'"
    assert len(describe_failure(ValueError("x" * 5000))) == 1000


def test_an_unreachable_database_is_told_apart_from_a_programming_error(tmp_path):
    import sqlalchemy as sa

    port = _free_port()  # nothing listens there
    down = sa.create_engine(_closed_port_url(port))
    with pytest.raises(sa.exc.OperationalError) as refused:
        down.connect()
    assert database_unreachable(refused.value)
    described = describe_failure(refused.value)
    assert described.startswith("OperationalError: the database is unreachable: ")
    assert f'port {port} failed: Connection refused' in described and "s3cret" not in described
    assert "sqlalche.me" not in described and "\n" not in described

    sqlite = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with sqlite.connect() as connection, pytest.raises(sa.exc.OperationalError) as missing:
        connection.execute(sa.text("select * from no_such_table"))
    assert not database_unreachable(missing.value)  # SQLite's OperationalError for a missing table is a bug
    unopenable = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'r.db'}")
    with pytest.raises(sa.exc.OperationalError) as cannot_open:
        unopenable.connect()
    assert database_unreachable(cannot_open.value)
    assert not database_unreachable(ValueError("connection refused"))  # words alone are not an outage
    assert redact_url("postgresql+psycopg2://u:p@ss@h:5/d") == "postgresql+psycopg2://u:***@h:5/d"
    assert redact_url("sqlite:////tmp/r.db") == "sqlite:////tmp/r.db"


@pytest.mark.postgres
def test_a_programming_error_on_postgres_is_not_an_outage(postgres_url):
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError) as bad:
        connection.execute(sa.text("select * from no_such_table"))
    engine.dispose()
    assert not database_unreachable(bad.value)


# the CLI: one line, no traceback, no password ---------------------------------------------------------------


def _evalp(args: list[str], db_url: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVAL_PLATFORM_DB_URL": db_url, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "eval_platform.cli.main", "--home", str(home), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [["runs", "list"], ["status"], ["experiments", "list"], ["serve", "--port", "0"]])
def test_the_cli_says_in_one_line_that_the_database_is_unreachable(tmp_path, command):
    port = _free_port()
    done = _evalp(command, _closed_port_url(port), tmp_path / "home")
    assert done.returncode == 75, done.stderr  # EX_TEMPFAIL: try again later
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith(f"evalp: the registry database at postgresql+psycopg2://evalp:***@127.0.0.1:{port}/registry is unreachable: ")
    assert "Connection refused" in line and line.endswith("; retry when it is up")
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr and done.stdout == ""


# the API: 503 with Retry-After while the database is down, served again when it is back -------------------


class TcpProxy:
    """A TCP forwarder to the real PostgreSQL server: closing it is a database outage as the API sees it
    (connections cut, new ones refused); opening it again on the same port is the database coming back."""

    def __init__(self, target: tuple[str, int], port: int = 0):
        self.target, self.port = target, port
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def open(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._listener is not listener:  # accepted while closing: refused like the rest
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the other thread (Linux)
            except OSError:
                pass
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _serve(home: Path, db_url: str) -> tuple[subprocess.Popen, str]:
    from tests.servers import serve_process

    return serve_process(home, {"EVAL_PLATFORM_DB_URL": db_url, "EVAL_PLATFORM_RETRY_AFTER_SECONDS": "7"})


@pytest.mark.postgres
def test_the_api_answers_503_with_retry_after_while_the_database_is_down(tmp_path, postgres_url):
    from eval_platform.platform.service import EvalPlatform
    from eval_platform.registry.access import create_token

    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy((host, int(port))).open()
    via_proxy = postgres_url.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
    home = tmp_path / "home"
    platform = EvalPlatform.open(home, db_url=via_proxy)
    token = create_token(platform, "alpha")
    platform.close()
    process, url = _serve(home, via_proxy)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        assert client.get("/v1/models").status_code == 200

        proxy.close()  # the database goes away: pooled connections cut, new ones refused
        body = {"modelVersion": "m@1", "datasetId": "d", "metricSuiteId": "s"}
        for method, path in (("GET", "/v1/models"), ("GET", "/v1/eval-runs"), ("POST", "/v1/eval-runs"), ("GET", "/metrics"),
                             ("GET", "/healthz")):
            response = client.request(method, path, json=body if method == "POST" else None)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["retry-after"] == "7"
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["type"] == "urn:evalp:problem:database-unavailable" and problem["status"] == 503
            assert problem["instance"] == path
            assert problem["detail"] == "the registry database is unreachable; retry later"
            assert str(proxy.port) not in response.text  # where the database lives is for the server's log
        assert process.poll() is None  # the server stays up through the outage

        proxy.open()  # the database is back on the same address: served again, no restart
        deadline = time.monotonic() + 30
        while (status := client.get("/v1/models").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200 and client.get("/healthz").status_code == 200
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        proxy.close()
    stderr = process.stderr.read()
    assert "Traceback" not in stderr  # the outage is logged as a warning naming the cause, not as a crash
    warnings = [line for line in stderr.splitlines() if "registry database unreachable" in line]
    assert warnings and f'port {proxy.port} failed: Connection refused' in warnings[0], stderr[-2000:]


def test_the_openapi_document_lists_the_503_of_every_route():
    import json

    from eval_platform.api.app import openapi_json

    document = json.loads(openapi_json())
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert "503" in operation["responses"], (method, path)


# LLM endpoints that are down: a circuit breaker bounds the attempts --------------------------------------


QA = qa_dataset()
PRICES = PriceTable.from_dict({"models": {"kb-qa-v1": {"input_per_1k": 0.5, "output_per_1k": 1.5}}})
FAST = RetryPolicy(max_attempts=6, timeout=2.0, base_backoff=0.001, max_backoff=0.005)


def _candidate(base_url: str, max_tokens: int = 32) -> CandidateSpec:
    return CandidateSpec(Endpoint("local", base_url), "kb-qa-v1", "1",
                         PromptTemplate("qa", "1", "Question: {prompt}\nAnswer briefly."), Decoding(max_tokens=max_tokens))


@pytest.mark.parametrize("examples", [12, 84])
def test_a_failing_endpoint_gets_a_bounded_number_of_attempts_whatever_the_dataset_size(examples):
    threshold, concurrency = 5, 4
    with LocalLLMServer(faults=FaultPlan(rate_500=1.0)) as server:
        breaker = CircuitBreaker(server.base_url, failure_threshold=threshold, cooldown_seconds=600)
        client = LLMClient(Endpoint("local", server.base_url), FAST, PRICES, breaker=breaker)
        started = time.perf_counter()
        predictions, report = generate_predictions(_candidate(server.base_url), QA.head(examples), MemoryCache(), client=client,
                                                   concurrency=concurrency)
        seconds = time.perf_counter() - started
        client.close()
        received = server.stats()["requests"]
    # without the breaker every call makes its 6 attempts: 72 and 504 requests
    assert threshold <= received <= threshold + concurrency, received
    assert report.attempts == received and report.errors == examples and (predictions["status"] == "error").all()
    assert report.circuit_open >= examples - concurrency and breaker.state == "open"
    assert seconds < 10
    cause = calls_failure(report)
    assert cause.startswith(f"every candidate call to endpoint local failed ({examples} of {examples}): "
                            "500: Internal server error (injected); the endpoint's circuit breaker opened after 5 consecutive "
                            f"failed attempts and {report.circuit_open} call(s) failed fast ({received} attempt(s) sent in all)")


@pytest.fixture
def own_breakers(monkeypatch):
    """The process's shared breakers for this test only: one left open must not meet a later server that
    happens to get the same port."""
    from eval_platform.llm import client

    monkeypatch.setattr(client, "_breakers", {})


def test_a_closed_port_fails_fast_with_the_connection_refused_as_cause(own_breakers):
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    predictions, report = generate_predictions(_candidate(base_url), QA, MemoryCache(), retry=FAST, concurrency=8)
    # the process's shared breaker of that URL: 10 consecutive failed attempts by default
    assert report.attempts <= 10 + 8 and report.errors == len(QA)
    assert report.breaker["state"] == "open"
    assert "Connection refused" in calls_failure(report) and f"127.0.0.1:{port}" in calls_failure(report)


def test_the_breaker_lets_one_probe_through_after_the_cooldown_and_closes_on_success():
    now = [0.0]
    with LocalLLMServer(faults=FaultPlan(schedule=("500",) * 3)) as server:
        breaker = CircuitBreaker(server.base_url, failure_threshold=3, cooldown_seconds=30, clock=lambda: now[0])
        client = LLMClient(Endpoint("local", server.base_url), FAST, breaker=breaker)
        messages = [{"role": "user", "content": "What is 7 times 8?"}]
        failed = client.complete("kb-qa-v1", messages, Decoding(max_tokens=8))
        assert failed.error_kind == "circuit_open" and failed.attempts == 3 and "500" in failed.error
        refused = client.complete("kb-qa-v1", messages, Decoding(max_tokens=8))
        assert refused.error_kind == "circuit_open" and refused.attempts == 0 and "30 s more" in refused.error
        assert server.stats()["requests"] == 3
        now[0] = 31.0  # the cool-down is over: one probe, it succeeds, the breaker closes
        probe = client.complete("kb-qa-v1", messages, Decoding(max_tokens=8))
        assert probe.ok and probe.text == "56" and breaker.state == "closed" and breaker.consecutive_failures == 0
        client.close()


def test_a_429_is_not_a_failure_of_the_endpoint():
    breaker = CircuitBreaker("x", failure_threshold=2)
    breaker.record_failure("server_error", "500")
    breaker.record_failure("rate_limit", "429")  # the server answers: it is up
    breaker.record_failure("server_error", "500")
    assert breaker.state == "closed"
    breaker.record_failure("timeout", "no reply")
    assert breaker.state == "open" and breaker.allow().startswith("circuit open: endpoint x failed 2 consecutive")


# replies completed after the client's timeout still cost ---------------------------------------------------


def test_timed_out_calls_count_in_the_cost_and_the_budget():
    examples = QA.head(6)
    with LocalLLMServer(latency=0.8) as server:  # every reply comes after the client's 0.2 s timeout
        retry = RetryPolicy(max_attempts=1, timeout=0.2)
        breaker = CircuitBreaker(server.base_url, failure_threshold=1000)
        client = LLMClient(Endpoint("local", server.base_url), retry, PRICES, breaker=breaker)
        predictions, report = generate_predictions(_candidate(server.base_url), examples, MemoryCache(), client=client,
                                                   concurrency=2)
        assert (predictions["status"] == "error").all() and report.timed_out_attempts == 6
        deadline = time.monotonic() + 30
        while server.stats()["completions"] < 6 and time.monotonic() < deadline:  # the server finishes them anyway
            time.sleep(0.05)
        served = server.stats()
        assert served["completions"] == 6
        # the worst case of each: the prompt as the server counted it, and max_tokens of reply
        expected_tokens = served["prompt_tokens"] + 6 * 32
        expected_cost = served["prompt_tokens"] / 1000 * 0.5 + 6 * 32 / 1000 * 1.5
        assert report.timeout_tokens == expected_tokens and report.total_tokens == expected_tokens
        assert report.cost == pytest.approx(expected_cost) and report.timeout_cost == pytest.approx(expected_cost)
        assert served["completion_tokens"] <= 6 * 32  # never an undercount of what the server produced

        # the budget counts them: 150 tokens hold about two worst cases, so the run stops before the 6th call
        server.reset_stats()
        cache = MemoryCache()
        predictions, report = generate_predictions(_candidate(server.base_url), examples, cache, {"candidate": {"max_tokens": 150}},
                                                   client=client, concurrency=1, check_budget=False)
        assert report.budget_exceeded and report.budget_field == "budget.candidate.max_tokens"
        assert report.calls < 6 and report.skipped == 6 - report.calls and server.stats()["requests"] == report.calls
        assert (predictions["status"] == "skipped_budget").sum() == report.skipped
        client.close()
