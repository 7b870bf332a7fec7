"""Model-as-judge metrics: scores a pinned judge gave each example (see :mod:`eval_platform.llm.judge`).

The runner asks the suite's pinned judge (``llm.judge`` in the suite) before the metric table is computed
and adds its per-example score as the ``judge_score`` column. The metric names the pin it expects
(``judge_model``, ``judge_prompt_version``); the suite is refused when the pin and the judge config
disagree, and a gate refuses to decide on a judge metric without a pin.

When the suite judges a stratified sample (``llm.judge_sample``), the frame also has ``judge_stratum`` (the
stratum of every example, judged or not) and ``judge_sampled``; ``judge_score`` is then the stratified
estimate of the population mean on whatever rows it is given (the whole dataset or one slice).

``judge_preference`` is the pairwise judge's preference for the candidate over the baseline (``llm.
pairwise_judge``, both orders). It exists only against a baseline, so it is computed by the comparison,
not in the metric table (``comparison_only``).
"""

from __future__ import annotations

import numpy as np

from eval_platform.metrics.base import MetricDefinition, Param

GENERATION = frozenset({"generation"})
_PIN = {"judge_model": Param(str), "judge_prompt_version": Param(str)}


def judge_score_per_example(columns, **_pin) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(columns["judge_score"], dtype=np.float64)
    return np.arange(len(scores)), scores


def stratified_judge_score(scores, strata, sampled) -> float:
    """Population mean of the judge score from a stratified sample: ``sum_h (N_h / N) * mean_h`` over the
    strata ``h`` present among these rows, ``N_h`` counting every row of stratum ``h`` (judged or not) and
    ``mean_h`` averaging its judged rows. ``nan`` when a judged row has no score (a judge error: never
    dropped silently) or a stratum has no judged row here (its mean is unknown), and for no rows at all."""
    scores = np.asarray(scores, dtype=np.float64)
    strata = np.asarray(strata, dtype=object)
    sampled = np.asarray(sampled, dtype=bool)
    if len(scores) == 0 or np.isnan(scores[sampled]).any():
        return float("nan")
    total = 0.0
    for name in np.unique(strata.astype(str)):
        rows = strata.astype(str) == name
        judged = scores[rows & sampled]
        if len(judged) == 0:
            return float("nan")
        total += rows.sum() / len(scores) * float(judged.mean())
    return float(total)


def judge_score(columns, **_pin) -> float:
    """Mean judge score over the examples; ``nan`` when any example has no score (a judge error or an
    unjudged example), so a judge failure can never pass silently. On a stratified sample (columns
    ``judge_stratum`` and ``judge_sampled``): :func:`stratified_judge_score`."""
    if "judge_stratum" in columns:
        return stratified_judge_score(columns["judge_score"], columns["judge_stratum"], columns["judge_sampled"])
    scores = judge_score_per_example(columns)[1]
    if len(scores) == 0 or np.isnan(scores).any():
        return float("nan")
    return float(scores.mean())


def judge_preference(columns, **_pin) -> float:
    """Mean preference for the candidate over the baseline, per example ``1`` (candidate wins), ``0``
    (baseline wins) or ``0.5`` (tie), averaged over both presentation orders and the samples; ``0.5``
    means no preference. ``nan`` when any example has no verdict (a judge error or a missing answer)."""
    values = np.asarray(columns["judge_preference"], dtype=np.float64)
    if len(values) == 0 or np.isnan(values).any():
        return float("nan")
    return float(values.mean())


METRICS = [
    MetricDefinition("judge_score", 1, "higher", GENERATION, ("prediction", "judge_score"), judge_score, params=_PIN,
                     per_unit=judge_score_per_example, requires_judge=True,
                     description="Mean score (0-1) of the suite's pinned model-as-judge."),
    MetricDefinition("judge_preference", 1, "higher", GENERATION, ("prediction", "judge_preference"), judge_preference,
                     params=_PIN, requires_judge=True, comparison_only=True,
                     description="Preference (0-1, 0.5 = none) of the suite's pinned pairwise judge for the candidate "
                                 "over the baseline, both orders."),
]
