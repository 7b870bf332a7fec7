"""Catalog entries of the classification metrics (see :mod:`eval_platform.metrics.classification`).

Columns each family reads (the arrays of :data:`eval_platform.metrics.base.Columns`):

* ``binary_classification``: ``label`` (0/1, shape ``(n,)``) and ``score`` (float, ``(n,)``).
* ``multiclass_classification``: ``label`` (the class of each example, ``(n,)``, any hashable labels),
  ``proba`` (float, 2-D ``(n, n_classes)``: column ``j`` is the probability or score of ``classes[j]``)
  and ``classes`` (the class labels in column order, ``(n_classes,)``). Because the comparison
  statistics resample *every* column row-wise, ``classes`` should be handed over broadcast to one row
  per example, ``numpy.broadcast_to(classes, (n, n_classes))`` (a view, no copy); both shapes are
  accepted and row 0 is used. The predicted class is the ``argmax`` of ``proba`` (first column on ties).
* ``multilabel_classification``: ``labels`` (0/1 indicator ``(n, n_labels)``, or a 1-D object array with
  one list of labels per example), ``proba`` (float ``(n, n_labels)``, the score of each label) and
  ``classes`` (the label names in column order, ``(n_labels,)`` or broadcast as above). Label ``j`` is
  predicted when ``proba[:, j] >= threshold``; the ``label_thresholds`` parameter (a JSON object
  ``{label: threshold}``) overrides ``threshold`` for the labels it names.

Names carry the family (``multiclass_``/``multilabel_``) because a catalog key is ``name@version`` across
all task types; averages follow scikit-learn's scorer suffixes (``_macro``, ``_micro``, ``_weighted``).
Per-class values for gates are the ``*_class_*`` metrics with a ``class_label`` parameter, matched
against the class or its ``str``.
"""

from __future__ import annotations

from eval_platform.metrics import classification as clf
from eval_platform.metrics import multiclass
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


# ------------------------------------------------------------------------------------------------------
# Multi-class: label / proba (n, n_classes) / classes

MULTICLASS = frozenset({"multiclass_classification"})
_MULTICLASS_COLUMNS = ("label", "proba", "classes")
_CLASS_LABEL = {"class_label": Param(str, required=True)}


def _multiclass(name, fn, direction="higher", params=None, description="", **fixed):
    def compute(columns, **kwargs):
        return fn(columns["label"], columns["proba"], columns["classes"], **fixed, **kwargs)

    METRICS.append(
        MetricDefinition(
            name=name,
            version=1,
            direction=direction,
            task_types=MULTICLASS,
            required_columns=_MULTICLASS_COLUMNS,
            compute=compute,
            params=params or {},
            description=description or (fn.__doc__ or "").strip().splitlines()[0],
        )
    )


_multiclass("multiclass_accuracy", multiclass.multiclass_accuracy)
for _average in multiclass.AVERAGES:
    for _which, _fn in (("precision", multiclass.multiclass_precision), ("recall", multiclass.multiclass_recall), ("f1", multiclass.multiclass_f1)):
        _multiclass(
            f"multiclass_{_which}_{_average}",
            _fn,
            average=_average,
            description=f"{_which.capitalize()} over classes, {_average}-averaged (argmax prediction).",
        )
for _which in ("precision", "recall", "f1"):
    _multiclass(
        f"multiclass_class_{_which}",
        multiclass.class_metric,
        params=_CLASS_LABEL,
        metric=_which,
        description=f"{_which.capitalize()} of one class (parameter class_label), argmax prediction.",
    )
_multiclass(
    "multiclass_roc_auc_ovr",
    multiclass.multiclass_roc_auc_ovr,
    average="macro",
    description="One-vs-rest ROC-AUC, mean over classes (scikit-learn multi_class='ovr', average='macro').",
)
_multiclass(
    "multiclass_roc_auc_ovr_weighted",
    multiclass.multiclass_roc_auc_ovr,
    average="weighted",
    description="One-vs-rest ROC-AUC weighted by class prevalence (multi_class='ovr', average='weighted').",
)
_multiclass("multiclass_log_loss", multiclass.multiclass_log_loss, direction="lower")


