"""The demo: a real model registration drives a real sensor and real Dagster runs to a gate decision.

It uses scikit-learn's bundled breast-cancer data (nothing is downloaded), trains a logistic-regression
baseline and a gradient-boosting candidate, registers everything in the installation at ``--home``
(default ``.demo``), and lets a Dagster daemon on the embedded-SQLite instance in ``<home>/dagster`` do
the work: the sensors see the registrations, add the partitions and launch the runs. Running it again
reuses the home: identical registrations return the existing versions and nothing is recomputed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "breast-cancer-detector"
DATASET_ID = "breast-cancer-test"
CANARY_ID = "breast-cancer-canary"
SUITE_FILE = ROOT / "demo" / "breast_cancer_release.yaml"
EXPLORE_FILE = ROOT / "demo" / "breast_cancer_explore.yaml"
QA_SUITE_FILE = ROOT / "demo" / "qa_release.yaml"
QA_DATASET_ID = "qa-small"
QA_MODEL_NAME = "qa-assistant"
#: the judge-license calibration set of the qa suite (qa_release.yaml), and how many queued answers the reviewer settles
CALIBRATION_ID = "qa-calibration"
REVIEWED_ITEMS = 4
DRIFT_DATASET_ID = "breast-cancer-remeasured"


def prepare_home(home: Path) -> None:
    os.environ["EVAL_PLATFORM_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster" / "dagster.yaml"
    if not instance_config.exists():
        shutil.copy(ROOT / "dagster.yaml", instance_config)
    from dagster import DagsterInstance

    # Create Dagster's SQLite storage here, before the daemon and this process would race to create it.
    with DagsterInstance.get():
        pass


class Daemon:
    """``dagster-daemon run`` on the demo's instance: sensors, the run queue and run launching."""

    def __init__(self, home: Path):
        self.log_path = home / "dagster" / "daemon.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.process is None:
            log = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) if self.log_path.exists() else ""


