"""Calls to OpenAI-compatible chat endpoints, and the specifications that pin what is called.

The same code talks to the bundled local server, vLLM, Ollama or OpenAI: only the :class:`Endpoint`
(base URL, a stable name, the environment variable holding the API key) changes.

* :class:`Endpoint` — where calls go. Its ``name`` is the endpoint's *identity* in cache keys and lineage;
  its ``base_url`` is only transport (the local server listens on a new free port every run, a deployment
  moves behind another host name), so the same name on two URLs is one endpoint. Two different deployments
  must have two different names.
* :class:`Decoding` — every decoding parameter sent, with its value (defaults included), so the request
  and the cache key are the same thing.
* :class:`PromptTemplate` — ``id``, ``version`` and the text with ``{placeholders}`` filled from a row.
* :class:`CandidateSpec` — the candidate model: endpoint, model name and version, decoding, prompt.

:class:`LLMClient` sends one call through the real ``openai`` client, built with ``max_retries=0``: the
retry loop is ours (exponential backoff with full jitter on 429, 5xx, timeouts and connection errors;
``Retry-After`` honoured), so every attempt is counted and the waiting is visible in the call report.
Bounded concurrency is the caller's thread pool (:func:`eval_platform.llm.generate.execute_calls`).

A :class:`CircuitBreaker` per endpoint URL (shared by every client of the process) stops the hammering of
an endpoint that is down: after ``failure_threshold`` consecutive failed attempts (connection errors,
timeouts, 5xx) it opens, and every call fails at once with the cause (``circuit_open``) for
``cooldown_seconds``; then one probe call is let through, and its success closes the breaker. So a run
against a dead endpoint makes a bounded number of attempts (the threshold plus the calls in flight) whatever
the number of examples, instead of every call making all its attempts.

An attempt that timed out may still have been completed, and billed, by the server: its worst case (the
prompt's estimated tokens plus ``max_tokens``) is charged to the call (``timeout_prompt_tokens``,
``timeout_completion_tokens``, ``timeout_cost``), so the run's cost and its budget count it.
"""

from __future__ import annotations

import email.utils
import math
import os
import random
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eval_platform.core.errors import InvalidInput
from eval_platform.core.installation import installation_config
from eval_platform.llm.budget import PriceTable, count_message_tokens

