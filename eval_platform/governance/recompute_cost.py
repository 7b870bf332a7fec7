"""Cost before recompute: the LLM calls a recompute would make, and what they would cost, before anything is queued.

:func:`estimate_recompute` plans the recompute :func:`~eval_platform.governance.incidents.request_recompute`
would queue (the same affected runs, on the same remedy: the fixed metric version's suite, or the clean dataset
version) without writing anything, and for each planned run builds exactly the calls its steps would make:

* the candidate's answer to every example (``openai_chat`` models), with log-probabilities when the suite has a
  perplexity metric of the generation, and the scoring of every reference when it has one of the reference;
* the judge's ``judge_samples`` calls per judged example (every example, or the stratified sample of
  ``llm.judge_sample``), rendered with the candidate's cached answer;
* the pairwise judge's calls in both orders per sample against the baseline's answers.

Each call's cache key is looked up in the LLM call cache: a hit is free, a miss is paid. A key two planned runs
share is paid once (the first run's reply is cached for the second). A judge call whose candidate answer is not
cached yet cannot be keyed before the answer exists: it is counted as a miss, priced with the answer at its
``max_tokens`` (the budget's worst case), and reported in ``unknown_answers``; the estimate is then an upper bound.
Cost is the budget's worst case of each miss (prompt tokens plus ``max_tokens``, :mod:`eval_platform.llm.budget`)
at the suite's prices (``llm.prices``); a model without a price makes the cost unknown (``None``).

**Over budget.** Per suite version recomputed, the planned runs' worst case summed per phase against the suite's
``llm.budget`` (a recompute of many runs pays many runs' worth), and the total cost against the installation's
recompute budget ``EVAL_PLATFORM_RECOMPUTE_MAX_COST`` when set. A recompute over either needs an admin's explicit
confirmation (``confirm_over_budget``), recorded with who confirmed.

**Every door.** The budget is enforced in the library, where each way of starting a recompute ends up:
:func:`~eval_platform.governance.incidents.request_recompute` (``evalp recompute``, the API, a direct call) and
:func:`~eval_platform.governance.incidents.rematerialize` (a rematerialization or backfill of eval cells started
by hand in the Dagster UI) both call :func:`enforce_budget` before they queue anything. Over budget without a
confirmation, nothing is queued or superseded: the refusal is recorded in the access log (action
``recompute_over_budget``, denied, with the estimate and the budgets) and raised as :class:`OverBudget`, whose
message names the budgets, the estimate and how to confirm (in the Dagster UI it is the failed step's error).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pandas as pd

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import IncidentKind
from eval_platform.evaluation.judging import _judge_strata, _sampling_plan, needs_judge, pairwise_metrics
from eval_platform.evaluation.metric_table import evaluation_frame
from eval_platform.evaluation.predicting import scores_references, with_logprobs_if_needed
from eval_platform.governance.affected import fixed_version, incidents, runs_using_metric
from eval_platform.llm.budget import CallCost, PriceTable, SuiteBudget
from eval_platform.llm.cache import LLMCache
from eval_platform.llm.calls import CallRequest
from eval_platform.llm.generate import candidate_request, score_request
from eval_platform.llm.judge import JudgeConfig, pairwise_requests, verdict_requests
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import access
from eval_platform.registry.access import Principal
from eval_platform.suites.definition import parse_suite

#: The installation's budget for one recompute, in the price table's currency (unset: none).
RECOMPUTE_MAX_COST_ENV = "EVAL_PLATFORM_RECOMPUTE_MAX_COST"


@dataclass(frozen=True)
class PlannedRun:
    """One run a recompute would queue: the affected run and the versions its replacement runs on."""

    affected_run_id: str
    model_key: str
    dataset_key: str
    suite_key: str  # the affected run's suite version (the replacement's is the fixed one for a buggy metric)
    suite_definition: dict
    baseline: str | None


@dataclass(frozen=True)
class ModelCost:
    """The calls of one phase to one endpoint's model."""

    phase: str
    endpoint: str
    model: str
    calls: int
    cache_hits: int
    misses: int
    prompt_tokens: int
    max_completion_tokens: int
    cost: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunCost:
    """What one planned run would pay."""

    run: PlannedRun
    suite_id: str
    calls: int
    cache_hits: int
    misses: int
    unknown_answers: int  # judge calls counted as misses because the answer they judge is not cached yet
    cost: float | None
    tokens: dict[str, int]  # worst-case tokens per phase
    costs: dict[str, float | None]  # worst-case cost per phase
    by_model: tuple[ModelCost, ...]
    #: why this run's calls could not be estimated (its model file, dataset or endpoint could not be read):
    #: its cost is unknown, which is over any budget its suite or the installation sets
    error: str | None = None

    def to_dict(self) -> dict:
        return {"error": self.error, "run_id": self.run.affected_run_id, "model": self.run.model_key, "dataset": self.run.dataset_key,
                "suite": self.run.suite_key, "calls": self.calls, "cache_hits": self.cache_hits, "misses": self.misses,
                "unknown_answers": self.unknown_answers, "estimated_cost": self.cost, "worst_case_tokens": dict(self.tokens),
                "by_model": [m.to_dict() for m in self.by_model]}


