"""What a team with *aggregates-only* access to a dataset gets (``access_policy.allow_aggregates``).

Such a team may read numbers that describe many examples at once, never anything about one example:

* **Slices only on declared columns.** A slice row is shown only when its column is one the dataset's
  owner declared as a slice column at registration (``register_dataset(slice_columns=...)``, recorded in
  the dataset's ``schema.slice_columns``). A suite slicing on any other column (``example_id``, a
  free-text column) would turn "a metric per slice" into "the label of every example".
* **Small slices suppressed.** A slice value with fewer examples than the dataset's minimum
  (``access_policy.min_slice_size``, default :data:`DEFAULT_MIN_SLICE_SIZE`) is not returned at all (not
  flagged: removed). So that it cannot be recovered from the overall figure minus the other slices, the
  next-smallest values of its column are suppressed with it until what is left out is at least two values
  and at least the minimum together (complementary suppression).
* **No per-example results.** Predictions, regression lists (example ids), judge verdicts and judge
  records (which name the examples a judge erred on), and curve artifacts are withheld.
* **No LLM sees the rows.** An ``openai_chat`` candidate or a suite with an LLM judge would be sent every
  prompt and reference: a run asking for one is refused (:func:`check_aggregate_use`), as are suites
  slicing or guarding on an undeclared column.

The same filter (:class:`AggregateView`) is applied to every response such a team sees: a run's results,
comparisons, gate reasons (per-slice guardrails), listings. A team with row access sees everything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from eval_platform.core.store import METRIC_TABLES
from eval_platform.registry import access as acl

#: the minimum examples per slice value a team with aggregates-only access is shown, unless the dataset's
#: access policy says otherwise (``min_slice_size``)
DEFAULT_MIN_SLICE_SIZE = 10
#: results keys an aggregates-only team is shown (everything else names examples or their outputs)
AGGREGATE_RESULT_KEYS = ("metrics", "n_examples", "slices", "estimates")


def min_slice_size(policy: dict | None) -> int:
    value = (policy or {}).get("min_slice_size")
    return int(value) if value is not None else DEFAULT_MIN_SLICE_SIZE


def declared_slice_columns(schema: dict | None) -> tuple[str, ...]:
    return tuple((schema or {}).get("slice_columns") or ())


def shown_slices(sizes: dict[tuple[str, str], int], declared, minimum: int) -> frozenset[str]:
    """The ``COLUMN=VALUE`` slices an aggregates-only team may see, from every slice's example count.

    Slices on undeclared columns are dropped; within a declared column, values smaller than ``minimum``
    are suppressed, and then the next-smallest values too until what is left out is at least two values of
    at least ``minimum`` examples together, so no small value can be derived from the whole minus the rest."""
    by_column: dict[str, dict[str, int]] = defaultdict(dict)
    for (column, value), n in sizes.items():
        if column in declared:
            by_column[column][value] = max(n, by_column[column].get(value, 0))
    shown: set[str] = set()
    for column, values in by_column.items():
        small = {v: n for v, n in values.items() if n < minimum}
        kept = {v: n for v, n in values.items() if v not in small}
        # what is left out is derivable as a whole (the overall figure minus the rest): it must be at least
        # two values and at least ``minimum`` examples together, or more values go with it
        while small and kept and (len(small) == 1 or sum(small.values()) < minimum):
            value = min(kept, key=lambda v: (kept[v], v))
            small[value] = kept.pop(value)
        shown.update(f"{column}={value}" for value in kept)
    return frozenset(shown)


@dataclass(frozen=True)
class AggregateView:
    """The filter for one run's outputs as one team sees them (``rows``: no filter)."""

    seen: str
    shown: frozenset[str] = frozenset()

    @property
    def filtered(self) -> bool:
        return self.seen != acl.ROWS

    def slice_ok(self, name: str | None) -> bool:
        return not self.filtered or not name or name in self.shown

    def results(self, results: dict | None) -> dict | None:
        """Run results with slices filtered and per-example parts withheld (listed under ``withheld``)."""
        if results is None or not self.filtered:
            return results
        out = {k: v for k, v in results.items() if k in AGGREGATE_RESULT_KEYS}
        out["slices"] = [s for s in results.get("slices") or [] if self.slice_ok(s.get("slice"))]
        if "estimates" in out:
            out["estimates"] = {metric: {**entry, "slices": {k: v for k, v in (entry.get("slices") or {}).items() if self.slice_ok(k)}}
                                if isinstance(entry, dict) else entry for metric, entry in out["estimates"].items()}
        out["artifacts"] = {}
        out["withheld"] = sorted(set(results) - set(AGGREGATE_RESULT_KEYS)) + (
            ["slices on undeclared columns or below the minimum size"] if len(out["slices"]) < len(results.get("slices") or []) else [])
        return out

    def slice_map(self, by_slice: dict) -> dict:
        return {k: v for k, v in by_slice.items() if self.slice_ok(k)}

    def reasons(self, reasons: list) -> list:
        """Gate reasons without per-slice reasons on slices this team may not see (nested groups too)."""
        if not self.filtered:
            return reasons
        out = []
        for reason in reasons:
            if not self.slice_ok(reason.get("slice")):
                continue
            if "reasons" in reason:
                reason = {**reason, "reasons": self.reasons(reason["reasons"])}
            out.append(reason)
        return out


