"""The engine that executes cached, budgeted, concurrent LLM calls, and what it reports.

A :class:`CallRequest` is one call, fully determined (its cache key is the hash of everything that shapes the
reply). :func:`execute_calls` makes identical calls once (deduplicated by key), lets the cache answer what it
knows, and runs the rest on a thread pool of ``concurrency`` workers with at most ``concurrency`` calls in
flight. Each call reserves its worst-case cost from the phase's :class:`~eval_platform.llm.budget.BudgetTracker`
before it is sent; when a reservation is refused the run sends nothing more and reports ``budget_exceeded``.
Replies are written to the cache by a writer thread as they arrive (one transaction per batch of replies
that arrived together), so a run stopped midway (budget, cancel, crash of the caller) resumes paying only
for what is missing. Stopping waits for the calls in flight (already paid for) and keeps their replies.

Attempts that timed out are charged at their worst case (see :class:`~eval_platform.llm.client.LLMClient`):
their tokens and cost count in the budget and in the report's ``cost`` (``timeout_tokens``,
``timeout_cost`` say how much of it). :func:`calls_failure` says when a phase's calls leave the run with
nothing to report (every call sent failed, or the endpoint's circuit breaker opened), and
:class:`LLMCallsFailed` is what the runner raises then, so the run fails with that cause.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eval_platform.core.errors import EvalPlatformError, InvalidInput
from eval_platform.llm.budget import BudgetTracker, CallCost, Limits, PriceTable, count_message_tokens
from eval_platform.llm.cache import CachedCall, CallCache, call_key
from eval_platform.llm.client import CIRCUIT_OPEN, CallResult, LLMClient, RetryPolicy
from eval_platform.llm.specs import Decoding, Endpoint

#: Call statuses: ``ok`` (an answer, fresh or cached), ``error`` (the call failed after its retries),
#: ``skipped_budget`` (not sent: the budget stopped the run), ``cancelled`` (not sent: the run was stopped).
OK, ERROR, SKIPPED_BUDGET, CANCELLED = "ok", "error", "skipped_budget", "cancelled"

#: The kind of a call that scores a given text (:meth:`~eval_platform.llm.client.LLMClient.score`) instead of
#: asking for a chat reply: its messages are ``[context, continuation]``.
SCORE = "score"


@dataclass(frozen=True)
class CallRequest:
    """One call, fully determined: its key is the hash of ``identity``."""

    key: str
    kind: str
    endpoint: Endpoint
    model: str
    model_version: str
    prompt_id: str
    prompt_version: str
    messages: list
    decoding: Decoding
    identity: dict
    response_format: dict | None = None

    def cost(self) -> CallCost:
        return CallCost(self.endpoint.name, self.model, count_message_tokens(self.messages), self.decoding.max_tokens)


def make_request(kind: str, endpoint: Endpoint, model: str, model_version: str, prompt_id: str, prompt_version: str,
                 messages: list, decoding: Decoding, extra_identity: Mapping[str, Any] | None = None,
                 response_format: Mapping[str, Any] | None = None) -> CallRequest:
    identity = {"kind": kind, "endpoint": endpoint.identity(), "model": model, "model_version": model_version,
                "prompt": {"id": prompt_id, "version": prompt_version}, "decoding": decoding.identity(),
                "messages": messages, "response_format": dict(response_format) if response_format else None,
                **(extra_identity or {})}
    return CallRequest(call_key(identity), kind, endpoint, model, model_version, prompt_id, prompt_version, messages,
                       decoding, identity, dict(response_format) if response_format else None)


@dataclass
class CallOutcome:
    """What became of one distinct call: its cache record (fresh or cached) or why there is none."""

    request: CallRequest
    record: CachedCall | None = None
    cached: bool = False
    status: str = OK
    error: str | None = None
    error_kind: str | None = None


@dataclass
class CallReport:
    """What a phase's calls did: the demo prints it, the runner records it on the eval run."""

    phase: str
    examples: int = 0
    unique_calls: int = 0  # distinct calls the examples need (identical prompts count once)
    cache_hits: int = 0
    calls: int = 0  # calls sent (each may have needed several attempts)
    attempts: int = 0  # HTTP requests, retries included
    retries: int = 0
    retry_causes: dict = field(default_factory=dict)
    errors: int = 0
    error_samples: list = field(default_factory=list)
    skipped: int = 0  # calls not sent because the budget was reached or the run was cancelled
    circuit_open: int = 0  # calls failed at once because the endpoint's circuit breaker was open
    breaker: dict | None = None  # the endpoint's circuit breaker when the phase ended
    endpoint: str | None = None
    prompt_tokens: int = 0  # usage of the replies received
    completion_tokens: int = 0
    timed_out_attempts: int = 0  # attempts the client gave up on; the server may have completed and billed them
    timeout_tokens: int = 0  # their worst case (estimated prompt + max_tokens), counted in total_tokens and the budget
    timeout_cost: float = 0.0  # their worst-case cost, counted in ``cost``
    cost: float = 0.0  # money spent by this run (new calls only, timed-out attempts included)
    cost_saved: float = 0.0  # what the cache hits cost when they were made
    unpriced_calls: int = 0
    budget_exceeded: bool = False
    budget_field: str | None = None
    cancelled: bool = False
    estimate: dict | None = None
    wall_seconds: float = 0.0
    latency_p50: float | None = None
    latency_p95: float | None = None

    @property
    def total_tokens(self) -> int:
        """Every token charged: the replies' usage and the timed-out attempts' worst case."""
        return self.prompt_tokens + self.completion_tokens + self.timeout_tokens

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["total_tokens"] = self.total_tokens
        return out

    def summary(self) -> str:
        line = (f"{self.phase}: {self.calls} calls ({self.retries} retries), {self.cache_hits} cache hits, "
                f"{self.total_tokens} tokens, cost {self.cost:.6f}")
        if self.errors:
            line += f", {self.errors} errors"
        if self.timed_out_attempts:
            line += f", {self.timed_out_attempts} timed-out attempts charged ({self.timeout_tokens} tokens)"
        if self.circuit_open:
            line += f", {self.circuit_open} calls refused by the open circuit breaker"
        if self.budget_exceeded:
            line += f", BUDGET EXCEEDED ({self.budget_field}; {self.skipped} calls not sent)"
        return line