def wait_until_idle(platform, daemon: Daemon, stall_timeout: float) -> None:
    """Until the registry has no queued or running eval run, pending orchestrator request or judge-license check, and Dagster
    has no unfinished run nor unfinished backfill (a backfill is marked completed by the daemon's next
    iteration after its last run: stopping before that would leave it "in progress" on the Backfills page).

    There is no overall deadline: a busy machine makes every step slower, and that is not a failure. The
    wait gives up only when nothing moves (no registry row changes state, no Dagster run or event appears)
    for ``stall_timeout`` seconds, and says what it is waiting for whenever that changes."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    from eval_platform.core.states import RequestKind
    from eval_platform.evaluation.judge_license import unchecked_judges
    from eval_platform.governance import incidents
    from eval_platform.online import experiments
    from eval_platform.platform.requests import pending_requests

    unfinished = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                  DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    last_progress, last_state, said = time.monotonic(), None, None
    with DagsterInstance.get() as instance:
        while True:
            pending = platform.runs(statuses=["queued", "running"])
            requests = pending_requests(platform, RequestKind.PROMOTION) + experiments.pending_analysis_requests(platform)
            unreported = [i for i in incidents.incidents(platform) if not i.reported]
            unlicensed = unchecked_judges(platform)  # the judge-license sensor's checks still to run
            dagster_runs = instance.get_run_records(RunsFilter(statuses=unfinished))
            backfills = [b for status in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING, BulkActionStatus.FAILING)
                         for b in instance.get_backfills(status=status)]
            if not pending and not requests and not unreported and not unlicensed and not dagster_runs and not backfills:
                return
            if daemon.process is not None and daemon.process.poll() is not None:
                raise SystemExit(f"the Dagster daemon exited:\n{daemon.tail()}")
            # progress: any change of the registry's unfinished work, of Dagster's unfinished runs, or a new event
            latest_event = instance.event_log_storage.get_maximum_record_id() if hasattr(
                instance.event_log_storage, "get_maximum_record_id") else None
            state = (tuple(sorted((r.run_id, r.status, r.launch_attempts) for r in pending)), len(requests), len(unreported), len(unlicensed),
                     tuple(sorted((r.dagster_run.run_id, r.dagster_run.status.value) for r in dagster_runs)),
                     tuple(sorted(b.backfill_id for b in backfills)), latest_event)
            if state != last_state:
                last_state, last_progress = state, time.monotonic()
            waiting = (f"{sum(r.status == 'queued' for r in pending)} eval run(s) queued, {sum(r.status == 'running' for r in pending)} "
                       f"running; {len(dagster_runs)} Dagster run(s) unfinished "
                       f"({', '.join(sorted({r.dagster_run.status.value.lower() for r in dagster_runs})) or '-'}); "
                       f"{len(requests)} request(s), {len(unreported)} incident(s) to show"
                       + (f"; {len(backfills)} backfill(s) unfinished" if backfills else "")
                       + (f"; judge license check(s) to run: {', '.join(unlicensed)}" if unlicensed else ""))
            if waiting != said:
                print(f"  waiting for Dagster: {waiting}", flush=True)
                said = waiting
            stalled = time.monotonic() - last_progress
            if stalled > stall_timeout:
                raise SystemExit(f"nothing moved for {stalled:.0f}s while waiting for Dagster ({waiting}); daemon log:\n{daemon.tail()}")
            time.sleep(1)


def run_dagster(platform, daemon: Daemon, timeout: float) -> None:
    daemon.start()
    wait_until_idle(platform, daemon, timeout)


def register_model(platform, model_file: Path, description: str, plan=()):
    registered = platform.register_model(MODEL_NAME, model_file, eval_plan=plan, description=description)
    state = "registered: the eval-request sensor will evaluate it" if registered.created else "already registered"
    print(f"\nmodel {registered.record.key} ({description}) {state}")
    return registered.record


def qa_dataset() -> pd.DataFrame:
    """The question-answering set shipped with the project."""
    import json
    from importlib import resources

    rows = [json.loads(line) for line in resources.files("eval_platform").joinpath("data/qa_small.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows).rename(columns={"id": "example_id", "question": "prompt", "answer": "reference"})
    return frame[["example_id", "prompt", "reference", "category"]]


def qa_calibration() -> pd.DataFrame:
    """Human verdicts on 60 graded answers (the judge-license calibration set): every other answer states the
    reference, the rest do not; the reviewers failed 3 right answers for their extra words."""
    rows = qa_dataset().iloc[:60].reset_index(drop=True)
    right = rows.index % 2 == 0
    answers = [f"It is {ref}." if ok else "I am not sure." for ref, ok in zip(rows["reference"], right, strict=True)]
    labels = ["pass" if ok else "fail" for ok in right]
    for position in (4, 20, 42):
        labels[position] = "fail"
    return pd.DataFrame({"example_id": "cal-" + rows["example_id"], "prompt": rows["prompt"], "reference": rows["reference"],
                         "answer": answers, "human_label": labels})


def write_candidate(home: Path) -> Path:
    """An OpenAI-compatible chat model: the endpoint's address comes from the environment, so the file
    (and the model version) stays the same whichever port the local server gets."""
    import json

    path = home / "models" / "qa-assistant.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"endpoint": {"name": "local-llm", "base_url": "${EVAL_LLM_BASE_URL}"}, "model": "kb-qa-verbose",
            "model_version": "2026-11-01", "decoding": {"temperature": 0, "max_tokens": 48},
            "prompt": {"id": "qa-answer", "version": "1", "text": "Answer the question.\nQuestion: {prompt}"}}
    path.write_text(json.dumps(spec, indent=2, sort_keys=True))
    return path


def report_llm(platform, model_key: str, label: str) -> None:
    run = [r for r in platform.runs(model_key) if r.status != "superseded"][-1]
    calls = (run.lineage or {}).get("candidate_calls", {})
    judge = (run.results or {}).get("judge", {})
    judge_calls, summary = judge.get("report", {}), judge.get("summary", {})
    print(f"  {label}: candidate {calls.get('calls', 0)} calls, {calls.get('cache_hits', 0)} cache hits, "
          f"{calls.get('prompt_tokens', 0) + calls.get('completion_tokens', 0)} tokens, ${calls.get('cost', 0.0):.4f}; "
          f"judge {judge_calls.get('calls', 0)} calls, {judge_calls.get('cache_hits', 0)} cache hits, "
          f"{judge_calls.get('prompt_tokens', 0) + judge_calls.get('completion_tokens', 0)} tokens, ${judge_calls.get('cost', 0.0):.4f}")
    if summary:
        print(f"  judge {summary.get('judge_model')} ({summary.get('judge_prompt_version')}), {summary.get('n')} samples per answer: "
              f"agreement {summary.get('agreement', 0):.3f}, {len(summary.get('disagreements', []))} answers with disagreeing verdicts, "
              f"{summary.get('n_judge_errors', 0)} judge errors")


def show_two_teams(platform, model_file: Path) -> None:
    """Two teams' principals, one refusal: the operator gives the demo's model name to team alpha (what
    ``evalp owners set`` does), and team beta's attempt to register a version of it through the API (in
    this process, no port) is refused. Tokens are made each run, and expire within the hour."""
    from fastapi.testclient import TestClient

    from eval_platform.api.app import create_app
    from eval_platform.registry import access

    access.set_owner(platform, access.MODEL, MODEL_NAME, "alpha")  # a no-op when alpha already owns it
    tokens = {team: access.create_token(platform, team, name="demo", principal=person, kind=access.PERSON,
                                        roles=(access.MEMBER, access.APPROVER), expires_in="1h")
              for team, person in (("alpha", "ada"), ("beta", "bob"))}
    print(f"\n=== two teams: {MODEL_NAME} belongs to team alpha (principal alpha:ada); team beta (beta:bob) tries it ===")
    with TestClient(create_app(platform)) as client:
        response = client.post("/v1/models", headers={"Authorization": f"Bearer {tokens['beta']}"},
                               files={"file": ("candidate.skops", model_file.read_bytes())}, data={"name": MODEL_NAME})
    problem = response.json()
    print(f"beta registers a new version of {MODEL_NAME}: HTTP {response.status_code} ({problem.get('field')}): {problem.get('detail')}")


def report(platform, model_key: str, title: str) -> None:
    from eval_platform.cli.gates import format_gate
    from eval_platform.cli.runs import format_run
    from eval_platform.core.records import run_to_dict

    print(f"\n=== {title}: {model_key} ===")
    for run in platform.runs(model_key):
        if run.status != "superseded" and platform.suite(run.suite_key).purpose == "release_blocking":
            print(format_run(run_to_dict(run)))
    decision = platform.gate_decision(model_key)
    print(format_gate(model_key, decision.decision, decision.reasons) if decision else "no gate decision yet")


EXPERIMENT_ID = "exp-gbm-vs-lr"
TRUE_EFFECT = 0.12


def experiment_spec(control: str, candidate: str) -> dict:
    return {"experiment_id": EXPERIMENT_ID, "description": "gradient boosting vs the promoted logistic regression",
            "offline_metric": "roc_auc",
            "arms": [{"name": "control", "model_version": control, "split": 0.5},
                     {"name": "treatment", "model_version": candidate, "split": 0.5}],
            "primary_metric": {"metric": "click", "direction": "higher", "aggregate": "sum"},
            "metrics": {"conversion": {"aggregate": "max"}, "revenue": {"aggregate": "sum"}, "latency_ms": {"aggregate": "mean"}},
            "guardrails": [{"metric": "latency_ms", "direction": "lower", "tolerance": 0.05},
                           {"metric": "click", "direction": "higher", "tolerance": 0.10}],
            "covariate": {"click": "pre_clicks", "revenue": "pre_revenue"}}


def run_experiment(platform, daemon, timeout: float, control: str, candidate: str) -> None:
    """An A/B test of the candidate against the promoted baseline on simulated traffic with a known effect:
    two daily batches are ingested as dataset versions, the experiment sensor analyses them, and the
    candidate's release needs the online gate as well as the offline one."""
    from eval_platform.gates import releases
    from eval_platform.online import experiments
    from eval_platform.online.reporting import format_online_gate, format_stored_analysis
    from eval_platform.online.simulate import simulate_experiment

    print(f"\n=== online: A/B test of {candidate} against the baseline {control} ===")
    if not any(e.experiment_id == EXPERIMENT_ID for e in experiments.experiments(platform)):
        print(f"before any experiment: {releases.release_state(platform, candidate).describe()}")
    experiments.register_experiment(platform, experiment_spec(control, candidate), created_by="demo")
    traffic = simulate_experiment(seed=3, n_units=20_000, days=10, true_effect=TRUE_EFFECT)
    print(f"simulated traffic: {traffic['unit_id'].nunique()} users, {len(traffic)} events over 10 days, seed 3, "
          f"true effect on clicks, conversions and revenue per user: +{TRUE_EFFECT:.0%}, none on latency")
    day = (traffic["timestamp"] - traffic["timestamp"].min().floor("D")).dt.days
    for batch in (traffic[day < 5], traffic[day >= 5]):
        row, created = experiments.ingest(platform, EXPERIMENT_ID, batch.reset_index(drop=True), ingested_by="demo")
        print(f"  ingest {row.dataset_key}: {row.row_count} events{'' if created else ' (already ingested)'}")
    run_dagster(platform, daemon, timeout)  # the experiment sensor runs the analysis partition
    analysis = experiments.latest_analysis(platform, EXPERIMENT_ID)
    print(format_stored_analysis(analysis.result))
    for record in analysis.agreement:
        print(f"  offline-online: {record['offline_metric']} {record['offline_delta']:+.4f} offline, "
              f"{record['metric']} {record['online_delta']:+.2%} online ({record['online_outcome']})")
    decision, reasons, _ = experiments.decide_online_gate(platform, candidate)
    print(format_online_gate(candidate, decision, reasons))
    release = releases.release_state(platform, candidate)
    print(f"{candidate}: {release.describe()}")
    if release.state == "pass" and platform.promoted_version(MODEL_NAME) != int(candidate.rsplit("@", 1)[1]):
        releases.request_promotion(platform, candidate, requested_by="demo", reason="offline and online gates passed")
        run_dagster(platform, daemon, timeout)  # the release job: both blocking checks, then the promotion
    print(f"promoted version of {MODEL_NAME}: {platform.promoted_version(MODEL_NAME)}")


