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
        [sys.executable, "-m", "eval_platform.cli_api", "serve", "--home", str(home), "--port", str(port), "--log-level", "warning"],
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
