"""Online experiments in the registry: registration, ingest, analysis, the online gate, agreement.

An experiment (A/B, or shadow) names the model version of each arm; the control (A/B) or production side
(shadow) is the baseline. Online data arrives in batches (:func:`ingest`): each batch is validated, then
registered as a dataset version like any other (content-hashed Parquet, Great Expectations checks, a
partition of the Dagster dataset asset), and an analysis request is queued for the experiment's Dagster
partition. :func:`analyze` reads the union of the experiment's active ingests and records the result with
its lineage (the dataset versions and hashes read, the analysis code version). A contaminated ingest
(:func:`eval_platform.governance.incidents.invalidate_dataset`) marks the analyses that read it invalid and queues a
new analysis without it.

The online gate (:func:`decide_online_gate`) applies the ``online`` requirements of a model version's
release-blocking suites to the latest analyses of the experiments it is the candidate of (see
:mod:`eval_platform.online.requirements`); :func:`release_state` combines it with the offline gate, and a
promotion needs both.

Each analysis also records, per candidate, the offline delta of the experiment's ``offline_metric``
(candidate minus baseline in its release-blocking eval run, signed so that positive is better) beside the
online delta of the primary metric: :func:`agreement_report` relates them across experiments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import or_, select, update

from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.hashing import json_hash
from eval_platform.core.keys import ID_MAX_LENGTH, VersionedKey, validate_id
from eval_platform.core.states import GateScope, RequestKind, RunStatus, SuitePurpose
from eval_platform.core.tasks import check_access_policy
from eval_platform.online.analysis import (
    ANALYSIS_CODE_VERSION,
    analyze_experiment,
    offline_online_agreement,
)
from eval_platform.online.config import ExperimentConfig
from eval_platform.online.events import check_events
from eval_platform.online.requirements import (
    NOT_APPLICABLE,
    NOT_REQUIRED,
    PASS,
    AnalysisEvidence,
    OnlineRequirements,
    decide_online,
    parse_online_section,
)
from eval_platform.online.shadow import SHADOW_KINDS, analyze_shadow
from eval_platform.platform import requests
from eval_platform.platform.service import EvalPlatform, Registered
from eval_platform.registry import DagsterRequest, EvalDataset, GateDecisionRecord, Promotion, access
from eval_platform.registry.access import Principal
from eval_platform.registry.online_schema import Experiment, ExperimentAnalysisRecord, ExperimentIngest

AB, SHADOW = "ab", "shadow"
#: Column names the platform stores events under (an experiment may name its own; ingest renames them).
CANONICAL_COLUMNS = {"unit_column": "unit_id", "arm_column": "arm", "timestamp_column": "timestamp"}
_PLATFORM_KEYS = ("mode", "description", "offline_metric", "access_policy")
_SHADOW_KEYS = ("experiment_id", "candidate", "production", "kind", "k", "confidence")


def _name(value: Any, field: str) -> str:
    return validate_id(value, field)


def _model_key(platform: EvalPlatform, value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, "must name a registered model version (name@version)")
    try:
        return platform.model(value).key
    except (NotFound, InvalidInput):
        raise InvalidInput(field, f"{value!r} is not a registered model version") from None


def events_dataset_id(experiment_id: str) -> str:
    """The dataset name under which an experiment's ingests are registered (one version per batch)."""
    return f"experiment-{experiment_id}"


