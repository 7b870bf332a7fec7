"""``evalp metrics list``: the metric catalog, each metric version flagged when it is marked buggy.

(``metrics mark-buggy`` is an incident: :mod:`eval_platform.cli.incidents`.)
"""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.metrics.catalog import all_metrics  # keeps evalp --help fast

    buggy = open_platform(args).buggy_metrics()
    rows = [{"metric": m.key, "direction": m.direction, "task_types": ",".join(sorted(m.task_types)),
             "params": ",".join(m.params), "buggy": m.key in buggy, "description": m.description} for m in all_metrics()]
    emit(args, rows, ["metric", "direction", "task_types", "params", "buggy", "description"], rows=rows)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("metrics", help="the metric catalog")
    groups.add_to_group("metrics", "list").set_defaults(func=cmd_list)
