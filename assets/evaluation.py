"""The eval pipeline: predictions -> judgments -> metric table -> comparison per eval cell, then the gate decision.

Predictions, judgments, metric table and comparison are partitioned by eval cell (model version x dataset
version, ``eval_cells``): a cell's run works on the eval runs of that model version on that dataset version
(one per suite of the eval plan's entries for the dataset), and depends on exactly that dataset version's
partition of ``eval_dataset``. The gate decision is partitioned by model version and depends on every cell
of its model version. The domain library does the work and records it in the registry and the artifact
store; each materialization carries the lineage as a table and as JSON (rendered by assets/rendering.py).
"""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from eval_platform.core.failures import describe_failure
from eval_platform.core.hashing import json_hash, short
from eval_platform.core.states import RELEASABLE, DatasetStatus, RunStatus
from eval_platform.evaluation import runner, shards
from eval_platform.evaluation.shards import Shard, ShardResult, nothing_shard, shard_rows
from eval_platform.gates import releases
from eval_platform.gates.blockers import BlockerKind
from eval_platform.gates.releases import effective_decision
from eval_platform.gates.rules import GATE_CODE_VERSION
from eval_platform.governance import incidents
from eval_platform.llm.judge import JUDGE_CODE_VERSION
from eval_platform.metrics.catalog import all_metrics
from eval_platform.models.files import PREDICTION_CODE_VERSION
from eval_platform.platform import requests
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun
from eval_platform_dagster.assets.datasets import eval_dataset
from eval_platform_dagster.assets.partitions import (
    DATASET_DIMENSION,
    DECISION_TAG,
    MODEL_DIMENSION,
    PROMOTION_REQUEST_TAG,
    REQUESTED_TAG,
    eval_cells,
    model_versions,
    split_cell,
)
from eval_platform_dagster.assets.platform import PLATFORM, platform_of
from eval_platform_dagster.assets.rendering import (
    executed_by,
    lineage_metadata,
    plain,
    render_comparisons,
    render_gate,
    render_judgments,
    render_metric_tables,
    render_predictions,
)

#: Changes whenever a metric version is added or the metric-table code changes, so the Dagster UI marks
#: every metric table computed before as stale.
METRICS_CODE_VERSION = "table1-" + short(json_hash(sorted(m.key for m in all_metrics())), 10)
COMPARISON_CODE_VERSION = "2"  # 2: pairwise judge preference and sampled judge estimates
JUDGMENTS_CODE_VERSION = f"judge{JUDGE_CODE_VERSION}-1"
#: Fails when a run of the eval cell used a contaminated dataset or a metric marked buggy.
INPUTS_VALID = "inputs_valid"
#: The model version's effective gate decision at a glance: green for pass (or overridden), red otherwise.
GATE_STATUS = "gate_status"
#: Gates a promotion: blocking in the release job.
GATE_PASSED = "gate_passed"
# dagster-celery's step tag (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, spelt out: dagster-celery is an
# optional extra): under the Celery profile each kind of work goes to the queue named like its pool, so
# workers per queue keep a judge-heavy suite from starving inference and metrics (deploy/celery/). Other
# executors ignore it.
CELERY_QUEUE = "dagster-celery/queue"
#: The eval cells' dependency on their dataset version, and the gate's on its model version's cells.
ON_DATASET_VERSION = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATASET_DIMENSION)
ON_MODEL_VERSION = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=MODEL_DIMENSION)


#: The context of an asset's step or of an op of a graph-backed asset (predictions and judgments): both
#: know the run, the instance and the partition.
StepContext = dg.AssetExecutionContext | dg.OpExecutionContext


def _earlier_runs(context: StepContext) -> list[str]:
    """The earlier runs of this run's retry chain (Dagster re-executed a run whose worker died): their
    claimed eval runs are this run's to finish."""
    # a retry by the daemon carries the tag; a re-execution from the UI or the API (e.g. from failure) the attribute
    if "dagster/root_run_id" not in context.run.tags and context.run.root_run_id is None:
        return []
    group = context.instance.get_run_group(context.run.run_id)
    return [run.run_id for run in group[1] if run.run_id != context.run.run_id] if group else []


