"""Dagster resources: the platform's registry and artifact store, configured like any resource."""

from resources.platform import EvalPlatformResource

__all__ = ["EvalPlatformResource"]
