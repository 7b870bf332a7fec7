"""The eval pipeline of one model version: predictions -> judgments -> metric table -> comparison -> gate decision.

Each asset is partitioned by model version and works on the eval runs of that version (one per
(dataset, suite) of the model's eval plan); the domain library does the work and records it in the
registry and the artifact store, and the materialization carries the lineage as metadata.
"""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from assets.datasets import eval_dataset
from assets.partitions import PROMOTION_REQUEST_TAG, REQUESTED_TAG, model_versions
from eval_platform import incidents, releases, runner
from eval_platform.evaluation import ALL
from eval_platform.failures import describe_failure
from eval_platform.gates import GATE_CODE_VERSION, PASS
from eval_platform.hashing import json_hash, short
from eval_platform.llm.judge import JUDGE_CODE_VERSION
from eval_platform.metrics.catalog import all_metrics
from eval_platform.metrics.curves import png_markdown
from eval_platform.models import PREDICTION_CODE_VERSION
from eval_platform.platform import PLOTS, EvalPlatform
from eval_platform.registry import EvalRun
from eval_platform.releases import effective_decision
from resources import EvalPlatformResource

#: Changes whenever a metric version is added or the metric-table code changes, so the Dagster UI marks
#: every metric table computed before as stale.
METRICS_CODE_VERSION = "table1-" + short(json_hash(sorted(m.key for m in all_metrics())), 10)
COMPARISON_CODE_VERSION = "2"  # 2: pairwise judge preference and sampled judge estimates
JUDGMENTS_CODE_VERSION = f"judge{JUDGE_CODE_VERSION}-1"
#: Fails when a run of the partition used a contaminated dataset or a metric marked buggy.
INPUTS_VALID = "inputs_valid"


def _earlier_runs(context: dg.AssetExecutionContext) -> list[str]:
    """The earlier runs of this run's retry chain (Dagster re-executed a run whose worker died): their
    claimed eval runs are this run's to finish."""
    if "dagster/root_run_id" not in context.run.tags:
        return []
    group = context.instance.get_run_group(context.run.run_id)
    return [run.run_id for run in group[1] if run.run_id != context.run.run_id] if group else []


def _runs(context: dg.AssetExecutionContext, service: EvalPlatform) -> list[EvalRun]:
    """The eval runs this Dagster run works on. A run started by hand (a rematerialization or a backfill from
    the UI) first queues the model version's current runs again, each remedied of the incident that touched
    it (a fixed metric version, a clean dataset version), exactly as ``evalp recompute`` would."""
    earlier = _earlier_runs(context)
    if context.run.tags.get(REQUESTED_TAG) != "true" and not service.runs_of_dagster_run(
            context.run.run_id, context.partition_key, earlier):
        incidents.rematerialize(service, context.partition_key)
    return service.claim_runs(context.partition_key, context.run.run_id, requested=True, previous_run_ids=earlier)


@contextmanager
def _failing_runs_on_error(service: EvalPlatform, context: dg.AssetExecutionContext) -> Iterator[None]:
    """An error fails the eval runs of this Dagster run (no partial results), then fails the step."""
    try:
        yield
    except Exception as error:
        # the cause, not just the step: "LLMCallsFailed: every judge call ... failed: connection refused"
        if service.fail_runs_of(context.run.run_id, describe_failure(error)):
            runner.decide_model_version(service, context.partition_key)  # no_decision, with the failure as reason
        raise


def _lineage_metadata(service: EvalPlatform, runs: list[EvalRun]) -> dict:
    return {"lineage": dg.MetadataValue.json({run.run_id: runner.lineage(service, run) for run in runs}),
            "eval_runs": ", ".join(run.run_id for run in runs) or "none"}


