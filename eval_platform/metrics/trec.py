"""TREC files and trec_eval measure names: what ``evalp score ranking --qrels F --run F --metric M`` reads.

* **qrels**: ``query_id iteration doc_id relevance`` per line (the iteration column is ignored);
* **run**: ``query_id Q0 doc_id rank score tag`` per line (``Q0``, ``rank`` and ``tag`` are ignored: like
  trec_eval, documents are ranked by score, ties broken by document id, see
  :mod:`eval_platform.metrics.ranking`). Text after the sixth field is ignored, as trec_eval ignores it
  (its own test file ``results.trunc`` has such lines); fewer than six fields is an error.

Fields are separated by runs of whitespace; blank lines are skipped. Parsing is vectorised (pandas'
C reader); only when a file is malformed is it scanned line by line, to name the first bad line in the
:class:`~eval_platform.core.errors.InvalidInput` (``field`` is ``"<path> line <n>"``). Malformed means: a
wrong number of columns, a relevance that is not an integer, a score that is not a number or is NaN.
Infinite scores are accepted. Negative relevance (TREC's "junk" judgments) is read as written and scored
as trec_eval scores it: not relevant, zero gain, and not judged non-relevant either (bpref skips it).
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


def _read_leading_fields(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The first ``len(columns)`` fields of every non-blank line, ignoring the rest (trec_eval reads a run
    line so); a shorter line keeps an empty last field, which the caller reports. Line by line: only used
    when some line has more fields than ``columns``."""
    width = len(columns)
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line in handle:
            stripped = line.strip(_BLANKS)
            if stripped:
                fields = _FIELD_SEPARATOR.split(stripped, maxsplit=width)[:width]
                rows.append(fields + [""] * (width - len(fields)))
    return pd.DataFrame(rows, columns=list(columns), dtype=str)  # the dtype pd.read_csv(dtype=str) gives


