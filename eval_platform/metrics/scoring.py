"""Scoring files directly, without registering anything (``evalp score``), the way trec_eval is used.

Metric names follow the tool each community already uses: scikit-learn's for classification
(``roc_auc``, ``average_precision``, ``log_loss``, ``brier_score``, ``f1@0.5`` where ``@x`` is the
operating threshold, ``recall_at_precision@0.95`` where it is the precision target), the catalog's for
generation (``bleu``, ``chrf``, ``rouge1``, ``exact_match``...). Each name maps to one catalog metric, so
``evalp score`` and a suite compute the very same numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import TypedDict

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import agreement, interleaving, multiclass
from eval_platform.metrics import counterfactual as cf
from eval_platform.metrics.base import Param
from eval_platform.metrics.catalog import get_metric

#: classification name -> (catalog metric, the parameter that ``@x`` sets)
CLASSIFICATION_NAMES = {
    "roc_auc": ("roc_auc@1", None),
    "average_precision": ("average_precision@1", None),
    "pr_auc": ("average_precision@1", None),
    "log_loss": ("log_loss@1", None),
    "brier_score": ("brier_score@1", None),
    "brier": ("brier_score@1", None),
    "ece": ("expected_calibration_error@1", "n_bins"),
    "expected_calibration_error": ("expected_calibration_error@1", "n_bins"),
    "precision": ("precision@1", "threshold"),
    "recall": ("recall@1", "threshold"),
    "f1": ("f1@1", "threshold"),
    "accuracy": ("accuracy@1", "threshold"),
    "fpr": ("false_positive_rate@1", "threshold"),
    "false_positive_rate": ("false_positive_rate@1", "threshold"),
    "recall_at_precision": ("recall_at_precision@1", "min_precision"),
    "threshold_at_precision": ("threshold_at_precision@1", "min_precision"),
}


def _metric_and_params(name: str, table: dict[str, tuple[str, str | None]] | None, task: str,
                       given: Mapping[str, Mapping[str, str]] | None = None):
    """The catalog metric a ``--metric`` name stands for and its parameters: the ``@x`` argument and the
    ``--param name.key=value`` texts of this name (``given``, see :func:`parse_metric_params`)."""
    base, _, argument = name.partition("@")
    if table is not None:
        if base not in table:
            raise InvalidInput("--metric", f"unknown {task} metric {name!r}; known: {', '.join(sorted(table))}")
        key, parameter = table[base]
    else:
        key, parameter = f"{base}@1", None
    definition = get_metric(key)
    params: dict = {}
    if argument:
        if parameter is None:
            raise InvalidInput("--metric", f"{base} takes no @ parameter")
        spec = definition.params[parameter]
        try:
            params[parameter] = spec.kind(argument)
        except ValueError:
            raise InvalidInput("--metric", f"{name!r}: {argument!r} is not a valid {parameter}") from None
    for key, text in ((given or {}).get(name) or {}).items():
        if key not in definition.params:
            known = ", ".join(sorted(definition.params)) or "none"
            raise InvalidInput("--param", f"{name}.{key}: metric {name!r} has no parameter {key!r}; its parameters: {known}")
        if key in params:
            raise InvalidInput("--param", f"{name}.{key}: {key} is already set by the metric's @ argument")
        params[key] = param_from_text(definition.params[key], f"{name}.{key}", text)
    return definition, definition.resolve_params(params)


def _column(frame: pd.DataFrame, name: str, option: str) -> pd.Series:
    if name not in frame.columns:
        raise InvalidInput(option, f"column {name!r} is not in the file; columns: {', '.join(map(str, frame.columns))}")
    return frame[name]


def score_classification(frame: pd.DataFrame, label: str, score: str, metrics: list[str],
                         params: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, float]:
    labels = _column(frame, label, "--label")
    scores = pd.to_numeric(_column(frame, score, "--score"), errors="coerce")
    bad = scores.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidInput(f"column {score!r}", f"row {row + 1}: score {frame[score].iloc[row]!r} is missing or not a number")
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise InvalidInput(f"column {label!r}", f"row {row + 1}: label is missing")
    columns = {"label": labels.to_numpy(), "score": scores.to_numpy(np.float64)}
    results = {}
    for name in metrics:
        definition, resolved = _metric_and_params(name, CLASSIFICATION_NAMES, "classification", params)
        results[name] = float(definition.compute(columns, **resolved))
    return results


def score_generation(frame: pd.DataFrame, prediction: str, reference: str, metrics: list[str],
                     params: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, float]:
    columns = {"prediction": _column(frame, prediction, "--prediction").to_numpy(dtype=object),
               "reference": _column(frame, reference, "--reference").to_numpy(dtype=object)}
    results = {}
    for name in metrics:
        definition, resolved = _metric_and_params(name, None, "generation", params)
        if "generation" not in definition.task_types:
            raise InvalidInput("--metric", f"{name!r} is not a generation metric")
        results[name] = float(definition.compute(columns, **resolved))
    return results


def _finite_or_none(results: dict) -> dict:
    """``results`` with every non-finite float (nan, inf) as None: what JSON can hold."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in results.items()}


