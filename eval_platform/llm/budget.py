"""Cost control: prices, token estimates, per-suite budgets and stratified sampling for judges.

A suite's budget has two independent halves, ``candidate`` and ``judge``, each with a token limit and a
money limit (either may be absent). Enforcement happens twice:

* **Before the run** (:func:`check_estimate`): the worst case of the calls the cache cannot answer
  (estimated prompt tokens plus ``max_tokens`` per call) must fit; otherwise :class:`BudgetExceeded` names
  the budget field and the run never starts.
* **During the run** (:class:`BudgetTracker`): every call reserves its worst case before it is sent and is
  settled with the usage the server reports. A call whose reservation does not fit is not sent; the run
  stops there and reports ``budget_exceeded`` (the release gate then says ``no_decision``). Because the
  reservation is the worst case, the spend never passes the limit unless the server counts prompt tokens
  differently from the estimate (a remote tokenizer is unknown here); the report then shows the overrun.

Token counts of prompts are estimated with :func:`count_tokens`, a simple deterministic tokenizer (words and
single punctuation marks) that the bundled local server also uses. Remote servers count with their own
tokenizer, so their usage (what is billed and recorded) may differ from the estimate.

Judging a stratified sample (:func:`stratified_sample`, :func:`stratified_estimate`) cuts judge cost: the
strata come from a column (for example a question category) or from a cheaper metric already computed on
every example (for example exact match), and the judged mean is reported with its confidence interval.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)

#: Tokens a chat message costs beyond its content (role and separators), and a reply's priming tokens.
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3


def count_tokens(text: str) -> int:
    """Number of tokens of ``text``: runs of word characters and single punctuation marks."""
    return len(_TOKEN.findall(text or ""))


def truncate_tokens(text: str, limit: int) -> str:
    """``text`` cut after its first ``limit`` tokens (the local server's ``max_tokens``)."""
    if limit <= 0:
        return ""
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= limit:
        return text
    return text[: matches[limit - 1].end()]


def count_message_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of a chat request (content tokens plus a fixed overhead per message)."""
    return sum(count_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages) + REPLY_PRIMING_TOKENS


# prices ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """Money per 1000 prompt (input) and completion (output) tokens, in the price table's currency."""

    input_per_1k: float
    output_per_1k: float

    def __post_init__(self):
        for name in ("input_per_1k", "output_per_1k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InvalidInput(f"price.{name}", f"must be a finite number >= 0, got {value!r}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens / 1000.0 * self.input_per_1k + completion_tokens / 1000.0 * self.output_per_1k


@dataclass(frozen=True)
class PriceTable:
    """Prices per model. A key is a model name, or ``endpoint/model`` to price one endpoint's model apart.

    A model without a price costs ``default`` when given; otherwise its cost is unknown, which is an error
    only where money matters (a money budget is set): :meth:`price` raises then.
    """

    prices: Mapping[str, Price] = field(default_factory=dict)
    default: Price | None = None
    currency: str = "USD"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PriceTable:
        """``{"currency": "USD", "default": {...}, "models": {"gpt-x": {"input_per_1k": .., "output_per_1k": ..}}}``."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput("prices", "must be a mapping")
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise InvalidInput("prices.models", "must be a mapping of model name to price")
        parsed = {}
        for name, value in models.items():
            if not isinstance(value, Mapping):
                raise InvalidInput(f"prices.models.{name}", "must be a mapping with input_per_1k and output_per_1k")
            parsed[str(name)] = _price(value, f"prices.models.{name}")
        default = _price(data["default"], "prices.default") if data.get("default") is not None else None
        return cls(parsed, default, str(data.get("currency", "USD")))

    def price(self, endpoint: str, model: str, required: bool = False) -> Price | None:
        found = self.prices.get(f"{endpoint}/{model}") or self.prices.get(model) or self.default
        if found is None and required:
            raise InvalidInput("prices", f"no price for model {model!r} (endpoint {endpoint!r}); a money budget needs one")
        return found

    def cost(self, endpoint: str, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        found = self.price(endpoint, model)
        return None if found is None else found.cost(prompt_tokens, completion_tokens)

    def to_dict(self) -> dict:
        return {"currency": self.currency, "default": asdict(self.default) if self.default else None,
                "models": {k: asdict(v) for k, v in sorted(self.prices.items())}}


def _price(value: Mapping[str, Any], where: str) -> Price:
    unknown = set(value) - {"input_per_1k", "output_per_1k"}
    if unknown:
        raise InvalidInput(where, f"unknown key(s) {sorted(unknown)}")
    try:
        return Price(value["input_per_1k"], value["output_per_1k"])
    except KeyError as missing:
        raise InvalidInput(where, f"needs {missing.args[0]}") from None


# budgets --------------------------------------------------------------------------------------------------

PHASES = ("candidate", "judge")


class BudgetExceeded(InvalidInput):
    """A run would go (or went) over one of its budget fields; ``field`` names it, e.g. ``budget.judge.max_cost``."""

    def __init__(self, field: str, problem: str, estimate: CostEstimate | None = None):
        super().__init__(field, problem)
        self.estimate = estimate


@dataclass(frozen=True)
class Limits:
    """One phase's limits: total tokens (prompt + completion) and money. ``None`` means unlimited."""

    max_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self):
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 0):
            raise InvalidInput("budget.max_tokens", f"must be an integer >= 0, got {self.max_tokens!r}")
        if self.max_cost is not None and (isinstance(self.max_cost, bool) or not isinstance(self.max_cost, int | float)
                                          or not math.isfinite(self.max_cost) or self.max_cost < 0):
            raise InvalidInput("budget.max_cost", f"must be a number >= 0, got {self.max_cost!r}")

    @property
    def unlimited(self) -> bool:
        return self.max_tokens is None and self.max_cost is None


