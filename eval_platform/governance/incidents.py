"""The brief's failure modes and their recovery, as registry operations.

* Metric code bug: :func:`mark_metric_buggy` freezes every gate that used the metric version
  (``no_decision``, frozen) and lists the affected runs; :func:`request_recompute` queues those runs
  again with the fixed metric version and asks the orchestrator for a backfill of exactly the eval cells
  (model version x dataset version) they are recomputed in, after which the gates decide again.
* Dataset contamination: :func:`invalidate_dataset` marks the version contaminated (deprecated: no new
  run may use it), marks every run that used it invalid and turns their gates into ``no_decision``; an
  online experiment's analyses that read it become invalid and a re-analysis without it is queued. A
  contaminated *calibration* version invalidates the judge licenses computed on it (an invalidation row each)
  and re-decides the gates of the model versions whose release-blocking runs use those judges.

Each incident is recorded once with what it touched, and reported to Dagster by a sensor (failing asset
checks on the affected partitions, so the lineage shows red in the UI).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey, cell_name
from eval_platform.core.states import CANARY_TRIGGER, DatasetRole, DatasetStatus, IncidentKind, RequestKind, RunStatus
from eval_platform.evaluation import judge_license as licensing
from eval_platform.evaluation.judge_license_gates import gates_waiting_on_judges
from eval_platform.evaluation.runner import decide_model_version
from eval_platform.governance.affected import fixed_version, incidents, runs_using_metric, suite_metric_keys
from eval_platform.governance.recompute_cost import (
    PlannedRun,
    RecomputeEstimate,
    any_budget_applies,
    check_recompute,
    enforce_budget,
    estimate_recompute,
)
from eval_platform.metrics.catalog import get_metric
from eval_platform.online.experiments import invalidate_analyses_using
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import (
    DagsterRequest,
    EvalDataset,
    EvalRun,
    Incident,
    MetricSuite,
    access,
)
from eval_platform.registry.access import Principal


@dataclass(frozen=True)
class Impact:
    """What an incident touched: its record, the runs it froze or invalidated, their model versions."""

    incident: Incident
    runs: list[EvalRun]
    models: list[str]
    #: experiments whose analysis read the contaminated dataset (now invalid, re-analysis queued)
    experiments: tuple[str, ...] = ()
    #: judge licenses computed on the contaminated calibration version (now invalidated)
    licenses: tuple[licensing.JudgeLicense, ...] = ()


def mark_reported(platform: EvalPlatform, up_to_id: int) -> None:
    """Incidents up to ``up_to_id`` are shown on the asset graph (the sensor's cursor is the source of truth)."""
    with platform.registry.session() as session:
        for incident in session.scalars(select(Incident).where(Incident.id <= up_to_id, Incident.reported.is_(False))):
            incident.reported = True




def _redecide(platform: EvalPlatform, model_keys: list[str]) -> None:

    for model_key in model_keys:
        decide_model_version(platform, model_key)


def mark_metric_buggy(platform: EvalPlatform, metric_key: str, reason: str, reported_by: str,
                      principal: Principal | None = None) -> Impact:
    """Freeze every gate that used the metric version: every team's, so an admin's operation (``principal``
    None: the local operator); an API caller is recorded as the reporter."""
    access.require_role(principal, access.ADMIN, "marking a metric buggy (it freezes every team's gates)", "Authorization", platform,
                        f"metric:{metric_key}")
    if principal is not None:
        reported_by = principal.label
    definition = get_metric(metric_key)
    if not reason.strip():
        raise InvalidInput("reason", "say what is wrong with the metric")
    if not reported_by.strip():
        raise InvalidInput("reported_by", "name who reports the bug")
    if definition.key in platform.buggy_metrics():
        raise Conflict(f"metric {definition.key} is already marked buggy")
    runs = runs_using_metric(platform, definition.key)
    models = sorted({run.model_key for run in runs})
    with platform.registry.session() as session:
        incident = Incident(kind=IncidentKind.METRIC_BUG, target=definition.key, reason=reason, reported_by=reported_by,
                            affected_runs=[run.run_id for run in runs], affected_models=models)
        session.add(incident)
    _redecide(platform, models)
    return Impact(incident, runs, models)


def invalidate_dataset(platform: EvalPlatform, dataset_key: str, reason: str, reported_by: str,
                       principal: Principal | None = None) -> Impact:
    """Mark a dataset version contaminated: a member of the dataset id's owner team or an admin (``principal``
    None: the local operator); an API caller is recorded as the reporter."""
    dataset = platform.dataset(dataset_key)
    if principal is not None:
        access.require_owner(platform, principal, access.DATASET, dataset.dataset_id, "invalidate it", "datasetKey")
        reported_by = principal.label
    if not reason.strip():
        raise InvalidInput("reason", "say how the dataset is contaminated")
    if not reported_by.strip():
        raise InvalidInput("reported_by", "name who reports the contamination")
    if dataset.status == DatasetStatus.CONTAMINATED:
        raise Conflict(f"dataset {dataset.key} is already marked contaminated")
    judged = _gates_on_licenses_of(platform, dataset)

    with platform.registry.session() as session:
        record = session.get_one(EvalDataset, dataset.id)
        record.status, record.status_reason = DatasetStatus.CONTAMINATED, reason
        runs = list(session.scalars(select(EvalRun).where(EvalRun.dataset_id == dataset.dataset_id,
                                                          EvalRun.dataset_version == dataset.version,
                                                          EvalRun.status != RunStatus.SUPERSEDED)))
        for run in runs:
            run.status, run.status_reason = RunStatus.INVALID, f"dataset {dataset.key} contaminated: {reason}"
        models = sorted({run.model_key for run in runs} | set(judged))
        incident = Incident(kind=IncidentKind.DATASET_CONTAMINATION, target=dataset.key, reason=reason, reported_by=reported_by,
                            affected_runs=[run.run_id for run in runs], affected_models=models)
        session.add(incident)
        session.flush()
        invalidated = licensing.invalidate_licenses_on(session, dataset, f"calibration version {dataset.key} contaminated: {reason}",
                                                       reported_by, incident.id) if dataset.role == DatasetRole.CALIBRATION else []
    _redecide(platform, models)

    experiments = invalidate_analyses_using(platform, dataset.key, reason, reported_by)
    return Impact(incident, runs, models, tuple(experiments), tuple(invalidated))


def _gates_on_licenses_of(platform: EvalPlatform, dataset: EvalDataset) -> list[str]:
    """The decided gates of the model versions whose release-blocking runs use a judge licensed on this calibration
    version (none for another role): its contamination invalidates those licenses, so they are decided again."""
    if dataset.role != DatasetRole.CALIBRATION:
        return []
    hashes = {lic.judge_config_hash for lic in licensing.licenses(platform, calibration_dataset_id=dataset.dataset_id)
              if lic.calibration_version == dataset.version}
    return gates_waiting_on_judges(platform, hashes)



def _recompute_one(platform: EvalPlatform, model_key: str, dataset_key: str, suite_key: str, baseline: str | None,
                   launch_key: str | None) -> EvalRun:
    """The affected run's replacement, compared with the baseline the affected run asked for; when the new
    versions already have a live run compared with another baseline (a run nobody here asked for), that run is
    the replacement: a recompute must not stop half-way over a baseline preference."""
    try:
        return platform.request_eval(model_key, dataset_key, suite_key, baseline=baseline, trigger="recompute",
                                     launch_key=launch_key)
    except Conflict:
        return platform.request_eval(model_key, dataset_key, suite_key, trigger="recompute", launch_key=launch_key)


@dataclass(frozen=True)
class _Remedy:
    """One run a rematerialization replaces: the versions its replacement runs on (``suite_definition`` set when
    a fixed metric version needs a suite version not registered yet)."""

    run: EvalRun
    suite_key: str
    suite_definition: dict
    dataset_key: str


def _rematerialization_plan(platform: EvalPlatform, model_key: str, dataset_key: str | None) -> tuple[list[_Remedy], list[EvalRun]]:
    """What :func:`rematerialize` would queue, computed without writing: the runs it remedies, and the runs
    :meth:`~eval_platform.platform.service.EvalPlatform.requeue_model_version` queues again as they were."""
    buggy = set(platform.buggy_metrics())
    remedies: list[_Remedy] = []
    for run in platform.runs(model_key):
        if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INVALID) or run.trigger == CANARY_TRIGGER:
            continue  # (a canary run is a measurement of its day: its series keeps it as it was)
        if dataset_key is not None and run.dataset_id != VersionedKey.parse(dataset_key, "dataset").name:
            continue  # another dataset's cell
        suite = platform.suite(run.suite_key)
        definition, remedy_dataset = dict(suite.metric_defs), run.dataset_key
        try:
            bad = sorted(suite_metric_keys(suite) & buggy)
            if bad:
                fixes = {metric: fixed_version(metric, buggy) for metric in bad}
                definition["metrics"] = [dict(m, metric=fixes.get(m["metric"], m["metric"])) for m in definition["metrics"]]
            if platform.dataset(run.dataset_key).status != DatasetStatus.ACTIVE:
                remedy_dataset = platform.latest_dataset(run.dataset_id).key
        except (Conflict, NotFound):
            continue  # nothing to remedy it with: recomputed as it is below, the gate stays frozen
        if not bad and remedy_dataset == run.dataset_key:
            continue
        if dataset_key is not None and remedy_dataset != dataset_key:
            continue  # its remedy is another cell's (the clean version's) to recompute
        remedies.append(_Remedy(run, run.suite_key, definition, remedy_dataset))
    remedied = {r.run.run_id for r in remedies}
    again = [run for run in platform.runs(model_key)
             if run.run_id not in remedied and run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
             and run.trigger != CANARY_TRIGGER and (dataset_key is None or run.dataset_key == dataset_key)
             and platform.dataset(run.dataset_key).status == DatasetStatus.ACTIVE]
    return remedies, again


