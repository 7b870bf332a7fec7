"""The platform's own figures (the brief's observability list), computed from the registry.

* eval queue time: ``started_at - requested_at`` (``eval_runs.queue_seconds``, written as a run starts) of
  the runs requested in the window (histogram and percentiles), with the queue depth and the age of the
  oldest queued request (the queue lag: a CI pipeline waiting for its eval is the user harm to alert on,
  see ``ALERTS``);
* run failure rate: failed / finished runs in the window;
* metric computation time: ``eval_runs.metric_seconds`` (histogram and percentiles);
* cost per run: the mean of ``eval_runs.cost`` over the window's finished runs, what each run's candidate
  and judge LLM calls cost as their call reports say (recorded when the run finishes, see
  :func:`eval_platform.registry.schema.recorded_call_cost`; 0 for runs without LLM calls);
* gate override count per suite (as :func:`eval_platform.gates.releases.override_counts`);
* stale-baseline count (runs whose comparison found a stale baseline, ``eval_runs.stale_baseline_run_id``);
* and what the API adds: restricted reads and refusals from the access log, purged artifacts, and (from
  the serving process) requests by route and status with their latency.

:func:`collect` returns them as a plain dict (``evalp status``); :func:`render_prometheus` renders the
Prometheus text exposition format (``GET /metrics``). Both take a fixed number of SQL statements over
indexed columns however many runs the registry holds (no run's JSON is read).

Logs are JSON lines (:class:`JsonFormatter`); they carry ids, counts and timings, never request bodies,
rows or tokens, and the formatter masks anything shaped like a token or an ``Authorization`` value as a
last line of defence.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal_column, select

from eval_platform.core.states import RunStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun, GateOverride
from eval_platform.registry.api_schema import AccessLogEntry, PurgeLogEntry, RunPurge
from eval_platform.registry.schema import utcnow

WINDOW_DAYS = 7.0
QUEUE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
METRIC_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
COST_BUCKETS = (0.001, 0.01, 0.1, 1, 10, 100, 1000)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PERCENTILES = (50, 90, 99)

#: Suggested alerts, tied to what users feel (rendered as comments on /metrics for operators).
ALERTS = (
    "evalp_eval_queue_oldest_seconds > 1800 for 10m: CI pipelines are waiting on evals (Dagster down or saturated)",
    "evalp_eval_run_failure_ratio > 0.1 for 30m: eval runs fail; release gates cannot decide",
    "rate(evalp_http_requests_total{status=~\"5..\"}[5m]) > 0: the API fails requests",
)


# figures ----------------------------------------------------------------------------------------------
#: Percentiles are computed over at most this many runs of the window, the most recently requested (exact
#: whenever the window holds fewer): one bounded read in request-time order, whatever the registry's size.
#: Counts, sums, means, maxima and histogram buckets are SQL aggregates over the whole window.
PERCENTILE_SAMPLE = 10_000


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Iterable[float], buckets: Sequence[float]) -> dict:
    values = [v for v in values if v is not None and math.isfinite(v)]
    out: dict[str, Any] = {"count": len(values), "sum": float(sum(values)), "mean": (sum(values) / len(values)) if values else None,
           "max": max(values) if values else None}
    for q in PERCENTILES:
        out[f"p{q}"] = percentile(values, q)
    out["buckets"] = {str(b): sum(1 for v in values if v <= b) for b in buckets}
    return out


def _count_where(condition):
    """How many rows meet ``condition``. The constants are inlined (they are ours): SQLite evaluates
    ``count(CASE WHEN x <= 5.0 THEN 1 END)`` about twice as fast as ``sum(CASE WHEN x <= ? THEN ? ELSE ? END)``."""
    return func.count(case((condition, literal_column("1"))))


def _aggregates(value, buckets: Sequence[float]) -> list:
    """count, sum, max and the cumulative bucket counts of a nullable SQL value (NULLs left out)."""
    return [func.count(value), func.sum(value), func.max(value),
            *(_count_where(value <= literal_column(repr(float(bound)))) for bound in buckets)]


def _distribution_from(aggregates: Sequence, buckets: Sequence[float], sample: list[float]) -> dict:
    """:func:`distribution`'s figures from :func:`_aggregates`' row and a sample for the percentiles."""
    count, total, largest, *cumulative = aggregates
    count, total = int(count or 0), float(total or 0.0)
    out: dict[str, Any] = {"count": count, "sum": total, "mean": (total / count) if count else None,
           "max": float(largest) if largest is not None else None}
    sample = [v for v in sample if v is not None and math.isfinite(v)]
    for q in PERCENTILES:
        out[f"p{q}"] = percentile(sample, q)
    out["buckets"] = {str(b): int(n or 0) for b, n in zip(buckets, cumulative, strict=True)}
    return out


def collect(platform: EvalPlatform, now: datetime | None = None, window_days: float = WINDOW_DAYS) -> dict:
    """The brief's figures over the runs requested in the last ``window_days`` (counts are all-time).

    A fixed number of SQL statements over indexed columns, whatever the number of runs: counts by status,
    the window's aggregates (queue time, metric time, cost, failures) in one statement, and the
    percentiles over a bounded sample (:data:`PERCENTILE_SAMPLE`); no run's JSON is read."""
    now = _aware(now) or utcnow()
    since = now - timedelta(days=window_days)
    runs = EvalRun.__table__.c
    queue = runs.queue_seconds
    finished = runs.finished_at.is_not(None)
    in_window = runs.requested_at >= since
    with platform.registry.session() as session:
        by_status: dict[str, int] = {status: n for status, n in session.execute(select(runs.status, func.count()).group_by(runs.status))}
        oldest_queued = session.scalar(select(func.min(runs.requested_at)).where(runs.status == RunStatus.QUEUED))
        window = session.execute(select(
            func.count(), _count_where(finished), _count_where(finished & (runs.status == RunStatus.FAILED)),
            _count_where(finished & (runs.status == RunStatus.SUCCEEDED)),
            *_aggregates(queue, QUEUE_BUCKETS), *_aggregates(runs.metric_seconds, METRIC_BUCKETS),
            *_aggregates(runs.cost, COST_BUCKETS)).where(in_window)).one()
        sample = session.execute(select(queue, runs.metric_seconds, runs.cost).where(in_window)
                                 .order_by(runs.requested_at.desc()).limit(PERCENTILE_SAMPLE)).all()
        stale_baselines = session.scalar(select(func.count()).where(runs.stale_baseline_run_id.is_not(None))) or 0
        overrides = Counter(suite for suites in session.scalars(select(GateOverride.suites)) for suite in suites or [])
        access = Counter({(a, o): n for a, o, n in session.execute(
            select(AccessLogEntry.action, AccessLogEntry.outcome, func.count())
            .where(AccessLogEntry.at >= since).group_by(AccessLogEntry.action, AccessLogEntry.outcome))})
        purged_artifacts = session.scalar(select(func.count()).select_from(PurgeLogEntry)) or 0
        last_purge = session.scalar(select(func.max(PurgeLogEntry.purged_at)))
        purged_runs = session.scalar(select(func.count()).select_from(RunPurge)) or 0

    requested, n_finished, failed, succeeded = (int(v or 0) for v in window[:4])
    widths = (3 + len(QUEUE_BUCKETS), 3 + len(METRIC_BUCKETS), 3 + len(COST_BUCKETS))
    queue_aggregates = window[4:4 + widths[0]]
    metric_aggregates = window[4 + widths[0]:4 + widths[0] + widths[1]]
    cost_aggregates = window[4 + widths[0] + widths[1]:]
    cost = _distribution_from(cost_aggregates, COST_BUCKETS, [r[2] for r in sample])
    return {
        "generated_at": now.isoformat(),
        "window_days": window_days,
        "runs": {
            "by_status": {str(k): int(v) for k, v in sorted(by_status.items())},
            "total": int(sum(by_status.values())),
            "queued": int(by_status.get(RunStatus.QUEUED, 0)),
            "oldest_queued_seconds": _seconds_since(now, _aware(oldest_queued)),
            "requested_in_window": requested,
        },
        "queue_seconds": _distribution_from(queue_aggregates, QUEUE_BUCKETS, [r[0] for r in sample]),
        "failure_rate": {"finished": n_finished, "failed": failed, "succeeded": succeeded,
                         "rate": (failed / n_finished) if n_finished else 0.0},
        "metric_seconds": _distribution_from(metric_aggregates, METRIC_BUCKETS, [r[1] for r in sample]),
        # per run whose cost was recorded: every run that finished (succeeded or failed, superseded since
        # or not), as a failed run's calls were paid for too
        "cost": {**cost, "per_run": cost["mean"] or 0.0},
        "gate_overrides": {"total": int(sum(overrides.values())), "by_suite": dict(sorted(overrides.items()))},
        "stale_baselines": int(stale_baselines),
        "access": {"restricted_reads": int(sum(n for (a, o), n in access.items() if o == "granted")),
                   "denied": int(sum(n for (a, o), n in access.items() if o == "denied")),
                   "by_action": {f"{a}:{o}": int(n) for (a, o), n in sorted(access.items())}},
        "retention": {"purged_artifacts": int(purged_artifacts), "purged_runs": int(purged_runs),
                      "last_purge_at": _isoformat(_aware(last_purge))},
    }


