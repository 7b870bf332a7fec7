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
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput, UnsafeModelFile
from eval_platform.core.hashing import file_hash
from eval_platform.core.installation import installation_config
from eval_platform.core.tables import READ_VERBATIM, read_table
from eval_platform.core.yamlsafe import load_json
from eval_platform.datasets.validation import all_distinct
from eval_platform.llm.specs import CandidateSpec
from eval_platform.metrics.multiclass import multilabel_label_set
from eval_platform.models.skops_import import skops_io as import_skops_io

MODEL_KINDS = ("sklearn", "predictions", "openai_chat")
#: Task types whose predictions are one ``proba_<class>`` column per class (multi-class) or label (multi-label).
PROBA_TASKS = ("multiclass_classification", "multilabel_classification")
#: Output columns a ``predictions`` file must have for each task type (besides the id columns).
PREDICTION_COLUMNS = {
    "binary_classification": ("score",),
    "multiclass_classification": (),  # proba_<class> columns, checked when evaluated
    "multilabel_classification": (),  # proba_<label> columns, one per label, checked when evaluated
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

    installation = installation or installation_config()
    requested = installation.check_trusted_types(trusted_types)
    return (set(DEFAULT_TRUSTED_TYPES) & set(installation.trusted_types)) | set(requested)


#: Version of the prediction code: part of the prediction cache key and of the predictions asset's
#: code version, so a change to how predictions are produced invalidates the cache.
PREDICTION_CODE_VERSION = "1"


def check_model_file(path: str | Path, kind: str, trusted_types: Iterable[str] = (), installation=None) -> tuple[str, list[str]]:
    """Validate a model file without executing it; return its hash and the trusted types it needs.

    ``installation``: the operator's allow-lists (default: this process's,
    :func:`~eval_platform.core.installation.installation_config`)."""
    if kind not in MODEL_KINDS:
        raise InvalidInput("kind", f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")

    installation = installation or installation_config()
    # first, before the file is even opened: a type the operator does not allow is refused whatever the file
    trusted = allowed_trust(trusted_types, installation)
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("model_file", f"{path.name} does not exist or is not a file")
    if kind == "predictions":
        read_predictions_file(path)
        return file_hash(path), []
    if kind == "openai_chat":
        spec = read_candidate_spec(path)
        # where its calls would go and which variables it reads: the operator's lists decide, at registration
        # (and again when calls are made: eval_platform.llm.client.LLMClient)
        installation.check_endpoint(spec.endpoint, "endpoint")
        return file_hash(path), []
    skops_io = import_skops_io()

    if not zipfile.is_zipfile(path):
        raise UnsafeModelFile(
            "model_file", f"{path.name} is not a skops file (pickles are refused: loading one would run arbitrary code)"
        )
    try:
        needed = skops_io.get_untrusted_types(file=path)
    except Exception as error:  # a corrupt archive, or not a skops schema
        raise InvalidInput("model_file", f"{path.name} is not a readable skops file: {_without_dir(error, path)}") from error
    untrusted = sorted(set(needed) - trusted)
    if untrusted:
        allowed = [t for t in untrusted if t in installation.trusted_types]
        hint = (f"pass {allowed} as trusted types only if you trust them" if allowed == untrusted else
                f"this installation's operator does not allow {sorted(set(untrusted) - set(allowed))} "
                f"(skops.trusted_types in {installation.source})")
        raise UnsafeModelFile("model_file", f"{path.name} needs untrusted type(s) {untrusted}; {hint}")
    return file_hash(path), sorted(set(needed))


def _without_dir(error: BaseException | str, path: Path) -> str:
    """An error's text with the file's directory left out: callers of the API must not learn where the
    server keeps its files."""
    return str(error).replace(str(path.parent) + "/", "").replace(str(path.parent), "")


#: Columns of a predictions file a CSV gives as written: a generation's text, and ids (``007`` stays ``"007"``;
#: matched to a dataset's numeric ids by :func:`align_id_types`)
PREDICTION_VERBATIM_COLUMNS = ("prediction", "example_id", "query_id", "doc_id")


def read_predictions_file(path: Path) -> pd.DataFrame:
    if path.suffix.lower() not in (".parquet", ".pq", ".csv", ".jsonl", ".ndjson"):
        raise InvalidInput("model_file", f"{path.name}: a predictions file is .parquet, .csv or .jsonl")
    try:
        return read_table(path, field="model_file", name=path.name, verbatim_columns=PREDICTION_VERBATIM_COLUMNS)
    except InvalidInput as error:
        raise InvalidInput("model_file", f"{path.name} is not a readable predictions table: {_without_dir(error.problem, path)}") from error


def align_id_types(table: pd.DataFrame, frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The predictions ``table`` with the ids a CSV gave as written (text: the format has no types) read as
    numbers where the dataset's ids are numbers, when every one of them is a number; otherwise unchanged,
    for the id checks to name the row that is not. Ids of a typed format (Parquet, JSONL) keep their type."""
    converted = {}
    for column in ids:
        read_as_text = column in table.attrs.get(READ_VERBATIM, ()) and column in table.columns and column in frame.columns
        if read_as_text and pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_numeric_dtype(table[column]) \
                and table[column].map(lambda v: isinstance(v, str)).all():
            numbers, target = pd.to_numeric(table[column], errors="coerce"), frame[column].dtype
            if numbers.notna().all() and (not pd.api.types.is_integer_dtype(target) or (numbers == numbers.round()).all()):
                converted[column] = numbers.astype(target)
    return table.assign(**converted) if converted else table


def read_candidate_spec(path: Path):
    """An ``openai_chat`` model file: JSON naming the endpoint, model, version, prompt template and decoding
    (see :meth:`eval_platform.llm.specs.CandidateSpec.from_dict`); ``${VAR}`` in the base URL keeps
    the file, and so the model version, stable when the server's address changes."""

    try:
        text = path.read_bytes()
    except OSError as error:
        raise InvalidInput("model_file", f"{path.name} is not a JSON candidate spec: {_without_dir(error, path)}") from error
    document = load_json(text, field="model_file", source=path.name)  # bounded size and nesting
    return CandidateSpec.from_dict(document)


def load_model(path: str | Path, expected_hash: str, trusted_types: Iterable[str] = (), kind: str = "sklearn",
               installation=None):
    """Load a registered model, refusing a file whose content changed since registration, or trusted types
    the installation's operator does not allow (any more: the list is checked at every load)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput("model_file", f"{path.name} no longer exists")
    actual = file_hash(path)
    if actual != expected_hash:
        raise UnsafeModelFile(
            "model_file", f"{path.name} changed after registration (hash {actual} != registered {expected_hash}); refusing to load"
        )
    if kind == "predictions":
        return read_predictions_file(path)
    if kind == "openai_chat":
        return read_candidate_spec(path)
    skops_io = import_skops_io()

    trusted = allowed_trust(trusted_types, installation)
    needed = set(skops_io.get_untrusted_types(file=path))
    if needed - trusted:  # skops.io.load refuses too; checked here so nothing of the file is constructed
        raise UnsafeModelFile("model_file", f"{path.name} needs untrusted type(s) {sorted(needed - trusted)}")
    try:
        return skops_io.load(path, trusted=sorted(trusted))
    except Exception as error:
        raise InvalidInput("model_file", f"{path.name} does not load: {_without_dir(error, path)}") from error


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
    model has no probabilities); multi-class gives ``prediction`` and one ``proba_<class>`` column each;
    multi-label gives one ``proba_<label>`` column per label (see :func:`_multilabel_predictions`).
    """
    if isinstance(model, pd.DataFrame):
        return _from_predictions_file(align_id_types(model, frame, schema["id_columns"]), frame, schema, task_type)
    ids = frame[schema["id_columns"]].reset_index(drop=True)
    features = frame[schema["feature_columns"]]
    if features.shape[1] == 0:
        raise InvalidInput("feature_columns", "the dataset has no feature columns to predict from")
    try:
        if task_type == "binary_classification":
            return ids.assign(score=np.asarray(_in_batches(_binary_scorer(model), features), dtype=np.float64))
        if task_type == "multiclass_classification":
            return _multiclass_predictions(model, ids, features)
        if task_type == "multilabel_classification":
            return _multilabel_predictions(model, ids, features, multilabel_label_set(frame[schema["label_column"]]))
        if task_type in ("ranking", "search"):
            return ids.assign(score=_in_batches(lambda values: np.asarray(model.predict(values), dtype=np.float64), features))
    except ValueError as error:
        raise InvalidInput("model_file", f"the model cannot predict on this dataset's features: {error}") from error
    raise InvalidInput("task_type", f"models of kind sklearn cannot predict for task type {task_type!r}")


def _binary_scorer(model) -> Callable[[np.ndarray], np.ndarray]:
    """The score of class 1: its probability, else the decision function, else the prediction itself."""
    if hasattr(model, "predict_proba"):
        classes = list(getattr(model, "classes_", [0, 1]))

        def probability_of_1(values):
            proba = np.asarray(model.predict_proba(values))
            return proba[:, classes.index(1)] if 1 in classes else proba[:, -1]

        return probability_of_1
    if hasattr(model, "decision_function"):
        return lambda values: np.asarray(model.decision_function(values), dtype=np.float64)
    return lambda values: np.asarray(model.predict(values), dtype=np.float64)


def _multiclass_predictions(model, ids: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The most probable class as ``prediction`` and each class's probability as ``proba_<class>``."""
    proba = _in_batches(lambda values: np.asarray(model.predict_proba(values)), features)
    out = ids.assign(prediction=np.asarray(model.classes_)[proba.argmax(axis=1)])
    for index, cls in enumerate(model.classes_):
        out[f"proba_{cls}"] = proba[:, index]
    return out


def _multilabel_predictions(model, ids: pd.DataFrame, features: pd.DataFrame, labels: list) -> pd.DataFrame:
    """Each label's score as ``proba_<label>``: the model's output column ``j`` scores ``labels[j]``, the
    dataset's labels sorted (the order of scikit-learn's ``MultiLabelBinarizer``, with which the model's
    0/1 training targets are made). ``predict_proba`` may return one ``(n, n_labels)`` matrix
    (``OneVsRestClassifier``) or one ``(n, 2)`` array per label (``MultiOutputClassifier``, forests: the
    probability of 1 is taken); without it, ``decision_function``, else ``predict``."""

    def scores(values):
        if hasattr(model, "predict_proba"):
            output = model.predict_proba(values)
            if isinstance(output, list):  # one estimator per label
                return np.column_stack([_probability_of_one(part, j) for j, part in enumerate(output)])
            return np.asarray(output, dtype=np.float64)
        method = model.decision_function if hasattr(model, "decision_function") else model.predict
        return np.asarray(method(values), dtype=np.float64)

    matrix = _in_batches(scores, features)
    if matrix.ndim != 2 or matrix.shape[1] != len(labels):
        raise InvalidInput("model_file", f"the model gives {matrix.shape[1] if matrix.ndim == 2 else 1} score column(s) but the "
                                         f"dataset has {len(labels)} labels {labels} (column j scores the j-th label in sorted order)")
    return ids.assign(**{f"proba_{label}": matrix[:, j] for j, label in enumerate(labels)})


def _probability_of_one(proba, label_index: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] not in (1, 2):
        raise InvalidInput("model_file", f"the model's predict_proba for label {label_index} has shape {proba.shape}, not (n, 2)")
    # a label all 0 (or all 1) in training gives one column: the probability of 1 is then 0 (or 1)
    return proba[:, -1] if proba.shape[1] == 2 else np.zeros(len(proba))


#: Rows per model call. The feature matrix of a 10M-row dataset is hundreds of MB as one array, and an estimator's
#: own intermediates (e.g. a forest's per-tree probabilities) scale with it; in batches of this many rows
#: both stay tens of MB. Row-wise estimators give the same numbers in batches as in one call.
PREDICT_BATCH_ROWS = 1 << 18


def _in_batches(predict_rows, features: pd.DataFrame) -> np.ndarray:
    """``predict_rows`` over ``features`` a batch of rows at a time, the results stacked in row order."""
    parts = [predict_rows(features.iloc[start:start + PREDICT_BATCH_ROWS].to_numpy())
             for start in range(0, max(len(features), 1), PREDICT_BATCH_ROWS)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _from_predictions_file(table: pd.DataFrame, frame: pd.DataFrame, schema: dict, task_type: str) -> pd.DataFrame:
    """The rows of a predictions file that concern this dataset.

    Classification and generation need one prediction per example; a ranking run may also score items
    nobody judged (they count as not relevant), so it keeps every row of the dataset's queries.
    """
    ids = schema["id_columns"]
    needed = [*ids, *PREDICTION_COLUMNS.get(task_type, ())]
    missing = [c for c in needed if c not in table.columns]
    if task_type in PROBA_TASKS and not any(str(c).startswith("proba_") for c in table.columns):
        missing.append("proba_<class>")
    if missing:
        raise InvalidInput("model_file", f"the predictions file lacks column(s) {missing} for task type {task_type}")
    if not all_distinct(table, ids):
        first = table.loc[table.duplicated(ids), ids].iloc[0].to_dict()
        raise InvalidInput("model_file", f"the predictions file has duplicate rows for {first}")
    if task_type in ("ranking", "search"):
        queries = set(frame["query_id"])
        return table[table["query_id"].isin(queries)].reset_index(drop=True)
    if len(table) == len(frame) and all(table[c].reset_index(drop=True).equals(frame[c].reset_index(drop=True)) for c in ids):
        # the file lists the dataset's examples in its order (as written from it): the left join is the file
        return table[[*ids, *(c for c in table.columns if c not in ids)]].reset_index(drop=True)
    return frame[ids].merge(table, on=ids, how="left")


# predictions files: checked against every dataset they will be evaluated on, before registration writes ----
def check_predictions_for_dataset(table: pd.DataFrame, frame: pd.DataFrame, schema: dict, task_type: str, dataset_key: str) -> None:
    """Refuse a ``predictions`` file that cannot be evaluated on a dataset, naming the column and the row.

    What evaluation would otherwise find late (after the model, its plan entries and its queued runs were
    written): a missing id or output column, an id of another type than the dataset's, a null or duplicate
    id, a score or probability that is not a finite number (NaN, inf), a generation prediction that is not
    text, and examples of the dataset the file has no row for (for ranking: queries of the dataset it ranks
    nothing for). Rows are counted from 1, as in the file (the header is not a row).
    """
    where = f"for dataset {dataset_key} ({task_type})"
    ids = list(schema["id_columns"])
    table = align_id_types(table, frame, ids)
    outputs = _check_prediction_columns(table, ids, task_type, where)
    for column in ids:
        _check_id_column(table, frame, column, where)
    _check_unique_ids(table, ids)
    if task_type == "generation":
        _check_text_column(table, "prediction")
    else:
        for column in outputs:
            _check_finite_column(table, column)
    if task_type == "multiclass_classification":
        _check_every_class_has_probabilities(frame[schema["label_column"]], outputs, where)
    if task_type == "multilabel_classification":
        _check_every_label_has_probabilities(frame[schema["label_column"]], outputs, where)
    if task_type in ("ranking", "search"):
        _check_every_query_ranked(table, frame, where)
    else:
        _check_every_example_predicted(table, frame, ids, where)


def _check_prediction_columns(table: pd.DataFrame, ids: list[str], task_type: str, where: str) -> list[str]:
    """Refuse a file without the id and output columns the task type needs; the output columns."""
    if task_type not in PREDICTION_COLUMNS:
        raise InvalidInput("model_file", f"a predictions file cannot be evaluated {where}: no predictions file format for this task type")
    outputs = list(PREDICTION_COLUMNS[task_type])
    if task_type in PROBA_TASKS:
        outputs = [c for c in table.columns if str(c).startswith("proba_")]
    missing = [c for c in (*ids, *outputs) if c not in table.columns]
    if task_type in PROBA_TASKS and not outputs:
        missing.append("proba_<class>")
    if missing:
        raise InvalidInput("model_file", f"the predictions file lacks column(s) {missing} {where}; it has {[str(c) for c in table.columns]}")
    return outputs


def _check_unique_ids(table: pd.DataFrame, ids: list[str]) -> None:
    """Refuse two rows of the file with the same id, naming both rows."""
    duplicated = None if all_distinct(table, ids) else table.duplicated(ids, keep=False)
    if duplicated is not None and duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())
        first = _ids_at(table, ids, rows[0])
        same = np.logical_and.reduce([(table[c] == v).to_numpy() for c, v in first.items()])
        twin = int(np.flatnonzero(same)[1])
        raise InvalidInput("model_file", f"the predictions file has duplicate id(s) {_plain_ids(first)} at rows {rows[0] + 1} "
                                         f"and {twin + 1} ({int(duplicated.sum())} rows share an id with another)")


def _check_every_class_has_probabilities(labels: pd.Series, outputs: list[str], where: str) -> None:
    classes = {str(c).removeprefix("proba_") for c in outputs}
    uncovered = labels[~labels.astype(str).isin(classes)]
    if len(uncovered):
        raise InvalidInput("model_file", f"the predictions file has no proba_<class> column for class {uncovered.iloc[0]!r} {where} "
                                         f"(dataset row {int(uncovered.index[0]) + 1}); its classes: {sorted(classes)}")


def _check_every_label_has_probabilities(labels: pd.Series, outputs: list[str], where: str) -> None:
    covered = {str(c).removeprefix("proba_") for c in outputs}
    for row, value in enumerate(labels):
        for label in (value if value is not None and not isinstance(value, str) and hasattr(value, "__iter__") else [value]):
            if str(label) not in covered:
                raise InvalidInput("model_file", f"the predictions file has no proba_<label> column for label {_plain(label)!r} {where} "
                                                 f"(dataset row {row + 1}); its labels: {sorted(covered)}")


def _check_every_query_ranked(table: pd.DataFrame, frame: pd.DataFrame, where: str) -> None:
    queries = pd.Index(frame["query_id"].unique())
    unranked = queries[~queries.isin(table["query_id"])]
    if len(unranked):
        row = int(np.flatnonzero((frame["query_id"] == unranked[0]).to_numpy())[0])
        raise InvalidInput("model_file", f"the predictions file ranks nothing for {len(unranked)} quer(ies) {where}, "
                                         f"e.g. query_id={_plain(unranked[0])!r} (dataset row {row + 1})")


def _check_every_example_predicted(table: pd.DataFrame, frame: pd.DataFrame, ids: list[str], where: str) -> None:
    if len(ids) == 1:  # a hash lookup of one column: no joined frame of every dataset row
        covered = _isin(frame[ids[0]], table[ids[0]])
    else:
        covered = frame[ids].merge(table[ids], on=ids, how="left", indicator=True)["_merge"].to_numpy() == "both"
    if not covered.all():
        row = int(np.flatnonzero(~covered)[0])
        raise InvalidInput("model_file", f"the predictions file has no row for {int((~covered).sum())} example(s) {where}, "
                                         f"e.g. {_plain_ids(_ids_at(frame, ids, row))} (dataset row {row + 1})")


def _isin(values: pd.Series, candidates: pd.Series) -> np.ndarray:
    """``values.isin(candidates)`` as a bool array, by Arrow's hash lookup where the types allow: pandas'
    ``isin`` on Arrow-backed text goes through Python objects (10M ids: minutes and gigabytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.is_in(pa.array(values), value_set=pa.array(candidates)).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return values.isin(candidates).to_numpy()


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _ids_at(table: pd.DataFrame, ids: list[str], row: int) -> dict:
    """The id values of one row, each in its column's own type (``iloc`` on a row mixes them: 7 -> 7.0)."""
    return {c: _plain(table[c].iloc[row]) for c in ids}


def _plain_ids(ids: dict) -> str:
    return ", ".join(f"{k}={_plain(v)!r}" for k, v in ids.items())


def _check_id_column(table: pd.DataFrame, frame: pd.DataFrame, column: str, where: str) -> None:
    values = table[column]
    null = values.isna().to_numpy()
    if null.any():
        raise InvalidInput("model_file", f"the predictions file's id column {column!r} is empty at row {int(np.flatnonzero(null)[0]) + 1}")
    # ids join on equality: 7 (a number) never matches "7" (text), so a file whose ids have another type than
    # the dataset's would cover nothing (and pandas refuses to join the two)
    expected_numeric = pd.api.types.is_numeric_dtype(frame[column])
    if pd.api.types.is_numeric_dtype(values) != expected_numeric:
        kind = "numbers" if expected_numeric else "text"
        wrong = values.map(lambda v: isinstance(v, (int, float, np.number)) != expected_numeric).to_numpy()
        row = int(np.flatnonzero(wrong)[0]) if wrong.any() else 0
        raise InvalidInput("model_file", f"the predictions file's id column {column!r} must hold {kind} like the dataset's ids {where}; "
                                         f"row {row + 1} holds {_plain(values.iloc[row])!r} (dtype {values.dtype})")


def _check_finite_column(table: pd.DataFrame, column: str) -> None:
    values = table[column]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()).to_numpy() | values.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy()
        row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise InvalidInput("model_file", f"the predictions file's column {column!r} must be numbers (dtype {values.dtype}); "
                                         f"row {row + 1} holds {_plain(values.iloc[row])!r}")
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("model_file", f"the predictions file's column {column!r} holds {array[row]} at row {row + 1}: "
                                         f"scores and probabilities must be finite numbers ({int(bad.sum())} row(s) are not)")


def _check_text_column(table: pd.DataFrame, column: str) -> None:
    bad = table[column].map(lambda v: not isinstance(v, str)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = table[column].iloc[row]
        what = "empty (null)" if value is None or (isinstance(value, float) and np.isnan(value)) else f"not text ({_plain(value)!r})"
        raise InvalidInput("model_file", f"the predictions file's column {column!r} is {what} at row {row + 1}: "
                                         "every prediction of a generation file is a text (a CSV column of numbers is read "
                                         "as numbers; write Parquet or JSONL strings)")
