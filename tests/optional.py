"""Optional reference packages of the tests: skipped where absent, required where CI says so.

``.ci/run`` installs the ``refs`` extra (obp, torchmetrics: reference implementations that would drag a CUDA
torch in if pip resolved their dependencies, so CI installs them without) and sets
``EVAL_PLATFORM_REQUIRE_REFS=1``: there a missing package fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def reference(module: str) -> ModuleType:
    """``module``, imported; a skip naming the extra where it is not installed, unless CI requires it."""
    if os.environ.get("EVAL_PLATFORM_REQUIRE_REFS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} is a reference of the optional `refs` extra "
                                              "(pip install --no-deps obp torchmetrics lightning-utilities mypy-extensions)")
