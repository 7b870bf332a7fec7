"""The calibration dataset contract: human verdicts on answers, which license an LLM judge.

A dataset version registered with role ``calibration`` is a human-labelled set of graded answers. Its rows
hold (task type ``generation``):

==============  ===================================================================================
column          what
==============  ===================================================================================
example_id      the example's id (unique)
prompt          the question the answer was given to
reference       the reference answer
answer          the answer the judge grades (the text the humans graded)
human_label     the humans' verdict on ``answer``: ``pass`` or ``fail`` (no missing value)
==============  ===================================================================================

Its ``label_policy`` is ``human_reviewed`` or ``mixed`` (people decided the labels). Registration checks all
of it before anything is stored and refuses, naming the field (and the first bad row, counted from 1).
The review queue publishes new versions of such datasets with exactly these columns; the judge license
(:mod:`eval_platform.evaluation.judge_license`) reads them.
"""

from __future__ import annotations

import pandas as pd

from eval_platform.core.errors import InvalidInput

#: the columns every calibration row has, besides ``example_id``
CALIBRATION_COLUMNS = ("prompt", "reference", "answer", "human_label")
#: what a human verdict may be
HUMAN_LABELS = ("pass", "fail")
#: label policies of a calibration set: people decided its labels
CALIBRATION_LABEL_POLICIES = ("human_reviewed", "mixed")
CALIBRATION_TASK_TYPE = "generation"


def check_calibration_dataset(frame: pd.DataFrame, task_type: str, label_policy: str) -> None:
    """Refuse (:class:`InvalidInput` naming the field) a calibration dataset outside the contract above."""
    if task_type != CALIBRATION_TASK_TYPE:
        raise InvalidInput("task_type", f"a calibration dataset has task type {CALIBRATION_TASK_TYPE!r}, got {task_type!r}")
    if label_policy not in CALIBRATION_LABEL_POLICIES:
        raise InvalidInput("label_policy", f"a calibration dataset is labelled by people: {' or '.join(CALIBRATION_LABEL_POLICIES)}, "
                                           f"got {label_policy!r}")
    for column in CALIBRATION_COLUMNS:
        if column not in frame.columns:
            raise InvalidInput(column, f"a calibration dataset needs column {column!r} (columns: example_id, {', '.join(CALIBRATION_COLUMNS)})")
    labels = frame["human_label"]
    bad = ~labels.isin(HUMAN_LABELS)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise InvalidInput("human_label", f"row {row + 1}: must be 'pass' or 'fail', got {labels.iloc[row]!r}")
    answers = frame["answer"]
    missing = answers.isna() | ~answers.map(lambda a: isinstance(a, str))
    if missing.any():
        row = int(missing.to_numpy().argmax())
        raise InvalidInput("answer", f"row {row + 1}: must be the answer's text, got {answers.iloc[row]!r}")