def _cell(context: StepContext) -> tuple[str, str]:
    """``(model_key, dataset_key)`` of the run's eval cell."""
    return split_cell(context.partition_key)


def _claim_runs(context: StepContext, platform: EvalPlatform) -> list[EvalRun]:
    """The eval runs of the cell this Dagster run works on. A run started by hand (a rematerialization or a
    backfill from the UI) first queues the cell's current runs again, each remedied of the incident that
    touched it (a fixed metric version; in a clean dataset version's cell, the runs its contaminated
    predecessor invalidated), exactly as ``evalp recompute`` would, and within the recompute budget as it is: over
    budget, the step fails naming the estimate, the budgets and how to confirm (the run tag
    ``eval_platform/confirm_over_budget=<who confirms>``), with nothing queued."""
    model_key, dataset_key = _cell(context)
    earlier = _earlier_runs(context)
    if context.run.tags.get(REQUESTED_TAG) != "true" and not platform.runs_of_dagster_run(
            context.run.run_id, model_key, earlier, dataset_key=dataset_key):
        incidents.rematerialize(platform, model_key, dataset_key=dataset_key,
                                confirmed_by=context.run.tags.get(incidents.CONFIRM_OVER_BUDGET_TAG))
    return platform.claim_runs(model_key, context.run.run_id, requested=True, previous_run_ids=earlier,
                               dataset_key=dataset_key)


@contextmanager
def _failing_runs_on_error(context: StepContext, platform: EvalPlatform) -> Iterator[None]:
    """An error fails the eval runs of this Dagster run (no partial results), then fails the step."""
    try:
        yield
    except Exception as error:
        # the cause, not just the step: "LLMCallsFailed: every judge call ... failed: connection refused"
        if platform.fail_runs_of(context.run.run_id, describe_failure(error)):
            runner.decide_model_version(platform, _cell(context)[0])  # no_decision, with the failure as reason
        raise


def _dynamic(shards: list[Shard]) -> Iterator[dg.DynamicOutput]:
    """One dynamic output per shard; at least one, so the merge step runs (and materializes) for a cell with
    nothing to evaluate too."""
    for shard in shards or [nothing_shard()]:
        yield dg.DynamicOutput(shard, mapping_key=shard.mapping_key)


def _shard_metadata(result: ShardResult) -> dict:
    """A shard step's output metadata: which rows of which eval run, where it ran, what it cost."""
    return {"eval_run": result.shard.run_id or "none", "rows": f"{result.shard.start}:{result.shard.stop}",
            "artifact": result.artifact or "-", "reused": result.reused, "calls": result.calls, "worker": result.worker}


def _shards_metadata(results: list[ShardResult]) -> dict:
    """The merge's metadata about its shards: how many, and each one's worker (``host:pid``) and calls."""
    rows = shard_rows(results)
    return {"shards": len(rows), "shard_workers": dg.MetadataValue.json({row["shard"]: row["worker"] for row in rows}),
            "shard_table": dg.MetadataValue.md(
                "| shard | eval run | rows | reused | calls | worker | artifact |\n|---|---|---|---|---|---|---|\n" + "\n".join(
                    f"| {row['shard']} | {row['eval_run']} | {row['rows'][0]}:{row['rows'][1]} | {row['reused']} | "
                    f"{row['calls']} | {row['worker']} | `{short(row['artifact'])}` |" for row in rows))}


@dg.op(ins={"eval_dataset": dg.In(dg.Nothing)}, out=dg.DynamicOut(), required_resource_keys=PLATFORM)
def plan_prediction_shards(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput]:
    """Claims the cell's eval runs and splits each run's examples into shards (``EVAL_PLATFORM_SHARD_SIZE``)."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    with _failing_runs_on_error(context, platform):
        planned = shards.plan_predictions(platform, runs, shards.shard_size())
    yield from _dynamic(planned)


@dg.op(pool="model_inference", tags={CELERY_QUEUE: "model_inference"}, required_resource_keys=PLATFORM)
def predict_shard(context: dg.OpExecutionContext, shard: Shard) -> ShardResult:
    """One shard's predictions (an artifact: a shard already stored is not computed again)."""
    platform = platform_of(context)
    with _failing_runs_on_error(context, platform):
        result = shards.run_prediction_shard(platform, shard, executed_by())
    context.add_output_metadata(_shard_metadata(result))
    return result


