"""Scoring files directly, without registering anything (``evalp score``), the way trec_eval is used.

Metric names follow the tool each community already uses: scikit-learn's for classification
(``roc_auc``, ``average_precision``, ``log_loss``, ``brier_score``, ``f1@0.5`` where ``@x`` is the
operating threshold, ``recall_at_precision@0.95`` where it is the precision target), the catalog's for
generation (``bleu``, ``chrf``, ``rouge1``, ``exact_match``...). Each name maps to one catalog metric, so
``evalp score`` and a suite compute the very same numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TypedDict

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import agreement, interleaving
from eval_platform.metrics import counterfactual as cf
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


def _metric_and_params(name: str, table: dict[str, tuple[str, str | None]] | None, task: str):
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
    return definition, definition.resolve_params(params)


def _column(frame: pd.DataFrame, name: str, option: str) -> pd.Series:
    if name not in frame.columns:
        raise InvalidInput(option, f"column {name!r} is not in the file; columns: {', '.join(map(str, frame.columns))}")
    return frame[name]


def score_classification(frame: pd.DataFrame, label: str, score: str, metrics: list[str]) -> dict[str, float]:
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
        definition, params = _metric_and_params(name, CLASSIFICATION_NAMES, "classification")
        results[name] = float(definition.compute(columns, **params))
    return results


def score_generation(frame: pd.DataFrame, prediction: str, reference: str, metrics: list[str]) -> dict[str, float]:
    columns = {"prediction": _column(frame, prediction, "--prediction").to_numpy(dtype=object),
               "reference": _column(frame, reference, "--reference").to_numpy(dtype=object)}
    results = {}
    for name in metrics:
        definition, params = _metric_and_params(name, None, "generation")
        if "generation" not in definition.task_types:
            raise InvalidInput("--metric", f"{name!r} is not a generation metric")
        results[name] = float(definition.compute(columns, **params))
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