def _read_columns(path: str | Path, columns: tuple[str, ...], kind: str, extra_fields: bool = False) -> pd.DataFrame:
    """All fields as strings; missing trailing fields are NaN; too many fields raise InvalidInput, unless
    ``extra_fields``, when they are ignored."""
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
        if extra_fields:
            try:
                frame = _read_leading_fields(path, columns)
            except UnicodeDecodeError as error:
                raise InvalidInput(str(path), f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
            return _refuse_short_lines(path, frame, columns)
        number, fields = _first_line_with_too_many_fields(path, expected)
        raise InvalidInput(f"{path} line {number}", f"expected {expected} columns ({' '.join(columns)}), found {fields}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(str(path), f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if frame.empty:
        raise InvalidInput(str(path), f"{kind} file is empty")
    return _refuse_short_lines(path, frame, columns)


def _refuse_short_lines(path: Path, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` unless a line had too few fields, refused naming it."""
    expected = len(columns)
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
    """A TREC run file as a DataFrame ``query_id`` (str), ``doc_id`` (str), ``score`` (float64).

    Fields after the sixth (``tag``) are ignored, as trec_eval ignores them."""
    if Path(path).is_file():
        fast = _read_fast(Path(path), RUN_COLUMNS, "score", np.float64)
        if fast is not None:
            return fast
    frame = _read_columns(path, RUN_COLUMNS, "run", extra_fields=True)
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
    "ndcg_uncut": ranking.ndcg_uncut,
    "map_at_k": ranking.map_at_k,
    "bpref": ranking.bpref,
    "set_precision": ranking.set_precision,
    "set_recall": ranking.set_recall,
    "set_f1": ranking.set_f1,
    "num_rel": ranking.num_relevant,
    "num_ret": ranking.num_retrieved,
    "num_rel_ret": ranking.num_relevant_retrieved,
}

#: measures whose ``all`` value is the sum over queries, as trec_eval prints it (the others are means)
SUMMED = frozenset({"num_rel", "num_ret", "num_rel_ret"})

_PLAIN = {
    "map": "map",
    "recip_rank": "mrr",
    "mrr": "mrr",
    "rprec": "r_precision",
    "r_precision": "r_precision",
    "ndcg": "ndcg_uncut",
    "bpref": "bpref",
    "set_p": "set_precision",
    "set_recall": "set_recall",
    "set_f": "set_f1",
    "set_f_1": "set_f1",
    "set_f.1": "set_f1",
    "num_rel": "num_rel",
    "num_ret": "num_ret",
    "num_rel_ret": "num_rel_ret",
}
_CUT = [  # (pattern, catalog metric); the cut-off is the number
    (re.compile(r"ndcg_cut[._](\d+)|ndcg@(\d+)"), "ndcg"),
    (re.compile(r"map_cut[._](\d+)|map@(\d+)"), "map_at_k"),
    (re.compile(r"p[._](\d+)|p@(\d+)|precision@(\d+)"), "precision_at_k"),
    (re.compile(r"recall[._](\d+)|recall@(\d+)"), "recall_at_k"),
    (re.compile(r"success[._](\d+)|success@(\d+)"), "success_at_k"),
    (re.compile(r"hit@(\d+)"), "hit_at_k"),
]
MEASURE_FORMS = (
    "map, map_cut_K (map@K), recip_rank (mrr), Rprec (r_precision), ndcg (uncut), ndcg_cut_K (ndcg@K), "
    "P_K (p@K, precision@K), recall_K (recall@K), success_K (success@K), hit@K, bpref, set_P, set_recall, "
    "set_F, num_rel, num_ret, num_rel_ret"
)


def parse_measure(name: str) -> tuple[str, dict[str, int]]:
    """A trec_eval measure name or alias -> ``(catalog metric name, params)``.

    ``map`` -> ``("map", {})``, ``recip_rank``/``mrr`` -> ``("mrr", {})``, ``ndcg_cut_10``/``ndcg@10`` ->
    ``("ndcg", {"k": 10})``, ``P_10``/``p@10`` -> ``("precision_at_k", {"k": 10})``, ``recall_100``/
    ``recall@100`` -> ``("recall_at_k", {"k": 100})``, ``Rprec`` -> ``("r_precision", {})``,
    ``success_1``/``success@1`` -> ``("success_at_k", {"k": 1})``, ``hit@1`` -> ``("hit_at_k", {"k": 1})``,
    ``map_cut_10``/``map@10`` -> ``("map_at_k", {"k": 10})``, ``ndcg`` -> ``("ndcg_uncut", {})`` (trec_eval's
    ``ndcg`` is uncut, which is not ``ndcg@10``), ``bpref`` -> ``("bpref", {})``, ``set_P``/``set_recall``/
    ``set_F`` -> ``("set_precision" | "set_recall" | "set_f1", {})`` (``set_F`` with beta 1 only, also written
    ``set_F.1``), ``num_rel``/``num_ret``/``num_rel_ret`` -> themselves (counts, summed over queries).
    Case-insensitive; ``.`` may replace ``_`` as in pytrec_eval.
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
    (as :func:`read_qrels` / :func:`read_run` return). Negative relevance is scored as trec_eval
    scores it (not relevant, and not judged non-relevant either). Returns ``{"mean": {measure: value},
    "num_queries": n}`` with the measures keyed as given, plus
    ``"per_query": {measure: {query_id: value}}`` when ``per_query`` is true. Means are over the queries
    in both run and qrels; ``nan`` when there is none. ``num_rel``, ``num_ret`` and ``num_rel_ret`` are
    counts: their ``"mean"`` entry is their *sum* over those queries (0 when there is none), as trec_eval's
    ``all`` line reports them.
    """
    measures = list(dict.fromkeys(measures))
    if not measures:
        raise InvalidInput("metric", f"name at least one measure ({MEASURE_FORMS})")
    parsed = {measure: parse_measure(measure) for measure in measures}
    for frame, name, needed in ((qrels_df, "qrels", ("query_id", "doc_id", "relevance")), (run_df, "run", ("query_id", "doc_id", "score"))):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise InvalidInput(name, f"missing column(s) {', '.join(missing)}")
    data = ranking.prepare_ranking(
        run_df["query_id"], run_df["doc_id"], run_df["score"].to_numpy(), qrels_df["query_id"], qrels_df["doc_id"],
        np.asarray(qrels_df["relevance"]), keep_negative=True,  # TREC "junk" judgments: see the module docs
    )
    result: dict = {"mean": {}, "num_queries": data.num_queries}
    if per_query:
        result["per_query"] = {}
    for measure, (metric, params) in parsed.items():
        query_ids, values = PER_QUERY[metric](data, **params)
        result["mean"][measure] = float(values.sum()) if metric in SUMMED else ranking.mean_over_queries((query_ids, values))
        if per_query:
            result["per_query"][measure] = {str(q): float(v) for q, v in zip(query_ids.tolist(), values.tolist(), strict=True)}
    return result
