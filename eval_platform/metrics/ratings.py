"""Human ratings as labels: a dataset's rater columns on a declared scale, their agreement, and the judge's.

A ratings dataset holds, beside its examples, one column per human rater (``rating_columns``), each cell that
rater's rating of the example or missing. Its :class:`RatingScale` says what a rating is:

* ``likert``: numbers (``levels: [1, 2, 3, 4, 5]``), equally spaced in meaning: Krippendorff's alpha at the
  ``interval`` level, and the mean rating is a label (:func:`human_rating_mean`);
* ``ordinal``: ordered levels, numbers or words (``levels: [poor, fair, good]``, lowest first): alpha at the
  ``ordinal`` level (only the order counts; declare a Likert scale ``ordinal`` when its distances are not
  trusted);
* ``nominal``: unordered labels: alpha at the ``nominal`` level;
* ``preference``: a pairwise comparison of the candidate's output (``A``) with the baseline's (``B``), or
  ``tie``: alpha at the ``ordinal`` level over ``B < tie < A`` (A against tie is a smaller disagreement than
  A against B), and the share of examples whose raters prefer the candidate (:func:`human_preference_rate`).

Ratings are encoded once (:meth:`RatingScale.encode`) as a float table, one row per example and one column per
rater, NaN when missing: a Likert rating is its number, an ordinal or nominal level its position in
``levels``, a preference ``B = 0``, ``tie = 0.5``, ``A = 1``. Alpha is invariant to these codings at the
levels used (nominal: any distinct codes; ordinal: any increasing codes).

Functions (typed results, reusable outside suites):

* :func:`rater_agreement`: alpha among the humans (:func:`eval_platform.metrics.agreement.krippendorff_alpha`),
  percentile bootstrap interval over examples.
* :func:`judge_agreement`: :func:`eval_platform.metrics.agreement.judge_human_agreement`, the judge as one more
  rater: alpha among the humans, alpha with the judge added, and ``difference = with_judge - humans`` with its
  paired interval (0: the judge agrees with the humans as well as they agree among themselves). The judge's
  score ``s`` in ``[0, 1]`` is put on the human scale by :func:`judge_on_scale`: ``lo + s (hi - lo)`` on a
  Likert scale, the nearest level ``round(s (k - 1))`` on an ordinal one of ``k`` levels; nominal and
  preference scales have no such map and are refused.
* :func:`human_rating_mean`: the human consensus of a Likert scale, ``mean_u (mean of example u's ratings)``
  over the examples with a rating, with the Student-t interval of that mean.
* :func:`human_preference_rate`: per example the mean preference of its raters; an example is decisive when
  that mean is not 0.5. ``rate = k / n`` with ``k`` the decisive examples whose raters prefer the candidate
  (mean > 0.5) and ``n`` all decisive ones, with the Wilson score interval ``(p + z^2/2n +- z sqrt(p (1 - p)
  / n + z^2 / 4n^2)) / (1 + z^2 / n)``; 0.5 means no preference (as the pairwise judge's ``judge_preference``).

The catalog metrics (``rater_agreement@1``, ``judge_human_agreement@1``, ``human_rating_mean@1``,
``human_preference_rate@1``) read the table as the ``human_ratings`` column of the evaluation frame and the
scale as ``human_rating_scale`` (its JSON, the same on every row, so resampling and slicing rows keep it).
Their value is the point estimate, or with ``bound: lower`` (``upper``) the interval's bound, so a gate rule
``{metric: ..., min: x}`` can require a lower bound; the interval itself is recorded with every run. A
dataset without declared raters, or with a scale the metric does not apply to, is refused with an
:class:`~eval_platform.core.errors.InvalidInput` naming ``rating_columns`` or ``rating_scale``: the run
fails and its gate has no decision. Agreement where every rating is the same value is undefined
(``nan``), and so is the gate's decision.

Example::

    >>> scale = RatingScale.from_raw({"type": "likert", "levels": [1, 2, 3]})
    >>> table = scale.encode([[1, 1], [2, 2], [3, 2]])
    >>> round(rater_agreement(table, scale, n_resamples=0).value, 3)
    0.706
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats as sps
from eval_platform.metrics.agreement import AgreementEstimate, JudgeHumanAgreement, judge_human_agreement, krippendorff_alpha
from eval_platform.metrics.base import MetricDefinition, MetricEstimate, Param

__all__ = [
    "PreferenceRate",
    "RatingMean",
    "RatingScale",
    "human_preference_rate",
    "human_rating_mean",
    "judge_agreement",
    "judge_on_scale",
    "rater_agreement",
]

SCALE_TYPES = ("likert", "ordinal", "nominal", "preference")
#: the labels of a preference scale and their codes (A: the candidate's output, B: the baseline's)
PREFERENCE_CODES = {"B": 0.0, "tie": 0.5, "A": 1.0}
_ALPHA_LEVEL = {"likert": "interval", "ordinal": "ordinal", "nominal": "nominal", "preference": "ordinal"}


@dataclass(frozen=True)
class RatingScale:
    """What a rating is: ``type`` (one of :data:`SCALE_TYPES`) and its ``levels`` (lowest first where ordered)."""

    type: str
    levels: tuple

    @classmethod
    def from_raw(cls, raw: Any, field: str = "rating_scale") -> RatingScale:
        """``{type: likert, levels: [1, 2, 3, 4, 5]}``, ``{type: ordinal|nominal, levels: [...]}`` or
        ``{type: preference}``; every problem names ``field`` (``rating_scale.levels``...)."""
        if not isinstance(raw, Mapping):
            raise InvalidInput(field, f"must be a mapping with a 'type' ({', '.join(SCALE_TYPES)}), got {raw!r}")
        unknown = sorted(set(raw) - {"type", "levels"})
        if unknown:
            raise InvalidInput(field, f"unknown key(s) {unknown}; known: ['levels', 'type']")
        kind = raw.get("type")
        if kind not in SCALE_TYPES:
            raise InvalidInput(f"{field}.type", f"must be one of {', '.join(SCALE_TYPES)}, got {kind!r}")
        if kind == "preference":
            if raw.get("levels") not in (None, list(PREFERENCE_CODES)):
                raise InvalidInput(f"{field}.levels", f"a preference scale's levels are {list(PREFERENCE_CODES)}; leave them out")
            return cls(kind, tuple(PREFERENCE_CODES))
        return cls(kind, _levels(raw.get("levels"), kind, f"{field}.levels"))

    def as_json(self) -> dict:
        return {"type": self.type, "levels": list(self.levels)}

    @property
    def level(self) -> str:
        """The measurement level Krippendorff's alpha uses on this scale."""
        return _ALPHA_LEVEL[self.type]

    @property
    def codes(self) -> dict:
        """Each level's numeric code (module docstring)."""
        if self.type == "likert":
            return {level: float(level) for level in self.levels}
        if self.type == "preference":
            return dict(PREFERENCE_CODES)
        return {level: float(position) for position, level in enumerate(self.levels)}

    def encode(self, ratings: Any, field: str = "rating_columns", raters: Sequence[str] | None = None) -> np.ndarray:
        """The ratings (units x raters; missing as None/NaN) as codes, NaN where missing. A rating outside the
        scale is refused naming the rater (column) and the row, counted from 1."""
        frame = ratings if isinstance(ratings, pd.DataFrame) else pd.DataFrame(np.asarray(ratings, dtype=object))
        names = list(raters) if raters is not None else [str(c) for c in frame.columns]
        codes = self.codes
        out = np.full(frame.shape, np.nan)
        for j, column in enumerate(frame.columns):
            values = frame[column]
            if pd.api.types.is_bool_dtype(values):
                raise InvalidInput(f"{field}[{names[j]}]", "holds true/false values; ratings must be levels of the scale")
            present = values.notna().to_numpy()
            mapped = pd.Series(values.to_numpy(dtype=object)).map(lambda v: codes.get(v) if _hashable_rating(v) else None)
            mapped = mapped.to_numpy(dtype=np.float64, na_value=np.nan)
            outside = present & np.isnan(mapped)
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                value = values.iloc[row]
                value = value.item() if isinstance(value, np.generic) else value  # 3, not np.int64(3)
                raise InvalidInput(f"{field}[{names[j]}]", f"row {row + 1}: {value!r} is not a level of the "
                                                           f"{self.type} scale {list(self.levels)} ({int(outside.sum())} such rating(s))")
            out[:, j] = mapped
        return out


