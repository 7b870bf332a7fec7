"""Entry points the runner calls, and the engine that executes cached, budgeted, concurrent LLM calls.

* :func:`generate_predictions` — a candidate's answers to a generation dataset (``example_id``, ``prompt``
  and any other columns the prompt template names) -> ``(predictions_df, CallReport)``.
* :func:`judge_predictions` — a pinned judge's verdicts on those answers -> :class:`~eval_platform.llm.judge.JudgeResult`.
* :func:`estimate_run` / :func:`check_run_budget` — the whole run's worst case (candidate and judge) before
  anything is called.

The engine (:func:`execute_calls`): identical calls are made once (deduplicated by key), the cache answers
what it knows, the rest runs on a thread pool of ``concurrency`` workers with at most ``concurrency`` calls
in flight. Each call reserves its worst-case cost from the phase's :class:`~eval_platform.llm.budget.BudgetTracker`
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
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import EvalPlatformError, InvalidInput
from eval_platform.llm.budget import (
    BudgetTracker,
    CallCost,
    CostEstimate,
    Limits,
    PriceTable,
    SuiteBudget,
    as_limits,
    check_estimate,
    count_message_tokens,
    estimate_cost,
)
from eval_platform.llm.cache import CachedCall, CallCache, call_key
from eval_platform.llm.client import (
    CIRCUIT_OPEN,
    CandidateSpec,
    Decoding,
    Endpoint,
    LLMClient,
    RetryPolicy,
)

#: Prediction statuses: ``ok`` (an answer, fresh or cached), ``error`` (the call failed after its retries),
#: ``skipped_budget`` (not sent: the budget stopped the run), ``cancelled`` (not sent: the run was stopped).
OK, ERROR, SKIPPED_BUDGET, CANCELLED = "ok", "error", "skipped_budget", "cancelled"


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


def candidate_request(candidate: CandidateSpec, values: Mapping[str, Any]) -> CallRequest:
    """The call that answers one example (``values``: the example's columns)."""
    return make_request("candidate", candidate.endpoint, candidate.model, candidate.model_version, candidate.prompt.id,
                        candidate.prompt.version, candidate.prompt.render(values), candidate.decoding)


@dataclass
class CallOutcome:
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
    report = report or CallReport(phase=phase)
    tracker = tracker or BudgetTracker(phase, Limits(), client.prices)
    unique: dict[str, CallRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)
    report.unique_calls = len(unique)
    hits = cache.get_many(unique)
    outcomes: dict[str, CallOutcome] = {}
    for key, record in hits.items():
        outcomes[key] = CallOutcome(unique[key], record, cached=True)
        report.cache_hits += 1
        report.cost_saved += record.cost or 0.0
    todo = [request for key, request in unique.items() if key not in hits]
    latencies: list[float] = []
    retry_causes: Counter = Counter()
    done_count = len(hits)
    total = len(unique)
    stop_sending = threading.Event()

    def should_stop() -> bool:
        return stop_sending.is_set() or (cancel is not None and cancel.is_set())

    def finish(request: CallRequest, reservation: tuple[int, float], result) -> CachedCall | None:
        # timed-out attempts count too: the server may have completed and billed them (charged at worst case)
        tracker.settle(reservation, result.charged_tokens, result.charged_cost)
        report.calls += 1
        report.attempts += result.attempts
        report.retries += result.retries
        retry_causes.update(result.retry_causes)
        report.timed_out_attempts += result.timed_out_attempts
        report.timeout_tokens += result.timeout_prompt_tokens + result.timeout_completion_tokens
        report.timeout_cost += result.timeout_cost or 0.0
        report.cost += result.timeout_cost or 0.0
        if not result.ok:
            report.errors += 1
            if result.error_kind == CIRCUIT_OPEN:
                report.circuit_open += 1
            if len(report.error_samples) < 20:
                report.error_samples.append({"cache_key": request.key, "kind": result.error_kind, "error": result.error})
            outcomes[request.key] = CallOutcome(request, None, False, ERROR, result.error, result.error_kind)
            return None
        report.prompt_tokens += result.prompt_tokens
        report.completion_tokens += result.completion_tokens
        if result.cost is None:
            report.unpriced_calls += 1
        else:
            report.cost += result.cost
        latencies.append(result.latency_seconds)
        record = CachedCall(
            cache_key=request.key, kind=request.kind, endpoint=request.endpoint.name, endpoint_url=client.base_url,
            model=request.model, model_version=request.model_version, prompt_id=request.prompt_id,
            prompt_version=request.prompt_version, request=request.identity, response_text=result.text or "",
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            cost=result.cost, latency_seconds=result.latency_seconds, attempts=result.attempts,
            response_model=result.response_model, system_fingerprint=result.system_fingerprint, dataset=dataset)
        outcomes[request.key] = CallOutcome(request, record, False, OK)
        return record

    writer = _CacheWriter(cache) if todo else None
    pending = deque(todo)
    in_flight: dict = {}
    try:
        with ThreadPoolExecutor(max_workers=min(concurrency, max(len(todo), 1)), thread_name_prefix=f"llm-{phase}") as pool:
            try:
                while True:
                    while not should_stop() and len(in_flight) < concurrency:
                        if not pending:
                            break
                        request = pending.popleft()
                        reservation, refused = tracker.try_reserve(request.cost())
                        if reservation is None:
                            pending.appendleft(request)
                            if not in_flight:  # it does not fit even with nothing else running: stop here
                                tracker.mark_exceeded(refused)
                                stop_sending.set()
                            break  # else wait for the calls in flight to settle, then ask again
                        future = pool.submit(client.complete, request.model, request.messages, request.decoding,
                                             request.response_format, should_stop)
                        in_flight[future] = (request, reservation)
                    if not in_flight:
                        break
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    batch = []
                    for future in finished:
                        request, reservation = in_flight.pop(future)
                        record = finish(request, reservation, future.result())
                        if record is not None:
                            batch.append(record)
                    writer.put(batch)
                    done_count += len(finished)
                    if progress is not None:
                        progress(done_count, total)
            except BaseException:
                stop_sending.set()  # keep what is in flight (already paid for), send nothing more
                for future in list(in_flight):
                    request, reservation = in_flight.pop(future)
                    try:
                        record = finish(request, reservation, future.result())
                    except BaseException:
                        continue
                    if record is not None:
                        writer.put([record])
                raise
    finally:
        if writer is not None:
            writer.close()
    if writer is not None and writer.error is not None:
        raise writer.error
    for request in pending:
        status = CANCELLED if cancel is not None and cancel.is_set() and not tracker.exceeded else SKIPPED_BUDGET
        outcomes[request.key] = CallOutcome(request, None, False, status)
        report.skipped += 1
    report.budget_exceeded = report.budget_exceeded or tracker.exceeded
    report.budget_field = report.budget_field or tracker.exceeded_field
    report.cancelled = report.cancelled or (cancel is not None and cancel.is_set())
    report.retry_causes = dict(Counter(report.retry_causes) + retry_causes)
    report.endpoint = report.endpoint or client.endpoint.name
    if todo:
        report.breaker = client.breaker.snapshot()
    if latencies:
        report.latency_p50 = float(np.percentile(latencies, 50))
        report.latency_p95 = float(np.percentile(latencies, 95))
    report.wall_seconds += time.perf_counter() - started
    return outcomes, report


# candidates -----------------------------------------------------------------------------------------------


def example_rows(examples: pd.DataFrame, id_column: str) -> list[dict]:
    if not isinstance(examples, pd.DataFrame):
        raise InvalidInput("examples", "must be a pandas DataFrame")
    if id_column not in examples.columns:
        raise InvalidInput("examples", f"has no {id_column!r} column")
    if len(examples) == 0:
        raise InvalidInput("examples", "has no rows")
    if examples[id_column].duplicated().any():
        duplicated = examples.loc[examples[id_column].duplicated(), id_column].head(3).tolist()
        raise InvalidInput(id_column, f"has duplicated ids, e.g. {duplicated}")
    return examples.to_dict("records")


def candidate_requests(candidate: CandidateSpec, examples: pd.DataFrame, id_column: str = "example_id") -> list[CallRequest]:
    return [candidate_request(candidate, row) for row in example_rows(examples, id_column)]


def estimate_generation(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache,
                        prices: PriceTable | None = None, id_column: str = "example_id") -> CostEstimate:
    """Worst case of the candidate calls the cache cannot answer (prompt tokens + ``max_tokens`` each)."""
    requests = {r.key: r for r in candidate_requests(candidate, examples, id_column)}
    cached = cache.get_many(requests)
    return estimate_cost("candidate", (r.cost() for k, r in requests.items() if k not in cached), prices, len(cached))


def _client_for(endpoint: Endpoint, client: LLMClient | None, prices: PriceTable | None, retry: RetryPolicy | None):
    if client is not None:
        if client.endpoint.name != endpoint.name:
            raise InvalidInput("client", f"is for endpoint {client.endpoint.name!r}, the calls go to {endpoint.name!r}")
        if prices is not None and prices != client.prices:
            raise InvalidInput("prices", "differ from the client's price table (a passed client prices its own calls)")
        return client, False
    return LLMClient(endpoint, retry=retry, prices=prices), True


def generate_predictions(candidate: CandidateSpec, examples: pd.DataFrame, cache: CallCache,
                         budget: SuiteBudget | Limits | Mapping | None = None, *, client: LLMClient | None = None,
                         prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
                         id_column: str = "example_id", dataset: str | None = None, check_budget: bool = True,
                         cancel: threading.Event | None = None,
                         progress: Callable[[int, int], None] | None = None) -> tuple[pd.DataFrame, CallReport]:
    """The candidate's answer to every example, from the cache where it already answered.

    Refuses to start (:class:`~eval_platform.llm.budget.BudgetExceeded`) when the worst case of the
    uncached calls is over ``budget.candidate``. Returns one row per example, in order: ``example_id``,
    ``prediction`` (``None`` unless ``status == "ok"``), ``status`` (``ok``, ``error``, ``skipped_budget``,
    ``cancelled``), ``error``, ``cache_key``, ``prompt_tokens``, ``completion_tokens``, ``cost``,
    ``finish_reason``, ``latency_seconds``. Every value of an ``ok`` row comes from the cache row, so an
    unchanged rerun returns an identical table (same content hash) with zero calls.
    """
    started = time.perf_counter()
    rows = example_rows(examples, id_column)
    requests = [candidate_request(candidate, row) for row in rows]
    cache.pin_template(candidate.prompt, "candidate")
    client, owned = _client_for(candidate.endpoint, client, prices, retry)
    try:
        prices = client.prices
        limits = as_limits(budget, "candidate")
        report = CallReport(phase="candidate", examples=len(rows))
        unique = {r.key: r for r in requests}
        cached = cache.get_many(unique)
        estimate = estimate_cost("candidate", (r.cost() for k, r in unique.items() if k not in cached), prices, len(cached))
        report.estimate = estimate.to_dict()
        if check_budget:
            check_estimate(estimate, limits)
        tracker = BudgetTracker("candidate", limits, prices)
        outcomes, report = execute_calls(requests, cache, client, phase="candidate", tracker=tracker,
                                         concurrency=concurrency, dataset=dataset, cancel=cancel, progress=progress,
                                         report=report)
    finally:
        if owned:
            client.close()
    frame = pd.DataFrame([_prediction_row(row[id_column], outcomes[request.key]) for row, request in zip(rows, requests)])
    frame = frame.rename(columns={"example_id": id_column}) if id_column != "example_id" else frame
    report.wall_seconds = time.perf_counter() - started
    return frame, report


def _prediction_row(example_id: Any, outcome: CallOutcome) -> dict:
    record = outcome.record
    return {"example_id": example_id,
            "prediction": record.response_text if record is not None else None,
            "status": outcome.status, "error": outcome.error, "cache_key": outcome.request.key,
            "prompt_tokens": record.prompt_tokens if record else 0,
            "completion_tokens": record.completion_tokens if record else 0,
            "cost": record.cost if record else None,
            "finish_reason": record.finish_reason if record else None,
            "latency_seconds": record.latency_seconds if record else None}


# judges and whole runs ------------------------------------------------------------------------------------


def check_run_budget(estimates: Mapping[str, CostEstimate], budget: SuiteBudget | Mapping | None) -> None:
    """Refuse the run when a phase's worst case is over its budget (the error names the field)."""
    for phase, estimate in estimates.items():
        check_estimate(estimate, as_limits(budget, phase))