#: Version of how requests are built and replies read here: part of every cache key, so a change of this
#: code that could change what a call returns invalidates the cache instead of serving stale answers.
LLM_CALL_CODE_VERSION = "1"


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server. ``name`` is the identity (cache keys, lineage); ``base_url`` is transport."""

    name: str
    base_url: str
    api_key_env: str | None = None  # environment variable with the key; never stored or hashed

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise InvalidInput("endpoint.name", f"must be a non-empty name without '/', got {self.name!r}")
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://", "${")):
            raise InvalidInput("endpoint.base_url", f"must be an http(s) URL or ${{VARIABLE}}, got {self.base_url!r}")

    def url(self, installation=None) -> str:
        """The base URL, with ``${VARIABLE}`` references read from the environment (so a registration file
        need not hold a host or a port that changes between runs, like the local server's free port).

        Only variables the installation's operator lists (``llm.expandable_env``) expand, and the result must
        be within ``llm.allowed_base_urls`` (:mod:`eval_platform.core.installation`): a model or judge file must not
        be able to send the process's secrets, or the rows, anywhere its author likes."""

        return (installation or installation_config()).endpoint_url(self.base_url, "endpoint.base_url")

    def api_key(self, installation=None) -> str:
        if self.api_key_env:

            (installation or installation_config()).check_variable(self.api_key_env, "endpoint.api_key_env")
            value = os.environ.get(self.api_key_env)
            if not value:
                raise InvalidInput("endpoint.api_key_env", f"environment variable {self.api_key_env} is not set")
            return value
        return "not-needed"  # local servers (the bundled one, vLLM, Ollama) accept any key

    def identity(self) -> dict:
        return {"name": self.name}

    def record(self) -> dict:
        return {"name": self.name, "base_url": self.base_url}


@dataclass(frozen=True)
class Decoding:
    """Decoding parameters. All of them are sent and all are part of the cache key."""

    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def __post_init__(self):
        def number(name, low, high):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
                raise InvalidInput(f"decoding.{name}", f"must be a number in [{low}, {high}], got {value!r}")

        number("temperature", 0.0, 2.0)
        number("top_p", 0.0, 1.0)
        number("presence_penalty", -2.0, 2.0)
        number("frequency_penalty", -2.0, 2.0)
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise InvalidInput("decoding.max_tokens", f"must be an integer >= 1, got {self.max_tokens!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidInput("decoding.seed", f"must be an integer or None, got {self.seed!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Decoding:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput("decoding", f"unknown parameter(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**data)

    def identity(self) -> dict:
        return {"temperature": float(self.temperature), "max_tokens": self.max_tokens, "top_p": float(self.top_p),
                "seed": self.seed, "stop": list(self.stop), "presence_penalty": float(self.presence_penalty),
                "frequency_penalty": float(self.frequency_penalty)}  # 0 and 0.0 are one key

    def request_params(self) -> dict:
        params = {"temperature": float(self.temperature), "max_tokens": self.max_tokens, "top_p": float(self.top_p),
                  "presence_penalty": float(self.presence_penalty), "frequency_penalty": float(self.frequency_penalty)}
        if self.seed is not None:
            params["seed"] = self.seed
        if self.stop:
            params["stop"] = list(self.stop)
        return params

    def with_seed(self, seed: int | None) -> Decoding:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt: ``text`` (the user message) and an optional ``system`` message, both with
    ``{placeholders}`` filled from an example's columns (``{{`` and ``}}`` are literal braces)."""

    id: str
    version: str
    text: str
    system: str | None = None

    def __post_init__(self):
        if not isinstance(self.id, str) or not self.id.strip() or "@" in self.id:
            raise InvalidInput("prompt.id", f"must be a non-empty name without '@', got {self.id!r}")
        if isinstance(self.version, int) and not isinstance(self.version, bool):
            object.__setattr__(self, "version", str(self.version))
        if not isinstance(self.version, str) or not self.version.strip():
            raise InvalidInput("prompt.version", f"must be a non-empty string or an integer, got {self.version!r}")
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidInput("prompt.text", "must be a non-empty string")
        for name, part in (("prompt.text", self.text), ("prompt.system", self.system or "")):
            try:
                list(string.Formatter().parse(part))
            except ValueError as error:
                raise InvalidInput(name, f"is not a valid template: {error}") from None

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def placeholders(self) -> tuple[str, ...]:
        names: list[str] = []
        for part in (self.system or "", self.text):
            for _, name, spec, conversion in string.Formatter().parse(part):
                if name is None:
                    continue
                if not name.isidentifier() or spec or conversion:
                    raise InvalidInput("prompt.text", f"placeholder {{{name}}} must be a plain column name")
                if name not in names:
                    names.append(name)
        return tuple(names)

    def render(self, values: Mapping[str, Any]) -> list[dict]:
        """Chat messages for one example; a placeholder without a value is an error naming it."""
        missing = [name for name in self.placeholders if name not in values]
        if missing:
            raise InvalidInput("prompt.text", f"template {self.key} needs column(s) {missing} that the examples lack")
        text_values = {name: _as_text(values[name], name) for name in self.placeholders}
        messages = []
        if self.system:
            messages.append({"role": "system", "content": self.system.format_map(text_values)})
        messages.append({"role": "user", "content": self.text.format_map(text_values)})
        return messages

    def record(self) -> dict:
        return {"id": self.id, "version": self.version, "text": self.text, "system": self.system}


def _as_text(value: Any, name: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InvalidInput(name, "has a missing value; the prompt cannot be rendered")
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate model behind an OpenAI-compatible endpoint: everything that determines its answers.

    ``model_version`` is what the owner pins (a release date, a weights hash, a fine-tune id): changing it
    misses the cache even when the served model name stays the same.
    """

    endpoint: Endpoint
    model: str
    model_version: str
    prompt: PromptTemplate
    decoding: Decoding = Decoding()

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidInput("model", "must be a non-empty model name")
        if isinstance(self.model_version, int) and not isinstance(self.model_version, bool):
            object.__setattr__(self, "model_version", str(self.model_version))
        if not isinstance(self.model_version, str) or not self.model_version.strip():
            raise InvalidInput("model_version", "must be a non-empty string (what you pin: a date, a weights hash)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateSpec:
        """From a model registration file::

            {"endpoint": {"name": "local-kb", "base_url": "http://127.0.0.1:8000/v1"},
             "model": "kb-qa-v1", "model_version": "1",
             "prompt": {"id": "qa-short", "version": "1", "text": "Question: {prompt}\\nAnswer:"},
             "decoding": {"temperature": 0, "max_tokens": 32}}
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("candidate", "must be a mapping")
        unknown = set(data) - {"endpoint", "model", "model_version", "prompt", "decoding"}
        if unknown:
            raise InvalidInput("candidate", f"unknown key(s) {sorted(unknown)}")
        for key in ("endpoint", "model", "model_version", "prompt"):
            if key not in data:
                raise InvalidInput(f"candidate.{key}", "is required")
        endpoint = data["endpoint"]
        prompt = data["prompt"]
        if not isinstance(endpoint, Mapping):
            raise InvalidInput("candidate.endpoint", "must be a mapping with name and base_url")
        if not isinstance(prompt, Mapping):
            raise InvalidInput("candidate.prompt", "must be a mapping with id, version and text")
        try:
            return cls(endpoint=Endpoint(**endpoint), model=data["model"], model_version=data["model_version"],
                       prompt=PromptTemplate(**prompt), decoding=Decoding.from_dict(data.get("decoding")))
        except TypeError as error:
            raise InvalidInput("candidate", str(error)) from None

    def record(self) -> dict:
        """What lineage records about the candidate (no API key)."""
        return {"endpoint": self.endpoint.record(), "model": self.model, "model_version": self.model_version,
                "prompt": self.prompt.record(), "decoding": self.decoding.identity()}


# calls ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one call: up to ``max_attempts`` attempts, each limited to ``timeout`` seconds.

    The wait before attempt ``k+1`` is drawn uniformly from ``[0, min(max_backoff, base_backoff * 2**k)]``
    (full jitter); a 429's ``Retry-After`` (seconds or an HTTP date, or ``retry-after-ms``) is a floor for
    that wait, capped at ``max_retry_after``.
    """

    max_attempts: int = 6
    timeout: float = 30.0
    base_backoff: float = 0.5
    max_backoff: float = 20.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random, retry_after: float | None) -> float:
        wait = rng.uniform(0.0, min(self.max_backoff, self.base_backoff * (2 ** attempt)))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


#: Failures that say the endpoint is down or broken (a 429 says it is up and busy; a 4xx is our request).
BREAKER_FAILURES = frozenset({"connection", "timeout", "server_error"})
CIRCUIT_OPEN = "circuit_open"


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failed attempts; open -> half-open after
    ``cooldown_seconds`` (one probe call at a time); half-open -> closed on a success, open again on a
    failure. Thread-safe; :func:`circuit_breaker` shares one per endpoint URL within the process.

    The threshold counts attempts, not calls, over all the endpoint's calls: with ``concurrency`` calls in
    flight, an endpoint that is down gets at most ``failure_threshold + concurrency`` attempts before every
    call fails fast. 10 is far above what a flaky but working endpoint produces in a row (at a 30% error
    rate, ten consecutive failures come once in 170,000 attempts), and small next to a dataset."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(self, name: str, failure_threshold: int = 10, cooldown_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise InvalidInput("failure_threshold", f"must be an integer >= 1, got {failure_threshold!r}")
        if not isinstance(cooldown_seconds, int | float) or not cooldown_seconds >= 0:
            raise InvalidInput("cooldown_seconds", f"must be a number >= 0, got {cooldown_seconds!r}")
        self.name, self.failure_threshold, self.cooldown_seconds = name, failure_threshold, float(cooldown_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self.state = self.CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.last_failure: str | None = None
        self.times_opened = 0
        self._probing = False
        self._probe_started = 0.0

    def allow(self) -> str | None:
        """None when an attempt may be sent now, else why not (the call then fails with ``circuit_open``)."""
        with self._lock:
            if self.state == self.CLOSED:
                return None
            waited = self._clock() - (self.opened_at or 0.0)
            if self.state == self.OPEN and waited >= self.cooldown_seconds:
                self.state = self.HALF_OPEN
            if self.state == self.HALF_OPEN and (not self._probing or self._clock() - self._probe_started >= self.cooldown_seconds):
                # this attempt is the probe; the others keep failing fast (a probe never heard of again,
                # its caller gone, is replaced after another cool-down)
                self._probing, self._probe_started = True, self._clock()
                return None
            left = max(self.cooldown_seconds - waited, 0.0)
            return (f"circuit open: endpoint {self.name} failed {self.consecutive_failures} consecutive attempt(s) "
                    f"(last: {self.last_failure}); not called for {left:.0f} s more")

    def is_open(self) -> bool:
        """Open and still cooling down (nothing changes: unlike :meth:`allow`, this never starts a probe)."""
        with self._lock:
            return self.state == self.OPEN and self._clock() - (self.opened_at or 0.0) < self.cooldown_seconds

    def record_success(self) -> None:
        with self._lock:
            self.state, self.consecutive_failures, self.opened_at, self._probing = self.CLOSED, 0, None, False

    def record_failure(self, kind: str, message: str) -> None:
        """An attempt failed; only :data:`BREAKER_FAILURES` count (and only they can open the breaker). Any
        other failure (a 429, a 4xx) is an answer: the endpoint is up."""
        if kind not in BREAKER_FAILURES:
            self.record_success()
            return
        with self._lock:
            self.consecutive_failures += 1
            self.last_failure = message
            if self.state == self.HALF_OPEN or (self.state == self.CLOSED and self.consecutive_failures >= self.failure_threshold):
                self.state, self.opened_at = self.OPEN, self._clock()
                self.times_opened += 1
            self._probing = False

    def snapshot(self) -> dict:
        with self._lock:
            return {"endpoint": self.name, "state": self.state, "failure_threshold": self.failure_threshold,
                    "cooldown_seconds": self.cooldown_seconds, "consecutive_failures": self.consecutive_failures,
                    "times_opened": self.times_opened, "last_failure": self.last_failure}


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_breaker(base_url: str, failure_threshold: int | None = None, cooldown_seconds: float | None = None) -> CircuitBreaker:
    """The process's breaker of the endpoint at ``base_url`` (created on first use).

    Keyed by URL, not by endpoint name: it is the server at that address that is down, whichever name the
    candidate or the judge gives it. Defaults: ``$EVAL_PLATFORM_LLM_BREAKER_THRESHOLD`` (10) consecutive
    failed attempts, ``$EVAL_PLATFORM_LLM_BREAKER_COOLDOWN`` (30) seconds."""
    with _breakers_lock:
        breaker = _breakers.get(base_url)
        if breaker is None:
            threshold = failure_threshold or int(os.environ.get("EVAL_PLATFORM_LLM_BREAKER_THRESHOLD") or 10)
            cooldown = cooldown_seconds if cooldown_seconds is not None else float(
                os.environ.get("EVAL_PLATFORM_LLM_BREAKER_COOLDOWN") or 30.0)
            breaker = _breakers[base_url] = CircuitBreaker(base_url, threshold, cooldown)
        return breaker


@dataclass
class CallResult:
    """One logical call (all its attempts). ``error`` is set when no attempt succeeded."""

    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    latency_seconds: float = 0.0  # the successful attempt's
    total_seconds: float = 0.0  # every attempt and every wait
    attempts: int = 0  # HTTP requests sent (a call refused by an open circuit breaker sent none)
    error: str | None = None
    error_kind: str | None = None  # rate_limit, server_error, timeout, connection, client_error, bad_response, circuit_open
    # attempts that timed out, charged at their worst case (the server may have completed and billed them)
    timed_out_attempts: int = 0
    timeout_prompt_tokens: int = 0
    timeout_completion_tokens: int = 0
    timeout_cost: float | None = None
    response_model: str | None = None
    system_fingerprint: str | None = None
    retry_causes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    @property
    def charged_tokens(self) -> int:
        """Every token this call may have been billed for: the reply's usage and the timed-out attempts'."""
        return self.prompt_tokens + self.completion_tokens + self.timeout_prompt_tokens + self.timeout_completion_tokens

    @property
    def charged_cost(self) -> float | None:
        """The reply's cost plus the timed-out attempts' (None when neither is priced)."""
        if self.cost is None and self.timeout_cost is None:
            return None
        return (self.cost or 0.0) + (self.timeout_cost or 0.0)


def _retry_after(response) -> float | None:
    if response is None:
        return None
    headers = response.headers
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(parsed.timestamp() - time.time(), 0.0)


class LLMClient:
    """Calls to one endpoint through ``openai.OpenAI(base_url=..., max_retries=0)``; thread-safe."""

    def __init__(self, endpoint: Endpoint, retry: RetryPolicy | None = None, prices: PriceTable | None = None,
                 sleep: Callable[[float], None] = time.sleep, seed: int | None = None, max_connections: int = 256,
                 breaker: CircuitBreaker | None = None, installation=None):
        import httpx
        import openai


        # the operator's allow-lists are checked here, in the process that makes the calls, right before any:
        # the file may have changed since the endpoint was registered
        installation = installation or installation_config()
        self.endpoint = endpoint
        self.base_url = endpoint.url(installation)
        self.breaker = breaker or circuit_breaker(self.base_url)
        self.retry = retry or RetryPolicy()
        self.prices = prices or PriceTable()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._openai = openai
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(limits=limits, timeout=self.retry.timeout)
        self._client = openai.OpenAI(base_url=self.base_url, api_key=endpoint.api_key(installation), max_retries=0,
                                     timeout=self.retry.timeout, http_client=self._http)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _jitter(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            return self.retry.backoff(attempt, self._rng, retry_after)

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], decoding: Decoding,
                 response_format: Mapping[str, Any] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> CallResult:
        """One chat completion with retries; never raises for a failed call (the result carries the error)."""
        openai = self._openai
        result = CallResult()
        started = time.perf_counter()
        params = decoding.request_params()
        extra = {"response_format": dict(response_format)} if response_format else {}
        for attempt in range(self.retry.max_attempts):
            refused = self.breaker.allow()
            if refused is not None:  # the endpoint is down: fail now, with the cause, without sending
                result.error_kind, result.error = CIRCUIT_OPEN, refused
                break
            result.attempts += 1
            attempt_started = time.perf_counter()
            retry_after = None
            try:
                response = self._client.chat.completions.create(
                    model=model, messages=list(messages), timeout=self.retry.timeout, **params, **extra)
            except openai.RateLimitError as error:
                kind, message, retry_after = "rate_limit", f"429: {_message(error)}", _retry_after(error.response)
            except openai.InternalServerError as error:
                kind, message = "server_error", f"{error.status_code}: {_message(error)}"
            except openai.APITimeoutError:
                kind, message = "timeout", f"no reply from {self.base_url} within {self.retry.timeout:g} s"
                self._charge_timeout(result, model, messages, decoding)
            except openai.APIConnectionError as error:
                kind, message = "connection", f"connection to {self.base_url} failed: {_root_message(error)}"
            except openai.APIStatusError as error:  # 4xx other than 429: retrying cannot help
                self.breaker.record_success()  # the endpoint answered
                result.error_kind, result.error = "client_error", f"{error.status_code}: {_message(error)}"
                break
            except (openai.APIResponseValidationError, ValueError) as error:
                self.breaker.record_success()  # the endpoint answered, badly
                result.error_kind, result.error = "bad_response", f"unreadable response: {error}"
                break
            else:
                self.breaker.record_success()
                result.latency_seconds = time.perf_counter() - attempt_started
                choice = response.choices[0] if response.choices else None
                if choice is None or choice.message is None:
                    result.error_kind, result.error = "bad_response", "the response has no choices"
                    break
                result.text = choice.message.content or ""
                result.finish_reason = choice.finish_reason
                usage = response.usage
                result.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                result.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                result.cost = self.prices.cost(self.endpoint.name, model, result.prompt_tokens, result.completion_tokens)
                result.response_model = response.model
                result.system_fingerprint = getattr(response, "system_fingerprint", None)
                result.error = result.error_kind = None
                break
            result.error_kind, result.error = kind, message
            result.retry_causes.append(kind)
            self.breaker.record_failure(kind, message)
            if attempt + 1 >= self.retry.max_attempts or (cancelled is not None and cancelled()):
                break
            if self.breaker.is_open():  # no backoff to sit through: the next attempt would be refused anyway
                result.error_kind, result.error = CIRCUIT_OPEN, self.breaker.allow() or message
                break
            self._sleep(self._jitter(attempt, retry_after))
        result.total_seconds = time.perf_counter() - started
        return result

    def _charge_timeout(self, result: CallResult, model: str, messages, decoding: Decoding) -> None:
        """Charge a timed-out attempt at its worst case: the estimated prompt tokens plus ``max_tokens``.

        The client gave up, not the server: it may well have finished the reply and billed it, and its usage
        never reaches us. The worst case rather than a guess at the reply's length, because it is what the
        budget reserved for the call (so the budget's promise holds) and it never undercounts a bill."""
        prompt, completion = count_message_tokens(messages), decoding.max_tokens
        result.timed_out_attempts += 1
        result.timeout_prompt_tokens += prompt
        result.timeout_completion_tokens += completion
        cost = self.prices.cost(self.endpoint.name, model, prompt, completion)
        if cost is not None:
            result.timeout_cost = (result.timeout_cost or 0.0) + cost


def _root_message(error: BaseException) -> str:
    """The innermost cause's words (``[Errno 111] Connection refused``), not the openai wrapper's "Connection error."."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def _message(error) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", error))
