"""The platform object an asset works on, from the ``platform`` resource the code location binds.

The assets ask for the resource by key (``required_resource_keys=PLATFORM``) rather than as a parameter, so
that in their bodies the name ``platform`` is the platform object itself, as everywhere in the library.
"""

import dagster as dg

from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.resources import EvalPlatformResource

#: what the assets and checks ask of Dagster: the ``platform`` resource
PLATFORM = {"platform"}


def platform_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext) -> EvalPlatform:
    """The installation the ``platform`` resource of the run binds."""
    resource: EvalPlatformResource = context.resources.platform
    return resource.get()