@dataclass(frozen=True)
class BudgetBreach:
    """A budget the recompute's estimate is over: which, the estimate and the limit."""

    budget: str  # e.g. ``suite qa@1 budget.judge.max_cost`` or ``EVAL_PLATFORM_RECOMPUTE_MAX_COST``
    estimate: float | None
    limit: float

    def describe(self) -> str:
        shown = "unknown (an unpriced model, or a run that could not be estimated)" if self.estimate is None else f"{self.estimate:.6g}"
        return f"{self.budget}: estimate {shown} over the limit {self.limit:g}"

    def to_dict(self) -> dict:
        return {"budget": self.budget, "estimate": self.estimate, "limit": self.limit}


@dataclass(frozen=True)
class RecomputeEstimate:
    """The whole recompute: its runs, totals, totals per model and the budgets it is over."""

    affected_by: str
    runs: tuple[RunCost, ...]
    by_model: tuple[ModelCost, ...]
    over_budget: tuple[BudgetBreach, ...] = field(default_factory=tuple)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.runs)

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.runs)

    @property
    def misses(self) -> int:
        return sum(r.misses for r in self.runs)

    @property
    def unknown_answers(self) -> int:
        return sum(r.unknown_answers for r in self.runs)

    @property
    def cost(self) -> float | None:
        costs = [r.cost for r in self.runs]
        return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))

    def describe_breaches(self) -> str:
        return "; ".join(b.describe() for b in self.over_budget)

    def to_dict(self) -> dict:
        return {"affected_by": self.affected_by, "runs": [r.to_dict() for r in self.runs],
                "totals": {"runs": len(self.runs), "calls": self.calls, "cache_hits": self.cache_hits, "misses": self.misses,
                           "unknown_answers": self.unknown_answers, "estimated_cost": self.cost},
                "by_model": [m.to_dict() for m in self.by_model],
                "over_budget": [b.to_dict() for b in self.over_budget], "exact": self.unknown_answers == 0}


#: How an admin confirms a recompute asked for through ``evalp recompute`` or the API.
CONFIRM_BY_COMMAND = "evalp recompute --confirm-over-budget, API confirmOverBudget"


class OverBudget(InvalidInput):
    """A recompute over a budget asked for without the admin's confirmation."""

    def __init__(self, estimate: RecomputeEstimate, field: str = "confirm_over_budget", how_to_confirm: str = CONFIRM_BY_COMMAND):
        super().__init__(field, f"the recompute of the runs affected by {estimate.affected_by} is over budget "
                                f"({estimate.describe_breaches()}; {estimate.misses} uncached call(s)): an admin must "
                                f"confirm it ({how_to_confirm})")
        self.estimate = estimate


