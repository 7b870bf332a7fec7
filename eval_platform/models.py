"""Loading model files safely and turning a model into predictions.

Two kinds of model file. ``sklearn``: a scikit-learn estimator saved with skops. ``predictions``: a
table (Parquet, CSV or JSONL) of outputs computed elsewhere, keyed by the dataset's id columns, for
teams whose inference runs outside the platform (rankers, generators, hosted models); it holds data
only, so nothing in it can run.

A model file is code waiting to run. scikit-learn models are stored with skops and loaded with an explicit
list of trusted types (as MLflow 3 does): a pickle, or a skops file naming a type nobody trusted, is refused
with an error and never executed. The file's hash is recorded at registration and checked before every
load, so a file swapped after registration is refused too.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from eval_platform.errors import InvalidInput, UnsafeModelFile
from eval_platform.hashing import file_hash

MODEL_KINDS = ("sklearn", "predictions", "openai_chat")
#: Output columns a ``predictions`` file must have for each task type (besides the id columns).
PREDICTION_COLUMNS = {
    "binary_classification": ("score",),
    "multiclass_classification": (),  # proba_<class> columns, checked when evaluated
    "ranking": ("score",),
    "search": ("score",),
    "generation": ("prediction",),
}

#: Types trusted without being named, beyond skops' own defaults (which cover scikit-learn's estimators and
#: numpy), as long as the installation's operator allows them (``skops.trusted_types``): compiled
#: scikit-learn internals that skops lists as unknown but that hold only arrays.
DEFAULT_TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


def allowed_trust(trusted_types: Iterable[str], installation=None) -> set[str]:
    """The types a skops file may be loaded with: the caller's, each refused unless the installation's
    operator lists it (a caller may only narrow the operator's list), and the defaults the operator allows."""
    from eval_platform.installation import installation_config

    installation = installation or installation_config()
    requested = installation.check_trusted_types(trusted_types)
    return (set(DEFAULT_TRUSTED_TYPES) & set(installation.trusted_types)) | set(requested)


#: Version of the prediction code: part of the prediction cache key and of the predictions asset's
#: code version, so a change to how predictions are produced invalidates the cache.
PREDICTION_CODE_VERSION = "1"


def check_model_file(path: str | Path, kind: str, trusted_types: Iterable[str] = (), installation=None) -> tuple[str, list[str]]:
    """Validate a model file without executing it; return its hash and the trusted types it needs.

    ``installation``: the operator's allow-lists (default: this process's,
    :func:`~eval_platform.installation.installation_config`)."""
    if kind not in MODEL_KINDS:
        raise InvalidInput("kind", f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    from eval_platform.installation import installation_config

    installation = installation or installation_config()
    # first, before the file is even opened: a type the operator does not allow is refused whatever the file
    trusted = allowed_trust(trusted_types, installation)
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("model_file", f"{path} does not exist or is not a file")
    if kind == "predictions":
        read_predictions_file(path)
        return file_hash(path), []
    if kind == "openai_chat":
        spec = read_candidate_spec(path)
        # where its calls would go and which variables it reads: the operator's lists decide, at registration
        # (and again when calls are made: eval_platform.llm.client.LLMClient)
        installation.check_endpoint(spec.endpoint, "endpoint")
        return file_hash(path), []
    import skops.io

    if not zipfile.is_zipfile(path):
        raise UnsafeModelFile(
            "model_file", f"{path} is not a skops file (pickles are refused: loading one would run arbitrary code)"
        )
    try:
        needed = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # a corrupt archive, or not a skops schema
        raise InvalidInput("model_file", f"{path} is not a readable skops file: {error}") from error
    untrusted = sorted(set(needed) - trusted)
    if untrusted:
        allowed = [t for t in untrusted if t in installation.trusted_types]
        hint = (f"pass {allowed} as trusted types only if you trust them" if allowed == untrusted else
                f"this installation's operator does not allow {sorted(set(untrusted) - set(allowed))} "
                f"(skops.trusted_types in {installation.source})")
        raise UnsafeModelFile("model_file", f"{path.name} needs untrusted type(s) {untrusted}; {hint}")
    return file_hash(path), sorted(set(needed))


def read_predictions_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
    except Exception as error:
        raise InvalidInput("model_file", f"{path} is not a readable predictions table: {error}") from error
    raise InvalidInput("model_file", f"{path}: a predictions file is .parquet, .csv or .jsonl")


def read_candidate_spec(path: Path):
    """An ``openai_chat`` model file: JSON naming the endpoint, model, version, prompt template and decoding
    (see :meth:`eval_platform.llm.client.CandidateSpec.from_dict`); ``${VAR}`` in the base URL keeps
    the file, and so the model version, stable when the server's address changes."""
    import json

    from eval_platform.llm.client import CandidateSpec

    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput("model_file", f"{path} is not a JSON candidate spec: {error}") from error
    return CandidateSpec.from_dict(document)


def load_model(path: str | Path, expected_hash: str, trusted_types: Iterable[str] = (), kind: str = "sklearn",
               installation=None):
    """Load a registered model, refusing a file whose content changed since registration, or trusted types
    the installation's operator does not allow (any more: the list is checked at every load)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("model_file", f"{path} no longer exists")
    actual = file_hash(path)
    if actual != expected_hash:
        raise UnsafeModelFile(
            "model_file", f"{path} changed after registration (hash {actual} != registered {expected_hash}); refusing to load"
        )
    if kind == "predictions":
        return read_predictions_file(path)
    if kind == "openai_chat":
        return read_candidate_spec(path)
    import skops.io

    trusted = allowed_trust(trusted_types, installation)
    needed = set(skops.io.get_untrusted_types(file=path))
    if needed - trusted:  # skops.io.load refuses too; checked here so nothing of the file is constructed
        raise UnsafeModelFile("model_file", f"{path.name} needs untrusted type(s) {sorted(needed - trusted)}")
    try:
        return skops.io.load(path, trusted=sorted(trusted))
    except Exception as error:
        raise InvalidInput("model_file", f"{path} does not load: {error}") from error


def smoke_test(model, kind: str) -> None:
    """A registered model must at least expose the prediction method its kind needs."""
    if kind == "openai_chat":
        return
    if kind == "predictions":
        if model.empty:
            raise InvalidInput("model_file", "the predictions file has no rows")
        return
    if kind == "sklearn" and not (hasattr(model, "predict_proba") or hasattr(model, "decision_function") or hasattr(model, "predict")):
        raise InvalidInput("model_file", "the loaded object has no predict_proba, decision_function or predict")


def predict(model, frame: pd.DataFrame, schema: dict, task_type: str) -> pd.DataFrame:
    """Predictions of ``model`` on a dataset frame, keyed by the dataset's id columns.

    Binary classification gives ``score`` = probability of class 1 (or the decision function when the
    model has no probabilities); multi-class gives ``prediction`` and one ``proba_<class>`` column each.
    """
    if isinstance(model, pd.DataFrame):
        return _from_predictions_file(model, frame, schema, task_type)
    ids = frame[schema["id_columns"]].reset_index(drop=True)
    features = frame[schema["feature_columns"]]
    if features.shape[1] == 0:
        raise InvalidInput("feature_columns", "the dataset has no feature columns to predict from")
    values = features.to_numpy()
    try:
        if task_type == "binary_classification":
            if hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(values))
                classes = list(getattr(model, "classes_", [0, 1]))
                score = proba[:, classes.index(1)] if 1 in classes else proba[:, -1]
            elif hasattr(model, "decision_function"):
                score = np.asarray(model.decision_function(values), dtype=np.float64)
            else:
                score = np.asarray(model.predict(values), dtype=np.float64)
            return ids.assign(score=np.asarray(score, dtype=np.float64))
        if task_type == "multiclass_classification":
            proba = np.asarray(model.predict_proba(values))
            out = ids.assign(prediction=np.asarray(model.classes_)[proba.argmax(axis=1)])
            for index, cls in enumerate(model.classes_):
                out[f"proba_{cls}"] = proba[:, index]
            return out
        if task_type in ("ranking", "search"):
            return ids.assign(score=np.asarray(model.predict(values), dtype=np.float64))
    except ValueError as error:
        raise InvalidInput("model_file", f"the model cannot predict on this dataset's features: {error}") from error
    raise InvalidInput("task_type", f"models of kind sklearn cannot predict for task type {task_type!r}")


def _from_predictions_file(table: pd.DataFrame, frame: pd.DataFrame, schema: dict, task_type: str) -> pd.DataFrame:
    """The rows of a predictions file that concern this dataset.

    Classification and generation need one prediction per example; a ranking run may also score items
    nobody judged (they count as not relevant), so it keeps every row of the dataset's queries.
    """
    ids = schema["id_columns"]
    needed = [*ids, *PREDICTION_COLUMNS.get(task_type, ())]
    missing = [c for c in needed if c not in table.columns]
    if task_type == "multiclass_classification" and not any(c.startswith("proba_") for c in table.columns):
        missing.append("proba_<class>")
    if missing:
        raise InvalidInput("model_file", f"the predictions file lacks column(s) {missing} for task type {task_type}")
    if table.duplicated(ids).any():
        first = table.loc[table.duplicated(ids), ids].iloc[0].to_dict()
        raise InvalidInput("model_file", f"the predictions file has duplicate rows for {first}")
    if task_type in ("ranking", "search"):
        queries = set(frame["query_id"])
        return table[table["query_id"].isin(queries)].reset_index(drop=True)
    return frame[ids].merge(table, on=ids, how="left")
