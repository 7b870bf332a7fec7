"""``evalp review``: the review queue of judged runs' examples: list and show items, label them, publish the labels
as a new version of a calibration dataset (:mod:`eval_platform.evaluation.review_queue`).

Locally (the registry, as the local operator: ``--by`` names the reviewer) or, with ``--api URL``, through the HTTP
API as the token's principal (``$EVALP_TOKEN`` unless ``--token-env`` names another variable).
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlencode

from eval_platform.cli.arguments import CommandGroups, current_user
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json, print_table
from eval_platform.core.errors import InvalidInput

# the review queue's statuses, reasons and calibration role (ReviewStatus, ReviewReason, CALIBRATION_ROLE), written
# out: importing the queue (pandas, SQLAlchemy) would slow down every evalp --help
STATUSES = ("open", "labelled", "published")
REASONS = ("judge_samples_disagree", "judge_vs_reference", "audit_sample")
CALIBRATION_ROLE_NAME = "calibration"
_COLUMNS = ["id", "status", "reason", "dataset", "model", "example_id", "judge_label", "judge_score", "reference_value", "label",
            "reviewer"]
_CAMEL = {"runId": "run_id", "exampleId": "example_id", "judgeLabel": "judge_label", "judgeScore": "judge_score",
          "judgeAgreement": "judge_agreement", "judgeConfigHash": "judge_config_hash", "referenceMetric": "reference_metric",
          "referenceValue": "reference_value", "createdAt": "created_at", "publishedIn": "published_in",
          "publishedAt": "published_at", "labelledAt": "labelled_at"}


def _snake(item: dict) -> dict:
    """An API item with the command line's (snake_case) keys."""
    out = {_CAMEL.get(k, k): v for k, v in item.items()}
    out["labels"] = [{_CAMEL.get(k, k): v for k, v in label.items()} for label in item.get("labels") or []]
    return out


def _remote(args: argparse.Namespace, path: str, body: Any = None) -> Any:
    from eval_platform.cli import remote  # keeps evalp --help fast

    token = remote.api_token(args.token_env)
    try:
        return remote.get_json(args.api, path, token) if body is None else remote.post_json(args.api, path, token, body)
    except remote.ApiRefused as error:
        raise InvalidInput("--api", f"the API refused (HTTP {error.status}): {error}") from error


def _show_items(args: argparse.Namespace, items: list[dict]) -> None:
    if args.json:
        print_json(items)
    else:
        print_table(items, _COLUMNS)


def cmd_list(args: argparse.Namespace) -> None:
    if args.api:
        query = {k: v for k, v in {"dataset": args.dataset, "status": args.status, "reason": args.reason,
                                   "offset": args.offset, "limit": args.limit}.items() if v is not None}
        items = [_snake(i) for i in _remote(args, "/v1/review/items?" + urlencode(query))]
    else:
        from eval_platform.evaluation.review_queue import list_items  # keeps evalp --help fast

        views, _ = list_items(open_platform(args), dataset=args.dataset, status=args.status, reason=args.reason,
                              offset=args.offset, limit=args.limit)
        items = [v.to_json() for v in views]
    _show_items(args, items)


def _item(args: argparse.Namespace, payload: dict) -> None:
    if args.json:
        print_json(payload)
        return
    print_table([payload], _COLUMNS)
    example = payload.get("example") or {}
    for name in ("prompt", "reference", "answer"):
        if name in example:
            print(f"{name}: {example[name]}")
    for label in payload.get("labels") or []:
        print(f"label {label['label']} by {label['reviewer']} at {label['labelled_at']}" + (f": {label['note']}" if label["note"] else ""))


def cmd_show(args: argparse.Namespace) -> None:
    if args.api:
        _item(args, _snake(_remote(args, f"/v1/review/items/{args.id}")))
        return
    from eval_platform.evaluation.review_queue import get_item  # keeps evalp --help fast

    _item(args, get_item(open_platform(args), args.id).to_json())


