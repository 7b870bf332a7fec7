"""``evalp gate show``, ``wait`` and ``override``, ``evalp models promote``: release gate decisions and what gets past them.

``evalp gate wait`` is the CI contract (README "CI contract"): it blocks until the model version's gate is
settled and exits 0 pass (or overridden), 1 fail, 2 no_decision, 3 timeout, 4 not found or a usage error,
75 the registry or the API stayed unreachable.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit, print_json
from eval_platform.core.errors import EvalPlatformError, NotFound

if TYPE_CHECKING:
    from eval_platform.gates.waiting import GateStatus

#: ``evalp gate wait``'s exit statuses besides the decision's own (0 pass, 1 fail, 2 no_decision).
EXIT_TIMEOUT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 3, 4, 75
#: The longest pause between two looks at the gate (the pause grows from ``--poll-interval`` by half each time).
MAX_POLL_SECONDS = 30.0
#: The first look's own allowance: a ``--timeout`` shorter than this (0: look once) still gets one answer from a
#: healthy registry on a loaded machine; the command ends by ``--timeout`` or this, whichever is later.
FIRST_LOOK_SECONDS = 3.0


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


def cmd_wait(args: argparse.Namespace) -> int:
    """Look at the gate, with a growing pause, until it is settled or ``--timeout`` seconds have passed.

    Each look runs against the deadline (:func:`_by_deadline`): a registry or an API that accepts the connection
    and never answers, answers a byte at a time, or resets the connection mid-answer cannot hold the command past
    ``--timeout`` (or :data:`FIRST_LOOK_SECONDS`, whichever is later); such a look counts as an outage (asked
    again while time is left)."""
    from eval_platform.cli import remote  # keeps evalp --help fast
    from eval_platform.gates import waiting  # keeps evalp --help fast

    started = time.monotonic()
    deadline, pause = started + args.timeout, args.poll_interval
    look_deadline = max(deadline, started + FIRST_LOOK_SECONDS)
    try:
        read = _gate_reader(args, deadline)
    except EvalPlatformError as error:
        print(f"evalp: error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    status: GateStatus | None = None
    unavailable: remote.ApiUnavailable | None = None
    while True:
        looked = _look(functools.partial(_by_deadline, read, look_deadline), args.model)
        look_deadline = deadline
        if isinstance(looked, int):
            return looked
        outage = looked if isinstance(looked, remote.ApiUnavailable) else None
        if outage is not None and (unavailable is None or not isinstance(outage, remote.NoAnswerByDeadline)):
            unavailable = outage  # the deadline cutting the last look short says less than the outage before it
        status = status if outage else cast("GateStatus", looked)
        if outage is None and status is not None and status.settled:
            _report(args, status)
            return waiting.exit_code(status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if pause == args.poll_interval and status is not None:  # once, so a CI log shows what the job waits for
            print(f"evalp: gate wait: waiting up to {args.timeout:g} s for {args.model}'s gate decision "
                  f"({status.pending_runs} eval run(s) pending)", file=sys.stderr, flush=True)
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, MAX_POLL_SECONDS)
    if status is None:
        print(f"evalp: error: {unavailable}; gave up after {args.timeout:g} s", file=sys.stderr)
        return EXIT_UNAVAILABLE
    pending = f"{status.pending_runs} release-blocking eval run(s) still queued or running" if status.pending_runs else \
        "the gate decision for the finished runs"
    print(f"evalp: gate wait: timed out after {args.timeout:g} s waiting for {args.model}'s gate decision: {pending} "
          f"(current decision: {status.decision or 'none recorded'})", file=sys.stderr)
    _report(args, status)
    return EXIT_TIMEOUT


def _by_deadline(read: Callable[[], GateStatus], deadline: float) -> GateStatus:
    """``read()``, given up at ``deadline``: it runs on a daemon thread (a socket read or a database statement
    cannot be interrupted from outside, and a per-read socket timeout does not bound a peer that trickles bytes).
    When the deadline passes first the thread is left behind, silent (it prints nothing; a daemon thread does not
    keep the process alive), and the look is an outage (:class:`~eval_platform.cli.remote.ApiUnavailable`)."""
    import threading  # keeps evalp --help fast

    from eval_platform.cli import remote  # keeps evalp --help fast

    outcome: list = []

    def look() -> None:
        try:
            outcome.append((True, read()))
        except BaseException as error:  # handed to the command's thread, which classifies it (_look, main)
            outcome.append((False, error))

    worker = threading.Thread(target=look, name="evalp-gate-look", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise remote.NoAnswerByDeadline("no answer from the gate's source before the deadline (it took the request and did "
                                 "not answer in time)")
    done, value = outcome[0]
    if not done:
        raise value
    return value


def _look(read: Callable[[], GateStatus], model_key: str) -> GateStatus | EvalPlatformError | int:
    """One look at the gate: its status, an outage of the API to ask again after, or the exit status of a refusal."""
    from eval_platform.cli import remote  # keeps evalp --help fast

    try:
        return read()
    except NotFound:
        return _not_found(model_key)
    except remote.ApiRefused as error:
        if error.status == 404:  # another team's model answers exactly as a missing one
            return _not_found(model_key)
        print(f"evalp: error: the API refused: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except remote.ApiUnavailable as error:
        return error
    except EvalPlatformError as error:  # a malformed NAME@VERSION, a bad --api URL
        print(f"evalp: error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND


def _gate_reader(args: argparse.Namespace, deadline: float) -> Callable[[], GateStatus]:
    """Reads the gate locally (the registry, like every evalp command) or from the HTTP API with ``--api``. The
    registry is opened on the first look (within the deadline: a database that never answers cannot hold the
    command); an API request's socket timeout is the time left (at most 30 s)."""
    from eval_platform.cli import remote  # keeps evalp --help fast
    from eval_platform.gates import waiting  # keeps evalp --help fast

    if args.api:
        token = remote.api_token(args.token_env)
        remote.check_base_url(args.api)

        def read_api() -> GateStatus:
            left = min(30.0, max(1.0, deadline - time.monotonic()))  # the look itself is bounded by _by_deadline
            payload = remote.get_json(args.api, remote.gate_path(args.model), token, timeout=left)
            try:
                return waiting.GateStatus.from_api(payload)
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise remote.InvalidInput("--api", f"{args.api} answered something other than a gate: {error!r}") from error
        return read_api
    opened: list = []

    def read_local() -> GateStatus:
        if not opened:
            opened.append(open_platform(args))
        return waiting.gate_status(opened[0], args.model)
    return read_local


