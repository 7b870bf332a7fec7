"""``evalp runs list``, ``show``, ``lineage`` and ``request``: eval runs, their results and every input of them."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import quote

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit, print_json
from eval_platform.core.keys import cell_name
from eval_platform.core.states import RequestKind


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.core.records import run_to_dict  # keeps evalp --help fast

    rows = [run_to_dict(r) for r in open_platform(args).runs(args.model, args.status)]
    emit(args, rows, ["run_id", "model", "dataset", "suite", "status", "requested_at", "finished_at"], rows=rows)


def cmd_show(args: argparse.Namespace) -> None:
    from eval_platform.core.records import run_to_dict  # keeps evalp --help fast

    platform = open_platform(args)
    record = platform.run(args.run_id)
    run = run_to_dict(record)
    powered = rule_power(platform.gate_decision(record.model_key), record.run_id)
    if powered:
        run["rule_power"] = powered  # only when the gate reported some: the JSON of older runs is unchanged
    if args.json:
        print_json(run)
        return
    print(format_run(run))


def rule_power(decision: Any, run_id: str) -> list[dict]:
    """The power figures the model version's gate recorded for this run's rules: ``{rule, slice?, power}``."""
    out: list[dict] = []
    for run_reason in (decision.reasons if decision is not None else None) or []:
        if not str(run_reason.get("run", "")).startswith(f"{run_id} "):
            continue
        for reason in run_reason.get("reasons", []):
            if reason.get("power"):
                out.append({"rule": reason["rule"], **({"slice": reason["slice"]} if reason.get("slice") else {}),
                            "power": reason["power"]})
    return out


def format_run(run: dict) -> str:
    """A run's results for people: its metrics, then each one's difference from the baseline with its interval."""
    lines = [f"eval run {run['run_id']}: {run['model']} on {run['dataset']} with {run['suite']} -> {run['status']}"]
    if run.get("status_reason"):
        lines.append(f"  reason: {run['status_reason']}")
    metrics = (run.get("results") or {}).get("metrics", {})
    for name, value in metrics.items():
        lines.append(f"  {name:<28} {'undefined' if value is None else value if isinstance(value, str) else f'{value:.4f}'}")
    leakage = (run.get("results") or {}).get("leakage")
    if leakage:
        lines.append(f"  leakage: {leakage.get('message')}")
        if leakage.get("example_ids"):
            lines.append(f"    e.g. example(s) {', '.join(map(str, leakage['example_ids']))}")
    comparison = run.get("comparison") or {}
    if comparison:
        lines.append(f"  baseline: {comparison.get('baseline_model') or 'none'} ({comparison.get('baseline_state')})")
        for name, c in (comparison.get("metrics") or {}).items():
            lines.append(f"    {name:<26} delta {c['delta']:+.4f}  95% CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
    if run.get("rule_power"):
        from eval_platform.cli.gates import format_power  # keeps evalp --help fast

        lines.append("  power of the gate's rules:")
        for entry in run["rule_power"]:
            where = f" [{entry['slice']}]" if entry.get("slice") else ""
            lines.append(f"    {entry['rule']}{where}: {format_power(entry['power'])}")
    return "\n".join(lines)


def cmd_lineage(args: argparse.Namespace) -> None:
    platform = open_platform(args)
    run = platform.run(args.run_id)
    links = dagster_links(platform, run)
    if args.json:
        print_json({"run_id": run.run_id, "status": run.status, "dagster_run_id": run.dagster_run_id,
                    "predictions": run.predictions_hash, "metric_table": run.metrics_hash,
                    "baseline_run_id": run.baseline_run_id, **(run.lineage or {}), "dagster": links})
        return
    _print_dagster_links(run, links)
    if not run.lineage:
        print("  no lineage recorded yet (the run has not produced predictions)")
        return
    _print_lineage(run)


def dagster_links(platform: Any, run: Any) -> dict[str, Any]:
    """Where the run is in the Dagster UI (``EVAL_PLATFORM_DAGSTER_URL``, default ``make dev``'s address): its
    eval cell's partition, the gate's partition, its Dagster run, and the backfill page when a recompute
    request launched it."""
    base = os.environ.get("EVAL_PLATFORM_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")
    cell = cell_name(run.model_key, run.dataset_key)
    links: dict[str, Any] = {
        "eval_cell": cell,
        "cell_url": f"{base}/assets/metric_table?view=partitions&partition={quote(cell, safe='')}",
        "gate_url": f"{base}/assets/gate_decision?view=partitions&partition={quote(run.model_key, safe='')}",
        "run_url": f"{base}/runs/{run.dagster_run_id}" if run.dagster_run_id else None, "recompute_request": None}
    request = _recompute_request(platform, run.launch_key) if run.launch_key else None
    if request is not None:
        links["recompute_request"] = {"id": request.id, "reason": request.reason, "backfills_url": f"{base}/overview/backfills"}
    return links


def _recompute_request(platform: Any, launch_key: str) -> Any:
    """The recompute (backfill) request that launched a run, if one did."""
    from sqlalchemy import select  # keeps evalp --help fast

    from eval_platform.registry import DagsterRequest  # keeps evalp --help fast

    with platform.registry.session() as session:
        return session.scalar(select(DagsterRequest).where(DagsterRequest.kind == RequestKind.BACKFILL,
                                                           DagsterRequest.launch_key == launch_key))


def _print_dagster_links(run: Any, links: dict[str, Any]) -> None:
    print(f"eval run {run.run_id} ({run.status}), Dagster run {run.dagster_run_id or '-'}")
    print(f"  eval cell  {links['eval_cell']}  {links['cell_url']}")
    print(f"  gate       {links['gate_url']}")
    if links["run_url"]:
        print(f"  Dagster    {links['run_url']}")
    if links["recompute_request"]:
        print(f"  recompute  request {links['recompute_request']['id']} ({links['recompute_request']['reason']}): "
              f"its backfill at {links['recompute_request']['backfills_url']}")


def _print_lineage(run: Any) -> None:
    lineage = run.lineage
    d, m, s = lineage["dataset"], lineage["model"], lineage["suite"]
    print(f"  dataset    {d['id']}@{d['version']}  {d['content_hash']}  labels: {d['label_policy']}  rows: {d['rows']}")
    print(f"  model      {m['name']}@{m['version']}  {m['kind']}  {m['file_hash']}")
    print(f"  suite      {s['id']}@{s['version']}  {s['purpose']}  {s['definition_hash']}")
    print("  metrics    " + ", ".join(f"{k}={v}" for k, v in lineage["metrics"].items()))
    print(f"  prompt     {lineage.get('prompt_version') or '-'}   judge: {lineage.get('judge') or '-'}")
    print(f"  code       platform {lineage['code']['platform']}, predictions v{lineage['code']['predictions']}, gate v{lineage['code']['gate']}")
    print(f"  artifacts  predictions {run.predictions_hash or '-'}, metric table {run.metrics_hash or '-'}")
    print(f"  baseline   {run.baseline_run_id or '-'}")


def cmd_request(args: argparse.Namespace) -> None:
    from eval_platform.core.records import run_to_dict  # keeps evalp --help fast

    run = open_platform(args).request_eval(args.model, args.dataset, args.suite, baseline=args.baseline,
                                           trigger="cli", recompute=args.recompute)
    emit(args, run_to_dict(run), columns=["run_id", "model", "dataset", "suite", "status"])


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("runs", help="eval runs")
    sub = groups.add_to_group("runs", "list")
    sub.add_argument("--model", help="NAME@VERSION")
    sub.add_argument("--status", action="append")
    sub.set_defaults(func=cmd_list)
    sub = groups.add_to_group("runs", "show")
    sub.add_argument("run_id")
    sub.set_defaults(func=cmd_show)
    sub = groups.add_to_group("runs", "lineage", help="every input of a run's results")
    sub.add_argument("run_id")
    sub.set_defaults(func=cmd_lineage)
    sub = groups.add_to_group("runs", "request", help="queue an eval run")
    sub.add_argument("--model", required=True, help="NAME@VERSION")
    sub.add_argument("--dataset", required=True, help="DATASET_ID or DATASET_ID@VERSION")
    sub.add_argument("--suite", required=True, help="SUITE_ID or SUITE_ID@VERSION")
    sub.add_argument("--baseline", help="NAME@VERSION to compare against")
    sub.add_argument("--recompute", action="store_true", help="run again even if already evaluated")
    sub.set_defaults(func=cmd_request)
