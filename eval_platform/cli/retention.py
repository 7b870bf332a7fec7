"""``evalp retention purge``: delete model outputs (predictions) kept past their dataset's retention."""

from __future__ import annotations

import argparse

from eval_platform.cli.arguments import CommandGroups
from eval_platform.cli.inputs import open_platform
from eval_platform.cli.output import print_json


def cmd_purge(args: argparse.Namespace) -> None:
    from eval_platform.governance.retention import purge_expired  # keeps evalp --help fast

    report = purge_expired(open_platform(args), dry_run=args.dry_run)
    if args.json:
        print_json(report.as_dict())
        return
    verb = "would purge" if report.dry_run else "purged"
    print(f"{verb} {len(report.purged)} prediction artifact(s) of {len(report.runs_marked)} run(s); "
          f"{report.cache_rows_deleted} cache row(s); kept {report.kept}; deferred {len(report.deferred)} (runs in progress)")
    print(f"  of which {report.shard_artifacts} shard artifact(s), with {report.shard_index_entries} shard index entr(y/ies)")
    for artifact in report.purged:
        print(f"  {artifact.kind:<17} {artifact.artifact_hash[:19]}  {artifact.classification:<10} {artifact.retention_days}d"
              f"  produced {artifact.produced_at}"
              f"  runs: {', '.join(artifact.run_ids) or '-'}")


def add_commands(groups: CommandGroups) -> None:
    groups.add_group("retention", help="model-output retention")
    sub = groups.add_to_group("retention", "purge", help="delete predictions past their dataset's retention")
    sub.add_argument("--dry-run", action="store_true", help="report what would be purged, delete nothing")
    sub.set_defaults(func=cmd_purge)
