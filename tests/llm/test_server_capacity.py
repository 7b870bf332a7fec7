"""The local server's ``capacity``: at most that many replies in their latency at once, the rest wait for a
slot; ``in_flight_peak`` counts the most at once. Expected times are hand computations: n calls sent together
to capacity c at latency L take at least ceil(n / c) * L."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request

import pytest

from eval_platform.llm.server import LocalLLMServer


def _calls_at_once(base_url: str, n: int) -> float:
    body = json.dumps({"model": "kb-qa-v1", "messages": [{"role": "user", "content": "What is the capital of France?"}]}).encode()
    start = threading.Barrier(n + 1)
    statuses: list[int] = []

    def call() -> None:
        start.wait()
        request = urllib.request.Request(f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            statuses.append(response.status)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    assert statuses == [200] * n
    return time.perf_counter() - began


def test_a_bounded_server_queues_calls_beyond_its_capacity():
    with LocalLLMServer(latency=0.3, capacity=2) as server:
        wall = _calls_at_once(server.base_url, 6)
        stats = server.stats()
    assert wall >= math.ceil(6 / 2) * 0.3 - 0.01
    assert stats["completions"] == 6 and stats["in_flight_peak"] == 2


def test_an_unbounded_server_serves_every_call_at_once():
    with LocalLLMServer(latency=0.5) as server:
        _calls_at_once(server.base_url, 6)
        assert server.stats()["in_flight_peak"] == 6
        server.reset_stats()
        assert server.stats()["in_flight_peak"] == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_capacity_below_one_is_refused(capacity):
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        LocalLLMServer(capacity=capacity)