def show_judge_license(platform, home: Path, suite_id: str) -> None:
    """The judge's license, as the ``judge_license`` asset (partitioned by judge version) recorded it."""
    from eval_platform.cli.main import main as evalp

    print(f"$ evalp judges licenses --suite {suite_id}")
    evalp(["judges", "licenses", "--suite", suite_id, "--home", str(home)])


def review_round_trip(platform, daemon, timeout: float, home: Path, suite_id: str) -> None:
    """People settle what the judge and the metrics disagree on: a reviewer labels a few queued answers, the labels
    become a new version of the calibration set, and the license sensor re-checks the judge on it."""
    from eval_platform.cli.main import main as evalp
    from eval_platform.evaluation import review_queue

    home_args = ["--home", str(home)]
    print("\n=== review queue: answers the judge's samples, the judge and exact match, or the audit sample put to people ===")
    items, total = review_queue.list_items(platform, dataset=QA_DATASET_ID, status="open", limit=REVIEWED_ITEMS)
    print(f"{total} open item(s) of {QA_DATASET_ID}")
    print(f"$ evalp review list --dataset {QA_DATASET_ID} --status open --limit {REVIEWED_ITEMS}")
    evalp(["review", "list", "--dataset", QA_DATASET_ID, "--status", "open", "--limit", str(REVIEWED_ITEMS), *home_args])
    if review_queue.list_items(platform, dataset=QA_DATASET_ID, status="published", limit=1)[1]:
        print(f"an earlier run of the demo published its review as a version of {CALIBRATION_ID}")
        items = []
    for item in items:
        example = review_queue.get_item(platform, item.id).example
        answer, reference = (example.answer or "", example.reference or "") if example else ("", "")
        # the reviewer's rule: the answer states the reference (exact match misses the full sentence around it)
        verdict = "pass" if reference and reference.lower() in answer.lower() else "fail"
        print(f"$ evalp review label {item.id} --label {verdict} --by rita   # {item.reason}: {answer!r}, reference {reference!r}")
        evalp(["review", "label", str(item.id), "--label", verdict, "--by", "rita", *home_args])
    if items:
        chosen = [argument for item in items for argument in ("--item", str(item.id))]
        print(f"$ evalp review publish --into {CALIBRATION_ID} {' '.join(chosen)}")
        evalp(["review", "publish", "--into", CALIBRATION_ID, *chosen, *home_args])
        run_dagster(platform, daemon, timeout)  # a new calibration version: the sensor re-checks the judge on it
    show_judge_license(platform, home, suite_id)


