"""TREC files and trec_eval measure names: what ``evalp score ranking --qrels F --run F --metric M`` reads.

* **qrels**: ``query_id iteration doc_id relevance`` per line (the iteration column is ignored);
* **run**: ``query_id Q0 doc_id rank score tag`` per line (``Q0``, ``rank`` and ``tag`` are ignored: like
  trec_eval, documents are ranked by score, ties broken by document id, see
  :mod:`eval_platform.metrics.ranking`).

Fields are separated by runs of whitespace; blank lines are skipped. Parsing is vectorised (pandas'
C reader); only when a file is malformed is it scanned line by line, to name the first bad line in the
:class:`~eval_platform.core.errors.InvalidInput` (``field`` is ``"<path> line <n>"``). Malformed means: a
wrong number of columns, a relevance that is not an integer, a score that is not a number or is NaN.
Infinite scores are accepted. Negative relevance (TREC's "junk" judgments) is read as written and scored
as trec_eval scores it: not relevant, zero gain.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import ranking

QRELS_COLUMNS = ("query_id", "iteration", "doc_id", "relevance")
RUN_COLUMNS = ("query_id", "q0", "doc_id", "rank", "score", "tag")


_BLANKS = " \t\r\n"  # what pandas' whitespace separator treats as blank
_FIELD_SEPARATOR = re.compile(r"[ \t]+")


def _line_of_row(path: Path, row: int) -> int:
    """1-based line number of the ``row``-th (0-based) non-blank line; only used to report an error."""
    seen = -1
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip(_BLANKS):
                seen += 1
                if seen == row:
                    return number
    return seen + 1  # pragma: no cover - the row always exists


def _first_line_with_too_many_fields(path: Path, expected: int) -> tuple[int, int]:
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip(_BLANKS)
            fields = len(_FIELD_SEPARATOR.split(stripped)) if stripped else 0
            if fields > expected:
                return number, fields
    return 0, 0  # pragma: no cover - only called after pandas saw such a line


_CSV_OPTIONS: dict[str, object] = {
    "sep": r"\s+",
    "header": None,
    "index_col": False,
    "keep_default_na": False,
    "na_values": [],
    "quoting": 3,  # csv.QUOTE_NONE: quotes are ordinary characters in TREC files
    "engine": "c",
    "encoding": "utf-8",
}


def _read_fast(path: Path, columns: tuple[str, ...], value: str, dtype) -> pd.DataFrame | None:
    """The common case in one typed pass; ``None`` when anything is off (the slow path then explains)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                names=list(columns),
                dtype={**{c: str for c in columns}, value: dtype},
                **_CSV_OPTIONS,
            )
    except (ValueError, OverflowError, pd.errors.ParserWarning):
        return None
    last = frame[columns[-1]]
    if frame.empty or bool((last.isna() | (last == "")).any()):
        return None
    if dtype is np.float64 and bool(np.isnan(frame[value].to_numpy()).any()):
        return None
    return frame[["query_id", "doc_id", value]].reset_index(drop=True)