@dg.op(out=dg.Out(dg.Nothing), required_resource_keys=PLATFORM)
def merge_prediction_shards(context: dg.OpExecutionContext, results: list[ShardResult]) -> None:
    """The runs' predictions from their shards, recorded as one step records them."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    with _failing_runs_on_error(context, platform):
        produced = [shards.merge_predictions(platform, run, results) for run in runs]
    context.add_output_metadata(lineage_metadata(platform, runs) | render_predictions(produced, runs) | _shards_metadata(results))


@dg.graph_asset(
    partitions_def=eval_cells,
    # exactly the cell's dataset version: the UI's lineage and staleness follow the version evaluated
    ins={"eval_dataset": dg.AssetIn(key=eval_dataset.key, partition_mapping=ON_DATASET_VERSION, dagster_type=dg.Nothing)},
    group_name="evaluation",
    code_version=PREDICTION_CODE_VERSION,
    kinds={"parquet", "scikit-learn"},
)
def predictions(eval_dataset):
    """The model version's predictions on the cell's dataset version (cached by model file and dataset
    content: a rerun makes no inference already paid for). An LLM candidate's examples run in shards of
    ``EVAL_PLATFORM_SHARD_SIZE`` rows, each a step of pool ``model_inference``, then merged."""
    return merge_prediction_shards(plan_prediction_shards(eval_dataset).map(predict_shard).collect())


@dg.op(ins={"predictions": dg.In(dg.Nothing)}, out=dg.DynamicOut(), required_resource_keys=PLATFORM)
def plan_judgment_shards(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput]:
    """Claims the cell's eval runs and splits each judged run's examples into shards."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    with _failing_runs_on_error(context, platform):
        planned = shards.plan_judgments(platform, runs, shards.shard_size())
    yield from _dynamic(planned)


@dg.op(pool="judge", tags={CELERY_QUEUE: "judge"}, required_resource_keys=PLATFORM)
def judge_shard(context: dg.OpExecutionContext, shard: Shard) -> ShardResult:
    """One shard's judge verdicts (an artifact: a shard already stored is not judged again)."""
    platform = platform_of(context)
    with _failing_runs_on_error(context, platform):
        result = shards.run_judgment_shard(platform, shard, executed_by())
    context.add_output_metadata(_shard_metadata(result))
    return result


