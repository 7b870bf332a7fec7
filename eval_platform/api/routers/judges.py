"""``/v1/judges/licenses``: whether a suite's LLM judge holds a license on its calibration dataset, and its history.

Read-only. A suite is answered as ``/v1/metric-suites`` answers it: an absent suite is 404. The license's figures
are aggregates of the calibration dataset: a team that may know nothing of that dataset (restricted, outside its
policy) gets exactly the 404 an absent suite gets, and the attempt is logged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from eval_platform.api.dependencies import Caller, PlatformDep
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.problems import problem_responses, respond
from eval_platform.core.errors import NotFound
from eval_platform.core.keys import ID_OR_KEY_PATTERN
from eval_platform.evaluation.judge_license import JudgeLicense, license_status, licenses
from eval_platform.registry import access

router = APIRouter(tags=["judges"], route_class=LimitedJSONRoute)


def license_json(lic: JudgeLicense) -> dict:
    drift = lic.drift
    return {"id": lic.id, "judgeKey": lic.judge_key, "judgeConfigHash": lic.judge_config_hash, "judgeModel": lic.judge_model,
            "judgePromptVersion": lic.judge_prompt_version, "calibrationDataset": lic.calibration_key,
            "calibrationContentHash": lic.calibration_content_hash, "measure": lic.measure, "confidence": lic.confidence,
            "minLowerBound": lic.min_lower_bound, "estimate": lic.estimate, "ciLow": lic.ci_low, "ciHigh": lic.ci_high, "n": lic.n,
            "nJudgeErrors": lic.n_judge_errors, "passRate": lic.pass_rate, "licensed": lic.licensed, "computedAt": lic.to_dict()["computed_at"],
            "computedBy": lic.computed_by, "figures": lic.figures(), "invalidated": lic.invalidated,
            "invalidation": None if lic.invalidation is None else {
                "reason": lic.invalidation.reason, "invalidatedBy": lic.invalidation.invalidated_by,
                "invalidatedAt": lic.invalidation.to_dict()["invalidated_at"], "incidentId": lic.invalidation.incident_id},
            "drift": None if drift is None else {
                "previousJudgeKey": drift.previous_judge_key, "previousLicenseId": drift.previous_license_id,
                "nCommon": drift.n_common, "agreement": drift.agreement, "judgeKappa": drift.judge_kappa,
                "passRatePrevious": drift.pass_rate_previous, "passRateCurrent": drift.pass_rate_current,
                "passRateChange": drift.pass_rate_change, "measureChange": drift.measure_change}}


@router.get("/v1/judges/licenses", responses=problem_responses(404, 422))
def get_licenses(principal: Caller, platform: PlatformDep,
                 suite: Annotated[str, Query(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                                             description="SUITE_ID (its newest version) or SUITE_ID@VERSION")]):
    """Whether the suite's judge is licensed now (as the release gate sees it) and the judge's license history on
    the suite's calibration dataset, newest first. ``status`` is null for a suite without a judge_score metric."""
    record = platform.suite(suite) if "@" in suite else platform.latest_suite(suite)
    status = license_status(platform, record)
    if status is None:
        return respond({"suite": record.key, "status": None, "licenses": []})
    calibration_id = status.requirement.calibration_dataset if status.requirement else None
    if calibration_id is not None:
        policies = [d.access_policy for d in platform.datasets() if d.dataset_id == calibration_id]
        if any(not access.may_know(policy, principal.team) for policy in policies):
            access.record_access(platform, principal, access.AGGREGATE_READ, f"{calibration_id}"[:200], access.DENIED,
                                 detail=f"judge licenses of suite {record.key}")
            raise NotFound("metric suite", suite)  # word for word what an absent suite gets
    history = licenses(platform, status.judge_config_hash, calibration_id) if calibration_id else []
    return respond({"suite": record.key, "status": {
        "judgeKey": status.judge_key, "judgeConfigHash": status.judge_config_hash, "licensed": status.licensed,
        "message": status.message, "calibrationDataset": status.calibration_key,
        "requirement": None if status.requirement is None else {
            "calibrationDataset": status.requirement.calibration_dataset, "measure": status.requirement.measure,
            "minLowerBound": status.requirement.min_lower_bound, "confidence": status.requirement.confidence},
        "licenseId": status.license.id if status.license else None},
        "licenses": [license_json(lic) for lic in history]})
