"""ROC and precision-recall curve tables for storage, and their PNG rendering for the Dagster UI.

A curve table is a pandas DataFrame in decreasing-threshold order whose every row is an exact point of the
curve (never an interpolated one):

* ROC: ``threshold``, ``fpr``, ``tpr``. The first row is ``(inf, 0, 0)`` (flag nothing, scikit-learn's
  ``roc_curve`` convention) and the last ``(min score, 1, 1)``.
* PR: ``threshold``, ``recall``, ``precision``. The first row is ``(inf, 0, 1)`` (scikit-learn's
  ``precision_recall_curve`` end point, with the "flag nothing" threshold) and the last is
  ``(min score, 1, prevalence)``.

A curve over millions of distinct scores has millions of points; :func:`roc_curve_table` and
:func:`pr_curve_table` keep at most ``max_points`` of them, spread evenly along the curve's length (the
L1 arc length in the unit square, so steep and flat parts are both drawn) and always keep the first and
last rows exactly. ``table.attrs`` records ``n_points`` (before downsampling), ``n_positives``,
``n_negatives`` and the area (``roc_auc`` / ``average_precision``, computed on the full curve).

When a curve is undefined (ROC without both classes, PR without positives) the undefined coordinate is
``nan``, as the metrics are.

:func:`curves_png` draws one or more ROC/PR tables with matplotlib's Agg canvas directly (no pyplot, no
display, no global backend switch, safe in a worker thread) and returns PNG bytes;
:func:`png_markdown` wraps them as a markdown image for ``dagster.MetadataValue.md``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import classification as clf

DEFAULT_MAX_POINTS = 1000


def _check_max_points(max_points) -> int:
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer) or max_points < 2:
        raise InvalidInput("max_points", f"must be an integer >= 2 (the two end points), got {max_points!r}")
    return int(max_points)


def downsample_indices(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` increasing row indices of the polyline ``(x, y)``, including the first and
    last, chosen at evenly spaced L1 arc lengths (``nan`` steps count as zero length).
    """
    max_points = _check_max_points(max_points)
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    step = np.nan_to_num(np.abs(np.diff(x))) + np.nan_to_num(np.abs(np.diff(y)))
    arc = np.r_[0.0, np.cumsum(step)]
    if arc[-1] > 0:
        index = np.searchsorted(arc, np.linspace(0.0, arc[-1], max_points), side="left")
    else:  # a degenerate curve: evenly by row
        index = np.linspace(0, n - 1, max_points).round().astype(np.int64)
    index = np.unique(np.clip(index, 0, n - 1))
    index[0], index[-1] = 0, n - 1  # already so; explicit because the end points are the contract
    return np.unique(index)


def _finish(table: pd.DataFrame, max_points: int, x: str, y: str, attrs: dict) -> pd.DataFrame:
    keep = downsample_indices(table[x].to_numpy(), table[y].to_numpy(), max_points)
    out = table.iloc[keep].reset_index(drop=True)
    out.attrs.update(attrs, n_points=len(table))
    return out


