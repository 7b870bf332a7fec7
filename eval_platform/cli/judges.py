"""``evalp judges``: license a suite's LLM judge against its calibration dataset, and read the license history.

``evalp judges license --suite S`` grades the newest active calibration version named by the suite's
``llm.judge_license`` with the suite's judge (through the LLM call cache: a recheck pays no call), records the
license and decides again the gates waiting on the judge. ``evalp judges licenses`` lists the history (newest
first; ``invalidated`` says which contamination incident took a license away); with ``--suite`` it first says
whether the suite's judge is licensed now, as the gate sees it.
"""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json, print_table

_COLUMNS = ["id", "judge_key", "calibration_dataset", "measure", "estimate", "ci_low", "ci_high", "min_lower_bound", "n",
            "n_judge_errors", "licensed", "invalidated", "computed_at"]


def _suite(platform, name: str):
    return platform.suite(name) if "@" in name else platform.latest_suite(name)


def _row(license_dict: dict) -> dict:
    row = {k: license_dict[k] for k in _COLUMNS}
    invalidation = license_dict["invalidation"]
    row["invalidated"] = "no" if invalidation is None else f"yes (incident {invalidation['incident_id']})"
    for key in ("estimate", "ci_low", "ci_high"):
        row[key] = "undefined" if row[key] is None else round(row[key], 4)
    return row


def _drift_lines(drift: dict | None) -> list[str]:
    if not drift:
        return ["drift: no judge version licensed before on this calibration dataset"]

    def shown(value):
        return "undefined" if value is None else f"{value:+.3f}" if isinstance(value, float) else str(value)

    return [f"drift against {drift['previous_judge_key']} (license {drift['previous_license_id']}), {drift['n_common']} rows both judged:",
            f"  judge-vs-judge kappa {shown(drift['judge_kappa'])}, agreement {shown(drift['agreement'])}",
            f"  pass rate {shown(drift['pass_rate_previous'])} -> {shown(drift['pass_rate_current'])} "
            f"(change {shown(drift['pass_rate_change'])}), measure change {shown(drift['measure_change'])}"]


def cmd_license(args: argparse.Namespace) -> None:
    from eval_platform.evaluation import judge_license as licensing  # keeps evalp --help fast
    from eval_platform.evaluation.judge_license_gates import redecide_gates_of_judge  # keeps evalp --help fast

    platform = open_platform(args)
    checked = licensing.license_suite_judge(platform, _suite(platform, args.suite), computed_by=args.by)
    redecided = redecide_gates_of_judge(platform, checked.judge_config_hash)
    payload = {**checked.to_dict(), "gates_redecided": redecided}
    if args.json:
        print_json(payload)
        return
    print(("licensed: " if checked.licensed else "NOT licensed: ") + checked.figures())
    print(f"judge calls {checked.calls.get('calls', 0)}, cache hits {checked.calls.get('cache_hits', 0)}")
    for line in _drift_lines(payload["drift"]):
        print(line)
    if redecided:
        print(f"gates decided again: {', '.join(redecided)}")


def cmd_licenses(args: argparse.Namespace) -> None:
    from eval_platform.evaluation import judge_license as licensing  # keeps evalp --help fast

    platform = open_platform(args)
    status = None
    config_hash = None
    if args.suite:
        status = licensing.license_status(platform, _suite(platform, args.suite))
        config_hash = status.judge_config_hash if status is not None else None
    history = [] if args.suite and config_hash is None else licensing.licenses(platform, config_hash, args.calibration)
    if args.json:
        print_json({"status": status.to_dict() if status else None, "licenses": [lic.to_dict() for lic in history]})
        return
    if args.suite:
        print(f"{args.suite}: no judge_score metric, no judge to license" if status is None else
              ("licensed: " if status.licensed else "NOT licensed (the gate has no decision): ") + status.message)
    print_table([_row(lic.to_dict()) for lic in history], _COLUMNS)
    for lic in history:
        if lic.invalidation is not None:
            print(f"license {lic.id} invalidated: {lic.invalidation.reason}")


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("judges", help="LLM judges licensed by their agreement with human labels")
    sub = groups.add_to_group("judges", "license", help="check a suite's judge on its calibration dataset now")
    sub.add_argument("--suite", required=True, help="SUITE_ID (its newest version) or SUITE_ID@VERSION")
    sub.add_argument("--by", default=current_user(), help="who checks (default: $USER)")
    sub.set_defaults(func=cmd_license)
    sub = groups.add_to_group("judges", "licenses", help="the license history (newest first); with --suite, the current status")
    sub.add_argument("--suite", help="SUITE_ID or SUITE_ID@VERSION: whether its judge is licensed now, and that judge's history")
    sub.add_argument("--calibration", help="only licenses on this calibration dataset id")
    sub.set_defaults(func=cmd_licenses)


__all__ = ["add_commands"]