def _validated(platform: EvalPlatform, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment row's values from its spec; raises InvalidInput naming the field."""

    if not isinstance(spec, Mapping):
        raise InvalidInput("experiment", "must be a mapping")
    experiment_id = _name(spec.get("experiment_id"), "experiment_id")
    if len(events_dataset_id(experiment_id)) > ID_MAX_LENGTH:  # its ingests' dataset id must be an id too
        raise InvalidInput("experiment_id", f"must be at most {ID_MAX_LENGTH - len(events_dataset_id(''))} characters "
                                            f"(its events are registered as dataset {events_dataset_id('ID')!r})")
    mode = spec.get("mode", AB)
    if mode not in (AB, SHADOW):
        raise InvalidInput("mode", f"must be ab or shadow, got {mode!r}")
    rest = {k: v for k, v in spec.items() if k not in _PLATFORM_KEYS}
    if mode == AB:
        config, control, candidates, source_columns = _ab_values(platform, rest, experiment_id)
    else:
        config, control, candidates, source_columns = _shadow_values(platform, spec, rest, experiment_id)
    if control in candidates:
        raise InvalidInput("arms" if mode == AB else "candidate", f"the candidate and the control are both {control}")
    offline_metric = spec.get("offline_metric")
    if offline_metric is not None and (not isinstance(offline_metric, str) or not offline_metric):
        raise InvalidInput("offline_metric", "must name a metric of the candidates' release-blocking suites")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("description", "must be a string")
    return {"experiment_id": experiment_id, "mode": mode, "config": config, "candidate_models": candidates,
            "control_model": control, "offline_metric": offline_metric, "description": description,
            "access_policy": check_access_policy(spec.get("access_policy")), "source_columns": source_columns}


def _ab_values(platform: EvalPlatform, rest: Mapping[str, Any],
               experiment_id: str) -> tuple[dict[str, Any], str, list[str], dict[str, str]]:
    """An A/B experiment's config, control model, candidate models and source columns (arms' models resolved)."""
    try:
        cfg = ExperimentConfig.from_dict({**rest, "experiment_id": experiment_id})
    except InvalidInput as error:
        raise InvalidInput(error.field.removeprefix("config."), error.problem) from None
    arms: list[dict[str, Any]] = []
    for i, arm in enumerate(cfg.arms):
        arms.append({"name": arm.name, "split": arm.split,
                     "model_version": _model_key(platform, arm.model_version, f"arms[{i}].model_version")})
    config = {**cfg.as_dict(), "arms": arms, **CANONICAL_COLUMNS}
    control = next(a["model_version"] for a in arms if a["name"] == cfg.control_arm)
    candidates = [a["model_version"] for a in arms if a["name"] != cfg.control_arm]
    source_columns = {key: getattr(cfg, key) for key in CANONICAL_COLUMNS}
    return config, control, candidates, source_columns


def _shadow_values(platform: EvalPlatform, spec: Mapping[str, Any], rest: Mapping[str, Any],
                   experiment_id: str) -> tuple[dict[str, Any], str, list[str], dict[str, str]]:
    """A shadow experiment's config, production model, candidate model and (no) source columns."""
    unknown = sorted(set(rest) - set(_SHADOW_KEYS))
    if unknown:
        raise InvalidInput("experiment", f"unknown field(s) {unknown} for a shadow experiment; known: {list(_SHADOW_KEYS)}")
    kind = spec.get("kind", "labels")
    if kind not in SHADOW_KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(SHADOW_KINDS)}, got {kind!r}")
    k = spec.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput("k", f"must be a positive integer, got {k!r}")
    confidence = spec.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 <= confidence < 1:
        raise InvalidInput("confidence", f"must be in [0.5, 1), got {confidence!r}")
    control = _model_key(platform, spec.get("production"), "production")
    candidates = [_model_key(platform, spec.get("candidate"), "candidate")]
    config = {"experiment_id": experiment_id, "candidate": candidates[0], "production": control, "kind": kind, "k": k,
              "confidence": float(confidence)}
    return config, control, candidates, {}