def show_release_ledger(platform, home: Path) -> None:
    """The release ledger: what served between the two promotions, the hash chain checked, one evidence bundle."""
    from eval_platform.cli.main import main as evalp
    from eval_platform.gates.ledger import history

    print(f"\n=== release ledger: what served {MODEL_NAME} when, and on what evidence ===")
    serving = [e for e in history(platform, MODEL_NAME) if e.kind in ("promotion", "rollback", "demotion")]
    if not serving:
        print("nothing was promoted")
        return
    first = serving[0].recorded_at
    # halfway between the first promotion and the next change of the serving version (or a second after it)
    moment = first + (serving[1].recorded_at - first) / 2 if len(serving) > 1 else first + timedelta(seconds=1)
    when = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    home_args = ["--home", str(home)]
    print(f"$ evalp releases at {MODEL_NAME} --time {when}")
    evalp(["releases", "at", MODEL_NAME, "--time", when, *home_args])
    print(f"$ evalp releases verify {MODEL_NAME}")
    evalp(["releases", "verify", MODEL_NAME, *home_args])
    served = f"{MODEL_NAME}@{serving[-1].model_version or serving[0].model_version}"
    bundle = home / "evidence" / f"{served.replace('@', '-v')}.html"
    print(f"$ evalp releases export {served} --out {bundle}")
    evalp(["releases", "export", served, "--out", str(bundle), *home_args])
    print(f"evidence bundle of {served}: {bundle} (open it in a browser; the .json beside it is for machines)")


