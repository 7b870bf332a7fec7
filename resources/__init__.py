"""Dagster resources: the platform's registry and artifact store, configured like any resource."""

from resources.platform import PLATFORM_RESOURCE, EvalPlatformResource

__all__ = ["PLATFORM_RESOURCE", "EvalPlatformResource"]
