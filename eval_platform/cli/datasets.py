"""``evalp datasets register`` and ``list``: eval datasets, validated and versioned by content.

(``datasets invalidate`` is an incident: :mod:`eval_platform.cli.incidents`.)
"""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform, read_table
from eval_platform.cli.output import emit


def cmd_register(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    frame = read_table(args.file)
    access = {"level": args.access, "teams": args.team or []}
    result = open_platform(args).register_dataset(
        args.dataset_id, frame, task_type=args.task_type, label_policy=args.label_policy, access_policy=access,
        slice_columns=args.slice or (), feature_columns=args.feature or None, description=args.description, role=args.role)
    record = to_dict(result.record) | {"created": result.created}
    emit(args, record, columns=["key", "task_type", "role", "row_count", "content_hash", "created"])


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    rows = [to_dict(r) for r in open_platform(args).datasets()]
    emit(args, rows, ["key", "task_type", "label_policy", "role", "row_count", "status", "content_hash"], rows=rows)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("datasets", help="eval datasets")
    sub = groups.add_to_group("datasets", "register", help="validate and register a dataset version")
    sub.add_argument("dataset_id")
    sub.add_argument("--file", required=True, help="Parquet, CSV, TSV or JSONL")
    sub.add_argument("--task-type", required=True)
    sub.add_argument("--label-policy", required=True, help="human_reviewed, synthetic, implicit or mixed")
    sub.add_argument("--access", default="internal", help="public, internal or restricted")
    sub.add_argument("--team", action="append", help="team allowed to read a restricted dataset (repeatable)")
    sub.add_argument("--slice", action="append", help="column to slice metrics by (repeatable)")
    sub.add_argument("--feature", action="append", help="feature column (repeatable; default: every other numeric column)")
    sub.add_argument("--description", default="")
    sub.add_argument("--role", default="standard",
                     help="standard, golden or canary (golden and canary versions are re-evaluated on the promoted models by the canary schedule)")
    sub.set_defaults(func=cmd_register)
    groups.add_to_group("datasets", "list").set_defaults(func=cmd_list)
