"""Model files are loaded only with skops and explicitly trusted types; swapped files are refused."""

import shutil

import pytest
import skops.io
from sklearn.preprocessing import FunctionTransformer

from eval_platform.core.errors import InvalidInput, UnsafeModelFile
from eval_platform.core.installation import InstallationConfig, NotAllowed
from eval_platform.models.files import check_model_file, load_model


def test_registered_models_load_and_predict(model_files):
    digest, needed = check_model_file(model_files["gradient_boosting"], "sklearn")
    assert needed == ["sklearn.tree._tree.Tree"]  # trusted by the platform's default list
    model = load_model(model_files["gradient_boosting"], digest)
    assert hasattr(model, "predict_proba")


def test_untrusted_types_are_refused_unless_trusted_explicitly(tmp_path):
    path = tmp_path / "custom.skops"
    skops.io.dump(FunctionTransformer(func=shutil.rmtree), path)  # a callable that must never be loaded blindly
    with pytest.raises(UnsafeModelFile, match="untrusted type"):
        check_model_file(path, "sklearn")
    needed = skops.io.get_untrusted_types(file=path)
    # the caller may only trust what the installation's operator allows (tests/core/test_operator_config.py)
    with pytest.raises(NotAllowed, match="may not be trusted"):
        check_model_file(path, "sklearn", trusted_types=needed)
    operator = InstallationConfig(trusted_types=("sklearn.tree._tree.Tree", *needed))
    digest, _ = check_model_file(path, "sklearn", trusted_types=needed, installation=operator)
    assert digest.startswith("sha256:")


def test_a_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UnsafeModelFile, match="pickles are refused"):
        check_model_file(path, "sklearn")
    assert not marker.exists()


def test_a_file_changed_after_registration_is_refused(model_files, tmp_path):
    path = tmp_path / "model.skops"
    shutil.copy(model_files["logistic_regression"], path)
    digest, _ = check_model_file(path, "sklearn")
    shutil.copy(model_files["gradient_boosting"], path)
    with pytest.raises(UnsafeModelFile, match="changed after registration"):
        load_model(path, digest)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        check_model_file(tmp_path / "nope.skops", "sklearn")


# skops.io without the walk of all of scikit-learn (eval_platform/models/skops_import.py) ---------------------------------
_PRINT_TRUSTED = ("import json, sys; {setup}; from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names; "
                  "print(json.dumps({{'names': sorted(names), 'walked': 'sklearn.feature_extraction.text' in sys.modules}}))")


def _trusted_in_fresh_process(setup: str, cache_dir) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "EVAL_PLATFORM_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", _PRINT_TRUSTED.format(setup=setup)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.mark.slow  # fresh interpreters that import all of scikit-learn: 12-20 s
def test_cached_skops_import_trusts_exactly_what_skops_trusts(tmp_path):
    plain = _trusted_in_fresh_process("import skops.io", tmp_path / "unused")
    assert plain["walked"] and len(plain["names"]) > 100  # skops' own import imports all of scikit-learn
    ours = "from eval_platform.models.skops_import import skops_io; skops_io()"
    first = _trusted_in_fresh_process(ours, tmp_path / "cache")  # computes the cache file in a child process
    second = _trusted_in_fresh_process(ours, tmp_path / "cache")  # reads it
    assert first["names"] == second["names"] == plain["names"]
    assert not second["walked"]
    assert len(list((tmp_path / "cache").glob("skops-default-trusted-*.json"))) == 1


@pytest.mark.slow  # fresh interpreters that import all of scikit-learn: 12-20 s
def test_a_tampered_skops_cache_is_ignored(tmp_path):
    import json

    ours = "from eval_platform.models.skops_import import skops_io; skops_io()"
    names = _trusted_in_fresh_process(ours, tmp_path)["names"]
    (cache,) = tmp_path.glob("skops-default-trusted-*.json")
    cache.write_text(json.dumps([*names, "builtins.eval"]))  # a name outside scikit-learn: not what the walk writes
    tampered = _trusted_in_fresh_process(ours, tmp_path)
    assert tampered["names"] == names and "builtins.eval" not in tampered["names"]
    cache.write_text("{not json")
    assert _trusted_in_fresh_process(ours, tmp_path)["names"] == names