@dataclass(frozen=True)
class SuiteBudget:
    """A suite's budget: candidate calls and judge calls are limited separately."""

    candidate: Limits = Limits()
    judge: Limits = Limits()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SuiteBudget:
        """``{"candidate": {"max_tokens": 200000, "max_cost": 1.5}, "judge": {"max_cost": 0.5}}``."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput("budget", "must be a mapping with 'candidate' and/or 'judge'")
        unknown = set(data) - set(PHASES)
        if unknown:
            raise InvalidInput("budget", f"unknown key(s) {sorted(unknown)}; known: {list(PHASES)}")
        halves = {}
        for phase in PHASES:
            part = data.get(phase) or {}
            if not isinstance(part, Mapping):
                raise InvalidInput(f"budget.{phase}", "must be a mapping with max_tokens and/or max_cost")
            extra = set(part) - {"max_tokens", "max_cost"}
            if extra:
                raise InvalidInput(f"budget.{phase}", f"unknown key(s) {sorted(extra)}; known: ['max_cost', 'max_tokens']")
            try:
                halves[phase] = Limits(part.get("max_tokens"), part.get("max_cost"))
            except InvalidInput as error:
                raise InvalidInput(f"budget.{phase}.{error.field.rsplit('.', 1)[-1]}", error.problem) from None
        return cls(**halves)

    def for_phase(self, phase: str) -> Limits:
        if phase not in PHASES:
            raise InvalidInput("phase", f"must be one of {list(PHASES)}, got {phase!r}")
        return getattr(self, phase)

    def to_dict(self) -> dict:
        return {phase: asdict(self.for_phase(phase)) for phase in PHASES}


def as_limits(budget: SuiteBudget | Limits | Mapping | None, phase: str) -> Limits:
    if budget is None:
        return Limits()
    if isinstance(budget, Limits):
        return budget
    if isinstance(budget, Mapping):
        budget = SuiteBudget.from_dict(budget)
    return budget.for_phase(phase)


@dataclass(frozen=True)
class CallCost:
    """Worst case of one call: its estimated prompt tokens and its ``max_tokens``."""

    endpoint: str
    model: str
    prompt_tokens: int
    max_completion_tokens: int


@dataclass
class CostEstimate:
    """What the calls the cache cannot answer would cost at most (and, where history exists, expectedly)."""

    phase: str
    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    worst_case_cost: float | None = 0.0
    unpriced_models: list[str] = field(default_factory=list)

    @property
    def worst_case_tokens(self) -> int:
        return self.prompt_tokens + self.max_completion_tokens

    def to_dict(self) -> dict:
        return {"phase": self.phase, "calls": self.calls, "cached": self.cached, "prompt_tokens": self.prompt_tokens,
                "max_completion_tokens": self.max_completion_tokens, "worst_case_tokens": self.worst_case_tokens,
                "worst_case_cost": self.worst_case_cost, "unpriced_models": list(self.unpriced_models)}


def estimate_cost(phase: str, calls: Iterable[CallCost], prices: PriceTable | None, cached: int = 0) -> CostEstimate:
    estimate = CostEstimate(phase=phase, cached=cached)
    prices = prices or PriceTable()
    unpriced: set[str] = set()
    for call in calls:
        estimate.calls += 1
        estimate.prompt_tokens += call.prompt_tokens
        estimate.max_completion_tokens += call.max_completion_tokens
        cost = prices.cost(call.endpoint, call.model, call.prompt_tokens, call.max_completion_tokens)
        if cost is None:
            unpriced.add(call.model)
        elif estimate.worst_case_cost is not None:
            estimate.worst_case_cost += cost
    estimate.unpriced_models = sorted(unpriced)
    if unpriced:
        estimate.worst_case_cost = None
    return estimate


def check_estimate(estimate: CostEstimate, limits: Limits) -> None:
    """Refuse to start when the worst case does not fit: raise :class:`BudgetExceeded` naming the field."""
    phase = estimate.phase
    if limits.max_tokens is not None and estimate.worst_case_tokens > limits.max_tokens:
        raise BudgetExceeded(
            f"budget.{phase}.max_tokens",
            f"the {estimate.calls} uncached {phase} call(s) may use up to {estimate.worst_case_tokens} tokens "
            f"({estimate.prompt_tokens} prompt + {estimate.max_completion_tokens} max completion), over the limit "
            f"of {limits.max_tokens}; raise the budget, lower max_tokens or judge a sample", estimate)
    if limits.max_cost is not None:
        if estimate.worst_case_cost is None:
            raise BudgetExceeded(f"budget.{phase}.max_cost",
                                 f"no price for model(s) {estimate.unpriced_models}: the money budget cannot be checked", estimate)
        if estimate.worst_case_cost > limits.max_cost:
            raise BudgetExceeded(
                f"budget.{phase}.max_cost",
                f"the {estimate.calls} uncached {phase} call(s) may cost up to {estimate.worst_case_cost:.6f}, "
                f"over the limit of {limits.max_cost}", estimate)


class BudgetTracker:
    """Thread-safe spend of one phase during a run: reserve the worst case before a call, settle after.

    ``exceeded_field`` is set when a call could not be reserved with no other call in flight (the run stops
    sending calls) or when settled usage went over a limit (a server counting more tokens than estimated).
    """

    def __init__(self, phase: str, limits: Limits | None = None, prices: PriceTable | None = None):
        self.phase = phase
        self.limits = limits or Limits()
        self.prices = prices or PriceTable()
        self._lock = threading.Lock()
        self.spent_tokens = 0
        self.spent_cost = 0.0
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        self.exceeded_field: str | None = None

    def worst_case(self, call: CallCost) -> tuple[int, float]:
        price = self.prices.price(call.endpoint, call.model, required=self.limits.max_cost is not None)
        cost = price.cost(call.prompt_tokens, call.max_completion_tokens) if price else 0.0
        return call.prompt_tokens + call.max_completion_tokens, cost

    def try_reserve(self, call: CallCost) -> tuple[tuple[int, float] | None, str | None]:
        """``(reservation, None)``, or ``(None, field)`` when the call's worst case does not fit now.

        A refusal is not final while other calls are in flight (their reservations are released, usually
        for less, when they settle): the caller waits for them and asks again, and calls
        :meth:`mark_exceeded` only when a call does not fit with nothing in flight."""
        tokens, cost = self.worst_case(call)
        with self._lock:
            if self.exceeded_field is not None:
                return None, self.exceeded_field
            if self.limits.max_tokens is not None and self.spent_tokens + self._reserved_tokens + tokens > self.limits.max_tokens:
                return None, f"budget.{self.phase}.max_tokens"
            if self.limits.max_cost is not None and self.spent_cost + self._reserved_cost + cost > self.limits.max_cost + 1e-12:
                return None, f"budget.{self.phase}.max_cost"
            self._reserved_tokens += tokens
            self._reserved_cost += cost
            return (tokens, cost), None

    def mark_exceeded(self, field: str) -> None:
        with self._lock:
            self.exceeded_field = self.exceeded_field or field

    def settle(self, reservation: tuple[int, float], tokens: int, cost: float | None) -> None:
        with self._lock:
            self._reserved_tokens -= reservation[0]
            self._reserved_cost -= reservation[1]
            self.spent_tokens += tokens
            self.spent_cost += cost or 0.0
            if self.limits.max_tokens is not None and self.spent_tokens > self.limits.max_tokens:
                self.exceeded_field = self.exceeded_field or f"budget.{self.phase}.max_tokens"
            if self.limits.max_cost is not None and self.spent_cost > self.limits.max_cost + 1e-12:
                self.exceeded_field = self.exceeded_field or f"budget.{self.phase}.max_cost"

    @property
    def exceeded(self) -> bool:
        return self.exceeded_field is not None


# stratified sampling --------------------------------------------------------------------------------------


def strata_from_metric(values: Sequence[float] | np.ndarray | pd.Series, bins: Sequence[float] | int = (0.5,)) -> np.ndarray:
    """Strata from a cheaper per-example metric: ``bins`` are cut points (default: below/at-or-above 0.5,
    which splits a 0/1 metric such as exact match) or a number of equal-count quantile bins."""
    array = np.asarray(values, dtype=np.float64)
    if np.isnan(array).any():
        raise InvalidInput("strata", "the metric used for strata has missing values")
    if isinstance(bins, int):
        if bins < 1:
            raise InvalidInput("strata.bins", "must be >= 1")
        edges = np.unique(np.quantile(array, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.asarray(sorted(bins), dtype=np.float64)
    index = np.searchsorted(edges, array, side="right")
    if len(edges):
        labels = [f"<{edges[0]:g}"] + [f"[{lo:g},{hi:g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)] + [f">={edges[-1]:g}"]
    else:
        labels = ["all"]
    return np.array([labels[i] for i in index], dtype=object)


@dataclass(frozen=True)
class StratifiedSample:
    """The rows chosen for judging, with each row's stratum and the population size of every stratum."""

    positions: np.ndarray  # positions (0-based) of the sampled rows in the original frame
    strata: np.ndarray  # stratum of each sampled row
    population: Mapping[str, int]  # stratum -> number of rows in the whole frame
    seed: int
    size: int

    def to_dict(self) -> dict:
        sampled = pd.Series(self.strata).value_counts().to_dict()
        return {"seed": self.seed, "size": self.size, "population": dict(self.population),
                "sampled": {k: int(sampled.get(k, 0)) for k in self.population}}