#: The Dagster run tag with which an operator confirms a rematerialization over the recompute budget (its value
#: names who confirms); the Dagster UI's user is an operator of the installation, an admin like the command line.
CONFIRM_OVER_BUDGET_TAG = "eval_platform/confirm_over_budget"


def _check_rematerialization_budget(platform: EvalPlatform, model_key: str, dataset_key: str | None, trigger: str,
                                    remedies: list[_Remedy], again: list[EvalRun], confirmed_by: str | None) -> str | None:
    """The recompute budget (:func:`~eval_platform.governance.recompute_cost.enforce_budget`) of what a
    rematerialization would queue; raises :class:`~eval_platform.governance.recompute_cost.OverBudget` (logged)
    when it is over and nobody confirmed."""
    plan = [PlannedRun(r.run.run_id, r.run.model_key, r.dataset_key, r.suite_key, r.suite_definition, r.run.requested_baseline)
            for r in remedies]
    plan += [PlannedRun(run.run_id, run.model_key, run.dataset_key, run.suite_key, dict(platform.suite(run.suite_key).metric_defs),
                        run.requested_baseline) for run in again]
    if not plan or not any_budget_applies(plan):
        return None  # nothing to pay for, or no budget to be over: no estimate (it reads every run's dataset)
    target = f"{model_key} on {dataset_key}" if dataset_key else model_key
    estimate = estimate_recompute(platform, f"the {trigger} of {target}", plan=plan)
    how = (f"launch it again with the Dagster run tag {CONFIRM_OVER_BUDGET_TAG}=<who confirms>, or, for runs an incident "
           f"touched, evalp recompute --affected-by INCIDENT --confirm-over-budget")
    who = (confirmed_by or "").strip()[:200]
    return enforce_budget(platform, estimate, f"{trigger}:{target}", who or f"a {trigger}", None, confirmed=bool(who),
                          how_to_confirm=how)


