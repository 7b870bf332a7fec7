"""The metric service: from a dataset version and a prediction set to a metric table.

A metric table has one row per (metric, slice): the whole dataset is the slice ``("", "")``; every slice
column of the suite adds one row per value, with its example count and a ``flagged`` mark when the slice
is smaller than the suite's ``min_slice_size`` (reported, but not to be trusted on its own).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.datasets.validation import all_distinct
from eval_platform.metrics.multiclass import multilabel_indicator, multilabel_label_set
from eval_platform.metrics.perplexity import PERPLEXITY_SOURCES
from eval_platform.metrics.ratings import RatingScale
from eval_platform.suites.definition import SuiteDefinition

ALL = ""

METRIC_TABLE_COLUMNS = (
    "metric", "metric_key", "params", "direction", "slice_column", "slice_value", "value", "n_examples", "flagged",
)


def evaluation_frame(dataset: pd.DataFrame, predictions: pd.DataFrame, schema: dict, task_type: str) -> pd.DataFrame:
    """The dataset joined to its predictions on the id columns; every dataset row must have a prediction."""
    ids = schema["id_columns"]
    if task_type in ("ranking", "search"):
        return _ranking_frame(dataset, predictions, schema)
    if task_type in ("binary_classification", "multiclass_classification", "multilabel_classification", "generation"):
        missing = [c for c in ids if c not in predictions.columns]
        if missing:
            raise InvalidInput("predictions", f"missing id column(s) {missing}")
        joined = _aligned_join(dataset, predictions, ids)
        if joined is None:
            joined = dataset.merge(predictions, on=ids, how="left", validate="one_to_one", suffixes=("", "_pred"))
        value_column = "prediction" if task_type == "generation" else "score" if "score" in predictions.columns else "prediction"
        if value_column not in joined.columns:  # a file of proba_<class> columns only: its first column says "predicted"
            value_column = next((c for c in predictions.columns if str(c).startswith("proba_")), value_column)
        unpredicted = joined[value_column].isna()
        if unpredicted.any():
            first = joined.loc[unpredicted, ids].iloc[0].to_dict()
            raise InvalidInput("predictions", f"{int(unpredicted.sum())} example(s) have no prediction, e.g. {first}")
        return joined
    raise InvalidInput("task_type", f"no evaluation frame for task type {task_type!r} yet")


def _aligned_join(dataset: pd.DataFrame, predictions: pd.DataFrame, ids: list[str]) -> pd.DataFrame | None:
    """The left join of predictions made row by row from the dataset (same ids in the same order, the
    common case), without the hash join: the merge of 10M string ids builds hash tables and copies every
    column. None when the rows are not aligned (a predictions file in its own order): the caller merges."""
    if len(dataset) != len(predictions) or not all(dataset[c].reset_index(drop=True).equals(predictions[c].reset_index(drop=True))
                                                    for c in ids):
        return None
    if not all_distinct(dataset, ids):
        return None  # the merge's one_to_one validation names the duplicates
    extra = predictions.drop(columns=ids).reset_index(drop=True)
    extra.columns = [f"{c}_pred" if c in dataset.columns else c for c in extra.columns]
    return pd.concat([dataset.reset_index(drop=True), extra], axis=1)


def _ranking_frame(dataset: pd.DataFrame, predictions: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """Judgments and the run in one frame: the outer join on (query, item). Rows with a ``score`` are the
    run (unjudged items have relevance ``NaN``: not relevant); rows with a relevance are the qrels
    (judged items the run did not retrieve have score ``NaN``). Query-level columns of the dataset are
    spread to every row of their query so slices select whole queries."""
    ids = schema["id_columns"]
    for column in (*ids, "score"):
        if column not in predictions.columns:
            raise InvalidInput("predictions", f"a ranking run needs column {column!r}")
    if predictions["score"].isna().any():
        raise InvalidInput("predictions", "the run has missing scores")
    extra = [c for c in predictions.columns if c not in (*ids, "score") and c not in dataset.columns]
    joined = dataset.merge(predictions[[*ids, "score", *extra]], on=ids, how="outer", indicator="_side")
    for column in schema.get("slice_columns", []):
        per_query = dataset.groupby("query_id")[column].first()
        joined[column] = joined["query_id"].map(per_query)
    return joined


def metric_columns(frame: pd.DataFrame, schema: dict, task_type: str) -> dict[str, np.ndarray]:
    """The arrays the metric functions read (see :data:`eval_platform.metrics.base.Columns`)."""
    if task_type in ("ranking", "search"):
        run = frame[frame["score"].notna()]
        qrels = frame[frame["_side"] != "right_only"]
        columns = {"run_query": run["query_id"].to_numpy(), "run_doc": run["doc_id"].to_numpy(),
                   "run_score": run["score"].to_numpy(np.float64), "qrels_query": qrels["query_id"].to_numpy(),
                   "qrels_doc": qrels["doc_id"].to_numpy(), "qrels_relevance": qrels[schema["label_column"]].to_numpy(np.int64)}
        if "latency" in frame.columns:
            columns["latency"] = run["latency"].to_numpy(np.float64)
        # catalog coverage is measured against every item the eval knows: judged or retrieved
        columns["catalog"] = np.unique(frame["doc_id"].to_numpy())
        return columns
    if task_type == "generation":
        columns = {"prediction": frame["prediction"].to_numpy(dtype=object),
                   "reference": frame[schema["label_column"]].to_numpy(dtype=object)}
        if "judge_score" in frame.columns:
            columns["judge_score"] = frame["judge_score"].to_numpy(np.float64)
        if "judge_stratum" in frame.columns:  # the judge judged a stratified sample (see metrics.judge_defs)
            columns["judge_stratum"] = frame["judge_stratum"].to_numpy(dtype=object)
            columns["judge_sampled"] = frame["judge_sampled"].to_numpy(dtype=bool)
        if "judge_preference" in frame.columns:
            columns["judge_preference"] = frame["judge_preference"].to_numpy(np.float64)
        columns.update(logprob_columns(frame))
        columns.update(embedding_columns(frame))
        columns.update(human_rating_columns(frame, schema))
        return columns
    if task_type == "binary_classification":
        return {"label": frame[schema["label_column"]].to_numpy(np.int64), "score": frame["score"].to_numpy(np.float64),
                **human_rating_columns(frame, schema)}
    if task_type == "multiclass_classification":
        return multiclass_columns(frame, schema)
    if task_type == "multilabel_classification":
        return multilabel_columns(frame, schema)
    raise InvalidInput("task_type", f"no metric columns for task type {task_type!r} yet")


def multiclass_columns(frame: pd.DataFrame, schema: dict) -> dict[str, np.ndarray]:
    """A multi-class eval's arrays: ``label``, the ``proba_<class>`` matrix and the ``classes`` it scores."""
    proba_columns = [c for c in frame.columns if c.startswith("proba_")]
    if not proba_columns:
        raise InvalidInput("predictions", "multi-class predictions need proba_<class> columns")
    labels = frame[schema["label_column"]].to_numpy()
    classes = _class_values([c.removeprefix("proba_") for c in proba_columns], labels)
    proba = frame[proba_columns].to_numpy(np.float64)
    # one row of classes per example, so resampling rows keeps them intact (a view, no copy)
    return {"label": labels, "proba": proba, "classes": np.broadcast_to(classes, proba.shape),
            **human_rating_columns(frame, schema)}


