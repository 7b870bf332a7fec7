"""Which run a candidate is compared with: the baseline model version's run on the same dataset and suite.
"""

from __future__ import annotations

from sqlalchemy import select

from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import CANARY_TRIGGER, BaselineState, RunStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalRun


# step 3: comparison with the baseline -------------------------------------------------------------------
def find_baseline(platform: EvalPlatform, run: EvalRun) -> tuple[BaselineState, EvalRun | None, str | None]:
    """``(state, baseline_run, baseline_model_key)``; state is ``ok``, ``none`` (no baseline model),
    ``missing`` (the baseline has no finished run on this dataset and suite) or ``stale`` (its run used
    another dataset, suite or metric version than the candidate's)."""
    if run.requested_baseline:
        baseline_key = run.requested_baseline
    else:
        promoted = platform.promoted_version(run.model_name)
        if promoted is None or promoted == run.model_version:
            return BaselineState.NONE, None, None
        baseline_key = f"{run.model_name}@{promoted}"
    name, version = VersionedKey.parse(baseline_key, "baseline")
    with platform.registry.session() as session:
        candidates = list(session.scalars(select(EvalRun).where(
            EvalRun.model_name == name, EvalRun.model_version == version, EvalRun.dataset_id == run.dataset_id,
            EvalRun.suite_id == run.suite_id, EvalRun.status == RunStatus.SUCCEEDED,
            EvalRun.trigger != CANARY_TRIGGER).order_by(EvalRun.finished_at.desc())))  # a canary run is never a baseline
    exact = [c for c in candidates if c.dataset_version == run.dataset_version and c.suite_version == run.suite_version]
    if exact:
        return BaselineState.OK, exact[0], baseline_key
    if candidates:
        return BaselineState.STALE, candidates[0], baseline_key
    return BaselineState.MISSING, None, baseline_key
