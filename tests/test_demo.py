"""The demo end to end: a real Dagster daemon, its sensors and runs, on a fresh home (a few minutes)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_HANG_SECONDS, ROOT


@pytest.mark.slow
def test_demo_runs_and_is_idempotent(demo_run):
    home, out = demo_run.home, demo_run.output
    assert "gate decision for breast-cancer-detector@1: PASS" in out
    assert "gate decision for breast-cancer-detector@3: FAIL" in out and "[fail] roc_auc >= 0.97" in out
    assert "baseline: breast-cancer-detector@1 (ok)" in out
    assert "affected runs (3), now invalid:" in out
    # the ops engineer's remedy: a clean canary version and one recompute backfill of exactly its three cells
    cells = ", ".join(f"breast-cancer-canary@2|breast-cancer-detector@{v}" for v in (1, 2, 3))
    assert (f"evalp recompute --affected-by breast-cancer-canary@1: 3 run(s) queued; Dagster backfill of the eval cells "
            f"(dataset|model) {cells}") in out
    assert re.search(r"backfill \w+: completed_success, 12 asset partitions", out)
    # the online experiment: a candidate with a baseline waits for it, then both gates let it through
    assert "before any experiment: release no_decision (offline gate pass, online gate no_decision)" in out
    assert "SRM: chi2" in out and "(ok)" in out and "primary click (treatment): treatment_better" in out
    assert "online gate of breast-cancer-detector@2: pass" in out
    assert "promoted version of breast-cancer-detector: 2" in out
    # a second version of a dataset: the eval_dataset drift check compares it with the first, through Dagster
    assert ("eval_dataset[breast-cancer-remeasured@2] check no_drift_from_previous: WARNING (non-blocking), "
            "against breast-cancer-remeasured@1") in out and "drifted: mean_radius:" in out
    # two teams, one refusal: beta may not register a version of alpha's model name
    assert "beta registers a new version of breast-cancer-detector: HTTP 403 (name): model 'breast-cancer-detector' belongs to another team" in out
    assert re.search(r"calls of its evaluation: candidate 84 calls, 0 cache hits", out)
    # the qa judge is licensed (by the judge_license asset the sensor materializes) on the reviewers' calibration
    # set before it gates: 45 of 60 verdicts agree, Wilson's 95% lower bound of 45/60 is 0.628
    judge = r"judge rule-judge-noisy@1\.qa-correctness-judge@1\.\w{8}: accuracy"
    assert re.search(r"\$ evalp judges licenses --suite qa-release\nlicensed: " + judge +
                     r" 0\.75, 95% lower bound 0\.63 >= required 0\.60 on 60 calibration examples of qa-calibration@1\n", out)
    # one review round trip: four queued answers labelled by rita, published as qa-calibration@2 (its lineage
    # names the items), and the license sensor re-checks the judge on the 64 examples
    assert len(re.findall(r"\$ evalp review label \d+ --label (?:pass|fail) --by rita", out)) == 4
    assert "published 4 item(s) as qa-calibration@2 (human_reviewed, 4 row(s) added)" in out
    assert re.search(r"licensed: " + judge + r" 0\.\d+, 95% lower bound 0\.\d+ >= required 0\.60 on 64 calibration examples "
                     r"of qa-calibration@2\n", out)
    assert re.search(r"recomputed now\s*: candidate 0 calls, 84 cache hits, 0 tokens, \$0.0000; judge 0 calls, 252 cache hits", out)
    # the release ledger: between the two promotions version 1 served; the chain verifies; a bundle is written
    assert re.search(r"serving breast-cancer-detector at \S+: breast-cancer-detector@1\n", out)
    assert re.search(r"ledger of breast-cancer-detector: \d+ entries, chain intact", out)
    bundle = re.search(r"evidence bundle of breast-cancer-detector@2: (\S+\.html)", out)
    assert bundle and Path(bundle.group(1)).is_file() and Path(bundle.group(1)).with_suffix(".json").is_file()

    listed = subprocess.run([sys.executable, "-m", "eval_platform.cli.main", "--home", str(home), "runs", "list", "--json"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    runs = json.loads(listed.stdout)
    release = [(r["model"], r["status"]) for r in runs if r["suite"] == "breast-cancer-release@1"]
    assert release == [("breast-cancer-detector@1", "succeeded"), ("breast-cancer-detector@2", "succeeded"),
                       ("breast-cancer-detector@3", "succeeded")]
    explore = [(r["dataset"], r["status"]) for r in runs if r["suite"] == "breast-cancer-explore@1"]
    assert explore == [("breast-cancer-canary@1", "superseded")] * 3 + [("breast-cancer-canary@2", "succeeded")] * 3
    assert all(r["lineage"]["dataset"]["content_hash"].startswith("sha256:") and r["dagster_run_id"] for r in runs)

    again = subprocess.run([sys.executable, str(ROOT / "demo" / "run_demo.py"), "--home", str(home)],
                           capture_output=True, text=True, timeout=DEMO_HANG_SECONDS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "will evaluate it" not in again.stdout  # every registration is found as it was
    assert "recomputed now   : candidate 0 calls" in again.stdout
    assert "beta registers a new version of breast-cancer-detector: HTTP 403" in again.stdout
    assert "(already ingested)" in again.stdout and "before any experiment" not in again.stdout
    assert "evalp recompute --affected-by breast-cancer-canary@1: nothing left to recompute (done before)" in again.stdout
