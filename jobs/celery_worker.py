"""The Celery app of the platform's workers: dagster-celery's tasks, with this code location loaded before the pool forks.

Start workers with ``-A eval_platform_dagster.jobs.celery_worker`` instead of ``-A dagster_celery.app``::

    dagster-celery worker start -A eval_platform_dagster.jobs.celery_worker -y deploy/celery/run_config.yaml -q judge

The tasks are dagster-celery's own (same names, same broker, backend and queues from the ``-y`` file), so the
runs' executor is unchanged. What differs is when the code location is loaded. With ``dagster_celery.app`` a
worker's pool process imports it when its first step arrives: about 3 s of imports (the platform, pandas,
pyarrow, SQLAlchemy, SciPy), 0.4 s to build the jobs and 1 s more for what the steps import on first use
(the openai client, scikit-learn's metrics), paid by every pool process of every worker. It is paid
on an eval's critical path: the first step of a run waits for it, and so does the first shard a fresh worker
takes. Here the worker's main process loads it once, before Celery forks the pool. Every pool process inherits
the imported modules and the built jobs (copy-on-write), and starts its first step warm.

Loading the definitions opens no connection and starts no thread: resources connect inside a step. So
nothing is shared across the fork that should not be.
"""

import importlib

from dagster_celery.app import app, execute_job, execute_plan, resume_job

from eval_platform_dagster.definitions import defs
from eval_platform_dagster.jobs.evaluation import decide_gate, evaluate_eval_cell

__all__ = ["app", "execute_job", "execute_plan", "resume_job"]

# What a step's task builds first, ReconstructableJob.get_definition: the repository, then the job. Both are
# cached in the process, so the pool processes forked after this inherit them.
_repository = defs.get_repository_def()
for _job in (evaluate_eval_cell, decide_gate):
    _repository.get_job(_job.name)

#: What the steps import on first use: deferred in the library so that sensor ticks and run starts stay fast, but
#: a worker is there to run steps (openai alone is 0.7 s, measured on the 2-core machine).
STEP_MODULES = ("openai", "openai.types.chat", "httpx", "sklearn.metrics", "pyarrow.dataset")
for _module in STEP_MODULES:
    importlib.import_module(_module)
