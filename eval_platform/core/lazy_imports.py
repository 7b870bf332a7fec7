"""Heavy modules imported on first use, not at import time.

``import definitions`` runs in every code-server start, sensor-hosting process and run worker; scipy.stats
alone costs about a CPU-second there and is needed only by a few statistics. Deferred: keeps
``import definitions`` fast for sensor ticks and run start.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    """Stands for a module; the first attribute access imports it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


#: ``scipy.stats``, imported on first use.
scipy_stats = LazyModule("scipy.stats")

#: ``scipy.sparse``, imported on first use (the agreement measures, which the metric catalog imports).
scipy_sparse = LazyModule("scipy.sparse")
