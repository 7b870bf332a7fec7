"""Incidents shown on the lineage: failing checks on the dataset version and the eval cells an incident touched."""

import dagster as dg

from eval_platform.core.errors import NotFound
from eval_platform.core.states import IncidentKind
from eval_platform.evaluation.judge_license import licenses_invalidated_by
from eval_platform.governance import incidents
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import Incident
from eval_platform_dagster.assets import dataset_versions, model_versions
from eval_platform_dagster.assets.datasets import NOT_CONTAMINATED
from eval_platform_dagster.assets.evaluation import INPUTS_VALID
from eval_platform_dagster.assets.judge_licenses import JUDGE_LICENSED
from eval_platform_dagster.assets.partitions import cell_key, judge_versions
from eval_platform_dagster.jobs.checks import CheckReport, report_check_results, report_request
from eval_platform_dagster.sensors.instance import known_partitions, sensor_instance, sensor_platform
from eval_platform_dagster.sensors.intervals import BACKGROUND_SENSOR_INTERVAL_SECONDS


def _cells_of(platform: EvalPlatform, run_ids: list[str]) -> list[tuple[str, str]]:
    """The eval cells of the runs (runs no longer recorded left out)."""
    cells: dict[tuple[str, str], None] = {}
    for run_id in run_ids:
        try:
            run = platform.run(run_id)
        except NotFound:
            continue
        cells[(run.model_key, run.dataset_key)] = None
    return list(cells)


def incident_check_reports(platform: EvalPlatform, incident: Incident, known_models: set[str], known_datasets: set[str],
                           known_judges: frozenset[str] = frozenset()) -> list[CheckReport]:
    """The failing partitioned checks an incident shows: ``not_contaminated`` of the contaminated dataset
    version, ``inputs_valid`` of each eval cell whose runs it touched, ``judge_licensed`` of each judge version
    whose license on a contaminated calibration version it invalidated (partitions Dagster knows of)."""
    metadata = {"incident": incident.kind, "target": incident.target, "reason": incident.reason,
                "reported_by": incident.reported_by, "incident_id": incident.id}
    reports = []
    if incident.kind == IncidentKind.DATASET_CONTAMINATION and incident.target in known_datasets:
        reports.append(CheckReport("eval_dataset", NOT_CONTAMINATED, incident.target, False,
                                   {**metadata, "affected_runs": ", ".join(incident.affected_runs) or "none"}))
    affected = set(incident.affected_runs)
    for model_key, dataset_key in _cells_of(platform, incident.affected_runs):
        if model_key in known_models and dataset_key in known_datasets:
            runs = [run.run_id for run in platform.runs(model_key) if run.dataset_key == dataset_key and run.run_id in affected]
            reports.append(CheckReport("metric_table", INPUTS_VALID, str(cell_key(model_key, dataset_key)), False,
                                       {**metadata, "affected_runs": ", ".join(runs) or "none"}))
    if incident.kind == IncidentKind.DATASET_CONTAMINATION:
        judges: dict[str, list[str]] = {}
        for lic in licenses_invalidated_by(platform, incident.id):
            judges.setdefault(lic.judge_key, []).append(str(lic.id))
        reports += [CheckReport("judge_license", JUDGE_LICENSED, key, False, {**metadata, "invalidated_licenses": ", ".join(ids)})
                    for key, ids in judges.items() if key in known_judges]
    return reports


@dg.sensor(job=report_check_results, minimum_interval_seconds=BACKGROUND_SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING)
def incident_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Show each new incident on the lineage, partition by partition: a failing ``not_contaminated`` on the
    contaminated dataset version, a failing ``judge_licensed`` on each judge version whose license on it was
    invalidated (a calibration version), a failing ``inputs_valid`` on exactly the eval cells whose runs it touched
    (one run of ``report_check_results`` per tick: see jobs/checks.py for why not runless). The gates it
    changed are re-evaluated by the gate sensor (the incident recorded new decisions)."""
    platform = sensor_platform(context)
    previous = cursor = int(context.cursor or 0)
    reports: list[CheckReport] = []
    instance = sensor_instance(context)
    known_models, known_datasets = known_partitions(instance, model_versions), known_partitions(instance, dataset_versions)
    known_judges = frozenset(known_partitions(instance, judge_versions))
    for incident in incidents.incidents(platform):
        if incident.id <= cursor:
            continue
        cursor = incident.id
        reports += incident_check_reports(platform, incident, known_models, known_datasets, known_judges)
    incidents.mark_reported(platform, cursor)
    requests = [report_request(reports, run_key=f"incidents:{previous + 1}-{cursor}",
                               tags={"eval_platform/incidents": f"{previous + 1}-{cursor}"})] if reports else []
    return dg.SensorResult(run_requests=requests, cursor=str(cursor), skip_reason=None if requests else "no new incidents")
