"""``evalp serve``: the HTTP API under uvicorn, in this process or in worker processes."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from eval_platform.cli.arguments import CommandGroups


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn  # keeps evalp --help fast

    from eval_platform.api.app import create_app  # keeps evalp --help fast
    from eval_platform.governance.observability import configure_logging, logging_config  # keeps evalp --help fast

    if not is_loopback(args.host):
        print(f"evalp serve: listening on {args.host}: every route but /healthz needs a team token; put TLS in front of it",
              file=sys.stderr)
    if args.workers > 1:  # worker processes build the app themselves, from the same installation
        if args.home:
            os.environ["EVAL_PLATFORM_HOME"] = str(Path(args.home).expanduser().resolve())
        uvicorn.run("eval_platform.api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_config=logging_config(args.log_level.upper()), access_log=False)
        return
    configure_logging(args.log_level.upper())
    app = create_app(home=args.home)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


def add_commands(groups: CommandGroups) -> None:
    sub = groups.add_command("serve", help="run the HTTP API (uvicorn)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub.add_argument("--workers", type=int, default=1, help="worker processes (default 1; one per core under load)")
    sub.set_defaults(func=cmd_serve)