def _hashable_rating(value: Any) -> bool:
    # a bool equals 0/1 as a dict key: never a level; an unhashable value (a list) is no level either
    return not isinstance(value, bool | np.bool_) and getattr(type(value), "__hash__", None) is not None


def _levels(levels: Any, kind: str, field: str) -> tuple:
    if not isinstance(levels, list | tuple) or len(levels) < 2:
        raise InvalidInput(field, f"must list at least 2 levels, got {levels!r}")
    numbers = [isinstance(v, int | float) and not isinstance(v, bool) for v in levels]
    if kind == "likert" and not all(numbers):
        raise InvalidInput(field, f"a likert scale's levels must be numbers, got {list(levels)!r}")
    for value, number in zip(levels, numbers, strict=True):
        if not (number and math.isfinite(value)) and not (isinstance(value, str) and value):
            raise InvalidInput(field, f"levels must be finite numbers or non-empty strings, got {value!r}")
    if len(set(levels)) != len(levels):
        raise InvalidInput(field, f"levels must be distinct, got {list(levels)!r}")
    if kind == "likert" and list(levels) != sorted(levels):
        raise InvalidInput(field, f"a likert scale's levels must be in increasing order, got {list(levels)!r}")
    return tuple(levels)


@functools.lru_cache(maxsize=64)
def scale_of_json(text: str) -> RatingScale:
    return RatingScale.from_raw(json.loads(text))


