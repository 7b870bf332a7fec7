"""Where an installation keeps its state.

Everything lives under one home directory: the registry database (SQLite unless
``EVAL_PLATFORM_DB_URL`` points elsewhere), the artifact store (local unless ``EVAL_PLATFORM_STORE`` is an
fsspec URL) and the Dagster home. The home comes from ``--home`` on ``evalp``, else ``EVAL_PLATFORM_HOME``,
else ``./.eval_platform``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".eval_platform"


@dataclass(frozen=True)
class PlatformConfig:
    """Where one installation keeps its registry database, artifact store and Dagster home."""

    home: Path
    db_url: str
    store_url: str

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None, db_url: str | None = None, store_url: str | None = None) -> PlatformConfig:
        home_path = Path(home or os.environ.get("EVAL_PLATFORM_HOME") or DEFAULT_HOME).expanduser().resolve()
        db_url = db_url or os.environ.get("EVAL_PLATFORM_DB_URL") or f"sqlite:///{home_path / 'registry.db'}"
        store_url = store_url or os.environ.get("EVAL_PLATFORM_STORE") or str(home_path / "store")
        return cls(home=home_path, db_url=db_url, store_url=store_url)
