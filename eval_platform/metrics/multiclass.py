"""Multi-class and multi-label classification metrics over numpy arrays, equal to scikit-learn's.

The binary metrics and their conventions are in :mod:`eval_platform.metrics.classification`.

Multi-class conventions (``y_true``/``proba``/``classes``):

* ``proba`` is a 2-D float array ``(n, n_classes)`` whose column ``j`` scores ``classes[j]``;
  ``y_true`` holds class labels, every one of which must be in ``classes`` (else ``InvalidInput`` naming
  the row). The predicted class is ``classes[argmax(proba[i])]``; a tie goes to the first column (what
  ``numpy.argmax`` and scikit-learn's ``predict`` do).
* ``classes`` may also be given broadcast to ``(n, n_classes)`` (``numpy.broadcast_to``): a frame whose
  every column is row-aligned survives row-wise resampling; row 0 is used.
* Per-class precision ``TP / (TP + FP)`` is 0 for a class never predicted; recall ``TP / (TP + FN)`` is
  ``nan`` for a class with no true example; F1 ``2 TP / (2 TP + FP + FN)`` is 0 when that is ``0/0``.
* ``macro`` averages over the classes that have at least one true example (a slice that lacks a class
  is not penalised for it, and ``nan`` recall never enters an average); ``weighted`` weights by the
  number of true examples; ``micro`` pools the counts (for single-label multi-class it equals accuracy).
  These equal scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)`` with
  ``labels=<classes present in y_true>`` for ``macro`` and ``labels=classes`` for the others.

Multi-label conventions (``y_true``/``y_score``/``classes``): ``y_true`` is a 0/1 indicator matrix
``(n, n_labels)`` (or a 1-D object array or Series holding one list of labels per row), ``y_score`` the
per-label scores of the same shape, and label ``j`` is predicted when ``y_score[:, j] >= threshold[j]``.
Per-label and averaged precision/recall/F1 follow the multi-class rules above, label by label.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.classification import (
    average_precision,
    check_threshold,
    f1_from_counts,
    plain,
    precision_from_counts,
    recall_from_counts,
    roc_auc,
)

AVERAGES = ("macro", "micro", "weighted")


# ------------------------------------------------------------------------------------------------------
# Multi-class: validation


def _check_classes(classes, n_columns: int | None = None, minimum: int = 2) -> np.ndarray:
    classes = np.asarray(classes)
    if classes.ndim == 2:  # broadcast to one row per example: every row is the same list
        if classes.shape[0] == 0:
            raise InvalidInput("label", "is empty: no examples to evaluate")
        classes = classes[0]
    if classes.ndim != 1:
        raise InvalidInput("classes", f"must be a one-dimensional array of class labels, got shape {classes.shape}")
    if classes.size < minimum:
        raise InvalidInput("classes", f"needs at least {minimum} class(es), got {classes.size}")
    index = pd.Index(classes)
    if not index.is_unique:
        raise InvalidInput("classes", f"contains duplicates: {sorted(map(repr, index[index.duplicated()].unique()))}")
    if n_columns is not None and classes.size != n_columns:
        raise InvalidInput("classes", f"has {classes.size} labels but the scores have {n_columns} columns")
    return classes


def _as_float_matrix(values, field: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object and array.ndim == 1:  # one sequence per row, e.g. a pandas column of lists
        if array.size == 0:
            raise InvalidInput("label", "is empty: no examples to evaluate")
        try:
            array = np.stack([np.asarray(row, dtype=np.float64) for row in array])
        except ValueError as error:
            raise InvalidInput(field, f"rows must all have the same number of columns ({error})") from error
    try:
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as error:
        raise InvalidInput(field, f"must be numeric: {error}") from error
    if array.ndim != 2:
        raise InvalidInput(field, f"must be a 2-D array (n_examples, n_classes), got shape {array.shape}")
    nan_rows = np.isnan(array).any(axis=1)
    if nan_rows.any():
        row = int(np.flatnonzero(nan_rows)[0])
        raise InvalidInput(field, f"contains NaN at row {row}, column {int(np.flatnonzero(np.isnan(array[row]))[0])}")
    return array


def _check_multiclass(y_true, proba, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, proba, classes)``: ``codes[i]`` is the column of ``y_true[i]`` in ``classes``."""
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise InvalidInput("label", f"must be one-dimensional (one class per example), got shape {y_true.shape}")
    if y_true.shape[0] == 0:
        raise InvalidInput("label", "is empty: no examples to evaluate")
    proba = _as_float_matrix(proba, "proba")
    if proba.shape[0] != y_true.shape[0]:
        raise InvalidInput("label/proba", f"have different lengths ({y_true.shape[0]} and {proba.shape[0]})")
    classes = _check_classes(classes, proba.shape[1])
    codes = pd.Index(classes).get_indexer(y_true)
    unknown = codes < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise InvalidInput("label", f"row {row} is {plain(y_true[row])!r}, which is not one of the classes {classes.tolist()}")
    return codes.astype(np.int64, copy=False), proba, classes


