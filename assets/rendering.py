"""Materialization metadata of the evaluation assets: the runner's typed results as the tables the Dagster UI shows."""

from __future__ import annotations

import json
import os
import socket
from typing import Any
from urllib.parse import quote

import dagster as dg

from eval_platform.core.hashing import short
from eval_platform.core.states import Verdict
from eval_platform.core.store import PLOTS
from eval_platform.evaluation import predicting
from eval_platform.evaluation.metric_table import ALL
from eval_platform.evaluation.results import Comparison, JudgmentReport, MetricTableReport, PredictionReport
from eval_platform.gates.rules import GateDecision
from eval_platform.metrics.curves import png_markdown
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun, GateOverride
from eval_platform.stats.dataset_drift import ColumnDrift, DatasetDriftReport

Metadata = dict[str, Any]


def plain(value: Any) -> Any:
    """``value`` with every state (a StrEnum) as its plain string: Dagster's serializer refuses enums it does
    not know, in metadata and in tags alike."""
    return json.loads(json.dumps(value))


def number(value: float | None, spec: str = ".4f") -> str:
    return "undefined" if value is None else format(value, spec)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, ".4g")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


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


def lineage_metadata(platform: EvalPlatform, runs: list[EvalRun]) -> Metadata:
    """The inputs of the runs a materialization worked on: JSON for tools, a table for people; and the process
    that did the work (``worker``)."""
    lineages = {run.run_id: predicting.lineage(platform, run) for run in runs}
    return {"lineage": dg.MetadataValue.json(lineages),
            "inputs": dg.MetadataValue.md(_lineage_table(lineages) if runs else "no eval runs"),
            "eval_runs": ", ".join(run.run_id for run in runs) or "none",
            "worker": executed_by()}


def executed_by() -> str:
    """``host:pid`` of the process running this step: the run's own process in-process, a Celery worker's
    pool process under the Celery profile (which machine evaluated what, when steps spread over workers)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def render_predictions(produced: list[PredictionReport], runs: list[EvalRun]) -> Metadata:
    return {
        "prediction_sets": dg.MetadataValue.md(
            "| run | dataset | rows | cache hit | seconds | artifact |\n|---|---|---|---|---|---|\n" + "\n".join(
                f"| {p.run_id} | {run.dataset_key} | {p.rows} | {p.cache_hit} | {p.seconds:.3f} | "
                f"`{short(p.predictions_hash)}` |" for p, run in zip(produced, runs, strict=True))),
        "cache_hits": sum(p.cache_hit for p in produced),
        "inference_calls": sum(not p.cache_hit for p in produced),
    }


def _judgment_rows(result: JudgmentReport) -> list[str]:
    """One row per judge that judged the run, or one saying why none did."""
    rows = []
    if result.judge is not None:
        judge, sample = result.judge, result.judge.sample_estimate
        estimate = (f"{number(sample.value)} [{number(sample.low)}, {number(sample.high)}], seed {judge.sample_seed}" if sample
                    else number(judge.mean))
        judged_text = f"{judge.n_judged}" + (f" of {judge.n_population}" if sample else "")
        rows.append(f"| {result.run_id} | {judge.judge_model} | {judged_text} | {judge.calls.calls} | {judge.calls.cache_hits} | "
                    f"{judge.calls.total_tokens} | {judge.calls.cost:.4f} | {estimate} |")
    if result.pairwise is not None:
        pairwise, preference = result.pairwise, result.pairwise.preference
        estimate = (f"preference {number(preference.value)} [{number(preference.low)}, "
                    f"{number(preference.high)}] vs {pairwise.baseline_model}")
        rows.append(f"| {result.run_id} | {pairwise.judge_model} (pairwise) | {pairwise.n_examples} | {pairwise.calls.calls} | "
                    f"{pairwise.calls.cache_hits} | {pairwise.calls.total_tokens} | {pairwise.calls.cost:.4f} | {estimate} |")
    if not result.judged:
        note = f"pairwise waits for the comparison (baseline {result.pairwise_state})" if result.pairwise_state else "no judge"
        rows.append(f"| {result.run_id} | {note} | | | | | | |")
    return rows


def render_judgments(judged: list[JudgmentReport]) -> Metadata:
    lines = ["| run | judge | judged | calls | cache hits | tokens | cost | estimate |", "|---|---|---|---|---|---|---|---|"]
    reports = [report for result in judged for report in (result.judge, result.pairwise) if report is not None]
    return {
        "judgments": dg.MetadataValue.md("\n".join(lines + [row for result in judged for row in _judgment_rows(result)])),
        "verdict_artifacts": dg.MetadataValue.json({
            r.run_id: {kind: report.verdicts for kind, report in (("judge", r.judge), ("pairwise", r.pairwise)) if report}
            for r in judged}),
        "judge_calls": sum(report.calls.calls for report in reports),
        "judge_cache_hits": sum(report.calls.cache_hits for report in reports),
    }


def _metric_section(platform: EvalPlatform, run: EvalRun, result: MetricTableReport) -> str:
    """One run's metrics overall, its sampled judge estimates, flagged slices and curves."""
    table = result.table
    overall = table[table["slice_column"] == ALL]
    lines = [f"**{run.run_id}** on {run.dataset_key} with {run.suite_key}", "", "| metric | version | value | n |",
             "|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.metric_key} | {r.value:.6g} | {r.n_examples} |" for r in overall.itertuples()]
    for name, e in result.estimates.items():
        lines += ["", f"{name} judged a stratified sample: estimate {number(e.estimate.value)} "
                      f"({e.confidence:.0%} interval [{number(e.estimate.low)}, {number(e.estimate.high)}]), "
                      f"{e.n_sampled} of {e.n_population} examples judged, strata {e.strata or 'none'}, "
                      f"seed {e.seed}, label efficiency {number(e.label_efficiency, '.2f')}"]
    flagged = table[table["flagged"]]
    if len(flagged):
        lines += ["", f"{len(flagged)} slice row(s) below the minimum slice size (flagged)."]
    if result.curves_png:
        lines += ["", png_markdown(platform.store.get_blob(PLOTS, result.curves_png, ".png"), alt=f"ROC and PR curves of {run.run_id}")]
    return "\n".join(lines)


