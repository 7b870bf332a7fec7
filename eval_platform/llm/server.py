"""A small OpenAI-compatible chat server for the demo, the tests and the benchmark: nothing leaves the machine.

Endpoints: ``POST /v1/chat/completions`` (non-streaming), ``POST /v1/completions`` (legacy completions, to
score a given text with ``echo``), ``GET /v1/models``, ``GET /v1/_stats`` (request
counters, for tests and the benchmark) and ``GET /health``. Replies carry ``usage`` counted with the
deterministic tokenizer of :func:`eval_platform.llm.budget.count_tokens` (times ``token_scale``, to play a
server whose tokenizer counts more than the client estimates).

Models served:

* **Candidates** (:class:`CandidateModel`) answer questions of a small knowledge base (the QA set shipped in
  ``eval_platform/data/qa_small.jsonl``): the longest known question found in the request's messages is
  answered with its reference; a seeded fraction ``mistake_rate`` of the questions gets a wrong answer
  (another answer of the same category; for arithmetic the result plus one). ``kb-qa-v1`` is right on all,
  ``kb-qa-v2`` wrong on 20%. An unknown question gets "I don't know.". ``max_tokens`` and ``stop`` apply.
* **Judges** (:class:`JudgeModel`) are rule-based graders of a judge prompt holding the sections
  ``[QUESTION]...[/QUESTION]``, ``[REFERENCE]...[/REFERENCE]`` and ``[ANSWER]...[/ANSWER]`` (pairwise:
  ``[ANSWER_A]`` and ``[ANSWER_B]``). The answer is correct (score 1) when its normalised text contains the
  normalised reference or a known alias, else the score is the token F1. The verdict follows the requested
  output schema (``response_format`` JSON schema properties, else keywords of the prompt): ``{"score",
  "rationale"}``, ``{"verdict": "pass"|"fail", "rationale"}`` or ``{"winner": "A"|"B"|"tie", "rationale"}``.
  ``noise`` flips a verdict with that probability (deterministic per request when the request has a
  ``seed``, random otherwise), so n-sample judging can disagree; ``unparsable_rate`` answers prose instead
  of JSON; ``position_bias`` makes a pairwise tie go to the first answer shown.

**Log-probabilities** (``logprobs: true`` and ``top_logprobs`` in chat, ``logprobs: k`` in completions) come
from :class:`ByteBigramLM`, a byte-level add-one-smoothed bigram model of the knowledge base's texts: the
same text always gets the same values, and a text's token log-probabilities add up to its own.
``logprobs_mode`` plays servers that ignore the request (``missing``) or answer nonsense (``malformed``).

Faults (:class:`FaultPlan`) by rate or by a deterministic schedule over the sequence of chat requests:
``429`` (with ``Retry-After``), ``500``, ``timeout`` (the reply is held ``hang_seconds``, longer than any
client timeout) and ``slow`` (the reply comes after ``slow_seconds``). Latency (``latency`` plus uniform
``latency_jitter``) delays every successful reply. ``capacity`` plays a backend with that many slots: at most
that many replies are in their latency at once, the others wait for a slot (so a client wider than the
capacity sees its calls queue, as at a real rate-bounded deployment); ``None`` (the default) is unbounded.
The counters include ``in_flight_peak``, the most replies in their latency at once since the last reset.

In process::

    with LocalLLMServer(latency=0.01) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

As a script: ``python -m eval_platform.llm.server --port 8000 --latency 0.2 --rate-429 0.05``.

Why one module of about 800 lines: it is one fake endpoint, and what it serves (the knowledge base, the
candidate and judge models, the fault plan) is the behaviour its HTTP handling exposes, read and changed
together with it; nothing else in the platform uses those parts (the language model behind ``logprobs``
included), which only exist to be served here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eval_platform.llm.budget import count_message_tokens, count_tokens, truncate_tokens
from eval_platform.metrics.generation import normalize_answer, token_f1_per_example

QA_SMALL = Path(__file__).resolve().parent.parent / "data" / "qa_small.jsonl"
SERVER_VERSION = "local-llm-1"
FAULT_KINDS = ("ok", "429", "500", "timeout", "slow")
#: What the server does when asked for log-probabilities: ``model`` answers them (:class:`ByteBigramLM`);
#: ``missing`` ignores the request (``logprobs: null``, as some servers do); ``malformed`` answers a
#: log-probability of +0.5 (a probability above 1) for every token.
LOGPROBS_MODES = ("model", "missing", "malformed")


# the knowledge base ---------------------------------------------------------------------------------------


def load_qa(path: str | Path | None = None) -> list[dict]:
    """The QA records (``id``, ``category``, ``question``, ``answer``, ``aliases``) of a JSONL file."""
    records = []
    with open(path or QA_SMALL, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
    return records


def qa_dataset(path: str | Path | None = None):
    """The QA set as a generation dataset: ``example_id``, ``prompt``, ``reference``, ``category``."""
    import pandas as pd

    records = load_qa(path)
    return pd.DataFrame({"example_id": [r["id"] for r in records], "prompt": [r["question"] for r in records],
                         "reference": [r["answer"] for r in records], "category": [r["category"] for r in records]})


def _normalize(text: str) -> str:

    return normalize_answer(text, "squad")


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from its parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


class KnowledgeBase:
    """The QA records the candidates answer from: finds the question a prompt asks, gives right or wrong answers."""

    def __init__(self, records: Sequence[Mapping[str, Any]]):
        self.records = list(records)
        self._by_question = sorted(((_normalize(r["question"]), r) for r in self.records), key=lambda p: -len(p[0]))
        self._by_category: dict[str, list[Mapping[str, Any]]] = {}
        for record in self.records:
            self._by_category.setdefault(record["category"], []).append(record)

    def find(self, text: str) -> Mapping[str, Any] | None:
        """The record whose (normalised) question is the longest one found in ``text``."""
        normalized = f" {_normalize(text)} "
        for question, record in self._by_question:
            if f" {question} " in normalized:
                return record
        return None

    def wrong_answer(self, record: Mapping[str, Any], seed: Any) -> str:
        if record["category"] == "arithmetic" and re.fullmatch(r"-?\d+", record["answer"]):
            return str(int(record["answer"]) + 1)
        others = [r["answer"] for r in self._by_category[record["category"]] if r["answer"] != record["answer"]]
        if not others:
            return "I don't know."
        return others[int(_unit(seed, "wrong", record["id"]) * len(others))]

    def accepted(self, record: Mapping[str, Any]) -> list[str]:
        return [record["answer"], *record.get("aliases", [])]


#: The token boundaries of the served log-probabilities: each token is a word or a punctuation mark with
#: the whitespace before it (" Paris"), and whitespace at the end is a token of its own, so the tokens of a
#: text concatenate back to it exactly (and their log-probabilities add up to the text's).
_LM_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+", re.UNICODE)
_BOS = 256  # the context of a text's first byte


def lm_tokens(text: str) -> list[str]:
    """``text`` cut into the tokens the served log-probabilities are for (see :data:`_LM_TOKEN`)."""
    return _LM_TOKEN.findall(text)


class ByteBigramLM:
    """The deterministic language model behind the served ``logprobs``: a byte-level bigram model with add-one
    smoothing, trained on the knowledge base's questions, answers and aliases (UTF-8 bytes).

    ``p(b | a) = (c(a, b) + 1) / (c(a) + 256)`` for a byte ``b`` after the byte ``a`` (``a`` is the start
    symbol for a text's first byte), ``c`` counting bigrams (and ``c(a)`` the bigrams starting with ``a``)
    over the training texts, each read from the start symbol. A token's log-probability is the sum of its
    bytes' ``log p(b | previous byte)``: the chain rule, so the tokens of a text add up to ``log p(text)``
    (natural log) and every distribution over the next byte sums to 1."""

    def __init__(self, texts: Iterable[str]):
        self.pair_counts: Counter = Counter()
        self.context_counts: Counter = Counter()
        for text in texts:
            previous = _BOS
            for byte in text.encode("utf-8"):
                self.pair_counts[(previous, byte)] += 1
                self.context_counts[previous] += 1
                previous = byte

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> ByteBigramLM:
        texts: list[str] = []
        for record in records:
            texts += [record["question"], record["answer"], *record.get("aliases", [])]
        return cls(texts)

    def byte_logprob(self, previous: int, byte: int) -> float:
        return math.log((self.pair_counts[(previous, byte)] + 1) / (self.context_counts[previous] + 256))

    def score(self, text: str, previous: int = _BOS) -> list[tuple[str, float, int]]:
        """``(token, log-probability, last byte before the token)`` of each token of ``text``, the first
        byte conditioned on ``previous``."""
        out = []
        for token in lm_tokens(text):
            context, total = previous, 0.0
            for byte in token.encode("utf-8"):
                total += self.byte_logprob(previous, byte)
                previous = byte
            out.append((token, total, context))
        return out

    def top(self, previous: int, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely next single bytes after ``previous`` (as text; ties by byte value): the
        alternatives of ``top_logprobs``, which this model ranks byte by byte."""
        if k <= 0:
            return []
        ranked = sorted(range(256), key=lambda b: (-self.pair_counts[(previous, b)], b))[:k]
        return [(bytes([b]).decode("utf-8", errors="replace"), self.byte_logprob(previous, b)) for b in ranked]


# models ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateModel:
    """A served candidate: answers from the knowledge base, wrong on a seeded ``mistake_rate`` of the questions."""

    name: str
    mistake_rate: float = 0.0
    seed: int = 0
    style: str = "short"  # short: the answer; sentence: "The answer is X."


@dataclass(frozen=True)
class JudgeModel:
    """A served judge: grades an answer against the reference, with seeded noise, unparsable replies or position bias."""

    name: str
    noise: float = 0.0
    unparsable_rate: float = 0.0
    position_bias: bool = False
    seed: int = 0


DEFAULT_CANDIDATES = (CandidateModel("kb-qa-v1"), CandidateModel("kb-qa-v2", mistake_rate=0.2, seed=2),
                      CandidateModel("kb-qa-verbose", style="sentence"))
DEFAULT_JUDGES = (JudgeModel("rule-judge-1"), JudgeModel("rule-judge-noisy", noise=0.2, seed=1),
                  JudgeModel("rule-judge-flaky", unparsable_rate=0.3, seed=3),
                  JudgeModel("rule-judge-biased", position_bias=True))


@dataclass(frozen=True)
class FaultPlan:
    """Injected faults. ``schedule[i]`` is the fault of the i-th chat request (0-based; one of
    :data:`FAULT_KINDS`); requests past the schedule draw a fault from the rates (deterministically from
    ``seed`` and the request number). ``models`` limits faults to those models (default: all)."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_slow: float = 0.0
    schedule: tuple[str, ...] = ()
    retry_after: float = 0.05
    hang_seconds: float = 30.0
    slow_seconds: float = 1.0
    models: frozenset[str] | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "schedule", tuple(str(k) for k in self.schedule))
        unknown = sorted(set(self.schedule) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {FAULT_KINDS}")
        if self.rate_429 + self.rate_500 + self.rate_timeout + self.rate_slow > 1:
            raise ValueError("fault rates add up to more than 1")
        if self.models is not None:
            object.__setattr__(self, "models", frozenset(self.models))

    def fault(self, index: int) -> str:
        if index < len(self.schedule):
            return self.schedule[index]
        u = _unit(self.seed, "fault", index)
        for kind, rate in (("429", self.rate_429), ("500", self.rate_500), ("timeout", self.rate_timeout), ("slow", self.rate_slow)):
            if u < rate:
                return kind
            u -= rate
        return "ok"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


_SECTION = re.compile(r"\[(QUESTION|REFERENCE|ANSWER|ANSWER_A|ANSWER_B)\]\s*(.*?)\s*\[/\1\]", re.S)


class LocalLLMServer:
    """The server, started in a background thread on ``host`` and a free port (or ``port``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, latency_jitter: float = 0.0,
                 faults: FaultPlan | None = None, candidates: Iterable[CandidateModel] = DEFAULT_CANDIDATES,
                 judges: Iterable[JudgeModel] = DEFAULT_JUDGES, qa_path: str | Path | None = None,
                 api_key: str | None = None, token_scale: float = 1.0, seed: int = 0, logprobs_mode: str = "model",
                 capacity: int | None = None):
        self.host, self.port = host, port
        self.latency, self.latency_jitter = latency, latency_jitter
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1 (or None, unbounded), got {capacity}")
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity) if capacity is not None else None
        self._in_flight = 0
        self.faults = faults or FaultPlan()
        self.candidates = {m.name: m for m in candidates}
        self.judges = {m.name: m for m in judges}
        records = load_qa(qa_path)
        self.kb = KnowledgeBase(records)
        self.lm = ByteBigramLM.from_records(records)
        self.api_key = api_key
        self.token_scale = token_scale
        if logprobs_mode not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {LOGPROBS_MODES}, got {logprobs_mode!r}")
        self.logprobs_mode = logprobs_mode
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_stats()

    # lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> str:
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer((self.host, self.port), Handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.request_queue_size = 1024  # bursts of new connections from a wide client pool
        httpd.allow_reuse_address = True
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"local-llm-{self.port}", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()  # wakes replies held by a timeout fault
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalLLMServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def models(self) -> list[str]:
        return [*self.candidates, *self.judges]

    # configuration and counters -------------------------------------------------------------------------
    def set_faults(self, faults: FaultPlan | None) -> None:
        """New faults; the schedule starts again at the next request."""
        with self._lock:
            self.faults = faults or FaultPlan()
            self._fault_index = 0

    def reset_stats(self) -> None:
        with self._lock:
            self._fault_index = 0
            self._stats: dict[str, Any] = {"requests": 0, "completions": 0, "status": Counter(), "models": Counter(),
                           "completions_by_model": Counter(), "faults": Counter(), "prompt_tokens": 0, "completion_tokens": 0,
                           "in_flight_peak": 0}

    def stats(self) -> dict:
        """Counters since the last reset: every chat request, completions served, by status, model and fault."""
        with self._lock:
            s = self._stats
            return {"requests": s["requests"], "completions": s["completions"], "status": dict(s["status"]),
                    "models": dict(s["models"]), "completions_by_model": dict(s["completions_by_model"]),
                    "faults": dict(s["faults"]), "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"],
                    "in_flight_peak": s["in_flight_peak"]}

    def _count(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                if isinstance(self._stats[key], Counter):
                    self._stats[key][value] += 1
                else:
                    self._stats[key] += value

    def _next_fault(self, model: str) -> FaultPlan | None:
        with self._lock:
            plan = self.faults
            index = self._fault_index
            self._fault_index += 1
        if plan.models is not None and model not in plan.models:
            return None
        kind = plan.fault(index)
        return None if kind == "ok" else replace(plan, schedule=(kind,))

    def _scaled(self, tokens: int) -> int:
        return int(math.ceil(tokens * self.token_scale))

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _serve(self, seconds: float) -> None:
        """A successful reply's latency, in one of the ``capacity`` slots (waiting for one when all are taken)."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            with self._lock:
                self._in_flight += 1
                self._stats["in_flight_peak"] = max(self._stats["in_flight_peak"], self._in_flight)
            self._wait(seconds)
        finally:
            with self._lock:
                self._in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    # the API --------------------------------------------------------------------------------------------
    def chat_completion(self, body: Mapping[str, Any]) -> tuple[int, dict, dict]:
        """``(status, headers, json body)`` of one chat request (faults and latency included)."""
        self._count(requests=1)
        model = body.get("model") if isinstance(body, Mapping) else None
        try:
            request = self._validate(body)
        except _BadRequest as error:
            self._count(status=error.status)
            return error.status, {}, _error_body(error.message, "invalid_request_error", error.param, error.code)
        model = request["model"]
        self._count(models=model)
        failed = self._injected_fault(model)
        if failed is not None:
            return failed
        text = self._reply(request)
        finish_reason = "stop"
        for stop in request["stop"]:
            if stop and stop in text:
                text = text[: text.index(stop)]
        limit = max(int(request["max_tokens"] / self.token_scale), 1) if request["max_tokens"] else None
        if limit is not None and count_tokens(text) > limit:
            text, finish_reason = truncate_tokens(text, limit), "length"
        prompt_tokens = self._scaled(count_message_tokens(request["messages"]))
        completion_tokens = self._scaled(count_tokens(text))
        delay = self.latency
        if self.latency_jitter:
            with self._lock:
                delay += self._rng.uniform(0, self.latency_jitter)
        self._serve(delay)
        self._count(status=200, completions=1, completions_by_model=model, prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens)
        return 200, {}, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": SERVER_VERSION,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": self._chat_logprobs(text, request["top_logprobs"]) if request["logprobs"] else None,
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _injected_fault(self, model: str) -> tuple[int, dict, dict] | None:
        """The reply of an injected 429 or 500, or None (after holding a ``timeout`` or ``slow`` fault's reply)."""
        planned = self._next_fault(model)
        if planned is None:
            return None
        kind = planned.schedule[0]
        self._count(faults=kind)
        if kind == "429":
            self._count(status=429)
            return 429, {"Retry-After": f"{planned.retry_after:g}"}, _error_body(
                "Rate limit reached (injected)", "rate_limit_error", None, "rate_limit_exceeded")
        if kind == "500":
            self._count(status=500)
            return 500, {}, _error_body("Internal server error (injected)", "server_error", None, None)
        self._wait(planned.hang_seconds if kind == "timeout" else planned.slow_seconds)
        return None

    def _scored(self, text: str, previous: int = _BOS) -> list[tuple[str, float, int]]:
        """The model's token log-probabilities of ``text``, garbled under ``logprobs_mode="malformed"``."""
        scored = self.lm.score(text, previous)
        if self.logprobs_mode == "malformed":
            return [(token, 0.5, context) for token, _, context in scored]
        return scored

    def _chat_logprobs(self, text: str, top: int) -> dict | None:
        """``choices[0].logprobs`` of a chat reply: every token of ``text`` scored by :class:`ByteBigramLM`
        from the start of the reply (this small model does not condition on the prompt)."""
        if self.logprobs_mode == "missing":
            return None
        content = []
        for token, logprob, context in self._scored(text):
            content.append({"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8")),
                            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}
                                             for t, lp in self.lm.top(context, top)]})
        return {"content": content, "refusal": None}

    def completion(self, body: Mapping[str, Any]) -> tuple[int, dict, dict]:
        """``(status, headers, json body)`` of one legacy completions request (``POST /v1/completions``).

        How OpenAI-compatible servers (vLLM, llama.cpp) score a given text: ``echo: true`` returns the
        prompt in the reply, ``logprobs: k`` the log-probability of each of its tokens (``None`` for the
        first, which has no context) with ``k`` alternatives, and ``max_tokens: 0`` generates nothing. With
        ``max_tokens`` > 0 a candidate answers the prompt as in chat."""
        self._count(requests=1)
        try:
            request = self._validate_completion(body)
        except _BadRequest as error:
            self._count(status=error.status)
            return error.status, {}, _error_body(error.message, "invalid_request_error", error.param, error.code)
        model, prompt = request["model"], request["prompt"]
        self._count(models=model)
        failed = self._injected_fault(model)
        if failed is not None:
            return failed
        answer, finish_reason = "", "length"
        if request["max_tokens"]:
            answer = self._answer(self.candidates[model], {"messages": [{"role": "user", "content": prompt}]})
            finish_reason = "stop"
            if count_tokens(answer) > request["max_tokens"]:
                answer, finish_reason = truncate_tokens(answer, request["max_tokens"]), "length"
        text = (prompt + answer) if request["echo"] else answer
        logprobs = None
        if request["logprobs"] is not None and self.logprobs_mode != "missing":
            scored = self._scored(text if request["echo"] else answer,
                                   _BOS if request["echo"] or not prompt else prompt.encode("utf-8")[-1])
            offsets, position = [], 0
            for token, _, _ in scored:
                offsets.append(position)
                position += len(token)
            first_is_prompt = request["echo"] and bool(prompt)
            logprobs = {"tokens": [t for t, _, _ in scored], "text_offset": offsets,
                        "token_logprobs": [None if i == 0 and first_is_prompt else lp for i, (_, lp, _) in enumerate(scored)],
                        "top_logprobs": [None if i == 0 and first_is_prompt else dict(self.lm.top(context, request["logprobs"]))
                                         for i, (_, _, context) in enumerate(scored)]}
        prompt_tokens, completion_tokens = self._scaled(count_tokens(prompt)), self._scaled(count_tokens(answer))
        self._serve(self.latency)
        self._count(status=200, completions=1, completions_by_model=model, prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens)
        return 200, {}, {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
            "model": model, "system_fingerprint": SERVER_VERSION,
            "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _validate_completion(self, body: Any) -> dict:
        if not isinstance(body, Mapping):
            raise _BadRequest(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(400, "'model' is required", "model")
        if model not in self.candidates:
            raise _BadRequest(404, f"The model `{model}` does not exist or does not serve completions", "model", "model_not_found")
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _BadRequest(400, "'prompt' must be a string (one prompt per request here)", "prompt")
        _no_stream(body)
        max_tokens = body.get("max_tokens", 16)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise _BadRequest(400, "'max_tokens' must be an integer >= 0", "max_tokens")
        echo = body.get("echo") or False
        if not isinstance(echo, bool):
            raise _BadRequest(400, "'echo' must be a boolean", "echo")
        if max_tokens == 0 and not echo:
            raise _BadRequest(400, "'max_tokens' 0 needs 'echo': true (nothing to return otherwise)", "max_tokens")
        logprobs = body.get("logprobs")
        if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5):
            raise _BadRequest(400, "'logprobs' must be an integer in [0, 5]", "logprobs")
        return {"model": model, "prompt": prompt, "max_tokens": max_tokens, "echo": echo, "logprobs": logprobs}

    def _validate(self, body: Any) -> dict:
        if not isinstance(body, Mapping):
            raise _BadRequest(400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest(400, "'model' is required", "model")
        if model not in self.candidates and model not in self.judges:
            raise _BadRequest(404, f"The model `{model}` does not exist", "model", "model_not_found")
        clean = _plain_messages(body.get("messages"))
        _no_stream(body)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _BadRequest(400, "'max_tokens' must be a positive integer", "max_tokens")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        temperature = body.get("temperature", 1.0)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise _BadRequest(400, "'temperature' must be in [0, 2]", "temperature")
        logprobs, top_logprobs = _chat_logprobs_request(body)
        return {"model": model, "messages": clean, "max_tokens": max_tokens, "stop": stop, "seed": body.get("seed"),
                "temperature": temperature, "response_format": body.get("response_format"), "logprobs": logprobs,
                "top_logprobs": top_logprobs or 0}

    # the models ------------------------------------------------------------------------------------------
    def _reply(self, request: Mapping[str, Any]) -> str:
        model = request["model"]
        if model in self.candidates:
            return self._answer(self.candidates[model], request)
        return self._judge(self.judges[model], request)

    def _answer(self, model: CandidateModel, request: Mapping[str, Any]) -> str:
        text = "\n".join(m["content"] for m in request["messages"] if m["role"] != "system") or \
            "\n".join(m["content"] for m in request["messages"])
        record = self.kb.find(text)
        if record is None:
            return "I don't know."
        answer = record["answer"]
        if model.mistake_rate and _unit(model.seed, "mistake", model.name, record["id"]) < model.mistake_rate:
            answer = self.kb.wrong_answer(record, model.seed)
        return f"The answer is {answer}." if model.style == "sentence" else answer

    def _judge(self, model: JudgeModel, request: Mapping[str, Any]) -> str:
        prompt = "\n".join(m["content"] for m in request["messages"])
        sections = {name: value for name, value in _SECTION.findall(prompt)}
        schema = _requested_schema(request.get("response_format"), prompt)
        seed = request.get("seed")

        def draw(purpose: str) -> float:
            if seed is None:
                with self._lock:
                    return self._rng.random()
            return _unit(model.seed, purpose, model.name, prompt, seed)

        if model.unparsable_rate and draw("unparsable") < model.unparsable_rate:
            return "Looking at the answer, I would say it is mostly right. Score: fairly high."
        question = sections.get("QUESTION", "")
        reference = sections.get("REFERENCE", "")
        flip = bool(model.noise) and draw("noise") < model.noise
        if schema == "pairwise":
            score_a = self._grade(question, reference, sections.get("ANSWER_A", ""))
            score_b = self._grade(question, reference, sections.get("ANSWER_B", ""))
            if score_a > score_b:
                winner = "A"
            elif score_b > score_a:
                winner = "B"
            else:
                winner = "A" if model.position_bias else "tie"
            if flip:
                winner = {"A": "B", "B": "A", "tie": "A"}[winner]
            return json.dumps({"winner": winner, "rationale": f"answer A scores {score_a:.2f}, answer B {score_b:.2f} "
                                                              f"against the reference"})
        score = self._grade(question, reference, sections.get("ANSWER", ""))
        if flip:
            score = round(1.0 - score, 4)
        why = ("the answer states the reference" if score == 1.0 else
               "the answer does not state the reference" if score == 0.0 else
               f"the answer overlaps the reference partially (token F1 {score:.2f})")
        if schema == "pass_fail":
            return json.dumps({"verdict": "pass" if score >= 0.5 else "fail", "rationale": why})
        return json.dumps({"score": score, "rationale": why})

    def _grade(self, question: str, reference: str, answer: str) -> float:

        accepted = [reference] if reference else []
        record = self.kb.find(question) if question else None
        if record is not None:
            accepted += [a for a in self.kb.accepted(record) if a not in accepted]
        normalized = f" {_normalize(answer)} "
        accepted = [a for a in accepted if _normalize(a)]
        if not accepted:
            return 0.0
        if any(f" {_normalize(a)} " in normalized for a in accepted):
            return 1.0
        return round(float(token_f1_per_example([answer], [accepted])[0]), 4)


def _no_stream(body: Mapping[str, Any]) -> None:
    if body.get("stream"):
        raise _BadRequest(400, "streaming is not supported by this server", "stream")


def _chat_logprobs_request(body: Mapping[str, Any]) -> tuple[bool, int | None]:
    """A chat request's ``logprobs`` (a boolean) and ``top_logprobs`` (0-20, only with ``logprobs``)."""
    logprobs = body.get("logprobs") or False
    if not isinstance(logprobs, bool):
        raise _BadRequest(400, "'logprobs' must be a boolean", "logprobs")
    top_logprobs = body.get("top_logprobs")
    if top_logprobs is not None:
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int) or not 0 <= top_logprobs <= 20:
            raise _BadRequest(400, "'top_logprobs' must be an integer in [0, 20]", "top_logprobs")
        if not logprobs:
            raise _BadRequest(400, "'top_logprobs' needs 'logprobs' to be true", "top_logprobs")
    return logprobs, top_logprobs


def _plain_messages(messages: Any) -> list[dict[str, str]]:
    """The request's messages as ``{role, content}`` with text content (content parts joined)."""
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty array", "messages")
    clean = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise _BadRequest(400, f"messages[{i}] must be an object with a role", "messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        clean.append({"role": str(message["role"]), "content": "" if content is None else str(content)})
    return clean


def _requested_schema(response_format: Any, prompt: str) -> str:
    properties: Iterable[str] = ()
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        properties = (schema.get("properties") or {}).keys()
    words = set(properties) or {w for w in ("winner", "verdict", "score") if f'"{w}"' in prompt}
    if "winner" in words:
        return "pairwise"
    if "verdict" in words:
        return "pass_fail"
    return "score"


def _error_body(message: str, kind: str, param: str | None, code: str | None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    owner: LocalLLMServer
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client slot, not per call
    disable_nagle_algorithm = True  # small replies must not wait for the client's delayed ACK (40 ms)
    timeout = 120  # idle keep-alive connections close after this
    server_version = SERVER_VERSION

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass

    def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True

    def _authorized(self) -> bool:
        if not self.owner.api_key:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {self.owner.api_key}":
            return True
        self._send(401, _error_body("Incorrect API key provided", "invalid_request_error", None, "invalid_api_key"))
        return False

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif not self._authorized():
            return
        elif path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "local"}
                                                        for name in self.owner.models]})
        elif path in ("/v1/_stats", "/_stats"):
            self._send(200, self.owner.stats())
        else:
            self._send(404, _error_body(f"no route {path}", "invalid_request_error", None, None))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorized():
            return
        if path in ("/v1/_reset", "/_reset"):
            self.owner.reset_stats()
            self._send(200, {"status": "reset"})
            return
        routes = {"/v1/chat/completions": self.owner.chat_completion, "/chat/completions": self.owner.chat_completion,
                  "/v1/completions": self.owner.completion, "/completions": self.owner.completion}
        if path not in routes:
            self._send(404, _error_body(f"no route {path}", "invalid_request_error", None, None))
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send(400, _error_body("the request body is not valid JSON", "invalid_request_error", None, None))
            return
        status, headers, reply = routes[path](body)
        self._send(status, reply, headers)