# ------------------------------------------------------------------------------------------------------
# typed results


@dataclass(frozen=True)
class RatingMean:
    """The mean of the examples' mean human rating, with its Student-t ``confidence`` interval."""

    value: float
    ci_low: float
    ci_high: float
    n_units: int
    confidence: float


@dataclass(frozen=True)
class PreferenceRate:
    """The share of decisive examples whose raters prefer the candidate, with its Wilson interval."""

    value: float
    ci_low: float
    ci_high: float
    n_preferred: int
    n_decisive: int
    n_ties: int
    confidence: float


# ------------------------------------------------------------------------------------------------------
# functions


def _table(ratings: Any) -> np.ndarray:
    table = np.asarray(ratings, dtype=np.float64)
    if table.ndim != 2:
        raise InvalidInput("human_ratings", f"must be two-dimensional (examples x raters), got shape {table.shape}")
    return table


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def _require(scale: RatingScale, types: tuple[str, ...], what: str) -> None:
    if scale.type not in types:
        raise InvalidInput("rating_scale", f"{what} needs a {' or '.join(types)} scale; the dataset's is {scale.type}")


def rater_agreement(ratings: Any, scale: RatingScale, *, confidence: float = 0.95, n_resamples: int = 1000,
                    seed: int = 0) -> AgreementEstimate:
    """Krippendorff's alpha among the human raters (encoded table), at the scale's level.

    >>> scale = RatingScale.from_raw({"type": "nominal", "levels": ["x", "y"]})
    >>> rater_agreement(scale.encode([["x", "x"], ["y", "y"]]), scale, n_resamples=0).value
    1.0
    """
    table = _table(ratings)
    if table.shape[1] < 2:
        raise InvalidInput("rating_columns", f"agreement needs at least 2 raters, got {table.shape[1]}")
    return krippendorff_alpha(table, level=scale.level, confidence=confidence, n_resamples=n_resamples, seed=seed)  # type: ignore[arg-type]


def judge_on_scale(judge_scores: Any, scale: RatingScale) -> np.ndarray:
    """The judge's scores in ``[0, 1]`` (NaN: not judged) as ratings on the human scale (module docstring)."""
    _require(scale, ("likert", "ordinal"), "judge-human agreement")
    scores = np.asarray(judge_scores, dtype=np.float64)
    if np.any((scores < 0) | (scores > 1)):
        raise InvalidInput("judge_score", "judge scores must lie in [0, 1]")
    if scale.type == "likert":
        low, high = float(scale.levels[0]), float(scale.levels[-1])
        return low + scores * (high - low)
    return np.round(scores * (len(scale.levels) - 1))  # the nearest ordinal level's position (NaN stays NaN)


