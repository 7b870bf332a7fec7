"""``evalp metrics mark-buggy``, ``evalp datasets invalidate`` and ``evalp recompute``: incidents and their repair.

Marking a metric version buggy freezes the gates that used it; invalidating a dataset version makes its runs
invalid; ``recompute`` queues the runs either touched and asks Dagster for a backfill of their eval cells.
"""

from __future__ import annotations

import argparse
from typing import Any

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json, print_table

#: The columns of the affected runs' table.
RUN_COLUMNS = ["run_id", "model", "dataset", "suite", "status"]


def cmd_mark_buggy(args: argparse.Namespace) -> None:
    from eval_platform.governance.incidents import mark_metric_buggy  # keeps evalp --help fast

    impact = mark_metric_buggy(open_platform(args), args.metric, reason=args.reason, reported_by=args.by)
    _report_impact(args, impact, f"metric {impact.incident.target} marked buggy: gates that used it are frozen")


def cmd_invalidate(args: argparse.Namespace) -> None:
    from eval_platform.governance.incidents import invalidate_dataset  # keeps evalp --help fast

    impact = invalidate_dataset(open_platform(args), args.dataset, reason=args.reason, reported_by=args.by)
    _report_impact(args, impact, f"dataset {impact.incident.target} marked contaminated and deprecated; its runs are invalid")


def _report_impact(args: argparse.Namespace, impact: Any, what: str) -> None:
    """The incident and the runs it affected: JSON, or ``what`` happened, the count of runs and models, and the runs."""
    from eval_platform.core.records import run_to_dict, to_dict  # keeps evalp --help fast

    runs = [run_to_dict(r) for r in impact.runs]
    if args.json:
        licenses = [lic.to_dict() for lic in getattr(impact, "licenses", ())]
        print_json(to_dict(impact.incident) | {"runs": runs} | ({"invalidated_licenses": licenses} if licenses else {}))
        return
    print(f"{what}; affected runs: {len(impact.runs)}, model versions: {', '.join(impact.models) or 'none'}")
    print_table(runs, RUN_COLUMNS)
    for lic in getattr(impact, "licenses", ()):
        print(f"judge license {lic.id} of {lic.judge_key} on {lic.calibration_key} invalidated: the judge needs a new check")


def cmd_recompute(args: argparse.Namespace) -> None:
    from eval_platform.core.records import run_to_dict, to_dict  # keeps evalp --help fast
    from eval_platform.governance.incidents import recompute_within_budget  # keeps evalp --help fast
    from eval_platform.governance.recompute_cost import estimate_for

    platform = open_platform(args)
    if args.dry_run:
        _print_estimate(args, estimate_for(platform, args.affected_by))
        return
    queued, request, estimate = recompute_within_budget(platform, args.affected_by, requested_by=args.by, reason=args.reason,
                                                        confirm_over_budget=args.confirm_over_budget)
    runs = [run_to_dict(r) for r in queued]
    if args.json:
        print_json({"queued_runs": runs, "backfill_request": to_dict(request) if request else None,
                    "estimate": estimate.to_dict()})
        return
    if request is None:
        print("nothing to recompute")
        return
    print(f"queued {len(queued)} run(s); the recompute sensor launches a Dagster backfill of the eval cells "
          f"(dataset|model) {', '.join(request.partitions)}")
    print_table(runs, RUN_COLUMNS)


#: The columns of a dry run's table.
ESTIMATE_COLUMNS = ["run_id", "model", "dataset", "suite", "calls", "cache_hits", "misses", "estimated_cost"]


def _print_estimate(args: argparse.Namespace, estimate) -> None:
    """The dry run: one row per run the recompute would queue, the totals, the calls per model, the budgets."""
    if args.json:
        print_json(estimate.to_dict())
        return
    data = estimate.to_dict()
    totals = data["totals"]
    print_table(data["runs"] + [{"run_id": "TOTAL", "model": "", "dataset": "", "suite": "", **totals}], ESTIMATE_COLUMNS)
    print_table(data["by_model"], ["phase", "endpoint", "model", "calls", "cache_hits", "misses", "cost"])
    if totals["unknown_answers"]:
        print(f"{totals['unknown_answers']} judge call(s) judge answers not cached yet: counted as misses at the "
              f"answers' max_tokens (an upper bound)")
    for run in data["runs"]:
        if run["error"]:
            print(f"run {run['run_id']} could not be estimated: {run['error']}")
    for breach in estimate.over_budget:
        print(f"OVER BUDGET {breach.describe()}: the recompute needs --confirm-over-budget")
    print("dry run: nothing was queued")


def add_commands(groups: CommandGroups) -> None:
    sub = groups.add_to_group("datasets", "invalidate", help="mark a dataset version contaminated")
    sub.add_argument("dataset", help="DATASET_ID@VERSION")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--by", default=current_user(), help="who reports it (default: $USER)")
    sub.set_defaults(func=cmd_invalidate)

    sub = groups.add_to_group("metrics", "mark-buggy", help="freeze every gate that used a metric version")
    sub.add_argument("metric", help="NAME@VERSION")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--by", default=current_user(), help="who reports it (default: $USER)")
    sub.set_defaults(func=cmd_mark_buggy)

    sub = groups.add_command("recompute", help="recompute the runs a buggy metric or contaminated dataset touched")
    sub.add_argument("--affected-by", required=True, help="NAME@VERSION of a buggy metric, or DATASET_ID@VERSION")
    sub.add_argument("--reason", default="")
    sub.add_argument("--by", default=current_user(), help="who asks (default: $USER)")
    sub.add_argument("--dry-run", action="store_true",
                     help="list the runs and estimate their LLM calls and cost (cache misses x prices); change nothing")
    sub.add_argument("--confirm-over-budget", action="store_true",
                     help="an admin's confirmation of a recompute over the suites' or the installation's budget")
    sub.set_defaults(func=cmd_recompute)
