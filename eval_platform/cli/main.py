"""``evalp``: the platform's command line. Every command has ``--json`` for machines.

It talks to the registry and the artifact store only; evaluations it asks for are queued and started
by the Dagster sensor, so the command returns at once whatever the orchestrator is doing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from eval_platform.core.errors import EvalPlatformError
from eval_platform.core.records import json_safe, run_to_dict, to_dict


def _read_table(path: str, field: str = "--file"):
    import pandas as pd

    from eval_platform.core.errors import InvalidInput

    file = Path(path)
    if not file.is_file():
        raise InvalidInput(field, f"{path} does not exist")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file)
        if file.suffix.lower() in (".csv", ".tsv"):
            return pd.read_csv(file, sep="\t" if file.suffix.lower() == ".tsv" else ",")
        if file.suffix.lower() in (".jsonl", ".ndjson"):
            return pd.read_json(file, lines=True)
    except Exception as error:  # parser errors name the line; keep their words
        raise InvalidInput(field, f"{path} could not be read: {error}") from error
    raise InvalidInput(field, f"{path}: unsupported format (use .parquet, .csv, .tsv or .jsonl)")


def _read_document(path: str) -> dict:
    from eval_platform.core.errors import InvalidInput
    from eval_platform.core.yamlsafe import DEFAULT_LIMITS, load_yaml

    file = Path(path)
    if not file.is_file():
        raise InvalidInput("file", f"{path} does not exist")
    if file.stat().st_size > DEFAULT_LIMITS.max_bytes:  # not even read: refused on its size
        raise InvalidInput("file", f"{path}: the document is {file.stat().st_size} bytes, over the limit of {DEFAULT_LIMITS.max_bytes} bytes")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("file", f"{path} could not be read: {error}") from error
    document = load_yaml(text, field="file", source=path)  # limits on size, depth and aliases (an alias bomb)
    if not isinstance(document, dict):
        raise InvalidInput("file", f"{path} must contain a mapping")
    return document


def _print_table(rows: list[dict], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return

    def cell(value) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _emit(args, payload, rows=None, columns=None, text=None) -> None:
    if args.json:
        print(json.dumps(json_safe(payload), indent=2, default=str))
    elif text is not None:
        print(text)
    else:
        _print_table(rows if rows is not None else [payload], columns)


def _platform(args):
    from eval_platform.platform.service import EvalPlatform

    return EvalPlatform.open(args.home)


# commands -------------------------------------------------------------------------------------------------
def cmd_init(args) -> None:
    platform = _platform(args)
    _emit(args, {"home": str(platform.config.home), "registry": platform.config.db_url.split("@")[-1],
                 "store": platform.config.store_url, "schema_revision": platform.registry.schema_revision()},
          columns=["home", "registry", "store", "schema_revision"])


def cmd_datasets_register(args) -> None:
    frame = _read_table(args.file)
    access = {"level": args.access, "teams": args.team or []}
    result = _platform(args).register_dataset(
        args.dataset_id, frame, task_type=args.task_type, label_policy=args.label_policy, access_policy=access,
        slice_columns=args.slice or (), feature_columns=args.feature or None, description=args.description)
    record = to_dict(result.record) | {"created": result.created}
    _emit(args, record, columns=["key", "task_type", "row_count", "content_hash", "created"])


def cmd_datasets_list(args) -> None:
    rows = [to_dict(r) for r in _platform(args).datasets()]
    _emit(args, rows, rows, ["key", "task_type", "label_policy", "row_count", "status", "content_hash"])


def cmd_suites_register(args) -> None:
    document = _read_document(args.file)  # a bad file is refused before the registry is even opened
    result = _platform(args).register_suite(document)
    record = to_dict(result.record) | {"created": result.created}
    _emit(args, record, columns=["key", "purpose", "task_type", "definition_hash", "created"])


def cmd_suites_list(args) -> None:
    rows = [to_dict(r) for r in _platform(args).suites()]
    _emit(args, rows, rows, ["key", "purpose", "task_type", "definition_hash"])


def cmd_models_register(args) -> None:
    plan = []
    for entry in args.eval or []:
        dataset_id, sep, suite_id = entry.partition(":")
        if not sep:
            from eval_platform.core.errors import InvalidInput

            raise InvalidInput("--eval", f"{entry!r} must be DATASET_ID:SUITE_ID")
        plan.append((dataset_id, suite_id))
    platform = _platform(args)
    result = platform.register_model(args.name, args.file, kind=args.kind, trusted_types=args.trust or (),
                                     eval_plan=plan, description=args.description)
    record = to_dict(result.record) | {"created": result.created,
                                       "queued_runs": [r.run_id for r in platform.runs(result.record.key, ["queued"])]}
    _emit(args, record, columns=["key", "kind", "file_hash", "created", "queued_runs"])


def cmd_models_list(args) -> None:
    platform = _platform(args)
    rows = []
    for model in platform.models():
        decision = platform.gate_decision(model.key)
        rows.append(to_dict(model) | {"gate": decision.decision if decision else None,
                                      "promoted": platform.promoted_version(model.name) == model.version})
    _emit(args, rows, rows, ["key", "kind", "file_hash", "gate", "promoted", "registered_at"])


def cmd_models_promote(args) -> None:
    from eval_platform.gates.releases import request_promotion

    request = request_promotion(_platform(args), args.model, requested_by=args.by, reason=args.reason)
    _emit(args, to_dict(request), columns=["id", "kind", "partitions", "requested_by", "status"])
    if not args.json:
        print("queued: the promotion sensor runs the release job (gate check, then promotion)")


def _impact_payload(impact) -> dict:
    return to_dict(impact.incident) | {"runs": [run_to_dict(r) for r in impact.runs]}


def _print_impact(impact, what: str) -> None:
    print(f"{what}; affected runs: {len(impact.runs)}, model versions: {', '.join(impact.models) or 'none'}")
    _print_table([run_to_dict(r) for r in impact.runs], ["run_id", "model", "dataset", "suite", "status"])


def cmd_metrics_mark_buggy(args) -> None:
    from eval_platform.governance.incidents import mark_metric_buggy

    impact = mark_metric_buggy(_platform(args), args.metric, reason=args.reason, reported_by=args.by)
    if args.json:
        _emit(args, _impact_payload(impact))
    else:
        _print_impact(impact, f"metric {impact.incident.target} marked buggy: gates that used it are frozen")


def cmd_metrics_list(args) -> None:
    from eval_platform.metrics.catalog import all_metrics

    buggy = _platform(args).buggy_metrics()
    rows = [{"metric": m.key, "direction": m.direction, "task_types": ",".join(sorted(m.task_types)),
             "params": ",".join(m.params), "buggy": m.key in buggy, "description": m.description} for m in all_metrics()]
    _emit(args, rows, rows, ["metric", "direction", "task_types", "params", "buggy", "description"])


def cmd_datasets_invalidate(args) -> None:
    from eval_platform.governance.incidents import invalidate_dataset

    impact = invalidate_dataset(_platform(args), args.dataset, reason=args.reason, reported_by=args.by)
    if args.json:
        _emit(args, _impact_payload(impact))
    else:
        _print_impact(impact, f"dataset {impact.incident.target} marked contaminated and deprecated; its runs are invalid")


def cmd_recompute(args) -> None:
    from eval_platform.governance.incidents import request_recompute

    queued, request = request_recompute(_platform(args), args.affected_by, requested_by=args.by, reason=args.reason)
    payload = {"queued_runs": [run_to_dict(r) for r in queued], "backfill_request": to_dict(request) if request else None}
    if args.json:
        _emit(args, payload)
        return
    if request is None:
        print("nothing to recompute")
        return
    print(f"queued {len(queued)} run(s); the recompute sensor launches a Dagster backfill of the eval cells "
          f"(dataset|model) {', '.join(request.partitions)}")
    _print_table([run_to_dict(r) for r in queued], ["run_id", "model", "dataset", "suite", "status"])


def cmd_gate_override(args) -> None:
    from eval_platform.gates.releases import override_gate

    record = override_gate(_platform(args), args.model, approver=args.by, reason=args.reason,
                           scope="online" if args.online else "model_version")
    _emit(args, to_dict(record), columns=["id", "model_name", "model_version", "overridden_decision", "approver", "reason"])


def _dagster_links(platform, run) -> dict:
    """Where the run is in the Dagster UI (``EVAL_PLATFORM_DAGSTER_URL``, default ``make dev``'s address): its
    eval cell's partition, the gate's partition, its Dagster run, and the backfill page when a recompute
    request launched it."""
    from urllib.parse import quote

    from sqlalchemy import select

    from eval_platform.core.keys import cell_name
    from eval_platform.governance.incidents import BACKFILL
    from eval_platform.registry import DagsterRequest

    base = os.environ.get("EVAL_PLATFORM_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")
    cell = cell_name(run.model_key, run.dataset_key)
    links = {"eval_cell": cell,
             "cell_url": f"{base}/assets/metric_table?view=partitions&partition={quote(cell, safe='')}",
             "gate_url": f"{base}/assets/gate_decision?view=partitions&partition={quote(run.model_key, safe='')}",
             "run_url": f"{base}/runs/{run.dagster_run_id}" if run.dagster_run_id else None, "recompute_request": None}
    if run.launch_key:
        with platform.registry.session() as session:
            request = session.scalar(select(DagsterRequest).where(DagsterRequest.kind == BACKFILL,
                                                                   DagsterRequest.launch_key == run.launch_key))
        if request is not None:
            links["recompute_request"] = {"id": request.id, "reason": request.reason, "backfills_url": f"{base}/overview/backfills"}
    return links


def cmd_runs_lineage(args) -> None:
    platform = _platform(args)
    run = platform.run(args.run_id)
    links = _dagster_links(platform, run)
    payload = {"run_id": run.run_id, "status": run.status, "dagster_run_id": run.dagster_run_id,
               "predictions": run.predictions_hash, "metric_table": run.metrics_hash,
               "baseline_run_id": run.baseline_run_id, **(run.lineage or {}), "dagster": links}
    if args.json:
        _emit(args, payload)
        return
    lineage = run.lineage or {}
    print(f"eval run {run.run_id} ({run.status}), Dagster run {run.dagster_run_id or '-'}")
    print(f"  eval cell  {links['eval_cell']}  {links['cell_url']}")
    print(f"  gate       {links['gate_url']}")
    if links["run_url"]:
        print(f"  Dagster    {links['run_url']}")
    if links["recompute_request"]:
        print(f"  recompute  request {links['recompute_request']['id']} ({links['recompute_request']['reason']}): "
              f"its backfill at {links['recompute_request']['backfills_url']}")
    if not lineage:
        print("  no lineage recorded yet (the run has not produced predictions)")
        return
    d, m, s = lineage["dataset"], lineage["model"], lineage["suite"]
    print(f"  dataset    {d['id']}@{d['version']}  {d['content_hash']}  labels: {d['label_policy']}  rows: {d['rows']}")
    print(f"  model      {m['name']}@{m['version']}  {m['kind']}  {m['file_hash']}")
    print(f"  suite      {s['id']}@{s['version']}  {s['purpose']}  {s['definition_hash']}")
    print("  metrics    " + ", ".join(f"{k}={v}" for k, v in lineage["metrics"].items()))
    print(f"  prompt     {lineage.get('prompt_version') or '-'}   judge: {lineage.get('judge') or '-'}")
    print(f"  code       platform {lineage['code']['platform']}, predictions v{lineage['code']['predictions']}, gate v{lineage['code']['gate']}")
    print(f"  artifacts  predictions {run.predictions_hash or '-'}, metric table {run.metrics_hash or '-'}")
    print(f"  baseline   {run.baseline_run_id or '-'}")


def cmd_runs_list(args) -> None:
    rows = [run_to_dict(r) for r in _platform(args).runs(args.model, args.status)]
    table = [r | {"roc_auc": (r.get("results") or {}).get("metrics", {}).get("roc_auc")} for r in rows]
    _emit(args, rows, table, ["run_id", "model", "dataset", "suite", "status", "requested_at", "finished_at"])


def cmd_runs_show(args) -> None:
    platform = _platform(args)
    run = run_to_dict(platform.run(args.run_id))
    if args.json:
        _emit(args, run)
        return
    print(format_run(run))


def format_run(run: dict) -> str:
    lines = [f"eval run {run['run_id']}: {run['model']} on {run['dataset']} with {run['suite']} -> {run['status']}"]
    if run.get("status_reason"):
        lines.append(f"  reason: {run['status_reason']}")
    metrics = (run.get("results") or {}).get("metrics", {})
    for name, value in metrics.items():
        lines.append(f"  {name:<28} {'undefined' if value is None else f'{value:.4f}'}")
    comparison = run.get("comparison") or {}
    if comparison:
        lines.append(f"  baseline: {comparison.get('baseline_model') or 'none'} ({comparison.get('baseline_state')})")
        for name, c in (comparison.get("metrics") or {}).items():
            lines.append(f"    {name:<26} delta {c['delta']:+.4f}  95% CI [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]")
    return "\n".join(lines)


def cmd_runs_request(args) -> None:
    run = _platform(args).request_eval(args.model, args.dataset, args.suite, baseline=args.baseline,
                                       trigger="cli", recompute=args.recompute)
    _emit(args, run_to_dict(run), columns=["run_id", "model", "dataset", "suite", "status"])


def cmd_gate_show(args) -> None:
    record = _platform(args).gate_decision(args.model)
    if record is None:
        from eval_platform.core.errors import NotFound

        raise NotFound("gate decision for", args.model)
    payload = to_dict(record)
    if args.json:
        _emit(args, payload)
        return
    print(format_gate(args.model, payload["decision"], payload["reasons"]))


def format_gate(model_key: str, decision: str, reasons: list) -> str:
    lines = [f"gate decision for {model_key}: {decision.upper()}"]
    for run_reason in reasons:
        lines.append(f"  {run_reason.get('run', run_reason.get('rule'))}: {run_reason['outcome']}")
        for reason in run_reason.get("reasons", []):
            lines.append(f"    [{reason['outcome']}] {reason['rule']}: {reason.get('message', '')}")
        if "message" in run_reason and "reasons" not in run_reason:
            lines.append(f"    {run_reason['message']}")
    return "\n".join(lines)


def cmd_score(args) -> None:
    from eval_platform.metrics import scoring

    if args.kind == "counterfactual":
        estimates = scoring.score_counterfactual(
            _read_table(args.data, "--data"), args.reward, args.propensity, args.target_probability,
            args.reward_model_logged, args.reward_model_target, args.confidence)
        _print_estimates(args, estimates, ("value", "ci_low", "ci_high", "std_error", "ess", "n", "max_weight"))
        return
    if args.kind == "agreement":
        estimates = scoring.score_agreement(_read_table(args.data, "--data"), args.rater, args.level, args.judge,
                                            args.confidence, args.resamples, args.seed)
        _print_estimates(args, estimates, ("value", "ci_low", "ci_high", "n_units", "n_raters"))
        return
    if args.kind == "interleaving":
        outcome = scoring.score_interleaving(_read_table(args.data, "--data"), args.query, args.team, args.clicked, args.confidence)
        _print_estimates(args, {"A_vs_B": outcome}, ("wins", "losses", "ties", "n_queries", "preference", "win_rate",
                                                     "win_rate_ci_low", "win_rate_ci_high", "p_value"))
        return
    if args.kind == "classification":
        results = scoring.score_classification(_read_table(args.data, "--data"), args.label, args.score, args.metric)
    elif args.kind == "generation":
        results = scoring.score_generation(_read_table(args.data, "--data"), args.prediction, args.reference, args.metric)
    else:
        from eval_platform.metrics import trec

        qrels, run = trec.read_qrels(args.qrels), trec.read_run(args.run)
        scored = trec.score_ranking(qrels, run, args.metric, per_query=args.per_query)
        if args.json:
            print(json.dumps(json_safe(scored), indent=2))
            return
        # trec_eval's layout: measure, query (or "all"), value
        for name, per_query in (scored.get("per_query") or {}).items():
            for query, value in per_query.items():
                print(f"{name:<24}{query:<12}{value:.4f}")
        print(f"{'num_q':<24}{'all':<12}{scored['num_queries']}")
        for name, value in scored["mean"].items():
            print(f"{name:<24}{'all':<12}{'undefined' if value is None or math.isnan(value) else f'{value:.4f}'}")
        return
    if args.json:
        print(json.dumps(json_safe(results), indent=2))
        return
    for name, value in results.items():
        print(f"{name:<24}{'all':<12}{'undefined' if value is None or math.isnan(value) else f'{value:.4f}'}")


def _print_estimates(args, estimates: dict[str, dict], columns: Sequence[str]) -> None:
    """One row per estimator (JSON: one object per estimator)."""
    if args.json:
        print(json.dumps(json_safe(estimates), indent=2))
        return
    _print_table([{"estimator": name, **row} for name, row in estimates.items()], ("estimator", *columns))


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the command is not reset by the command's own default
    common.add_argument("--home", default=argparse.SUPPRESS,
                        help="installation home (default: $EVAL_PLATFORM_HOME or ./.eval_platform)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for machines")

    parser = argparse.ArgumentParser(prog="evalp", description=__doc__.splitlines()[0], parents=[common])
    groups = parser.add_subparsers(dest="group", required=True)

    sub = groups.add_parser("init", parents=[common], help="create or migrate an installation")
    sub.set_defaults(func=cmd_init)

    datasets = groups.add_parser("datasets", help="eval datasets").add_subparsers(dest="command", required=True)
    sub = datasets.add_parser("register", parents=[common], help="validate and register a dataset version")
    sub.add_argument("dataset_id")
    sub.add_argument("--file", required=True, help="Parquet, CSV, TSV or JSONL")
    sub.add_argument("--task-type", required=True)
    sub.add_argument("--label-policy", required=True, help="human_reviewed, synthetic, implicit or mixed")
    sub.add_argument("--access", default="internal", help="public, internal or restricted")
    sub.add_argument("--team", action="append", help="team allowed to read a restricted dataset (repeatable)")
    sub.add_argument("--slice", action="append", help="column to slice metrics by (repeatable)")
    sub.add_argument("--feature", action="append", help="feature column (repeatable; default: every other numeric column)")
    sub.add_argument("--description", default="")
    sub.set_defaults(func=cmd_datasets_register)
    sub = datasets.add_parser("list", parents=[common])
    sub.set_defaults(func=cmd_datasets_list)
    sub = datasets.add_parser("invalidate", parents=[common], help="mark a dataset version contaminated")
    sub.add_argument("dataset", help="DATASET_ID@VERSION")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--by", default=_user(), help="who reports it (default: $USER)")
    sub.set_defaults(func=cmd_datasets_invalidate)

    suites = groups.add_parser("suites", help="metric suites").add_subparsers(dest="command", required=True)
    sub = suites.add_parser("register", parents=[common], help="register a suite from YAML or JSON")
    sub.add_argument("file")
    sub.set_defaults(func=cmd_suites_register)
    sub = suites.add_parser("list", parents=[common])
    sub.set_defaults(func=cmd_suites_list)

    models = groups.add_parser("models", help="models").add_subparsers(dest="command", required=True)
    sub = models.add_parser("register", parents=[common], help="register a model file as a new version")
    sub.add_argument("name")
    sub.add_argument("--file", required=True, help="skops file")
    sub.add_argument("--kind", default="sklearn")
    sub.add_argument("--trust", action="append", help="a type the file may load (repeatable; only types the installation's skops.trusted_types lists)")
    sub.add_argument("--eval", action="append", help="DATASET_ID:SUITE_ID added to the name's eval plan (repeatable)")
    sub.add_argument("--description", default="")
    sub.set_defaults(func=cmd_models_register)
    sub = models.add_parser("list", parents=[common])
    sub.set_defaults(func=cmd_models_list)
    sub = models.add_parser("promote", parents=[common], help="release a model version whose gate passed (or was overridden)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--by", default=_user(), help="who promotes (default: $USER)")
    sub.add_argument("--reason", default="")
    sub.set_defaults(func=cmd_models_promote)

    runs = groups.add_parser("runs", help="eval runs").add_subparsers(dest="command", required=True)
    sub = runs.add_parser("list", parents=[common])
    sub.add_argument("--model", help="NAME@VERSION")
    sub.add_argument("--status", action="append")
    sub.set_defaults(func=cmd_runs_list)
    sub = runs.add_parser("show", parents=[common])
    sub.add_argument("run_id")
    sub.set_defaults(func=cmd_runs_show)
    sub = runs.add_parser("lineage", parents=[common], help="every input of a run's results")
    sub.add_argument("run_id")
    sub.set_defaults(func=cmd_runs_lineage)
    sub = runs.add_parser("request", parents=[common], help="queue an eval run")
    sub.add_argument("--model", required=True, help="NAME@VERSION")
    sub.add_argument("--dataset", required=True, help="DATASET_ID or DATASET_ID@VERSION")
    sub.add_argument("--suite", required=True, help="SUITE_ID or SUITE_ID@VERSION")
    sub.add_argument("--baseline", help="NAME@VERSION to compare against")
    sub.add_argument("--recompute", action="store_true", help="run again even if already evaluated")
    sub.set_defaults(func=cmd_runs_request)

    score = groups.add_parser("score", help="score files directly, registering nothing").add_subparsers(dest="kind", required=True)
    sub = score.add_parser("classification", parents=[common], help="CSV or Parquet with label and score columns")
    sub.add_argument("--data", required=True)
    sub.add_argument("--label", required=True)
    sub.add_argument("--score", required=True)
    sub.add_argument("--metric", action="append", required=True, help="roc_auc, average_precision, f1@0.5, log_loss...")
    sub.set_defaults(func=cmd_score)
    sub = score.add_parser("generation", parents=[common], help="CSV, Parquet or JSONL with prediction and reference")
    sub.add_argument("--data", required=True)
    sub.add_argument("--prediction", required=True)
    sub.add_argument("--reference", required=True)
    sub.add_argument("--metric", action="append", required=True, help="bleu, chrf, rouge1, rougeL, exact_match, token_f1...")
    sub.set_defaults(func=cmd_score)
    sub = score.add_parser("ranking", parents=[common], help="TREC qrels and run files, trec_eval's measure names")
    sub.add_argument("--qrels", required=True)
    sub.add_argument("--run", required=True)
    sub.add_argument("--metric", action="append", required=True, help="map, recip_rank, ndcg_cut_10, P_10, recall_100...")
    sub.add_argument("--per-query", action="store_true")
    sub.set_defaults(func=cmd_score)

    sub = score.add_parser("counterfactual", parents=[common],
                           help="off-policy value (IPS, SNIPS, DR) of a new policy from a logged bandit file")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL, one logged round per row")
    sub.add_argument("--reward", required=True, help="column of logged rewards")
    sub.add_argument("--propensity", required=True, help="column of the logging policy's probability of the logged action")
    sub.add_argument("--target-probability", required=True, help="column of the new policy's probability of that action")
    sub.add_argument("--reward-model-logged", help="column of the reward model's prediction for the logged action (DR)")
    sub.add_argument("--reward-model-target", help="column of the reward model's expectation under the new policy (DR)")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.set_defaults(func=cmd_score)

    sub = score.add_parser("interleaving", parents=[common],
                           help="team-draft interleaving preference (A over B) from a click log, one row per shown item")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL")
    sub.add_argument("--query", default="query_id", help="column of the impression (query) id")
    sub.add_argument("--team", default="team", help="column of the item's team, A or B")
    sub.add_argument("--clicked", default="clicked", help="column: 1 or true when the item was clicked")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.set_defaults(func=cmd_score)

    sub = score.add_parser("agreement", parents=[common],
                           help="inter-rater agreement of a ratings file (one row per unit, one column per rater)")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL; an empty cell is a missing rating")
    sub.add_argument("--rater", action="append", required=True, help="a rater's column (repeat, at least two)")
    sub.add_argument("--level", default="nominal", choices=("nominal", "ordinal", "interval", "ratio"))
    sub.add_argument("--judge", help="a model-as-judge's column: alpha with it as one more rater")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the units")
    sub.add_argument("--seed", type=int, default=0)
    sub.set_defaults(func=cmd_score)

    gate = groups.add_parser("gate", help="gate decisions").add_subparsers(dest="command", required=True)
    sub = gate.add_parser("show", parents=[common])
    sub.add_argument("model", help="NAME@VERSION")
    sub.set_defaults(func=cmd_gate_show)
    sub = gate.add_parser("override", parents=[common], help="let a fail or no_decision through (approvers only)")
    sub.add_argument("model", help="NAME@VERSION")
    sub.add_argument("--by", default=_user(), help="the approver (default: $USER)")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--online", action="store_true", help="override the online gate instead of the offline one")
    sub.set_defaults(func=cmd_gate_override)

    metrics = groups.add_parser("metrics", help="the metric catalog").add_subparsers(dest="command", required=True)
    sub = metrics.add_parser("list", parents=[common])
    sub.set_defaults(func=cmd_metrics_list)
    sub = metrics.add_parser("mark-buggy", parents=[common], help="freeze every gate that used a metric version")
    sub.add_argument("metric", help="NAME@VERSION")
    sub.add_argument("--reason", required=True)
    sub.add_argument("--by", default=_user(), help="who reports it (default: $USER)")
    sub.set_defaults(func=cmd_metrics_mark_buggy)

    sub = groups.add_parser("recompute", parents=[common], help="recompute the runs a buggy metric or contaminated dataset touched")
    sub.add_argument("--affected-by", required=True, help="NAME@VERSION of a buggy metric, or DATASET_ID@VERSION")
    sub.add_argument("--reason", default="")
    sub.add_argument("--by", default=_user(), help="who asks (default: $USER)")
    sub.set_defaults(func=cmd_recompute)

    from eval_platform.cli.api import add_commands

    add_commands(groups, common)  # serve, tokens, status, retention
    from eval_platform.cli.experiments import add_commands as add_experiment_commands

    add_experiment_commands(groups, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    try:
        args.func(args)
    except EvalPlatformError as error:
        print(f"evalp: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from eval_platform.core.failures import database_unreachable

        if not database_unreachable(error):
            raise  # a bug: its traceback is what a report needs
        print(_unreachable_line(args, error), file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


#: Exit status when the registry database cannot be reached (sysexits' EX_TEMPFAIL: try again later).
EXIT_UNAVAILABLE = 75


def _unreachable_line(args, error: BaseException) -> str:
    """One line for an outage: which database (password masked), why, and what to do."""
    from eval_platform.core.failures import describe_failure, redact_url

    try:
        from eval_platform.core.config import PlatformConfig

        where = f" at {redact_url(PlatformConfig.resolve(args.home).db_url)}"
    except Exception:  # the configuration itself is broken: say what we know
        where = ""
    why = describe_failure(error).split(": the database is unreachable: ", 1)[-1]
    return f"evalp: the registry database{where} is unreachable: {why}; retry when it is up"


if __name__ == "__main__":
    sys.exit(main())