def rematerialize(platform: EvalPlatform, model_key: str, trigger: str = "rematerialization",
                  dataset_key: str | None = None, confirmed_by: str | None = None) -> None:
    """What a rematerialization or a backfill started by hand in the Dagster UI recomputes: the current runs
    of the model version's eval cell on ``dataset_key`` (all its runs without one), each with the remedy of
    the incident that touched it, as ``evalp recompute --affected-by`` would queue it: a run that used a
    metric version marked buggy on a suite version with the newest fixed version, a run on a contaminated
    dataset version on the dataset's newest usable version; the others on the same versions. A remedy lands
    in the cell of the versions it runs on: the clean dataset version's cell recomputes the runs its
    contaminated predecessor invalidated, and the contaminated cell itself has nothing left to recompute.
    Without a fix (no newer metric version, no clean dataset version) the run is recomputed as it was and
    its gate stays ``no_decision``.

    The recompute budget holds here as for ``evalp recompute``: what would be queued is estimated first, and
    over budget nothing is queued unless ``confirmed_by`` names who confirms (the Dagster run tag
    :data:`CONFIRM_OVER_BUDGET_TAG`); otherwise :class:`~eval_platform.governance.recompute_cost.OverBudget`
    (logged) names the budgets, the estimate and how to confirm."""
    remedies, again = _rematerialization_plan(platform, model_key, dataset_key)
    note = _check_rematerialization_budget(platform, model_key, dataset_key, trigger, remedies, again, confirmed_by)
    for remedy in remedies:
        run = remedy.run
        suite_key = _registered_suite(platform, remedy.suite_definition).key
        replacement = _recompute_one(platform, run.model_key, remedy.dataset_key, suite_key, run.requested_baseline, launch_key=None)
        platform.update_run(run.run_id, status=RunStatus.SUPERSEDED, status_reason=(
            f"recomputed ({trigger}) on {remedy.dataset_key} with {suite_key} as {replacement.run_id}; it was {run.status}: "
            f"{run.status_reason or ''}" + (f" {note}" if note else ""))[:2000])
    platform.requeue_model_version(model_key, trigger=trigger, dataset_key=dataset_key)


