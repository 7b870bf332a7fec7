"""Perplexity from the token log-probabilities an OpenAI-compatible endpoint returns (``logprobs``).

For example ``i`` with scored tokens ``t = 1..T_i`` and natural-log probabilities ``log p_it``:

* per example: ``PPL_i = exp(-(1 / T_i) * sum_t log p_it)``;
* corpus: ``PPL = exp(-(sum_i sum_t log p_it) / (sum_i T_i))``, token-weighted. It is **not** the mean of
  the per-example perplexities (a long answer weighs by its tokens; the mean of ``exp`` is larger than
  the ``exp`` of the mean by Jensen's inequality).

What a row carries is the sufficient statistic: ``logprob_sum`` (``sum_t log p_it``) and ``logprob_tokens``
(``T_i``), computed from the endpoint's token log-probabilities by :func:`logprob_totals` when the
predictions are made. Edge cases:

* ``T_i = 0`` (an empty answer; a one-token reference whose only token has no log-probability because a
  server gives none to the first token of a text): ``PPL_i`` is undefined (``nan``); the example is left
  out of the corpus value and counted (:attr:`PerplexityReport.n_excluded`). No token at all: ``nan``.
* a token of probability 0 (log-probability ``-inf``): ``PPL_i = inf`` and the corpus value is ``inf``.
  A metric table stores it; a run's recorded results have no JSON number for it (``None``), so a gate on
  it has no decision rather than a pass.
* ``nan``, a positive log-probability (a probability above 1, beyond rounding :data:`LOGPROB_TOLERANCE`),
  a non-number, or a negative token count are refused, naming the field and the row.

Lower is better (``direction="lower"``): 1 means every token was certain; a uniform guess over ``V``
tokens gives ``V``.

Example::

    sums, counts = logprob_totals([[-0.5, -1.5], [None, -2.0], []])   # ([-2, -2, 0], [2, 1, 0])
    perplexity_per_example(sums, counts)                               # [exp(1), exp(2), nan]
    perplexity(sums, counts)                                           # exp(4 / 3): 3 tokens, 1 example excluded
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.base import MetricDefinition, Param

#: Servers round log-probabilities; a value up to this above 0 is read as 0 (probability 1).
LOGPROB_TOLERANCE = 1e-6


def check_token_logprobs(logprobs: Sequence, field: str = "logprobs") -> list[float | None]:
    """The token log-probabilities of one text, checked: each a number <= 0 (``-inf`` allowed) or ``None``
    (a token the server gave no log-probability, like the first token of an echoed prompt)."""
    if isinstance(logprobs, str | bytes) or not isinstance(logprobs, Sequence | np.ndarray):
        raise InvalidInput(field, f"must be a list of token log-probabilities, got {type(logprobs).__name__}")
    checked: list[float | None] = []
    for position, value in enumerate(logprobs):
        if value is None:
            checked.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidInput(f"{field}[{position}]", f"must be a number, got {value!r}")
        number = float(value)
        if math.isnan(number) or number > LOGPROB_TOLERANCE:
            raise InvalidInput(f"{field}[{position}]", f"must be a log-probability (<= 0), got {value!r}")
        checked.append(min(number, 0.0))
    return checked


def logprob_totals(token_logprobs: Sequence[Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """``(logprob_sum, logprob_tokens)`` per text: the sum of its tokens' log-probabilities and how many
    tokens had one (``None`` entries are not scored and not counted)."""
    sums = np.zeros(len(token_logprobs), dtype=np.float64)
    counts = np.zeros(len(token_logprobs), dtype=np.int64)
    for row, logprobs in enumerate(token_logprobs):
        scored = [v for v in check_token_logprobs(logprobs, f"token_logprobs[{row}]") if v is not None]
        sums[row] = math.fsum(scored) if not any(math.isinf(v) for v in scored) else -math.inf
        counts[row] = len(scored)
    return sums, counts


def _totals(logprob_sum, logprob_tokens) -> tuple[np.ndarray, np.ndarray]:
    try:
        sums = np.asarray(logprob_sum, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("logprob_sum", "must be numbers (sums of token log-probabilities)") from None
    try:
        counts = np.asarray(logprob_tokens, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("logprob_tokens", "must be integers (scored tokens per example)") from None
    if sums.ndim != 1 or counts.shape != sums.shape:
        raise InvalidInput("logprob_tokens", f"must have one count per logprob_sum, got shapes {counts.shape} and {sums.shape}")
    bad = np.flatnonzero(np.isnan(counts) | (counts < 0) | (counts != np.floor(counts)))
    if len(bad):
        raise InvalidInput(f"logprob_tokens[{bad[0]}]", f"must be an integer >= 0, got {counts[bad[0]]!r}")
    bad = np.flatnonzero(np.isnan(sums) | (sums > LOGPROB_TOLERANCE * np.maximum(counts, 1)))
    if len(bad):
        raise InvalidInput(f"logprob_sum[{bad[0]}]", f"must be a sum of log-probabilities (<= 0, not nan), got {sums[bad[0]]!r}")
    bad = np.flatnonzero((counts == 0) & (sums != 0))
    if len(bad):
        raise InvalidInput(f"logprob_sum[{bad[0]}]", f"is {sums[bad[0]]!r} over 0 tokens")
    return np.minimum(sums, 0.0), counts.astype(np.int64)


def perplexity_per_example(logprob_sum, logprob_tokens) -> np.ndarray:
    """``PPL_i = exp(-logprob_sum_i / logprob_tokens_i)``; ``nan`` where no token was scored, ``inf``
    where a token had probability 0."""
    sums, counts = _totals(logprob_sum, logprob_tokens)
    out = np.full(len(sums), np.nan)
    scored = counts > 0
    with np.errstate(over="ignore"):
        out[scored] = np.exp(-sums[scored] / counts[scored])
    return out


@dataclass(frozen=True)
class PerplexityReport:
    """The corpus perplexity and what it rests on: tokens scored, examples used and examples excluded (no token)."""

    value: float
    n_tokens: int
    n_examples: int
    n_excluded: int
    logprob_sum: float


def perplexity_report(logprob_sum, logprob_tokens) -> PerplexityReport:
    """:func:`perplexity` with its token and example counts."""
    sums, counts = _totals(logprob_sum, logprob_tokens)
    scored = counts > 0
    n_tokens = int(counts.sum())
    total = -math.inf if np.isinf(sums).any() else math.fsum(sums[scored].tolist())
    if n_tokens == 0:
        value = float("nan")
    else:
        with np.errstate(over="ignore"):
            value = float(np.exp(-total / n_tokens))
    return PerplexityReport(value, n_tokens, int(scored.sum()), int((~scored).sum()), float(total))


def perplexity(logprob_sum, logprob_tokens) -> float:
    """Corpus perplexity ``exp(-sum_i logprob_sum_i / sum_i logprob_tokens_i)`` (token-weighted, not the mean
    of per-example perplexities); examples without a scored token are left out; ``nan`` when no token was scored."""
    return perplexity_report(logprob_sum, logprob_tokens).value


# the catalog entry --------------------------------------------------------------------------------------

#: What ``source`` scores, and the columns holding its per-example totals: the candidate's own answer
#: (the chat reply's token log-probabilities, asked for with the answer), or the dataset's reference
#: under the candidate (the legacy completions endpoint with ``echo``, conditioned on the rendered prompt).
PERPLEXITY_SOURCES = {"generation": ("logprob_sum", "logprob_tokens"),
                      "reference": ("reference_logprob_sum", "reference_logprob_tokens")}


@dataclass(frozen=True)
class _Source(Param):
    """The ``source`` parameter: one of :data:`PERPLEXITY_SOURCES`, refused otherwise when the suite is registered."""

    def coerce(self, metric: str, name: str, value):
        value = super().coerce(metric, name, value)
        if value not in PERPLEXITY_SOURCES:
            raise InvalidInput(f"{metric}.params.{name}", f"must be one of {sorted(PERPLEXITY_SOURCES)}, got {value!r}")
        return value


def _source_columns(columns, source: str) -> tuple[np.ndarray, np.ndarray]:
    if source not in PERPLEXITY_SOURCES:
        raise InvalidInput("perplexity.params.source", f"must be one of {sorted(PERPLEXITY_SOURCES)}, got {source!r}")
    sum_column, count_column = PERPLEXITY_SOURCES[source]
    if sum_column not in columns or count_column not in columns:
        raise InvalidInput(sum_column, f"the predictions have no token log-probabilities ({sum_column}, {count_column}): "
                                       f"perplexity needs an openai_chat candidate whose endpoint returns logprobs")
    return columns[sum_column], columns[count_column]


def perplexity_metric(columns, source: str = "generation") -> float:
    """Corpus perplexity (token-weighted) of ``source`` over the examples: see :func:`perplexity`."""
    return perplexity(*_source_columns(columns, source))


METRICS = [
    MetricDefinition(
        "perplexity", 1, "lower", frozenset({"generation"}), ("prediction",), perplexity_metric,
        params={"source": _Source(str, default="generation")},
        description="Corpus perplexity exp(-sum log p / tokens) from the endpoint's token logprobs, token-weighted "
                    "(not the mean of per-example perplexities); source=generation scores the candidate's answer, "
                    "source=reference the dataset's reference under the candidate."),
]


def perplexity_sources(metrics) -> set[str]:
    """The texts a suite's perplexity metrics score (``metrics``: its configured metrics): what its candidate's
    calls must return log-probabilities for."""
    return {m.params.get("source", "generation") for m in metrics if m.definition.name == "perplexity"}


def perplexity_reports(metrics, columns) -> dict[str, dict]:
    """For each perplexity metric of a suite (``metrics``: its configured metrics, with ``name``,
    ``definition`` and ``params``) whose columns are there: the :class:`PerplexityReport` as a record, so a
    run says how many tokens the value rests on and how many examples had none (excluded)."""
    out = {}
    for metric in metrics:
        if metric.definition.name != "perplexity":
            continue
        source = metric.params.get("source", "generation")
        try:
            report = perplexity_report(*_source_columns(columns, source))
        except InvalidInput:
            continue  # the metric table has already refused these columns, naming the field
        out[metric.name] = {"source": source, "value": report.value if math.isfinite(report.value) else None,
                            "n_tokens": report.n_tokens, "n_examples": report.n_examples, "n_excluded": report.n_excluded}
    return out
