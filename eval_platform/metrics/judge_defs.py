"""Model-as-judge metrics: scores a pinned judge gave each example (see :mod:`eval_platform.llm.judge`).

The runner asks the suite's pinned judge (``llm.judge`` in the suite) before the metric table is computed
and adds its per-example score as the ``judge_score`` column. The metric names the pin it expects
(``judge_model``, ``judge_prompt_version``); the suite is refused when the pin and the judge config
disagree, and a gate refuses to decide on a judge metric without a pin.
"""

from __future__ import annotations

import numpy as np

from eval_platform.metrics.base import MetricDefinition, Param

GENERATION = frozenset({"generation"})
_PIN = {"judge_model": Param(str), "judge_prompt_version": Param(str)}


def judge_score_per_example(columns, **_pin) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(columns["judge_score"], dtype=np.float64)
    return np.arange(len(scores)), scores


def judge_score(columns, **_pin) -> float:
    """Mean judge score over the examples; ``nan`` when any example has no score (a judge error or an
    unjudged example), so a judge failure can never pass silently."""
    scores = judge_score_per_example(columns)[1]
    if len(scores) == 0 or np.isnan(scores).any():
        return float("nan")
    return float(scores.mean())


METRICS = [
    MetricDefinition("judge_score", 1, "higher", GENERATION, ("prediction", "judge_score"), judge_score, params=_PIN,
                     per_unit=judge_score_per_example, requires_judge=True,
                     description="Mean score (0-1) of the suite's pinned model-as-judge."),
]
