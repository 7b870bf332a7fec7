"""``evalp score``: score files directly, registering nothing (classification, generation, ranking with trec_eval's
measures, off-policy estimates, interleaving preferences and inter-rater agreement)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import read_table
from eval_platform.cli.output import format_value, print_json, print_table


def cmd_classification(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    params = scoring.parse_metric_params(args.param, args.metric)
    _print_metric_values(args, scoring.score_classification(read_table(args.data, "--data"), args.label, args.score, args.metric, params))


def cmd_generation(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    params = scoring.parse_metric_params(args.param, args.metric)
    table = read_table(args.data, "--data", text_columns=(args.prediction, args.reference))
    _print_metric_values(args, scoring.score_generation(table, args.prediction, args.reference, args.metric, params))


def cmd_multiclass(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    params = scoring.parse_metric_params(args.param, args.metric)
    _print_metric_values(args, scoring.score_multiclass(read_table(args.data, "--data"), args.label, args.metric,
                                                        args.proba_prefix, params))


def cmd_multilabel(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    params = scoring.parse_metric_params(args.param, args.metric)
    _print_metric_values(args, scoring.score_multilabel(read_table(args.data, "--data"), args.labels, args.metric,
                                                        args.proba_prefix, args.label_separator, params))


def _print_metric_values(args: argparse.Namespace, results: dict[str, float]) -> None:
    """One line per metric over the whole file, in trec_eval's layout (measure, ``all``, value)."""
    if args.json:
        print_json(results)
        return
    width = measure_width(results)
    for name, value in results.items():
        print(f"{name:<{width}}{'all':<12}{format_value(value)}")


def measure_width(names) -> int:
    """The measure column's width: trec_eval's 24, wider when a name (``threshold_at_precision@0.95``) needs it."""
    return max(24, *(len(str(name)) + 2 for name in names)) if names else 24


def cmd_ranking(args: argparse.Namespace) -> None:
    from eval_platform.metrics import trec  # keeps evalp --help fast

    qrels, run = trec.read_qrels(args.qrels), trec.read_run(args.run)
    scored = trec.score_ranking(qrels, run, args.metric, per_query=args.per_query)
    if args.json:
        print_json(scored)
        return
    # trec_eval's layout: measure, query (or "all"), value; counts (num_rel, num_ret, num_rel_ret) as integers
    counts = {name for name in scored["mean"] if trec.parse_measure(name)[0] in trec.SUMMED}
    width = measure_width([*scored["mean"], *(scored.get("per_query") or {})])
    query_width = max(12, *(len(str(q)) + 2 for queries in (scored.get("per_query") or {}).values() for q in queries), 0)
    for name, per_query in (scored.get("per_query") or {}).items():
        for query, value in per_query.items():
            print(f"{name:<{width}}{query:<{query_width}}{int(value) if name in counts else f'{value:.4f}'}")
    print(f"{'num_q':<{width}}{'all':<{query_width}}{scored['num_queries']}")
    for name, value in scored["mean"].items():
        print(f"{name:<{width}}{'all':<{query_width}}{int(value) if name in counts else format_value(value)}")


