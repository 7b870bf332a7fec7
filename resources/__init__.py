"""Dagster resources: the platform's registry and artifact store, configured like any resource."""

from resources.platform import EvalPlatformResource

#: The resource the code location binds as ``platform`` (unset fields resolve from the environment).
PLATFORM_RESOURCE = EvalPlatformResource()

__all__ = ["PLATFORM_RESOURCE", "EvalPlatformResource"]
