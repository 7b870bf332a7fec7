"""The layers of eval_platform, as CI checks them: import-linter's contracts (pyproject.toml) hold on this
checkout and break, naming the import, when a lower layer imports a higher one or the library imports Dagster;
no module of the library imports another of the project's modules inside a function (that hides cycles),
except the CLI's, which keep ``evalp --help`` fast and say so."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
DAGSTER_FOLDERS = ("assets", "resources", "jobs", "sensors")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def copy_of_library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "eval_platform", root / "eval_platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold_on_this_checkout():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "added", "broken"), [
    # the bottom layer importing the HTTP API
    ("eval_platform/core/errors.py", "import eval_platform.api.problems", "eval_platform.core is not allowed to import eval_platform.api"),
    # a pure metric importing the registry service above it
    ("eval_platform/metrics/base.py", "from eval_platform.platform import service",
     "eval_platform.metrics is not allowed to import eval_platform.platform"),
    # the runner reaching up to the incident handling that calls it
    ("eval_platform/evaluation/metric_table.py", "from eval_platform.governance import incidents",
     "eval_platform.evaluation is not allowed to import eval_platform.governance"),
    # the library knows nothing of Dagster
    ("eval_platform/gates/rules.py", "import dagster", "the domain library knows nothing of Dagster"),
])
def test_an_import_against_the_layers_breaks_a_contract(copy_of_library, module, added, broken):
    path = copy_of_library / module
    original = path.read_text()
    path.write_text(original + f"\n{added}  # added by tests/test_layers.py\n")
    try:
        result = _lint_imports(copy_of_library)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split()), result.stdout


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    """Imports of the project's own modules inside a function of ``path``, with the line above each."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            own = (isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("eval_platform"))
                   or isinstance(node, ast.Import) and any(a.name.startswith("eval_platform") for a in node.names))
            if own:
                found.append((node.lineno, lines[node.lineno - 2] + lines[node.lineno - 1]))
    return found


def test_no_function_level_imports_of_the_project_outside_the_cli():
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for path in sorted((ROOT / "eval_platform").rglob("*.py"))
                 if "cli" not in path.relative_to(ROOT).parts and "migrations" not in path.parts
                 for line, _ in _function_level_imports(path)]
    assert offenders == []


def test_the_clis_deferred_imports_say_why():
    unexplained = [f"{path.relative_to(ROOT)}:{line}"
                   for path in sorted((ROOT / "eval_platform" / "cli").rglob("*.py"))
                   for line, text in _function_level_imports(path) if "keeps evalp --help fast" not in text]
    assert unexplained == []


def _installed_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_of_the_tree_is_installed_under_our_two_names():
    folders = {path.parent for path in (ROOT / "eval_platform").rglob("*") if path.is_file() and "__pycache__" not in path.parts}
    expected = {".".join(folder.relative_to(ROOT).parts) for folder in folders}
    expected |= {"eval_platform_dagster"} | {f"eval_platform_dagster.{name}" for name in DAGSTER_FOLDERS}
    assert set(_installed_packages()) == expected
    # no other top-level name of ours: `assets`, `jobs`... would collide with any distribution using them
    assert {name.split(".")[0] for name in _installed_packages()} == {"eval_platform", "eval_platform_dagster"}


def test_the_dagster_layer_imports_by_its_namespace_from_anywhere(tmp_path):
    probe = ("import importlib.util, eval_platform_dagster.definitions as d; "
             "print(d.defs is not None, [importlib.util.find_spec(n) is None for n in ('assets', 'jobs', 'sensors', 'resources')])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "True [True, True, True, True]"