def multilabel_columns(frame: pd.DataFrame, schema: dict) -> dict[str, np.ndarray]:
    """A multi-label eval's arrays: ``labels``, the 0/1 indicator ``(n, n_labels)`` of each row's list of labels,
    ``proba`` the ``proba_<label>`` columns in the same order, and ``classes`` the label names (broadcast to
    every row, as multi-class). The lists become the indicator once here, not in every bootstrap resample."""
    proba_columns = [c for c in frame.columns if isinstance(c, str) and c.startswith("proba_")]
    if not proba_columns:
        raise InvalidInput("predictions", "multi-label predictions need one proba_<label> column per label")
    rows = frame[schema["label_column"]].to_numpy(dtype=object)
    present = np.asarray(multilabel_label_set(rows), dtype=object)
    classes = _class_values([c.removeprefix("proba_") for c in proba_columns], present)
    unscored = [label for label in present.tolist() if label not in set(classes.tolist())]
    if unscored:
        raise InvalidInput("predictions", f"no proba_<label> column for label(s) {unscored}; the columns are {proba_columns}")
    proba = frame[proba_columns].to_numpy(np.float64)
    return {"labels": multilabel_indicator(rows, classes), "proba": proba, "classes": np.broadcast_to(classes, proba.shape)}


def logprob_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The per-example token log-probability totals the perplexity metrics read, where the predictions have them."""
    out = {}
    for sum_column, count_column in PERPLEXITY_SOURCES.values():
        if sum_column in frame.columns and count_column in frame.columns:
            out[sum_column] = frame[sum_column].to_numpy(np.float64)
            out[count_column] = frame[count_column].to_numpy(np.float64)
    return out


#: Embeddings of a generation eval, one numeric column per dimension (``<side>_emb_0``, ``<side>_emb_1``...):
#: the generated output's in the predictions (``prediction_emb_``), the reference's and the prompt's in the
#: dataset (``reference_emb_``, ``prompt_emb_``); read by the FID and CLIP-score metrics
#: (:mod:`eval_platform.metrics.embeddings`) as 2-D arrays ``prediction_embedding`` etc.
EMBEDDING_SIDES = ("prediction", "reference", "prompt")


def embedding_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for side in EMBEDDING_SIDES:
        prefix = f"{side}_emb_"
        found = [c for c in frame.columns if isinstance(c, str) and c.startswith(prefix)]
        if not found:
            continue
        suffixes = [c.removeprefix(prefix) for c in found]
        if not all(x.isdigit() for x in suffixes) or sorted(int(x) for x in suffixes) != list(range(len(found))):
            raise InvalidInput(f"{prefix}*", f"embedding columns must be {prefix}0 to {prefix}{len(found) - 1}, got {sorted(found)}")
        ordered = sorted(found, key=lambda c: int(c.removeprefix(prefix)))
        out[f"{side}_embedding"] = frame[ordered].to_numpy(np.float64)
    return out


def human_rating_columns(frame: pd.DataFrame, schema: dict) -> dict[str, np.ndarray]:
    """A ratings dataset's human ratings (:mod:`eval_platform.metrics.ratings`): ``human_ratings``, the encoded
    examples x raters table (NaN: not rated), and ``human_rating_scale``, the scale's JSON on every row (so
    resampled and sliced rows keep it, as multi-class ``classes``). Nothing for a dataset without raters."""
    ratings = schema.get("ratings")
    if not ratings:
        return {}
    scale = RatingScale.from_raw(ratings["scale"])
    table = scale.encode(frame[ratings["columns"]], raters=ratings["columns"])
    return {"human_ratings": table, "human_rating_scale": np.broadcast_to(np.asarray(json.dumps(scale.as_json())), (len(frame),))}


def _class_values(names: list[str], labels: np.ndarray) -> np.ndarray:
    """Class labels named by the ``proba_<class>`` columns, in the labels' own type where they parse."""
    by_text = {str(label): label for label in pd.unique(labels)}
    return np.asarray([by_text.get(name, name) for name in names], dtype=object if labels.dtype == object else None)


