"""Sensor ticks share one Dagster instance per instance ref instead of building one per tick."""

import shutil
from pathlib import Path

import dagster as dg

from eval_platform_dagster.sensors.instance import sensor_instance

ROOT = Path(__file__).resolve().parents[2]


def test_ticks_of_one_instance_ref_share_one_instance_of_that_storage(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("model_versions", ["m@1"])
        ref = instance.get_ref()
        first = sensor_instance(dg.build_sensor_context(instance_ref=ref))
        second = sensor_instance(dg.build_sensor_context(instance_ref=ref))
        assert first is second
        assert first.get_dynamic_partitions("model_versions") == ["m@1"]
        instance.add_dynamic_partitions("model_versions", ["m@2"])  # written elsewhere: seen, nothing cached
        assert second.get_dynamic_partitions("model_versions") == ["m@1", "m@2"]


def test_a_context_built_around_an_instance_uses_that_instance():
    with dg.DagsterInstance.ephemeral() as instance:
        assert sensor_instance(dg.build_sensor_context(instance=instance)) is instance
