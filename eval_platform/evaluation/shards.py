"""Sharded predictions and judgments: a run's examples in contiguous shards that run anywhere, then merged.

**Plan.** An eval run's dataset rows ``[0, rows)`` split into contiguous shards of at most ``S`` rows
(:func:`shard_size`: ``EVAL_PLATFORM_SHARD_SIZE``, set by the operator on the hosts that plan; default
2000, so a small dataset stays one shard; never set by an API caller). Each shard is named by the hash of
everything that determines its output (:attr:`Shard.key`):

* predictions: the candidate's identity (endpoint, model and version, prompt, decoding), the dataset's
  content hash, the shard's bounds, the prediction and call code versions and whether the references are
  scored (a canary run's shard also names the run: its calls are fresh on purpose);
* judgments: the suite definition (its judge, sample and strata), the judge configuration's hash, the
  predictions' artifact hash, the dataset's content hash, the bounds and the judge code version.

**Shards.** A shard makes its calls through the LLM call cache (a call paid for once is never paid again,
whichever shard or worker asks) and writes its rows as a content-addressed Parquet artifact, then an index
entry ``shard key -> artifact`` (both write-once). A shard whose index entry exists is not computed again,
unless the artifact it names is gone (purged by retention, or lost): such an entry is never trusted, the
shard is computed again and its entry replaced. Each use of a shard by a run (computed or reused) is
recorded in the registry (``eval_run_shards``): retention purges a shard's artifact and index entry with
the outputs of the runs that used it (``governance/retention.py``).
A shard whose calls failed or stopped at the budget raises and writes nothing, so a rerun redoes exactly the
shards without an artifact. Each shard's calls are limited to its share of the suite's budget (its rows over
the run's rows): the shards together never spend more than the run may.

**Merge.** The shards' artifacts, concatenated in row order, are the run's predictions (verdicts): the same
table, with the same content hash, as the single-step code writes (``predicting.produce_predictions``,
``judging.judge_outputs``), recorded the same way. A model that is not an LLM candidate (a scikit-learn model, a
predictions file) predicts in one shard, through the prediction cache as before; a pairwise judge runs in the
merge, as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum

import pandas as pd
from sqlalchemy.exc import IntegrityError

from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import json_hash
from eval_platform.core.states import CANARY_TRIGGER
from eval_platform.core.store import PREDICTIONS
from eval_platform.evaluation import judging, predicting
from eval_platform.evaluation.results import JudgmentReport, PredictionReport
from eval_platform.llm.budget import Limits, SuiteBudget
from eval_platform.llm.calls import CallReport
from eval_platform.llm.judge import JUDGE_CODE_VERSION, JudgeConfig, JudgeResult, summarize
from eval_platform.llm.specs import LLM_CALL_CODE_VERSION
from eval_platform.models.files import PREDICTION_CODE_VERSION
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun
from eval_platform.registry.api_schema import RunShard

#: The operator's shard size (rows per shard), read where shards are planned.
SHARD_SIZE_VARIABLE = "EVAL_PLATFORM_SHARD_SIZE"
DEFAULT_SHARD_SIZE = 2000
#: Changes when what a shard writes changes: every shard artifact written before is then missed.
SHARD_CODE_VERSION = "1"
#: Artifact kinds of the store: the shards' tables, and the index from a shard's key to its table.
PREDICTION_SHARDS = "prediction_shards"
JUDGMENT_SHARDS = "judgment_shards"
SHARD_INDEX = "shard_index"


class ShardKind(StrEnum):
    """What a shard computes."""

    LLM_PREDICTIONS = "llm_predictions"  # a candidate's answers to rows [start, stop)
    WHOLE_PREDICTIONS = "whole_predictions"  # a model that is not an LLM: the whole run in one step, as before
    JUDGE = "judge"  # the judge's verdicts on the selected examples at rows [start, stop)
    NOTHING = "nothing"  # no run to work on: keeps the merge step running (it still records the materialization)


@dataclass(frozen=True)
class Shard:
    """One shard of one eval run. ``mapping_key`` names it in the orchestrator (letters, digits, underscore)."""

    kind: ShardKind
    run_id: str
    index: int
    count: int
    start: int
    stop: int
    key: str
    mapping_key: str

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ShardResult:
    """What a shard did: its artifact (None when it wrote none), whether it was already stored (``reused``),
    the calls it made per phase (:meth:`CallReport.to_dict`), which process ran it (``worker``, ``host:pid``)
    and, for a whole-run shard, the run's prediction report."""

    shard: Shard
    artifact: str | None
    reused: bool
    worker: str
    seconds: float
    reports: dict[str, dict] = field(default_factory=dict)
    prediction: PredictionReport | None = None

    @property
    def calls(self) -> int:
        return sum(int(report.get("calls", 0)) for report in self.reports.values())


