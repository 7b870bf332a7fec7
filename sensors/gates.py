"""The gate on the asset graph: each model version's ``gate_decision`` partition and its ``gate_status`` check
follow the registry's effective decision.

A decision is recorded in the registry whenever it may change (an eval cell finished, a run failed, an
incident froze or invalidated runs); an override is a record of its own. ``gate_sensor`` reads the records
added since its cursor: a model version whose cells are all evaluated gets one ``decide_gate`` run (its
``gate_decision`` partition, with the lineage of its current runs and its ``gate_status`` check), tagged with
the decision; while cells are still queued or running it waits (the cursor remembers it), so a model version
evaluated on three datasets is decided once, not three times. An override changes no decision: its
``gate_status`` is re-evaluated at once, without a run.
"""

from __future__ import annotations

import json

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

from assets.evaluation import GATE_STATUS, gate_status
from assets.partitions import DECISION_TAG, model_versions
from eval_platform import releases
from eval_platform.platform import QUEUED, RUNNING
from jobs import decide_gate
from resources import EvalPlatformResource
from sensors.instance import sensor_instance

SENSOR_INTERVAL_SECONDS = 5


@dg.sensor(job=decide_gate, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING)
def gate_sensor(context: dg.SensorEvaluationContext, platform: EvalPlatformResource) -> dg.SensorResult:
    """Materialize the gate of each model version whose decision changed, once its cells are evaluated;
    re-evaluate ``gate_status`` of each overridden one. The cursor (committed with the tick) holds the last
    decision and override ids read and the model versions still waiting for their cells."""
    service = platform.get()
    cursor = json.loads(context.cursor) if context.cursor else {}
    changes = releases.gate_changes(service, cursor.get("decision", 0), cursor.get("override", 0))
    known = set(sensor_instance(context).get_dynamic_partitions(model_versions.name))
    waiting = list(dict.fromkeys([*cursor.get("waiting", []), *changes.decided]))
    requests, still_waiting, events = [], [], []
    for model_key in waiting:
        if model_key not in known:
            still_waiting.append(model_key)  # the eval-request sensor adds the partition first
            continue
        if service.runs(model_key, statuses=[QUEUED, RUNNING]):
            still_waiting.append(model_key)
            continue
        passed, status = gate_status(service, model_key)
        requests.append(dg.RunRequest(
            run_key=f"gate:{model_key}:{status['gate_decision_id']}:{changes.last_override_id}", partition_key=model_key,
            tags={DECISION_TAG: status["effective_decision"], "eval_platform/model": model_key}))
    for model_key in changes.overridden:
        if model_key in known:
            passed, status = gate_status(service, model_key)
            events.append(AssetCheckEvaluation(asset_key=dg.AssetKey("gate_decision"), check_name=GATE_STATUS, passed=passed,
                                               metadata=status, partition=model_key))
    return dg.SensorResult(
        run_requests=requests, asset_events=events,
        cursor=json.dumps({"decision": changes.last_decision_id, "override": changes.last_override_id, "waiting": still_waiting}),
        skip_reason=None if requests or events else (
            f"{len(still_waiting)} model version(s) wait for their cells" if still_waiting else "no gate changes"))