@dataclass
class MetricTable:
    """A suite's metrics computed on one frame: the table (overall and per slice) and what it took."""

    table: pd.DataFrame
    seconds: float

    def overall(self) -> dict[str, float | None]:
        rows = self.table[self.table["slice_column"] == ALL]
        return {row.metric: _json_number(row.value) for row in rows.itertuples()}

    def infinities(self) -> dict[str, str]:
        """Overall values that are ``+inf``/``-inf`` (``"inf"``/``"-inf"``): :meth:`overall` stores them as
        ``None`` (JSON has no infinity), the same as undefined; this tells the two apart."""
        rows = self.table[self.table["slice_column"] == ALL]
        return {row.metric: ("inf" if row.value > 0 else "-inf") for row in rows.itertuples()
                if row.value is not None and math.isinf(row.value)}

    def counts(self) -> dict[str, int]:
        rows = self.table[self.table["slice_column"] == ALL]
        return {row.metric: int(row.n_examples) for row in rows.itertuples()}


def _json_number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


#: Task types whose metric columns are one value per row: a slice's columns are the whole frame's arrays
#: indexed by the slice's rows (ranking builds its columns from query-level joins, generation from texts).
ROW_ALIGNED_TASKS = ("binary_classification", "multiclass_classification", "multilabel_classification")


