"""Calls to OpenAI-compatible chat endpoints: the retrying client, its circuit breaker, and what a call returns.

:class:`LLMClient` sends one call to an :class:`~eval_platform.llm.specs.Endpoint` through the real ``openai``
client, built with ``max_retries=0``: the
retry loop is ours (exponential backoff with full jitter on 429, 5xx, timeouts and connection errors;
``Retry-After`` honoured), so every attempt is counted and the waiting is visible in the call report.
Bounded concurrency is the caller's thread pool (:func:`eval_platform.llm.calls.execute_calls`).

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
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from eval_platform.core.errors import InvalidInput
from eval_platform.core.installation import installation_config
from eval_platform.llm.budget import PriceTable, count_message_tokens
from eval_platform.llm.cache import encode_logprobs
from eval_platform.llm.specs import Decoding, Endpoint
from eval_platform.metrics.perplexity import check_token_logprobs

if TYPE_CHECKING:
    from openai.types import Completion
    from openai.types.chat import ChatCompletion


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
    #: The reply's token log-probabilities when the call asked for them (``logprobs: true``), as the cache
    #: stores them (:func:`~eval_platform.llm.cache.encode_logprobs`).
    logprobs: dict | None = None

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
        # deferred: keeps `import definitions` fast for sensor ticks and run start
        import httpx
        import openai
        from openai.types import Completion as completion_type
        from openai.types.chat import ChatCompletion as chat_completion_type

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
        self._chat_completion, self._completion = chat_completion_type, completion_type
        # what ``chat.completions.create`` asks of the request path: bearer auth only (its default security
        # would also send an admin key when one is configured); openai releases before the option have no key
        self._options: dict[str, Any] = {"timeout": self.retry.timeout}
        if "security" in getattr(openai._models.FinalRequestOptions, "model_fields", {}):
            self._options["security"] = {"bearer_auth": True}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(limits=limits, timeout=self.retry.timeout)
        # openai 3.x annotates an httpx2.Client and takes an httpx.Client too (openai/_httpx2.py); 1.x and 2.x take httpx's
        self._client = openai.OpenAI(base_url=self.base_url, api_key=endpoint.api_key(installation), max_retries=0,
                                     timeout=self.retry.timeout, http_client=self._http)  # type: ignore[arg-type]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any], cast_to: type):
        """One request through the openai client's request path (headers, auth, timeout, status errors as
        ``openai`` exceptions, the reply parsed into ``cast_to``), without ``create``'s per-call transform of
        the parameters: it walks every message against openai's TypedDicts (typing introspection, about a
        third of a call's client CPU when measured) to rename aliased keys, and chat and completions
        parameters have none, so the JSON body is the same. Our bodies hold plain JSON values only."""
        return self._client.post(path, body=body, cast_to=cast_to, options=cast("Any", self._options))

    def _jitter(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            return self.retry.backoff(attempt, self._rng, retry_after)

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], decoding: Decoding,
                 response_format: Mapping[str, Any] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> CallResult:
        """One chat completion with retries; never raises for a failed call (the result carries the error)."""
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], **decoding.request_params()}
        if response_format:
            body["response_format"] = dict(response_format)

        def send():
            return self._post("/chat/completions", body, self._chat_completion)

        def read(result: CallResult, response) -> None:
            self._read_reply(result, model, response)
            if decoding.logprobs and result.ok:
                self._read_logprobs(result, response)

        return self._with_retries(model, messages, decoding, send, read, cancelled)

    def score(self, model: str, messages: Sequence[Mapping[str, Any]], decoding: Decoding,
              response_format: Mapping[str, Any] | None = None,
              cancelled: Callable[[], bool] | None = None) -> CallResult:
        """The token log-probabilities of a given text under ``model``, with retries (never raises).

        ``messages`` is ``[context, continuation]`` (:func:`score_messages`): the legacy completions endpoint
        is sent ``prompt = context + continuation`` with ``echo: true, max_tokens: 0, logprobs: 0`` (how
        vLLM, llama.cpp and OpenAI-compatible servers score a text) and the tokens starting at or after the
        continuation's first character are kept (``result.text`` is the continuation; ``result.logprobs``
        its tokens). A token straddling the boundary, or a reply without ``logprobs``, is a ``bad_response``."""
        if len(messages) != 2:
            raise InvalidInput("messages", "a scoring call is [context, continuation]")
        context, continuation = str(messages[0]["content"]), str(messages[1]["content"])

        body = {"model": model, "prompt": context + continuation, "echo": True, "max_tokens": 0, "logprobs": 0,
                "temperature": 0.0}

        def send():
            return self._post("/completions", body, self._completion)

        def read(result: CallResult, response) -> None:
            self._read_scores(result, model, response, len(context), continuation)

        return self._with_retries(model, messages, decoding, send, read, cancelled)

    def _with_retries(self, model: str, messages: Sequence[Mapping[str, Any]], decoding: Decoding,
                      send: Callable[[], Any], read: Callable[[CallResult, Any], None],
                      cancelled: Callable[[], bool] | None) -> CallResult:
        result = CallResult()
        started = time.perf_counter()
        for attempt in range(self.retry.max_attempts):
            refused = self.breaker.allow()
            if refused is not None:  # the endpoint is down: fail now, with the cause, without sending
                result.error_kind, result.error = CIRCUIT_OPEN, refused
                break
            failure = self._attempt(result, model, messages, decoding, send, read)
            if failure is None:  # a reply, or a failure that retrying cannot help
                break
            kind, message, retry_after = failure
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

    def _attempt(self, result: CallResult, model: str, messages: Sequence[Mapping[str, Any]], decoding: Decoding,
                 send: Callable[[], Any], read: Callable[[CallResult, Any], None]) -> tuple[str, str, float | None] | None:
        """One HTTP attempt. None when it settles the call (the reply, or an error retrying cannot help, is in
        ``result``); else the retryable failure: its kind, its message and the server's Retry-After."""
        openai = self._openai
        result.attempts += 1
        attempt_started = time.perf_counter()
        try:
            response = send()
        except openai.RateLimitError as error:
            return "rate_limit", f"429: {_message(error)}", _retry_after(error.response)
        except openai.InternalServerError as error:
            return "server_error", f"{error.status_code}: {_message(error)}", None
        except openai.APITimeoutError:
            self._charge_timeout(result, model, messages, decoding)
            return "timeout", f"no reply from {self.base_url} within {self.retry.timeout:g} s", None
        except openai.APIConnectionError as error:
            return "connection", f"connection to {self.base_url} failed: {_root_message(error)}", None
        except openai.APIStatusError as error:  # 4xx other than 429: retrying cannot help
            self.breaker.record_success()  # the endpoint answered
            result.error_kind, result.error = "client_error", f"{error.status_code}: {_message(error)}"
            return None
        except (openai.APIResponseValidationError, ValueError) as error:
            self.breaker.record_success()  # the endpoint answered, badly
            result.error_kind, result.error = "bad_response", f"unreadable response: {error}"
            return None
        self.breaker.record_success()
        result.latency_seconds = time.perf_counter() - attempt_started
        read(result, response)
        return None

    def _read_scores(self, result: CallResult, model: str, response: Completion, boundary: int, continuation: str) -> None:
        """The continuation's tokens and log-probabilities out of an echoed legacy completion."""
        where = f"endpoint {self.endpoint.name} ({self.base_url})"
        choice = response.choices[0] if response.choices else None
        if choice is None:
            result.error_kind, result.error = "bad_response", "the response has no choices"
            return
        logprobs = choice.logprobs
        tokens = getattr(logprobs, "tokens", None) if logprobs is not None else None
        values = getattr(logprobs, "token_logprobs", None) if logprobs is not None else None
        offsets = getattr(logprobs, "text_offset", None) if logprobs is not None else None
        if tokens is None or values is None or offsets is None or not len(tokens) == len(values) == len(offsets):
            result.error_kind, result.error = "bad_response", (
                f"{where} returned no echoed token log-probabilities (choices[0].logprobs.tokens, token_logprobs and "
                f"text_offset of equal length) for a completions request with echo: true, logprobs: 0; perplexity of "
                f"a reference needs an endpoint that scores its prompt")
            return
        try:  # every value checked, so a refusal names the reply's own index
            values = check_token_logprobs(list(values), "choices[0].logprobs.token_logprobs")
        except InvalidInput as error:
            result.error_kind, result.error = "bad_response", f"{where} returned malformed log-probabilities: {error}"
            return
        kept_tokens: list[str] = []
        kept_values: list[float | None] = []
        for token, value, offset in zip(tokens, values, offsets, strict=True):
            end = offset + len(token)
            if offset < boundary < end:
                result.error_kind, result.error = "bad_response", (
                    f"{where} returned a token {token!r} spanning the end of the context and the start of the scored "
                    f"text (choices[0].logprobs.text_offset {offset})")
                return
            if offset >= boundary:
                kept_tokens.append(str(token))
                kept_values.append(value)
        result.text, result.finish_reason = continuation, choice.finish_reason
        self._read_usage(result, model, response)
        result.logprobs = encode_logprobs(kept_tokens, kept_values)
        result.error = result.error_kind = None

    def _read_logprobs(self, result: CallResult, response: ChatCompletion) -> None:
        """The reply's token log-probabilities, checked; a reply without them (an endpoint that ignores
        ``logprobs``) or with malformed ones is a ``bad_response`` naming the endpoint and the field."""
        where = f"endpoint {self.endpoint.name} ({self.base_url})"
        choice = response.choices[0]
        content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
        if content is None:
            result.error_kind, result.error = "bad_response", (
                f"{where} returned no token log-probabilities (choices[0].logprobs.content) although the request "
                f"asked for logprobs: true; perplexity needs an endpoint that returns them")
            return
        try:
            tokens = [str(item.token) for item in content]
            values = check_token_logprobs([item.logprob for item in content], "choices[0].logprobs.content.logprob")
        except InvalidInput as error:
            result.error_kind, result.error = "bad_response", f"{where} returned malformed log-probabilities: {error}"
            return
        if not tokens and result.text:
            result.error_kind, result.error = "bad_response", (
                f"{where} returned no token (choices[0].logprobs.content is empty) for a reply of {len(result.text)} characters")
            return
        result.logprobs = encode_logprobs(tokens, values)

    def _read_reply(self, result: CallResult, model: str, response: ChatCompletion) -> None:
        choice = response.choices[0] if response.choices else None
        if choice is None or choice.message is None:
            result.error_kind, result.error = "bad_response", "the response has no choices"
            return
        result.text = choice.message.content or ""
        result.finish_reason = choice.finish_reason
        self._read_usage(result, model, response)
        result.error = result.error_kind = None

    def _read_usage(self, result: CallResult, model: str, response: Any) -> None:
        """The reply's token usage and its cost at the suite's prices, and what answered (chat or completions)."""
        usage = response.usage
        result.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        result.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        result.cost = self.prices.cost(self.endpoint.name, model, result.prompt_tokens, result.completion_tokens)
        result.response_model = response.model
        result.system_fingerprint = getattr(response, "system_fingerprint", None)

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
