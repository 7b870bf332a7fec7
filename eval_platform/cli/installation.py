"""``evalp init``: create an installation (registry, artifact store) or migrate its registry to this version."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit


def cmd_init(args: argparse.Namespace) -> None:
    platform = open_platform(args)
    emit(args, {"home": str(platform.config.home), "registry": platform.config.db_url.split("@")[-1],
                "store": platform.config.store_url, "schema_revision": platform.registry.schema_revision()},
         columns=["home", "registry", "store", "schema_revision"])


def add_commands(groups: CommandGroups) -> None:
    groups.add_command("init", help="create or migrate an installation").set_defaults(func=cmd_init)