@dg.asset(
    partitions_def=model_versions,
    deps=[dg.AssetDep(eval_dataset, partition_mapping=dg.AllPartitionMapping())],
    group_name="evaluation",
    code_version=PREDICTION_CODE_VERSION,
    kinds={"parquet", "scikit-learn"},
    pool="model_inference",
)
def predictions(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """The model version's predictions on each dataset of its eval plan (cached by model file and
    dataset content: a rerun makes no inference already paid for)."""
    service = platform.get()
    runs = _runs(context, service)
    with _failing_runs_on_error(service, context):
        produced = [runner.produce_predictions(service, run) for run in runs]
    return dg.MaterializeResult(metadata={
        **_lineage_metadata(service, runs),
        "prediction_sets": dg.MetadataValue.md(
            "| run | dataset | rows | cache hit | seconds | artifact |\n|---|---|---|---|---|---|\n" + "\n".join(
                f"| {p['run_id']} | {run.dataset_key} | {p['rows']} | {p['cache_hit']} | {p['seconds']:.3f} | "
                f"`{short(p['predictions_hash'])}` |" for p, run in zip(produced, runs, strict=True))),
        "cache_hits": sum(p["cache_hit"] for p in produced),
        "inference_calls": sum(not p["cache_hit"] for p in produced),
    })


def _number(value, spec: str = ".4f") -> str:
    return "undefined" if value is None else format(value, spec)


@dg.asset(
    partitions_def=model_versions,
    deps=[predictions],
    group_name="evaluation",
    code_version=JUDGMENTS_CODE_VERSION,
    kinds={"parquet", "openai"},
    pool="judge",
)
def judgments(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """The pinned model-as-judge's verdicts on each run's predictions (every example, or the suite's
    stratified sample) and, when the baseline's run is known, the pairwise judge's verdicts against the
    baseline's answers in both orders. Judge calls run in pool ``judge``, through the LLM call cache
    (``judge_calls = 0`` on a rerun); runs whose suite has no judge pass through."""
    service = platform.get()
    runs = _runs(context, service)
    with _failing_runs_on_error(service, context):
        judged = [runner.judge_outputs(service, run) for run in runs]
    lines = ["| run | judge | judged | calls | cache hits | tokens | cost | estimate |", "|---|---|---|---|---|---|---|---|"]
    calls = hits = 0
    for result in judged:
        for kind in ("judge", "pairwise"):
            record = result[kind]
            if record is None:
                continue
            report = record["report"]
            calls, hits = calls + report["calls"], hits + report["cache_hits"]
            if kind == "judge":
                summary, sampling = record["summary"], record.get("sampling")
                estimate = (f"{_number(sampling['estimate']['mean'])} [{_number(sampling['estimate']['ci_low'])}, "
                            f"{_number(sampling['estimate']['ci_high'])}], seed {sampling['seed']}" if sampling
                            else _number(summary.get("mean")))
                judged_text = f"{summary['n_judged']}" + (f" of {sampling['n_population']}" if sampling else "")
                name = summary["judge_model"]
            else:
                estimate = (f"preference {_number(record['preference'])} [{_number(record['ci_low'])}, "
                            f"{_number(record['ci_high'])}] vs {record['baseline_model']}")
                judged_text, name = str(record["n_examples"]), f"{record['judge']['judge_model']} (pairwise)"
            lines.append(f"| {result['run_id']} | {name} | {judged_text} | {report['calls']} | {report['cache_hits']} | "
                         f"{report['total_tokens']} | {report['cost']:.4f} | {estimate} |")
        if result["judge"] is None and result["pairwise"] is None:
            note = f"pairwise waits for the comparison (baseline {result['pairwise_state']})" if result["pairwise_state"] else "no judge"
            lines.append(f"| {result['run_id']} | {note} | | | | | | |")
    return dg.MaterializeResult(metadata={
        **_lineage_metadata(service, runs),
        "judgments": dg.MetadataValue.md("\n".join(lines)),
        "verdict_artifacts": dg.MetadataValue.json({r["run_id"]: {k: r[k]["verdicts"] for k in ("judge", "pairwise") if r[k]}
                                                    for r in judged}),
        "judge_calls": calls,
        "judge_cache_hits": hits,
    })


@dg.asset(
    partitions_def=model_versions,
    deps=[judgments],
    group_name="evaluation",
    code_version=METRICS_CODE_VERSION,
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(INPUTS_VALID, asset="metric_table",
                                   description="No run of this model version used a contaminated dataset or a buggy metric.")],
)
def metric_table(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """Every metric of each run's suite, overall and per slice, stored as a content-addressed table."""
    service = platform.get()
    runs = _runs(context, service)
    with _failing_runs_on_error(service, context):
        tables = [runner.compute_metrics(service, run) for run in runs]
    sections = []
    for run, result in zip(runs, tables, strict=True):
        table = result["table"]
        overall = table[table["slice_column"] == ALL]
        lines = [f"**{run.run_id}** on {run.dataset_key} with {run.suite_key}", "", "| metric | version | value | n |",
                 "|---|---|---|---|"]
        lines += [f"| {r.metric} | {r.metric_key} | {r.value:.6g} | {r.n_examples} |" for r in overall.itertuples()]
        for name, e in (result["results"].get("estimates") or {}).items():
            lines += ["", f"{name} judged a stratified sample: estimate {_number(e.get('mean'))} "
                          f"({e['confidence']:.0%} interval [{_number(e.get('ci_low'))}, {_number(e.get('ci_high'))}]), "
                          f"{e['n_sampled']} of {e['n_population']} examples judged, strata {e['strata'] or 'none'}, "
                          f"seed {e['seed']}, label efficiency {_number(e.get('label_efficiency'), '.2f')}"]
        flagged = table[table["flagged"]]
        if len(flagged):
            lines += ["", f"{len(flagged)} slice row(s) below the minimum slice size (flagged)."]
        plot = result["results"].get("artifacts", {}).get("curves_png")
        if plot:
            lines += ["", png_markdown(service.store.get_blob(PLOTS, plot, ".png"), alt=f"ROC and PR curves of {run.run_id}")]
        sections.append("\n".join(lines))
    problems = [b for run in runs for b in runner.gate_blockers(service, run) if b.startswith(("dataset ", "frozen:"))]
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name=INPUTS_VALID, passed=not problems, metadata={"problems": "; ".join(problems) or "none"})], metadata={
        **_lineage_metadata(service, runs),
        "metrics": dg.MetadataValue.md("\n\n".join(sections) or "no eval runs"),
        "metric_tables": dg.MetadataValue.json({r["run_id"]: r["metrics_hash"] for r in tables}),
        "metric_computation_seconds": float(sum(r["seconds"] for r in tables)),
    })


