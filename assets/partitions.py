"""Partitions of the asset graph: one per registered model version, one per dataset version."""

import dagster as dg

#: Keys are ``model_name@version``; the eval-request sensor adds one when a model version is registered.
model_versions = dg.DynamicPartitionsDefinition(name="model_versions")
#: Keys are ``dataset_id@version``; the dataset sensor adds one when a dataset version is registered.
dataset_versions = dg.DynamicPartitionsDefinition(name="dataset_versions")

#: Tag the eval-request sensor puts on the runs it launches: such a run evaluates the queued requests.
REQUESTED_TAG = "eval_platform/requested"
#: Tag of a promotion run: the id of the registry's promotion request it carries out.
PROMOTION_REQUEST_TAG = "eval_platform/promotion_request"
#: Keys are experiment ids; the experiment sensor adds one when an analysis is first requested.
experiments = dg.DynamicPartitionsDefinition(name="experiments")
#: Tag of an experiment-analysis run: the ids (comma-separated) of the analysis requests it carries out.
EXPERIMENT_REQUEST_TAG = "eval_platform/experiment_request"