def register_experiment(platform: EvalPlatform, spec: Mapping[str, Any], created_by: str,
                        principal: Principal | None = None) -> Registered:
    """Record an experiment. The same spec again returns the existing record; a different spec under an
    existing id is a conflict (an experiment is immutable: start a new one).

    With a ``principal`` (an API caller; None: the local operator): the experiment id must be free or its
    team's, and every arm's model name its team's (an experiment is evidence for a model's online gate),
    unless it is an admin; the team owns the experiment and is recorded as its creator."""

    if principal is not None:
        created_by = principal.label
    if not isinstance(created_by, str) or not created_by.strip():
        raise InvalidInput("created_by", "an experiment must name who registered it")
    values = _validated(platform, spec)
    values.pop("source_columns")
    owner = access.require_owner(platform, principal, access.EXPERIMENT, values["experiment_id"], "register it", "experiment_id")
    for model_key in (*values["candidate_models"], values["control_model"]):
        access.require_owner(platform, principal, access.MODEL, VersionedKey.parse(model_key, "model").name,
                             "run an online experiment on it", "arms" if values["mode"] == AB else "candidate")
    digest = json_hash({k: values[k] for k in ("mode", "config", "offline_metric", "access_policy")})
    with platform.registry.session() as session:
        existing = session.get(Experiment, values["experiment_id"])
        if existing is not None:
            if existing.config_hash == digest:
                return Registered(existing, False)
            raise Conflict(f"experiment {values['experiment_id']} exists with a different configuration; "
                           "experiments are immutable: register a new experiment id")
        offline_gate = {}
        for model_key in values["candidate_models"]:
            decision = platform.gate_decision(model_key)
            offline_gate[model_key] = {"gate_decision_id": decision.id, "decision": decision.decision} if decision else None
        record = Experiment(**values, config_hash=digest, offline_gate=offline_gate, created_by=created_by.strip(), owner_team=owner)
        session.add(record)
    return Registered(record, True)


def experiment(platform: EvalPlatform, experiment_id: str) -> Experiment:
    with platform.registry.session() as session:
        record = session.get(Experiment, experiment_id)
    if record is None:
        raise NotFound("experiment", experiment_id)
    return record


def experiments(platform: EvalPlatform) -> list[Experiment]:
    with platform.registry.session() as session:
        return list(session.scalars(select(Experiment).order_by(Experiment.created_at, Experiment.experiment_id)))


def ingests(platform: EvalPlatform, experiment_id: str) -> list[ExperimentIngest]:
    with platform.registry.session() as session:
        return list(session.scalars(select(ExperimentIngest).where(ExperimentIngest.experiment_id == experiment_id)
                                    .order_by(ExperimentIngest.id)))


def _source_columns(record: Experiment) -> dict[str, str]:
    """The experiment's own column names (what a batch arrives with), by canonical name."""
    if record.mode != AB:
        return {}
    original = ExperimentConfig.from_dict({**record.config, **CANONICAL_COLUMNS})
    return {CANONICAL_COLUMNS[key]: getattr(original, key) for key in CANONICAL_COLUMNS}


def ingest(platform: EvalPlatform, experiment_id: str, frame: pd.DataFrame, ingested_by: str,
           description: str = "", principal: Principal | None = None) -> tuple[ExperimentIngest, bool]:
    """Validate a batch of online data, register it as a dataset version and queue an analysis.

    A/B batches have the unit, arm and timestamp columns and the metric columns (validated as the
    analysis reads them: the error names the column and the row); shadow batches have ``request_id``,
    ``source`` (candidate/production) and ``output``. Returns the ingest and whether it is new: the same
    batch again is the same ingest and queues nothing.
    """

    if principal is not None:
        ingested_by = principal.label
    if not isinstance(ingested_by, str) or not ingested_by.strip():
        raise InvalidInput("ingested_by", "an ingest must name who made it")
    record = experiment(platform, experiment_id)
    # online data decides a model's online gate: only the experiment's team (or an admin) sends it
    access.check_owner(principal, access.EXPERIMENT, experiment_id, True, record.owner_team, "ingest data into it", "experimentId", platform)
    if record.status != "running":
        raise Conflict(f"experiment {experiment_id} is {record.status}: it takes no more data")
    if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
        raise InvalidInput("data", "the batch has no rows")
    if record.mode == AB:
        renames = {source: canonical for canonical, source in _source_columns(record).items() if source != canonical}
        clash = [c for c in renames.values() if c in frame.columns]
        if clash:
            raise InvalidInput(clash[0], f"the batch has both {clash[0]!r} and the experiment's own column for it")
        frame = frame.rename(columns=renames)
        check_events(frame, record.config)
        # one timestamp type across batches, whatever the file format (CSV gives strings)
        frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
        task_type = "online_events"
    else:
        analyze_shadow(frame, record.config["kind"], record.config["k"])  # validates the log
        task_type = "shadow_log"
    registered = platform.register_dataset(events_dataset_id(experiment_id), frame, task_type, "implicit",
                                           access_policy=record.access_policy,
                                           description=description or f"online data of experiment {experiment_id}")
    dataset = registered.record
    assert isinstance(dataset, EvalDataset)  # register_dataset returns the dataset's registry row
    with platform.registry.session() as session:
        if record.owner_team is not None:  # the batches belong to the experiment's team (it may invalidate them)

            session.execute(update(EvalDataset).where(EvalDataset.dataset_id == dataset.dataset_id, EvalDataset.owner_team.is_(None))
                            .values(owner_team=record.owner_team))
        existing = session.scalar(select(ExperimentIngest).where(ExperimentIngest.experiment_id == experiment_id,
                                                                 ExperimentIngest.dataset_key == dataset.key))
        if existing is not None:
            return existing, False
        row = ExperimentIngest(experiment_id=experiment_id, dataset_key=dataset.key, content_hash=dataset.content_hash,
                               row_count=dataset.row_count, ingested_by=ingested_by.strip())
        session.add(row)
        session.add(DagsterRequest(kind=RequestKind.EXPERIMENT_ANALYSIS, partitions=[experiment_id], requested_by=ingested_by.strip(),
                                   reason=f"ingest of {dataset.key}"))
    return row, True


