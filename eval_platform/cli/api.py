"""``evalp serve``, ``evalp tokens``, ``evalp owners``, ``evalp status`` and ``evalp retention``: the commands of
the HTTP API, access control, observability and retention.

``eval_platform.cli.main.build_parser`` adds them with ``add_commands(groups, common)``; :func:`main` runs them
on their own (``python -m eval_platform.cli.api``). Errors of the platform exit with status 2 like the
rest of ``evalp``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _platform(args):
    from eval_platform.platform.service import EvalPlatform

    return EvalPlatform.open(getattr(args, "home", None))


def _print_json(payload) -> None:
    from eval_platform.core.records import json_safe

    print(json.dumps(json_safe(payload), indent=2, default=str))


def cmd_serve(args) -> None:
    import uvicorn

    from eval_platform.api import create_app
    from eval_platform.governance.observability import configure_logging, logging_config

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"evalp serve: listening on {args.host}: every route but /healthz needs a team token; put TLS in front of it",
              file=sys.stderr)
    if args.workers > 1:  # worker processes build the app themselves, from the same installation
        if getattr(args, "home", None):
            os.environ["EVAL_PLATFORM_HOME"] = str(Path(args.home).expanduser().resolve())
        uvicorn.run("eval_platform.api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_config=logging_config(args.log_level.upper()), access_log=False)
        return
    configure_logging(args.log_level.upper())
    app = create_app(home=getattr(args, "home", None))
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


def cmd_tokens_create(args) -> None:
    from eval_platform.registry.access import MEMBER, create_token

    roles = args.role or [MEMBER]
    principal = args.principal or args.team
    token = create_token(_platform(args), args.team, name=args.name, principal=principal, kind=args.kind, roles=roles,
                         expires_in=args.expires_in)
    if getattr(args, "json", False):
        _print_json({"team": args.team, "principal": principal, "kind": args.kind, "roles": sorted(set(roles)),
                     "expiresIn": args.expires_in, "name": args.name, "token": token})
        return
    print(token)
    expiry = f", expires in {args.expires_in}" if args.expires_in else ""
    print(f"(token of {args.kind} {principal!r} of team {args.team!r}, roles {', '.join(sorted(set(roles)))}{expiry}: shown once, "
          "only its hash is stored; send it as 'Authorization: Bearer <token>')", file=sys.stderr)


def cmd_tokens_list(args) -> None:
    from eval_platform.registry.access import list_tokens

    rows = [{"id": t.id, "team": t.team, "principal": t.principal, "kind": t.principal_kind, "roles": list(t.roles or []),
             "name": t.name, "prefix": t.prefix + "...", "created_at": t.created_at.isoformat(),
             "expires_at": t.expires_at.isoformat() if t.expires_at else None,
             "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None} for t in list_tokens(_platform(args), args.team)]
    if getattr(args, "json", False):
        _print_json(rows)
        return
    if not rows:
        print("(none)")
    for row in rows:
        state = ("revoked " + row["revoked_at"] if row["revoked_at"] else
                 "expires " + row["expires_at"] if row["expires_at"] else "active")
        print(f"{row['id']:>4}  {row['team']:<16} {row['principal']:<16} {','.join(row['roles']):<22} {row['prefix']:<16} "
              f"{row['name']:<20} {state}")


def cmd_tokens_revoke(args) -> None:
    from eval_platform.registry.access import revoke_token

    record = revoke_token(_platform(args), args.token_id)
    if getattr(args, "json", False):
        _print_json({"id": record.id, "team": record.team, "revoked_at": record.revoked_at})
    else:
        print(f"token {record.id} of team {record.team} revoked")


def cmd_owners_set(args) -> None:
    """Hand an unowned name (registered before ownership, or by the command line) to a team."""
    from eval_platform.registry.access import set_owner

    set_owner(_platform(args), args.kind, args.name, args.team)
    print(f"{args.kind} {args.name} now belongs to team {args.team}")


def cmd_status(args) -> None:
    from eval_platform.governance.observability import collect, status_text

    platform = _platform(args)
    try:
        figures = collect(platform, window_days=args.window_days)
    finally:
        platform.close()
    if getattr(args, "json", False):
        _print_json(figures)
    else:
        print(status_text(figures))


def cmd_retention_purge(args) -> None:
    from eval_platform.governance.retention import purge_expired

    report = purge_expired(_platform(args), dry_run=args.dry_run)
    if getattr(args, "json", False):
        _print_json(report.as_dict())
        return
    verb = "would purge" if report.dry_run else "purged"
    print(f"{verb} {len(report.purged)} prediction artifact(s) of {len(report.runs_marked)} run(s); "
          f"{report.cache_rows_deleted} cache row(s); kept {report.kept}; deferred {len(report.deferred)} (runs in progress)")
    for artifact in report.purged:
        print(f"  {artifact.artifact_hash[:19]}  {artifact.classification:<10} {artifact.retention_days}d  produced {artifact.produced_at}"
              f"  runs: {', '.join(artifact.run_ids) or '-'}")


def add_commands(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``serve``, ``tokens``, ``status`` and ``retention`` to ``evalp``'s command groups."""
    sub = subparsers.add_parser("serve", parents=[common], help="run the HTTP API (uvicorn)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub.add_argument("--workers", type=int, default=1, help="worker processes (default 1; one per core under load)")
    sub.set_defaults(func=cmd_serve)

    tokens = subparsers.add_parser("tokens", help="API tokens of teams").add_subparsers(dest="command", required=True)
    sub = tokens.add_parser("create", parents=[common], help="create a token of a team's principal (printed once)")
    sub.add_argument("--team", required=True)
    sub.add_argument("--principal", help="the person or service the token stands for (default: the team itself)")
    sub.add_argument("--kind", choices=["person", "service"], default="service")
    sub.add_argument("--role", action="append", choices=["member", "approver", "admin"],
                     help="repeat for several (default: member); admin is platform-wide")
    sub.add_argument("--expires-in", help="refused after this long: 90m, 12h, 30d, 2w (default: never)")
    sub.add_argument("--name", default="", help="what the token is for (for example the CI pipeline)")
    sub.set_defaults(func=cmd_tokens_create)
    sub = tokens.add_parser("list", parents=[common])
    sub.add_argument("--team")
    sub.set_defaults(func=cmd_tokens_list)
    sub = tokens.add_parser("revoke", parents=[common])
    sub.add_argument("token_id", type=int)
    sub.set_defaults(func=cmd_tokens_revoke)

    owners = subparsers.add_parser("owners", help="owner teams of names").add_subparsers(dest="command", required=True)
    sub = owners.add_parser("set", parents=[common], help="give an unowned dataset id, suite id, model name or experiment id to a team")
    sub.add_argument("kind", choices=["dataset", "suite", "model", "experiment"])
    sub.add_argument("name")
    sub.add_argument("--team", required=True)
    sub.set_defaults(func=cmd_owners_set)

    sub = subparsers.add_parser("status", parents=[common], help="the platform's figures: queue time, failure rate, overrides...")
    sub.add_argument("--window-days", type=float, default=7.0)
    sub.set_defaults(func=cmd_status)

    retention = subparsers.add_parser("retention", help="model-output retention").add_subparsers(dest="command", required=True)
    sub = retention.add_parser("purge", parents=[common], help="delete predictions past their dataset's retention")
    sub.add_argument("--dry-run", action="store_true", help="report what would be purged, delete nothing")
    sub.set_defaults(func=cmd_retention_purge)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m eval_platform.cli.api ...``: the same as ``evalp ...`` (these commands are part of it)."""
    from eval_platform.cli.main import main as evalp

    return evalp(argv)


if __name__ == "__main__":
    sys.exit(main())
