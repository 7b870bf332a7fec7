"""After a judge license is checked or invalidated: decide again the gates of the model versions whose
release-blocking runs use that judge (the runner's blockers read the license; this module sits above both)."""

from __future__ import annotations

from collections.abc import Iterable

from eval_platform.core.states import RunStatus, SuitePurpose
from eval_platform.evaluation.judge_license import suite_judge
from eval_platform.evaluation.runner import decide_model_version
from eval_platform.platform.service import EvalPlatform


def gates_waiting_on_judges(platform: EvalPlatform, judge_config_hashes: Iterable[str]) -> list[str]:
    """The model versions whose release-blocking runs use one of these judges, whose gate was already decided
    once and that have no run queued or running: the gates a license check or invalidation changes now."""
    wanted = set(judge_config_hashes)
    if not wanted:
        return []
    hashes: dict[str, bool] = {}
    waiting: list[str] = []
    for run in platform.runs(statuses=[RunStatus.SUCCEEDED]):
        if run.suite_key not in hashes:
            record = platform.suite(run.suite_key)
            config = suite_judge(platform.suite_definition(record))
            hashes[run.suite_key] = (record.purpose == SuitePurpose.RELEASE_BLOCKING and config is not None
                                     and config.config_hash in wanted)
        if hashes[run.suite_key] and run.model_key not in waiting:
            waiting.append(run.model_key)
    return [model_key for model_key in waiting if platform.gate_decision(model_key) is not None
            and not platform.runs(model_key, statuses=[RunStatus.QUEUED, RunStatus.RUNNING])]


def redecide_gates_of_judge(platform: EvalPlatform, judge_config_hash: str) -> list[str]:
    """Decide again the gates of the model versions whose release-blocking runs use this judge (a license was
    just checked): those already decided once and with no run queued or running. Returns their keys."""
    decided = gates_waiting_on_judges(platform, [judge_config_hash])
    for model_key in decided:
        decide_model_version(platform, model_key)
    return decided
