"""Stored analyses and online gates as text (CLI, demo, logs) and Markdown (the Dagster UI)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from eval_platform.online.analysis import ExperimentAnalysis, format_analysis


def _is_shadow(result: Mapping[str, Any]) -> bool:
    return "primary" not in result


def _num(value) -> str:
    return "n/a" if not isinstance(value, int | float) or not math.isfinite(value) else f"{value:.4g}"


def _pct(value) -> str:
    return "n/a" if not isinstance(value, int | float) or not math.isfinite(value) else f"{value * 100:+.2f}%"


def format_stored_analysis(result: Mapping[str, Any]) -> str:
    """The text report of a recorded analysis (its JSON form, as kept in the registry)."""
    if _is_shadow(result):
        lines = [f"shadow comparison ({result['kind']}): {result['n_common']} requests logged by both sides, "
                 f"coverage {_num(result['coverage'])} ({result['only_production']} only in production, "
                 f"{result['only_candidate']} only in the candidate)"]
        lines += [f"  {name}: {_num(value)}" for name, value in result["metrics"].items()]
        if not result.get("trustworthy"):
            lines.append("  UNTRUSTWORTHY: " + "; ".join(result.get("untrustworthy_reasons") or []))
        return "\n".join(lines)
    return format_analysis(ExperimentAnalysis(**{k: result[k] for k in ExperimentAnalysis.__dataclass_fields__}))


def analysis_markdown(result: Mapping[str, Any]) -> str:
    """The report plus, for A/B tests, the cumulative daily view of the primary metric."""
    text = f"```\n{format_stored_analysis(result)}\n```"
    if _is_shadow(result):
        return text
    primary = result["config"]["primary_metric"]["metric"]
    rows = [d for d in result.get("daily") or [] if d["metric"] == primary]
    if not rows:
        return text
    table = ["| day | date | arm | n control | n treatment | lift | lift interval | p | always-valid p |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {d['day']} | {d['date']} | {d['arm']} | {d['n_control']} | {d['n_treatment']} | {_pct(d['lift'])} | "
              f"[{_pct(d['lift_ci_low'])}, {_pct(d['lift_ci_high'])}] | {_num(d['p_value'])} | {_num(d['always_valid_p_value'])} |"
              for d in rows]
    return f"{text}\n\nCumulative daily looks at {primary}:\n\n" + "\n".join(table)


def format_online_gate(model_key: str, decision: str, reasons: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"online gate of {model_key}: {decision}"]
    for reason in reasons:
        where = f" [{reason['experiment']}]" if reason.get("experiment") else ""
        lines.append(f"  {reason['outcome']:<12} {reason['rule']}{where}: {reason['message']}")
    return "\n".join(lines)


def online_gate_markdown(reasons: Sequence[Mapping[str, Any]], override=None) -> str:
    lines = [f"- {r['outcome']}: {r['rule']}{' (' + r['experiment'] + ')' if r.get('experiment') else ''}: {r['message']}"
             for r in reasons]
    if override is not None:
        lines.append(f"\n**overridden** by {override.approver}: {override.reason}")
    return "\n".join(lines)
