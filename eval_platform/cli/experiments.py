"""``evalp experiments``: online experiments from the command line.

``register`` records an experiment from YAML/JSON, ``ingest`` validates a batch of online data (Parquet,
CSV or JSONL) and registers it as a dataset version (the experiment sensor then runs the analysis),
``analyze`` queues an analysis, ``show`` prints the latest one, ``gate`` a model version's online gate,
``agreement`` the offline-online agreement across experiments, ``list`` and ``stop`` the obvious.
"""

from __future__ import annotations

import argparse
from typing import Any

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform, read_document, read_table
from eval_platform.cli.output import emit, print_json, print_table


def _experiment_row(platform: Any, record: Any) -> dict:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast

    latest = experiments.latest_analysis(platform, record.experiment_id)
    return to_dict(record) | {
        "ingests": len(experiments.ingests(platform, record.experiment_id)),
        "analysis": f"#{latest.id} {latest.status}" if latest else None,
        "guardrails": latest.guardrail_verdict if latest else None,
        "trustworthy": latest.trustworthy if latest else None,
    }


def cmd_register(args: argparse.Namespace) -> None:
    from eval_platform.online import experiments  # keeps evalp --help fast

    document = read_document(args.file)  # a bad file is refused before the registry is even opened
    platform = open_platform(args)
    result = experiments.register_experiment(platform, document, created_by=args.by)
    emit(args, _experiment_row(platform, result.record) | {"created": result.created},
         columns=["experiment_id", "mode", "control_model", "candidate_models", "created"])


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.online import experiments  # keeps evalp --help fast

    platform = open_platform(args)
    rows = [_experiment_row(platform, record) for record in experiments.experiments(platform)]
    emit(args, rows, ["experiment_id", "mode", "status", "control_model", "candidate_models", "ingests",
                      "analysis", "guardrails", "trustworthy"], rows=rows)


def cmd_ingest(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast

    platform = open_platform(args)
    row, created = experiments.ingest(platform, args.experiment, read_table(args.file), ingested_by=args.by)
    emit(args, to_dict(row) | {"created": created}, columns=["id", "experiment_id", "dataset_key", "row_count", "content_hash", "created"])
    if not args.json and created:
        print("queued: the experiment sensor runs the analysis")


def cmd_analyze(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast

    request = experiments.request_analysis(open_platform(args), args.experiment, requested_by=args.by, reason=args.reason)
    emit(args, to_dict(request), columns=["id", "kind", "partitions", "requested_by", "status"])


def cmd_show(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast
    from eval_platform.online.reporting import format_stored_analysis  # keeps evalp --help fast

    platform = open_platform(args)
    record = experiments.experiment(platform, args.experiment)
    latest = experiments.latest_analysis(platform, args.experiment)
    if args.json:
        print_json({"experiment": to_dict(record), "analysis": to_dict(latest) if latest else None})
        return
    if latest is None:
        print(f"experiment {record.experiment_id}: not analysed yet ({len(experiments.ingests(platform, record.experiment_id))} ingests)")
        return
    print(f"analysis #{latest.id} ({latest.status}{': ' + latest.status_reason if latest.status_reason else ''}) "
          f"of {', '.join(i['dataset'] for i in latest.inputs) or 'no data'}, code version {latest.code_version}")
    print(format_stored_analysis(latest.result))


def cmd_gate(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast
    from eval_platform.online.reporting import format_online_gate  # keeps evalp --help fast

    decision, reasons, record = experiments.decide_online_gate(open_platform(args), args.model)
    if args.json:
        print_json(to_dict(record))
        return
    print(format_online_gate(args.model, decision, reasons))


def cmd_agreement(args: argparse.Namespace) -> None:
    from eval_platform.online import experiments  # keeps evalp --help fast

    report = experiments.agreement_report(open_platform(args))
    if args.json:
        print_json(report)
        return
    print(f"offline-online agreement over {report['n']} experiment arm(s): sign agreement "
          f"{report['sign_agreement']:.2f} (n={report['sign_agreement_n']}), Pearson {report['pearson']:.3f}, "
          f"Spearman {report['spearman']:.3f}")
    print_table(report["records"], ["experiment_id", "candidate", "offline_delta", "metric", "online_delta",
                                    "online_significant", "same_sign"])


def cmd_stop(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.online import experiments  # keeps evalp --help fast

    record = experiments.stop_experiment(open_platform(args), args.experiment)
    emit(args, to_dict(record), columns=["experiment_id", "status"])


def add_commands(groups: CommandGroups) -> None:
    user = current_user()
    groups.add_group("experiments", help="online experiments (A/B, shadow)")
    sub = groups.add_to_group("experiments", "register", help="record an experiment from YAML or JSON")
    sub.add_argument("file")
    sub.add_argument("--by", default=user, help="who registers it (default: $USER)")
    sub.set_defaults(func=cmd_register)
    groups.add_to_group("experiments", "list").set_defaults(func=cmd_list)
    sub = groups.add_to_group("experiments", "ingest", help="validate and register a batch of online data")
    sub.add_argument("experiment")
    sub.add_argument("--file", required=True, help="Parquet, CSV or JSONL")
    sub.add_argument("--by", default=user, help="who ingests it (default: $USER)")
    sub.set_defaults(func=cmd_ingest)
    sub = groups.add_to_group("experiments", "analyze", help="queue an analysis")
    sub.add_argument("experiment")
    sub.add_argument("--reason", default="")
    sub.add_argument("--by", default=user)
    sub.set_defaults(func=cmd_analyze)
    sub = groups.add_to_group("experiments", "show", help="the latest analysis")
    sub.add_argument("experiment")
    sub.set_defaults(func=cmd_show)
    sub = groups.add_to_group("experiments", "gate", help="a model version's online gate")
    sub.add_argument("model", help="NAME@VERSION")
    sub.set_defaults(func=cmd_gate)
    groups.add_to_group("experiments", "agreement", help="do offline wins predict online wins?").set_defaults(func=cmd_agreement)
    sub = groups.add_to_group("experiments", "stop", help="stop taking data")
    sub.add_argument("experiment")
    sub.set_defaults(func=cmd_stop)
