"""The shipped deployment profiles are valid for the Dagster, dagster-celery and dagster-k8s versions installed.

Checked against the libraries' own config schemas (no cluster, broker or chart needed):

* every ``dagster*.yaml`` at the root: Dagster's instance config schema (``dagster_instance_config``,
  which also checks the concurrency block), its storage class resolved and its config validated; the
  Celery profile is then opened as a real instance on PostgreSQL;
* ``deploy/celery/run_config.yaml``: ``celery_executor``'s config schema, as both the run and
  ``dagster-celery worker start -y`` read it;
* ``deploy/k8s/run_config.yaml``: ``k8s_job_executor``'s config schema, with per-step keys that are steps
  of the eval job;
* ``deploy/helm/values.yaml``: the instance the chart renders from it (storage, run launcher, run
  coordinator, run monitoring and retries, concurrency), rendered here by :func:`chart_instance`, a
  transcription of the chart's templates for the keys these values use, and validated against Dagster's
  instance schema and ``K8sRunLauncher.config_type()``. The chart's ``values.schema.json`` and ``helm
  template`` are not available offline, so the values as a whole are not checked against the chart.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._serdes.config_class import class_from_code_pointer
from dagster_celery import celery_executor
from dagster_celery.cli import get_validated_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from eval_platform_dagster.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_FILES = sorted(ROOT.glob("dagster*.yaml"))
# The chart version read for this transcription writes `dagster.core.run_coordinator`, a module dagster 1.13 no
# longer has; charts matching 1.13 must write the module's real path, which is what is checked here.
CHART_RUN_COORDINATOR_MODULE = "dagster._core.run_coordinator"
POOLS = {"predictions": "model_inference", "judgments": "judge", "metric_table": "cpu_metrics"}


def load(relative: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / relative).read_text())


def assert_valid(schema: object, value: object, what: str) -> None:
    result = validate_config(schema, value)
    assert result.success, f"{what}: " + "; ".join(error.message for error in result.errors or [])


def validated_instance(config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Dagster's own loading of a dagster.yaml (schema, storage/run_queue exclusivity, concurrency checks)."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    return dict(validated)


def assert_pluggable_classes_valid(config: dict[str, Any]) -> None:
    """Each ``module``/``class`` entry imports and its ``config`` satisfies that class's ``config_type()``."""
    for key, value in config.items():
        if isinstance(value, dict) and {"module", "class"} <= value.keys():
            cls = class_from_code_pointer(value["module"], value["class"])
            assert_valid(cls.config_type(), value.get("config") or {}, f"{key} ({value['class']})")  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", INSTANCE_FILES, ids=lambda p: p.name)
def test_every_shipped_instance_profile_is_valid_with_monitoring_retries_and_pools(path, tmp_path):
    assert {p.name for p in INSTANCE_FILES} >= {"dagster.yaml", "dagster.postgres.yaml", "dagster.celery.yaml"}
    config = validated_instance(yaml.safe_load(path.read_text()), tmp_path)
    storage_kind, storage_config = next(iter(config["storage"].items()))
    storage_class = {"sqlite": ("dagster._core.storage.sqlite_storage", "DagsterSqliteStorage"),
                     "postgres": ("dagster_postgres", "DagsterPostgresStorage")}[storage_kind]
    assert_valid(class_from_code_pointer(*storage_class).config_type(), storage_config, "storage")  # type: ignore[attr-defined]
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"]["enabled"] is True and config["run_retries"]["max_retries"] >= 1
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1


def test_the_assets_declare_the_pools_and_queues_the_profiles_document():
    graph = defs.resolve_asset_graph()
    celery_doc = (ROOT / "deploy/celery/run_config.yaml").read_text() + (ROOT / "dagster.celery.yaml").read_text()
    # a worker's queues are one comma-separated -q (celery 5 keeps only the last of several -Q)
    worker_queues = {queue for listed in re.findall(r"-q ([\w,]+)", celery_doc) for queue in listed.split(",")}
    assert not re.search(r"-q \S+ -q ", celery_doc), "several -q: the worker would listen on the last one only"
    for asset, pool in POOLS.items():
        node = graph.get(dg.AssetKey(asset))
        assert node.pools == {pool}
        # the Celery queue is the pool's name, on each step of the pool (a graph-backed asset's shard steps)
        pooled = [op for op in defs.resolve_assets_def(asset).node_def.iterate_op_defs() if op.pool == pool]
        assert pooled and all(op.tags["dagster-celery/queue"] == pool for op in pooled)
        assert f"dagster instance concurrency set {pool} " in celery_doc and pool in worker_queues