def request_recompute(platform: EvalPlatform, affected_by: str, requested_by: str, reason: str = "",
                      principal: Principal | None = None,
                      confirm_over_budget: bool = False) -> tuple[list[EvalRun], DagsterRequest | None]:
    """Queue again exactly the runs an incident touched, and ask Dagster for a backfill of their partitions.

    For a buggy metric, each affected suite gets a new version naming the newest unflagged version of
    the metric (content-addressed, so every affected run shares it); for a contaminated dataset, the
    runs are queued on the newest usable version of the dataset.

    The recompute's estimate is checked against the budgets first
    (:func:`~eval_platform.governance.recompute_cost.enforce_budget`): over budget, nothing is queued unless an
    admin confirms (``confirm_over_budget``).
    """
    queued, request, _ = recompute_within_budget(platform, affected_by, requested_by, reason, principal, confirm_over_budget)
    return queued, request


def recompute_within_budget(platform: EvalPlatform, affected_by: str, requested_by: str, reason: str = "",
                            principal: Principal | None = None,
                            confirm_over_budget: bool = False) -> tuple[list[EvalRun], DagsterRequest | None, RecomputeEstimate]:
    """:func:`request_recompute`, returning the estimate (a
    :class:`~eval_platform.governance.recompute_cost.RecomputeEstimate`) the budget was checked against too."""
    access.require_role(principal, access.ADMIN, "a recompute (it queues every affected team's runs)", "Authorization", platform,
                        f"recompute:{affected_by}")
    if principal is not None:
        requested_by = principal.label
    if not requested_by.strip():
        raise InvalidInput("requested_by", "name who asks for the recompute")
    estimate, note = check_recompute(platform, affected_by, requested_by, principal, confirm_over_budget)
    if note:
        reason = f"{reason or f'recompute runs affected by {affected_by}'} {note}"
    # The backfill's launch: its queued runs carry the key from the transaction that queues them, so the
    # eval-request sensor leaves them to the backfill (and relaunches them only if the backfill never runs).
    launch_key = f"recompute-{uuid.uuid4().hex[:16]}"
    buggy = platform.buggy_metrics()
    if affected_by in buggy:
        queued = _recompute_with_fixed_metric(platform, affected_by, set(buggy), launch_key)
    else:
        queued = _recompute_on_clean_dataset(platform, affected_by, launch_key)
    # the eval cells recomputed: where a replacement waits (a live run found in its place is already evaluated)
    partitions = sorted({cell_name(run.model_key, run.dataset_key) for run in queued if run.status == RunStatus.QUEUED})
    if not partitions:
        return queued, None, estimate
    with platform.registry.session() as session:
        request = DagsterRequest(kind=RequestKind.BACKFILL, partitions=partitions, requested_by=requested_by, launch_key=launch_key,
                                 reason=reason or f"recompute runs affected by {affected_by}")
        session.add(request)
    return queued, request, estimate


