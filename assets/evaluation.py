"""The eval pipeline: predictions -> judgments -> metric table -> comparison per eval cell, then the gate decision.

Predictions, judgments, metric table and comparison are partitioned by eval cell (model version x dataset
version, ``eval_cells``): a cell's run works on the eval runs of that model version on that dataset version
(one per suite of the eval plan's entries for the dataset), and depends on exactly that dataset version's
partition of ``eval_dataset``. The gate decision is partitioned by model version and depends on every cell
of its model version. The domain library does the work and records it in the registry and the artifact
store; each materialization carries the lineage as a table and as JSON.
"""


from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import dagster as dg

from assets.datasets import eval_dataset
from assets.partitions import (
    DATASET_DIMENSION,
    DECISION_TAG,
    MODEL_DIMENSION,
    PROMOTION_REQUEST_TAG,
    REQUESTED_TAG,
    eval_cells,
    model_versions,
    split_cell,
)
from eval_platform.core.failures import describe_failure
from eval_platform.core.hashing import json_hash, short
from eval_platform.core.store import PLOTS
from eval_platform.evaluation import runner
from eval_platform.evaluation.metric_table import ALL
from eval_platform.gates import releases
from eval_platform.gates.releases import effective_decision
from eval_platform.gates.rules import GATE_CODE_VERSION, PASS
from eval_platform.governance import incidents
from eval_platform.llm.judge import JUDGE_CODE_VERSION
from eval_platform.metrics.catalog import all_metrics
from eval_platform.metrics.curves import png_markdown
from eval_platform.models.files import PREDICTION_CODE_VERSION
from eval_platform.platform.requests import get_request, mark_done
from eval_platform.platform.service import SUPERSEDED, EvalPlatform
from eval_platform.registry import EvalRun
from resources import EvalPlatformResource

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
#: The eval cells' dependency on their dataset version, and the gate's on its model version's cells.
ON_DATASET_VERSION = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=DATASET_DIMENSION)
ON_MODEL_VERSION = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=MODEL_DIMENSION)


def _earlier_runs(context: dg.AssetExecutionContext) -> list[str]:
    """The earlier runs of this run's retry chain (Dagster re-executed a run whose worker died): their
    claimed eval runs are this run's to finish."""
    if "dagster/root_run_id" not in context.run.tags:
        return []
    group = context.instance.get_run_group(context.run.run_id)
    return [run.run_id for run in group[1] if run.run_id != context.run.run_id] if group else []


