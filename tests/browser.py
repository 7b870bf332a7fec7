"""Headless Chromium for the UI tests: Debian's ``chromium`` package driven by Playwright (the ``dev`` extra).

Playwright is only the driver here: it never downloads a browser (``playwright install`` is not used, and would
fail on machines without that download); it starts the system's Chromium by path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

CHROMIUM = Path(os.environ.get("EVAL_PLATFORM_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = "apt-get install -y chromium (Debian's package; .ci/run installs it), and pip install -e '.[dev]' for Playwright"
# .ci/run sets this: there the UI test always runs, whatever else is set
REQUIRED = os.environ.get("EVAL_PLATFORM_REQUIRE_BROWSER") == "1"
# a developer without Chromium who does not want the UI test says so explicitly; it is then skipped, and said so
OPT_OUT = os.environ.get("EVAL_PLATFORM_SKIP_BROWSER") == "1"

# Flags this machine needs: no sandbox (root in a container), no GPU. The background-networking ones stop Chromium's
# own connections (updates, sync, field trials), which were otherwise refused many at a time and slowed every page.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def missing() -> str | None:
    """None when the browser and its driver are here, else what is missing."""
    problems = []
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)) and shutil.which(str(CHROMIUM)) is None:
        problems.append(f"no Chromium at {CHROMIUM}")
    if importlib.util.find_spec("playwright") is None:
        problems.append("the Python package playwright is not installed")
    return "; ".join(problems) or None


def launch(playwright, profile: Path, **context_options):
    """A headless Chromium with a new empty profile in ``profile``: a persistent context, so the profile
    directory is ours (``--user-data-dir``) rather than a shared default one."""
    profile.mkdir(parents=True, exist_ok=False)
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **context_options)
