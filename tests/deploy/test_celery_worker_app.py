"""The workers' Celery app (jobs/celery_worker.py): dagster-celery's own tasks, with the code location loaded in the
worker's main process, so that the pool processes Celery forks from it start their first step warm.

Checked in a fresh interpreter, as `celery -A eval_platform_dagster.jobs.celery_worker worker` imports it: the task
names are dagster-celery's (the runs' executor sends exactly those), the code location's jobs are built, and the
modules the steps import on first use are there before any task arrives. The Celery deployment test (slow) runs
its workers with this app."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from eval_platform_dagster.jobs.executors import EXECUTOR_VARIABLE
from tests.conftest import ROOT

PROBE = """
import json, sys
import eval_platform_dagster.jobs.celery_worker as worker
from dagster_celery.config import TASK_EXECUTE_JOB_NAME, TASK_EXECUTE_PLAN_NAME, TASK_RESUME_JOB_NAME
from eval_platform_dagster.definitions import defs
repository = defs.get_repository_def()
print(json.dumps({
    "tasks": sorted(name for name in worker.app.tasks if not name.startswith("celery.")),
    "dagster_celery_tasks": sorted([TASK_EXECUTE_JOB_NAME, TASK_EXECUTE_PLAN_NAME, TASK_RESUME_JOB_NAME]),
    "executor": repository.get_job("evaluate_eval_cell").executor_def.name,
    "preloaded": {name: name in sys.modules for name in ("openai", "httpx", "sklearn.metrics", "pandas")},
}))
"""


def test_the_worker_app_serves_dagster_celerys_tasks_with_the_code_location_and_step_modules_loaded():
    env = {**os.environ, EXECUTOR_VARIABLE: "celery", "DAGSTER_CELERY_BROKER_URL": "pyamqp://guest@127.0.0.1:5672//",
           "DAGSTER_CELERY_BACKEND_URL": "rpc://"}
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["tasks"] == probe["dagster_celery_tasks"] == ["execute_job", "execute_plan", "resume_job"]
    assert probe["executor"] == "celery"  # the eval job's steps go to these workers under the Celery profile
    assert probe["preloaded"] == {"openai": True, "httpx": True, "sklearn.metrics": True, "pandas": True}
