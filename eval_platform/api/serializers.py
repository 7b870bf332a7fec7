"""Registry records as the API's JSON (camelCase): datasets, suites, models, runs, gates, incidents, experiments.

What a caller may see is decided by the routes (:mod:`eval_platform.api.visibility`); these functions only
shape what they are given (``_run_json``'s ``visible`` and ``view`` withhold what the dataset's policy hides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic.alias_generators import to_camel

from eval_platform.api.schemas import ExperimentOut
from eval_platform.core.records import iso, with_infinities
from eval_platform.online import experiments as ex
from eval_platform.platform import aggregates
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, GateDecisionRecord, MetricSuite, Model, access
from eval_platform.registry.access import ROWS
from eval_platform.registry.api_schema import RunPurge


def camel_keys(mapping: dict | None, deep: bool = False) -> dict | None:
    if mapping is None:
        return None
    out = {}
    for key, value in mapping.items():
        if deep and isinstance(value, dict):
            value = camel_keys(value, deep)
        elif deep and isinstance(value, list):
            value = [camel_keys(v, deep) if isinstance(v, dict) else v for v in value]
        out[to_camel(str(key))] = value
    return out


def dataset_json(record: EvalDataset, created: bool | None = None) -> dict:
    policy = record.access_policy or {"level": "internal"}
    schema = record.schema or {}
    out: dict[str, Any] = {
        "datasetId": record.dataset_id, "version": record.version, "key": record.key, "taskType": record.task_type,
        "labelPolicy": record.label_policy,
        "accessPolicy": {"level": policy.get("level"), "teams": policy.get("teams", []), "allowAggregates": bool(policy.get("allow_aggregates")),
                         "minSliceSize": aggregates.min_slice_size(policy)},
        "rowCount": record.row_count, "contentHash": record.content_hash, "status": record.status,
        "statusReason": record.status_reason, "description": record.description or "", "createdAt": iso(record.created_at),
        "schema": {"idColumns": schema.get("id_columns", []), "labelColumn": schema.get("label_column"),
                   "featureColumns": schema.get("feature_columns", []), "sliceColumns": schema.get("slice_columns", []),
                   "columns": schema.get("columns", {}),
                   **({"ratings": schema["ratings"]} if schema.get("ratings") else {})},
        "role": record.role or "standard",
    }
    if schema.get("time_column"):
        out["schema"]["timeColumn"] = schema["time_column"]
    if getattr(record, "lineage", None):  # a version the platform made (a review-queue publish): where it came from
        out["lineage"] = record.lineage
    if created is not None:
        out["created"] = created
    return out


def suite_json(record: MetricSuite, created: bool | None = None) -> dict:
    out = {"suiteId": record.suite_id, "version": record.version, "key": record.key, "purpose": record.purpose,
           "taskType": record.task_type, "definitionHash": record.definition_hash, "definition": record.metric_defs,
           "createdAt": iso(record.created_at)}
    if created is not None:
        out["created"] = created
    return out


def model_json(platform: EvalPlatform, record: Model, created: bool | None = None, queued: list[str] | None = None,
               state: tuple[str | None, bool] | None = None) -> dict:
    """``state``: the version's ``(gate decision, promoted)`` when already read (a listing batches them)."""
    if state is None:
        decision = platform.gate_decision(record.key)
        state = (decision.decision if decision else None, platform.promoted_version(record.name) == record.version)
    out = {"name": record.name, "version": record.version, "key": record.key, "kind": record.kind, "fileHash": record.file_hash,
           "trustedTypes": record.trusted_types or [], "description": record.description or "",
           "registeredAt": iso(record.registered_at), "gate": state[0], "promoted": state[1],
           "trainingCutoff": iso(record.training_cutoff), "trainingManifestHash": record.training_manifest_hash}
    if created is not None:
        out["created"] = created
    if queued is not None:
        out["queuedRuns"] = queued
    return out


def results_json(results: dict | None) -> dict | None:
    results = with_infinities(results)
    if results is None:
        return None
    out = {to_camel(k): v for k, v in results.items() if k not in ("metrics", "n_examples", "slices", "artifacts")}
    out.update(metrics=results.get("metrics") or {}, nExamples=results.get("n_examples") or {},
               slices=[camel_keys(s) for s in results.get("slices") or []], artifacts=results.get("artifacts") or {})
    return out


def lineage_json(lineage: dict | None) -> dict | None:
    if lineage is None:
        return None
    out = {}
    for key, value in lineage.items():
        if key == "metrics":
            out["metrics"] = value  # metric names are the suite's, not ours to rename
        elif key == "model" and isinstance(value, dict) and value.get("uri"):
            # the file's name: where the server keeps it is not the caller's to know (its hash identifies it)
            out["model"] = camel_keys({**value, "uri": Path(str(value["uri"])).name}, deep=True)
        elif isinstance(value, dict):
            out[to_camel(key)] = camel_keys(value, deep=True)
        else:
            out[to_camel(key)] = value
    return out