@dg.op(out=dg.Out(dg.Nothing), required_resource_keys=PLATFORM)
def merge_judgment_shards(context: dg.OpExecutionContext, results: list[ShardResult]) -> None:
    """The runs' judgments from their shards (and the pairwise judge, in this step), recorded as one step records them."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    with _failing_runs_on_error(context, platform):
        judged = [shards.merge_judgments(platform, run, results) for run in runs]
    context.add_output_metadata(lineage_metadata(platform, runs) | render_judgments(judged) | _shards_metadata(results))


@dg.graph_asset(
    partitions_def=eval_cells,
    ins={"predictions": dg.AssetIn(key=predictions.key, dagster_type=dg.Nothing)},
    group_name="evaluation",
    code_version=JUDGMENTS_CODE_VERSION,
    kinds={"parquet", "openai"},
)
def judgments(predictions):
    """The pinned model-as-judge's verdicts on each run's predictions (every example, or the suite's
    stratified sample) and, when the baseline's run is known, the pairwise judge's verdicts against the
    baseline's answers in both orders. Judge calls run in shards, steps of pool ``judge``, through the LLM
    call cache (``judge_calls = 0`` on a rerun); runs whose suite has no judge pass through."""
    return merge_judgment_shards(plan_judgment_shards(predictions).map(judge_shard).collect())


@dg.asset(
    partitions_def=eval_cells,
    deps=[judgments],
    group_name="evaluation",
    code_version=METRICS_CODE_VERSION,
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(INPUTS_VALID, asset="metric_table", partitions_def=eval_cells,
                                   description="No run of this eval cell used a contaminated dataset or a buggy metric "
                                               "(re-evaluated by the incident sensor when an incident is recorded).")],
    pool="cpu_metrics",
    op_tags={CELERY_QUEUE: "cpu_metrics"},
    required_resource_keys=PLATFORM,
)
def metric_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Every metric of each run's suite, overall and per slice, stored as a content-addressed table; the
    overall values are numeric metadata (``SUITE/METRIC``), so the UI plots them across model versions."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    with _failing_runs_on_error(context, platform):
        tables = [runner.compute_metrics(platform, run) for run in runs]
    return dg.MaterializeResult(check_results=[_inputs_valid(platform, runs, *_cell(context))],
                                metadata=lineage_metadata(platform, runs) | render_metric_tables(platform, runs, tables))


def _inputs_valid(platform: EvalPlatform, runs: list[EvalRun], model_key: str, dataset_key: str) -> dg.AssetCheckResult:
    """The cell's inputs are valid: no run of it used a contaminated dataset version or a buggy metric. A
    materialization that evaluated nothing (the cell's dataset version is contaminated, so nothing may be
    evaluated on it) says so from the cell's current runs; with none at all it is not green either."""
    considered = runs or [run for run in platform.runs(model_key) if run.dataset_key == dataset_key and run.status != RunStatus.SUPERSEDED]
    blockers = [b for run in considered for b in runner.gate_blockers(platform, run) if b.about_inputs]
    problems = [b.message for b in blockers]
    dataset = platform.dataset(dataset_key)
    if dataset.status != DatasetStatus.ACTIVE and not any(b.kind == BlockerKind.INVALID_DATASET for b in blockers):
        problems.append(f"dataset {dataset_key} is {dataset.status}")
    if not considered and not problems:
        return dg.AssetCheckResult(check_name=INPUTS_VALID, passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"problems": f"no eval run of {model_key} on {dataset_key}: nothing was checked"})
    return dg.AssetCheckResult(check_name=INPUTS_VALID, passed=not problems,
                               metadata={"problems": "; ".join(dict.fromkeys(problems)) or "none",
                                         "eval_runs": ", ".join(run.run_id for run in considered)})


