"""``evalp models register`` and ``list``: model versions, their eval plans and where their gates stand.

(``models promote`` is a release step: :mod:`eval_platform.cli.gates`.)
"""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import emit
from eval_platform.core.errors import InvalidInput


def eval_plan(entries: list[str] | None) -> list[tuple[str, str]]:
    """``--eval DATASET_ID:SUITE_ID`` entries as (dataset id, suite id) pairs."""
    plan = []
    for entry in entries or []:
        dataset_id, sep, suite_id = entry.partition(":")
        if not sep:
            raise InvalidInput("--eval", f"{entry!r} must be DATASET_ID:SUITE_ID")
        plan.append((dataset_id, suite_id))
    return plan


def cmd_register(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    plan = eval_plan(args.eval)  # refused before the registry is opened
    if args.api:
        _register_remote(args)
        return
    platform = open_platform(args)
    result = platform.register_model(args.name, args.file, kind=args.kind, trusted_types=args.trust or (),
                                     eval_plan=plan, description=args.description,
                                     training_cutoff=args.training_cutoff, training_manifest=args.training_manifest)
    version = to_dict(result.record)
    queued = [r.run_id for r in platform.runs(version["key"], ["queued"])]
    emit(args, version | {"created": result.created, "queued_runs": queued}, columns=["key", "kind", "file_hash", "created", "queued_runs"])


def _register_remote(args: argparse.Namespace) -> None:
    """``--api URL``: upload the file to the HTTP API as the token's team (a CI job: README "CI contract")."""
    from pathlib import Path  # keeps evalp --help fast

    from eval_platform.cli import remote  # keeps evalp --help fast

    token = remote.api_token(args.token_env)
    path = Path(args.file)
    if not path.is_file():
        raise InvalidInput("--file", f"{path} does not exist or is not a file")
    fields = [("name", args.name), ("kind", args.kind), ("description", args.description)]
    fields += [("trustedTypes", t) for t in args.trust or ()] + [("evalPlan", e) for e in args.eval or ()]
    if args.training_cutoff:
        fields.append(("trainingCutoff", args.training_cutoff))
    files = [("file", path.name, path.read_bytes())]
    if args.training_manifest:
        manifest = Path(args.training_manifest)
        if not manifest.is_file():
            raise InvalidInput("--training-manifest", f"{manifest} does not exist or is not a file")
        files.append(("trainingManifest", manifest.name, manifest.read_bytes()))
    try:
        version = remote.post_form(args.api, "/v1/models", token, fields, files)
    except remote.ApiRefused as error:
        raise InvalidInput("--api", f"the API refused the registration (HTTP {error.status}): {error}") from error
    emit(args, version, columns=["key", "kind", "fileHash", "created", "queuedRuns"])


def cmd_list(args: argparse.Namespace) -> None:
    from eval_platform.core.records import to_dict  # keeps evalp --help fast

    platform = open_platform(args)
    rows = []
    for model in platform.models():
        decision = platform.gate_decision(model.key)
        rows.append(to_dict(model) | {"gate": decision.decision if decision else None,
                                      "promoted": platform.promoted_version(model.name) == model.version})
    emit(args, rows, ["key", "kind", "file_hash", "gate", "promoted", "registered_at"], rows=rows)


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("models", help="models")
    sub = groups.add_to_group("models", "register", help="register a model file as a new version")
    sub.add_argument("name")
    sub.add_argument("--file", required=True, help="skops file")
    sub.add_argument("--kind", default="sklearn")
    sub.add_argument("--trust", action="append",
                     help="a type the file may load (repeatable; only types the installation's skops.trusted_types lists)")
    sub.add_argument("--eval", action="append", help="DATASET_ID:SUITE_ID added to the name's eval plan (repeatable)")
    sub.add_argument("--description", default="")
    sub.add_argument("--training-cutoff", help="ISO 8601 time of the newest training example (naive: UTC)")
    sub.add_argument("--training-manifest", help="the training examples' content hashes (evalp datasets hash-examples)")
    sub.add_argument("--api", metavar="URL", help="register through this HTTP API as the token's team, not in the local registry")
    sub.add_argument("--token-env", default="EVALP_TOKEN", metavar="VAR",
                     help="with --api: the environment variable holding the API token (default EVALP_TOKEN)")
    sub.set_defaults(func=cmd_register)
    groups.add_to_group("models", "list").set_defaults(func=cmd_list)