# the plan (what request_recompute would queue, computed without writing) -----------------------------------


def plan_recompute(platform: EvalPlatform, affected_by: str) -> list[PlannedRun]:
    """The runs :func:`~eval_platform.governance.incidents.request_recompute` would queue for ``affected_by``;
    raises as it does for a target that is neither a buggy metric nor a contaminated dataset."""
    buggy = set(platform.buggy_metrics())
    if affected_by in buggy:
        fixed = fixed_version(affected_by, buggy)
        planned = []
        for run in runs_using_metric(platform, affected_by):
            definition = dict(platform.suite(run.suite_key).metric_defs)
            definition["metrics"] = [dict(m, metric=fixed if m["metric"] == affected_by else m["metric"]) for m in definition["metrics"]]
            planned.append(PlannedRun(run.run_id, run.model_key, run.dataset_key, run.suite_key, definition, run.requested_baseline))
        return planned
    incident = next((i for i in incidents(platform) if i.kind == IncidentKind.DATASET_CONTAMINATION and i.target == affected_by), None)
    if incident is None:
        raise InvalidInput("affected_by", f"{affected_by!r} is neither a metric marked buggy nor a contaminated dataset")
    replacement = platform.latest_dataset(VersionedKey.parse(affected_by, "dataset").name)
    out = []
    for run_id in incident.affected_runs:
        run = platform.run(run_id)
        out.append(PlannedRun(run.run_id, run.model_key, replacement.key, run.suite_key,
                              dict(platform.suite(run.suite_key).metric_defs), run.requested_baseline))
    return out


# the calls of one run ----------------------------------------------------------------------------------------


@dataclass
class _Calls:
    """The calls of one planned run: known requests per phase, and worst cases of calls not keyable yet."""

    known: list[tuple[str, CallRequest]] = field(default_factory=list)
    unknown: list[tuple[str, CallCost]] = field(default_factory=list)


def _answers(platform: EvalPlatform, cache: LLMCache, planned: PlannedRun, frame: pd.DataFrame, spec, calls: _Calls,
             suite) -> pd.Series | None:
    """The candidate's answer per example (None where not cached yet); the candidate's calls go into ``calls``."""
    model = platform.model(planned.model_key)
    if model.kind != "openai_chat":  # predictions of a file or an estimator: no LLM call, answers from the dataset's run
        return _stored_answers(platform, planned.model_key, planned.dataset_key, frame)
    rows = frame.to_dict("records")
    requests = [candidate_request(spec, row) for row in rows]
    calls.known.extend(("candidate", r) for r in requests)
    if scores_references(suite):
        label = platform.dataset(planned.dataset_key).schema["label_column"]
        calls.known.extend(("candidate", score_request(spec, row, row[label])) for row in rows)
    found = cache.get_many(r.key for r in requests)
    return pd.Series([found[r.key].response_text if r.key in found else None for r in requests], index=frame.index, dtype=object)


def _stored_answers(platform: EvalPlatform, model_key: str, dataset_key: str, frame: pd.DataFrame) -> pd.Series | None:
    """Answers of a non-LLM model (a predictions file, an estimator): those of its latest run on the same dataset
    version, joined to the examples as the judge step joins them; None when there is none."""
    dataset = platform.dataset(dataset_key)
    for run in reversed(platform.runs(model_key)):
        if run.dataset_key == dataset_key and run.predictions_hash and platform.store.has_table("predictions", run.predictions_hash):
            try:
                joined = evaluation_frame(frame, platform.store.get_table("predictions", run.predictions_hash), dataset.schema,
                                          dataset.task_type)
            except InvalidInput:
                return None
            return joined["prediction"].reset_index(drop=True).astype(object)
    return None


