"""The gate on the asset graph: each model version's ``gate_decision`` partition and its ``gate_status`` check
follow the registry's effective decision.

A decision is recorded in the registry whenever it may change (an eval cell finished, a run failed, an
incident froze or invalidated runs); an override is a record of its own. ``gate_sensor`` reads the records
added since its cursor: a model version whose cells are all evaluated gets one ``decide_gate`` run (its
``gate_decision`` partition, with the lineage of its current runs and its ``gate_status`` check), tagged with
the decision; while cells are still queued or running it waits (the cursor remembers it), so a model version
evaluated on three datasets is decided once, not three times. An override changes no decision: its
``gate_status`` is re-evaluated at once, by a run that only reports check results (jobs/checks.py). The first tick shows every existing gate's status
without gate runs (an installation from before eval cells is not re-decided wholesale).
"""

from __future__ import annotations

import json

import dagster as dg

from eval_platform.core.states import RunStatus
from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.assets.evaluation import GATE_STATUS, gate_status
from eval_platform_dagster.assets.partitions import DECISION_TAG, model_versions
from eval_platform_dagster.jobs.checks import CheckReport, report_check_results, report_request
from eval_platform_dagster.jobs.evaluation import decide_gate
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import SENSOR_INTERVAL_SECONDS


@dg.sensor(jobs=[decide_gate, report_check_results], minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def gate_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Materialize the gate of each model version whose decision changed, once its cells are evaluated;
    re-evaluate ``gate_status`` of each overridden one. The cursor (committed with the tick) holds the last
    decision and override ids read and the model versions still waiting for their cells."""
    platform = sensor_platform(context)
    known = known_partitions(sensor_instance(context), model_versions)
    if not context.cursor:
        return _first_tick(platform, known)
    cursor = json.loads(context.cursor)
    changes = releases.gate_changes(platform, cursor.get("decision", 0), cursor.get("override", 0))
    waiting = list(dict.fromkeys([*cursor.get("waiting", []), *changes.decided]))
    requests, still_waiting, events = [], [], []
    for model_key in waiting:
        if model_key not in known:
            still_waiting.append(model_key)  # the eval-request sensor adds the partition first
            continue
        if platform.runs(model_key, statuses=[RunStatus.QUEUED, RunStatus.RUNNING]):
            still_waiting.append(model_key)
            continue
        passed, status = gate_status(platform, model_key)
        requests.append(dg.RunRequest(
            run_key=f"gate:{model_key}:{status['gate_decision_id']}:{changes.last_override_id}", partition_key=model_key,
            job_name=decide_gate.name, tags={DECISION_TAG: status["effective_decision"], "eval_platform/model": model_key}))
    for model_key in changes.overridden:
        if model_key in known:
            passed, status = gate_status(platform, model_key)
            events.append(CheckReport("gate_decision", GATE_STATUS, model_key, passed, status))
    if events:
        requests.append(report_request(events, run_key=f"gate-status:{changes.last_decision_id}:{changes.last_override_id}"))
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"decision": changes.last_decision_id, "override": changes.last_override_id, "waiting": still_waiting}),
        skip_reason=None if requests or events else (
            f"{len(still_waiting)} model version(s) wait for their cells" if still_waiting else "no gate changes"))


def _first_tick(platform: EvalPlatform, known: set[str]) -> dg.SensorResult:
    """The sensor's first tick on an instance (a new installation, or one from before eval cells): every
    model version's ``gate_status`` is shown as it stands, without a run (its ``gate_decision`` partition, keyed
    by model version then as now, keeps its materializations); from here on, changes launch gate runs."""
    changes = releases.gate_changes(platform, 0, 0)
    events = []
    for model_key in dict.fromkeys([*changes.decided, *changes.overridden]):
        if model_key in known:
            passed, status = gate_status(platform, model_key)
            events.append(CheckReport("gate_decision", GATE_STATUS, model_key, passed, status))
    requests = [report_request(events, run_key=f"gate-status:first:{changes.last_decision_id}")] if events else []
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(
        {"decision": changes.last_decision_id, "override": changes.last_override_id, "waiting": []}),
        skip_reason=None if events else "first tick: no gate decided yet")