# ------------------------------------------------------------------------------------------------------
# Multi-label: labels (n, n_labels) / proba (n, n_labels) / classes

MULTILABEL = frozenset({"multilabel_classification"})
_MULTILABEL_COLUMNS = ("labels", "proba", "classes")
_LABEL_THRESHOLDS = {"threshold": Param(float, default=0.5), "label_thresholds": Param(dict, default=None)}


def _thresholds(columns, threshold, label_thresholds):
    """One threshold per label: ``label_thresholds`` (keys matched to a label or its str) over ``threshold``."""
    if not label_thresholds:
        return threshold
    classes = multiclass._check_classes(columns["classes"], minimum=1)
    merged = {str(c): threshold for c in classes.tolist()}
    for key, value in label_thresholds.items():
        position = multiclass._class_position(classes.tolist(), key, "label_thresholds")
        merged[str(classes[position])] = value
    return merged


def _multilabel(name, fn, direction="higher", params=None, description="", **fixed):
    def compute(columns, threshold=0.5, label_thresholds=None, **kwargs):
        per_label = _thresholds(columns, threshold, label_thresholds)
        return fn(columns["labels"], columns["proba"], columns["classes"], per_label, **fixed, **kwargs)

    METRICS.append(
        MetricDefinition(
            name=name,
            version=1,
            direction=direction,
            task_types=MULTILABEL,
            required_columns=_MULTILABEL_COLUMNS,
            compute=compute,
            params={**_LABEL_THRESHOLDS, **(params or {})},
            description=description or (fn.__doc__ or "").strip().splitlines()[0],
        )
    )


def _label_metric(labels, proba, classes, threshold, class_label, metric):
    table = multiclass.multilabel_per_label_metrics(labels, proba, classes, threshold)
    return float(table[metric].iloc[multiclass._class_position(table.index, class_label)])


for _average in multiclass.AVERAGES:
    for _which, _multilabel_fn in (("precision", multiclass.multilabel_precision), ("recall", multiclass.multilabel_recall),
                                   ("f1", multiclass.multilabel_f1)):
        _multilabel(
            f"multilabel_{_which}_{_average}",
            _multilabel_fn,
            average=_average,
            description=f"{_which.capitalize()} over labels at the per-label thresholds, {_average}-averaged.",
        )
for _which in ("precision", "recall", "f1"):
    _multilabel(
        f"multilabel_label_{_which}",
        _label_metric,
        params=_CLASS_LABEL,
        metric=_which,
        description=f"{_which.capitalize()} of one label (parameter class_label) at its threshold.",
    )
_multilabel("multilabel_hamming_loss", multiclass.multilabel_hamming_loss, direction="lower",
            description="Fraction of wrong (example, label) decisions at the per-label thresholds (scikit-learn hamming_loss).")
_multilabel("multilabel_subset_accuracy", multiclass.multilabel_subset_accuracy,
            description="Fraction of examples whose predicted label set is exactly the true set (exact match).")


def _multilabel_ranking(name, fn, average, description):
    """A threshold-free multi-label metric (per-label scores ranked): no threshold parameters."""
    def compute(columns, **kwargs):
        return fn(columns["labels"], columns["proba"], columns["classes"], average=average, **kwargs)

    METRICS.append(MetricDefinition(name=name, version=1, direction="higher", task_types=MULTILABEL,
                                    required_columns=_MULTILABEL_COLUMNS, compute=compute, params={},
                                    description=description))


for _average in multiclass.AVERAGES:
    _multilabel_ranking(f"multilabel_roc_auc_{_average}", multiclass.multilabel_roc_auc, _average,
                        f"ROC-AUC of each label's scores, {_average}-averaged over labels (scikit-learn roc_auc_score).")
    _multilabel_ranking(f"multilabel_average_precision_{_average}", multiclass.multilabel_average_precision, _average,
                        f"Average precision of each label's scores, {_average}-averaged (average_precision_score).")
