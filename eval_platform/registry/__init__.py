"""The registry: durable records of datasets, metric suites, models, eval runs and gate decisions."""

from eval_platform.registry.database import Registry
from eval_platform.registry.schema import (
    DagsterRequest,
    EvalDataset,
    EvalPlanEntry,
    EvalRun,
    GateDecisionRecord,
    GateOverride,
    Incident,
    MetricSuite,
    Model,
    PredictionSet,
    Promotion,
    ReleaseLedgerEntry,
)

__all__ = [
    "DagsterRequest", "GateOverride", "Incident",
    "EvalDataset", "EvalPlanEntry", "EvalRun", "GateDecisionRecord", "MetricSuite", "Model", "PredictionSet",
    "Promotion", "Registry", "ReleaseLedgerEntry",
]
