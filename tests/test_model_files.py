"""Model files are loaded only with skops and explicitly trusted types; swapped files are refused."""

import shutil

import pytest
import skops.io
from sklearn.preprocessing import FunctionTransformer

from eval_platform.errors import InvalidInput, UnsafeModelFile
from eval_platform.installation import InstallationConfig, NotAllowed
from eval_platform.models import check_model_file, load_model


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
    # the caller may only trust what the installation's operator allows (tests/test_operator_config.py)
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
