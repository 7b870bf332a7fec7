"""How ``evalp``'s command modules add their commands to the parser, and the defaults they share.

A command group (``evalp datasets ...``) may gather commands of several modules (``datasets invalidate`` is the
incidents module's), so groups are created once and looked up by name; the order in which ``main`` calls the
modules is the order of ``evalp --help``.
"""

from __future__ import annotations

import argparse
import getpass
from typing import TypeAlias

#: What ``add_subparsers`` returns (argparse does not name the class publicly).
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandGroups:
    """``evalp``'s top-level commands and command groups, which every command module adds to."""

    def __init__(self, subparsers: SubParsers, common: argparse.ArgumentParser):
        self._subparsers = subparsers
        self._common = common  # --home and --json, accepted by every command
        self._groups: dict[str, SubParsers] = {}

    def add_command(self, name: str, help: str) -> argparse.ArgumentParser:
        """A top-level command: ``evalp NAME``."""
        return self._subparsers.add_parser(name, parents=[self._common], help=help)

    def add_group(self, name: str, help: str, dest: str = "command") -> SubParsers:
        """A new command group ``evalp NAME COMMAND``; ``dest`` is the attribute its command's name lands in."""
        self._groups[name] = self._subparsers.add_parser(name, help=help).add_subparsers(dest=dest, required=True)
        return self._groups[name]

    def add_to_group(self, group: str, name: str, help: str | None = None) -> argparse.ArgumentParser:
        """``evalp GROUP NAME``, in a group added before (by this module or another). Without ``help`` the command
        is named in the group's usage line only, not listed with a description."""
        if help is None:
            return self._groups[group].add_parser(name, parents=[self._common])
        return self._groups[group].add_parser(name, parents=[self._common], help=help)


def current_user() -> str:
    """The login name, the default of every ``--by`` (empty when the system knows none, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
