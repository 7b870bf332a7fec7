"""The heavy jobs' executor comes from the deployment (``EVAL_PLATFORM_EXECUTOR``, jobs/executors.py): in-process
by default, dagster-celery's executor configured from the shipped run config under ``celery``, and a bad
setting is refused naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from eval_platform.core.errors import InvalidInput
from eval_platform_dagster.jobs.executors import CELERY_CONFIG_VARIABLE, DEFAULT_CELERY_CONFIG, EXECUTOR_VARIABLE, deployment_executor
from tests.conftest import ROOT


@pytest.mark.parametrize("value", [None, "", "in_process", " in_process "])
def test_the_default_is_in_process(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(EXECUTOR_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(EXECUTOR_VARIABLE, value)
    assert deployment_executor() is dg.in_process_executor


def test_celery_is_configured_from_the_shipped_run_config(monkeypatch):
    monkeypatch.setenv(EXECUTOR_VARIABLE, "celery")
    monkeypatch.delenv(CELERY_CONFIG_VARIABLE, raising=False)
    executor = deployment_executor()
    assert executor.name == "celery"
    # the configured executor takes no more run config; its config is exactly the file's block
    shipped = yaml.safe_load(DEFAULT_CELERY_CONFIG.read_text())["execution"]["config"]
    assert executor.config_schema.as_field().is_required is False
    assert shipped["config_source"]["task_acks_late"] is True
    assert shipped["broker"] == {"env": "DAGSTER_CELERY_BROKER_URL"}


@pytest.mark.parametrize(("variable", "value", "content", "message"), [
    (EXECUTOR_VARIABLE, "Celery", None, "must be one of in_process, celery, k8s, got 'Celery'"),
    (EXECUTOR_VARIABLE, "kubernetes", None, "must be one of in_process, celery, k8s, got 'kubernetes'"),
    (CELERY_CONFIG_VARIABLE, "missing.yaml", None, "no such file"),
    (CELERY_CONFIG_VARIABLE, "bad.yaml", "execution: [unclosed", "is not YAML"),
    (CELERY_CONFIG_VARIABLE, "empty.yaml", "", "has no execution.config mapping"),
    (CELERY_CONFIG_VARIABLE, "list.yaml", "execution:\n  config: [1, 2]\n", "has no execution.config mapping"),
    (CELERY_CONFIG_VARIABLE, "wrong.yaml", "execution:\n  config:\n    brokr: amqp://x\n", "is not celery_executor config"),
])
def test_a_bad_setting_is_refused_naming_the_variable(monkeypatch, tmp_path, variable, value, content, message):
    monkeypatch.setenv(EXECUTOR_VARIABLE, "celery")
    if variable == CELERY_CONFIG_VARIABLE:
        if content is not None:
            (tmp_path / value).write_text(content)
        value = str(tmp_path / value)
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput) as raised:
        deployment_executor()
    assert raised.value.field == variable
    assert message in raised.value.problem


def test_the_code_location_loads_with_the_executor_the_deployment_names(tmp_path):
    """In a fresh process, as the daemon's code server and each Celery worker load it: the eval cell's and the gate's
    jobs run on Celery, every other job stays in-process; a bad value fails the load with the variable's name."""
    script = ("from eval_platform_dagster.definitions import defs\n"
              "print({n: defs.resolve_job_def(n).executor_def.name for n in "
              "('evaluate_eval_cell', 'decide_gate', 'validate_dataset_version', 'release_model_version')})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path]), EXECUTOR_VARIABLE: "celery"}
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == str({"evaluate_eval_cell": "celery", "decide_gate": "celery",
                                                         "validate_dataset_version": "in_process",
                                                         "release_model_version": "in_process"})
    refused = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**env, EXECUTOR_VARIABLE: "threads"},
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "EVAL_PLATFORM_EXECUTOR: must be one of in_process, celery, k8s, got 'threads'" in refused.stderr