def render_metric_tables(platform: EvalPlatform, runs: list[EvalRun], tables: list[MetricTableReport]) -> Metadata:
    """The overall values are numeric metadata too (``SUITE/METRIC``), so the UI plots them across model versions."""
    sections = [_metric_section(platform, run, result) for run, result in zip(runs, tables, strict=True)]
    headline = {f"{run.suite_id}/{r.metric}": dg.MetadataValue.float(float(r.value))
                for run, result in zip(runs, tables, strict=True)
                for r in result.table[result.table["slice_column"] == ALL].itertuples()
                if r.value is not None and r.value == r.value}  # NaN (undefined) is not plotted
    return {
        **headline,
        "metrics": dg.MetadataValue.md("\n\n".join(sections) or "no eval runs"),
        "metric_tables": dg.MetadataValue.json({r.run_id: r.metrics_hash for r in tables}),
        "metric_computation_seconds": float(sum(r.seconds for r in tables)),
    }


def _comparison_rows(result: Comparison) -> list[str]:
    rows = [] if result.metrics else [f"| {result.run_id} | {result.baseline_state} | | | | | |"]
    for name, c in result.deltas().items():
        rows.append(f"| {result.run_id} | {result.baseline_model} | {name} | {number(c.candidate)} | "
                    f"{number(c.baseline)} | {number(c.delta, '+.4f')} | "
                    f"[{number(c.ci_low, '+.4f')}, {number(c.ci_high, '+.4f')}] |")
    return rows


def _pairwise_notes(result: Comparison) -> list[str]:
    return [f"- {result.run_id} {name}: candidate wins {p.wins}, baseline wins {p.losses}, ties {p.ties}; "
            f"first-position rate {number(p.first_position_rate, '.2f')} (0.5 = no position bias); "
            f"{p.n_order_disagreements} example(s) changed winner with the order; "
            f"{p.n_judge_errors} judge error(s)" for name, p in result.pairwise_tallies().items()]


def render_comparisons(compared: list[Comparison]) -> Metadata:
    lines = ["| run | baseline | metric | candidate | baseline value | delta | 95% interval |", "|---|---|---|---|---|---|---|"]
    lines += [row for result in compared for row in _comparison_rows(result)]
    notes = [note for result in compared for note in _pairwise_notes(result)]
    return {
        "comparison": dg.MetadataValue.md("\n".join(lines + ([""] + notes if notes else []))),
        "baseline_states": dg.MetadataValue.json(plain({r.run_id: r.baseline_state for r in compared})),
    }


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


def _curve_plots(platform: EvalPlatform, runs: list[EvalRun]) -> list[str]:
    return [png_markdown(platform.store.get_blob(PLOTS, run.results["artifacts"]["curves_png"], ".png"),
                         alt=f"ROC and PR curves of {run.run_id}")
            for run in runs if run.results and (run.results.get("artifacts") or {}).get("curves_png")]


