"""``evalp``: the platform's command line. Every command has ``--json`` for machines.

It talks to the registry and the artifact store only; evaluations it asks for are queued and started
by the Dagster sensor, so the command returns at once whatever the orchestrator is doing.

This module builds the parser from the command modules (one per command group) and runs the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eval_platform.cli import (
    datasets,
    experiments,
    gates,
    incidents,
    installation,
    judges,
    metrics,
    models,
    releases,
    retention,
    review,
    runs,
    sample,
    score,
    server,
    status,
    suites,
    tokens,
)
from eval_platform.cli.arguments import CommandGroups
from eval_platform.core.config import PlatformConfig
from eval_platform.core.errors import EvalPlatformError
from eval_platform.core.failures import database_unreachable, describe_failure, redact_url

#: The command modules in the order of ``evalp --help``. A module may add commands to a group an earlier one
#: created (gates adds ``models promote``; incidents ``datasets invalidate`` and ``metrics mark-buggy``).
COMMAND_MODULES = (installation, datasets, suites, models, runs, score, gates, metrics, incidents, server, tokens, status,
                   retention, experiments, sample, releases, judges, review)

#: Exit status when the registry database cannot be reached (sysexits' EX_TEMPFAIL: try again later).
EXIT_UNAVAILABLE = 75


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command is not reset by the command's own default
    common.add_argument("--home", default=argparse.SUPPRESS,
                        help="installation home (default: $EVAL_PLATFORM_HOME or ./.eval_platform)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for machines")

    parser = argparse.ArgumentParser(prog="evalp", description=__doc__.splitlines()[0], parents=[common])
    groups = CommandGroups(parser.add_subparsers(dest="group", required=True), common)
    for module in COMMAND_MODULES:
        module.add_commands(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # as parse_args does, but by the command's parser when it has its own usage exit (gate wait: 4)
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    try:
        status = args.func(args)  # a command with an exit contract of its own (gate wait) returns its status
    except EvalPlatformError as error:
        print(f"evalp: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not database_unreachable(error):
            raise  # a bug: its traceback is what a report needs
        print(_unreachable_line(args, error), file=sys.stderr)
        return EXIT_UNAVAILABLE
    return status if isinstance(status, int) else 0


def _unreachable_line(args: argparse.Namespace, error: BaseException) -> str:
    """One line for an outage: which database (password masked), why, and what to do."""
    try:
        where = f" at {redact_url(PlatformConfig.resolve(args.home).db_url)}"
    except Exception:  # the configuration itself is broken: say what we know
        where = ""
    why = describe_failure(error).split(": the database is unreachable: ", 1)[-1]
    return f"evalp: the registry database{where} is unreachable: {why}; retry when it is up"


if __name__ == "__main__":
    sys.exit(main())