@dg.asset(
    partitions_def=eval_cells,
    deps=[metric_table],
    group_name="evaluation",
    code_version=COMPARISON_CODE_VERSION,
    required_resource_keys=PLATFORM,
)
def comparison(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Candidate minus baseline per metric with paired bootstrap intervals (baseline: the one asked for,
    else the model name's promoted version). The cell's runs end here: they are marked finished and the
    model version's gate is decided again (the run is tagged with the decision; the gate sensor then
    materializes ``gate_decision`` once no cell of the model version is left to evaluate)."""
    platform = platform_of(context)
    runs = _claim_runs(context, platform)
    model_key, _ = _cell(context)
    with _failing_runs_on_error(context, platform):
        compared = [runner.compare_with_baseline(platform, run) for run in runs]
        runner.finish_runs(platform, model_key, runs)
    state, _, _ = effective_decision(platform, model_key)
    context.instance.add_run_tags(context.run.run_id, {DECISION_TAG: str(state)})
    return dg.MaterializeResult(metadata=lineage_metadata(platform, runs) | render_comparisons(compared))


def gate_status(platform: EvalPlatform, model_key: str) -> tuple[bool, dict]:
    """The ``gate_status`` check of a model version: passed when its effective decision lets it ship."""
    state, record, override = effective_decision(platform, model_key)
    return state in RELEASABLE, plain({
        "model_version": model_key, "effective_decision": state, "decision": record.decision if record else "none",
        "gate_decision_id": record.id if record else 0,
        "override": f"{override.approver}: {override.reason}" if override else "-"})


@dg.asset(
    partitions_def=model_versions,
    # every cell of the model version: the gate combines the release-blocking runs of all its datasets
    deps=[dg.AssetDep(comparison, partition_mapping=ON_MODEL_VERSION)],
    group_name="evaluation",
    code_version=GATE_CODE_VERSION,
    check_specs=[dg.AssetCheckSpec(GATE_STATUS, asset="gate_decision", partitions_def=model_versions, description=(
        "Green when the model version's effective gate decision is pass (or an approver overrode it), red for fail "
        "or no_decision. Not blocking: a gate that does not pass is a result. Re-evaluated by the gate sensor when "
        "a decision, an override or an incident changes it."))],
    required_resource_keys=PLATFORM,
)
def gate_decision(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """pass / fail / no_decision for the model version over its release-blocking suites, one reason per rule.

    Decided again from what is recorded (the cells' runs finished in their own runs), so a materialization
    started by the gate sensor, by hand or by a backfill says the current decision, with the lineage of the
    model version's current runs; a failing gate is a result and the run succeeds."""
    platform = platform_of(context)
    model_key = context.partition_key
    decision = runner.decide_model_version(platform, model_key)
    state, record, override = effective_decision(platform, model_key)
    runs = [run for run in platform.runs(model_key) if run.status != RunStatus.SUPERSEDED]
    context.instance.add_run_tags(context.run.run_id, {DECISION_TAG: str(state)})
    passed, status = gate_status(platform, model_key)
    return dg.MaterializeResult(
        metadata={**lineage_metadata(platform, runs), "decision": str(decision.decision), "effective_decision": str(state),
                  "gate_decision_id": record.id if record else 0, **render_gate(platform, decision, override, runs, passed)},
        check_results=[dg.AssetCheckResult(check_name=GATE_STATUS, passed=passed, metadata=status)],
    )


@dg.asset_check(asset=gate_decision, name=GATE_PASSED, blocking=True, partitions_def=model_versions, description=(
    "The model version's release gate passed (or an approver overrode it), decided again before a release. "
    "Blocking in the release job: the promotion downstream does not run otherwise. Anywhere else (a backfill of "
    "the evaluation group from the UI) a gate that does not pass is a warning, not an error: a result."),
    required_resource_keys=PLATFORM)
def gate_passed(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    model_key = context.run.tags["dagster/partition"]
    platform = platform_of(context)
    runner.decide_model_version(platform, model_key)  # e.g. the promoted baseline changed since: stale
    passed, status = gate_status(platform, model_key)
    releasing = context.run.job_name == RELEASE_JOB
    return dg.AssetCheckResult(passed=passed, metadata=status,
                               severity=dg.AssetCheckSeverity.ERROR if releasing else dg.AssetCheckSeverity.WARN)


#: The release job (jobs/release.py), the one run where a gate that does not pass is an error.
RELEASE_JOB = "release_model_version"


@dg.asset(
    partitions_def=model_versions,
    # the online gate (assets/experiments.py) is named by key: it depends on this module's gate_decision
    deps=[gate_decision, dg.AssetKey("online_gate")],
    group_name="release",
    code_version="1",
    required_resource_keys=PLATFORM,
)
def promotion(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The release of a model version: it becomes the baseline of its name. Guarded by the blocking checks
    of the offline and the online gate, and refused again here unless both let it through."""
    platform = platform_of(context)
    request_id = context.run.tags.get(PROMOTION_REQUEST_TAG)
    request = requests.get_request(platform, int(request_id)) if request_id else None
    promoted_by = request.requested_by if request else f"dagster-run:{context.run.run_id}"
    record = releases.promote(platform, context.partition_key, promoted_by=promoted_by, reason=request.reason if request else "")
    if request is not None:
        requests.mark_done(platform, request.id, context.run.run_id)
    return dg.MaterializeResult(metadata={"promoted_by": record.promoted_by, "gate_decision_id": record.gate_decision_id,
                                          "reason": record.reason or "-"})