def render_gate(platform: EvalPlatform, decision: GateDecision, override: GateOverride | None, runs: list[EvalRun],
                passed: bool) -> Metadata:
    """The gate's decision with one row per rule, the override that let it through, and the runs' curves."""
    reasons = _rules_table(decision.reasons)
    if override is not None:
        reasons += f"\n\n**overridden** by {override.approver} at {override.created_at:%Y-%m-%d %H:%M} UTC: {override.reason}"
    outcomes = [r.get("outcome") for run_reason in decision.reasons for r in run_reason.get("reasons", [])]
    return {
        # numbers, so the UI plots them across model versions
        "passes": dg.MetadataValue.float(1.0 if passed else 0.0),
        "rules_passed": dg.MetadataValue.int(outcomes.count(Verdict.PASS)),
        "rules_not_passed": dg.MetadataValue.int(len(outcomes) - outcomes.count(Verdict.PASS)),
        "reasons": dg.MetadataValue.md(reasons),
        "plots": dg.MetadataValue.md("\n\n".join(_curve_plots(platform, runs)) or "no curves"),
        "reasons_json": dg.MetadataValue.json(plain(decision.reasons)),
    }


def _drift_row(c: ColumnDrift) -> str:
    slice_text = f"{c.slice_column}={c.slice_value}" if c.slice_column else "all"
    ks = f"{number(c.ks_statistic)} (p {c.ks_p_value:.3g})" if c.ks_statistic is not None and c.ks_p_value is not None else "-"
    verdict = "**drifted**: " + "; ".join(c.reasons) if c.drifted else ("; ".join(c.reasons) or "ok")
    return (f"| {c.column} | {c.role} | {c.kind} | {slice_text} | {c.n_previous} -> {c.n_current} | {number(c.psi)} | "
            f"{number(c.js)} | {ks} | {verdict} |")


def _drift_table(report: DatasetDriftReport) -> str:
    """One row per compared column (overall first, then per slice value), drifted rows first within each."""
    if report.previous_key is None:
        return f"{report.current_key} is the first active version of its dataset: nothing to compare with."
    lines = [f"{report.current_key} against {report.previous_key}", "",
             "| column | role | kind | slice | rows | PSI | Jensen-Shannon | KS statistic | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    ordered = sorted(report.columns, key=lambda c: (c.slice_column != "", c.slice_column, c.slice_value, not c.drifted))
    lines += [_drift_row(c) for c in ordered]
    if report.prevalence:
        lines += ["", "| prevalence | previous | current | change |", "|---|---|---|---|"]
        lines += [f"| {f'{p.slice_column}={p.slice_value}' if p.slice_column else 'all'} | {p.previous:.4f} | {p.current:.4f} | "
                  f"{p.delta:+.4f}{' **drifted**' if p.drifted else ''} |" for p in report.prevalence]
    if report.skipped:
        lines += ["", "Not compared: " + "; ".join(report.skipped)]
    return "\n".join(lines)


def drift_summary(report: DatasetDriftReport) -> Metadata:
    """The dataset asset's drift metadata: the version compared with and the largest PSI (numeric, so the UI
    plots it across versions)."""
    worst = report.worst("psi", "")
    out: Metadata = {"drift_previous_version": report.previous_key or "none (first version)",
                     "drift_passed": report.passed}
    if worst is not None and worst.psi is not None:
        out["drift_max_psi"] = dg.MetadataValue.float(float(worst.psi))
        out["drift_max_psi_column"] = worst.column
    return out


def render_dataset_drift(report: DatasetDriftReport) -> Metadata:
    """The drift check's metadata: the verdict, the drifted comparisons, and the table of every column."""
    drifted = [f"{c.where}: {'; '.join(c.reasons)}" for c in report.drifted]
    drifted += [f"prevalence ({p.slice_column}={p.slice_value})" if p.slice_column else "prevalence"
                for p in report.prevalence if p.drifted]
    out: Metadata = {
        "previous_version": report.previous_key or "none",
        "note": ("first version of the dataset: nothing to compare with" if report.previous_key is None
                 else f"{len(drifted)} drifted comparison(s) of {len(report.columns) + len(report.prevalence)}"),
        "drifted": dg.MetadataValue.json(drifted),
        "drift": dg.MetadataValue.md(_drift_table(report)),
        "bounds": dg.MetadataValue.json(report.as_json()["bounds"]),
    }
    for measure in ("psi", "js", "ks_statistic"):
        worst = report.worst(measure)
        if worst is not None:
            out[f"max_{measure}"] = dg.MetadataValue.float(float(getattr(worst, measure)))
            out[f"max_{measure}_where"] = worst.where
    return out
