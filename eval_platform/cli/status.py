"""``evalp status``: the platform's figures over a window (queue time, failure rate, overrides, stale baselines...)."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json


def cmd_status(args: argparse.Namespace) -> None:
    from eval_platform.governance.observability import collect, status_text  # keeps evalp --help fast

    platform = open_platform(args)
    try:
        figures = collect(platform, window_days=args.window_days)
    finally:
        platform.close()
    if args.json:
        print_json(figures)
    else:
        print(status_text(figures))


def add_commands(groups: CommandGroups) -> None:
    sub = groups.add_command("status", help="the platform's figures: queue time, failure rate, overrides...")
    sub.add_argument("--window-days", type=float, default=7.0)
    sub.set_defaults(func=cmd_status)
