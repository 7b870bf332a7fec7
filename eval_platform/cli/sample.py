"""``evalp sample``: a stratified sample of an unlabelled score log to label (``plan``), and prevalence, precision and
recall estimated from the labels that came back (``estimate``). The statistics are in
:mod:`eval_platform.stats.sampling`.

A plan is two files: the rows to label (``--out``, ``.csv`` or ``.parquet``: ``id``, ``score``, ``stratum``,
``inclusion_probability`` and an empty ``label`` column for the labellers) and, beside it, the stratum table
``<out stem>.strata.json`` (edges, ``N_h``, ``n_h``, allocation, seed). ``estimate`` reads both; its
``--labels`` file needs the id and label columns only, so the filled-in plan file itself will do.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import read_table
from eval_platform.cli.output import print_json, print_table
from eval_platform.core.errors import InvalidInput

#: A pickle's first byte (protocol 2 and later): such a file is refused before pandas sees it.
PICKLE_MAGIC = b"\x80"
PLAN_SUFFIXES = (".csv", ".parquet")


def strata_path(plan: Path) -> Path:
    """The stratum table beside a plan's rows file: ``plan.csv`` -> ``plan.strata.json``."""
    return plan.with_name(f"{plan.stem}.strata.json")


def _read(path: str, field: str):
    file = Path(path)
    if file.is_file():
        with file.open("rb") as handle:
            if handle.read(1) == PICKLE_MAGIC:
                raise InvalidInput(field, f"{path} is a pickle; refused (loading one runs arbitrary code): use CSV or Parquet")
    return read_table(path, field)


def _column(frame, name: str, field: str, path: str):
    if name not in frame.columns:
        raise InvalidInput(field, f"{path} has no column {name!r} (columns: {', '.join(map(str, frame.columns))})")
    return frame[name]


def cmd_plan(args: argparse.Namespace) -> None:
    from eval_platform.stats import sampling  # keeps evalp --help fast

    out = Path(args.out)
    if out.suffix.lower() not in PLAN_SUFFIXES:
        raise InvalidInput("--out", f"{args.out}: the plan is written as .csv or .parquet")
    log = _read(args.scores, "--scores")
    ids = _column(log, args.id_column, "--id-column", args.scores)
    if ids.isna().any():
        row = int(ids.isna().to_numpy().nonzero()[0][0])
        raise InvalidInput("--id-column", f"row {row + 1}: the id is missing")
    scores = _column(log, args.score_column, "--score-column", args.scores)
    try:
        score_values = scores.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InvalidInput("--score-column", f"column {args.score_column!r} must hold numbers") from None
    plan = sampling.plan_stratified_sample(ids.astype(str).to_numpy(dtype=object), score_values, args.budget,
                                           strata=args.strata, allocation=args.allocation, seed=args.seed,
                                           thresholds=args.threshold or ())
    _write_plan(plan, out)
    summary = {"rows": str(out), "strata_table": str(strata_path(out)), **plan.to_document()}
    if args.json:
        print_json(summary)
        return
    print(f"{plan.budget} of {plan.population_size} rows to label in {len(plan.strata)} strata ({plan.allocation} allocation, "
          f"seed {plan.seed}): {out}, stratum table {strata_path(out)}")
    print_table([{**row, "inclusion_probability": row["sample_size"] / row["population"]} for row in summary["strata"]],
                ("index", "lower_edge", "upper_edge", "population", "sample_size", "inclusion_probability", "prior_prevalence"))


def _write_plan(plan: Any, out: Path) -> None:
    """Both files or neither: each is written to a temporary name and renamed once both are complete."""
    import pandas as pd  # keeps evalp --help fast

    rows = pd.DataFrame({"id": plan.sample_ids, "score": plan.sample_scores, "stratum": plan.sample_strata,
                         "inclusion_probability": plan.inclusion_probabilities, "label": pd.Series([None] * plan.sample_ids.size, dtype="Float64")})
    sidecar = strata_path(out)
    temporary = [out.with_name(f".{out.name}.partial"), sidecar.with_name(f".{sidecar.name}.partial")]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".parquet":
            rows.to_parquet(temporary[0], index=False)
        else:
            rows.to_csv(temporary[0], index=False)
        temporary[1].write_text(json.dumps(plan.to_document(), indent=2))
    except OSError as error:
        for file in temporary:
            file.unlink(missing_ok=True)
        raise InvalidInput("--out", f"{out} could not be written: {error}") from error
    os.replace(temporary[1], sidecar)
    os.replace(temporary[0], out)


