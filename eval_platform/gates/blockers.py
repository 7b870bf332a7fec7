"""Why a run's gate cannot be decided at all, as typed blockers: callers select them by kind, never by their text."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BlockerKind(StrEnum):
    """What keeps a run's gate from a decision."""

    #: the run's dataset version is not active (contaminated)
    INVALID_DATASET = "invalid_dataset"
    #: the run failed, was invalidated or superseded
    FAILED_RUN = "failed_run"
    #: the run recorded no metric value
    NO_METRICS = "no_metrics"
    #: a metric version of the run's suite is marked buggy: its values are frozen until recomputed
    FROZEN_METRIC = "frozen_metric"
    #: a judge metric without its judge model and prompt version pinned
    UNPINNED_JUDGE = "unpinned_judge"
    #: a release-blocking suite's LLM judge without a license under the suite's requirement on the newest active
    #: calibration version (never checked, agreement too low, or no ``llm.judge_license`` stated)
    UNLICENSED_JUDGE = "unlicensed_judge"
    #: examples of the dataset at or before the model's training cutoff, or in its training manifest
    TRAINING_LEAKAGE = "training_leakage"


#: blockers about the inputs of a run (its dataset version, its metric versions), not about the run itself
INPUT_BLOCKERS = frozenset({BlockerKind.INVALID_DATASET, BlockerKind.FROZEN_METRIC})


@dataclass(frozen=True)
class Blocker:
    """One reason a run's gate has no decision; ``message`` is what the gate's reasons say."""

    kind: BlockerKind
    message: str

    @property
    def about_inputs(self) -> bool:
        return self.kind in INPUT_BLOCKERS