def request_analysis(platform: EvalPlatform, experiment_id: str, requested_by: str, reason: str = "") -> DagsterRequest:
    """Queue an analysis of the experiment (the experiment sensor launches it)."""
    if not isinstance(requested_by, str) or not requested_by.strip():
        raise InvalidInput("requested_by", "a request must name who makes it")
    experiment(platform, experiment_id)
    with platform.registry.session() as session:
        request = DagsterRequest(kind=RequestKind.EXPERIMENT_ANALYSIS, partitions=[experiment_id], requested_by=requested_by.strip(),
                                 reason=reason)
        session.add(request)
    return request


def usable_ingests(platform: EvalPlatform, experiment_id: str) -> tuple[list[ExperimentIngest], list[dict]]:
    """The ingests an analysis reads (their dataset version is active) and those it leaves out, with why."""
    used, left_out = [], []
    for row in ingests(platform, experiment_id):
        dataset = platform.dataset(row.dataset_key)
        if dataset.status == "active":
            used.append(row)
        else:
            left_out.append({"dataset": row.dataset_key, "status": dataset.status, "reason": dataset.status_reason})
    return used, left_out


def events(platform: EvalPlatform, experiment_id: str, used: list[ExperimentIngest] | None = None) -> pd.DataFrame:
    """The union of the experiment's usable ingests, or of ``used`` when the caller already chose them (an
    empty frame with the id columns if none)."""
    record = experiment(platform, experiment_id)
    if used is None:
        used, _ = usable_ingests(platform, experiment_id)
    frames = [platform.load_dataset(platform.dataset(row.dataset_key)) for row in used]
    if frames:
        return pd.concat(frames, ignore_index=True)
    columns = ["unit_id", "arm", "timestamp"] if record.mode == AB else ["request_id", "source", "output"]
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "timestamp" else object) for c in columns})


def _offline_delta(platform: EvalPlatform, model_key: str | None, metric: str | None) -> float | None:
    """Candidate minus baseline of ``metric`` in the candidate's release-blocking eval run, signed so that
    positive is better (``None`` when there is no such comparison, or no candidate model for the arm)."""
    if not metric or model_key is None:
        return None
    for run in platform.runs(model_key):
        if run.status == RunStatus.SUPERSEDED or platform.suite(run.suite_key).purpose != SuitePurpose.RELEASE_BLOCKING:
            continue
        entry = ((run.comparison or {}).get("metrics") or {}).get(metric)
        suite_metric = platform.suite_definition(platform.suite(run.suite_key)).metric(metric)
        if entry and suite_metric and entry.get("delta") is not None:
            return float(suite_metric.definition.better(entry["delta"]))
    return None