def _read_columns(path: str | Path, columns: tuple[str, ...], kind: str) -> pd.DataFrame:
    """All fields as strings; missing trailing fields are NaN; too many fields raise InvalidInput."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(str(path), f"{kind} file does not exist")
    expected = len(columns)
    try:
        with warnings.catch_warnings():
            # pandas drops extra fields with a ParserWarning when index_col=False: make that an error
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, names=list(columns), dtype=str, **_CSV_OPTIONS)
    except pd.errors.EmptyDataError:
        raise InvalidInput(str(path), f"{kind} file is empty") from None
    except (pd.errors.ParserWarning, pd.errors.ParserError):
        number, fields = _first_line_with_too_many_fields(path, expected)
        raise InvalidInput(f"{path} line {number}", f"expected {expected} columns ({' '.join(columns)}), found {fields}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(str(path), f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if frame.empty:
        raise InvalidInput(str(path), f"{kind} file is empty")
    # a whitespace-separated field is never empty: an empty or NaN last column is a short line
    last = frame[columns[-1]]
    missing = (last.isna() | (last == "")).to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        found = int(sum(1 for value in frame.iloc[row] if isinstance(value, str) and value))
        raise InvalidInput(f"{path} line {_line_of_row(path, row)}", f"expected {expected} columns ({' '.join(columns)}), found {found}")
    return frame


def _bad(path: Path, frame: pd.DataFrame, mask: np.ndarray, column: str, problem: str) -> None:
    if mask.any():
        row = int(np.flatnonzero(mask)[0])
        value = frame[column].iloc[row]
        raise InvalidInput(f"{path} line {_line_of_row(path, row)}", problem.format(value=value))


def read_qrels(path: str | Path) -> pd.DataFrame:
    """A TREC qrels file as a DataFrame ``query_id`` (str), ``doc_id`` (str), ``relevance`` (int64)."""
    if Path(path).is_file():
        fast = _read_fast(Path(path), QRELS_COLUMNS, "relevance", np.int64)
        if fast is not None:
            return fast
    frame = _read_columns(path, QRELS_COLUMNS, "qrels")
    relevance = pd.to_numeric(frame["relevance"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(relevance) | (relevance != np.round(relevance))
    _bad(Path(path), frame, bad, "relevance", "relevance must be an integer, got {value!r}")
    return pd.DataFrame({"query_id": frame["query_id"], "doc_id": frame["doc_id"], "relevance": relevance.astype(np.int64)})


def read_run(path: str | Path) -> pd.DataFrame:
    """A TREC run file as a DataFrame ``query_id`` (str), ``doc_id`` (str), ``score`` (float64)."""
    if Path(path).is_file():
        fast = _read_fast(Path(path), RUN_COLUMNS, "score", np.float64)
        if fast is not None:
            return fast
    frame = _read_columns(path, RUN_COLUMNS, "run")
    text = frame["score"]
    score = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(score)
    if nan.any():
        row = int(np.flatnonzero(nan)[0])
        value = text.iloc[row]
        literal = str(value).strip().lower() in {"nan", "+nan", "-nan"}
        raise InvalidInput(f"{path} line {_line_of_row(Path(path), row)}", "score is NaN" if literal else f"score must be a number, got {value!r}")
    return pd.DataFrame({"query_id": frame["query_id"], "doc_id": frame["doc_id"], "score": score})


# --------------------------------------------------------------------------------------------------------
# Measure names.
# --------------------------------------------------------------------------------------------------------

#: per-query function of each catalog metric that ``score_ranking`` can compute
PER_QUERY = {
    "ndcg": ranking.ndcg_at_k,
    "map": ranking.average_precision,
    "mrr": ranking.reciprocal_rank,
    "precision_at_k": ranking.precision_at_k,
    "recall_at_k": ranking.recall_at_k,
    "r_precision": ranking.r_precision,
    "success_at_k": ranking.success_at_k,
    "hit_at_k": ranking.hit_at_k,
}

_PLAIN = {
    "map": "map",
    "recip_rank": "mrr",
    "mrr": "mrr",
    "rprec": "r_precision",
    "r_precision": "r_precision",
}
_CUT = [  # (pattern, catalog metric); the cut-off is the number
    (re.compile(r"ndcg_cut[._](\d+)|ndcg@(\d+)"), "ndcg"),
    (re.compile(r"p[._](\d+)|p@(\d+)|precision@(\d+)"), "precision_at_k"),
    (re.compile(r"recall[._](\d+)|recall@(\d+)"), "recall_at_k"),
    (re.compile(r"success[._](\d+)|success@(\d+)"), "success_at_k"),
    (re.compile(r"hit@(\d+)"), "hit_at_k"),
]
MEASURE_FORMS = (
    "map, recip_rank (mrr), Rprec (r_precision), ndcg_cut_K (ndcg@K), P_K (p@K, precision@K), "
    "recall_K (recall@K), success_K (success@K), hit@K"
)


def parse_measure(name: str) -> tuple[str, dict[str, int]]:
    """A trec_eval measure name or alias -> ``(catalog metric name, params)``.

    ``map`` -> ``("map", {})``, ``recip_rank``/``mrr`` -> ``("mrr", {})``, ``ndcg_cut_10``/``ndcg@10`` ->
    ``("ndcg", {"k": 10})``, ``P_10``/``p@10`` -> ``("precision_at_k", {"k": 10})``, ``recall_100``/
    ``recall@100`` -> ``("recall_at_k", {"k": 100})``, ``Rprec`` -> ``("r_precision", {})``,
    ``success_1``/``success@1`` -> ``("success_at_k", {"k": 1})``, ``hit@1`` -> ``("hit_at_k", {"k": 1})``.
    Case-insensitive; ``.`` may replace ``_`` as in pytrec_eval. Bare ``ndcg`` is refused: trec_eval's
    ``ndcg`` is uncut, which is not ``ndcg@10``.
    """
    text = name.strip().lower()
    if text in _PLAIN:
        return _PLAIN[text], {}
    for pattern, metric in _CUT:
        match = pattern.fullmatch(text)
        if match:
            k = int(next(group for group in match.groups() if group is not None))
            if k < 1:
                raise InvalidInput("metric", f"{name!r}: the cut-off must be >= 1")
            return metric, {"k": k}
    raise InvalidInput("metric", f"unknown ranking measure {name!r}; known forms: {MEASURE_FORMS}")


def score_ranking(qrels_df: pd.DataFrame, run_df: pd.DataFrame, measures: Iterable[str], per_query: bool = False) -> dict:
    """Score a run against qrels with trec_eval's semantics (see :mod:`eval_platform.metrics.ranking`).

    ``qrels_df`` has columns ``query_id, doc_id, relevance`` and ``run_df`` ``query_id, doc_id, score``
    (as :func:`read_qrels` / :func:`read_run` return). Negative relevance is scored as 0, as trec_eval
    does. Returns ``{"mean": {measure: value}, "num_queries": n}`` with the measures keyed as given, plus
    ``"per_query": {measure: {query_id: value}}`` when ``per_query`` is true. Means are over the queries
    in both run and qrels; ``nan`` when there is none.
    """
    measures = list(dict.fromkeys(measures))
    if not measures:
        raise InvalidInput("metric", f"name at least one measure ({MEASURE_FORMS})")
    parsed = {measure: parse_measure(measure) for measure in measures}
    for frame, name, needed in ((qrels_df, "qrels", ("query_id", "doc_id", "relevance")), (run_df, "run", ("query_id", "doc_id", "score"))):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise InvalidInput(name, f"missing column(s) {', '.join(missing)}")
    relevance = np.asarray(qrels_df["relevance"])
    if relevance.dtype.kind in "iu":
        relevance = np.maximum(relevance, 0)
    data = ranking.prepare_ranking(
        run_df["query_id"], run_df["doc_id"], run_df["score"].to_numpy(), qrels_df["query_id"], qrels_df["doc_id"], relevance
    )
    result: dict = {"mean": {}, "num_queries": data.num_queries}
    if per_query:
        result["per_query"] = {}
    for measure, (metric, params) in parsed.items():
        query_ids, values = PER_QUERY[metric](data, **params)
        result["mean"][measure] = ranking.mean_over_queries((query_ids, values))
        if per_query:
            result["per_query"][measure] = {str(q): float(v) for q, v in zip(query_ids.tolist(), values.tolist(), strict=True)}
    return result