def _slice_columns(suite: SuiteDefinition, frame: pd.DataFrame, schema: dict, task_type: str):
    """``(slice_column, slice_value, n_examples, metric columns)`` for the whole frame, then each slice value.

    Row-aligned tasks take each slice's rows out of the arrays the whole frame's metrics read (a 10M-row
    frame with a 4-value slice is not copied, every column of it, into 4 sub-frames); the others group the
    frame as before."""
    whole = metric_columns(frame, schema, task_type)
    yield ALL, ALL, len(frame), whole
    for column in suite.slices:
        if task_type in ROW_ALIGNED_TASKS:
            rows = pd.Series(np.arange(len(frame)))
            for value, positions in rows.groupby(frame[column].reset_index(drop=True), sort=True, dropna=False):
                index = positions.to_numpy()
                yield column, str(value), len(index), {name: _rows(array, index) for name, array in whole.items()}
        else:
            for value, part in frame.groupby(column, sort=True, dropna=False):
                yield column, str(value), len(part), metric_columns(part, schema, task_type)


def _rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]``, except that a row broadcast to every example (multi-class ``classes``) stays a
    broadcast view rather than becoming an n x k copy."""
    if array.ndim and array.strides[0] == 0 and len(array):
        return np.broadcast_to(array[0], (len(index), *array.shape[1:]))
    return array[index]


def compute_metric_table(suite: SuiteDefinition, frame: pd.DataFrame, schema: dict, task_type: str) -> MetricTable:
    """Every metric of the suite on the whole frame and on each slice value."""
    started = time.perf_counter()
    missing = [c for c in suite.slices if c not in frame.columns]
    if missing:
        raise InvalidInput("slices", f"slice column(s) {missing} are not in the dataset")
    rows = []
    for slice_column, slice_value, n, columns in _slice_columns(suite, frame, schema, task_type):
        for metric in suite.metrics:
            if metric.definition.comparison_only:
                continue  # defined only against a baseline: computed by the comparison
            try:
                value = float(metric.definition.compute(columns, **metric.params))
            except InvalidInput:
                if slice_column == ALL:
                    raise
                value = float("nan")  # e.g. an empty or one-example slice: reported as undefined
            rows.append({
                "metric": metric.name, "metric_key": metric.definition.key,
                "params": json.dumps(metric.params, sort_keys=True), "direction": metric.definition.direction,
                "slice_column": slice_column, "slice_value": slice_value, "value": value, "n_examples": n,
                "flagged": slice_column != ALL and n < suite.min_slice_size,
            })
    table = pd.DataFrame(rows, columns=list(METRIC_TABLE_COLUMNS))
    return MetricTable(table=table, seconds=time.perf_counter() - started)


def metric_estimates(suite: SuiteDefinition, frame: pd.DataFrame, schema: dict, task_type: str) -> dict[str, dict]:
    """For every metric of the suite with its own interval (``MetricDefinition.estimate``: the human-rating
    metrics), the estimate with its interval overall and per slice value, as recorded in ``results["estimates"]``
    (where a gate rule on the metric needs the interval defined: undefined values are None)."""
    estimated = [m for m in suite.metrics if m.definition.estimate is not None]
    if not estimated:
        return {}
    out: dict[str, dict] = {m.name: {"slices": {}} for m in estimated}
    for slice_column, slice_value, _, columns in _slice_columns(suite, frame, schema, task_type):
        for metric in estimated:
            estimate = metric.definition.estimate
            assert estimate is not None  # the metrics were chosen for it
            try:
                record = _estimate_record(estimate(columns, **metric.params))
            except InvalidInput:
                if slice_column == ALL:
                    raise
                record = {"value": None, "ci_low": None, "ci_high": None}  # e.g. a slice without two ratings
            if slice_column == ALL:
                out[metric.name].update(record)
            else:
                out[metric.name]["slices"][f"{slice_column}={slice_value}"] = record
    return out


def _estimate_record(estimate) -> dict:
    return {"value": _json_number(estimate.value), "ci_low": _json_number(estimate.ci_low), "ci_high": _json_number(estimate.ci_high),
            "confidence": estimate.confidence, "n_units": estimate.n_units, "method": estimate.method}