def _baseline_answers(platform: EvalPlatform, cache: LLMCache, planned: PlannedRun, frame: pd.DataFrame, suite) -> pd.Series | None:
    """The baseline model's answers on the planned dataset (None where not known: counted as unknown)."""
    if not planned.baseline:
        return None
    try:
        model = platform.model(planned.baseline)
    except NotFound:
        return None
    if model.kind != "openai_chat":
        return _stored_answers(platform, planned.baseline, planned.dataset_key, frame)
    spec = with_logprobs_if_needed(platform.load_model(model), suite)
    requests = [candidate_request(spec, row) for row in frame.to_dict("records")]
    found = cache.get_many(r.key for r in requests)
    return pd.Series([found[r.key].response_text if r.key in found else None for r in requests], index=frame.index, dtype=object)


def _judge_calls(suite, planned: PlannedRun, frame: pd.DataFrame, schema: dict, answers: pd.Series | None,
                 answer_tokens: int, calls: _Calls) -> None:
    """The judge's calls: ``judge_samples`` per judged example, on the examples (or the sample) it judges."""
    llm = suite.llm or {}
    config = JudgeConfig.from_dict(llm["judge"])
    n = llm.get("judge_samples", 1)
    label = schema["label_column"]
    eval_frame = frame.assign(prediction=answers.to_numpy() if answers is not None else None)
    positions: Iterable[int] = range(len(eval_frame))
    if llm.get("judge_sample") is not None:
        try:
            strata = _judge_strata(suite, eval_frame.fillna({"prediction": ""}), schema, planned.dataset_key)
            known = answers is not None and not answers.isna().any()
        except (InvalidInput, KeyError, ValueError):
            strata, known = None, False
        plan = _sampling_plan(suite, strata)
        positions = [int(p) for p in plan.draw(eval_frame.reset_index(drop=True)).positions]
        if not known and (llm["judge_sample"].get("strata") or {}).get("metric"):
            answers = None  # the strata depend on answers not cached yet: which examples are judged is unknown
    for position in positions:
        row = eval_frame.iloc[position]
        answer = None if answers is None else answers.iloc[position]
        values = {"question": row.get("prompt", ""), "reference": row.get(label, ""), "answer": answer or ""}
        requests = verdict_requests(config, values, n)
        if answer is None:
            for r in requests:
                cost = r.cost()
                calls.unknown.append(("judge", CallCost(cost.endpoint, cost.model, cost.prompt_tokens + answer_tokens,
                                                        cost.max_completion_tokens)))
        else:
            calls.known.extend(("judge", r) for r in requests)


def _pairwise_calls(suite, frame: pd.DataFrame, schema: dict, answers: pd.Series | None, baseline: pd.Series | None,
                    answer_tokens: int, calls: _Calls) -> None:
    llm = suite.llm or {}
    config = JudgeConfig.from_dict(llm["pairwise_judge"])
    n = llm.get("pairwise_samples", 1)
    label = schema["label_column"]
    for position in range(len(frame)):
        row = frame.iloc[position]
        a = None if answers is None else answers.iloc[position]
        b = None if baseline is None else baseline.iloc[position]
        values = {"question": row.get("prompt", ""), "reference": row.get(label, ""), "answer_a": a or "", "answer_b": b or ""}
        requests = [r for _, _, r in pairwise_requests(config, values, n)]
        if a is None or b is None:
            for r in requests:
                cost = r.cost()
                calls.unknown.append(("judge", CallCost(cost.endpoint, cost.model, cost.prompt_tokens + 2 * answer_tokens,
                                                        cost.max_completion_tokens)))
        else:
            calls.known.extend(("judge", r) for r in requests)


