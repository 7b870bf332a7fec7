"""``evalp experiments``: online experiments from the command line.

``register`` records an experiment from YAML/JSON, ``ingest`` validates a batch of online data (Parquet,
CSV or JSONL) and registers it as a dataset version (the experiment sensor then runs the analysis),
``analyze`` queues an analysis, ``show`` prints the latest one, ``gate`` a model version's online gate,
``agreement`` the offline-online agreement across experiments, ``list`` and ``stop`` the obvious.
"""

from __future__ import annotations

from eval_platform.core.records import to_dict


def _cli():
    from eval_platform.cli import main as cli

    return cli


def _ex():
    """The experiments module, imported when a command runs (it pulls in pandas and scipy, which
    ``evalp --help`` and the other commands do not need)."""
    from eval_platform.online import experiments

    return experiments


def _experiment_row(platform, record) -> dict:
    ex = _ex()
    latest = ex.latest_analysis(platform, record.experiment_id)
    return to_dict(record) | {
        "ingests": len(ex.ingests(platform, record.experiment_id)),
        "analysis": f"#{latest.id} {latest.status}" if latest else None,
        "guardrails": latest.guardrail_verdict if latest else None,
        "trustworthy": latest.trustworthy if latest else None,
    }


def cmd_register(args) -> None:
    ex = _ex()
    cli = _cli()
    document = cli._read_document(args.file)  # a bad file is refused before the registry is even opened
    platform = cli._platform(args)
    result = ex.register_experiment(platform, document, created_by=args.by)
    cli._emit(args, _experiment_row(platform, result.record) | {"created": result.created},
              columns=["experiment_id", "mode", "control_model", "candidate_models", "created"])


def cmd_list(args) -> None:
    ex = _ex()
    cli = _cli()
    platform = cli._platform(args)
    rows = [_experiment_row(platform, record) for record in ex.experiments(platform)]
    cli._emit(args, rows, rows, ["experiment_id", "mode", "status", "control_model", "candidate_models", "ingests",
                                 "analysis", "guardrails", "trustworthy"])


def cmd_ingest(args) -> None:
    ex = _ex()
    cli = _cli()
    platform = cli._platform(args)
    row, created = ex.ingest(platform, args.experiment, cli._read_table(args.file), ingested_by=args.by)
    cli._emit(args, to_dict(row) | {"created": created},
              columns=["id", "experiment_id", "dataset_key", "row_count", "content_hash", "created"])
    if not args.json and created:
        print("queued: the experiment sensor runs the analysis")


def cmd_analyze(args) -> None:
    ex = _ex()
    cli = _cli()
    request = ex.request_analysis(cli._platform(args), args.experiment, requested_by=args.by, reason=args.reason)
    cli._emit(args, to_dict(request), columns=["id", "kind", "partitions", "requested_by", "status"])


def cmd_show(args) -> None:
    ex = _ex()
    from eval_platform.online.reporting import format_stored_analysis

    cli = _cli()
    platform = cli._platform(args)
    record = ex.experiment(platform, args.experiment)
    latest = ex.latest_analysis(platform, args.experiment)
    if args.json:
        cli._emit(args, {"experiment": to_dict(record), "analysis": to_dict(latest) if latest else None})
        return
    if latest is None:
        print(f"experiment {record.experiment_id}: not analysed yet ({len(ex.ingests(platform, record.experiment_id))} ingests)")
        return
    print(f"analysis #{latest.id} ({latest.status}{': ' + latest.status_reason if latest.status_reason else ''}) "
          f"of {', '.join(i['dataset'] for i in latest.inputs) or 'no data'}, code version {latest.code_version}")
    print(format_stored_analysis(latest.result))


def cmd_gate(args) -> None:
    ex = _ex()
    from eval_platform.online.reporting import format_online_gate

    cli = _cli()
    decision, reasons, record = ex.decide_online_gate(cli._platform(args), args.model)
    if args.json:
        cli._emit(args, to_dict(record))
        return
    print(format_online_gate(args.model, decision, reasons))


def cmd_agreement(args) -> None:
    ex = _ex()
    cli = _cli()
    report = ex.agreement_report(cli._platform(args))
    if args.json:
        cli._emit(args, report)
        return
    print(f"offline-online agreement over {report['n']} experiment arm(s): sign agreement "
          f"{report['sign_agreement']:.2f} (n={report['sign_agreement_n']}), Pearson {report['pearson']:.3f}, "
          f"Spearman {report['spearman']:.3f}")
    cli._print_table(report["records"], ["experiment_id", "candidate", "offline_delta", "metric", "online_delta",
                                         "online_significant", "same_sign"])


def cmd_stop(args) -> None:
    ex = _ex()
    cli = _cli()
    record = ex.stop_experiment(cli._platform(args), args.experiment)
    cli._emit(args, to_dict(record), columns=["experiment_id", "status"])


def add_commands(groups, common) -> None:
    user = _cli()._user()
    experiments = groups.add_parser("experiments", help="online experiments (A/B, shadow)").add_subparsers(dest="command", required=True)
    sub = experiments.add_parser("register", parents=[common], help="record an experiment from YAML or JSON")
    sub.add_argument("file")
    sub.add_argument("--by", default=user, help="who registers it (default: $USER)")
    sub.set_defaults(func=cmd_register)
    sub = experiments.add_parser("list", parents=[common])
    sub.set_defaults(func=cmd_list)
    sub = experiments.add_parser("ingest", parents=[common], help="validate and register a batch of online data")
    sub.add_argument("experiment")
    sub.add_argument("--file", required=True, help="Parquet, CSV or JSONL")
    sub.add_argument("--by", default=user, help="who ingests it (default: $USER)")
    sub.set_defaults(func=cmd_ingest)
    sub = experiments.add_parser("analyze", parents=[common], help="queue an analysis")
    sub.add_argument("experiment")
    sub.add_argument("--reason", default="")
    sub.add_argument("--by", default=user)
    sub.set_defaults(func=cmd_analyze)
    sub = experiments.add_parser("show", parents=[common], help="the latest analysis")
    sub.add_argument("experiment")
    sub.set_defaults(func=cmd_show)
    sub = experiments.add_parser("gate", parents=[common], help="a model version's online gate")
    sub.add_argument("model", help="NAME@VERSION")
    sub.set_defaults(func=cmd_gate)
    sub = experiments.add_parser("agreement", parents=[common], help="do offline wins predict online wins?")
    sub.set_defaults(func=cmd_agreement)
    sub = experiments.add_parser("stop", parents=[common], help="stop taking data")
    sub.add_argument("experiment")
    sub.set_defaults(func=cmd_stop)