def cmd_label(args: argparse.Namespace) -> None:
    if args.api:
        _item(args, _snake(_remote(args, f"/v1/review/items/{args.id}/label", {"label": args.label, "note": args.note})))
        return
    from eval_platform.evaluation.review_queue import label_item  # keeps evalp --help fast

    _item(args, label_item(open_platform(args), args.id, args.label, args.note, by=args.by).to_json())


def cmd_publish(args: argparse.Namespace) -> None:
    if args.api:
        body = {"into": args.into, "items": args.item or None, "dataset": args.dataset, "role": args.role,
                "accessLevel": args.access, "teams": args.team or [], "allowAggregates": args.allow_aggregates}
        payload = _remote(args, "/v1/review/publish", {k: v for k, v in body.items() if v is not None})
        result = {"dataset": payload["dataset"]["key"], "created": payload["dataset"].get("created"), "items": payload["items"],
                  "rows_added": payload["rowsAdded"], "label_policy": payload["labelPolicy"], "lineage": payload["lineage"]}
    else:
        from eval_platform.evaluation.review_queue import publish  # keeps evalp --help fast

        policy = {"level": args.access, "teams": args.team or [], "allow_aggregates": args.allow_aggregates}
        published = publish(open_platform(args), args.into, items=args.item or None, dataset=args.dataset, role=args.role,
                            access_policy=policy)
        result = {"dataset": published.dataset.key, "created": published.created, "items": list(published.item_ids),
                  "rows_added": published.rows_added, "label_policy": published.label_policy, "lineage": published.lineage}
    if args.json:
        print_json(result)
    else:
        print(f"published {len(result['items'])} item(s) as {result['dataset']} ({result['label_policy']}, "
              f"{result['rows_added']} row(s) added{'' if result['created'] else '; identical content: the existing version'})")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive item id, got {text!r}")
    return int(text)


def _api_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--api", metavar="URL", help="act through this HTTP API as the token's principal instead of the registry")
    sub.add_argument("--token-env", default="EVALP_TOKEN", metavar="VAR",
                     help="with --api: the environment variable holding the API token (default EVALP_TOKEN)")


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("review", help="the review queue: examples a judge and its samples or the metrics disagree on")
    sub = groups.add_to_group("review", "list", help="review items (oldest first)")
    sub.add_argument("--dataset", help="DATASET_ID or DATASET_ID@VERSION")
    sub.add_argument("--status", choices=STATUSES)
    sub.add_argument("--reason", choices=REASONS)
    sub.add_argument("--offset", type=int, default=0)
    sub.add_argument("--limit", type=int, default=100)
    _api_options(sub)
    sub.set_defaults(func=cmd_list)
    sub = groups.add_to_group("review", "show", help="an item: its example, the judged answer, its labels")
    sub.add_argument("id", type=_positive)
    _api_options(sub)
    sub.set_defaults(func=cmd_show)
    sub = groups.add_to_group("review", "label", help="label an item pass or fail (relabels are kept; the newest counts)")
    sub.add_argument("id", type=_positive)
    sub.add_argument("--label", required=True, choices=["pass", "fail"])
    sub.add_argument("--note", default="")
    sub.add_argument("--by", default=current_user(), help="who labels (default: $USER; with --api: the token's principal)")
    _api_options(sub)
    sub.set_defaults(func=cmd_label)
    sub = groups.add_to_group("review", "publish", help="publish labelled items as a new version of a calibration dataset")
    sub.add_argument("--into", required=True, help="the calibration dataset's id")
    sub.add_argument("--item", type=_positive, action="append", help="an item id (repeat); or --dataset")
    sub.add_argument("--dataset", help="publish every labelled item of this dataset (ID or ID@VERSION)")
    sub.add_argument("--role", default=CALIBRATION_ROLE_NAME, help=f"a new target's role (default {CALIBRATION_ROLE_NAME})")
    sub.add_argument("--access", choices=["public", "internal", "restricted"], default="internal", help="a new target's access level")
    sub.add_argument("--team", action="append", help="a team allowed to read a new restricted target (repeat)")
    sub.add_argument("--allow-aggregates", action="store_true", help="a new restricted target's aggregates are readable by every team")
    _api_options(sub)
    sub.set_defaults(func=cmd_publish)


__all__ = ["add_commands"]