# the script -----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible chat server (knowledge-base candidates, rule judges)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every successful reply")
    parser.add_argument("--latency-jitter", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None, help="replies in their latency at once (default unbounded)")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-timeout", type=float, default=0.0)
    parser.add_argument("--rate-slow", type=float, default=0.0)
    parser.add_argument("--schedule", default="", help="comma-separated faults of the first requests, e.g. 429,500,ok,timeout")
    parser.add_argument("--retry-after", type=float, default=0.05)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--fault-models", default="", help="comma-separated models the faults apply to (default all)")
    parser.add_argument("--token-scale", type=float, default=1.0)
    parser.add_argument("--judge-noise", type=float, default=None, help="noise of rule-judge-noisy")
    parser.add_argument("--mistake-rate", type=float, default=None, help="mistake rate of kb-qa-v2")
    parser.add_argument("--qa-file", default=None)
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logprobs-mode", choices=LOGPROBS_MODES, default="model")
    args = parser.parse_args(argv)
    faults = FaultPlan(rate_429=args.rate_429, rate_500=args.rate_500, rate_timeout=args.rate_timeout,
                       rate_slow=args.rate_slow, schedule=tuple(k for k in args.schedule.split(",") if k),
                       retry_after=args.retry_after, hang_seconds=args.hang_seconds, slow_seconds=args.slow_seconds,
                       models=frozenset(m for m in args.fault_models.split(",") if m) or None, seed=args.seed)
    candidates = [replace(m, mistake_rate=args.mistake_rate) if m.name == "kb-qa-v2" and args.mistake_rate is not None else m
                  for m in DEFAULT_CANDIDATES]
    judges = [replace(m, noise=args.judge_noise) if m.name == "rule-judge-noisy" and args.judge_noise is not None else m
              for m in DEFAULT_JUDGES]
    server = LocalLLMServer(args.host, args.port, args.latency, args.latency_jitter, faults, candidates, judges,
                            args.qa_file, args.api_key, args.token_scale, args.seed, args.logprobs_mode, args.capacity)
    stopped = []  # a plain flag: a signal handler must not take a lock the main thread may hold

    def stop(*_):
        stopped.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    print(f"serving {', '.join(server.models)} at {server.base_url}", flush=True)
    while not stopped:
        time.sleep(0.2)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
