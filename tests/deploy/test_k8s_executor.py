"""``EVAL_PLATFORM_EXECUTOR=k8s`` (jobs/executors.py): the eval job's steps on dagster-k8s's ``k8s_job_executor``,
configured from the shipped ``deploy/k8s/run_config.yaml`` or the file ``EVAL_PLATFORM_K8S_CONFIG`` names. No
cluster is needed: the executor is built, and the config it carries is checked against dagster-k8s's own schema;
a bad file fails the code location's load naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from dagster._config import validate_config
from dagster_k8s import k8s_job_executor

from eval_platform.core.errors import InvalidInput
from eval_platform_dagster.jobs.executors import DEFAULT_K8S_CONFIG, EXECUTOR_VARIABLE, K8S_CONFIG_VARIABLE, deployment_executor
from tests.conftest import ROOT


def test_k8s_is_configured_from_the_shipped_run_config_and_it_validates_against_dagster_k8s(monkeypatch):
    monkeypatch.setenv(EXECUTOR_VARIABLE, "k8s")
    monkeypatch.delenv(K8S_CONFIG_VARIABLE, raising=False)
    executor = deployment_executor()
    assert executor.name == "k8s"
    assert executor.config_schema.as_field().is_required is False  # the run config needs no execution block
    resolved = executor.config_schema.resolve_config({})  # what a run gets: the file's block through the mapping
    assert resolved.success, resolved.errors
    carried = resolved.value["config"]
    # independently of the code under test: dagster-k8s's schema accepts what the executor carries
    checked = validate_config(k8s_job_executor.config_schema.config_type, carried)
    assert checked.success, [error.message for error in checked.errors or []]
    shipped = yaml.safe_load(DEFAULT_K8S_CONFIG.read_text())["execution"]["config"]
    assert carried["max_concurrent"] == shipped["max_concurrent"]
    assert carried["per_step_k8s_config"]["metric_table"]["container_config"] == \
        shipped["per_step_k8s_config"]["metric_table"]["container_config"]


def test_another_run_config_file_is_taken_from_the_variable(monkeypatch, tmp_path):
    path = tmp_path / "k8s.yaml"
    path.write_text("execution:\n  config:\n    max_concurrent: 7\n    job_namespace: evals\n")
    monkeypatch.setenv(EXECUTOR_VARIABLE, "k8s")
    monkeypatch.setenv(K8S_CONFIG_VARIABLE, str(path))
    carried = deployment_executor().config_schema.resolve_config({}).value["config"]
    assert (carried["max_concurrent"], carried["job_namespace"]) == (7, "evals")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.yaml", None, "no such file"),
    ("bad.yaml", "execution: [unclosed", "is not YAML"),
    ("empty.yaml", "", "has no execution.config mapping"),
    ("wrong.yaml", "execution:\n  config:\n    max_concurent: 4\n", "is not k8s_job_executor config"),
    ("type.yaml", "execution:\n  config:\n    max_concurrent: many\n", "is not k8s_job_executor config"),
])
def test_a_bad_k8s_run_config_is_refused_naming_the_variable(monkeypatch, tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    monkeypatch.setenv(EXECUTOR_VARIABLE, "k8s")
    monkeypatch.setenv(K8S_CONFIG_VARIABLE, str(tmp_path / name))
    with pytest.raises(InvalidInput) as raised:
        deployment_executor()
    assert raised.value.field == K8S_CONFIG_VARIABLE
    assert message in raised.value.problem


def test_the_code_location_loads_with_the_k8s_executor_on_the_heavy_jobs():
    """In a fresh process, as the run pod loads it: the eval cell's and the gate's jobs take the k8s executor."""
    script = ("from eval_platform_dagster.definitions import defs\n"
              "print({n: defs.resolve_job_def(n).executor_def.name for n in ('evaluate_eval_cell', 'decide_gate', 'validate_dataset_version')})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), EXECUTOR_VARIABLE: "k8s"}
    env.pop(K8S_CONFIG_VARIABLE, None)
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == str({"evaluate_eval_cell": "k8s", "decide_gate": "k8s",
                                                         "validate_dataset_version": "in_process"})


def test_the_helm_values_select_the_k8s_executor_in_the_code_server_and_in_every_run_pod():
    """Without the variable the chart's runs would load the code location in-process: one pod per run, the
    step pods of deploy/k8s/run_config.yaml never started."""
    values = yaml.safe_load((ROOT / "deploy/helm/values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert {"name": EXECUTOR_VARIABLE, "value": "k8s"} in deployment["env"]
    assert f"{EXECUTOR_VARIABLE}=k8s" in values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
