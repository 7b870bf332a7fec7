"""Partitions of the asset graph: model versions, dataset versions, and the eval cells they span.

An eval cell is one model version evaluated on one dataset version: a key of the two-dimensional
``eval_cells`` partitions (Dagster joins the dimensions in name order: ``dataset|model``, e.g.
``bc@1|detector@1``). Both dimensions are dynamic; only the cells an eval plan (or a request) asks for are
ever materialized, the others stay empty in the partition grid. Ids are letters, digits, ``-``, ``_``, ``.``
and ``@N`` (eval_platform/keys.py), so no key holds ``|``, ``,``, ``[`` or ``]``, the characters Dagster
reserves in multi-partition keys and in backfill partition ranges.
"""

import dagster as dg

from eval_platform.core.keys import split_cell_name

#: Keys are ``model_name@version``; the eval-request sensor adds one when a model version is registered.
model_versions = dg.DynamicPartitionsDefinition(name="model_versions")
#: Keys are ``dataset_id@version``; the dataset sensor adds one when a dataset version is registered.
dataset_versions = dg.DynamicPartitionsDefinition(name="dataset_versions")

MODEL_DIMENSION = "model"
DATASET_DIMENSION = "dataset"
#: One model version x one dataset version: the partitions of predictions, judgments, metric table, comparison.
eval_cells = dg.MultiPartitionsDefinition({DATASET_DIMENSION: dataset_versions, MODEL_DIMENSION: model_versions})
#: Characters Dagster does not allow in a dimension key of a multi-partition key.
RESERVED_KEY_CHARACTERS = frozenset("|,[]")


def cell_key(model_key: str, dataset_key: str) -> dg.MultiPartitionKey:
    """The eval cell of a model version on a dataset version (``dataset|model`` as a string)."""
    return dg.MultiPartitionKey({DATASET_DIMENSION: dataset_key, MODEL_DIMENSION: model_key})


def split_cell(partition_key: str) -> tuple[str, str]:
    """``(model_key, dataset_key)`` of an eval cell's key, given as a MultiPartitionKey or as its string."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
        return keys[MODEL_DIMENSION], keys[DATASET_DIMENSION]
    return split_cell_name(partition_key)


#: Tag the eval-request sensor puts on the runs it launches: such a run evaluates the queued requests.
REQUESTED_TAG = "eval_platform/requested"
#: Tag of a promotion run: the id of the registry's promotion request it carries out.
PROMOTION_REQUEST_TAG = "eval_platform/promotion_request"
#: Tag of an eval cell run and of a gate run: the model version's effective gate decision when it ended
#: (pass, fail, no_decision, overridden), so the runs list says the result without opening the run.
DECISION_TAG = "eval_platform/decision"
#: Keys are experiment ids; the experiment sensor adds one when an analysis is first requested.
experiments = dg.DynamicPartitionsDefinition(name="experiments")
#: Tag of an experiment-analysis run: the ids (comma-separated) of the analysis requests it carries out.
EXPERIMENT_REQUEST_TAG = "eval_platform/experiment_request"
#: Keys are judge versions (``MODEL@VERSION.PROMPT_ID@PROMPT_VERSION.HASH8``, eval_platform.evaluation.judge_license.judge_key:
#: no character of ``|,[]``); the judge-license sensor adds one when a suite asks a license of a new judge version.
judge_versions = dg.DynamicPartitionsDefinition(name="judge_versions")
#: Tag of a judge-license run: the calibration dataset versions it was requested for (comma-separated).
CALIBRATION_TAG = "eval_platform/calibration"
