"""Shared fixtures: installations in temporary homes, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eval_platform.platform.service import EvalPlatform

if TYPE_CHECKING:
    from eval_platform.llm.server import LocalLLMServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests package (shared helpers), from any working directory

PG_ADMIN_URL = os.environ.get("EVAL_PLATFORM_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
PG_REQUIRED = os.environ.get("EVAL_PLATFORM_REQUIRE_POSTGRES") == "1"
_pg_skips: list[str] = []


def _pg_available() -> str | None:
    """None when the server answers, else why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return None
    except Exception as error:  # any connection failure means "no server here"
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = _pg_available()
    if problem:
        if PG_REQUIRED:
            pytest.fail(f"PostgreSQL is required (EVAL_PLATFORM_REQUIRE_POSTGRES=1) but not reachable: {problem}")
        _pg_skips.append(problem)
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the real server for one test, dropped afterwards."""
    import sqlalchemy

    name = f"evalp_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def platform(tmp_path, db_url):
    service = EvalPlatform.open(tmp_path / "home", db_url=db_url)
    yield service
    service.close()


def local_llm_server(**options) -> Iterator[tuple[LocalLLMServer, str]]:
    """The project's local OpenAI-compatible server (``options``: LocalLLMServer's), started in this process for
    as long as the generator runs: ``(server, base URL)``."""
    from eval_platform.llm.server import LocalLLMServer

    local = LocalLLMServer(**options)
    base_url = local.start()
    yield local, base_url
    local.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[LocalLLMServer, str]]:
    """A local LLM server shared by a test module's tests: ``(server, base URL)``. A module whose tests change
    the server's answers or faults defines a ``server`` of its own, one a test (:func:`local_llm_server`)."""
    yield from local_llm_server()


@pytest.fixture(scope="session")
def breast_cancer():
    """(x_train, y_train, eval dataset) from the demo's split of scikit-learn's bundled data."""
    from eval_platform.datasets.breast_cancer import breast_cancer_split

    return breast_cancer_split()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory, breast_cancer):
    from eval_platform.datasets.breast_cancer import train_models

    x_train, y_train, _ = breast_cancer
    return train_models(tmp_path_factory.mktemp("models"), x_train, y_train)


@pytest.fixture(scope="session")
def release_suite() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "demo" / "breast_cancer_release.yaml").read_text())


@dataclass(frozen=True)
class DemoRun:
    home: Path
    output: str


def installation_with_breast_cancer(home: Path, db_url: str, breast_cancer, release_suite, monkeypatch) -> EvalPlatform:
    """An installation the way a daemon's processes see it (home and registry in the environment) holding the
    breast-cancer dataset ``bc@1`` and the release-blocking suite: what the Dagster-layer tests register models on."""
    monkeypatch.setenv("EVAL_PLATFORM_HOME", str(home))
    monkeypatch.setenv("EVAL_PLATFORM_DB_URL", db_url)
    platform = EvalPlatform.open(home, db_url=db_url)
    _, _, frame = breast_cancer
    platform.register_dataset("bc", frame, task_type="binary_classification", label_policy="human_reviewed",
                              slice_columns=["tumour_size"])
    platform.register_suite(release_suite)
    return platform


#: when a demo process counts as hung (its own stall check says why much earlier)
DEMO_HANG_SECONDS = 3600


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """The demo, run once on a fresh home with a real dagster-daemon (minutes), for every slow test that looks at
    what it leaves: tests/test_demo.py reads its output and runs it again, tests/dagster/test_ui.py opens the Dagster UI
    on its instance."""
    home = tmp_path_factory.mktemp("demo") / "home"
    # the demo fails by itself when Dagster makes no progress for its --timeout (900 s); the bound here only keeps a
    # hung process from holding CI, so it is far above what a loaded 2-core machine takes (about 9 minutes)
    run = subprocess.run([sys.executable, str(ROOT / "demo" / "run_demo.py"), "--home", str(home)],
                         capture_output=True, text=True, timeout=DEMO_HANG_SECONDS)
    assert run.returncode == 0, run.stdout + run.stderr
    return DemoRun(home, run.stdout)


#: What the slow tests leave for a person to look at (CI keeps the directory): the UI test's screenshots.
ARTIFACTS = ROOT / "test-artifacts"
_summary_lines: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in _summary_lines:
        terminalreporter.write_line(line)
    if _pg_skips:
        terminalreporter.write_line(
            f"NOTE: PostgreSQL tests were SKIPPED ({_pg_skips[0]}); set EVAL_PLATFORM_REQUIRE_POSTGRES=1 to make them "
            "mandatory (.ci/run does).", yellow=True)