def _seconds_since(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


def _isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# the serving process's own request figures ---------------------------------------------------------
class HttpStats:
    """Requests by (method, route template, status) and latency by route, kept by the API process."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()
        self.latency: dict[str, list[float]] = defaultdict(lambda: [0] * (len(HTTP_BUCKETS) + 1) + [0.0])

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            entry = self.latency[route]
            for i, bound in enumerate(HTTP_BUCKETS):
                if seconds <= bound:
                    entry[i] += 1
            entry[len(HTTP_BUCKETS)] += 1  # +Inf (the count)
            entry[-1] += seconds

    def snapshot(self) -> tuple[dict, dict]:
        with self._lock:
            return dict(self.requests), {k: list(v) for k, v in self.latency.items()}


# Prometheus text -------------------------------------------------------------------------------------
def _label_value(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict | None) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items()) + "}"


def _number(value) -> str:
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class _Exposition:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value, labels: dict | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def gauge(self, name: str, help_text: str, value, labels: dict | None = None) -> None:
        self.family(name, "gauge", help_text)
        self.sample(name, value, labels)

    def histogram(self, name: str, help_text: str, dist: dict, buckets: Sequence[float]) -> None:
        self.family(name, "histogram", help_text)
        for bound in buckets:
            self.sample(f"{name}_bucket", dist["buckets"][str(bound)], {"le": _number(bound)})
        self.sample(f"{name}_bucket", dist["count"], {"le": "+Inf"})
        self.sample(f"{name}_sum", dist["sum"])
        self.sample(f"{name}_count", dist["count"])

    def percentiles(self, name: str, help_text: str, dist: dict) -> None:
        self.family(name, "gauge", help_text)
        for q in PERCENTILES:
            self.sample(name, dist[f"p{q}"], {"percentile": str(q)})


def render_prometheus(figures: dict, http: HttpStats | None = None) -> str:
    out = _Exposition()
    for alert in ALERTS:
        out.lines.append(f"# ALERT {alert}")
    window = f"{figures['window_days']:g}d"
    runs = figures["runs"]
    out.family("evalp_eval_runs", "gauge", "Eval runs in the registry by status (all time).")
    for status, count in runs["by_status"].items():
        out.sample("evalp_eval_runs", count, {"status": status})
    out.gauge("evalp_eval_queue_depth", "Eval runs queued and not yet started by Dagster.", runs["queued"])
    out.gauge("evalp_eval_queue_oldest_seconds", "Age of the oldest queued eval run (queue lag).", runs["oldest_queued_seconds"])
    out.histogram("evalp_eval_queue_seconds", f"Eval queue time (started - requested) of runs requested in the last {window}.",
                  figures["queue_seconds"], QUEUE_BUCKETS)
    out.percentiles("evalp_eval_queue_seconds_percentile", f"Percentiles of eval queue time, last {window}.", figures["queue_seconds"])
    fr = figures["failure_rate"]
    out.gauge("evalp_eval_run_failure_ratio", f"Failed / finished eval runs requested in the last {window}.", fr["rate"])
    out.gauge("evalp_eval_runs_finished", f"Finished eval runs requested in the last {window}.", fr["finished"])
    out.gauge("evalp_eval_runs_failed", f"Failed eval runs requested in the last {window}.", fr["failed"])
    out.histogram("evalp_metric_computation_seconds", f"Metric computation time of runs requested in the last {window}.",
                  figures["metric_seconds"], METRIC_BUCKETS)
    out.percentiles("evalp_metric_computation_seconds_percentile", f"Percentiles of metric computation time, last {window}.",
                    figures["metric_seconds"])
    out.histogram("evalp_eval_run_cost", f"Cost of the LLM calls of each finished eval run, last {window}.", figures["cost"], COST_BUCKETS)
    out.gauge("evalp_eval_run_cost_per_run", f"Mean cost of the LLM calls per finished eval run, last {window}.", figures["cost"]["per_run"])
    overrides = figures["gate_overrides"]
    out.gauge("evalp_gate_overrides_all", "Gate overrides recorded (all time).", overrides["total"])
    out.family("evalp_gate_overrides", "gauge", "Gate overrides recorded per release-blocking suite (all time).")
    for suite, count in overrides["by_suite"].items():
        out.sample("evalp_gate_overrides", count, {"suite": suite})
    out.gauge("evalp_stale_baselines", "Comparisons that found a stale baseline (all time).", figures["stale_baselines"])
    out.family("evalp_access_log_entries", "gauge", f"Restricted reads and refusals in the access log, last {window}.")
    for key, count in figures["access"]["by_action"].items():
        action, _, outcome = key.partition(":")
        out.sample("evalp_access_log_entries", count, {"action": action, "outcome": outcome})
    out.gauge("evalp_retention_purged_artifacts", "Model-output artifacts deleted by the retention purge (all time).",
              figures["retention"]["purged_artifacts"])
    out.gauge("evalp_retention_purged_runs", "Eval runs whose predictions were purged.", figures["retention"]["purged_runs"])
    if http is not None:
        requests, latency = http.snapshot()
        out.family("evalp_http_requests_total", "counter", "HTTP requests served by this API process.")
        for (method, route, status), count in sorted(requests.items()):
            out.sample("evalp_http_requests_total", count, {"method": method, "route": route, "status": str(status)})
        out.family("evalp_http_request_duration_seconds", "histogram", "HTTP request latency of this API process by route.")
        for route, entry in sorted(latency.items()):
            for i, bound in enumerate(HTTP_BUCKETS):
                out.sample("evalp_http_request_duration_seconds_bucket", entry[i], {"route": route, "le": _number(bound)})
            out.sample("evalp_http_request_duration_seconds_bucket", entry[len(HTTP_BUCKETS)], {"route": route, "le": "+Inf"})
            out.sample("evalp_http_request_duration_seconds_sum", entry[-1], {"route": route})
            out.sample("evalp_http_request_duration_seconds_count", entry[len(HTTP_BUCKETS)], {"route": route})
    return "\n".join(out.lines) + "\n"


# structured logs ------------------------------------------------------------------------------------
_SECRET_PATTERNS = (
    re.compile(r"evalp_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"),
)


def redact(text: str) -> str:
    """Mask tokens and authorization values in a log line."""
    text = _SECRET_PATTERNS[0].sub("evalp_***", text)
    text = _SECRET_PATTERNS[1].sub(r"\1***", text)
    return _SECRET_PATTERNS[2].sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``fields`` (via ``extra``)."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update({k: v for k, v in fields.items() if k not in payload})
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


def configure_logging(level: str | int = "INFO", stream=None) -> logging.Handler:
    """Send the platform's and uvicorn's logs to ``stream`` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("eval_platform", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the API writes its own access log without query strings
    return handler


def logging_config(level: str = "INFO") -> dict:
    """:func:`configure_logging` as a ``logging.config.dictConfig`` (what uvicorn applies in each worker process)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["json"], "level": level, "propagate": False} for name in ("eval_platform", "uvicorn", "uvicorn.error")}
    loggers["uvicorn.access"] = {"handlers": [], "level": "CRITICAL", "propagate": False}
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {"json": handler}, "loggers": loggers}


def status_text(figures: dict) -> str:
    """``evalp status`` for people."""
    runs, queue, metric, fr = figures["runs"], figures["queue_seconds"], figures["metric_seconds"], figures["failure_rate"]

    def secs(value) -> str:
        if value is None:
            return "-"
        return f"{value * 1000:.1f}ms" if value < 1 else f"{value:.2f}s"

    lines = [
        f"eval runs: {runs['total']} ({', '.join(f'{k} {v}' for k, v in runs['by_status'].items()) or 'none'})",
        f"queue: {runs['queued']} queued, oldest waiting {secs(runs['oldest_queued_seconds'])}",
        f"last {figures['window_days']:g} days: {runs['requested_in_window']} requested",
        f"  queue time       p50 {secs(queue['p50'])}  p90 {secs(queue['p90'])}  p99 {secs(queue['p99'])}  (n={queue['count']})",
        f"  metric time      p50 {secs(metric['p50'])}  p90 {secs(metric['p90'])}  p99 {secs(metric['p99'])}  (n={metric['count']})",
        f"  failure rate     {fr['rate']:.1%} ({fr['failed']} of {fr['finished']} finished)",
        f"  cost per run     {figures['cost']['per_run']:.4g}",
        f"gate overrides: {figures['gate_overrides']['total']}"
        + (f" ({', '.join(f'{k} {v}' for k, v in figures['gate_overrides']['by_suite'].items())})" if figures['gate_overrides']['total'] else ""),
        f"stale baselines: {figures['stale_baselines']}",
        f"restricted reads: {figures['access']['restricted_reads']}, refused: {figures['access']['denied']}",
        f"retention: {figures['retention']['purged_artifacts']} artifact(s) purged, last {figures['retention']['last_purge_at'] or 'never'}",
    ]
    return "\n".join(lines)


__all__ = ["ALERTS", "PERCENTILE_SAMPLE", "HttpStats", "JsonFormatter", "collect", "configure_logging", "logging_config", "distribution",
           "percentile", "redact", "render_prometheus", "status_text"]