def shard_size() -> int:
    """Rows per shard: ``EVAL_PLATFORM_SHARD_SIZE`` (a whole number >= 1), default :data:`DEFAULT_SHARD_SIZE`."""
    raw = os.environ.get(SHARD_SIZE_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_SHARD_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        raise InvalidInput(SHARD_SIZE_VARIABLE, f"must be a whole number >= 1, got {raw!r}")
    return size


def shard_bounds(rows: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard: contiguous, in order, at most ``size`` rows each (one empty shard for no rows)."""
    if size < 1:
        raise InvalidInput("shard_size", f"must be >= 1, got {size}")
    return [(start, min(start + size, rows)) for start in range(0, rows, size)] or [(0, 0)]


def nothing_shard() -> Shard:
    return Shard(ShardKind.NOTHING, "", 0, 1, 0, 0, "", "none")


def _shards(kind: ShardKind, run: EvalRun, position: int, rows: int, size: int, identity: dict) -> list[Shard]:
    bounds = shard_bounds(rows, size)
    return [Shard(kind, run.run_id, index, len(bounds), start, stop,
                  json_hash({**identity, "shard_code": SHARD_CODE_VERSION, "bounds": [start, stop]}),
                  f"r{position}_s{index}")
            for index, (start, stop) in enumerate(bounds)]


# predictions --------------------------------------------------------------------------------------------
def plan_predictions(platform: EvalPlatform, runs: Sequence[EvalRun], size: int) -> list[Shard]:
    """The prediction shards of the runs, in order (a run of a model that is not an LLM is one shard)."""
    planned: list[Shard] = []
    for position, run in enumerate(runs):
        model = platform.model(run.model_key)
        dataset = platform.dataset(run.dataset_key)
        if model.kind != "openai_chat":
            planned.append(Shard(ShardKind.WHOLE_PREDICTIONS, run.run_id, 0, 1, 0, dataset.row_count, "", f"r{position}_s0"))
            continue
        suite = platform.suite_definition(platform.suite(run.suite_key))
        spec = predicting.with_logprobs_if_needed(platform.load_model(model), suite)
        identity = {"step": "predictions", "candidate": spec.record(), "endpoint": spec.endpoint.identity(),
                    "dataset": dataset.content_hash, "reference": dataset.schema.get("label_column"),
                    "scores_references": predicting.scores_references(suite), "prediction_code": PREDICTION_CODE_VERSION,
                    "llm_call_code": LLM_CALL_CODE_VERSION,
                    # a canary run's calls are fresh on purpose: its shards are its own
                    "canary_run": run.run_id if run.trigger == CANARY_TRIGGER else None}
        planned += _shards(ShardKind.LLM_PREDICTIONS, run, position, dataset.row_count, size, identity)
    return planned


def _share(budget: SuiteBudget, shard: Shard, rows: int) -> SuiteBudget:
    """The shard's share of the suite's budget: its rows over the run's rows (all of it for one shard)."""
    if shard.count == 1 or rows == 0:
        return budget
    share = shard.rows / rows

    def part(limits: Limits) -> Limits:
        return Limits(None if limits.max_tokens is None else int(limits.max_tokens * share),
                      None if limits.max_cost is None else limits.max_cost * share)

    return SuiteBudget(candidate=part(budget.candidate), judge=part(budget.judge))


def _stored(platform: EvalPlatform, kind: str, shard: Shard) -> str | None:
    """The shard's artifact when it already finished (its index entry names a stored table; an entry naming
    a table that is gone counts as absent), its use by the shard's run recorded."""
    digest = platform.store.index_entry(SHARD_INDEX, shard.key)
    if digest is None or not platform.store.has_table(kind, digest):
        return None
    _record_use(platform, kind, shard, digest)
    return digest


def _finish(platform: EvalPlatform, kind: str, shard: Shard, frame: pd.DataFrame) -> str:
    """Store a computed shard's table, then its index entry (an entry naming a table that is gone is replaced;
    one naming another stored table, written meanwhile by another worker, stays), and record its use."""
    digest = platform.store.put_table(kind, frame)
    previous = platform.store.index_entry(SHARD_INDEX, shard.key)
    if previous is not None and previous != digest and not platform.store.has_table(kind, previous):
        platform.store.delete_index_entry(SHARD_INDEX, shard.key, previous)
    platform.store.put_index_entry(SHARD_INDEX, shard.key, digest)  # after the artifact: an entry names a whole table
    _record_use(platform, kind, shard, digest)
    return digest


def _record_use(platform: EvalPlatform, kind: str, shard: Shard, digest: str) -> None:
    """Record (once) that the shard's run used this artifact under this key: what retention purges it by."""
    try:
        with platform.registry.session() as session:
            if session.get(RunShard, (shard.run_id, shard.key, digest)) is None:
                session.add(RunShard(run_id=shard.run_id, shard_key=shard.key, artifact_hash=digest, kind=kind))
    except IntegrityError:  # recorded meanwhile by another worker running the same shard
        pass


def run_prediction_shard(platform: EvalPlatform, shard: Shard, worker: str) -> ShardResult:
    """Compute one prediction shard, unless it is stored already (see the module docstring)."""
    started = time.perf_counter()
    if shard.kind == ShardKind.NOTHING:
        return ShardResult(shard, None, False, worker, 0.0)
    run = platform.run(shard.run_id)
    if shard.kind == ShardKind.WHOLE_PREDICTIONS:
        report = predicting.produce_predictions(platform, run)
        return ShardResult(shard, report.predictions_hash, report.cache_hit, worker, time.perf_counter() - started,
                           prediction=report)
    stored = _stored(platform, PREDICTION_SHARDS, shard)
    if stored is not None:
        return ShardResult(shard, stored, True, worker, time.perf_counter() - started)
    dataset = platform.dataset(run.dataset_key)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    frame = platform.load_dataset(dataset).iloc[shard.start:shard.stop].reset_index(drop=True)
    budget = _share(SuiteBudget.from_dict((suite.llm or {}).get("budget")), shard, dataset.row_count)
    predictions, report, scoring, _ = predicting.llm_candidate_predictions(platform, run, frame, budget)
    predicting.raise_if_llm_run_stopped(report, scoring)
    digest = _finish(platform, PREDICTION_SHARDS, shard, predictions)
    reports = {"candidate": report.to_dict()} | ({"reference_scoring": scoring.to_dict()} if scoring is not None else {})
    return ShardResult(shard, digest, False, worker, time.perf_counter() - started, reports)


def _of_run(run: EvalRun, results: Sequence[ShardResult]) -> list[ShardResult]:
    """The run's shard results in row order; refuses a plan whose shards are not all there."""
    mine = sorted((r for r in results if r.shard.run_id == run.run_id), key=lambda r: r.shard.index)
    if not mine or [r.shard.index for r in mine] != list(range(mine[0].shard.count)):
        raise InvalidInput("shards", f"eval run {run.run_id} has shards {[r.shard.index for r in mine]}, "
                                     f"not all {mine[0].shard.count if mine else '?'} of its plan")
    return mine


def merge_call_reports(phase: str, reports: Sequence[dict]) -> CallReport:
    """The shards' call reports of one phase added up (latency percentiles are not additive: left out)."""
    merged = CallReport(phase=phase)
    additive = [f.name for f in fields(CallReport) if f.type in ("int", "float") and not f.name.startswith("latency")]
    for report in reports:
        for name in additive:
            setattr(merged, name, getattr(merged, name) + report.get(name, 0))
        for cause, count in (report.get("retry_causes") or {}).items():
            merged.retry_causes[cause] = merged.retry_causes.get(cause, 0) + count
        merged.error_samples += list(report.get("error_samples") or [])[:10 - len(merged.error_samples)]
        merged.budget_exceeded |= bool(report.get("budget_exceeded"))
        merged.budget_field = merged.budget_field or report.get("budget_field")
        merged.cancelled |= bool(report.get("cancelled"))
        merged.endpoint = merged.endpoint or report.get("endpoint")
        merged.breaker = report.get("breaker") or merged.breaker
    return merged


def _reports(results: Sequence[ShardResult], phase: str, rows_of_reused: bool) -> CallReport:
    """One phase's calls over the shards; a shard served from its stored artifact counts its rows as cache hits."""
    merged = merge_call_reports(phase, [r.reports[phase] for r in results if phase in r.reports])
    if rows_of_reused:
        reused = sum(r.shard.rows for r in results if r.reused)
        merged.examples += reused
        merged.cache_hits += reused
    return merged


def merge_predictions(platform: EvalPlatform, run: EvalRun, results: Sequence[ShardResult]) -> PredictionReport:
    """The run's predictions from its shards, recorded on the run as the single-step code records them."""
    if not any(r.shard.run_id == run.run_id for r in results):  # claimed after the plan: predicted in one step
        return predicting.produce_predictions(platform, run)
    mine = _of_run(run, results)
    if mine[0].shard.kind == ShardKind.WHOLE_PREDICTIONS:
        assert mine[0].prediction is not None
        return mine[0].prediction
    predictions = pd.concat([platform.store.get_table(PREDICTION_SHARDS, r.artifact) for r in mine if r.artifact],
                            ignore_index=True)
    digest = platform.store.put_table(PREDICTIONS, predictions)
    report = _reports(mine, "candidate", rows_of_reused=True)
    scoring = (_reports(mine, "reference_scoring", rows_of_reused=True)
               if predicting.scores_references(platform.suite_definition(platform.suite(run.suite_key))) else None)
    report.wall_seconds = sum(r.seconds for r in mine)
    spec = predicting.with_logprobs_if_needed(platform.load_model(platform.model(run.model_key)),
                                              platform.suite_definition(platform.suite(run.suite_key)))
    platform.update_run(run.run_id, predictions_hash=digest, lineage=predicting.llm_lineage(platform, run, spec, report, scoring))
    reports = [report] if scoring is None else [report, scoring]
    calls = sum(r.calls for r in reports)
    return PredictionReport(run.run_id, digest, cache_hit=calls == 0, rows=len(predictions), seconds=report.wall_seconds,
                            calls=calls, cache_hits=sum(r.cache_hits for r in reports),
                            tokens=sum(r.prompt_tokens + r.completion_tokens for r in reports), cost=sum(r.cost for r in reports))


# judgments ----------------------------------------------------------------------------------------------
def plan_judgments(platform: EvalPlatform, runs: Sequence[EvalRun], size: int) -> list[Shard]:
    """The judge shards of the runs whose suite has a judge (none for the others), in order."""
    planned: list[Shard] = []
    for position, run in enumerate(runs):
        run = platform.run(run.run_id)
        suite_record = platform.suite(run.suite_key)
        suite = platform.suite_definition(suite_record)
        if not judging.needs_judge(suite):
            continue
        if run.predictions_hash is None:  # judged without its predictions step (e.g. materialized alone)
            predicting.produce_predictions(platform, run)
            run = platform.run(run.run_id)
        dataset = platform.dataset(run.dataset_key)
        identity = {"step": "judgments", "suite": suite_record.definition_hash,
                    "judge_config_hash": JudgeConfig.from_dict((suite.llm or {})["judge"]).config_hash,
                    "predictions": run.predictions_hash, "dataset": dataset.content_hash,
                    "judge_code": JUDGE_CODE_VERSION, "llm_call_code": LLM_CALL_CODE_VERSION}
        planned += _shards(ShardKind.JUDGE, run, position, dataset.row_count, size, identity)
    return planned


def run_judgment_shard(platform: EvalPlatform, shard: Shard, worker: str) -> ShardResult:
    """Judge one shard's selected examples, unless it is stored already; a shard whose rows hold no
    selected example (a stratified sample) writes nothing."""
    started = time.perf_counter()
    if shard.kind == ShardKind.NOTHING:
        return ShardResult(shard, None, False, worker, 0.0)
    stored = _stored(platform, JUDGMENT_SHARDS, shard)
    if stored is not None:
        return ShardResult(shard, stored, True, worker, time.perf_counter() - started)
    run = platform.run(shard.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    frame, schema = judging.evaluation_columns(platform, run)
    budget = _share(SuiteBudget.from_dict((suite.llm or {}).get("budget")), shard, len(frame))
    result, _ = judging.run_judge_calls(platform, run, suite, frame, schema, budget, only=(shard.start, shard.stop),
                                        fail_on_call_errors=True)
    reports = {"judge": result.report.to_dict()}
    if result.verdicts.empty:
        return ShardResult(shard, None, False, worker, time.perf_counter() - started, reports)
    digest = _finish(platform, JUDGMENT_SHARDS, shard, result.verdicts)
    return ShardResult(shard, digest, False, worker, time.perf_counter() - started, reports)


def merge_judgments(platform: EvalPlatform, run: EvalRun, results: Sequence[ShardResult]) -> JudgmentReport:
    """The run's judgments from its shards, recorded as ``judging.judge_outputs`` records them; the pairwise
    judge (when the suite has one and the baseline's run is known) runs here, in one step, as before."""
    run = platform.run(run.run_id)
    suite = platform.suite_definition(platform.suite(run.suite_key))
    if not judging.needs_judge(suite) or not any(r.shard.run_id == run.run_id for r in results):
        return judging.judge_outputs(platform, run)  # no judge, or claimed after the plan: in one step
    mine = _of_run(run, results)
    frame, schema = judging.evaluation_columns(platform, run)
    parts = {r.shard.index: platform.store.get_table(JUDGMENT_SHARDS, r.artifact) for r in mine if r.artifact}
    verdicts = pd.concat(list(parts.values()), ignore_index=True)
    report = _reports(mine, "judge", rows_of_reused=False)
    # a shard served from its stored verdicts: each of its judge calls counts as a cache hit, as a rerun's would
    report.cache_hits += sum(len(json.loads(samples)) for r in mine if r.reused and r.shard.index in parts
                             for samples in parts[r.shard.index]["samples"])
    report.examples = len(verdicts)
    report.wall_seconds = sum(r.seconds for r in mine)
    llm = suite.llm or {}
    config = JudgeConfig.from_dict(llm["judge"])
    plan = judging.judge_sampling_plan(suite, frame, schema, run.dataset_key)
    summary = summarize(verdicts, frame, config, llm.get("judge_samples", 1), report, sample=plan)
    record, _ = judging.record_judge(platform, run, suite, JudgeResult(verdicts, summary, report), plan)
    judge = judging.record_judge_result(platform, run.run_id, record)
    if not judging.pairwise_metrics(suite):
        return JudgmentReport(run.run_id, judge=judge)
    state, pairwise = judging.pairwise_if_baseline_known(platform, platform.run(run.run_id), suite, frame, schema)
    return JudgmentReport(run.run_id, judge=judge, pairwise=pairwise, pairwise_state=state)


def shard_rows(results: Sequence[ShardResult]) -> list[dict]:
    """One plain row per shard (for the orchestrator's metadata): which rows, where, what it cost."""
    return [{"shard": r.shard.mapping_key, "eval_run": r.shard.run_id, "rows": [r.shard.start, r.shard.stop],
             "artifact": r.artifact or "-", "reused": r.reused, "calls": r.calls, "worker": r.worker,
             "seconds": round(r.seconds, 3)} for r in results if r.shard.kind != ShardKind.NOTHING]


__all__ = ["DEFAULT_SHARD_SIZE", "JUDGMENT_SHARDS", "PREDICTION_SHARDS", "SHARD_INDEX", "SHARD_SIZE_VARIABLE", "Shard", "ShardKind",
           "ShardResult", "merge_judgments", "merge_predictions", "nothing_shard", "plan_judgments", "plan_predictions", "run_judgment_shard",
           "run_prediction_shard", "shard_bounds", "shard_size"]