def judge_agreement(ratings: Any, judge_scores: Any, scale: RatingScale, *, confidence: float = 0.95,
                    n_resamples: int = 1000, seed: int = 0) -> JudgeHumanAgreement:
    """Alpha among the humans, with the judge added, and their difference with its paired interval."""
    table = _table(ratings)
    if table.shape[1] < 2:
        raise InvalidInput("rating_columns", f"agreement needs at least 2 raters, got {table.shape[1]}")
    return judge_human_agreement(table, judge_on_scale(judge_scores, scale), level=scale.level,  # type: ignore[arg-type]
                                 confidence=confidence, n_resamples=n_resamples, seed=seed)


def human_rating_mean(ratings: Any, scale: RatingScale, *, confidence: float = 0.95) -> RatingMean:
    """Mean over the rated examples of each example's mean rating (Likert scales), Student-t interval.

    ``nan`` without a rated example; no interval below two.

    >>> scale = RatingScale.from_raw({"type": "likert", "levels": [1, 2, 3, 4, 5]})
    >>> human_rating_mean(scale.encode([[4, 5], [3, None]]), scale).value
    3.75
    """
    _require(scale, ("likert",), "the mean rating")
    confidence = _check_confidence(confidence)
    table = _table(ratings)
    rated = ~np.isnan(table).all(axis=1)
    means = np.nanmean(table[rated], axis=1) if rated.any() else np.zeros(0)
    n = len(means)
    value = float(means.mean()) if n else float("nan")
    low = high = float("nan")
    if n >= 2:
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * float(means.std(ddof=1)) / math.sqrt(n)
        low, high = value - half, value + half
    return RatingMean(value, low, high, n, confidence)


def human_preference_rate(ratings: Any, scale: RatingScale, *, confidence: float = 0.95) -> PreferenceRate:
    """Share of the decisive examples whose raters prefer the candidate (``A``), Wilson interval.

    ``nan`` without a decisive example.

    >>> scale = RatingScale.from_raw({"type": "preference"})
    >>> result = human_preference_rate(scale.encode([["A", "A"], ["A", "tie"], ["B", "A"], ["B", "B"]]), scale)
    >>> (result.n_preferred, result.n_decisive, result.n_ties)
    (2, 3, 1)
    """
    _require(scale, ("preference",), "the preference rate")
    confidence = _check_confidence(confidence)
    table = _table(ratings)
    rated = ~np.isnan(table).all(axis=1)
    consensus = np.nanmean(table[rated], axis=1) if rated.any() else np.zeros(0)
    preferred, decisive = int((consensus > 0.5).sum()), int((consensus != 0.5).sum())
    ties = len(consensus) - decisive
    if decisive == 0:
        return PreferenceRate(float("nan"), float("nan"), float("nan"), 0, 0, ties, confidence)
    p, n = preferred / decisive, decisive
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return PreferenceRate(p, centre - half, centre + half, preferred, decisive, ties, confidence)


# ------------------------------------------------------------------------------------------------------
# catalog metrics

RATED_TASKS = frozenset({"generation", "binary_classification", "multiclass_classification"})
_BOUND = Param(str, "estimate", choices=("estimate", "lower", "upper"))
_CONFIDENCE = Param(float, 0.95, minimum=0.5, maximum=0.999)
_RESAMPLED = {"confidence": _CONFIDENCE, "n_resamples": Param(int, 1000, minimum=100, maximum=100_000),
              "seed": Param(int, 0, minimum=0), "bound": _BOUND}
_JUDGE_PIN = {"judge_model": Param(str), "judge_prompt_version": Param(str)}


def _ratings_and_scale(columns) -> tuple[np.ndarray, RatingScale]:
    if "human_ratings" not in columns:
        raise InvalidInput("rating_columns", "the dataset declares no human rating columns (register it with "
                                             "rating_columns and rating_scale)")
    scale = columns["human_rating_scale"]
    if len(scale) == 0:
        raise InvalidInput("human_ratings", "no examples")
    return np.asarray(columns["human_ratings"], dtype=np.float64), scale_of_json(str(scale[0]))


def _pick(estimate: MetricEstimate, bound: str) -> float:
    return {"estimate": estimate.value, "lower": estimate.ci_low, "upper": estimate.ci_high}[bound]


def _from_agreement(result: AgreementEstimate, method: str) -> MetricEstimate:
    return MetricEstimate(result.value, result.ci_low, result.ci_high, result.confidence, result.n_units, method)