def recompute_contaminated(platform, daemon, timeout: float, contaminated_key: str, clean: pd.DataFrame) -> None:
    """What an ops engineer does next: rebuild the canary without the leaked examples (a new dataset version)
    and ``evalp recompute --affected-by`` the contaminated version. The recompute sensor turns the request into
    one Dagster backfill of the clean version's eval cells of the affected model versions (Backfills page)."""
    from dagster import DagsterInstance

    from eval_platform.governance.incidents import request_recompute

    print(f"\n=== recompute: the canary rebuilt from other hold-out examples, the runs on {contaminated_key} recomputed ===")
    rebuilt = platform.register_dataset(CANARY_ID, clean, task_type="binary_classification", label_policy="human_reviewed",
                                        slice_columns=["tumour_size"], description="the canary rebuilt without the leaked examples")
    print(f"dataset {rebuilt.record.key} ({rebuilt.record.row_count} rows){'' if rebuilt.created else ' already registered'}")
    queued, request = request_recompute(platform, contaminated_key, requested_by="demo",
                                        reason=f"recompute runs affected by {contaminated_key}")
    print(f"evalp recompute --affected-by {contaminated_key}: ", end="")
    if request is None:
        print("nothing left to recompute (done before)")
    else:
        print(f"{len(queued)} run(s) queued; Dagster backfill of the eval cells (dataset|model) {', '.join(request.partitions)}")
        run_dagster(platform, daemon, timeout)  # the recompute sensor submits the backfill, the daemon runs its cells
    with DagsterInstance.get() as instance:
        recomputes = [b for b in instance.get_backfills() if "eval_platform/recompute_request" in b.tags]
    if recomputes:
        latest = recomputes[0]  # newest first
        print(f"backfill {latest.backfill_id}: {latest.status.value.lower()}, "
              f"{len(list(latest.asset_backfill_data.target_subset.iterate_asset_partitions()))} asset partitions "
              f"(make dev: Runs > Backfills)")
    for run in platform.runs():
        if run.dataset_key == rebuilt.record.key:
            print(f"  {run.run_id}  {run.model_key}  {run.suite_key}  {run.status}")