def view_of_run(platform, run, dataset, seen: str) -> AggregateView:
    """The filter of ``run``'s outputs for a team that sees ``seen`` of its dataset: slice sizes are read from
    the run's metric table (none stored: no slice is shown)."""
    if seen == acl.ROWS:
        return AggregateView(seen)
    sizes: dict[tuple[str, str], int] = {}
    if run.metrics_hash:
        try:
            table = platform.store.get_table(METRIC_TABLES, run.metrics_hash)
        except Exception:  # noqa: BLE001 - a missing table shows no slices, which is the safe answer
            table = None
        if table is not None:
            for row in table[table["slice_column"] != ""].itertuples():
                key = (str(row.slice_column), str(row.slice_value))
                sizes[key] = max(int(row.n_examples), sizes.get(key, 0))
    return AggregateView(seen, shown_slices(sizes, declared_slice_columns(dataset.schema), min_slice_size(dataset.access_policy)))


def check_aggregate_use(platform, principal, dataset, suite, model_kind: str | None, field: str = "metricSuiteId") -> None:
    """Refuse (403 naming ``field``, logged) a run a team with aggregates-only access to ``dataset`` asks for
    that would show it rows: an LLM candidate or judge (sent every row), or slices and per-slice guardrails
    on columns the dataset's owner did not declare as slice columns. ``suite`` is a :class:`SuiteDefinition`."""
    if principal is None or principal.operator or acl.visibility(dataset.access_policy, principal.team) != acl.AGGREGATES:
        return
    problem = None
    if model_kind == "openai_chat":
        problem, field = "an openai_chat model would be sent its rows", "modelVersion"
    elif suite is not None:
        judges = [k for k in ("judge", "pairwise_judge") if (suite.llm or {}).get(k)]
        declared = set(declared_slice_columns(dataset.schema))
        undeclared = sorted({*suite.slices, *(r.slice for r in suite.rules if r.slice)} - declared)
        if judges:
            problem = f"the suite's LLM judge ({', '.join('llm.' + j for j in judges)}) would be sent its rows"
        elif undeclared:
            problem = (f"the suite slices on column(s) {', '.join(undeclared)} that the dataset's owner did not declare as "
                       f"slice columns (declared: {', '.join(sorted(declared)) or 'none'})")
    if problem is None:
        return
    acl.record_access(platform, principal, acl.AGGREGATE_READ, dataset.key, acl.DENIED, detail=f"aggregates only: {problem}"[:2000])
    raise acl.Forbidden(f"team {principal.team!r} may read only the aggregates of dataset {dataset.key}: {problem}", field=field)


__all__ = ["AGGREGATE_RESULT_KEYS", "AggregateView", "DEFAULT_MIN_SLICE_SIZE", "check_aggregate_use", "declared_slice_columns",
           "min_slice_size", "shown_slices", "view_of_run"]
