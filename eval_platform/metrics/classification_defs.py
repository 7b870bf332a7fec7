"""Catalog entries of the classification metrics (see :mod:`eval_platform.metrics.classification`)."""

from __future__ import annotations

from eval_platform.metrics import classification as clf
from eval_platform.metrics.base import MetricDefinition, Param

METRICS: list[MetricDefinition] = []

BINARY = frozenset({"binary_classification"})
_THRESHOLD = {"threshold": Param(float, default=0.5)}
_PRECISION_TARGET = {"min_precision": Param(float, default=0.95, minimum=0.0, maximum=1.0)}

def _binary(name, fn, direction="higher", params=None, description=""):
    def compute(columns, **kwargs):
        return fn(columns["label"], columns["score"], **kwargs)

    METRICS.append(
        MetricDefinition(
            name=name,
            version=1,
            direction=direction,
            task_types=BINARY,
            required_columns=("label", "score"),
            compute=compute,
            params=params or {},
            description=description or (fn.__doc__ or "").strip().splitlines()[0],
        )
    )


_binary("roc_auc", clf.roc_auc)
_binary("average_precision", clf.average_precision)
_binary("precision", clf.precision_at, params=_THRESHOLD)
_binary("recall", clf.recall_at, params=_THRESHOLD)
_binary("f1", clf.f1_at, params=_THRESHOLD)
_binary("accuracy", clf.accuracy_at, params=_THRESHOLD)
_binary("false_positive_rate", clf.false_positive_rate_at, direction="lower", params=_THRESHOLD)
_binary("recall_at_precision", clf.recall_at_precision, params=_PRECISION_TARGET)
_binary(
    "threshold_at_precision",
    clf.threshold_at_precision,
    params=_PRECISION_TARGET,
    description="Score threshold of the recall-at-precision operating point (informational).",
)
_binary("log_loss", clf.log_loss, direction="lower")
_binary("brier_score", clf.brier_score, direction="lower")
_binary(
    "expected_calibration_error",
    clf.expected_calibration_error,
    direction="lower",
    params={"n_bins": Param(int, default=10, minimum=1)},
)