def stratified_sample(strata: Sequence[Any] | np.ndarray | pd.Series, size: int, seed: int = 0,
                      min_per_stratum: int = 2) -> StratifiedSample:
    """Proportional allocation of ``size`` rows over the strata (at least ``min_per_stratum`` per stratum,
    or the whole stratum when smaller), rows drawn without replacement with a seeded generator."""
    labels = np.asarray(pd.Series(strata).astype(str))
    total = len(labels)
    if total == 0:
        raise InvalidInput("sample", "there are no examples to sample")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInput("sample.size", f"must be an integer >= 1, got {size!r}")
    names, counts = np.unique(labels, return_counts=True)
    population = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    allocation = dict(population) if size >= total else _allocate(population, size, min_per_stratum)
    rng = np.random.default_rng(seed)
    chosen = []
    for name in sorted(population):
        rows = np.flatnonzero(labels == name)
        chosen.append(np.sort(rng.choice(rows, size=allocation[name], replace=False)))
    positions = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
    return StratifiedSample(positions=positions, strata=labels[positions], population=population, seed=seed, size=len(positions))


def _allocate(population: Mapping[str, int], size: int, min_per_stratum: int) -> dict[str, int]:
    """Rows to draw per stratum: ``min_per_stratum`` each (or the whole stratum), the rest proportionally."""
    floor = {n: min(c, min_per_stratum) for n, c in population.items()}
    remaining = size - sum(floor.values())
    if remaining < 0:
        raise InvalidInput("sample.size", f"{size} is below the {sum(floor.values())} rows needed for "
                           f"{min_per_stratum} per stratum over {len(population)} strata")
    # largest-remainder apportionment of the rest, proportional to stratum size, capped by the stratum
    allocation = dict(floor)
    capacity = {n: population[n] - floor[n] for n in population}
    while remaining > 0 and any(capacity.values()):
        open_total = sum(population[n] for n in population if capacity[n] > 0)
        quotas = {n: remaining * population[n] / open_total for n in population if capacity[n] > 0}
        given = 0
        for n, q in quotas.items():
            take = min(int(math.floor(q)), capacity[n])
            allocation[n] += take
            capacity[n] -= take
            given += take
        remaining -= given
        if remaining > 0 and given == 0:
            remaining = _give_by_largest_remainder(quotas, allocation, capacity, remaining)
    return allocation


