"""``evalp suites register`` and ``list``: metric suites (metrics, slices and gate rules) from YAML or JSON."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform, read_document
from eval_platform.cli.output import emit


def cmd_register(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    document = read_document(args.file)  # a bad file is refused before the registry is even opened
    result = open_platform(args).register_suite(document)
    record = to_dict(result.record) | {"created": result.created}
    emit(args, record, columns=["key", "purpose", "task_type", "definition_hash", "created"])


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    rows = [to_dict(r) for r in open_platform(args).suites()]
    emit(args, rows, ["key", "purpose", "task_type", "definition_hash"], rows=rows)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("suites", help="metric suites")
    sub = groups.add_to_group("suites", "register", help="register a suite from YAML or JSON")
    sub.add_argument("file")
    sub.set_defaults(func=cmd_register)
    groups.add_to_group("suites", "list").set_defaults(func=cmd_list)
