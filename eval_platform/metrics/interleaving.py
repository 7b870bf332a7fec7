"""Team-draft interleaving: compare two rankers online on the same queries, from users' clicks.

For each query the two rankings ``A`` and ``B`` are merged into one list shown to the user (Radlinski,
Kurup and Joachims, "How does clickthrough data reflect retrieval quality?", CIKM 2008). Like picking
teams in a playground: while both rankers still have an item not yet shown, the team with fewer picks so
far picks next (a fair coin decides when they have as many), and it adds its highest-ranked item not yet in
the list, credited to that team. The list stops at ``length`` items or when either ranker runs out of new
items (the original algorithm: carrying on with one ranker alone would credit it for nothing but length).

A click on an item credits the item's team. Per query (impression): ``A`` wins when its items got more
clicks than ``B``'s, ``B`` wins when fewer, a tie when as many (no clicks at all is a tie too). Over ``n``
impressions with ``wins`` for A, ``losses`` for A and ``ties``:

* **preference** ``Delta_AB = (wins + ties / 2) / n - 1/2``, in ``[-1/2, 1/2]``: positive means A is
  preferred (Chapelle et al., "Large-scale validation and analysis of interleaved search evaluation", 2012).
* **significance**: a two-sided exact binomial sign test of ``wins`` among the ``wins + losses``
  non-tied impressions against ``1/2``; ties carry no information on the direction and are left out.
  The win rate's Clopper-Pearson interval is reported beside it.

The coin flips come from a seeded generator: :func:`team_draft_interleave` with the same ``seed`` always
gives the same list, and :func:`interleave_queries` derives each query's seed from ``(seed, query id)`` so
one query's list does not depend on which other queries are interleaved alongside.

These are library functions plus ``evalp score interleaving`` (a click log file), not catalog metrics:
the catalog's metrics are computed per eval run from a dataset and one model's predictions, while
interleaving needs both rankers' lists and users' clicks on what was shown.

Example::

    >>> from eval_platform.metrics.interleaving import team_draft_interleave
    >>> shown = team_draft_interleave(["a", "b", "c", "e"], ["b", "d", "a", "f"], length=4, seed=0)
    >>> len(shown.items), sorted(set(shown.teams))
    (4, ['A', 'B'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from eval_platform.core.errors import InvalidInput

__all__ = [
    "InterleavedList",
    "InterleavingOutcome",
    "team_draft_interleave",
    "interleave_queries",
    "query_outcomes",
    "interleaving_preference",
]

Team = Literal["A", "B"]


@dataclass(frozen=True)
class InterleavedList:
    """The list shown for one query: ``items[i]`` was contributed by team ``teams[i]``."""

    items: tuple[Hashable, ...]
    teams: tuple[Team, ...]


@dataclass(frozen=True)
class InterleavingOutcome:
    """Preference of ranker A over ranker B over ``n_queries`` impressions.

    ``preference`` is ``(wins + ties/2)/n - 1/2``; ``p_value`` the two-sided sign test of ``wins`` among
    ``wins + losses``; ``win_rate`` = ``wins / (wins + losses)`` with its Clopper-Pearson ``confidence``
    interval (``nan`` when every impression is a tie).
    """

    wins: int
    losses: int
    ties: int
    n_queries: int
    preference: float
    win_rate: float
    win_rate_ci_low: float
    win_rate_ci_high: float
    p_value: float
    confidence: float


def _ranking(values: Any, field: str) -> list:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray | pd.Series):
        raise InvalidInput(field, "must be a sequence of item ids, best first")
    items = list(values)
    seen: set = set()
    for position, item in enumerate(items):
        try:
            duplicate = item in seen
        except TypeError:
            raise InvalidInput(field, f"position {position + 1}: item {item!r} is not hashable") from None
        if item is None or (isinstance(item, float) and np.isnan(item)):
            raise InvalidInput(field, f"position {position + 1}: item id is missing")
        if duplicate:
            raise InvalidInput(field, f"position {position + 1}: item {item!r} appears twice")
        seen.add(item)
    return items


def _check_length(length: Any) -> int | None:
    if length is None:
        return None
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise InvalidInput("length", f"must be a whole number >= 1, got {length!r}")
    return int(length)


def _draft(a: list, b: list, length: int | None, rng: np.random.Generator) -> InterleavedList:
    items: list = []
    teams: list[Team] = []
    shown: set = set()
    picks = {"A": 0, "B": 0}
    next_a = next_b = 0  # index of each ranker's best item not yet shown
    limit = len(set(a) | set(b)) if length is None else length
    while len(items) < limit:
        while next_a < len(a) and a[next_a] in shown:
            next_a += 1
        while next_b < len(b) and b[next_b] in shown:
            next_b += 1
        if next_a == len(a) or next_b == len(b):
            break
        a_picks = picks["A"] < picks["B"] or (picks["A"] == picks["B"] and rng.random() < 0.5)
        team: Team = "A" if a_picks else "B"
        item = a[next_a] if a_picks else b[next_b]
        items.append(item)
        teams.append(team)
        shown.add(item)
        picks[team] += 1
    return InterleavedList(tuple(items), tuple(teams))


def team_draft_interleave(ranking_a: Sequence, ranking_b: Sequence, *, length: int | None = None,
                          seed: int | np.random.Generator = 0) -> InterleavedList:
    """Interleave two rankings (item ids, best first) by team draft; at most ``length`` items.

    Edge cases: identical rankings give that ranking (teams alternate by coin); a ranking with no item
    the other lacks still interleaves (picks skip items already shown); an empty ranking gives an empty
    list; ``length=None`` continues until either ranker runs out. Duplicate or missing ids in a ranking
    raise ``InvalidInput`` naming ``ranking_a``/``ranking_b`` and the position.

    >>> team_draft_interleave([1, 2, 3], [1, 2, 3], seed=1).items
    (1, 2, 3)
    """
    a = _ranking(ranking_a, "ranking_a")
    b = _ranking(ranking_b, "ranking_b")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(_check_seed(seed))
    return _draft(a, b, _check_length(length), rng)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput("seed", f"must be a whole number >= 0, got {seed!r}")
    return int(seed)


def _query_seed(seed: int, query_id: Hashable) -> np.random.Generator:
    # a stable digest of the query id (Python's hash() of a str changes between processes)
    digest = hashlib.sha256(f"{type(query_id).__name__}:{query_id}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def interleave_queries(rankings_a: Mapping[Hashable, Sequence], rankings_b: Mapping[Hashable, Sequence], *,
                       length: int | None = None, seed: int = 0) -> dict[Hashable, InterleavedList]:
    """:func:`team_draft_interleave` for every query of both mappings (``query id -> ranking``), each with
    its own generator seeded by ``(seed, query id)``. A query missing from either mapping is refused."""
    seed = _check_seed(seed)
    missing = [q for q in rankings_a if q not in rankings_b] + [q for q in rankings_b if q not in rankings_a]
    if missing:
        side = "rankings_b" if missing[0] in rankings_a else "rankings_a"
        raise InvalidInput(side, f"has no ranking for query {missing[0]!r}")
    length = _check_length(length)
    return {
        q: _draft(_ranking(rankings_a[q], f"rankings_a[{q!r}]"), _ranking(rankings_b[q], f"rankings_b[{q!r}]"),
                  length, _query_seed(seed, q))
        for q in rankings_a
    }


def query_outcomes(query_ids, teams, clicked) -> tuple[np.ndarray, np.ndarray]:
    """Per-impression outcomes from a click log with one row per shown item.

    ``query_ids[i]`` is the impression (query) the row belongs to, ``teams[i]`` the team that contributed
    the item (``"A"`` or ``"B"``), ``clicked[i]`` whether it was clicked (0/1 or bool). Returns
    ``(impression ids sorted, outcome)`` with outcome ``+1`` (A had more clicks), ``-1`` (B had more) or
    ``0`` (tie, including no click)."""
    q = pd.Series(np.asarray(query_ids, dtype=object) if not isinstance(query_ids, pd.Series) else query_ids.to_numpy(object))
    t = np.asarray(teams, dtype=object)
    c = np.asarray(clicked)
    for name, array in (("teams", t), ("clicked", c)):
        if array.ndim != 1 or len(array) != len(q):
            raise InvalidInput(name, f"must be one-dimensional with {len(q)} rows (one per shown item), got shape {array.shape}")
    if len(q) == 0:
        raise InvalidInput("query_ids", "the click log is empty")
    if q.isna().any():
        raise InvalidInput("query_ids", f"row {int(np.flatnonzero(q.isna().to_numpy())[0]) + 1}: query id is missing")
    bad = ~np.isin(t, ["A", "B"])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("teams", f"row {row + 1}: team must be 'A' or 'B', got {t[row]!r}")
    if c.dtype == bool:
        clicks = c.astype(np.int64)
    else:
        numeric = pd.to_numeric(pd.Series(c), errors="coerce").to_numpy(np.float64)
        bad = ~np.isin(numeric, [0.0, 1.0])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInput("clicked", f"row {row + 1}: must be 0 or 1 (or a bool), got {c[row]!r}")
        clicks = numeric.astype(np.int64)
    codes, uniques = pd.factorize(q, sort=True)
    signed = np.where(t == "A", clicks, -clicks)  # A's clicks minus B's, summed per impression
    difference = np.bincount(codes, weights=signed, minlength=len(uniques))
    return np.asarray(uniques, dtype=object), np.sign(difference).astype(np.int64)


def interleaving_preference(outcomes, *, confidence: float = 0.95) -> InterleavingOutcome:
    """Preference of A over B from per-impression outcomes (+1 A wins, -1 B wins, 0 tie; see
    :func:`query_outcomes`), with a two-sided exact sign test. All ties: ``preference = 0``, ``p_value
    = 1`` and an undefined (``nan``) win rate.

    >>> interleaving_preference([1, 1, 1, 0]).preference
    0.375
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    o = np.asarray(outcomes)
    if o.ndim != 1 or len(o) == 0:
        raise InvalidInput("outcomes", "must be a non-empty one-dimensional array of +1, -1 or 0")
    bad = ~np.isin(o, [-1, 0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InvalidInput("outcomes", f"row {row + 1}: must be +1, -1 or 0, got {o[row]!r}")
    wins, losses = int((o == 1).sum()), int((o == -1).sum())
    ties = len(o) - wins - losses
    preference = (wins + ties / 2) / len(o) - 0.5
    if wins + losses == 0:
        nan = float("nan")
        return InterleavingOutcome(wins, losses, ties, len(o), preference, nan, nan, nan, 1.0, float(confidence))
    test = stats.binomtest(wins, wins + losses, 0.5, alternative="two-sided")
    interval = test.proportion_ci(confidence_level=confidence, method="exact")
    return InterleavingOutcome(wins, losses, ties, len(o), float(preference), wins / (wins + losses),
                               float(interval.low), float(interval.high), float(test.pvalue), float(confidence))