def roc_curve_table(y_true, y_score, max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
    """The ROC curve (``threshold``, ``fpr``, ``tpr``), one row per distinct score plus the ``inf`` start,
    downsampled to at most ``max_points`` rows keeping both end points.

    Equal to ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` before downsampling.
    """
    max_points = _check_max_points(max_points)
    fps, tps, thresholds = clf.binary_curve(y_true, y_score)
    positives, negatives = int(tps[-1]), int(fps[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.r_[0.0, fps / negatives] if negatives else np.full(fps.size + 1, np.nan)
        tpr = np.r_[0.0, tps / positives] if positives else np.full(tps.size + 1, np.nan)
    table = pd.DataFrame({"threshold": np.r_[np.inf, thresholds], "fpr": fpr, "tpr": tpr})
    attrs = {"n_positives": positives, "n_negatives": negatives, "roc_auc": clf._roc_auc_from_curve(fps, tps)}
    return _finish(table, max_points, "fpr", "tpr", attrs)


def pr_curve_table(y_true, y_score, max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
    """The precision-recall curve (``threshold``, ``recall``, ``precision``) by decreasing threshold,
    starting at ``(inf, 0, 1)``, downsampled to at most ``max_points`` rows keeping both end points.

    Equal to ``sklearn.metrics.precision_recall_curve(..., drop_intermediate=False)`` read backwards
    (except that ``recall`` is ``nan``, not 1, without positives).
    """
    max_points = _check_max_points(max_points)
    fps, tps, thresholds = clf.binary_curve(y_true, y_score)
    positives, negatives = int(tps[-1]), int(fps[-1])
    precision = tps / (tps + fps)  # every curve point has at least one example at or above it
    recall = tps / positives if positives else np.full(tps.size, np.nan)
    table = pd.DataFrame({
        "threshold": np.r_[np.inf, thresholds],
        "recall": np.r_[0.0 if positives else np.nan, recall],
        "precision": np.r_[1.0, precision],
    })
    attrs = {"n_positives": positives, "n_negatives": negatives,
             "average_precision": clf._average_precision_from_curve(fps, tps)}
    return _finish(table, max_points, "recall", "precision", attrs)


def _named(curves, kind: str) -> dict[str, pd.DataFrame]:
    if curves is None:
        return {}
    if isinstance(curves, pd.DataFrame):
        curves = {"": curves}
    if not isinstance(curves, Mapping):
        raise InvalidInput(kind, "must be a curve table or a mapping name -> curve table")
    need = {"roc": ("fpr", "tpr"), "pr": ("recall", "precision")}[kind]
    for name, table in curves.items():
        if not isinstance(table, pd.DataFrame) or not set(need) <= set(table.columns):
            raise InvalidInput(kind, f"curve {name!r} must be a DataFrame with columns {list(need)}")
    return dict(curves)


def _label(name: str, table: pd.DataFrame, area_key: str, area_name: str) -> str:
    area = table.attrs.get(area_key)
    text = name or ""
    if area is not None and np.isfinite(area):
        text = f"{text} ({area_name} {area:.4f})" if text else f"{area_name} {area:.4f}"
    return text or "model"


def curves_png(roc=None, pr=None, *, title: str | None = None, dpi: int = 100, size: tuple[float, float] = (5.0, 4.5)) -> bytes:
    """PNG bytes of the ROC and/or PR curves side by side.

    ``roc`` and ``pr`` are a curve table or a mapping ``name -> table`` (e.g. candidate and baseline,
    drawn on the same axes). The ROC panel has the chance diagonal, the PR panel the prevalence of the
    first curve as its no-skill line. Undefined curves (all ``nan``) are drawn as an empty panel titled so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(kind, curves) for kind, curves in (("roc", _named(roc, "roc")), ("pr", _named(pr, "pr"))) if curves]
    if not panels:
        raise InvalidInput("curves", "give at least one ROC or PR curve table to draw")
    figure = Figure(figsize=(size[0] * len(panels), size[1]), dpi=dpi)
    FigureCanvasAgg(figure)
    for position, (kind, curves) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), position)
        drawn = False
        for name, table in curves.items():
            if kind == "roc":
                x, y = table["fpr"].to_numpy(), table["tpr"].to_numpy()
                label = _label(name, table, "roc_auc", "AUC")
            else:
                x, y = table["recall"].to_numpy(), table["precision"].to_numpy()
                label = _label(name, table, "average_precision", "AP")
            finite = np.isfinite(x) & np.isfinite(y)
            if finite.any():
                axes.plot(x[finite], y[finite], drawstyle="default" if kind == "roc" else "steps-pre",
                          linewidth=1.5, label=label)
                drawn = True
        if kind == "roc":
            axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
            axes.set_xlabel("False positive rate")
            axes.set_ylabel("True positive rate")
            axes.set_title("ROC" if drawn else "ROC (undefined: needs both classes)")
        else:
            first = next(iter(curves.values()))
            positives, negatives = first.attrs.get("n_positives"), first.attrs.get("n_negatives")
            if positives and negatives is not None:
                prevalence = positives / (positives + negatives)
                axes.axhline(prevalence, linestyle="--", color="grey", linewidth=0.8)
            axes.set_xlabel("Recall")
            axes.set_ylabel("Precision")
            axes.set_title("Precision-recall" if drawn else "Precision-recall (undefined: no positives)")
        axes.set_xlim(-0.01, 1.01)
        axes.set_ylim(-0.01, 1.01)
        axes.grid(True, linewidth=0.3)
        if drawn:
            axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str = "curves") -> str:
    """A markdown image with the PNG inlined as a data URI, for ``dagster.MetadataValue.md``."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InvalidInput("png", "is not PNG data")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