def _read_plan(path: str) -> Any:
    from eval_platform.stats import sampling  # keeps evalp --help fast

    sidecar = strata_path(Path(path))
    if not sidecar.is_file():
        raise InvalidInput("--plan", f"the stratum table {sidecar} beside {path} does not exist (evalp sample plan writes both)")
    try:
        document = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidInput("--plan", f"{sidecar} could not be read: {error}") from error
    if not isinstance(document, dict):
        raise InvalidInput("--plan", f"{sidecar} must contain a JSON object")
    rows = _read(path, "--plan")
    ids = _column(rows, "id", "--plan", path).astype(str).to_numpy(dtype=object)
    scores = _column(rows, "score", "--plan", path).to_numpy()
    strata = _column(rows, "stratum", "--plan", path).to_numpy()
    return sampling.SamplePlan.from_document(document, ids, scores, strata, field_name="--plan")


def cmd_estimate(args: argparse.Namespace) -> None:
    from eval_platform.stats import sampling  # keeps evalp --help fast

    plan = _read_plan(args.plan)
    labels_frame = _read(args.labels, "--labels")
    ids = _column(labels_frame, args.id_column, "--id-column", args.labels).astype(str).to_numpy(dtype=object)
    labels = plan.align_labels(ids, _label_values(_column(labels_frame, args.label_column, "--label-column", args.labels)),
                               field_name="--labels")
    prevalence = sampling.estimate_prevalence(plan, labels, args.confidence)
    at_thresholds = [sampling.estimate_precision_recall(plan, labels, threshold, args.confidence) for threshold in args.threshold or ()]
    if args.json:
        print_json({"prevalence": asdict(prevalence), "precision_recall": [asdict(result) for result in at_thresholds]})
        return
    rows = [{"quantity": "prevalence", **_row(prevalence)}]
    for result in at_thresholds:
        for estimate in (result.precision, result.recall):
            rows.append({"quantity": f"{estimate.quantity}@{result.threshold:g}", **_row(estimate)})
    print_table(rows, ("quantity", "value", "ci_low", "ci_high", "se", "n_labelled", "n_positive", "n_eff"))


def _label_values(column: Any) -> Any:
    """A label column as floats (``NaN`` where empty); a cell that is not a number is refused naming its row."""
    import pandas as pd  # keeps evalp --help fast

    if column.dtype == bool:
        return column.to_numpy(dtype=float)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise InvalidInput("--labels", f"row {row + 1}: {column.iloc[row]!r} is not a 0/1 label (leave it empty when not labelled)")
    return numbers.to_numpy(dtype=float)


def _row(estimate: Any) -> dict:
    return {"value": estimate.value, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high, "se": estimate.se,
            "n_labelled": estimate.n_labelled, "n_positive": estimate.n_positive, "n_eff": estimate.effective_sample_size}


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("sample", help="stratified samples of a score log to label, and estimates from the labels")
    sub = groups.add_to_group("sample", "plan", help="choose the rows of an unlabelled score log to label, stratified by score")
    sub.add_argument("--scores", required=True, help="the score log: CSV, TSV, Parquet or JSONL, one row per scored item")
    sub.add_argument("--id-column", default="id")
    sub.add_argument("--score-column", default="score")
    sub.add_argument("--budget", type=int, required=True, help="how many rows to label")
    sub.add_argument("--strata", type=int, default=10, help="number of score-quantile strata (default 10)")
    sub.add_argument("--threshold", type=float, action="append",
                     help="a decision threshold to make a stratum edge, so precision at it has an exact denominator (repeat)")
    sub.add_argument("--allocation", choices=("neyman", "proportional", "equal"), default="neyman",
                     help="neyman (default) reads the scores as prior probabilities")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--out", required=True, help="the rows to label (.csv or .parquet); the stratum table goes beside it")
    sub.set_defaults(func=cmd_plan)

    sub = groups.add_to_group("sample", "estimate", help="prevalence (and precision/recall at thresholds) from a plan's labels")
    sub.add_argument("--plan", required=True, help="the rows file evalp sample plan wrote (its .strata.json beside it)")
    sub.add_argument("--labels", required=True, help="id and label (0/1, empty when not labelled) columns; the filled plan file will do")
    sub.add_argument("--id-column", default="id")
    sub.add_argument("--label-column", default="label")
    sub.add_argument("--threshold", type=float, action="append", help="precision and recall of score >= threshold (repeat)")
    sub.add_argument("--confidence", type=float, default=0.95)
    sub.set_defaults(func=cmd_estimate)