def _give_by_largest_remainder(quotas: Mapping[str, float], allocation: dict[str, int], capacity: dict[str, int],
                               remaining: int) -> int:
    """One more row to each stratum in order of its quota's fractional part while rows remain; the rows left."""
    for n in sorted(quotas, key=lambda k: (-(quotas[k] - math.floor(quotas[k])), k)):
        if remaining == 0:
            break
        if capacity[n] > 0:
            allocation[n] += 1
            capacity[n] -= 1
            remaining -= 1
    return remaining


@dataclass(frozen=True)
class StratifiedEstimate:
    """A population mean estimated from a stratified sample, with its standard error and confidence interval."""

    mean: float
    standard_error: float
    ci_low: float
    ci_high: float
    confidence: float
    n_sampled: int
    n_population: int
    strata: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def stratified_estimate(values: Sequence[float] | np.ndarray, strata: Sequence[Any] | np.ndarray,
                        population: Mapping[str, int], confidence: float = 0.95) -> StratifiedEstimate:
    """Population mean from a stratified sample: ``sum_h W_h * mean_h`` with ``W_h = N_h / N``.

    Variance ``sum_h W_h^2 (1 - n_h/N_h) s_h^2 / n_h`` (finite-population correction; a stratum judged
    completely contributes none), interval from Student's t with ``n - H`` degrees of freedom (``H``
    strata), a little wider than the normal one for the small samples judging is about. Values that are NaN (judge errors) are
    left out of their stratum's sample; a stratum with no value left makes the estimate NaN (it is unknown).
    A stratum judged on one example only (of several) has an unknown variance: the standard error and the
    interval are then NaN (undefined) rather than pretending that stratum is exact.
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(pd.Series(strata).astype(str))
    if len(values) != len(labels):
        raise InvalidInput("strata", "values and strata have different lengths")
    total = sum(population.values())
    mean = variance = 0.0
    rows = []
    sampled = 0
    for name, size in sorted(population.items()):
        stratum = values[(labels == name) & ~np.isnan(values)]
        n = len(stratum)
        sampled += n
        weight = size / total
        if n == 0:
            rows.append({"stratum": name, "population": size, "judged": 0, "mean": None, "weight": weight})
            mean = float("nan")
            continue
        s2 = float(np.var(stratum, ddof=1)) if n > 1 else (0.0 if n >= size else float("nan"))
        mean += weight * float(np.mean(stratum))
        variance += weight ** 2 * (1 - n / size) * s2 / n
        rows.append({"stratum": name, "population": size, "judged": n, "mean": float(np.mean(stratum)), "weight": weight,
                     "variance": s2 if math.isfinite(s2) else None})
    se = math.sqrt(max(variance, 0.0)) if math.isfinite(variance) else float("nan")
    z = float(scipy_stats.t.ppf(0.5 + confidence / 2, df=max(sampled - len(population), 1)))
    return StratifiedEstimate(mean=mean, standard_error=se, ci_low=mean - z * se, ci_high=mean + z * se,
                              confidence=confidence, n_sampled=sampled, n_population=total, strata=rows)


def label_efficiency(estimate: StratifiedEstimate) -> dict:
    """What stratifying bought: the judged examples a simple random sample would need for the same precision.

    ``efficiency = Var_srs / Var_strat`` at the same sample size ``n``. ``Var_strat`` is the estimate's
    variance (``standard_error ** 2``); ``Var_srs = (1 - n/N) S^2 / n`` with the population variance
    estimated from the strata, ``S^2 ~ sum_h W_h s_h^2 + sum_h W_h (mean_h - mean)^2`` (within plus between
    strata). ``effective_sample_size = n * efficiency``: an efficiency of 2 means a random sample would
    need about twice the judge calls for an interval as narrow. ``judged_share = n / N``.

    Edge cases: ``None`` (undefined) when a variance is unknown (NaN), and when the stratified variance is
    0 while the random one is not (the strata explain every difference: the ratio is unbounded); 1 when
    both are 0.
    """
    n, total = estimate.n_sampled, estimate.n_population
    out = {"judged": n, "population": total, "judged_share": n / total if total else None,
           "label_efficiency": None, "effective_sample_size": None, "srs_standard_error": None}
    rows = [r for r in estimate.strata if r["judged"]]
    if not rows or n == 0 or len(rows) != len(estimate.strata) or not math.isfinite(estimate.standard_error):
        return out
    if any(r["variance"] is None for r in rows):
        return out
    within = sum(r["weight"] * r["variance"] for r in rows)
    between = sum(r["weight"] * (r["mean"] - estimate.mean) ** 2 for r in rows)
    var_srs = max(1 - n / total, 0.0) * (within + between) / n
    var_strat = estimate.standard_error ** 2
    out["srs_standard_error"] = math.sqrt(var_srs)
    if var_strat == 0:
        efficiency = 1.0 if var_srs == 0 else None
    else:
        efficiency = var_srs / var_strat
    if efficiency is not None:
        out["label_efficiency"] = float(efficiency)
        out["effective_sample_size"] = float(n * efficiency)
    return out
