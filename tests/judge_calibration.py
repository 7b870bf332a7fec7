"""Calibration sets whose agreement with the local rule judge is known by construction, and licensing a suite's judge.

The local server's rule judge (eval_platform/llm/server.py) scores an answer 1 when it contains the reference
and by token F1 otherwise. Each row here answers either ``It is <reference>.`` (the judge: pass) or
``I am not sure.`` (no token of any reference: fail); the humans label by the same rule, except for the rows
listed in ``flipped``, whose human label is the opposite. So the judge agrees with the humans on every row but
the flipped ones, and the expected kappa is sklearn's on those two label vectors. The answers are phrased so
that no calibration call is also a call of an eval run (kb candidates answer with the bare reference), which
keeps the eval tests' call counts as they were.
"""

from __future__ import annotations

import json
from importlib import resources as package_files

import pandas as pd

from eval_platform.evaluation.judge_license import judges_to_license, license_judge_version
from eval_platform.platform.service import EvalPlatform

CALIBRATION_ID = "qa-calibration"


def qa_rows() -> list[dict]:
    text = package_files.files("eval_platform").joinpath("data/qa_small.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def calibration_frame(start: int = 20, stop: int = 80, flipped: frozenset[int] = frozenset()) -> pd.DataFrame:
    """Rows ``start..stop`` of the shipped QA set, every other one answered right; ``flipped`` positions get the
    human label the rule would not give. Returns the frame with ``judge_expected`` (what the rule judge says)."""
    out = []
    for position, row in enumerate(qa_rows()[start:stop]):
        right = position % 2 == 0
        expected = "pass" if right else "fail"
        human = ("fail" if expected == "pass" else "pass") if position in flipped else expected
        out.append({"example_id": f"cal-{row['id']}", "prompt": row["question"], "reference": row["answer"],
                    "answer": f"It is {row['answer']}." if right else "I am not sure.", "human_label": human,
                    "judge_expected": expected})
    return pd.DataFrame(out)


def register_calibration(platform: EvalPlatform, dataset_id: str = CALIBRATION_ID, **kwargs):
    frame = calibration_frame(**kwargs)
    return platform.register_dataset(dataset_id, frame.drop(columns=["judge_expected"]), task_type="generation",
                                     label_policy="human_reviewed", role="calibration").record


def license_judges(platform: EvalPlatform) -> list:
    """Check every judge the registered suites ask a license for (what the judge_license asset does)."""
    return [lic for key in judges_to_license(platform) for lic in license_judge_version(platform, key, computed_by="test")]


def judge_license(dataset_id: str = CALIBRATION_ID, **requirement) -> dict:
    return {"calibration_dataset": dataset_id, **requirement}


def license_judge(platform: EvalPlatform, judge: dict, dataset_id: str = CALIBRATION_ID, **requirement):
    """Register the calibration set (humans label by the rule judge's own rule) and check ``judge`` on it: the
    license a suite stating ``judge_license(dataset_id, **requirement)`` needs before its gate may decide."""
    from eval_platform.evaluation.judge_license import LicenseRequirement, compute_license
    from eval_platform.llm.judge import JudgeConfig

    calibration = register_calibration(platform, dataset_id)
    return compute_license(platform, JudgeConfig.from_dict(judge), calibration, LicenseRequirement(dataset_id, **requirement),
                           computed_by="test")
