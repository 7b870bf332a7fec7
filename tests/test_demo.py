"""The demo end to end: a real Dagster daemon, its sensors and runs, on a fresh home (about a minute)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_demo_runs_and_is_idempotent(tmp_path):
    home = tmp_path / "demo"
    first = subprocess.run([sys.executable, str(ROOT / "demo" / "run_demo.py"), "--home", str(home)],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "gate decision for breast-cancer-detector@1: PASS" in first.stdout
    assert "gate decision for breast-cancer-detector@2:" in first.stdout
    assert "baseline: breast-cancer-detector@1 (ok)" in first.stdout

    listed = subprocess.run([sys.executable, "-m", "eval_platform.cli", "--home", str(home), "runs", "list", "--json"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    runs = json.loads(listed.stdout)
    assert [(r["model"], r["status"]) for r in runs] == [("breast-cancer-detector@1", "succeeded"),
                                                         ("breast-cancer-detector@2", "succeeded")]
    assert all(r["lineage"]["dataset"]["content_hash"].startswith("sha256:") and r["results"]["metrics"] for r in runs)
    assert all(r["dagster_run_id"] for r in runs)

    again = subprocess.run([sys.executable, str(ROOT / "demo" / "run_demo.py"), "--home", str(home)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already registered") == 4