@dg.asset(
    partitions_def=model_versions,
    deps=[metric_table],
    group_name="evaluation",
    code_version=COMPARISON_CODE_VERSION,
)
def comparison(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """Candidate minus baseline per metric with paired bootstrap intervals (baseline: the one asked for,
    else the model name's promoted version)."""
    service = platform.get()
    runs = _runs(context, service)
    with _failing_runs_on_error(service, context):
        compared = [runner.compare_with_baseline(service, run) for run in runs]
    lines = ["| run | baseline | metric | candidate | baseline value | delta | 95% interval |", "|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for result in compared:
        if not result["metrics"]:
            lines.append(f"| {result['run_id']} | {result['baseline_state']} | | | | | |")
        for name, c in result["metrics"].items():
            lines.append(f"| {result['run_id']} | {result['baseline_model']} | {name} | {_number(c['candidate'])} | "
                         f"{_number(c['baseline'])} | {_number(c['delta'], '+.4f')} | "
                         f"[{_number(c['ci_low'], '+.4f')}, {_number(c['ci_high'], '+.4f')}] |")
        for name, p in (result.get("pairwise") or {}).items():
            notes.append(f"- {result['run_id']} {name}: candidate wins {p['wins']}, baseline wins {p['losses']}, ties {p['ties']}; "
                         f"first-position rate {_number(p['first_position_rate'], '.2f')} (0.5 = no position bias); "
                         f"{len(p['order_disagreements'])} example(s) changed winner with the order; "
                         f"{p['n_judge_errors']} judge error(s)")
    return dg.MaterializeResult(metadata={
        **_lineage_metadata(service, runs),
        "comparison": dg.MetadataValue.md("\n".join(lines + ([""] + notes if notes else []))),
        "baseline_states": dg.MetadataValue.json({r["run_id"]: r["baseline_state"] for r in compared}),
    })


@dg.asset(
    partitions_def=model_versions,
    deps=[comparison],
    group_name="evaluation",
    code_version=GATE_CODE_VERSION,
)
def gate_decision(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """pass / fail / no_decision for the model version over its release-blocking suites, one reason per rule."""
    service = platform.get()
    # Decides from what is recorded: the runs this Dagster run evaluated are finished first; run alone
    # (from the UI, or before a promotion) it decides again, e.g. after an override or an incident.
    runs = service.runs_of_dagster_run(context.run.run_id, context.partition_key, _earlier_runs(context))
    with _failing_runs_on_error(service, context):
        decision = runner.finish_runs(service, context.partition_key, runs)
    state, record, override = effective_decision(service, context.partition_key)
    lines = []
    for run_reason in decision.reasons:
        lines.append(f"**{run_reason.get('run', run_reason.get('rule'))}**: {run_reason['outcome']}")
        for reason in run_reason.get("reasons", []):
            lines.append(f"- {reason['outcome']}: {reason['rule']} ({reason.get('message', '')})")
    if override is not None:
        lines.append(f"\n**overridden** by {override.approver} at {override.created_at:%Y-%m-%d %H:%M} UTC: {override.reason}")
    return dg.MaterializeResult(
        metadata={**_lineage_metadata(service, runs), "decision": decision.decision, "effective_decision": state,
                  "gate_decision_id": record.id if record else 0,
                  "reasons": dg.MetadataValue.md("\n".join(lines)),
                  "reasons_json": dg.MetadataValue.json(decision.reasons)},
    )


@dg.asset_check(asset=gate_decision, blocking=True, description=(
    "The model version's release gate passed (or an approver overrode it). Blocking: the promotion "
    "downstream does not run otherwise. Not part of the evaluation job, where fail is a result, not an error."))
def gate_passed(context: dg.AssetCheckExecutionContext, platform: EvalPlatformResource) -> dg.AssetCheckResult:
    model_key = context.run.tags["dagster/partition"]
    state, record, override = effective_decision(platform.get(), model_key)
    return dg.AssetCheckResult(passed=state in (PASS, "overridden"), metadata={
        "model_version": model_key, "effective_decision": state, "gate_decision_id": record.id if record else 0,
        "override": f"{override.approver}: {override.reason}" if override else "-"})


@dg.asset(
    partitions_def=model_versions,
    # the online gate (assets/experiments.py) is named by key: it depends on this module's gate_decision
    deps=[gate_decision, dg.AssetKey("online_gate")],
    group_name="release",
    code_version="1",
)
def promotion(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """The release of a model version: it becomes the baseline of its name. Guarded by the blocking checks
    of the offline and the online gate, and refused again here unless both let it through."""
    service = platform.get()
    request_id = context.run.tags.get(PROMOTION_REQUEST_TAG)
    request = releases.request(service, int(request_id)) if request_id else None
    promoted_by = request.requested_by if request else f"dagster-run:{context.run.run_id}"
    record = service.promote(context.partition_key, promoted_by=promoted_by, reason=request.reason if request else "")
    if request is not None:
        releases.mark_done(service, request.id, context.run.run_id)
    return dg.MaterializeResult(metadata={"promoted_by": record.promoted_by, "gate_decision_id": record.gate_decision_id,
                                          "reason": record.reason or "-"})
