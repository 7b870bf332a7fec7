"""The Dagster instance and the platform a sensor tick reads, kept for the life of the code-server process.

Dagster gives each sensor evaluation a fresh ``DagsterInstance.from_ref`` the first time ``context.instance``
is read (about 35 ms of CPU on the SQLite default); with six sensors ticking every 5 s that alone cost the
idle code server about 2 CPU-seconds a minute. An instance only reads and writes storage (nothing in it goes
stale), and one instance serves many threads (the webserver shares one), so ticks share one per instance ref.

For the same reason the sensors take the platform with :func:`sensor_platform` rather than as a resource
parameter: Dagster initializes a sensor's resources with a fresh instance built from the ref, on every tick,
even for a resource that never touches it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import dagster as dg
from dagster._serdes import serialize_value

from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.resources import PLATFORM_RESOURCE, EvalPlatformResource

_MAX_INSTANCES = 4  # one per Dagster home in practice; tests open several
_instances: OrderedDict[str, dg.DagsterInstance] = OrderedDict()
_lock = threading.Lock()


def sensor_instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance:
    """``context.instance``, without building a new instance on every tick."""
    ref = context.instance_ref
    if ref is None:  # a context built around an instance (tests): that instance
        return context.instance
    key = serialize_value(ref)
    with _lock:
        instance = _instances.get(key)
        if instance is None:
            instance = _instances[key] = dg.DagsterInstance.from_ref(ref)
            while len(_instances) > _MAX_INSTANCES:
                _instances.popitem(last=False)[1].dispose()
        _instances.move_to_end(key)
    return instance


def sensor_platform(context: dg.SensorEvaluationContext) -> EvalPlatform:
    """The installation the sensor works on: the ``platform`` resource the context was given (tests give one
    explicitly), else the one the code location's ``Definitions`` binds, without building any resource."""
    given = (context.resource_defs or {}).get("platform")
    resource = given if isinstance(given, EvalPlatformResource) else PLATFORM_RESOURCE
    return resource.get()


def known_partitions(instance: dg.DagsterInstance, partitions: dg.DynamicPartitionsDefinition) -> set[str]:
    """The keys Dagster knows of one of the code location's dynamic partitions definitions (all named)."""
    if partitions.name is None:
        raise ValueError("the code location's dynamic partitions definitions are named")
    return set(instance.get_dynamic_partitions(partitions.name))
