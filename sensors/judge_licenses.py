"""Judge versions to license checks: when a suite version asking a license of its judge is registered, a new
calibration dataset version becomes active, or a calibration version is found contaminated (its licenses are
invalidated; an older version may be the newest active one again), the judge versions concerned get a
``judge_license`` partition and one run of ``license_judge`` (which then decides again the gates waiting on the
judge; the gate sensor shows them).

The cursor holds the last suite, dataset and incident registry ids read, so a tick reads only what was recorded
since. A run key names the judge version and the calibration versions and measures it is for: the same request
is never launched twice, and a new calibration version or a new requirement is a new run. A check asked for by
a contamination also names the incident: the older version it falls back on may have been checked before (with
the same key), and that check no longer counts.
"""

from __future__ import annotations

import json

import dagster as dg

from eval_platform.core.states import DatasetRole, DatasetStatus
from eval_platform.evaluation.judge_license import (
    JudgeToLicense,
    contaminated_calibrations,
    judges_to_license,
    newest_calibration,
    newest_incident_id,
)
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.assets.partitions import CALIBRATION_TAG, judge_versions
from eval_platform_dagster.jobs.judge_licenses import license_judge
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import SENSOR_INTERVAL_SECONDS


def _checks(platform: EvalPlatform, wanted: JudgeToLicense) -> list[str]:
    """``CALIBRATION@V/MEASURE/CONFIDENCE`` of each check the judge version needs now (no active version: none)."""
    out = []
    for requirement in wanted.requirements:
        calibration = newest_calibration(platform, requirement.calibration_dataset)
        if calibration is not None:
            out.append(f"{calibration.key}/{requirement.measure}/{requirement.confidence:g}")
    return sorted(out)


def _read_cursor(platform: EvalPlatform, cursor: str | None) -> dict:
    """The ids read so far; a cursor written before incidents were read starts at the newest incident (the
    contaminations before it invalidated no license)."""
    if not cursor:
        return {"suite": 0, "dataset": 0, "incident": 0}
    state = json.loads(cursor)
    if "incident" not in state:
        state["incident"] = newest_incident_id(platform)
    return state


@dg.sensor(job=license_judge, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def judge_license_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Add a ``judge_versions`` partition and request a ``license_judge`` run for each judge version a newly
    registered suite version asks a license of, and for each judge version whose suites name a calibration
    dataset that got a new active version or had a version found contaminated."""
    platform = sensor_platform(context)
    state = _read_cursor(platform, context.cursor)
    suites, datasets = platform.suites(), platform.datasets()
    new_suites = [s for s in suites if s.id > state["suite"]]
    new_calibrations = {d.dataset_id for d in datasets
                        if d.id > state["dataset"] and d.role == DatasetRole.CALIBRATION and d.status == DatasetStatus.ACTIVE}
    contaminated, incident = contaminated_calibrations(platform, state["incident"])
    cursor = json.dumps({"suite": max([state["suite"], *(s.id for s in suites)]),
                         "dataset": max([state["dataset"], *(d.id for d in datasets)]), "incident": incident})
    if not new_suites and not new_calibrations and not contaminated:
        return dg.SensorResult(cursor=cursor, skip_reason="no new suite asking a judge license, no new or contaminated calibration version")
    every = judges_to_license(platform, suites)
    concerned = set(judges_to_license(platform, new_suites))
    concerned |= {key for key, wanted in every.items()
                  if any(r.calibration_dataset in new_calibrations | contaminated.keys() for r in wanted.requirements)}
    known = known_partitions(sensor_instance(context), judge_versions)
    requests, to_add = [], []
    for key in sorted(concerned):
        checks = _checks(platform, every[key])
        if not checks:
            continue  # no active calibration version (yet, or left): the gate's blocker says so
        if key not in known:
            to_add.append(key)
        after = max((contaminated.get(r.calibration_dataset, 0) for r in every[key].requirements), default=0)
        requests.append(dg.RunRequest(run_key=f"license:{key}:{','.join(checks)}" + (f":after-incident-{after}" if after else ""),
                                      partition_key=key, tags={CALIBRATION_TAG: ",".join(checks)}))
    return dg.SensorResult(
        run_requests=requests, cursor=cursor,
        dynamic_partitions_requests=[judge_versions.build_add_request(to_add)] if to_add else [],
        skip_reason=None if requests else "the judges concerned have no active calibration version")