def _counts_multiclass(codes: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(codes * k + predicted, minlength=k * k).reshape(k, k)


# ------------------------------------------------------------------------------------------------------
# Per-class counts to precision / recall / F1 and their averages (shared by multi-class and multi-label)


def _per_class(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return precision, recall, f1


def _averaged(tp, fp, fn, average: str, which: str) -> float:
    if average not in AVERAGES:
        raise InvalidInput("average", f"must be one of {list(AVERAGES)}, got {average!r}")
    tp, fp, fn = (np.asarray(x, dtype=np.int64) for x in (tp, fp, fn))
    if average == "micro":
        t, f_p, f_n = int(tp.sum()), int(fp.sum()), int(fn.sum())
        return {"precision": precision_from_counts(t, f_p), "recall": recall_from_counts(t, f_n), "f1": f1_from_counts(t, f_p, f_n)}[which]
    values = dict(zip(("precision", "recall", "f1"), _per_class(tp, fp, fn), strict=True))[which]
    support = tp + fn
    present = support > 0
    if not present.any():
        return float("nan")
    if average == "macro":
        return float(np.mean(values[present]))
    return float(np.sum(values[present] * support[present]) / np.sum(support[present]))


def _table(index: pd.Index, tp, fp, fn, extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    precision, recall, f1 = _per_class(tp, fp, fn)
    columns = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": np.asarray(tp + fn, dtype=np.int64),
        "n_predicted": np.asarray(tp + fp, dtype=np.int64),
    }
    columns.update(extra or {})
    return pd.DataFrame(columns, index=index)


# ------------------------------------------------------------------------------------------------------
# Multi-class metrics


def multiclass_predictions(proba, classes) -> np.ndarray:
    """``classes[argmax(proba, axis=1)]``: the predicted class of each row (ties: the first column)."""
    proba = _as_float_matrix(proba, "proba")
    if proba.shape[0] == 0:
        raise InvalidInput("proba", "is empty: no examples to evaluate")
    classes = _check_classes(classes, proba.shape[1])
    return classes[np.argmax(proba, axis=1)]


def _multiclass_counts(y_true, proba, classes) -> tuple[np.ndarray, np.ndarray]:
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    return _counts_multiclass(codes, np.argmax(proba, axis=1), classes.size), classes


def confusion_matrix(y_true, proba, classes) -> pd.DataFrame:
    """Counts ``C[t, p]`` of examples of true class ``t`` predicted as ``p`` (``argmax`` of ``proba``).

    Rows (index ``true``) and columns (``predicted``) are ``classes`` in the given order, so the matrix
    is square even when a class is absent. Equal to ``sklearn.metrics.confusion_matrix(..., labels=classes)``.
    """
    counts, classes = _multiclass_counts(y_true, proba, classes)
    return pd.DataFrame(
        counts.astype(np.int64),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )


def _tp_fp_fn(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(counts)
    return tp, counts.sum(axis=0) - tp, counts.sum(axis=1) - tp


def per_class_metrics(y_true, proba, classes) -> pd.DataFrame:
    """One row per class (index ``class``): ``precision``, ``recall``, ``f1``, ``support`` (true
    examples), ``n_predicted``; for class ``c``: ``P = TP/(TP+FP)`` (0 if never predicted),
    ``R = TP/(TP+FN)`` (``nan`` if no true example), ``F1 = 2TP/(2TP+FP+FN)`` (0 if ``0/0``).
    """
    counts, classes = _multiclass_counts(y_true, proba, classes)
    return _table(pd.Index(classes, name="class"), *_tp_fp_fn(counts))


def multiclass_precision(y_true, proba, classes, average: str = "macro") -> float:
    """Precision averaged over classes: ``macro`` (classes with true examples), ``micro``, ``weighted``."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "precision")


def multiclass_recall(y_true, proba, classes, average: str = "macro") -> float:
    """Recall averaged over classes (macro = balanced accuracy over the classes present)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "recall")


def multiclass_f1(y_true, proba, classes, average: str = "macro") -> float:
    """F1 averaged over classes: the mean (macro/weighted) of per-class F1, or the pooled F1 (micro)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return _averaged(*_tp_fp_fn(counts), average, "f1")


def multiclass_accuracy(y_true, proba, classes) -> float:
    """Fraction of examples whose ``argmax`` class equals the label (= micro precision/recall/F1)."""
    counts, _ = _multiclass_counts(y_true, proba, classes)
    return float(np.trace(counts) / counts.sum())


def class_metric(y_true, proba, classes, class_label, metric: str = "recall") -> float:
    """One class's ``precision``, ``recall`` or ``f1`` (see :func:`per_class_metrics`).

    ``class_label`` matches a class or its ``str`` (so a JSON parameter ``"3"`` finds class ``3``).
    """
    if metric not in ("precision", "recall", "f1"):
        raise InvalidInput("metric", f"must be precision, recall or f1, got {metric!r}")
    table = per_class_metrics(y_true, proba, classes)
    return float(table[metric].iloc[_class_position(table.index, class_label)])


def _class_position(classes, label, field: str = "class_label") -> int:
    """Position of ``label`` in ``classes``: an equal class first, else a class whose ``str`` equals it."""
    classes = list(classes)
    for position, c in enumerate(classes):
        if type(c) is type(label) and c == label:
            return position
    names = [str(c) for c in classes]
    if str(label) in names:
        return names.index(str(label))
    raise InvalidInput(field, f"{label!r} is not one of the classes {names}")


def multiclass_roc_auc_ovr(y_true, proba, classes, average: str = "macro") -> float:
    """One-vs-rest ROC-AUC: ``AUC_c = roc_auc(y == c, proba[:, c])`` averaged over classes.

    ``macro`` is the mean of ``AUC_c``, ``weighted`` weights it by the class's true examples (scikit-learn's
    ``roc_auc_score(multi_class="ovr")``). A class whose one-vs-rest AUC is undefined (no true example, or
    every example is of that class) is left out of the average; ``nan`` when no class is defined.
    Any per-class scores work (rows need not sum to 1, unlike scikit-learn).
    """
    if average not in ("macro", "weighted"):
        raise InvalidInput("average", f"must be macro or weighted, got {average!r}")
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    aucs = np.array([roc_auc((codes == j).astype(np.int8), np.ascontiguousarray(proba[:, j])) for j in range(classes.size)])
    defined = ~np.isnan(aucs)
    if not defined.any():
        return float("nan")
    if average == "macro":
        return float(np.mean(aucs[defined]))
    support = np.bincount(codes, minlength=classes.size)[defined]
    return float(np.sum(aucs[defined] * support) / np.sum(support))


def _check_probability_rows(proba: np.ndarray) -> None:
    """Probabilities in [0, 1] whose rows sum to 1 within ``1e-6``, or :class:`InvalidInput` naming the first row
    that does not: what log loss needs."""
    if proba.min() < 0 or proba.max() > 1:
        raise InvalidInput("proba", f"log loss needs probabilities in [0, 1]; got values in [{proba.min()}, {proba.max()}]")
    off = np.abs(proba.sum(axis=1) - 1.0) > 1e-6
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise InvalidInput("proba", f"row {row} sums to {float(proba[row].sum())!r}, not 1: log loss needs probabilities")


def multiclass_log_loss(y_true, proba, classes) -> float:
    """Cross-entropy ``-mean_i log p_i[y_i]``, ``p`` clipped to ``[eps, 1 - eps]`` (float64 eps).

    ``proba`` must hold probabilities in [0, 1] whose rows sum to 1 within ``1e-6`` (else
    ``InvalidInput`` naming the row): the loss of unnormalised scores would reward inflating them.
    """
    codes, proba, classes = _check_multiclass(y_true, proba, classes)
    _check_probability_rows(proba)
    eps = np.finfo(np.float64).eps
    p = np.clip(proba[np.arange(codes.size), codes], eps, 1 - eps)
    return float(-np.mean(np.log(p)))


# ------------------------------------------------------------------------------------------------------
# Multi-label metrics


def _check_multilabel(y_true, y_score, classes, threshold) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(indicator, scores, classes, thresholds)`` with one threshold per label."""
    try:
        y_array = np.asarray(y_true, dtype=object) if _is_label_lists(y_true) else np.asarray(y_true)
    except ValueError as error:  # ragged nested lists
        raise InvalidInput("labels", f"must be a 0/1 matrix or a 1-D object array of label lists ({error})") from error
    if y_array.shape[:1] == (0,):
        raise InvalidInput("labels", "is empty: no examples to evaluate")
    scores = _as_float_matrix(y_score, "proba")
    classes = _check_classes(classes, scores.shape[1], minimum=1)
    if y_array.dtype == object and y_array.ndim == 1:
        indicator = _indicator_from_lists(y_array, classes)
    else:
        if y_array.ndim != 2:
            raise InvalidInput("labels", f"must be a 0/1 matrix (n_examples, n_labels) or one list of labels per row, got shape {y_array.shape}")
        if y_array.dtype == bool:
            y_array = y_array.astype(np.int8)
        bad = (y_array != 0) & (y_array != 1)
        if bad.any():
            row, column = (int(v[0]) for v in np.nonzero(bad))
            raise InvalidInput("labels", f"must be 0 or 1; row {row}, column {column} is {plain(y_array[row, column])!r}")
        indicator = y_array.astype(np.int8)
    if indicator.shape[0] != scores.shape[0]:
        raise InvalidInput("labels/proba", f"have different lengths ({indicator.shape[0]} and {scores.shape[0]})")
    if indicator.shape[1] != scores.shape[1]:
        raise InvalidInput("labels/proba", f"have different numbers of labels ({indicator.shape[1]} and {scores.shape[1]})")
    return indicator, scores, classes, _label_thresholds(threshold, classes)


def _is_label_lists(values) -> bool:
    """One sequence of labels per row: a 1-D object array or an object Series (not a 0/1 matrix)."""
    if isinstance(values, pd.Series):
        return values.dtype == object
    return isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1


def _indicator_from_lists(rows: np.ndarray, classes: np.ndarray) -> np.ndarray:
    position = {c: j for j, c in enumerate(classes.tolist())}
    indicator = np.zeros((rows.size, classes.size), dtype=np.int8)
    for i, row in enumerate(rows):
        if row is None or isinstance(row, str) or not hasattr(row, "__iter__"):
            raise InvalidInput("labels", f"row {i} must be a list of labels, got {row!r}")
        for label in row:
            j = position.get(label.item() if isinstance(label, np.generic) else label)
            if j is None:
                raise InvalidInput("labels", f"row {i} has label {plain(label)!r}, which is not one of the classes {classes.tolist()}")
            indicator[i, j] = 1
    return indicator


def _label_thresholds(threshold, classes: np.ndarray) -> np.ndarray:
    if isinstance(threshold, Mapping):
        values = np.full(classes.size, np.nan)
        for key, value in threshold.items():
            values[_class_position(classes.tolist(), key, "threshold")] = check_threshold(value, f"threshold[{key!r}]")
        missing = [str(c) for c in classes[np.isnan(values)].tolist()]
        if missing:
            raise InvalidInput("threshold", f"has no threshold for label(s) {missing}")
        return values
    if np.ndim(threshold) == 0:
        return np.full(classes.size, check_threshold(threshold))
    checked = [check_threshold(v, "threshold") for v in np.asarray(threshold).ravel().tolist()]
    if np.ndim(threshold) != 1 or len(checked) != classes.size:
        raise InvalidInput("threshold", f"must be one number, or one per label ({classes.size}), got shape {np.shape(threshold)}")
    return np.asarray(checked, dtype=np.float64)


def _multilabel_counts(y_true, y_score, classes, threshold):
    indicator, scores, classes, thresholds = _check_multilabel(y_true, y_score, classes, threshold)
    predicted = scores >= thresholds
    positive = indicator == 1
    tp = np.count_nonzero(predicted & positive, axis=0)
    fp = np.count_nonzero(predicted & ~positive, axis=0)
    fn = np.count_nonzero(~predicted & positive, axis=0)
    return tp, fp, fn, classes, thresholds


def multilabel_per_label_metrics(y_true, y_score, classes, threshold=0.5) -> pd.DataFrame:
    """One row per label (index ``label``): ``precision``, ``recall``, ``f1``, ``support``,
    ``n_predicted`` and the ``threshold`` used, label ``j`` predicted when ``y_score[:, j] >= threshold[j]``.

    ``threshold`` is one number, one per label (sequence in ``classes`` order) or a mapping label ->
    threshold covering every label. Conventions as :func:`per_class_metrics`.
    """
    tp, fp, fn, classes, thresholds = _multilabel_counts(y_true, y_score, classes, threshold)
    return _table(pd.Index(classes, name="label"), tp, fp, fn, {"threshold": thresholds})


def multilabel_precision(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """Precision over labels: ``macro`` (labels with a true example), ``micro`` (pooled), ``weighted``."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "precision")


def multilabel_recall(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """Recall over labels (macro/micro/weighted); ``nan`` when no label has a true example."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "recall")


def multilabel_f1(y_true, y_score, classes, threshold=0.5, average: str = "macro") -> float:
    """F1 over labels: mean of per-label F1 (macro/weighted) or pooled ``2TP/(2TP+FP+FN)`` (micro)."""
    tp, fp, fn, _, _ = _multilabel_counts(y_true, y_score, classes, threshold)
    return _averaged(tp, fp, fn, average, "f1")


def multilabel_hamming_loss(y_true, y_score, classes, threshold=0.5) -> float:
    """Fraction of (example, label) decisions that are wrong: ``(FP + FN) / (n * n_labels)``.

    Label ``j`` is predicted when ``y_score[:, j] >= threshold[j]``; equal to scikit-learn's
    ``hamming_loss`` on the indicator matrices. Lower is better; 0 when every decision is right.

    >>> multilabel_hamming_loss([[1, 0], [0, 1]], [[0.9, 0.8], [0.1, 0.7]], ["a", "b"])
    0.25
    """
    indicator, scores, _, thresholds = _check_multilabel(y_true, y_score, classes, threshold)
    return float(np.mean((scores >= thresholds) != (indicator == 1)))


def multilabel_subset_accuracy(y_true, y_score, classes, threshold=0.5) -> float:
    """Exact-match ratio: the fraction of examples whose predicted label set equals the true set.

    Equal to scikit-learn's ``accuracy_score`` on the indicator matrices (a row with no true and no
    predicted label is a match).

    >>> multilabel_subset_accuracy([[1, 0], [0, 1]], [[0.9, 0.8], [0.1, 0.7]], ["a", "b"])
    0.5
    """
    indicator, scores, _, thresholds = _check_multilabel(y_true, y_score, classes, threshold)
    predicted = (scores >= thresholds).astype(np.int8)
    return float(np.mean(np.all(predicted == indicator, axis=1)))


def _ranking_over_labels(y_true, y_score, classes, average: str, per_label) -> float:
    """``per_label(indicator[:, j], scores[:, j])`` averaged over labels (macro: the labels where it is
    defined; weighted: by each label's true examples) or computed once on the flattened matrices (micro)."""
    if average not in AVERAGES:
        raise InvalidInput("average", f"must be one of {list(AVERAGES)}, got {average!r}")
    indicator, scores, classes, _ = _check_multilabel(y_true, y_score, classes, 0.5)
    if average == "micro":
        return float(per_label(indicator.ravel(), scores.ravel()))
    values = np.array([per_label(indicator[:, j], np.ascontiguousarray(scores[:, j])) for j in range(classes.size)])
    defined = ~np.isnan(values)
    if not defined.any():
        return float("nan")
    if average == "macro":
        return float(np.mean(values[defined]))
    support = indicator.sum(axis=0)[defined]
    return float(np.sum(values[defined] * support) / np.sum(support)) if support.sum() else float("nan")


def multilabel_roc_auc(y_true, y_score, classes, average: str = "macro") -> float:
    """ROC-AUC of each label's scores against its 0/1 column, averaged over labels.

    ``macro``: mean of the per-label AUCs; ``weighted``: weighted by each label's true examples;
    ``micro``: one AUC over every (example, label) cell. A label whose AUC is undefined (all 0 or all 1)
    is left out of ``macro``/``weighted`` (scikit-learn raises instead); ``nan`` when no label is defined.
    Otherwise equal to ``sklearn.metrics.roc_auc_score(Y, scores, average=...)``. Threshold-free.
    """
    return _ranking_over_labels(y_true, y_score, classes, average, roc_auc)


def multilabel_average_precision(y_true, y_score, classes, average: str = "macro") -> float:
    """Average precision (PR-AUC) of each label's scores, averaged over labels as :func:`multilabel_roc_auc`
    (labels without a true example are left out). Equal to ``sklearn.metrics.average_precision_score``."""
    return _ranking_over_labels(y_true, y_score, classes, average, average_precision)


def multilabel_indicator(rows, classes) -> np.ndarray:
    """The 0/1 ``(n, n_labels)`` matrix of one list of labels per row, columns in ``classes`` order;
    a row that is not a list, or a label not in ``classes``, is refused naming the row."""
    classes = _check_classes(classes, minimum=1)
    return _indicator_from_lists(np.asarray(rows, dtype=object) if not isinstance(rows, np.ndarray) else rows, classes)


def multilabel_label_set(rows) -> list:
    """The distinct labels of one list of labels per row, sorted (scikit-learn ``MultiLabelBinarizer``'s
    order): the column order of a multi-label model's outputs. A row that is not a list (a string, a
    number, null) is refused naming the row; labels must be strings or integers."""
    seen: dict = {}
    for i, row in enumerate(rows):
        if row is None or isinstance(row, str | bytes) or not hasattr(row, "__iter__"):
            raise InvalidInput("labels", f"row {i} must be a list of labels, got {plain(row)!r}")
        for label in row:
            label = label.item() if isinstance(label, np.generic) else label
            if isinstance(label, bool) or not isinstance(label, str | int):
                raise InvalidInput("labels", f"row {i} has label {label!r}: labels must be strings or integers")
            seen.setdefault(label, None)
    if not seen:
        raise InvalidInput("labels", "no row has a label: a multi-label dataset needs at least one")
    kinds = {type(label) for label in seen}
    if len(kinds) > 1:
        raise InvalidInput("labels", f"mixes label types {sorted(k.__name__ for k in kinds)}: use one type (text or integers)")
    return sorted(seen)