def rater_agreement_estimate(columns, *, confidence=0.95, n_resamples=1000, seed=0, bound="estimate") -> MetricEstimate:
    ratings, scale = _ratings_and_scale(columns)
    result = rater_agreement(ratings, scale, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return _from_agreement(result, f"krippendorff_alpha_{scale.level}, percentile bootstrap over examples")


def judge_human_agreement_estimate(columns, *, confidence=0.95, n_resamples=1000, seed=0, bound="estimate",
                                   **_pin) -> MetricEstimate:
    """The judge's difference ``alpha(humans + judge) - alpha(humans)``; ``nan`` when a judged example has no
    judge score (a judge error never passes silently; unsampled examples of a stratified sample are missing
    ratings, which alpha allows)."""
    ratings, scale = _ratings_and_scale(columns)
    scores = np.asarray(columns["judge_score"], dtype=np.float64)
    judged = np.asarray(columns["judge_sampled"], dtype=bool) if "judge_sampled" in columns else np.ones(len(scores), bool)
    method = f"alpha_{scale.level}(humans + judge) - alpha(humans), paired bootstrap over examples"
    if np.isnan(scores[judged]).any():
        return MetricEstimate(float("nan"), float("nan"), float("nan"), confidence, len(scores), method)
    result = judge_agreement(ratings, scores, scale, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return MetricEstimate(result.difference, result.difference_ci_low, result.difference_ci_high, confidence,
                          result.with_judge.n_units, method)


def human_rating_mean_estimate(columns, *, confidence=0.95, bound="estimate") -> MetricEstimate:
    ratings, scale = _ratings_and_scale(columns)
    result = human_rating_mean(ratings, scale, confidence=confidence)
    return MetricEstimate(result.value, result.ci_low, result.ci_high, confidence, result.n_units, "Student-t over examples")


def human_preference_rate_estimate(columns, *, confidence=0.95, bound="estimate") -> MetricEstimate:
    ratings, scale = _ratings_and_scale(columns)
    result = human_preference_rate(ratings, scale, confidence=confidence)
    return MetricEstimate(result.value, result.ci_low, result.ci_high, confidence, result.n_decisive, "Wilson score, decisive examples")


def _metric(estimate, resampled: bool):
    """The catalog ``compute``: the estimate's point (without resampling, when only the point is asked for)
    or the bound the ``bound`` parameter names."""

    def compute(columns, **params) -> float:
        if params.get("bound", "estimate") == "estimate" and resampled:
            params = {**params, "n_resamples": 0}
        return float(_pick(estimate(columns, **params), params.get("bound", "estimate")))

    return compute


def _definition(name, task_types, required, estimate, params, resampled, description, **extra) -> MetricDefinition:
    # bootstrap=False: the ratings are the dataset's, the same for candidate and baseline, so a paired resampling
    # of the comparison measures nothing and would repeat each metric's own resampling thousands of times
    return MetricDefinition(name, 1, "higher", task_types, required, _metric(estimate, resampled), params=params,
                            estimate=estimate, bootstrap=False, description=description, **extra)


METRICS = [
    _definition("rater_agreement", RATED_TASKS, ("human_ratings",), rater_agreement_estimate, _RESAMPLED, True,
                "Krippendorff's alpha among the dataset's human raters (level from the rating scale), bootstrap interval."),
    _definition("judge_human_agreement", frozenset({"generation"}), ("human_ratings", "judge_score"), judge_human_agreement_estimate,
                {**_RESAMPLED, **_JUDGE_PIN}, True,
                "alpha(humans + pinned judge) - alpha(humans): 0 when the judge agrees with the raters as they agree "
                "among themselves; paired bootstrap interval.", requires_judge=True),
    _definition("human_rating_mean", RATED_TASKS, ("human_ratings",), human_rating_mean_estimate,
                {"confidence": _CONFIDENCE, "bound": _BOUND}, False,
                "Mean human rating (Likert scale) of the examples, Student-t interval."),
    _definition("human_preference_rate", RATED_TASKS, ("human_ratings",), human_preference_rate_estimate,
                {"confidence": _CONFIDENCE, "bound": _BOUND}, False,
                "Share of decisive examples whose raters prefer the candidate (A) over the baseline (B), Wilson interval."),
]
