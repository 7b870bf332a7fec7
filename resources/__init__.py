"""Dagster resources: the platform's registry and artifact store, configured like any resource."""

from eval_platform_dagster.resources.platform import PLATFORM_RESOURCE, EvalPlatformResource

__all__ = ["PLATFORM_RESOURCE", "EvalPlatformResource"]
