"""Jobs the sensors launch: validate a dataset version; evaluate an eval cell; decide a model version's gate;
release a model version; report check results; analyse an experiment; purge expired data."""

from eval_platform_dagster.jobs.datasets import validate_dataset_version
from eval_platform_dagster.jobs.evaluation import decide_gate, evaluate_eval_cell
from eval_platform_dagster.jobs.release import release_model_version

__all__ = ["decide_gate", "evaluate_eval_cell", "release_model_version", "validate_dataset_version"]