@pytest.mark.postgres
def test_celery_instance_profile_opens_on_postgresql(postgres_url, tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.celery.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url.replace("postgresql+psycopg2://", "postgresql://"))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        pool_config = instance.get_concurrency_config().pool_config
        assert (pool_config.pool_granularity.value, pool_config.default_pool_limit) == ("op", 4)
        # the documented per-pool limits are accepted by this storage
        instance.event_log_storage.set_concurrency_slots("judge", 16)
        assert instance.event_log_storage.get_concurrency_info("judge").slot_count == 16


def test_celery_run_config_matches_the_executor_and_the_worker_cli(monkeypatch):
    run_config = load("deploy/celery/run_config.yaml")
    assert_valid(celery_executor.config_schema.config_type, run_config["execution"]["config"], "celery_executor")
    # `dagster-celery worker start -y` reads the same block; with the env set it resolves to the broker URLs
    monkeypatch.setenv("DAGSTER_CELERY_BROKER_URL", "pyamqp://guest@127.0.0.1:5672//")
    monkeypatch.setenv("DAGSTER_CELERY_BACKEND_URL", "redis://127.0.0.1:6379/1")
    worker = get_validated_config(str(ROOT / "deploy/celery/run_config.yaml"))
    assert (worker["broker"], worker["backend"]) == ("pyamqp://guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/1")
    assert worker["config_source"]["worker_prefetch_multiplier"] == 1


def test_celery_run_config_with_a_misspelt_key_is_refused():
    # the check above is not vacuous: the same schema rejects a typo
    bad = {"broker": "redis://127.0.0.1:6379/0", "backends": "rpc://"}
    assert not validate_config(celery_executor.config_schema.config_type, bad).success


def test_k8s_run_config_matches_the_executor_and_names_real_steps():
    run_config = load("deploy/k8s/run_config.yaml")["execution"]["config"]
    assert_valid(k8s_job_executor.config_schema.config_type, run_config, "k8s_job_executor")
    steps = {node.name for node in defs.resolve_job_def("evaluate_eval_cell").graph.nodes}
    assert set(run_config["per_step_k8s_config"]) == set(POOLS) <= steps, steps


# ------------------------------------------------------------------------------------------------------
# Helm values