def _not_found(model_key: str) -> int:
    print(f"evalp: error: model version {model_key!r} not found", file=sys.stderr)
    return EXIT_NOT_FOUND


def _report(args: argparse.Namespace, status: GateStatus) -> None:
    """The decision on stdout (text, Markdown or JSON) and, with ``--junit``, as JUnit XML in that file."""
    import dataclasses  # keeps evalp --help fast

    from eval_platform.gates import ci_report  # keeps evalp --help fast

    timeout = None if status.settled else args.timeout
    if args.junit:
        path = Path(args.junit)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(ci_report.junit_xml(status, timeout))
        partial.replace(path)  # a reader never sees half a report
    if args.json:
        print_json(dataclasses.asdict(status))
    elif args.format == "markdown":
        print(ci_report.markdown_summary(status, timeout), end="")
    else:
        print(format_gate(args.model, (status.decision or "none") if status.settled else "not decided", status.reasons))
        if not status.settled:
            print(f"  {ci_report.headline(status, timeout)}")
        if status.override is not None:
            print(f"  overridden by {status.override.approver} (recorded {status.override.overridden_decision}): "
                  f"{status.override.reason}")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def _pause_seconds(text: str) -> float:
    value = _seconds(text)
    if value < 0.01:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0.01 seconds")
    return value


def _usage_exit(parser: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    """``gate wait``'s usage errors exit 4: 2 is its no_decision."""
    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_NOT_FOUND, f"{parser.prog}: error: {message}\n")
    return error


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
    sub = groups.add_to_group("gate", "wait", help="block until the gate is settled; exit 0 pass, 1 fail, 2 no_decision, "
                                                   "3 timeout, 4 not found (README: CI contract)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--timeout", type=_seconds, default=1800.0, help="give up after this many seconds (exit 3; default 1800)")
    sub.add_argument("--poll-interval", type=_pause_seconds, default=2.0,
                     help="first pause between looks in seconds, growing by half each time up to 30 (default 2)")
    sub.add_argument("--format", choices=["text", "markdown"], default="text",
                     help="markdown: the comparison table for a pull-request comment")
    sub.add_argument("--junit", metavar="FILE", help="also write the gate as JUnit XML to FILE")
    sub.add_argument("--api", metavar="URL", help="read the gate from this HTTP API instead of the registry")
    sub.add_argument("--token-env", default="EVALP_TOKEN", metavar="VAR",
                     help="with --api: the environment variable holding the API token (default EVALP_TOKEN)")
    sub.error = _usage_exit(sub)  # type: ignore[method-assign,assignment]
    sub.set_defaults(func=cmd_wait, command_parser=sub)
    sub = groups.add_to_group("gate", "override", help="let a fail or no_decision through (approvers only)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--by", default=current_user(), help="the approver (default: $USER)")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--online", action="store_true", help="override the online gate instead of the offline one")
    sub.set_defaults(func=cmd_override)