class LLMCallsFailed(EvalPlatformError):
    """A phase's calls gave the run nothing to go on (:func:`calls_failure`): the run fails with this cause."""

    def __init__(self, phase: str, message: str, report: CallReport | None = None):
        super().__init__(message)
        self.phase, self.report = phase, report


def calls_failure(report: CallReport) -> str | None:
    """Why a phase's calls leave the run without a result, or None.

    Every call sent failed, or the endpoint's circuit breaker opened (calls were refused without being sent:
    the endpoint is down, and what was not answered will not be). The message names the phase, the
    counts and the first real cause (a refused connection, a timeout, a 5xx), not the breaker's echo of it."""
    if report.calls == 0 or report.errors == 0:
        return None
    if report.errors < report.calls and not report.circuit_open:
        return None
    breaker = report.breaker or {}
    real = next((e for e in report.error_samples if e.get("kind") != CIRCUIT_OPEN), None)
    if real is not None:
        why = real["error"]
    else:  # every call ended refused by the breaker: the failure that opened it is the cause
        why = breaker.get("last_failure") or (report.error_samples[0]["error"] if report.error_samples else "unknown")
    where = f" to endpoint {report.endpoint}" if report.endpoint else ""
    if report.errors == report.calls:
        message = f"every {report.phase} call{where} failed ({report.errors} of {report.calls}): {why}"
    else:
        message = f"{report.errors} of {report.calls} {report.phase} call(s){where} failed: {why}"
    if report.circuit_open:
        threshold = breaker.get("failure_threshold")
        message += ("; the endpoint's circuit breaker opened" + (f" after {threshold} consecutive failed attempts" if threshold else "")
                    + f" and {report.circuit_open} call(s) failed fast ({report.attempts} attempt(s) sent in all)")
    return message


def raise_if_calls_failed(report: CallReport) -> None:
    """:class:`LLMCallsFailed` when :func:`calls_failure` has a cause."""
    failure = calls_failure(report)
    if failure is not None:
        raise LLMCallsFailed(report.phase, failure, report)


