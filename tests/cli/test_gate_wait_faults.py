"""``evalp gate wait`` always ends by ``--timeout``, whatever its source does: real sockets that accept and never
answer, answer a byte at a time, cut the body short, reset the connection, answer once and then fall silent; and a
"PostgreSQL" that accepts and never answers the registry's handshake. No mocks: each fault is a real TCP server
on the loopback, and the command runs as ``main`` does.

Before the deadline was enforced per look, the trickling server held the command forever (the socket timeout is
per read, and each read got a byte), the silent one held it 30 s past a 1 s ``--timeout``, and a truncated body
escaped as a traceback (``IncompleteRead``: exit 1, which a CI job reads as a failed gate)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from eval_platform.cli.gates import FIRST_LOOK_SECONDS
from eval_platform.cli.main import main

#: seconds the command may take past its deadline (thread start, the report); a hang is many times that
SLACK = 1.5


def ends_by(timeout: float) -> float:
    """The command's deadline: ``--timeout``, or the first look's allowance when that is later."""
    return max(timeout, FIRST_LOOK_SECONDS) + SLACK
GATE = {"modelVersion": "m@1", "decision": "no_decision", "recordedDecision": "no_decision", "decidedAt": "2026-12-07T00:00:00Z",
        "settled": False, "pendingRuns": 1, "reasons": [], "override": None}


class FaultServer:
    """A TCP server on the loopback whose every connection is handled by ``behave(connection, index)``."""

    def __init__(self, behave: Callable[[socket.socket, int], None]):
        self.behave = behave
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            index, self.connections = self.connections, self.connections + 1
            self.held.append(connection)
            threading.Thread(target=self._handle, args=(connection, index), daemon=True).start()

    def _handle(self, connection: socket.socket, index: int) -> None:
        try:
            self.behave(connection, index)
        except OSError:
            pass  # the client gave up: what the test wants

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for connection in self.held:
            try:
                connection.close()
            except OSError:
                pass


def _read_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            return
        data += chunk


def never_answers(connection: socket.socket, _: int) -> None:
    _read_request(connection)
    connection.recv(1)  # blocks until the client goes away


def trickles(connection: socket.socket, _: int) -> None:
    """A status line, then a header one byte every 0.2 s forever: each socket read gets something in time."""
    _read_request(connection)
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    while True:
        connection.sendall(b"X")
        time.sleep(0.2)


def cuts_the_body_short(connection: socket.socket, _: int) -> None:
    _read_request(connection)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"modelVersion\"")
    connection.close()


def resets(connection: socket.socket, _: int) -> None:
    _read_request(connection)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    connection.close()


def answers_once_then_silent(connection: socket.socket, index: int) -> None:
    _read_request(connection)
    if index == 0:
        body = json.dumps(GATE).encode()
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        connection.close()
        return
    connection.recv(1)


def postgres_never_answers(connection: socket.socket, _: int) -> None:
    connection.recv(1)  # libpq's startup packet is read by nobody: the handshake never completes


@pytest.fixture
def fault():
    servers: list[FaultServer] = []

    def start(behave):
        server = FaultServer(behave)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def run_bounded(args: list[str], timeout: float, capsys) -> tuple[int, str, float]:
    """``main(args)`` on a thread joined far past ``--timeout``: a hang fails the test instead of holding it."""
    outcome: list = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: outcome.append(main(args)), daemon=True)
    worker.start()
    worker.join(timeout + 30)
    elapsed = time.monotonic() - start
    assert outcome, f"evalp gate wait still running {elapsed:.1f} s after a {timeout} s --timeout: it hangs"
    return outcome[0], capsys.readouterr().err, elapsed


@pytest.mark.parametrize("behave", [never_answers, trickles, cuts_the_body_short, resets], ids=lambda b: b.__name__)
def test_an_api_that_never_answers_properly_ends_by_the_timeout_as_unavailable(behave, fault, capsys, monkeypatch):
    server = fault(behave)
    monkeypatch.setenv("EVALP_TOKEN", "evalp_x")
    timeout = 1.5
    code, err, elapsed = run_bounded(["gate", "wait", "m@1", "--api", server.url, "--timeout", str(timeout),
                                      "--poll-interval", "0.05"], timeout, capsys)
    assert code == 75, err  # never 1 (a CI "fail") from a traceback
    assert f"gave up after {timeout:g} s" in err and "Traceback" not in err
    assert elapsed < ends_by(timeout)
    assert server.connections >= 1
    if behave in (cuts_the_body_short, resets):  # quick faults are asked again while time is left
        assert server.connections >= 2 and ("broke off" in err or "unreachable" in err or "no answer" in err)


def test_a_decision_that_never_arrives_ends_as_a_timeout_with_the_last_status(fault, capsys, monkeypatch):
    server = fault(answers_once_then_silent)
    monkeypatch.setenv("EVALP_TOKEN", "evalp_x")
    timeout = 1.5
    code, err, elapsed = run_bounded(["gate", "wait", "m@1", "--api", server.url, "--timeout", str(timeout),
                                      "--poll-interval", "0.05"], timeout, capsys)
    assert code == 3 and "timed out after 1.5 s" in err and "1 release-blocking eval run(s) still queued" in err
    assert elapsed < ends_by(timeout) and server.connections >= 2


@pytest.mark.parametrize("timeout", [0.0, 1.0])
def test_a_registry_database_that_never_answers_ends_by_the_timeout(fault, tmp_path, capsys, monkeypatch, timeout):
    server = fault(postgres_never_answers)
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", f"postgresql+psycopg2://postgres@127.0.0.1:{server.port}/registry")
    code, err, elapsed = run_bounded(["--home", str(tmp_path / "home"), "gate", "wait", "m@1", "--timeout", str(timeout),
                                      "--poll-interval", "0.05"], timeout, capsys)
    assert code == 75 and f"gave up after {timeout:g} s" in err
    assert elapsed < ends_by(timeout)  # the database's connect timeout is 10 s: the deadline, not it, ended the wait
