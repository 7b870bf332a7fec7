"""The ``platform`` resource: the installation (registry and artifact store) the assets, jobs and sensors work on."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg

from eval_platform.core.config import PlatformConfig
from eval_platform.platform.service import EvalPlatform


@lru_cache(maxsize=8)
def _open(config: PlatformConfig) -> EvalPlatform:
    # One engine per process and installation: assets of one run share it.
    return EvalPlatform(config)


class EvalPlatformResource(dg.ConfigurableResource):
    """The installation to work on. Unset fields fall back to ``EVAL_PLATFORM_HOME``,
    ``EVAL_PLATFORM_DB_URL`` and ``EVAL_PLATFORM_STORE`` (see :class:`eval_platform.core.config.PlatformConfig`)."""

    home: str | None = None
    db_url: str | None = None
    store_url: str | None = None

    def get(self) -> EvalPlatform:
        return _open(PlatformConfig.resolve(self.home, self.db_url, self.store_url))


#: The resource the code location binds as ``platform`` (unset fields resolve from the environment).
PLATFORM_RESOURCE = EvalPlatformResource()
