"""``evalp gate show`` and ``override``, ``evalp models promote``: release gate decisions and what gets past them."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit, print_json
from eval_platform.core.errors import NotFound


def cmd_show(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    record = open_platform(args).gate_decision(args.model)
    if record is None:
        raise NotFound("gate decision for", args.model)
    payload = to_dict(record)
    if args.json:
        print_json(payload)
        return
    print(format_gate(args.model, payload["decision"], payload["reasons"]))


def format_gate(model_key: str, decision: str, reasons: list) -> str:
    """A gate decision for people: the decision, then each run's (or rule's) outcome and the reasons under it."""
    lines = [f"gate decision for {model_key}: {decision.upper()}"]
    for run_reason in reasons:
        lines.append(f"  {run_reason.get('run', run_reason.get('rule'))}: {run_reason['outcome']}")
        for reason in run_reason.get("reasons", []):
            lines.append(f"    [{reason['outcome']}] {reason['rule']}: {reason.get('message', '')}")
            if reason.get("power"):
                lines.append(f"      {format_power(reason['power'])}")
        if "message" in run_reason and "reasons" not in run_reason:
            lines.append(f"    {run_reason['message']}")
    return "\n".join(lines)


def format_power(power: dict) -> str:
    """A rule's power figures in one line: what the run could detect, and what detecting the margin needs."""
    needed = "never (margin 0)" if power.get("n_needed") is None else f"{power['n_needed']} examples"
    return (f"power: MDE {power['mde']:.4g} at n={power['n']} (one-sided alpha {power['alpha']:.3g}, power {power['target_power']:g}); "
            f"power {power['power']:.2f} against the margin {power['margin']:g}, which needs {needed}"
            + ("" if power.get("adequate") else " (underpowered)"))


def cmd_override(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.gates.releases import override_gate  # keeps evalp --help fast

    record = override_gate(open_platform(args), args.model, approver=args.by, reason=args.reason,
                           scope="online" if args.online else "model_version")
    emit(args, to_dict(record), columns=["id", "model_name", "model_version", "overridden_decision", "approver", "reason"])


def cmd_promote(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.gates.releases import request_promotion  # keeps evalp --help fast

    request = request_promotion(open_platform(args), args.model, requested_by=args.by, reason=args.reason)
    emit(args, to_dict(request), columns=["id", "kind", "partitions", "requested_by", "status"])
    if not args.json:
        print("queued: the promotion sensor runs the release job (gate check, then promotion)")


def add_commands(groups: CommandGroups) -> None:
    sub = groups.add_to_group("models", "promote", help="release a model version whose gate passed (or was overridden)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--by", default=current_user(), help="who promotes (default: $USER)")
    sub.add_argument("--reason", default="")
    sub.set_defaults(func=cmd_promote)

    groups.add_group("gate", help="gate decisions")
    sub = groups.add_to_group("gate", "show")
    sub.add_argument("model", help="NAME@VERSION")
    sub.set_defaults(func=cmd_show)
    sub = groups.add_to_group("gate", "override", help="let a fail or no_decision through (approvers only)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--by", default=current_user(), help="the approver (default: $USER)")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--online", action="store_true", help="override the online gate instead of the offline one")
    sub.set_defaults(func=cmd_override)