def _agreement_records(platform: EvalPlatform, record: Experiment, result: Mapping[str, Any]) -> list[dict]:
    if record.mode != AB:
        return []
    arms = {arm["name"]: arm["model_version"] for arm in record.config["arms"]}
    out = []
    for arm, primary in (result.get("primary") or {}).items():
        lift = primary.get("lift")
        sign = 1.0 if primary.get("direction", "higher") == "higher" else -1.0
        out.append({"experiment_id": record.experiment_id, "candidate": arms.get(arm), "arm": arm,
                    "offline_metric": record.offline_metric,
                    "offline_delta": _offline_delta(platform, arms.get(arm), record.offline_metric),
                    "metric": primary.get("metric"), "online_delta": None if lift is None else sign * lift,
                    "online_outcome": primary.get("outcome"),
                    "online_significant": primary.get("outcome") in ("treatment_better", "treatment_worse")})
    return out


def analyze(platform: EvalPlatform, experiment_id: str, dagster_run_id: str | None = None) -> ExperimentAnalysisRecord:
    """Analyse the experiment's usable ingests and record the result; the previous analysis is superseded,
    and the online gate of each candidate is decided again."""
    record = experiment(platform, experiment_id)
    used, left_out = usable_ingests(platform, experiment_id)
    frame = events(platform, experiment_id, used)
    started = time.perf_counter()
    if record.mode == AB:
        result = analyze_experiment(frame, record.config).as_json()
    else:
        result = analyze_shadow(frame, record.config["kind"], record.config["k"], record.config["confidence"])
    if left_out:
        result.setdefault("data_quality", {})["ingests_left_out"] = left_out
    seconds = time.perf_counter() - started
    inputs = [{"dataset": row.dataset_key, "content_hash": row.content_hash, "rows": row.row_count} for row in used]
    verdict = result.get("guardrail_verdict") or ("pass" if result.get("trustworthy") else "no_decision")
    with platform.registry.session() as session:
        for previous in session.scalars(select(ExperimentAnalysisRecord).where(
                ExperimentAnalysisRecord.experiment_id == experiment_id, ExperimentAnalysisRecord.status == "valid")):
            previous.status, previous.status_reason = "superseded", "a newer analysis exists"
        analysis = ExperimentAnalysisRecord(
            experiment_id=experiment_id, inputs=inputs, inputs_hash=json_hash(inputs), code_version=ANALYSIS_CODE_VERSION,
            result=result, trustworthy=bool(result.get("trustworthy")), guardrail_verdict=verdict,
            agreement=_agreement_records(platform, record, result), status="valid", dagster_run_id=dagster_run_id,
            seconds=seconds)
        session.add(analysis)
    for model_key in record.candidate_models:
        decide_online_gate(platform, model_key)
    return analysis


def analyses(platform: EvalPlatform, experiment_id: str) -> list[ExperimentAnalysisRecord]:
    with platform.registry.session() as session:
        return list(session.scalars(select(ExperimentAnalysisRecord).where(
            ExperimentAnalysisRecord.experiment_id == experiment_id).order_by(ExperimentAnalysisRecord.id)))


def latest_analysis(platform: EvalPlatform, experiment_id: str) -> ExperimentAnalysisRecord | None:
    """The newest analysis that is not superseded (it may be invalid: a contaminated ingest)."""
    current = [a for a in analyses(platform, experiment_id) if a.status != "superseded"]
    return current[-1] if current else None


def invalidate_analyses_using(platform: EvalPlatform, dataset_key: str, reason: str, requested_by: str) -> list[str]:
    """A dataset version is contaminated: every current analysis that read it becomes invalid, and a new
    analysis (without it) is queued. Returns the experiment ids affected."""
    affected = []
    with platform.registry.session() as session:
        for analysis in session.scalars(select(ExperimentAnalysisRecord).where(ExperimentAnalysisRecord.status == "valid")):
            if any(entry["dataset"] == dataset_key for entry in analysis.inputs):
                analysis.status, analysis.status_reason = "invalid", f"dataset {dataset_key} invalidated: {reason}"
                affected.append(analysis.experiment_id)
        for experiment_id in affected:
            session.add(DagsterRequest(kind=RequestKind.EXPERIMENT_ANALYSIS, partitions=[experiment_id], requested_by=requested_by,
                                       reason=f"re-analysis without {dataset_key}"))
    for experiment_id in affected:
        for model_key in experiment(platform, experiment_id).candidate_models:
            decide_online_gate(platform, model_key)
    return affected


