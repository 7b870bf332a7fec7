"""Dagster's own daemon loops, in process, on a real instance: sensor ticks and the backfill daemon.

Sensors are evaluated by ``dagster._daemon.sensor.execute_sensor_iteration`` (the sensor daemon's loop
body: it evaluates every running sensor of the code location, validates what it returns, records the tick,
submits runs and backfills and adds partitions); backfills are run by the backfill daemon's iteration. Runs
launch with Dagster's synchronous in-memory launcher, so a submitted run has executed when the iteration
returns. Dagster's clock is advanced between iterations so each sensor's minimum interval has passed.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration

from tests.conftest import ROOT

LOGGER = logging.getLogger("daemon_harness")
SYNC_LAUNCHER = {"module": "dagster._core.launcher.sync_in_memory_run_launcher", "class": "SyncInMemoryRunLauncher"}
#: as with the shipped dagster.yaml: runs wait in Dagster's run queue until the run-queue daemon launches them
QUEUED_COORDINATOR = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}


class SensorTickError(AssertionError):
    pass


class DaemonHarness:
    def __init__(self, instance: dg.DagsterInstance, workspace_context):
        self.instance = instance
        self.workspace_context = workspace_context
        self.now = datetime.datetime.now(datetime.UTC)

    def tick(self, run_queue: bool = True) -> dict[str, object]:
        """One sensor-daemon iteration over every sensor, then (``run_queue``) one iteration of the run queue,
        which launches the queued runs; the latest tick of each sensor, failing on any tick error."""
        self.now += datetime.timedelta(seconds=60)
        with freeze_time(self.now):
            list(execute_sensor_iteration(self.workspace_context, LOGGER, None, None))
        if run_queue:
            self.run_queue()
        ticks = {}
        for state in self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            latest = self.instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            if latest:
                ticks[state.name] = latest[0]
                if latest[0].status == TickStatus.FAILURE:
                    raise SensorTickError(f"sensor {state.name} failed its tick: {latest[0].error}")
        return ticks

    def run_queue(self) -> None:
        """One iteration of the run-queue daemon: queued runs are launched (and, here, executed)."""
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(self.workspace_context))

    def backfills(self) -> None:
        """One backfill-daemon iteration (submits the backfills' runs, which execute at once)."""
        self.now += datetime.timedelta(seconds=60)
        with freeze_time(self.now):
            list(execute_backfill_iteration(self.workspace_context, LOGGER))
        self.run_queue()

    def ui_backfill(self, backfill_id: str, partitions: set[tuple[str, str]], iterations: int = 12) -> str:
        """Launch a backfill of ``(asset, partition)`` pairs as the UI's partition selection does (no tags),
        run the backfill daemon until it ends, and return its final status."""
        import time

        from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
        from dagster._core.definitions.events import AssetKeyPartitionKey
        from dagster._core.execution.backfill import PartitionBackfill

        from eval_platform_dagster import definitions
        with dg.partition_loading_context(dynamic_partitions_store=self.instance):
            subset = AssetGraphSubset.from_asset_partition_set(
                {AssetKeyPartitionKey(dg.AssetKey(asset), partition) for asset, partition in partitions},
                definitions.defs.resolve_asset_graph())
            self.instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
                backfill_id=backfill_id, backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=self.instance,
                asset_graph_subset=subset, title=None, description=None, run_config=None))
        for _ in range(iterations):
            self.backfills()
            if self.instance.get_backfill(backfill_id).status.value != "REQUESTED":
                break
        return self.instance.get_backfill(backfill_id).status.value

    def run_records(self, **filters) -> list:
        return list(self.instance.get_run_records(dg.RunsFilter(**filters)))


@contextmanager
def daemon(overrides: dict | None = None) -> Iterator[DaemonHarness]:
    """A fresh instance with the project's code location loaded in process, as the daemon loads it.
    The platform resource reads EVAL_PLATFORM_HOME / EVAL_PLATFORM_DB_URL (set them first)."""
    with dg.instance_for_test(overrides={"run_launcher": SYNC_LAUNCHER, "run_coordinator": QUEUED_COORDINATOR,
                                         **(overrides or {})}) as instance:
        origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="eval_platform_dagster.definitions", working_directory=str(ROOT)),
                                             location_name="eval_platform")
        with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as context:
            yield DaemonHarness(instance, context)
