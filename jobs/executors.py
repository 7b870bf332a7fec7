"""The executor of the heavy jobs, chosen by the deployment (README "Scaling out"), not by the code.

``EVAL_PLATFORM_EXECUTOR`` names it, read when the code location loads (the daemon's code server, the run
worker and every Celery worker load it alike, so they agree):

* ``in_process`` (the default, also when unset or empty): every step in the run's own process; the embedded
  default needs no broker and works on a fresh machine;
* ``celery``: each step is a task of ``dagster_celery.celery_executor`` on the queue its
  ``dagster-celery/queue`` tag names, configured from the ``execution.config`` block of
  ``EVAL_PLATFORM_CELERY_CONFIG`` (default ``deploy/celery/run_config.yaml`` of this code location), the same
  file ``dagster-celery worker start -y`` reads, so runs and workers use one broker;
* ``k8s``: each step in its own Kubernetes Job through ``dagster_k8s.k8s_job_executor``, configured from the
  ``execution.config`` block of ``EVAL_PLATFORM_K8S_CONFIG`` (default ``deploy/k8s/run_config.yaml``: the
  pod resources per kind of work); the run itself is launched by the Helm chart's ``K8sRunLauncher``.

A bad value, a missing file or a config block the executor's schema refuses fails the code location's load
with an error naming the variable, never a silent in-process run.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import yaml
from dagster._config import validate_config

from eval_platform.core.errors import InvalidInput

EXECUTOR_VARIABLE = "EVAL_PLATFORM_EXECUTOR"
CELERY_CONFIG_VARIABLE = "EVAL_PLATFORM_CELERY_CONFIG"
#: the shipped Celery run config, beside this code location's jobs
DEFAULT_CELERY_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "celery" / "run_config.yaml"
K8S_CONFIG_VARIABLE = "EVAL_PLATFORM_K8S_CONFIG"
#: the shipped k8s_job_executor run config (the step pods' resources), beside this code location's jobs
DEFAULT_K8S_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "run_config.yaml"
EXECUTORS = ("in_process", "celery", "k8s")
#: how often a Celery run's executor looks at its steps' results (dagster-celery's own default is 1 s)
CELERY_TICK_SECONDS = 0.25


def deployment_executor() -> dg.ExecutorDefinition:
    """The executor ``EVAL_PLATFORM_EXECUTOR`` names (see the module docstring)."""
    name = os.environ.get(EXECUTOR_VARIABLE, "").strip() or "in_process"
    if name not in EXECUTORS:
        raise InvalidInput(EXECUTOR_VARIABLE, f"must be one of {', '.join(EXECUTORS)}, got {name!r}")
    if name == "in_process":
        return dg.in_process_executor
    if name == "k8s":
        return k8s_executor_from(Path(os.environ.get(K8S_CONFIG_VARIABLE, "").strip() or DEFAULT_K8S_CONFIG))
    return celery_executor_from(Path(os.environ.get(CELERY_CONFIG_VARIABLE, "").strip() or DEFAULT_CELERY_CONFIG))


def celery_executor_from(path: Path) -> dg.ExecutorDefinition:
    """``dagster_celery.celery_executor`` configured with the ``execution.config`` block of the YAML file at
    ``path``; its environment references (``broker: {env: DAGSTER_CELERY_BROKER_URL}``) resolve at run time."""
    try:
        from dagster_celery import celery_executor, core_execution_loop  # the optional extra `distributed`
    except ImportError as error:
        raise InvalidInput(EXECUTOR_VARIABLE, "celery needs the dagster-celery package "
                                              "(pip install 'eval-platform[distributed]')") from error
    # The run's executor loop sleeps TICK_SECONDS (1 s) between two looks at its steps' task results: each step of
    # an eval's critical path (plan, shards, merge, plan, shards, merge, metrics, comparison: 9 hand-offs) waits up
    # to a tick before it is seen done and the next is sent. A quarter second took ~4 s off a 4-worker eval
    # (bench/bench_scale_out.py); a look is a check of the in-flight tasks' results, which the result
    # consumer already holds, so 4 a second cost the run worker next to nothing.
    core_execution_loop.TICK_SECONDS = CELERY_TICK_SECONDS
    return _configured(celery_executor, "celery_executor", path, CELERY_CONFIG_VARIABLE, "celery")


def k8s_executor_from(path: Path) -> dg.ExecutorDefinition:
    """``dagster_k8s.k8s_job_executor`` configured with the ``execution.config`` block of the YAML file at
    ``path`` (the ``dev`` extra installs dagster-k8s; a Kubernetes image installs it with the platform)."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as error:
        raise InvalidInput(EXECUTOR_VARIABLE, "k8s needs the dagster-k8s package (pip install dagster-k8s)") from error
    return _configured(k8s_job_executor, "k8s_job_executor", path, K8S_CONFIG_VARIABLE, "k8s")


def _configured(executor: dg.ExecutorDefinition, label: str, path: Path, variable: str, name: str) -> dg.ExecutorDefinition:
    """``executor`` configured with the ``execution.config`` block of the YAML file at ``path``, checked against
    the executor's own config schema now (at the code location's load), every problem named by ``variable``."""
    if not path.is_file():
        raise InvalidInput(variable, f"no such file: {path}")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InvalidInput(variable, f"{path} is not YAML: {error}") from error
    config = document.get("execution", {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise InvalidInput(variable, f"{path} has no execution.config mapping (the {label}'s config)")
    # checked now, not when the first run starts: environment references ({env: ...}) stay unresolved until run time
    checked = validate_config(executor.config_schema.config_type, config)
    if not checked.success:
        problems = "; ".join(error.message for error in checked.errors or [])
        raise InvalidInput(variable, f"{path}: execution.config is not {label} config: {problems}")
    return executor.configured(config, name=name)