def _run_calls(platform: EvalPlatform, cache: LLMCache, planned: PlannedRun, suite) -> _Calls:
    calls = _Calls()
    llm = suite.llm or {}
    judged, pairwise = needs_judge(suite), bool(pairwise_metrics(suite)) and llm.get("pairwise_judge") is not None
    model = platform.model(planned.model_key)
    if model.kind != "openai_chat" and not judged and not pairwise:
        return calls
    dataset = platform.dataset(planned.dataset_key)
    frame = platform.load_dataset(dataset).reset_index(drop=True)
    spec = with_logprobs_if_needed(platform.load_model(model), suite) if model.kind == "openai_chat" else None
    answers = _answers(platform, cache, planned, frame, spec, calls, suite)
    if answers is not None and len(answers) != len(frame):
        answers = None
    answer_tokens = spec.decoding.max_tokens if spec is not None else 0
    if judged:
        _judge_calls(suite, planned, frame, dataset.schema, answers, answer_tokens, calls)
    if pairwise and planned.baseline:  # without a baseline the pairwise judge makes no call (the metric does not exist)
        baseline = _baseline_answers(platform, cache, planned, frame, suite)
        if baseline is not None and len(baseline) != len(frame):
            baseline = None
        _pairwise_calls(suite, frame, dataset.schema, answers, baseline, answer_tokens, calls)
    return calls


# the estimate --------------------------------------------------------------------------------------------------


class _Tally:
    """Calls counted per (phase, endpoint, model): ``[calls, hits, misses, prompt tokens, max completion, cost]``,
    and the worst case per phase (tokens, cost; ``None`` when unknown)."""

    def __init__(self, prices: PriceTable):
        self.prices = prices
        self.rows: dict[tuple[str, str, str], list] = {}
        self.tokens: dict[str, int] = defaultdict(int)
        self.costs: dict[str, float | None] = defaultdict(float)

    def add(self, phase: str, cost: CallCost, hit: bool) -> None:
        row = self.rows.setdefault((phase, cost.endpoint, cost.model), [0, 0, 0, 0, 0, 0.0])
        row[0] += 1
        if hit:
            row[1] += 1
            return
        row[2] += 1
        row[3] += cost.prompt_tokens
        row[4] += cost.max_completion_tokens
        money = self.prices.cost(cost.endpoint, cost.model, cost.prompt_tokens, cost.max_completion_tokens)
        row[5] = None if money is None or row[5] is None else row[5] + money
        self.tokens[phase] += cost.prompt_tokens + cost.max_completion_tokens
        current = self.costs[phase]
        self.costs[phase] = None if money is None or current is None else current + money

    def merge_into(self, totals: dict[tuple[str, str, str], list]) -> None:
        for key, row in self.rows.items():
            total = totals.setdefault(key, [0, 0, 0, 0, 0, 0.0])
            for i in range(5):
                total[i] += row[i]
            total[5] = None if row[5] is None or total[5] is None else total[5] + row[5]

    def by_model(self) -> tuple[ModelCost, ...]:
        return tuple(ModelCost(p, e, m, *row) for (p, e, m), row in sorted(self.rows.items()))


def _run_cost(planned: PlannedRun, suite_id: str, calls: _Calls, found: set[str], paid: set[str], tally: _Tally) -> RunCost:
    """Count one run's calls: a key cached, or paid by an earlier run of the recompute, is a hit."""
    unique: dict[str, tuple[str, CallRequest]] = {}
    for phase, request in calls.known:
        unique.setdefault(request.key, (phase, request))
    for key, (phase, request) in unique.items():
        tally.add(phase, request.cost(), key in found or key in paid)
    paid.update(unique)
    for phase, cost in calls.unknown:
        tally.add(phase, cost, False)
    by_model = tally.by_model()
    costs = [m.cost for m in by_model]
    run_cost = None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))
    return RunCost(planned, suite_id, sum(m.calls for m in by_model), sum(m.cache_hits for m in by_model),
                   sum(m.misses for m in by_model), len(calls.unknown), run_cost, dict(tally.tokens), dict(tally.costs), by_model)