def chart_instance(values: dict[str, Any], namespace: str = "dagster", fullname: str = "dagster") -> dict[str, Any]:
    """The dagster.yaml Dagster's chart renders from ``values`` (templates/configmap-instance.yaml and
    helpers/instance/*.tpl), for the keys deploy/helm/values.yaml uses; an unknown key fails loudly."""
    pg = values["postgresql"]
    postgres = {"postgres_db": {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
                                "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"]}}
    launcher_values = values["runLauncher"]
    assert launcher_values["type"] == "K8sRunLauncher"
    k8s = launcher_values["config"]["k8sRunLauncher"]
    known = {"imagePullPolicy", "loadInclusterConfig", "envSecrets", "envVars", "resources", "failPodOnRunFailure", "jobNamespace"}
    assert set(k8s) <= known, f"chart_instance does not render {set(k8s) - known}"
    launcher: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace", namespace),
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{fullname}-instance",
        "postgres_password_secret": "dagster-postgresql-secret",
        "env_secrets": [secret["name"] for secret in k8s.get("envSecrets", [])],
        "env_vars": k8s.get("envVars", []),
        "resources": k8s.get("resources", {}),
    }
    if k8s.get("failPodOnRunFailure"):
        launcher["fail_pod_on_run_failure"] = True
    daemon = values["dagsterDaemon"]
    coordinator: dict[str, Any] = {"module": CHART_RUN_COORDINATOR_MODULE, "class": "QueuedRunCoordinator"}
    queued = {key: value for key, value in daemon["runCoordinator"]["config"]["queuedRunCoordinator"].items() if value is not None}
    if queued:  # the chart then always writes max_concurrent_runs (-1 when unset)
        names = {"maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
                 "dequeueIntervalSeconds": "dequeue_interval_seconds", "dequeueUseThreads": "dequeue_use_threads",
                 "dequeueNumWorkers": "dequeue_num_workers"}
        coordinator["config"] = {"max_concurrent_runs": -1} | {names[key]: value for key, value in queued.items()}
    monitoring, retries = daemon["runMonitoring"], daemon["runRetries"]
    concurrency = values["concurrency"]
    pools, runs = concurrency["pools"], concurrency["runs"]
    return {
        "storage": {"postgres": postgres},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_coordinator": coordinator,
        "run_monitoring": {"enabled": monitoring["enabled"], "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                           "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
                           "poll_interval_seconds": monitoring["pollIntervalSeconds"],
                           "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"]},
        "run_retries": {"enabled": retries["enabled"], "max_retries": retries["maxRetries"]},
        "concurrency": {"pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"],
                                  "op_granularity_run_buffer": pools["opGranularityRunBuffer"]},
                        "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"]}} if concurrency["enabled"] else {},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_helm_values_render_a_valid_instance_and_k8s_run_launcher(tmp_path):
    values = load("deploy/helm/values.yaml")
    rendered = chart_instance(values)
    config = validated_instance(rendered, tmp_path)
    assert_pluggable_classes_valid(config)
    assert_valid(K8sRunLauncher.config_type(), rendered["run_launcher"]["config"], "K8sRunLauncher")
    assert_valid(dagster_instance_config_schema()["run_launcher"].config_type, rendered["run_launcher"], "run_launcher")
    # the same pools and run limits as the Celery profile
    celery = load("dagster.celery.yaml")
    assert rendered["concurrency"] == celery["concurrency"]
    assert rendered["run_monitoring"].items() <= celery["run_monitoring"].items()


def test_helm_user_deployment_serves_this_code_location_with_the_platform_settings():
    values = load("deploy/helm/values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert module == workspace["load_from"][0]["python_module"]["module_name"] == "eval_platform_dagster.definitions"
    assert importlib.util.find_spec(module) is not None
    # every EVAL_PLATFORM_* variable the values set is one the platform reads (a misspelt name would be ignored)
    read = set()
    for source in [*(ROOT / "eval_platform").rglob("*.py"), *(ROOT / "jobs").rglob("*.py")]:
        read |= set(re.findall(r"EVAL_PLATFORM_[A-Z_]+", source.read_text()))
    set_here = {item["name"] for item in deployment["env"]} | {v.split("=")[0] for v in values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]}
    assert set_here <= read, set_here - read
    assert {"EVAL_PLATFORM_STORE", "EVAL_PLATFORM_DB_URL"} <= read
    assert "EVAL_PLATFORM_DB_URL" in (ROOT / "deploy/helm/values.yaml").read_text()  # comes from the secret
    # the store is an fsspec URL on an object store, not a pod-local path
    store = next(item["value"] for item in deployment["env"] if item["name"] == "EVAL_PLATFORM_STORE")
    assert re.match(r"^(s3|gs|gcs|az|abfs)://", store)


def test_helm_values_with_a_misspelt_launcher_key_do_not_render(tmp_path):
    values = load("deploy/helm/values.yaml")
    values["runLauncher"]["config"]["k8sRunLauncher"]["loadInClusterConfig"] = True  # wrong case
    with pytest.raises(AssertionError, match="does not render"):
        chart_instance(values)
    values = load("deploy/helm/values.yaml")
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["dequeueIntervalSeconds"] = 1
    with pytest.raises(dg.DagsterInvalidConfigError, match="incompatible with the `concurrency > runs` config"):
        validated_instance(chart_instance(values), tmp_path)  # why the values leave the coordinator empty
    values = load("deploy/helm/values.yaml")
    values["concurrency"]["pools"]["granularity"] = "step"
    with pytest.raises(dg.DagsterInvalidConfigError, match="granularity"):
        validated_instance(chart_instance(values), tmp_path)