def _cell(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """``(model_key, dataset_key)`` of the run's eval cell."""
    return split_cell(context.partition_key)


def _runs(context: dg.AssetExecutionContext, service: EvalPlatform) -> list[EvalRun]:
    """The eval runs of the cell this Dagster run works on. A run started by hand (a rematerialization or a
    backfill from the UI) first queues the cell's current runs again, each remedied of the incident that
    touched it (a fixed metric version; in a clean dataset version's cell, the runs its contaminated
    predecessor invalidated), exactly as ``evalp recompute`` would."""
    model_key, dataset_key = _cell(context)
    earlier = _earlier_runs(context)
    if context.run.tags.get(REQUESTED_TAG) != "true" and not service.runs_of_dagster_run(
            context.run.run_id, model_key, earlier, dataset_key=dataset_key):
        incidents.rematerialize(service, model_key, dataset_key=dataset_key)
    return service.claim_runs(model_key, context.run.run_id, requested=True, previous_run_ids=earlier,
                              dataset_key=dataset_key)


@contextmanager
def _failing_runs_on_error(service: EvalPlatform, context: dg.AssetExecutionContext, model_key: str) -> Iterator[None]:
    """An error fails the eval runs of this Dagster run (no partial results), then fails the step."""
    try:
        yield
    except Exception as error:
        # the cause, not just the step: "LLMCallsFailed: every judge call ... failed: connection refused"
        if service.fail_runs_of(context.run.run_id, describe_failure(error)):
            runner.decide_model_version(service, model_key)  # no_decision, with the failure as reason
        raise


def _lineage_table(lineages: dict[str, dict]) -> str:
    """Each run's inputs as a table a person reads (the JSON beside it is for tools); the dataset version
    named here is the upstream partition of the cell in the lineage graph."""
    lines = ["| run | dataset | content hash | label policy | model | file hash | suite | metrics | judge | code |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run_id, lin in lineages.items():
        dataset, model, suite = lin["dataset"], lin["model"], lin["suite"]
        judge = lin.get("judge")
        judge_text = (" ".join(str(judge.get(k, "")) for k in ("judge_model", "judge_prompt_version")).strip()
                      if isinstance(judge, dict) else (judge or "-"))
        dataset_key = f"{dataset['id']}@{dataset['version']}"
        # a link to the upstream partition in the UI (relative: the page of the UI showing this table)
        upstream = f"[{dataset_key}](/assets/eval_dataset?view=partitions&partition={quote(dataset_key, safe='')})"
        lines.append(f"| {run_id} | {upstream} | `{short(dataset['content_hash'])}` | "
                     f"{dataset['label_policy']} | {model['name']}@{model['version']} | `{short(model['file_hash'] or '')}` | "
                     f"{suite['id']}@{suite['version']} | {', '.join(sorted(set(lin['metrics'].values())))} | {judge_text} | "
                     f"{lin['code']['platform']} |")
    return "\n".join(lines)


def _lineage_metadata(service: EvalPlatform, runs: list[EvalRun]) -> dict:
    lineages = {run.run_id: runner.lineage(service, run) for run in runs}
    return {"lineage": dg.MetadataValue.json(lineages),
            "inputs": dg.MetadataValue.md(_lineage_table(lineages) if runs else "no eval runs"),
            "eval_runs": ", ".join(run.run_id for run in runs) or "none"}


@dg.asset(
    partitions_def=eval_cells,
    # exactly the cell's dataset version: the UI's lineage and staleness follow the version evaluated
    deps=[dg.AssetDep(eval_dataset, partition_mapping=ON_DATASET_VERSION)],
    group_name="evaluation",
    code_version=PREDICTION_CODE_VERSION,
    kinds={"parquet", "scikit-learn"},
    pool="model_inference",
)
def predictions(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """The model version's predictions on the cell's dataset version (cached by model file and dataset
    content: a rerun makes no inference already paid for)."""
    service = platform.get()
    runs = _runs(context, service)
    with _failing_runs_on_error(service, context, _cell(context)[0]):
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
    partitions_def=eval_cells,
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
    with _failing_runs_on_error(service, context, _cell(context)[0]):
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
    partitions_def=eval_cells,
    deps=[judgments],
    group_name="evaluation",
    code_version=METRICS_CODE_VERSION,
    kinds={"parquet"},
    check_specs=[dg.AssetCheckSpec(INPUTS_VALID, asset="metric_table", partitions_def=eval_cells,
                                   description="No run of this eval cell used a contaminated dataset or a buggy metric "
                                               "(re-evaluated by the incident sensor when an incident is recorded).")],
)
def metric_table(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """Every metric of each run's suite, overall and per slice, stored as a content-addressed table; the
    overall values are numeric metadata (``SUITE/METRIC``), so the UI plots them across model versions."""
    service = platform.get()
    runs = _runs(context, service)
    model_key, dataset_key = _cell(context)
    with _failing_runs_on_error(service, context, model_key):
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
    headline = {f"{run.suite_id}/{r.metric}": dg.MetadataValue.float(float(r.value))
                for run, result in zip(runs, tables, strict=True)
                for r in result["table"][result["table"]["slice_column"] == ALL].itertuples()
                if r.value is not None and r.value == r.value}  # NaN (undefined) is not plotted
    return dg.MaterializeResult(check_results=[_inputs_valid(service, runs, model_key, dataset_key)], metadata={
        **_lineage_metadata(service, runs),
        **headline,
        "metrics": dg.MetadataValue.md("\n\n".join(sections) or "no eval runs"),
        "metric_tables": dg.MetadataValue.json({r["run_id"]: r["metrics_hash"] for r in tables}),
        "metric_computation_seconds": float(sum(r["seconds"] for r in tables)),
    })


def _inputs_valid(service: EvalPlatform, runs: list[EvalRun], model_key: str, dataset_key: str) -> dg.AssetCheckResult:
    """The cell's inputs are valid: no run of it used a contaminated dataset version or a buggy metric. A
    materialization that evaluated nothing (the cell's dataset version is contaminated, so nothing may be
    evaluated on it) says so from the cell's current runs; with none at all it is not green either."""
    considered = runs or [run for run in service.runs(model_key) if run.dataset_key == dataset_key and run.status != SUPERSEDED]
    problems = [b for run in considered for b in runner.gate_blockers(service, run) if b.startswith(("dataset ", "frozen:"))]
    if service.dataset(dataset_key).status != "active" and not any(p.startswith("dataset ") for p in problems):
        problems.append(f"dataset {dataset_key} is {service.dataset(dataset_key).status}")
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
)
def comparison(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """Candidate minus baseline per metric with paired bootstrap intervals (baseline: the one asked for,
    else the model name's promoted version). The cell's runs end here: they are marked finished and the
    model version's gate is decided again (the run is tagged with the decision; the gate sensor then
    materializes ``gate_decision`` once no cell of the model version is left to evaluate)."""
    service = platform.get()
    runs = _runs(context, service)
    model_key, _ = _cell(context)
    with _failing_runs_on_error(service, context, model_key):
        compared = [runner.compare_with_baseline(service, run) for run in runs]
        runner.finish_runs(service, model_key, runs)
    state, _, _ = effective_decision(service, model_key)
    context.instance.add_run_tags(context.run.run_id, {DECISION_TAG: state})
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


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _rules_table(reasons: list[dict]) -> str:
    """Per run, per rule: outcome, observed value, baseline interval and threshold, as a table."""
    lines = ["| run | outcome | rule | observed | interval | threshold | message |", "|---|---|---|---|---|---|---|"]
    for run_reason in reasons:
        label = run_reason.get("run", run_reason.get("rule", ""))
        for reason in run_reason.get("reasons", [run_reason] if "run" not in run_reason else []):
            lines.append(f"| {label} | {reason['outcome']} | {reason['rule']}{' (' + reason['slice'] + ')' if reason.get('slice') else ''} | "
                         f"{_fmt(reason.get('observed'))} | {_fmt(reason.get('interval') or reason.get('estimate_interval'))} | "
                         f"{_fmt(reason.get('threshold'))} | {str(reason.get('message', '')).replace('|', '/')} |")
    return "\n".join(lines)


def gate_status(service: EvalPlatform, model_key: str) -> tuple[bool, dict]:
    """The ``gate_status`` check of a model version: passed when its effective decision lets it ship."""
    state, record, override = effective_decision(service, model_key)
    return state in (PASS, "overridden"), {
        "model_version": model_key, "effective_decision": state, "decision": record.decision if record else "none",
        "gate_decision_id": record.id if record else 0,
        "override": f"{override.approver}: {override.reason}" if override else "-"}


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
)
def gate_decision(context: dg.AssetExecutionContext, platform: EvalPlatformResource) -> dg.MaterializeResult:
    """pass / fail / no_decision for the model version over its release-blocking suites, one reason per rule.

    Decided again from what is recorded (the cells' runs finished in their own runs), so a materialization
    started by the gate sensor, by hand or by a backfill says the current decision, with the lineage of the
    model version's current runs; a failing gate is a result and the run succeeds."""
    service = platform.get()
    model_key = context.partition_key
    decision = runner.decide_model_version(service, model_key)
    state, record, override = effective_decision(service, model_key)
    runs = [run for run in service.runs(model_key) if run.status != SUPERSEDED]
    context.instance.add_run_tags(context.run.run_id, {DECISION_TAG: state})
    reasons = _rules_table(decision.reasons)
    if override is not None:
        reasons += f"\n\n**overridden** by {override.approver} at {override.created_at:%Y-%m-%d %H:%M} UTC: {override.reason}"
    plots = [png_markdown(service.store.get_blob(PLOTS, run.results["artifacts"]["curves_png"], ".png"),
                          alt=f"ROC and PR curves of {run.run_id}")
             for run in runs if ((run.results or {}).get("artifacts") or {}).get("curves_png")]
    outcomes = [r.get("outcome") for run_reason in decision.reasons for r in run_reason.get("reasons", [])]
    passed, status = gate_status(service, model_key)
    return dg.MaterializeResult(
        metadata={**_lineage_metadata(service, runs), "decision": decision.decision, "effective_decision": state,
                  "gate_decision_id": record.id if record else 0,
                  # numbers, so the UI plots them across model versions
                  "passes": dg.MetadataValue.float(1.0 if passed else 0.0),
                  "rules_passed": dg.MetadataValue.int(outcomes.count(PASS)),
                  "rules_not_passed": dg.MetadataValue.int(len(outcomes) - outcomes.count(PASS)),
                  "reasons": dg.MetadataValue.md(reasons),
                  "plots": dg.MetadataValue.md("\n\n".join(plots) or "no curves"),
                  "reasons_json": dg.MetadataValue.json(decision.reasons)},
        check_results=[dg.AssetCheckResult(check_name=GATE_STATUS, passed=passed, metadata=status)],
    )


@dg.asset_check(asset=gate_decision, name=GATE_PASSED, blocking=True, partitions_def=model_versions, description=(
    "The model version's release gate passed (or an approver overrode it), decided again before a release. "
    "Blocking in the release job: the promotion downstream does not run otherwise. Anywhere else (a backfill of "
    "the evaluation group from the UI) a gate that does not pass is a warning, not an error: a result."))
def gate_passed(context: dg.AssetCheckExecutionContext, platform: EvalPlatformResource) -> dg.AssetCheckResult:
    model_key = context.run.tags["dagster/partition"]
    service = platform.get()
    runner.decide_model_version(service, model_key)  # e.g. the promoted baseline changed since: stale
    passed, status = gate_status(service, model_key)
    releasing = context.run.job_name == RELEASE_JOB
    return dg.AssetCheckResult(passed=passed, metadata=status,
                               severity=dg.AssetCheckSeverity.ERROR if releasing else dg.AssetCheckSeverity.WARN)


#: The release job (jobs/__init__.py), the one run where a gate that does not pass is an error.
RELEASE_JOB = "release_model_version"


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
    request = get_request(service, int(request_id)) if request_id else None
    promoted_by = request.requested_by if request else f"dagster-run:{context.run.run_id}"
    record = releases.promote(service, context.partition_key, promoted_by=promoted_by, reason=request.reason if request else "")
    if request is not None:
        mark_done(service, request.id, context.run.run_id)
    return dg.MaterializeResult(metadata={"promoted_by": record.promoted_by, "gate_decision_id": record.gate_decision_id,
                                          "reason": record.reason or "-"})