def cmd_counterfactual(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    estimates = scoring.score_counterfactual(
        read_table(args.data, "--data"), args.reward, args.propensity, args.target_probability,
        args.reward_model_logged, args.reward_model_target, args.confidence)
    _print_estimates(args, estimates, ("value", "ci_low", "ci_high", "std_error", "ess", "n", "max_weight"))


def cmd_interleaving(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    outcome = scoring.score_interleaving(read_table(args.data, "--data"), args.query, args.team, args.clicked, args.confidence)
    _print_estimates(args, {"A_vs_B": outcome}, ("wins", "losses", "ties", "n_queries", "preference", "win_rate",
                                                 "win_rate_ci_low", "win_rate_ci_high", "p_value"))


def cmd_agreement(args: argparse.Namespace) -> None:
    from eval_platform.metrics import scoring  # keeps evalp --help fast

    estimates = scoring.score_agreement(read_table(args.data, "--data"), args.rater, args.level, args.judge,
                                        args.confidence, args.resamples, args.seed)
    _print_estimates(args, estimates, ("value", "ci_low", "ci_high", "n_units", "n_raters"))


def _print_estimates(args: argparse.Namespace, estimates: dict[str, dict], columns: Sequence[str]) -> None:
    """One row per estimator (JSON: one object per estimator)."""
    if args.json:
        print_json(estimates)
        return
    print_table([{"estimator": name, **row} for name, row in estimates.items()], ("estimator", *columns))


def _add_param_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--param", action="append", metavar="METRIC.KEY=VALUE",
                     help="a metric parameter, e.g. bleu.tokenize=intl, rougeL.use_stemmer=true, exact_match.normalization=none, "
                          "f1_micro.threshold=0.3 (repeatable; METRIC as given to --metric)")


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("score", help="score files directly, registering nothing", dest="kind")
    sub = groups.add_to_group("score", "classification", help="CSV or Parquet with label and score columns")
    sub.add_argument("--data", required=True)
    sub.add_argument("--label", required=True)
    sub.add_argument("--score", required=True)
    sub.add_argument("--metric", action="append", required=True, help="roc_auc, average_precision, f1@0.5, log_loss...")
    _add_param_option(sub)
    sub.set_defaults(func=cmd_classification)

    sub = groups.add_to_group("score", "multiclass", help="a label column and one proba_<class> score column per class")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL")
    sub.add_argument("--label", required=True, help="column of the true class")
    sub.add_argument("--proba-prefix", default="proba_", help="prefix of the score columns (default proba_)")
    sub.add_argument("--metric", action="append", required=True,
                     help="accuracy, f1_macro, precision_weighted, recall_micro, roc_auc_ovr, log_loss, class_recall@<class>...")
    _add_param_option(sub)
    sub.set_defaults(func=cmd_multiclass)

    sub = groups.add_to_group("score", "multilabel", help="a labels column and one proba_<label> score column per label")
    sub.add_argument("--data", required=True, help="JSONL or Parquet (labels: a list per row), or CSV with --label-separator")
    sub.add_argument("--labels", required=True, help="column of each example's true labels")
    sub.add_argument("--label-separator", help="split a text labels column on this, e.g. '|' (an empty cell: no label)")
    sub.add_argument("--proba-prefix", default="proba_", help="prefix of the score columns (default proba_)")
    sub.add_argument("--metric", action="append", required=True,
                     help="f1_micro, f1_macro@0.3, hamming_loss, subset_accuracy, roc_auc_macro, label_f1@<label>...")
    _add_param_option(sub)
    sub.set_defaults(func=cmd_multilabel)

    sub = groups.add_to_group("score", "generation", help="CSV, Parquet or JSONL with prediction and reference")
    sub.add_argument("--data", required=True)
    sub.add_argument("--prediction", required=True)
    sub.add_argument("--reference", required=True)
    sub.add_argument("--metric", action="append", required=True, help="bleu, chrf, rouge1, rougeL, exact_match, token_f1...")
    _add_param_option(sub)
    sub.set_defaults(func=cmd_generation)

    sub = groups.add_to_group("score", "ranking", help="TREC qrels and run files, trec_eval's measure names")
    sub.add_argument("--qrels", required=True)
    sub.add_argument("--run", required=True)
    sub.add_argument("--metric", action="append", required=True,
                     help="map, map_cut_10, recip_rank, ndcg, ndcg_cut_10, bpref, P_10, recall_100, set_F, num_rel_ret...")
    sub.add_argument("--per-query", action="store_true")
    sub.set_defaults(func=cmd_ranking)

    sub = groups.add_to_group("score", "counterfactual", help="off-policy value (IPS, SNIPS, DR) of a new policy from a logged bandit file")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL, one logged round per row")
    sub.add_argument("--reward", required=True, help="column of logged rewards")
    sub.add_argument("--propensity", required=True, help="column of the logging policy's probability of the logged action")
    sub.add_argument("--target-probability", required=True, help="column of the new policy's probability of that action")
    sub.add_argument("--reward-model-logged", help="column of the reward model's prediction for the logged action (DR)")
    sub.add_argument("--reward-model-target", help="column of the reward model's expectation under the new policy (DR)")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.set_defaults(func=cmd_counterfactual)

    sub = groups.add_to_group("score", "interleaving",
                              help="team-draft interleaving preference (A over B) from a click log, one row per shown item")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL")
    sub.add_argument("--query", default="query_id", help="column of the impression (query) id")
    sub.add_argument("--team", default="team", help="column of the item's team, A or B")
    sub.add_argument("--clicked", default="clicked", help="column: 1 or true when the item was clicked")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.set_defaults(func=cmd_interleaving)

    sub = groups.add_to_group("score", "agreement",
                              help="inter-rater agreement of a ratings file (one row per unit, one column per rater)")
    sub.add_argument("--data", required=True, help="CSV, Parquet or JSONL; an empty cell is a missing rating")
    sub.add_argument("--rater", action="append", required=True, help="a rater's column (repeat, at least two)")
    sub.add_argument("--level", default="nominal", choices=("nominal", "ordinal", "interval", "ratio"))
    sub.add_argument("--judge", help="a model-as-judge's column: alpha with it as one more rater")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the units")
    sub.add_argument("--seed", type=int, default=0)
    sub.set_defaults(func=cmd_agreement)
