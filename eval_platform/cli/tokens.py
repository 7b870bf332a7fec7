"""``evalp tokens create``, ``list`` and ``revoke``, ``evalp owners set``: access control of the HTTP API.

A token stands for a person or a service of a team, with roles; only its hash is stored. Owner teams of
names decide who may register new versions of a dataset, suite, model or experiment.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json


def cmd_create(args: argparse.Namespace) -> None:
    from eval_platform.registry.access import MEMBER, create_token  # keeps evalp --help fast

    roles = args.role or [MEMBER]
    principal = args.principal or args.team
    token = create_token(open_platform(args), args.team, name=args.name, principal=principal, kind=args.kind, roles=roles,
                         expires_in=args.expires_in)
    if args.json:
        print_json({"team": args.team, "principal": principal, "kind": args.kind, "roles": sorted(set(roles)),
                    "expiresIn": args.expires_in, "name": args.name, "token": token})
        return
    print(token)
    expiry = f", expires in {args.expires_in}" if args.expires_in else ""
    print(f"(token of {args.kind} {principal!r} of team {args.team!r}, roles {', '.join(sorted(set(roles)))}{expiry}: shown once, "
          "only its hash is stored; send it as 'Authorization: Bearer <token>')", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.registry.access import list_tokens  # keeps evalp --help fast

    tokens = list_tokens(open_platform(args), args.team)
    if args.json:
        print_json([_token_row(token) for token in tokens])
        return
    if not tokens:
        print("(none)")
    for token in tokens:
        print(_token_line(token))


def _token_row(token: Any) -> dict[str, Any]:
    return {"id": token.id, "team": token.team, "principal": token.principal, "kind": token.principal_kind,
            "roles": list(token.roles or []), "name": token.name, "prefix": token.prefix + "...",
            "created_at": token.created_at.isoformat(), "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None}


def _token_line(token: Any) -> str:
    """A token for people: id, team, principal, roles, prefix, name and whether it is revoked, expiring or active."""
    if token.revoked_at:
        state = "revoked " + token.revoked_at.isoformat()
    elif token.expires_at:
        state = "expires " + token.expires_at.isoformat()
    else:
        state = "active"
    roles = ",".join(token.roles or [])
    return (f"{token.id:>4}  {token.team:<16} {token.principal:<16} {roles:<22} {token.prefix + '...':<16} "
            f"{token.name:<20} {state}")


def cmd_revoke(args: argparse.Namespace) -> None:
    from eval_platform.registry.access import revoke_token  # keeps evalp --help fast

    record = revoke_token(open_platform(args), args.token_id)
    if args.json:
        print_json({"id": record.id, "team": record.team, "revoked_at": record.revoked_at})
    else:
        print(f"token {record.id} of team {record.team} revoked")


def cmd_set_owner(args: argparse.Namespace) -> None:
    """Hand an unowned name (registered before ownership, or by the command line) to a team."""
    from eval_platform.registry.access import set_owner  # keeps evalp --help fast

    set_owner(open_platform(args), args.kind, args.name, args.team)
    print(f"{args.kind} {args.name} now belongs to team {args.team}")


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("tokens", help="API tokens of teams")
    sub = groups.add_to_group("tokens", "create", help="create a token of a team's principal (printed once)")
    sub.add_argument("--team", required=True)
    sub.add_argument("--principal", help="the person or service the token stands for (default: the team itself)")
    sub.add_argument("--kind", choices=["person", "service"], default="service")
    sub.add_argument("--role", action="append", choices=["member", "approver", "admin", "reviewer"],
                     help="repeat for several (default: member); admin is platform-wide")
    sub.add_argument("--expires-in", help="refused after this long: 90m, 12h, 30d, 2w (default: never)")
    sub.add_argument("--name", default="", help="what the token is for (for example the CI pipeline)")
    sub.set_defaults(func=cmd_create)
    sub = groups.add_to_group("tokens", "list")
    sub.add_argument("--team")
    sub.set_defaults(func=cmd_list)
    sub = groups.add_to_group("tokens", "revoke")
    sub.add_argument("token_id", type=int)
    sub.set_defaults(func=cmd_revoke)

    groups.add_group("owners", help="owner teams of names")
    sub = groups.add_to_group("owners", "set", help="give an unowned dataset id, suite id, model name or experiment id to a team")
    sub.add_argument("kind", choices=["dataset", "suite", "model", "experiment"])
    sub.add_argument("name")
    sub.add_argument("--team", required=True)
    sub.set_defaults(func=cmd_set_owner)
