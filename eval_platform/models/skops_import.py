"""``skops.io``, imported without walking all of scikit-learn.

At import, skops builds the list of types it trusts by default (every public scikit-learn estimator) from
``sklearn.utils.all_estimators()``, which imports every scikit-learn module, and torch with them where torch is
installed: about 3 s of CPU paid by every run worker at its first model load, more than the inference itself
on 100,000 rows. The list is a function of the installed scikit-learn and skops only, so it is computed once
per pair of versions by that same walk (in a child process, so that this process stays light) and kept as a
small JSON file; later imports hand skops the names from the file.

Trust is unchanged: the names are exactly those skops would compute (``tests/models/test_model_files.py`` compares
them with a plain import's), only names under ``sklearn.`` are accepted from the file, and the file lives in
the operator's cache directory (``EVAL_PLATFORM_CACHE_DIR``, else ``$XDG_CACHE_HOME/eval-platform``, else
``~/.cache/eval-platform``). Anything unexpected (no cache directory, an unreadable or malformed file) falls
back to skops' own import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType

#: Prints the default-trusted estimator names as skops computes them (run in a child process).
_WALK = ("import json; from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names; "
         "print(json.dumps(sorted(names)))")


def cache_dir() -> Path:
    explicit = os.environ.get("EVAL_PLATFORM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "eval-platform"


def _cache_file() -> Path:
    versions = f"sklearn-{metadata.version('scikit-learn')}-skops-{metadata.version('skops')}"
    return cache_dir() / f"skops-default-trusted-{versions}.json"


def _read(path: Path) -> list[str] | None:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.startswith("sklearn.") for n in names):
        return None  # not what the walk writes: ignore it rather than trust it
    return names


def _compute_and_store(path: Path) -> list[str] | None:
    try:
        out = subprocess.run([sys.executable, "-c", _WALK], check=True, capture_output=True, text=True, timeout=600).stdout
        names = json.loads(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".skops-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(names, f)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return _read(path)


def default_trusted_names() -> list[str] | None:
    """skops' default-trusted estimator names for the installed versions, from the cache (computed on a miss)."""
    path = _cache_file()
    return _read(path) or _compute_and_store(path)


def skops_io() -> ModuleType:
    """``skops.io``; the first import in a process reuses the cached estimator names instead of the walk."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    names = default_trusted_names()
    if names is None:
        import skops.io

        return skops.io
    import sklearn.utils

    walk = sklearn.utils.all_estimators
    # skops only reads each class's module and name: stand-ins carrying exactly those
    stand_ins = [(name.rsplit(".", 1)[1], type(name.rsplit(".", 1)[1], (), {"__module__": name.rsplit(".", 1)[0]}))
                 for name in names]
    sklearn.utils.all_estimators = lambda *args, **kwargs: stand_ins
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = walk
    return skops.io