def estimate_recompute(platform: EvalPlatform, affected_by: str, plan: list[PlannedRun] | None = None) -> RecomputeEstimate:
    """Calls and cost of recomputing what ``affected_by`` touched; writes nothing (no suite version, no run,
    no cache row)."""
    plan = plan_recompute(platform, affected_by) if plan is None else plan
    cache = LLMCache.from_platform(platform)
    paid: set[str] = set()  # keys an earlier planned run pays for: cached by the time a later run asks
    totals: dict[tuple[str, str, str], list] = {}
    runs = []
    per_suite: dict[str, dict[str, list]] = defaultdict(lambda: {"tokens": [], "cost": []})
    suite_budgets: dict[str, SuiteBudget] = {}
    for planned in plan:
        suite = parse_suite(planned.suite_definition)
        llm = suite.llm or {}
        budget_key = f"{suite.suite_id}@{VersionedKey.parse(planned.suite_key, 'suite')[1]}"
        suite_budgets[budget_key] = SuiteBudget.from_dict(llm.get("budget"))
        try:
            calls = _run_calls(platform, cache, planned, suite)
        except (InvalidInput, NotFound, OSError, KeyError, ValueError) as error:
            runs.append(RunCost(planned, suite.suite_id, 0, 0, 0, 0, None, {}, {}, (), error=f"{type(error).__name__}: {error}"[:500]))
            for phase in ("candidate", "judge"):
                per_suite[budget_key]["tokens"].append((phase, None))
                per_suite[budget_key]["cost"].append((phase, None))
            continue
        tally = _Tally(PriceTable.from_dict(llm.get("prices")))
        found = set(cache.get_many(r.key for _, r in calls.known))
        runs.append(_run_cost(planned, suite.suite_id, calls, found, paid, tally))
        tally.merge_into(totals)
        for phase in ("candidate", "judge"):
            per_suite[budget_key]["tokens"].append((phase, tally.tokens.get(phase, 0)))
            per_suite[budget_key]["cost"].append((phase, tally.costs.get(phase, 0.0)))
    by_model = tuple(ModelCost(p, e, m, *row) for (p, e, m), row in sorted(totals.items()))
    estimate = RecomputeEstimate(affected_by, tuple(runs), by_model)
    return RecomputeEstimate(affected_by, tuple(runs), by_model, tuple(_breaches(estimate, per_suite, suite_budgets)))


def _breaches(estimate: RecomputeEstimate, per_suite: dict, budgets: dict[str, SuiteBudget]) -> list[BudgetBreach]:
    breaches = []
    for suite_key, spent in sorted(per_suite.items()):
        budget = budgets[suite_key]
        for phase in ("candidate", "judge"):
            limits = budget.for_phase(phase)
            counts = [t for p, t in spent["tokens"] if p == phase]
            tokens = None if any(t is None for t in counts) else float(sum(counts))
            costs = [c for p, c in spent["cost"] if p == phase]
            cost = None if any(c is None for c in costs) else float(sum(costs))
            if limits.max_tokens is not None and (tokens is None or tokens > limits.max_tokens):
                breaches.append(BudgetBreach(f"suite {suite_key} budget.{phase}.max_tokens", tokens, float(limits.max_tokens)))
            if limits.max_cost is not None and (cost is None or cost > limits.max_cost + 1e-12):
                breaches.append(BudgetBreach(f"suite {suite_key} budget.{phase}.max_cost", cost, float(limits.max_cost)))
    limit = installation_recompute_budget()
    if limit is not None and (estimate.cost is None or estimate.cost > limit + 1e-12):
        breaches.append(BudgetBreach(RECOMPUTE_MAX_COST_ENV, estimate.cost, limit))
    return breaches


def any_budget_applies(plan: list[PlannedRun]) -> bool:
    """Whether a budget could be over for ``plan``: the installation's recompute budget is set, or a planned run's
    suite sets ``llm.budget``. Without either no estimate can breach anything, and callers may skip estimating."""
    return installation_recompute_budget() is not None or any(
        (planned.suite_definition.get("llm") or {}).get("budget") for planned in plan)