class _CacheWriter:
    """Writes replies to the cache as they arrive: one transaction per batch that queued up meanwhile."""

    def __init__(self, cache: CallCache):
        self.cache = cache
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="llm-cache-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        done = False
        while not done:
            batch = []
            item = self._queue.get()
            while True:
                if item is None:
                    done = True
                else:
                    batch.extend(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch and self.error is None:
                try:
                    self.written += self.cache.put_many(batch)
                except BaseException as error:  # reported by close(): the caller must know replies were lost
                    self.error = error

    def put(self, records: list[CachedCall]) -> None:
        if records:
            self._queue.put(records)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def execute_calls(requests: Sequence[CallRequest], cache: CallCache, client: LLMClient, *, phase: str,
                  tracker: BudgetTracker | None = None, concurrency: int = 8, dataset: str | None = None,
                  cancel: threading.Event | None = None, progress: Callable[[int, int], None] | None = None,
                  report: CallReport | None = None) -> tuple[dict[str, CallOutcome], CallReport]:
    """Run ``requests`` (one client, one endpoint): cached ones from the cache, the rest on a thread pool."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInput("concurrency", f"must be an integer >= 1, got {concurrency!r}")
    started = time.perf_counter()
    execution = _Execution(cache, client, report or CallReport(phase=phase),
                           tracker or BudgetTracker(phase, Limits(), client.prices), dataset, cancel, progress)
    todo = execution.answer_from_cache(requests)
    if todo:
        execution.send(todo, concurrency)
    execution.complete_report(sent_any=bool(todo))
    execution.report.wall_seconds += time.perf_counter() - started
    return execution.outcomes, execution.report


class _Execution:
    """One :func:`execute_calls`: the calls waiting and in flight, their outcomes, and the report they fill."""

    def __init__(self, cache: CallCache, client: LLMClient, report: CallReport, tracker: BudgetTracker,
                 dataset: str | None, cancel: threading.Event | None, progress: Callable[[int, int], None] | None):
        self.cache, self.client, self.report, self.tracker = cache, client, report, tracker
        self.dataset, self.cancel, self.progress = dataset, cancel, progress
        self.outcomes: dict[str, CallOutcome] = {}
        self.pending: deque[CallRequest] = deque()
        self.in_flight: dict[Future, tuple[CallRequest, tuple[int, float]]] = {}
        self.latencies: list[float] = []
        self.retry_causes: Counter = Counter()
        self.stop_sending = threading.Event()
        self.done = self.total = 0

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def should_stop(self) -> bool:
        return self.stop_sending.is_set() or self.cancelled()

    def answer_from_cache(self, requests: Sequence[CallRequest]) -> list[CallRequest]:
        """Record the distinct calls the cache answers; return the others, to be sent."""
        unique: dict[str, CallRequest] = {}
        for request in requests:
            unique.setdefault(request.key, request)
        self.report.unique_calls = self.total = len(unique)
        hits = self.cache.get_many(unique)
        for key, record in hits.items():
            self.outcomes[key] = CallOutcome(unique[key], record, cached=True)
            self.report.cache_hits += 1
            self.report.cost_saved += record.cost or 0.0
        self.done = len(hits)
        return [request for key, request in unique.items() if key not in hits]

    def send(self, todo: list[CallRequest], concurrency: int) -> None:
        """Send ``todo`` with at most ``concurrency`` calls in flight while the budget allows; on any error
        keep what is in flight (already paid for) and send nothing more."""
        writer = _CacheWriter(self.cache)
        self.pending = deque(todo)
        try:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(todo)), thread_name_prefix=f"llm-{self.report.phase}") as pool:
                try:
                    self._send_until_done(pool, writer, concurrency)
                except BaseException:
                    self._settle_in_flight(writer)
                    raise
        finally:
            writer.close()
        if writer.error is not None:
            raise writer.error

    def _send_until_done(self, pool: ThreadPoolExecutor, writer: _CacheWriter, concurrency: int) -> None:
        while True:
            self._submit_what_fits(pool, concurrency)
            if not self.in_flight:
                return
            finished, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
            batch = []
            for future in finished:
                request, reservation = self.in_flight.pop(future)
                record = self._finish(request, reservation, future.result())
                if record is not None:
                    batch.append(record)
            writer.put(batch)
            self.done += len(finished)
            if self.progress is not None:
                self.progress(self.done, self.total)

    def _submit_what_fits(self, pool: ThreadPoolExecutor, concurrency: int) -> None:
        while not self.should_stop() and len(self.in_flight) < concurrency and self.pending:
            request = self.pending.popleft()
            reservation, refused = self.tracker.try_reserve(request.cost())
            if reservation is None:
                self.pending.appendleft(request)
                if not self.in_flight:  # it does not fit even with nothing else running: stop here
                    assert refused is not None  # try_reserve names the budget field whenever it refuses
                    self.tracker.mark_exceeded(refused)
                    self.stop_sending.set()
                return  # else wait for the calls in flight to settle, then ask again
            call = self.client.score if request.kind == SCORE else self.client.complete
            future = pool.submit(call, request.model, request.messages, request.decoding, request.response_format,
                                 self.should_stop)
            self.in_flight[future] = (request, reservation)

    def _settle_in_flight(self, writer: _CacheWriter) -> None:
        self.stop_sending.set()
        for future in list(self.in_flight):
            request, reservation = self.in_flight.pop(future)
            try:
                record = self._finish(request, reservation, future.result())
            except BaseException:
                continue
            if record is not None:
                writer.put([record])

    def _finish(self, request: CallRequest, reservation: tuple[int, float], result: CallResult) -> CachedCall | None:
        """Settle a call's reservation and count it; its cache record when it succeeded."""
        # timed-out attempts count too: the server may have completed and billed them (charged at worst case)
        self.tracker.settle(reservation, result.charged_tokens, result.charged_cost)
        report = self.report
        report.calls += 1
        report.attempts += result.attempts
        report.retries += result.retries
        self.retry_causes.update(result.retry_causes)
        report.timed_out_attempts += result.timed_out_attempts
        report.timeout_tokens += result.timeout_prompt_tokens + result.timeout_completion_tokens
        report.timeout_cost += result.timeout_cost or 0.0
        report.cost += result.timeout_cost or 0.0
        if not result.ok:
            self._count_failure(request, result)
            return None
        return self._count_reply(request, result)

    def _count_failure(self, request: CallRequest, result: CallResult) -> None:
        report = self.report
        report.errors += 1
        if result.error_kind == CIRCUIT_OPEN:
            report.circuit_open += 1
        if len(report.error_samples) < 20:
            report.error_samples.append({"cache_key": request.key, "kind": result.error_kind, "error": result.error})
        self.outcomes[request.key] = CallOutcome(request, None, False, ERROR, result.error, result.error_kind)

    def _count_reply(self, request: CallRequest, result: CallResult) -> CachedCall:
        report = self.report
        report.prompt_tokens += result.prompt_tokens
        report.completion_tokens += result.completion_tokens
        if result.cost is None:
            report.unpriced_calls += 1
        else:
            report.cost += result.cost
        self.latencies.append(result.latency_seconds)
        record = CachedCall(
            cache_key=request.key, kind=request.kind, endpoint=request.endpoint.name, endpoint_url=self.client.base_url,
            model=request.model, model_version=request.model_version, prompt_id=request.prompt_id,
            prompt_version=request.prompt_version, request=request.identity, response_text=result.text or "",
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            cost=result.cost, latency_seconds=result.latency_seconds, attempts=result.attempts,
            response_model=result.response_model, system_fingerprint=result.system_fingerprint, dataset=self.dataset,
            logprobs=result.logprobs)
        self.outcomes[request.key] = CallOutcome(request, record, False, OK)
        return record

    def complete_report(self, sent_any: bool) -> None:
        """Mark the calls never sent (budget reached or run cancelled) and fill in the report's totals."""
        report, tracker = self.report, self.tracker
        for request in self.pending:
            status = CANCELLED if self.cancelled() and not tracker.exceeded else SKIPPED_BUDGET
            self.outcomes[request.key] = CallOutcome(request, None, False, status)
            report.skipped += 1
        report.budget_exceeded = report.budget_exceeded or tracker.exceeded
        report.budget_field = report.budget_field or tracker.exceeded_field
        report.cancelled = report.cancelled or self.cancelled()
        report.retry_causes = dict(Counter(report.retry_causes) + self.retry_causes)
        report.endpoint = report.endpoint or self.client.endpoint.name
        if sent_any:
            report.breaker = self.client.breaker.snapshot()
        if self.latencies:
            report.latency_p50 = float(np.percentile(self.latencies, 50))
            report.latency_p95 = float(np.percentile(self.latencies, 95))


def endpoint_client(endpoint: Endpoint, client: LLMClient | None, prices: PriceTable | None,
                    retry: RetryPolicy | None) -> tuple[LLMClient, bool]:
    """The client for ``endpoint``: the one passed (checked against the endpoint and prices) or a new one;
    True when it is new (the caller closes it)."""
    if client is not None:
        if client.endpoint.name != endpoint.name:
            raise InvalidInput("client", f"is for endpoint {client.endpoint.name!r}, the calls go to {endpoint.name!r}")
        if prices is not None and prices != client.prices:
            raise InvalidInput("prices", "differ from the client's price table (a passed client prices its own calls)")
        return client, False
    return LLMClient(endpoint, retry=retry, prices=prices), True
