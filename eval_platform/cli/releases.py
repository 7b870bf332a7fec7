"""``evalp releases``: the release ledger of a model name: what served when, on what evidence; governed
rollbacks and demotions; the chain's verification; and a self-contained evidence bundle for auditors."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json, print_table
from eval_platform.core.errors import Conflict

_ENTRY_COLUMNS = ["sequence", "kind", "model_version", "actor", "reason", "recorded_at", "entry_hash"]


def _entry(entry) -> dict:
    from eval_platform.core.records import iso  # keeps evalp --help fast

    return {"sequence": entry.sequence, "kind": entry.kind, "model_version": entry.model_version, "actor": entry.actor,
            "reason": entry.reason, "recorded_at": iso(entry.recorded_at), "evidence": entry.evidence,
            "previous_hash": entry.previous_hash, "entry_hash": entry.entry_hash}


def cmd_at(args: argparse.Namespace) -> None:
    from eval_platform.core.records import iso  # keeps evalp --help fast
    from eval_platform.gates.ledger import serving_at  # keeps evalp --help fast

    serving = serving_at(open_platform(args), args.name, args.time)
    payload = {"model_name": serving.model_name, "time": iso(serving.time), "serving": serving.model_key,
               "entry": _entry(serving.entry) if serving.entry else None, "supporting": [_entry(e) for e in serving.supporting]}
    if args.json:
        print_json(payload)
        return
    print(f"serving {serving.model_name} at {payload['time']}: {serving.model_key or 'nothing'}")
    rows = [_entry(e) for e in ((serving.entry,) if serving.entry else ()) + serving.supporting]
    if rows:
        print_table(rows, _ENTRY_COLUMNS)


def cmd_history(args: argparse.Namespace) -> None:
    from eval_platform.gates.ledger import history  # keeps evalp --help fast

    rows = [_entry(e) for e in history(open_platform(args), args.name)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, _ENTRY_COLUMNS)


def cmd_verify(args: argparse.Namespace) -> None:
    from eval_platform.gates.ledger import verify_chain  # keeps evalp --help fast

    check = verify_chain(open_platform(args), args.name)
    if args.json:
        print_json({"model_name": check.model_name, "ok": check.ok, "entries": check.entries, "head_hash": check.head,
                    "broken_at": check.broken_at, "problem": check.problem})
    elif check.ok:
        print(f"ledger of {check.model_name}: {check.entries} entries, chain intact, head {check.head}")
    if not check.ok:
        raise Conflict(f"ledger of {check.model_name} is broken at entry {check.broken_at}: {check.problem}")


def cmd_rollback(args: argparse.Namespace) -> None:
    from eval_platform.gates.ledger import rollback  # keeps evalp --help fast

    entry = rollback(open_platform(args), args.name, args.to, by=args.by, reason=args.reason)
    _emit_entry(args, entry, f"{args.name}@{entry.model_version} is serving again")


def cmd_demote(args: argparse.Namespace) -> None:
    from eval_platform.gates.ledger import demote  # keeps evalp --help fast

    entry = demote(open_platform(args), args.name, by=args.by, reason=args.reason)
    _emit_entry(args, entry, f"nothing of {args.name} is serving (was version {entry.evidence.get('demoted_version')})")


def _emit_entry(args: argparse.Namespace, entry, message: str) -> None:
    if args.json:
        print_json(_entry(entry))
    else:
        print(message)
        print_table([_entry(entry)], _ENTRY_COLUMNS)


def cmd_export(args: argparse.Namespace) -> None:
    from eval_platform.gates.evidence_bundle import export_bundle  # keeps evalp --help fast

    bundle = export_bundle(open_platform(args), args.model, args.out)
    if args.json:
        print_json({"html": str(bundle.html_path), "json": str(bundle.json_path)})
    else:
        print(f"wrote {bundle.html_path} and {bundle.json_path}")


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive version number, got {text!r}")
    return int(text)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("releases", help="the release ledger: what served when, rollbacks, demotions, evidence bundles")
    sub = groups.add_to_group("releases", "at", help="the version serving at a time and the evidence it served on")
    sub.add_argument("name", help="model name")
    sub.add_argument("--time", required=True, help="ISO 8601 time (naive: UTC), e.g. 2026-12-06T23:50:00Z")
    sub.set_defaults(func=cmd_at)
    sub = groups.add_to_group("releases", "history", help="every ledger entry of a model name")
    sub.add_argument("name", help="model name")
    sub.set_defaults(func=cmd_history)
    sub = groups.add_to_group("releases", "verify", help="check the ledger's hash chain (exit 2 when broken)")
    sub.add_argument("name", help="model name")
    sub.set_defaults(func=cmd_verify)
    sub = groups.add_to_group("releases", "rollback", help="serve an earlier promoted version whose evidence still holds")
    sub.add_argument("name", help="model name")
    sub.add_argument("--to", required=True, type=_version, help="the version to serve again")
    sub.add_argument("--by", default=current_user(), help="who rolls back (default: $USER)")
    sub.add_argument("--reason", required=True)
    sub.set_defaults(func=cmd_rollback)
    sub = groups.add_to_group("releases", "demote", help="stop serving the model name (nothing serves)")
    sub.add_argument("name", help="model name")
    sub.add_argument("--by", default=current_user(), help="who demotes (default: $USER)")
    sub.add_argument("--reason", required=True)
    sub.set_defaults(func=cmd_demote)
    sub = groups.add_to_group("releases", "export", help="write a self-contained evidence bundle (HTML + JSON)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--out", required=True, help="a directory, or an .html file (the .json is written beside it)")
    sub.set_defaults(func=cmd_export)


__all__ = ["add_commands"]