def installation_recompute_budget() -> float | None:
    """``EVAL_PLATFORM_RECOMPUTE_MAX_COST`` (a number >= 0), or None when unset."""
    raw = os.environ.get(RECOMPUTE_MAX_COST_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(RECOMPUTE_MAX_COST_ENV, f"must be a number >= 0, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(RECOMPUTE_MAX_COST_ENV, f"must be a finite number >= 0, got {raw!r}")
    return value




# the recompute, within budget or confirmed ----------------------------------------------------------------------

#: The access log's action of a recompute over budget (granted: confirmed by an admin; denied: not confirmed).
OVER_BUDGET_ACTION = "recompute_over_budget"


def _check_target_known(platform: EvalPlatform, principal: Principal | None, affected_by: str) -> None:
    """A dataset version the caller's team may know nothing of answers as a target that is no incident at all."""
    if principal is None or affected_by in platform.buggy_metrics():
        return
    try:
        dataset = platform.dataset(affected_by)
    except (NotFound, InvalidInput):
        return  # the plan refuses it with the message every unknown target gets
    if not access.may_know(dataset.access_policy, principal.team):
        raise InvalidInput("affected_by", f"{affected_by!r} is neither a metric marked buggy nor a contaminated dataset")


def estimate_for(platform: EvalPlatform, affected_by: str, principal: Principal | None = None) -> RecomputeEstimate:
    """The dry run: the estimate of the recompute ``principal`` may ask for (an admin's operation, like the
    recompute itself; ``None`` is the local operator). Nothing is written, except a refusal in the access log."""
    access.require_role(principal, access.ADMIN, "a recompute (it queues every affected team's runs)", "Authorization", platform,
                        f"recompute:{affected_by}")
    _check_target_known(platform, principal, affected_by)
    return estimate_recompute(platform, affected_by)


def enforce_budget(platform: EvalPlatform, estimate: RecomputeEstimate, target: str, who: str,
                   principal: Principal | None = None, confirmed: bool = False,
                   how_to_confirm: str = CONFIRM_BY_COMMAND) -> str | None:
    """The budget check every recompute passes before it queues anything. Within budget: None. Over budget and
    not ``confirmed``: the refusal is logged (denied, with the estimate) and :class:`OverBudget` raised. Over
    budget and confirmed by an admin (``principal`` None: the local operator, or the Dagster UI's operator, an
    admin): logged as granted, and the note to add to the request's reason is returned."""
    if not estimate.over_budget:
        return None
    actor = principal if principal is not None else access.LOCAL_OPERATOR
    detail = f"{estimate.describe_breaches()}; {estimate.misses} uncached call(s), estimated cost {estimate.cost}"
    if not confirmed:
        access.record_access(platform, actor, OVER_BUDGET_ACTION, target[:200], access.DENIED,
                             detail=f"not confirmed (asked by {who}): {detail}"[:4000])
        raise OverBudget(estimate, how_to_confirm=how_to_confirm)
    access.require_role(principal, access.ADMIN, "confirming a recompute over budget", "confirm_over_budget", platform,
                        f"recompute:{target}")
    access.record_access(platform, actor, OVER_BUDGET_ACTION, target[:200], access.GRANTED,
                         detail=f"confirmed by {who}: {detail}"[:4000])
    return f"[over budget, confirmed by {who}: {estimate.describe_breaches()}]"


def check_recompute(platform: EvalPlatform, affected_by: str, requested_by: str, principal: Principal | None,
                    confirm_over_budget: bool) -> tuple[RecomputeEstimate, str | None]:
    """What :func:`~eval_platform.governance.incidents.request_recompute` runs before it queues: the caller's
    right to the target, the estimate, and :func:`enforce_budget`. Returns the estimate and the reason's note."""
    estimate = estimate_for(platform, affected_by, principal)
    who = principal.label if principal is not None else requested_by
    return estimate, enforce_budget(platform, estimate, affected_by, who, principal, confirm_over_budget)

