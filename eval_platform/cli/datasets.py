"""``evalp datasets register`` and ``list``: eval datasets, validated and versioned by content.

(``datasets invalidate`` is an incident: :mod:`eval_platform.cli.incidents`.)
"""

from __future__ import annotations

import argparse
import json

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform, read_table
from eval_platform.cli.output import emit
from eval_platform.core.errors import InvalidInput


def cmd_register(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast
    from eval_platform.core.tasks import get_task_type  # keeps evalp --help fast

    task = get_task_type(args.task_type)  # its text columns stay text however the file spells them
    frame = read_table(args.file, text_columns=task.text_columns, verbatim_columns=task.verbatim_columns)
    access = {"level": args.access, "teams": args.team or []}
    result = open_platform(args).register_dataset(
        args.dataset_id, frame, task_type=args.task_type, label_policy=args.label_policy, access_policy=access,
        slice_columns=args.slice or (), feature_columns=args.feature or None, description=args.description,
        time_column=args.time_column, role=args.role, **_ratings(args))
    record = to_dict(result.record) | {"created": result.created}
    emit(args, record, columns=["key", "task_type", "role", "row_count", "content_hash", "created"])


def cmd_hash_examples(args: argparse.Namespace) -> None:
    """Write the training manifest of a file: each row's example content hash over ``--column`` (or over the
    input columns of a registered dataset, ``--like``), the definition the leakage check uses."""
    import pyarrow.parquet as pq  # keeps evalp --help fast

    from eval_platform.core.errors import InvalidInput  # keeps evalp --help fast
    from eval_platform.core.hashing import example_hashes  # keeps evalp --help fast
    from eval_platform.datasets.leakage import content_columns, manifest_table  # keeps evalp --help fast

    if bool(args.column) == bool(args.like):
        raise InvalidInput("--column", "give the input columns (--column, repeatable) or a dataset to take them from (--like), one of the two")
    from eval_platform.core.tasks import get_task_type  # keeps evalp --help fast

    like = open_platform(args).dataset(args.like) if args.like else None
    # the dataset's text read as the registration read it, so a row hashes alike in both
    task = get_task_type(like.task_type) if like is not None else None
    frame = read_table(args.file, text_columns=task.text_columns if task else (), verbatim_columns=task.verbatim_columns if task else ())
    columns = list(args.column) if like is None else content_columns(like.schema)
    if not columns:
        raise InvalidInput("--like", f"dataset {args.like} has no input columns to hash")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput("--column", f"column(s) {', '.join(map(repr, missing))} are not in {args.file}")
    table = manifest_table(example_hashes(frame, columns).tolist())
    pq.write_table(table, args.out)
    emit(args, {"out": args.out, "rows": len(frame), "distinct_hashes": table.num_rows, "columns": columns},
         columns=["out", "rows", "distinct_hashes", "columns"])


def _ratings(args: argparse.Namespace) -> dict:
    """``rating_columns``/``rating_scale`` from ``--rating-column`` and ``--rating-scale`` (only when given, so a
    registration without raters calls the platform as before). The scale is JSON (``{"type": "likert", "levels":
    [1, 2, 3, 4, 5]}``) or ``TYPE:LEVEL,LEVEL,...`` (``likert:1,2,3,4,5``, ``ordinal:poor,fair,good``, ``preference``),
    levels that parse as numbers taken as numbers."""
    if not args.rating_column and not args.rating_scale:
        return {}
    scale = args.rating_scale
    if scale is not None and scale.lstrip().startswith("{"):
        try:
            scale = json.loads(scale)
        except (ValueError, RecursionError) as error:  # RecursionError: nested thousands deep
            raise InvalidInput("rating_scale", f"is not valid JSON: {error}") from None
    elif scale is not None:
        kind, _, levels = scale.partition(":")
        scale = {"type": kind} | ({"levels": [_number_or_text(v) for v in levels.split(",")]} if levels else {})
    return {"rating_columns": args.rating_column, "rating_scale": scale}


def _number_or_text(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    rows = [to_dict(r) for r in open_platform(args).datasets()]
    emit(args, rows, ["key", "task_type", "label_policy", "role", "row_count", "status", "content_hash"], rows=rows)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("datasets", help="eval datasets")
    sub = groups.add_to_group("datasets", "register", help="validate and register a dataset version")
    sub.add_argument("dataset_id")
    sub.add_argument("--file", required=True, help="Parquet, CSV, TSV or JSONL")
    sub.add_argument("--task-type", required=True)
    sub.add_argument("--label-policy", required=True, help="human_reviewed, synthetic, implicit or mixed")
    sub.add_argument("--access", default="internal", help="public, internal or restricted")
    sub.add_argument("--team", action="append", help="team allowed to read a restricted dataset (repeatable)")
    sub.add_argument("--slice", action="append", help="column to slice metrics by (repeatable)")
    sub.add_argument("--feature", action="append", help="feature column (repeatable; default: every other numeric column)")
    sub.add_argument("--description", default="")
    sub.add_argument("--time-column", help="column of each example's time (timestamps or ISO 8601): examples at or before "
                     "a model's training cutoff are counted as leakage")
    sub.add_argument("--role", default="standard",
                     help="standard, golden, canary or calibration (golden and canary versions are re-evaluated on the promoted models by the canary "
                          "schedule; a calibration version holds human verdicts that license a judge)")
    sub.add_argument("--rating-column", action="append", help="a human rater's column (repeatable, at least 2)")
    sub.add_argument("--rating-scale", help="the raters' scale: JSON, or likert:1,2,3,4,5 / ordinal:LOW,..,HIGH / "
                                            "nominal:A,B,.. / preference")
    sub.set_defaults(func=cmd_register)
    sub = groups.add_to_group("datasets", "hash-examples", help="write a training manifest: each row's example content hash")
    sub.add_argument("file", help="the training examples: Parquet, CSV, TSV or JSONL")
    sub.add_argument("--column", action="append", help="an input column to hash (repeatable; the eval dataset's names)")
    sub.add_argument("--like", metavar="DATASET_KEY", help="hash the input columns of this registered dataset version instead")
    sub.add_argument("--out", required=True, help="the manifest to write (Parquet, one column example_hash)")
    sub.set_defaults(func=cmd_hash_examples)
    groups.add_to_group("datasets", "list").set_defaults(func=cmd_list)