def gate_json(record: GateDecisionRecord | None, reasons: list | None = None) -> dict | None:
    if record is None:
        return None
    return {"decision": record.decision, "reasons": [camel_keys(r, deep=True) for r in (reasons if reasons is not None else record.reasons)],
            "decidedAt": iso(record.decided_at)}


def run_json(run: EvalRun, purge: RunPurge | None = None, gate: dict | None = None, visible: str = ROWS,
             with_lineage: bool = True, view: aggregates.AggregateView | None = None) -> dict:
    """``view`` filters the results of a team with aggregates-only access (none given: every slice withheld)."""
    if visible == access.AGGREGATES and view is None:
        view = aggregates.AggregateView(visible)
    queue_seconds = (run.started_at - run.requested_at).total_seconds() if run.started_at and run.requested_at else None
    out = {
        "runId": run.run_id, "status": run.status, "statusReason": run.status_reason, "modelVersion": run.model_key,
        "datasetId": run.dataset_key, "metricSuiteId": run.suite_key, "attempt": run.attempt, "trigger": run.trigger,
        "requestedBaseline": run.requested_baseline, "baselineRunId": run.baseline_run_id,
        "requestedAt": iso(run.requested_at), "startedAt": iso(run.started_at), "finishedAt": iso(run.finished_at),
        "queueSeconds": queue_seconds,
        "metricSeconds": run.metric_seconds, "cost": run.cost, "predictionsHash": run.predictions_hash, "metricsHash": run.metrics_hash,
        "predictionsPurgedAt": iso(purge.purged_at) if purge is not None and run.predictions_hash is None else None,
        "results": results_json(view.results(run.results) if view is not None else run.results) if visible != access.NOTHING else None,
        "redacted": visible == access.NOTHING,
    }
    if with_lineage:
        out["lineage"] = lineage_json(run.lineage)
    if gate is not None:
        out["gate"] = gate
    return out


def created_run_json(run: Any, created: bool) -> dict:
    """The answer to ``POST /v1/eval-runs``: ``run`` is an :class:`EvalRun` or the columns a replay read of one."""
    return {"runId": run.run_id, "status": run.status, "created": created, "modelVersion": run.model_key,
            "datasetId": run.dataset_key, "metricSuiteId": run.suite_key, "requestedBaseline": run.requested_baseline}


def impact_json(impact) -> dict:
    incident = impact.incident
    return {"incidentId": incident.id, "kind": incident.kind, "target": incident.target, "reason": incident.reason,
            "reportedBy": incident.reported_by, "affectedRuns": [r.run_id for r in impact.runs], "affectedModels": list(impact.models)}


def request_json(record) -> dict:
    return {"requestId": record.id, "kind": record.kind, "partitions": record.partitions, "requestedBy": record.requested_by,
            "status": record.status, "requestedAt": iso(record.requested_at)}


def override_json(record) -> dict:
    return {"id": record.id, "modelVersion": f"{record.model_name}@{record.model_version}",
            "overriddenDecision": record.overridden_decision, "suites": record.suites, "approver": record.approver,
            "reason": record.reason, "createdAt": iso(record.created_at)}


def analysis_json(record) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"analysisId": record.id, "status": record.status, "statusReason": record.status_reason,
            "inputs": record.inputs, "codeVersion": record.code_version, "trustworthy": record.trustworthy,
            "guardrailVerdict": record.guardrail_verdict, "agreement": record.agreement, "result": record.result,
            "createdAt": record.created_at.isoformat(), "dagsterRunId": record.dagster_run_id}


def experiment_json(platform: EvalPlatform, record, created: bool | None = None, analysis: bool = True) -> dict[str, Any]:
    """An experiment with its ingest count (read now) and, with ``analysis``, its latest analysis."""
    return ExperimentOut(
        experiment_id=record.experiment_id, mode=record.mode, status=record.status, config=record.config,
        control_model=record.control_model, candidate_models=record.candidate_models, offline_metric=record.offline_metric,
        offline_gate=record.offline_gate, access_policy=record.access_policy, description=record.description,
        created_by=record.created_by, created_at=record.created_at.isoformat(), created=created,
        ingests=len(ex.ingests(platform, record.experiment_id)),
        latest_analysis=analysis_json(ex.latest_analysis(platform, record.experiment_id)) if analysis else None,
    ).model_dump(by_alias=True, mode="json")