def _registered_suite(platform: EvalPlatform, definition: dict) -> MetricSuite:
    """The suite version of a definition (registered, or the existing identical one)."""
    record = platform.register_suite(definition).record
    if not isinstance(record, MetricSuite):
        raise TypeError(f"register_suite returned a {type(record).__name__}, not a suite version")
    return record


def _recompute_with_fixed_metric(platform: EvalPlatform, metric_key: str, buggy: set[str], launch_key: str) -> list[EvalRun]:
    """Each run that used the buggy metric version queued again on a suite version naming the fixed one
    (content-addressed, so every affected run of a suite shares it); the old run is superseded."""
    fixed = fixed_version(metric_key, buggy)
    queued = []
    for run in runs_using_metric(platform, metric_key):
        definition = dict(platform.suite(run.suite_key).metric_defs)
        definition["metrics"] = [dict(m, metric=fixed if m["metric"] == metric_key else m["metric"]) for m in definition["metrics"]]
        fixed_suite = _registered_suite(platform, definition)
        queued.append(_recompute_one(platform, run.model_key, run.dataset_key, fixed_suite.key, run.requested_baseline, launch_key))
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            platform.update_run(run.run_id, status=RunStatus.SUPERSEDED, status_reason=f"recomputed with {fixed} ({fixed_suite.key})")
    return queued


def _recompute_on_clean_dataset(platform: EvalPlatform, dataset_key: str, launch_key: str) -> list[EvalRun]:
    """The runs a contamination invalidated queued again on the dataset's newest usable version (every model
    version checked to cover it before the first is queued); an invalid run is superseded by its recomputation."""
    incident = next((i for i in incidents(platform) if i.kind == IncidentKind.DATASET_CONTAMINATION and i.target == dataset_key), None)
    if incident is None:
        raise InvalidInput("affected_by", f"{dataset_key!r} is neither a metric marked buggy nor a contaminated dataset")
    replacement = platform.latest_dataset(VersionedKey.parse(dataset_key, "dataset").name)
    affected = [platform.run(run_id) for run_id in incident.affected_runs]
    for model_key in dict.fromkeys(run.model_key for run in affected):
        platform.check_predictions_cover(platform.model(model_key), replacement)
    queued = []
    for run in affected:
        recomputed = _recompute_one(platform, run.model_key, replacement.key, run.suite_key, run.requested_baseline, launch_key)
        queued.append(recomputed)
        if run.status == RunStatus.INVALID:  # the gate is decided from the recomputation; the invalid run stays in the history
            platform.update_run(run.run_id, status=RunStatus.SUPERSEDED, status_reason=(
                f"recomputed on {replacement.key} as {recomputed.run_id}; it was invalid: {run.status_reason or ''}")[:2000])
    return queued