def _numeric(frame: pd.DataFrame, name: str, option: str) -> np.ndarray:
    # non-numbers become NaN, which the estimators refuse naming the field and the row
    return pd.to_numeric(_column(frame, name, option), errors="coerce").to_numpy(np.float64)


def score_counterfactual(frame: pd.DataFrame, reward: str, propensity: str, target_probability: str,
                         reward_model_logged: str | None = None, reward_model_target: str | None = None,
                         confidence: float = 0.95) -> dict[str, dict]:
    """IPS and SNIPS (and DR when both reward-model columns are named) of a logged bandit file."""
    if (reward_model_logged is None) != (reward_model_target is None):
        raise InvalidInput("--reward-model-logged", "doubly robust needs both --reward-model-logged and --reward-model-target")
    args = (_numeric(frame, reward, "--reward"), _numeric(frame, propensity, "--propensity"),
            _numeric(frame, target_probability, "--target-probability"))
    results = {"ips": cf.ips_estimate(*args, confidence=confidence),
               "snips": cf.snips_estimate(*args, confidence=confidence)}
    if reward_model_logged is not None and reward_model_target is not None:
        results["dr"] = cf.doubly_robust_estimate(
            *args, _numeric(frame, reward_model_logged, "--reward-model-logged"),
            _numeric(frame, reward_model_target, "--reward-model-target"), confidence=confidence)
    return {name: _finite_or_none(asdict(estimate)) for name, estimate in results.items()}


def score_interleaving(frame: pd.DataFrame, query: str, team: str, clicked: str, confidence: float = 0.95) -> dict:
    """Team-draft interleaving preference of ranker A over B from a click log (one row per shown item)."""
    _, outcomes = interleaving.query_outcomes(_column(frame, query, "--query"), _column(frame, team, "--team"),
                                              _column(frame, clicked, "--clicked"))
    return _finite_or_none(asdict(interleaving.interleaving_preference(outcomes, confidence=confidence)))


class _BootstrapOptions(TypedDict):
    confidence: float
    n_resamples: int
    seed: int