def show_dataset_drift(platform, daemon: Daemon, timeout: float, frame: pd.DataFrame) -> None:
    """A second version of a dataset (mean radius re-measured 30 % larger): the Dagster dataset sensor
    materializes its eval_dataset partition, whose non-blocking drift check compares it with the first."""
    from dagster import AssetCheckKey, AssetKey, DagsterInstance
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    print("\n=== dataset drift: a second version of a dataset, compared with the first (eval_dataset check) ===")
    for rows, description in ((frame, "the hold-out as measured"),
                              (frame.assign(mean_radius=frame["mean_radius"] * 1.3), "mean radius re-measured by a new instrument")):
        record = platform.register_dataset(DRIFT_DATASET_ID, rows, task_type="binary_classification", label_policy="human_reviewed",
                                           slice_columns=["tumour_size"], description=description).record
    check_key, deadline = AssetCheckKey(AssetKey("eval_dataset"), "no_drift_from_previous"), time.monotonic() + timeout
    daemon.start()
    with DagsterInstance.get() as instance:
        while True:  # the sensor's next tick launches the partition's run; its check result is then recorded
            found = [r for r in instance.event_log_storage.get_asset_check_execution_history(
                check_key, limit=100, status={Status.SUCCEEDED, Status.FAILED}) if r.partition == record.key and r.evaluation]
            if found or time.monotonic() > deadline:
                break
            time.sleep(1)
    if not found:
        raise SystemExit(f"no drift check result for {record.key} after {timeout:.0f}s; daemon log:\n{daemon.tail()}")
    evaluation = found[0].evaluation
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    print(f"eval_dataset[{record.key}] check no_drift_from_previous: {'passed' if evaluation.passed else 'WARNING (non-blocking)'}"
          f", against {metadata['previous_version']}; {metadata['note']}")
    for line in metadata["drifted"][:4]:
        print(f"  drifted: {line}")
    table = metadata["drift"].splitlines()
    print("\n".join(f"  {line}" for line in table[2:4] + [r for r in table[4:] if "**drifted**" in r][:2]))
    print(f"  largest PSI {metadata['max_psi']:.3f} at {metadata['max_psi_where']}; "
          f"largest KS statistic {metadata['max_ks_statistic']:.3f} at {metadata['max_ks_statistic_where']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=str(ROOT / ".demo"))
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="give up when Dagster makes no progress for this many seconds (slow progress is waited for)")
    args = parser.parse_args()
    home = Path(args.home).resolve()
    prepare_home(home)

    from eval_platform.datasets.breast_cancer import breast_cancer_split, train_models
    from eval_platform.platform.service import EvalPlatform

    started = time.monotonic()
    platform = EvalPlatform.open(home)
    x_train, y_train, dataset = breast_cancer_split()
    model_files = train_models(home, x_train, y_train)
    registered = platform.register_dataset(DATASET_ID, dataset, task_type="binary_classification",
                                           label_policy="human_reviewed", access_policy={"level": "internal"},
                                           slice_columns=["tumour_size"],
                                           description="scikit-learn breast-cancer, 40% stratified hold-out")
    print(f"dataset {registered.record.key} ({registered.record.row_count} rows, {registered.record.content_hash[:19]}...)"
          f"{'' if registered.created else ' already registered'}")
    suite = platform.register_suite(yaml.safe_load(SUITE_FILE.read_text()))
    print(f"suite {suite.record.key} ({suite.record.purpose}){'' if suite.created else ' already registered'}")

    explore = platform.register_suite(yaml.safe_load(EXPLORE_FILE.read_text()))
    canary = platform.register_dataset(CANARY_ID, dataset.iloc[::3], task_type="binary_classification",
                                       label_policy="human_reviewed", slice_columns=["tumour_size"],
                                       description="every third hold-out example: a small canary set")
    print(f"exploratory suite {explore.record.key} on canary dataset {canary.record.key} ({canary.record.row_count} rows)")
    plan = [(DATASET_ID, suite.record.suite_id), (CANARY_ID, explore.record.suite_id)]

    from eval_platform.gates import releases
    from eval_platform.governance import incidents
    from eval_platform.llm.server import LocalLLMServer

    llm_server = LocalLLMServer(latency=0.02)
    os.environ["EVAL_LLM_BASE_URL"] = llm_server.start()  # inherited by the daemon and its runs
    daemon = Daemon(home)
    try:
        baseline = register_model(platform, model_files["logistic_regression"], "logistic regression baseline", plan)
        run_dagster(platform, daemon, args.timeout)
        report(platform, baseline.key, "baseline")
        if platform.promoted_version(MODEL_NAME) is None and releases.effective_decision(platform, baseline.key)[0] == "pass":
            releases.request_promotion(platform, baseline.key, requested_by="demo", reason="first version, gate passed")
            run_dagster(platform, daemon, args.timeout)  # the release job: gate check, then the promotion asset
        print(f"\npromoted version of {MODEL_NAME}: {platform.promoted_version(MODEL_NAME)} (the baseline of later versions)")

        candidates = [register_model(platform, model_files["gradient_boosting"], "gradient boosting candidate"),
                      register_model(platform, model_files["decision_stump"], "decision stump candidate")]
        run_dagster(platform, daemon, args.timeout)
        for candidate in candidates:
            report(platform, candidate.key, "candidate")
        show_two_teams(platform, model_files["decision_stump"])
        run_experiment(platform, daemon, args.timeout, control=baseline.key, candidate=candidates[0].key)
        show_release_ledger(platform, home)

        print("\n=== generation eval: an OpenAI-compatible chat model and a pinned judge (local server) ===")
        qa = platform.register_dataset(QA_DATASET_ID, qa_dataset(), task_type="generation", label_policy="human_reviewed",
                                       slice_columns=["category"], description="shipped question-answering set")
        if not any(d.dataset_id == CALIBRATION_ID for d in platform.datasets()):  # later versions come from the review queue
            platform.register_dataset(CALIBRATION_ID, qa_calibration(), task_type="generation",
                                      label_policy="human_reviewed", role="calibration",
                                      description="reviewers' verdicts on 60 graded answers: the judge's license")
        qa_suite = platform.register_suite(yaml.safe_load(QA_SUITE_FILE.read_text()))
        run_dagster(platform, daemon, args.timeout)  # the judge-license sensor checks the suite's judge (asset judge_license)
        show_judge_license(platform, home, qa_suite.record.suite_id)
        assistant = platform.register_model(QA_MODEL_NAME, write_candidate(home), kind="openai_chat",
                                            eval_plan=[(QA_DATASET_ID, qa_suite.record.suite_id)],
                                            description="chat model answering in full sentences").record
        print(f"dataset {qa.record.key} ({qa.record.row_count} questions), suite {qa_suite.record.key}, model {assistant.key}")
        run_dagster(platform, daemon, args.timeout)
        report(platform, assistant.key, "chat model")
        report_llm(platform, assistant.key, "calls of its evaluation")
        platform.request_eval(assistant.key, QA_DATASET_ID, qa_suite.record.suite_id, trigger="demo", recompute=True)
        run_dagster(platform, daemon, args.timeout)
        report_llm(platform, assistant.key, "recomputed now   ")
        review_round_trip(platform, daemon, args.timeout, home, qa_suite.record.suite_id)

        canary_key = canary.record.key
        existing = next((i for i in incidents.incidents(platform) if i.target == canary_key), None)
        if existing is None:
            impact = incidents.invalidate_dataset(platform, canary_key, reported_by="demo",
                                                  reason="canary examples were found in a training export")
            affected, models = impact.incident.affected_runs, impact.models
            run_dagster(platform, daemon, args.timeout)  # the incident sensor marks the lineage red
        else:
            affected, models = existing.affected_runs, existing.affected_models
        print(f"\n=== contamination: {canary_key} marked contaminated and deprecated ===")
        print(f"affected runs ({len(affected)}), now invalid:")
        for run_id in affected:
            run = platform.run(run_id)
            print(f"  {run.run_id}  {run.model_key}  {run.suite_key}  {run.status}")
        print(f"affected model versions: {', '.join(models)}; their release gates are unchanged because "
              f"{explore.record.key} is exploratory:")
        for model in platform.models():
            print(f"  {model.key}: {releases.effective_decision(platform, model.key)[0]}")
        recompute_contaminated(platform, daemon, args.timeout, canary_key, dataset.iloc[1::3])
        show_dataset_drift(platform, daemon, args.timeout, dataset)
    finally:
        daemon.stop()
        llm_server.stop()

    print(f"\nDone in {time.monotonic() - started:.0f}s. Registry and artifacts: {home}")
    print(f"  evalp --home {os.path.relpath(home)} runs list --json    # the runs with results and lineage")
    print("  make dev                                # Dagster UI on this instance: lineage, partitions, backfills")


if __name__ == "__main__":
    main()
