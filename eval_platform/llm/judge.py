"""Model-as-judge with a pinned judge: n-sample verdicts with their agreement, pairwise in both orders.

A :class:`JudgeConfig` pins everything that determines a verdict: endpoint identity, judge model and its
version, the judge prompt template (id, version and text), the rubric, the output schema and the decoding
parameters. Its record and hash go on every judged result, and all of it is in every judge call's cache
key, so a verdict is reused only by the very same judge on the very same inputs.

* :func:`judge` asks the judge ``n`` times per example (sample ``i`` uses seed ``seed + i`` when the
  decoding has a seed, so samples are distinct, reproducible calls). Each example gets the mean score of
  its valid samples, the agreement of the samples (share agreeing with the majority label) and whether they
  disagree; the summary lists the examples whose verdicts disagree.
* :func:`judge_pairwise` asks "A or B?" in both orders (A first, then B first) to cancel position bias:
  the preference for A averages both orders, and an example whose two orders disagree is listed.
* A reply that does not parse against the output schema is a recorded judge error on that sample (and
  the example's status is ``judge_error`` when no sample parsed); it never becomes a score.
* :class:`SamplingPlan` judges a stratified sample (strata from a column or a cheaper metric) and reports
  the population estimate with its confidence interval.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.llm.budget import (
    BudgetTracker,
    Limits,
    PriceTable,
    SuiteBudget,
    as_limits,
    check_estimate,
    estimate_cost,
    stratified_estimate,
    stratified_sample,
)
from eval_platform.llm.cache import CallCache, MemoryCache
from eval_platform.llm.calls import (
    CANCELLED,
    ERROR,
    SKIPPED_BUDGET,
    CallReport,
    CallRequest,
    endpoint_client,
    execute_calls,
    make_request,
)
from eval_platform.llm.client import LLMClient, RetryPolicy
from eval_platform.llm.specs import Decoding, Endpoint, PromptTemplate

OUTPUT_KINDS = ("score", "pass_fail", "pairwise")
#: Example statuses of a judged result (besides the candidate's ``skipped_budget``/``cancelled``).
JUDGED, JUDGE_ERROR, NO_ANSWER = "ok", "judge_error", "no_answer"
#: Version of the aggregation code below (agreement, majority, pairwise mapping): recorded on results.
JUDGE_CODE_VERSION = "1"

_INSTRUCTIONS = {
    "score": 'Reply with only a JSON object: {"score": <a number from 0 to 1>, "rationale": "<one sentence>"}.',
    "pass_fail": 'Reply with only a JSON object: {"verdict": "pass" or "fail", "rationale": "<one sentence>"}.',
    "pairwise": 'Reply with only a JSON object: {"winner": "A", "B" or "tie", "rationale": "<one sentence>"}.',
}
_SCHEMAS = {
    "score": {"type": "object", "properties": {"score": {"type": "number"}, "rationale": {"type": "string"}},
              "required": ["score", "rationale"], "additionalProperties": False},
    "pass_fail": {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["pass", "fail"]},
                                                   "rationale": {"type": "string"}},
                  "required": ["verdict", "rationale"], "additionalProperties": False},
    "pairwise": {"type": "object", "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]},
                                                  "rationale": {"type": "string"}},
                 "required": ["winner", "rationale"], "additionalProperties": False},
}

#: The default single-answer judge prompt (the bundled rule judge reads its bracketed sections).
QA_JUDGE_PROMPT = PromptTemplate(
    id="qa-correctness-judge", version="1",
    system="You are a strict grader of answers to factual questions. Judge only correctness against the reference.",
    text=("Rubric: {rubric}\n\n[QUESTION]\n{question}\n[/QUESTION]\n[REFERENCE]\n{reference}\n[/REFERENCE]\n"
          "[ANSWER]\n{answer}\n[/ANSWER]\n\n{output_instructions}"),
)
#: The default pairwise judge prompt.
PAIRWISE_JUDGE_PROMPT = PromptTemplate(
    id="qa-pairwise-judge", version="1",
    system="You compare two answers to a factual question and pick the more correct one.",
    text=("Rubric: {rubric}\n\n[QUESTION]\n{question}\n[/QUESTION]\n[REFERENCE]\n{reference}\n[/REFERENCE]\n"
          "[ANSWER_A]\n{answer_a}\n[/ANSWER_A]\n[ANSWER_B]\n{answer_b}\n[/ANSWER_B]\n\n{output_instructions}"),
)
DEFAULT_RUBRIC = ("An answer is correct when it states the reference answer (or an equivalent form of it) and "
                  "nothing contradicting it; extra words are fine.")

_ALLOWED = {"question", "reference", "answer", "answer_a", "answer_b", "rubric", "output_instructions"}


class JudgeParseError(ValueError):
    """A judge reply that does not match the output schema."""


@dataclass(frozen=True)
class JudgeConfig:
    """A pinned judge. ``output``: ``score`` (0-1), ``pass_fail`` or ``pairwise``.

    ``structured_output`` sends the output schema as ``response_format`` (JSON schema); servers without
    structured output still get it in the prompt (``{output_instructions}``). ``pass_threshold`` turns a
    score into a pass/fail label; samples disagree when their labels differ or their scores spread more than
    ``score_tolerance``.
    """

    endpoint: Endpoint
    model: str
    model_version: str
    prompt: PromptTemplate = QA_JUDGE_PROMPT
    rubric: str = DEFAULT_RUBRIC
    output: str = "score"
    decoding: Decoding = Decoding(temperature=0.0, max_tokens=200, seed=0)
    structured_output: bool = True
    pass_threshold: float = 0.5
    score_tolerance: float = 0.25

    def __post_init__(self):
        if self.output not in OUTPUT_KINDS:
            raise InvalidInput("judge.output", f"must be one of {list(OUTPUT_KINDS)}, got {self.output!r}")
        if not isinstance(self.model, str) or not self.model:
            raise InvalidInput("judge.model", "must be a non-empty model name")
        if isinstance(self.model_version, int) and not isinstance(self.model_version, bool):
            object.__setattr__(self, "model_version", str(self.model_version))
        if not isinstance(self.model_version, str) or not self.model_version:
            raise InvalidInput("judge.model_version", "must be pinned (a non-empty string)")
        if not isinstance(self.rubric, str):
            raise InvalidInput("judge.rubric", "must be a string")
        names = set(self.prompt.placeholders)
        unknown = names - _ALLOWED
        if unknown:
            raise InvalidInput("judge.prompt", f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED)}")
        needed = {"answer_a", "answer_b"} if self.output == "pairwise" else {"answer"}
        if not needed <= names:
            raise InvalidInput("judge.prompt", f"a {self.output} judge prompt needs placeholder(s) {sorted(needed - names)}")
        if not 0 <= self.pass_threshold <= 1:
            raise InvalidInput("judge.pass_threshold", "must be in [0, 1]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgeConfig:
        if not isinstance(data, Mapping):
            raise InvalidInput("judge", "must be a mapping")
        values = dict(data)
        try:
            values["endpoint"] = Endpoint(**values["endpoint"])
            if "prompt" in values:
                values["prompt"] = PromptTemplate(**values["prompt"])
            elif values.get("output") == "pairwise":  # the default prompt of a pairwise judge shows two answers
                values["prompt"] = PAIRWISE_JUDGE_PROMPT
            if "decoding" in values:
                values["decoding"] = Decoding.from_dict(values["decoding"])
            return cls(**values)
        except (KeyError, TypeError) as error:
            raise InvalidInput("judge", f"is incomplete or has unknown keys: {error}") from None

    @property
    def json_schema(self) -> dict:
        return _SCHEMAS[self.output]

    def response_format(self) -> dict | None:
        if not self.structured_output:
            return None
        return {"type": "json_schema", "json_schema": {"name": f"judge_{self.output}", "schema": self.json_schema, "strict": True}}

    def call_identity(self) -> dict:
        """Everything that determines a judge reply (part of every judge call's cache key). Do not mutate."""
        return self._call_identity

    @cached_property
    def _call_identity(self) -> dict:
        return {"endpoint": self.endpoint.identity(), "model": self.model, "model_version": self.model_version,
                "prompt": {"id": self.prompt.id, "version": self.prompt.version, "text": self.prompt.text,
                           "system": self.prompt.system},
                "rubric": self.rubric, "output": self.output, "output_schema": self.json_schema,
                "structured_output": self.structured_output, "decoding": self.decoding.identity()}

    def record(self) -> dict:
        """The pinned configuration as recorded on every judged result."""
        return {**self.call_identity(), "endpoint": self.endpoint.record(), "pass_threshold": self.pass_threshold,
                "score_tolerance": self.score_tolerance, "aggregation_code": JUDGE_CODE_VERSION}

    @cached_property
    def config_hash(self) -> str:
        return json_hash({**self.record(), "endpoint": self.endpoint.identity()})

    @property
    def judge_model(self) -> str:
        return f"{self.endpoint.name}/{self.model}@{self.model_version}"

    def pin(self) -> dict:
        """The suite-metric parameters the release gate requires of a judge metric."""
        return {"judge_model": self.judge_model, "judge_prompt_version": self.prompt.key, "judge_config_hash": self.config_hash}


def default_judge(endpoint: Endpoint, model: str = "rule-judge-1", model_version: str = "1", output: str = "score",
                  **overrides) -> JudgeConfig:
    prompt = PAIRWISE_JUDGE_PROMPT if output == "pairwise" else QA_JUDGE_PROMPT
    return JudgeConfig(endpoint=endpoint, model=model, model_version=model_version, prompt=overrides.pop("prompt", prompt),
                       output=output, **overrides)


# requests and replies -------------------------------------------------------------------------------------


def _sample_decoding(config: JudgeConfig, sample: int) -> Decoding:
    if config.decoding.seed is None:
        return config.decoding
    return config.decoding.with_seed(config.decoding.seed + sample)


def _judge_request(config: JudgeConfig, inputs: Mapping[str, str], sample: int) -> CallRequest:
    values = {**inputs, "rubric": config.rubric, "output_instructions": _INSTRUCTIONS[config.output]}
    messages = config.prompt.render(values)
    return make_request("judge", config.endpoint, config.model, config.model_version, config.prompt.id,
                        config.prompt.version, messages, _sample_decoding(config, sample),
                        {"judge": config.call_identity(), "inputs": dict(inputs), "sample": sample},
                        config.response_format())


def verdict_requests(config: JudgeConfig, values: Mapping[str, Any], n: int = 1) -> list[CallRequest]:
    """The ``n`` calls judging one answer (``values``: question, reference, answer)."""
    inputs = {k: _text(values.get(k, "")) for k in ("question", "reference", "answer")}
    return [_judge_request(config, inputs, i) for i in range(n)]


def pairwise_requests(config: JudgeConfig, values: Mapping[str, Any], n: int = 1) -> list[tuple[int, str, CallRequest]]:
    """``(sample, order, request)``: for each sample, A shown first (``AB``) and B shown first (``BA``)."""
    question, reference = _text(values.get("question", "")), _text(values.get("reference", ""))
    a, b = _text(values["answer_a"]), _text(values["answer_b"])
    out = []
    for i in range(n):
        out.append((i, "AB", _judge_request(config, {"question": question, "reference": reference, "answer_a": a, "answer_b": b}, i)))
        out.append((i, "BA", _judge_request(config, {"question": question, "reference": reference, "answer_a": b, "answer_b": a}, i)))
    return out


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return " | ".join(str(v) for v in value)
    return str(value)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_verdict(text: str, output: str) -> dict:
    """``{"score", "label", "rationale"}`` from a judge reply, or :class:`JudgeParseError`.

    The reply must be one JSON object with the schema's fields (a Markdown code fence around it is
    allowed); a score must be a number in [0, 1]. Nothing is guessed from prose."""
    body = (text or "").strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # a reply nested thousands deep is as unparsable as prose
        raise JudgeParseError(f"not JSON: {text[:120]!r}") from None
    if not isinstance(value, dict):
        raise JudgeParseError(f"not a JSON object: {text[:120]!r}")
    rationale = value.get("rationale", "")
    if not isinstance(rationale, str):
        raise JudgeParseError("rationale is not a string")
    if output == "score":
        score = value.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
            raise JudgeParseError(f"score must be a number in [0, 1], got {score!r}")
        return {"score": float(score), "label": None, "rationale": rationale}
    if output == "pass_fail":
        verdict = value.get("verdict")
        if verdict not in ("pass", "fail"):
            raise JudgeParseError(f"verdict must be 'pass' or 'fail', got {verdict!r}")
        return {"score": 1.0 if verdict == "pass" else 0.0, "label": verdict, "rationale": rationale}
    winner = value.get("winner")
    if winner not in ("A", "B", "tie"):
        raise JudgeParseError(f"winner must be 'A', 'B' or 'tie', got {winner!r}")
    return {"score": {"A": 1.0, "B": 0.0, "tie": 0.5}[winner], "label": winner, "rationale": rationale}


# sampling -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingPlan:
    """Judge ``size`` examples drawn by stratum. ``strata``: a column name of the examples, or one value
    per example (e.g. :func:`~eval_platform.llm.budget.strata_from_metric` of exact match); ``None`` is
    one stratum (a simple random sample)."""

    size: int
    strata: str | Sequence[Any] | None = None
    seed: int = 0
    min_per_stratum: int = 2
    confidence: float = 0.95

    def draw(self, frame: pd.DataFrame):
        if self.strata is None:
            labels = np.array(["all"] * len(frame), dtype=object)
        elif isinstance(self.strata, str):
            if self.strata not in frame.columns:
                raise InvalidInput("sample.strata", f"column {self.strata!r} is not in the examples")
            labels = frame[self.strata].astype(str).to_numpy()
        else:
            labels = np.asarray(pd.Series(list(self.strata)).astype(str))
            if len(labels) != len(frame):
                raise InvalidInput("sample.strata", f"has {len(labels)} values for {len(frame)} examples")
        return stratified_sample(labels, self.size, self.seed, self.min_per_stratum)

    def record(self) -> dict:
        return {"size": self.size, "strata": self.strata if isinstance(self.strata, str) or self.strata is None else "values",
                "seed": self.seed, "min_per_stratum": self.min_per_stratum, "confidence": self.confidence}


# results --------------------------------------------------------------------------------------------------


@dataclass
class JudgeResult:
    """``verdicts``: one row per judged example; ``summary``: the aggregate and the pinned judge;
    ``report``: the judge calls (made, cached, tokens, cost, retries, errors, budget)."""

    verdicts: pd.DataFrame
    summary: dict
    report: CallReport = field(default_factory=lambda: CallReport(phase="judge"))

    @property
    def disagreements(self) -> list:
        return list(self.summary.get("disagreements", []))

    def to_dict(self) -> dict:
        return {"summary": self.summary, "report": self.report.to_dict()}


def _prepare(examples: pd.DataFrame, columns: Mapping[str, str], id_column: str, needed: Sequence[str]) -> pd.DataFrame:
    if not isinstance(examples, pd.DataFrame):
        raise InvalidInput("examples", "must be a pandas DataFrame")
    if len(examples) == 0:
        raise InvalidInput("examples", "has no rows")
    mapping = {name: columns.get(name, name) for name in needed}
    missing = sorted({c for c in [id_column, *mapping.values()] if c not in examples.columns})
    if missing:
        raise InvalidInput("examples", f"lacks column(s) {missing}")
    if examples[id_column].duplicated().any():
        raise InvalidInput(id_column, "has duplicated ids")
    frame = pd.DataFrame({"example_id": examples[id_column].to_numpy()})
    for name, column in mapping.items():
        frame[name] = examples[column].to_numpy()
    return frame.reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _run_calls(config: JudgeConfig, requests: list[CallRequest], cache: CallCache, budget, client, prices, retry,
               concurrency, dataset, check_budget, cancel, progress, examples: int):
    cache.pin_template(config.prompt, "judge")
    client, owned = endpoint_client(config.endpoint, client, prices, retry)
    try:
        limits = as_limits(budget, "judge")
        unique = {r.key: r for r in requests}
        cached = cache.get_many(unique)
        estimate = estimate_cost("judge", (r.cost() for k, r in unique.items() if k not in cached), client.prices, len(cached))
        report = CallReport(phase="judge", examples=examples, estimate=estimate.to_dict())
        if check_budget:
            check_estimate(estimate, limits)
        tracker = BudgetTracker("judge", limits, client.prices)
        return execute_calls(requests, cache, client, phase="judge", tracker=tracker, concurrency=concurrency,
                             dataset=dataset, cancel=cancel, progress=progress, report=report)
    finally:
        if owned:
            client.close()


def _sample_result(outcome, output: str) -> dict:
    entry = {"cache_key": outcome.request.key, "score": None, "label": None, "rationale": None, "error": None}
    if outcome.record is None:
        entry["error"] = {ERROR: f"call failed: {outcome.error}", SKIPPED_BUDGET: "not judged: budget reached",
                          CANCELLED: "not judged: run cancelled"}.get(outcome.status, outcome.status)
        entry["status"] = outcome.status
        return entry
    try:
        entry.update(parse_verdict(outcome.record.response_text, output))
        entry["status"] = JUDGED
    except JudgeParseError as error:
        entry["error"] = f"unparsable judge reply: {error}"
        entry["status"] = JUDGE_ERROR
    return entry


def _status(samples: list[dict]) -> str:
    if any(s["status"] == JUDGED for s in samples):
        return JUDGED
    if any(s["status"] in (JUDGE_ERROR, ERROR) for s in samples):
        return JUDGE_ERROR
    return samples[0]["status"] if samples else NO_ANSWER


def judge(examples: pd.DataFrame, config: JudgeConfig, n: int = 1, *, cache: CallCache | None = None,
          budget: SuiteBudget | Limits | Mapping | None = None, client: LLMClient | None = None,
          prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
          sample: SamplingPlan | None = None, columns: Mapping[str, str] | None = None, id_column: str = "example_id",
          dataset: str | None = None, check_budget: bool = True, cancel: threading.Event | None = None,
          progress: Callable[[int, int], None] | None = None, only: tuple[int, int] | None = None) -> JudgeResult:
    """Judge each example's answer ``n`` times. ``examples`` has ``id_column`` and the columns named by
    ``columns`` for ``question``, ``reference`` and ``answer`` (default: those names). Examples without an
    answer (a failed candidate call) are ``no_answer`` and not judged.

    ``only=(start, stop)``: judge only the selected examples (all, or the sample drawn from all of them) at
    row positions ``start <= p < stop``: one shard of the run (:mod:`eval_platform.evaluation.shards`); its
    verdict rows are exactly those rows of the whole run's verdicts, and :func:`summarize` gives the whole
    run's summary from the shards' verdicts put back together."""
    if config.output == "pairwise":
        raise InvalidInput("judge.output", "a pairwise judge is run with judge_pairwise")
    n = _check_n(n)
    frame = _prepare(examples, columns or {}, id_column, ("question", "reference", "answer"))
    judged, strata, plan = _select(examples.reset_index(drop=True), sample)
    judged, strata = _within(judged, strata, only)
    if not judged:  # a shard the sample left no example in
        return JudgeResult(pd.DataFrame(), {}, CallReport(phase="judge"))
    units: list[tuple[int, list[CallRequest]]] = []
    requests: list[CallRequest] = []
    records = frame.to_dict("records")  # row dicts once: a frame's row lookups cost more than the calls' client side
    for position in judged:
        row = records[position]
        if _missing(row["answer"]):
            units.append((position, []))
            continue
        reqs = verdict_requests(config, row, n)
        units.append((position, reqs))
        requests.extend(reqs)
    outcomes, report = _run_calls(config, requests, cache if cache is not None else MemoryCache(), budget, client,
                                  prices, retry, concurrency, dataset, check_budget, cancel, progress, len(judged))
    rows = []
    for (position, reqs), stratum in zip(units, strata, strict=True):
        samples = [{"sample": i, **_sample_result(outcomes[r.key], config.output)} for i, r in enumerate(reqs)]
        valid = [s for s in samples if s["status"] == JUDGED]
        for s in valid:
            if s["label"] is None:
                s["label"] = "pass" if s["score"] >= config.pass_threshold else "fail"
        labels = [s["label"] for s in valid]
        scores = [s["score"] for s in valid]
        majority = Counter(labels).most_common(1)[0] if labels else (None, 0)
        disagree = len(set(labels)) > 1 or (len(scores) > 1 and max(scores) - min(scores) > config.score_tolerance)
        rows.append({
            "example_id": records[position]["example_id"],
            "score": float(np.mean(scores)) if scores else float("nan"),
            "label": majority[0],
            "n_samples": n, "n_valid": len(valid), "n_errors": sum(1 for s in samples if s["status"] in (JUDGE_ERROR, ERROR)),
            "agreement": majority[1] / len(valid) if valid else float("nan"),
            "disagree": bool(disagree),
            "status": _status(samples) if reqs else NO_ANSWER,
            "stratum": stratum,
            "errors": json.dumps([s["error"] for s in samples if s["error"]]),
            "samples": json.dumps(samples),
        })
    verdicts = _finish_frame(rows, config, id_column)
    summary = _summary(verdicts, config, n, plan, strata_population=plan and plan[1], report=report, pairwise=False)
    return JudgeResult(verdicts, summary, report)


def judge_pairwise(examples: pd.DataFrame, config: JudgeConfig, n: int = 1, *, cache: CallCache | None = None,
                   budget: SuiteBudget | Limits | Mapping | None = None, client: LLMClient | None = None,
                   prices: PriceTable | None = None, retry: RetryPolicy | None = None, concurrency: int = 8,
                   sample: SamplingPlan | None = None, columns: Mapping[str, str] | None = None,
                   id_column: str = "example_id", dataset: str | None = None, check_budget: bool = True,
                   cancel: threading.Event | None = None,
                   progress: Callable[[int, int], None] | None = None) -> JudgeResult:
    """Compare ``answer_a`` with ``answer_b`` per example, each sample in both orders.

    ``preference_a`` is 1 when A wins, 0 when B wins, 0.5 for a tie, averaged over both orders and the
    ``n`` samples; ``position_consistent`` is False when an order flip changed the (mapped) winner, and
    such examples are the summary's ``disagreements``. ``first_position_rate`` is the share of decisive
    verdicts that picked whichever answer was shown first (0.5 for an unbiased judge)."""
    if config.output != "pairwise":
        raise InvalidInput("judge.output", "judge_pairwise needs a judge with output 'pairwise'")
    n = _check_n(n)
    frame = _prepare(examples, columns or {}, id_column, ("question", "reference", "answer_a", "answer_b"))
    judged, strata, plan = _select(examples.reset_index(drop=True), sample)
    units: list[tuple[int, list[tuple[int, str, CallRequest]]]] = []
    requests: list[CallRequest] = []
    records = frame.to_dict("records")  # row dicts once: a frame's row lookups cost more than the calls' client side
    for position in judged:
        row = records[position]
        if _missing(row["answer_a"]) or _missing(row["answer_b"]):
            units.append((position, []))
            continue
        reqs = pairwise_requests(config, row, n)
        units.append((position, reqs))
        requests.extend(r for _, _, r in reqs)
    outcomes, report = _run_calls(config, requests, cache if cache is not None else MemoryCache(), budget, client,
                                  prices, retry, concurrency, dataset, check_budget, cancel, progress, len(judged))
    rows = []
    for (position, reqs), stratum in zip(units, strata, strict=True):
        samples = []
        for i, order, request in reqs:
            entry = {"sample": i, "order": order, **_sample_result(outcomes[request.key], "pairwise")}
            entry["first_shown_won"] = entry["label"] == "A" if entry["status"] == JUDGED and entry["label"] != "tie" else None
            if entry["status"] == JUDGED and order == "BA":  # map back: in BA, "A" is the original B
                entry["label"] = {"A": "B", "B": "A", "tie": "tie"}[entry["label"]]
                entry["score"] = 1.0 - entry["score"]
            samples.append(entry)
        valid = [s for s in samples if s["status"] == JUDGED]
        consistent = True
        for i in range(n):
            pair = [s["label"] for s in valid if s["sample"] == i]
            if len(pair) == 2 and pair[0] != pair[1]:
                consistent = False
        preference = float(np.mean([s["score"] for s in valid])) if valid else float("nan")
        label = None if not valid else "A" if preference > 0.5 else "B" if preference < 0.5 else "tie"
        labels = [s["label"] for s in valid]
        majority = Counter(labels).most_common(1)[0] if labels else (None, 0)
        rows.append({
            "example_id": records[position]["example_id"],
            "preference_a": preference, "label": label,
            "n_samples": 2 * n, "n_valid": len(valid),
            "n_errors": sum(1 for s in samples if s["status"] in (JUDGE_ERROR, ERROR)),
            "agreement": majority[1] / len(valid) if valid else float("nan"),
            "position_consistent": bool(consistent),
            "disagree": bool(not consistent or len(set(labels)) > 1),
            "status": _status(samples) if reqs else NO_ANSWER,
            "stratum": stratum,
            "errors": json.dumps([s["error"] for s in samples if s["error"]]),
            "samples": json.dumps(samples),
        })
    verdicts = _finish_frame(rows, config, id_column)
    summary = _summary(verdicts, config, n, plan, strata_population=plan and plan[1], report=report, pairwise=True)
    decisive = [s["first_shown_won"] for row in rows for s in json.loads(row["samples"]) if s.get("first_shown_won") is not None]
    summary["first_position_rate"] = float(np.mean(decisive)) if decisive else None
    summary["wins_a"] = int((verdicts["label"] == "A").sum())
    summary["wins_b"] = int((verdicts["label"] == "B").sum())
    summary["ties"] = int((verdicts["label"] == "tie").sum())
    return JudgeResult(verdicts, summary, report)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput("n", f"must be an integer >= 1, got {n!r}")
    return n


def _select(frame: pd.DataFrame, sample: SamplingPlan | None):
    """Positions to judge, their strata, and ``(plan, population)`` when sampling."""
    if sample is None:
        return list(range(len(frame))), [None] * len(frame), None
    drawn = sample.draw(frame)
    return [int(p) for p in drawn.positions], [str(s) for s in drawn.strata], (sample, dict(drawn.population), drawn)


def _within(judged: list[int], strata: list, only: tuple[int, int] | None) -> tuple[list[int], list]:
    """The selection restricted to the row positions ``[start, stop)`` of ``only`` (None: all of it)."""
    if only is None:
        return judged, strata
    start, stop = only
    kept = [i for i, position in enumerate(judged) if start <= position < stop]
    return [judged[i] for i in kept], [strata[i] for i in kept]


def summarize(verdicts: pd.DataFrame, examples: pd.DataFrame, config: JudgeConfig, n: int, report: CallReport,
              sample: SamplingPlan | None = None) -> dict:
    """The summary :func:`judge` returns, from its verdicts (e.g. the shards' verdicts, concatenated in row
    order) and the examples they were drawn from (the sample is drawn again: it is deterministic)."""
    _, _, plan = _select(examples.reset_index(drop=True), sample)
    return _summary(verdicts, config, _check_n(n), plan, strata_population=plan and plan[1], report=report, pairwise=False)


def _finish_frame(rows: list[dict], config: JudgeConfig, id_column: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["judge_model"] = config.judge_model
    frame["judge_prompt_version"] = config.prompt.key
    frame["judge_config_hash"] = config.config_hash
    if id_column != "example_id":
        frame = frame.rename(columns={"example_id": id_column})
    return frame


def _summary(verdicts: pd.DataFrame, config: JudgeConfig, n: int, plan, strata_population, report: CallReport,
             pairwise: bool) -> dict:
    value_column = "preference_a" if pairwise else "score"
    scored = verdicts[verdicts["status"] == JUDGED]
    values = scored[value_column].to_numpy(dtype=np.float64)
    id_column = verdicts.columns[0]
    summary: dict[str, Any] = {
        "judge": config.record(), "judge_config_hash": config.config_hash, **config.pin(), "n": n,
        "output": config.output,
        "n_judged": int(len(verdicts)), "n_scored": int(len(scored)),
        "mean": float(values.mean()) if len(values) else None,
        "n_judge_errors": int((verdicts["status"] == JUDGE_ERROR).sum()),
        "n_sample_errors": int(verdicts["n_errors"].sum()),
        "n_no_answer": int((verdicts["status"] == NO_ANSWER).sum()),
        "n_not_judged": int(verdicts["status"].isin([SKIPPED_BUDGET, CANCELLED]).sum()),
        "judge_errors": verdicts.loc[verdicts["status"] == JUDGE_ERROR, id_column].tolist(),
        "agreement": float(scored["agreement"].mean()) if len(scored) else None,
        "unanimous_rate": float((~scored["disagree"]).mean()) if len(scored) else None,
        "disagreements": scored.loc[scored["disagree"], id_column].tolist(),
        "budget_exceeded": report.budget_exceeded, "budget_field": report.budget_field,
    }
    if not pairwise:
        summary["pass_rate"] = float((scored["label"] == "pass").mean()) if len(scored) else None
    confidence = plan[0].confidence if plan else 0.95
    if plan:
        estimate = stratified_estimate(verdicts[value_column].where(verdicts["status"] == JUDGED).to_numpy(dtype=np.float64),
                                       verdicts["stratum"].to_numpy(), strata_population, confidence)
        summary["sample"] = {**plan[0].record(), **plan[2].to_dict()}
        summary["estimate"] = estimate.to_dict()
    elif len(values) > 1:
        se = float(values.std(ddof=1) / math.sqrt(len(values)))
        from scipy.stats import norm  # deferred: keeps `import definitions` fast for sensor ticks and run start

        z = float(norm.ppf(0.5 + confidence / 2))
        summary["estimate"] = {"mean": float(values.mean()), "standard_error": se, "ci_low": float(values.mean()) - z * se,
                               "ci_high": float(values.mean()) + z * se, "confidence": confidence,
                               "n_sampled": int(len(values)), "n_population": int(len(verdicts)), "strata": []}
    return summary
