"""``evalp serve`` in a process of its own, for the tests that claim behaviour of a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT

#: A safety net only: readiness is polled, and a server that is still starting (a loaded machine) is waited
#: for; a server process that exits is reported at once with what it printed.
SAFETY_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_process(home: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``evalp serve`` for ``home`` on a free loopback port (``env`` added to this process's) and wait
    until ``/healthz`` answers 200; returns the process and its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eval_platform.cli.api", "serve", "--home", str(home), "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "EVAL_PLATFORM_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() - started > SAFETY_SECONDS:
            process.kill()
            raise RuntimeError(f"evalp serve did not start: {process.stderr.read()[-2000:]}")
        time.sleep(0.1)


#: The code location of the shipped workspace.yaml.
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename "\
                 "... on PythonError { message } } } } } }"


def dagster_webserver_process(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """Start ``dagster-webserver`` on the instance of ``home`` (``<home>/dagster``) and the shipped
    workspace.yaml, on a free loopback port, in a session of its own (its code server is a child process),
    its output in ``log`` (a file: a pipe nobody reads would stall it); wait until the workspace's code
    location has loaded (asked of its GraphQL API) and return the process and its base URL. A location that
    fails to load is reported with Dagster's error."""
    port = free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "EVAL_PLATFORM_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": str(ROOT)},
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            answer = httpx.post(f"{url}/graphql", json={"query": LOCATION_QUERY}, timeout=10)
            if answer.status_code == 200:
                entries = answer.json()["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e["locationOrLoadError"] for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                    if errors:
                        stop_process_group(process)
                        raise RuntimeError(f"the code location did not load: {errors[0]['message']}")
                    return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() - started > SAFETY_SECONDS:
            stop_process_group(process)
            raise RuntimeError(f"dagster-webserver did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's own session (the webserver and its code server), SIGKILL if it lingers."""
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