def score_agreement(frame: pd.DataFrame, raters: list[str], level: agreement.Level = "nominal", judge: str | None = None,
                    confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Inter-rater agreement of a ratings file (one row per unit, one column per rater; empty = missing):
    Krippendorff's alpha always, Cohen's kappa for two raters and Fleiss' kappa when no rating is missing
    (nominal level), and with ``judge`` the judge-human comparison."""
    if len(raters) < 2:
        raise InvalidInput("--rater", f"name at least two rater columns, got {len(raters)}")
    table = pd.DataFrame({name: _column(frame, name, "--rater") for name in raters})
    options = _BootstrapOptions(confidence=confidence, n_resamples=n_resamples, seed=seed)
    results = {"krippendorff_alpha": agreement.krippendorff_alpha(table, level=level, **options)}
    if level == "nominal" and not table.isna().any().any():
        if len(raters) == 2:
            results["cohen_kappa"] = agreement.cohen_kappa(table.iloc[:, 0], table.iloc[:, 1], **options)
        results["fleiss_kappa"] = agreement.fleiss_kappa(table, **options)
    out = {name: _finite_or_none(asdict(estimate)) for name, estimate in results.items()}
    if judge is not None:
        both = agreement.judge_human_agreement(table, _column(frame, judge, "--judge"), level=level, **options)
        out["with_judge"] = _finite_or_none(asdict(both.with_judge))
        out["judge_minus_humans"] = _finite_or_none({"value": both.difference, "ci_low": both.difference_ci_low,
                                                "ci_high": both.difference_ci_high})
    return out


# ------------------------------------------------------------------------------------------------------
# metric parameters given as text (``--param metric.key=value``)

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_metric_params(items: list[str] | None, metrics: list[str]) -> dict[str, dict[str, str]]:
    """``["bleu.tokenize=intl", "f1@0.5.threshold=..."]`` as ``{metric: {key: text}}``.

    The metric is everything before the last ``.`` of the left side (a name may hold dots, as ``f1@0.5``),
    and must be one of the ``--metric`` names; a key given twice is refused. The texts are typed by
    :func:`param_from_text` once the metric is known.
    """
    parsed: dict[str, dict[str, str]] = {}
    for item in items or []:
        left, equals, text = item.partition("=")
        name, dot, key = left.rpartition(".")
        if not equals or not dot or not name or not key:
            raise InvalidInput("--param", f"{item!r} must be written metric.key=value, for example bleu.tokenize=intl")
        if name not in metrics:
            raise InvalidInput("--param", f"{item!r} names metric {name!r}, which is not one of the --metric names {metrics}")
        if key in parsed.setdefault(name, {}):
            raise InvalidInput("--param", f"{name}.{key} is given twice")
        parsed[name][key] = text
    return parsed


def param_from_text(spec: Param, field: str, text: str):
    """A parameter's text as its declared type: ``true``/``false`` (also yes/no, 1/0, on/off) for a flag,
    a number, a string as written, a JSON object for a mapping (e.g. per-label thresholds). Range and
    choices are then checked by the metric's own :meth:`~eval_platform.metrics.base.Param.coerce`."""
    try:
        if spec.kind is bool:
            if text.strip().lower() not in (*_TRUE, *_FALSE):
                raise ValueError
            return text.strip().lower() in _TRUE
        if spec.kind is int:
            return int(text)
        if spec.kind is float:
            return float(text)
        if spec.kind is dict:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (ValueError, RecursionError):  # RecursionError: a JSON value nested thousands deep
        what = {bool: "true or false", int: "an integer", float: "a number", dict: "a JSON object"}[spec.kind]
        raise InvalidInput("--param", f"{field}: {text!r} is not {what}") from None
    return text


# ------------------------------------------------------------------------------------------------------
# multi-class and multi-label files: one score column per class or label (``proba_<class>``)

#: multi-class name -> (catalog metric, the parameter that ``@x`` sets): ``class_recall@virginica``
MULTICLASS_NAMES: dict[str, tuple[str, str | None]] = {
    "accuracy": ("multiclass_accuracy@1", None),
    "roc_auc_ovr": ("multiclass_roc_auc_ovr@1", None),
    "roc_auc_ovr_weighted": ("multiclass_roc_auc_ovr_weighted@1", None),
    "log_loss": ("multiclass_log_loss@1", None),
    **{f"{which}_{average}": (f"multiclass_{which}_{average}@1", None)
       for which in ("precision", "recall", "f1") for average in multiclass.AVERAGES},
    **{f"class_{which}": (f"multiclass_class_{which}@1", "class_label") for which in ("precision", "recall", "f1")},
}

#: multi-label name -> (catalog metric, the parameter that ``@x`` sets): ``f1_micro@0.3`` (threshold),
#: ``label_recall@tech`` (the label)
MULTILABEL_NAMES: dict[str, tuple[str, str | None]] = {
    "hamming_loss": ("multilabel_hamming_loss@1", "threshold"),
    "subset_accuracy": ("multilabel_subset_accuracy@1", "threshold"),
    **{f"{which}_{average}": (f"multilabel_{which}_{average}@1", "threshold")
       for which in ("precision", "recall", "f1") for average in multiclass.AVERAGES},
    **{f"{which}_{average}": (f"multilabel_{which}_{average}@1", None)
       for which in ("roc_auc", "average_precision") for average in multiclass.AVERAGES},
    **{f"label_{which}": (f"multilabel_label_{which}@1", "class_label") for which in ("precision", "recall", "f1")},
}


def _proba_matrix(frame: pd.DataFrame, prefix: str) -> tuple[list[str], np.ndarray]:
    """The names after ``prefix`` of the score columns and their values; a missing or non-numeric score
    is refused naming the column and the file's row (from 1)."""
    if not prefix:
        raise InvalidInput("--proba-prefix", "must not be empty")
    columns = [c for c in frame.columns if isinstance(c, str) and c.startswith(prefix) and len(c) > len(prefix)]
    if not columns:
        raise InvalidInput("--proba-prefix", f"no column starts with {prefix!r} (one score column per class, e.g. "
                                             f"{prefix}cat); columns: {', '.join(map(str, frame.columns))}")
    for column in columns:
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = values.iloc[row]
            raise InvalidInput(f"column {column!r}", f"row {row + 1}: score {value.item() if isinstance(value, np.generic) else value!r} "
                                                     "is missing or not a finite number")
    return [c.removeprefix(prefix) for c in columns], frame[columns].apply(pd.to_numeric).to_numpy(np.float64, na_value=np.nan)


def _score_columns(columns: dict, metrics: list[str], names: dict[str, tuple[str, str | None]], task: str,
                   params: Mapping[str, Mapping[str, str]] | None) -> dict[str, float]:
    results = {}
    for name in metrics:
        definition, resolved = _metric_and_params(name, names, task, params)
        results[name] = float(definition.compute(columns, **resolved))
    return results


def score_multiclass(frame: pd.DataFrame, label: str, metrics: list[str], proba_prefix: str = "proba_",
                     params: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, float]:
    """Multi-class metrics of a file with a ``label`` column and one ``<proba_prefix><class>`` score column
    per class (the prediction is the class of the highest score). A label with no score column is refused
    naming its row."""
    labels = _column(frame, label, "--label")
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise InvalidInput(f"column {label!r}", f"row {row + 1}: label is missing")
    names, proba = _proba_matrix(frame, proba_prefix)
    by_text = {str(value): value for value in pd.unique(labels)}
    classes = np.asarray([by_text.get(name, name) for name in names], dtype=object)
    unscored = ~labels.astype(str).isin(names).to_numpy()
    if unscored.any():
        row = int(np.flatnonzero(unscored)[0])
        raise InvalidInput(f"column {label!r}", f"row {row + 1}: label {labels.iloc[row]!r} has no {proba_prefix}{labels.iloc[row]} "
                                                f"score column; the classes scored: {names}")
    columns = {"label": labels.to_numpy(dtype=object), "proba": proba, "classes": np.broadcast_to(classes, proba.shape)}
    return _score_columns(columns, metrics, MULTICLASS_NAMES, "multi-class", params)


def _label_lists(values: pd.Series, column: str, separator: str | None) -> list[list[str]]:
    """One list of labels per row: the row's list (JSON Lines, Parquet), or its text split on ``separator``
    (CSV; an empty cell is no label)."""
    rows: list[list[str]] = []
    for row, value in enumerate(values.tolist()):
        if separator is not None:
            if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
                rows.append([])
                continue
            if not isinstance(value, str):
                raise InvalidInput(f"column {column!r}", f"row {row + 1}: {value!r} is not text of labels separated by {separator!r}")
            rows.append([label.strip() for label in value.split(separator) if label.strip()])
            continue
        if isinstance(value, str):
            raise InvalidInput(f"column {column!r}", f"row {row + 1}: {value!r} is text, not a list of labels (write a JSON "
                                                     "list, or pass --label-separator to split the text)")
        if value is None or not hasattr(value, "__iter__"):
            raise InvalidInput(f"column {column!r}", f"row {row + 1}: {value!r} is not a list of labels")
        rows.append([str(label) for label in value])
    return rows


def score_multilabel(frame: pd.DataFrame, labels: str, metrics: list[str], proba_prefix: str = "proba_",
                     separator: str | None = None, params: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, float]:
    """Multi-label metrics of a file with a ``labels`` column (a list per row, or text split on ``separator``)
    and one ``<proba_prefix><label>`` score column per label; label ``j`` is predicted when its score is at
    least the threshold (0.5 unless ``@x`` or ``--param name.threshold=x`` says otherwise). A label with no
    score column is refused naming its row."""
    rows = _label_lists(_column(frame, labels, "--labels"), labels, separator)
    names, proba = _proba_matrix(frame, proba_prefix)
    position = {name: j for j, name in enumerate(names)}
    indicator = np.zeros(proba.shape, dtype=np.int8)
    for row, row_labels in enumerate(rows):
        for label in row_labels:
            if label not in position:
                raise InvalidInput(f"column {labels!r}", f"row {row + 1}: label {label!r} has no {proba_prefix}{label} score "
                                                         f"column; the labels scored: {names}")
            indicator[row, position[label]] = 1
    columns = {"labels": indicator, "proba": proba, "classes": np.broadcast_to(np.asarray(names, dtype=object), proba.shape)}
    return _score_columns(columns, metrics, MULTILABEL_NAMES, "multi-label", params)