# ---------------------------------------------------------------------------------------------------------
# the online gate


def online_requirements(platform: EvalPlatform, model_key: str) -> list[tuple[str, OnlineRequirements]]:
    """``(suite key, requirements)`` of the model version's release-blocking suites with an online section."""
    keys = sorted({run.suite_key for run in platform.runs(model_key) if run.status != RunStatus.SUPERSEDED})
    out = []
    for key in keys:
        suite = platform.suite(key)
        online = suite.metric_defs.get("online")
        if suite.purpose == SuitePurpose.RELEASE_BLOCKING and online:
            out.append((key, parse_online_section(online)))
    return out


def evidence_for(platform: EvalPlatform, model_key: str) -> list[AnalysisEvidence]:
    """The latest analysis of each experiment that has the model version as a candidate."""
    evidence = []
    for record in experiments(platform):
        if model_key not in record.candidate_models:
            continue
        if record.mode == AB:
            arms = [a["name"] for a in record.config["arms"] if a["model_version"] == model_key]
        else:
            arms = ["candidate"]
        latest = latest_analysis(platform, record.experiment_id)
        for arm in arms:
            evidence.append(AnalysisEvidence(
                experiment_id=record.experiment_id, mode=record.mode, arm=arm, control_model=record.control_model,
                analysis_id=latest.id if latest else None, status=latest.status if latest else "none",
                status_reason=latest.status_reason or "" if latest else "", created_at=latest.created_at if latest else None,
                result=latest.result if latest else None))
    return evidence


def baseline_of(platform: EvalPlatform, model_key: str) -> str | None:
    """The version an online comparison of ``model_key`` must be against: the model name's most recently
    promoted version other than itself (``None`` for a first version)."""

    name, version = VersionedKey.parse(model_key, "model")
    platform.model(model_key)
    with platform.registry.session() as session:
        # a demotion (a row without a version) leaves no baseline, as it does offline
        promoted = session.scalar(select(Promotion.model_version).where(
            Promotion.model_name == name, or_(Promotion.model_version.is_(None), Promotion.model_version != version))
            .order_by(Promotion.id.desc()).limit(1))
    return None if promoted is None else f"{name}@{promoted}"


def decide_online_gate(platform: EvalPlatform, model_key: str) -> tuple[str, list[dict], GateDecisionRecord]:
    """Decide and record (scope ``online``) the model version's online gate."""
    baseline = baseline_of(platform, model_key)
    decision, reasons = decide_online(online_requirements(platform, model_key), evidence_for(platform, model_key), baseline)
    record = platform.record_gate(GateScope.ONLINE, model_key, decision, reasons)
    return decision, reasons, record


def online_state(platform: EvalPlatform, model_key: str) -> tuple[str, GateDecisionRecord, Any]:
    """The online gate as a release sees it: decided now, then ``overridden`` if an approver let a failed or
    undecided online gate through."""
    decision, _, record = decide_online_gate(platform, model_key)
    override = platform.override_for(record)
    return ("overridden" if override and decision not in (PASS, NOT_REQUIRED, NOT_APPLICABLE) else decision), record, override


def agreement_report(platform: EvalPlatform, include: Callable[[Experiment], bool] = lambda record: True) -> dict[str, Any]:
    """Offline-online agreement over the latest valid analysis of every A/B experiment (that ``include``
    accepts: the API leaves out those the caller may not read)."""
    records = []
    for record in experiments(platform):
        latest = latest_analysis(platform, record.experiment_id)
        if record.mode == AB and include(record) and latest is not None and latest.status == "valid":
            records.extend(latest.agreement)
    return offline_online_agreement(records)


def stop_experiment(platform: EvalPlatform, experiment_id: str) -> Experiment:
    with platform.registry.session() as session:
        record = session.get(Experiment, experiment_id)
        if record is None:
            raise NotFound("experiment", experiment_id)
        record.status = "stopped"
    return record


def pending_analysis_requests(platform: EvalPlatform, after_id: int = 0) -> list[DagsterRequest]:
    return requests.pending_requests(platform, RequestKind.EXPERIMENT_ANALYSIS, after_id)

