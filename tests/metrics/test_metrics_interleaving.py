"""Team-draft interleaving: hand-enumerated drafts, click attribution, the sign test, and simulated users.

Expected lists, outcomes and p-values are enumerated or computed by hand in the tests (the p-values from
the binomial distribution written out), never by the module under test.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.interleaving import (
    interleave_queries,
    interleaving_preference,
    query_outcomes,
    team_draft_interleave,
)


def test_draft_gives_exactly_the_hand_enumerated_lists_with_equal_chances():
    """A = a b c, B = b c d, length 4. Two coin flips decide, and the draft stops as soon as either
    ranker has no item left that is not shown (the original algorithm), here A after c:
    (A first, A first) a/A b/B c/A; (A first, B first) a/A b/B c/B; (B first, A first) b/B a/A c/A;
    (B first, B first) b/B a/A c/B. Each has probability 1/4; d is never shown."""
    expected = {
        (("a", "b", "c"), ("A", "B", "A")),
        (("a", "b", "c"), ("A", "B", "B")),
        (("b", "a", "c"), ("B", "A", "A")),
        (("b", "a", "c"), ("B", "A", "B")),
    }
    seen = Counter()
    for seed in range(800):
        shown = team_draft_interleave(["a", "b", "c"], ["b", "c", "d"], length=4, seed=seed)
        seen[(shown.items, shown.teams)] += 1
    assert set(seen) == expected
    for count in seen.values():  # 200 expected each; sd 12.2
        assert 150 <= count <= 250


def test_length_limit_and_team_balance():
    a, b = list(range(20)), list(range(19, -1, -1))
    for seed in range(50):
        shown = team_draft_interleave(a, b, length=10, seed=seed)
        assert len(shown.items) == 10 and len(set(shown.items)) == 10
        # team draft keeps the teams' sizes within one of each other at every prefix
        for end in range(1, 11):
            counts = Counter(shown.teams[:end])
            assert abs(counts["A"] - counts["B"]) <= 1
        # each team's items appear in its own ranker's order
        for team, ranking in (("A", a), ("B", b)):
            mine = [i for i, t in zip(shown.items, shown.teams, strict=True) if t == team]
            assert mine == sorted(mine, key=ranking.index)


def test_seeded_and_reproducible_per_query():
    a = {"q1": list("abcdef"), "q2": list("uvwxyz")}
    b = {"q1": list("fedcba"), "q2": list("zyxwvu")}
    first = interleave_queries(a, b, length=6, seed=7)
    assert first == interleave_queries(a, b, length=6, seed=7)
    # a query's list does not depend on which other queries are interleaved with it
    alone = interleave_queries({"q1": a["q1"]}, {"q1": b["q1"]}, length=6, seed=7)
    assert alone["q1"] == first["q1"]
    # and the seed matters: some seed gives another draft
    assert any(interleave_queries(a, b, length=6, seed=s)["q1"] != first["q1"] for s in range(1, 20))
    assert team_draft_interleave(a["q1"], b["q1"], seed=3) == team_draft_interleave(a["q1"], b["q1"], seed=3)


def test_edge_cases():
    assert team_draft_interleave([], [1, 2], seed=0).items == ()
    assert team_draft_interleave([1, 2, 3], [1, 2, 3], seed=5).items == (1, 2, 3)
    # length=None runs until either ranker has nothing new: with disjoint lists of two, the third pick is
    # some team's second and takes its ranker's last item, so the list always stops at 3
    lengths = {len(team_draft_interleave([1, 2], [3, 4], seed=s).items) for s in range(50)}
    assert lengths == {3}


def test_click_attribution_by_hand():
    log = pd.DataFrame({
        "query_id": ["q1"] * 4 + ["q2"] * 4 + ["q3"] * 2 + ["q4"] * 2,
        "team":     ["A", "B", "A", "B", "B", "A", "B", "A", "A", "B", "A", "B"],
        "clicked":  [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1],
    })
    # q1: A 2 clicks, B 1 -> A wins; q2: B 2, A 0 -> B; q3: no clicks -> tie; q4: 1 each -> tie
    ids, outcomes = query_outcomes(log["query_id"], log["team"], log["clicked"])
    assert list(ids) == ["q1", "q2", "q3", "q4"]
    assert list(outcomes) == [1, -1, 0, 0]
    # booleans are clicks too
    _, again = query_outcomes(log["query_id"], log["team"], log["clicked"].astype(bool))
    assert list(again) == [1, -1, 0, 0]


def test_preference_and_sign_test_by_hand():
    result = interleaving_preference([1] * 7 + [-1] + [0] * 2)
    assert (result.wins, result.losses, result.ties, result.n_queries) == (7, 1, 2, 10)
    assert result.preference == pytest.approx((7 + 1) / 10 - 0.5)
    # two-sided exact sign test, n = 8: P(X <= 1) + P(X >= 7) = 2 * (1 + 8) / 256
    assert result.p_value == pytest.approx(18 / 256)
    assert result.win_rate == 7 / 8 and result.win_rate_ci_low < 7 / 8 < result.win_rate_ci_high
    ties = interleaving_preference([0, 0, 0])
    assert ties.preference == 0.0 and ties.p_value == 1.0 and np.isnan(ties.win_rate)


def _simulate(n_queries: int, noise_a: float, noise_b: float, rng: np.random.Generator, length: int = 10):
    """Users who examine position k with probability 1/(k+1) and click an examined item with
    probability 0.1 + 0.8 * relevance; rankers sort by relevance plus Gaussian noise."""
    outcomes = []
    for _ in range(n_queries):
        relevance = rng.random(30)
        a = list(np.argsort(-(relevance + rng.normal(scale=noise_a, size=30))))
        b = list(np.argsort(-(relevance + rng.normal(scale=noise_b, size=30))))
        shown = team_draft_interleave(a, b, length=length, seed=rng)
        clicks = {"A": 0, "B": 0}
        for position, (item, team) in enumerate(zip(shown.items, shown.teams, strict=True)):
            if rng.random() < 1 / (position + 1) and rng.random() < 0.1 + 0.8 * relevance[item]:
                clicks[team] += 1
        outcomes.append(int(np.sign(clicks["A"] - clicks["B"])))
    return outcomes


def test_simulation_detects_the_better_ranker():
    rng = np.random.default_rng(11)
    result = interleaving_preference(_simulate(600, noise_a=0.05, noise_b=1.0, rng=rng))
    assert result.preference > 0.05 and result.wins > result.losses
    assert result.p_value < 0.001
    swapped = interleaving_preference(_simulate(600, noise_a=1.0, noise_b=0.05, rng=rng))
    assert swapped.preference < -0.05 and swapped.p_value < 0.001


def test_simulation_equal_rankers_rejects_at_most_nominally():
    """A/A: both rankers equally good; over 200 experiments the 5% sign test rejects about 5% (exact
    binomial tests are conservative, so at most 0.05 plus 3 sd of 200 Bernoulli draws, 0.046)."""
    rng = np.random.default_rng(12)
    rejections = sum(interleaving_preference(_simulate(60, 0.5, 0.5, rng, length=5)).p_value < 0.05
                     for _ in range(200))
    assert rejections / 200 <= 0.05 + 0.046


@pytest.mark.parametrize(
    ("call", "field", "problem"),
    [
        (lambda: team_draft_interleave([1, 2, 1], [1], seed=0), "ranking_a", "position 3: item 1 appears twice"),
        (lambda: team_draft_interleave([1], [None], seed=0), "ranking_b", "position 1: item id is missing"),
        (lambda: team_draft_interleave("abc", [1], seed=0), "ranking_a", "sequence of item ids"),
        (lambda: team_draft_interleave([1], [1], length=0, seed=0), "length", ">= 1"),
        (lambda: team_draft_interleave([1], [1], seed=-1), "seed", ">= 0"),
        (lambda: interleave_queries({"q": [1]}, {}, seed=0), "rankings_b", "no ranking for query 'q'"),
        (lambda: query_outcomes(["q"], ["C"], [1]), "teams", "row 1: team must be 'A' or 'B'"),
        (lambda: query_outcomes(["q", "q"], ["A", "B"], [1, 2]), "clicked", "row 2: must be 0 or 1"),
        (lambda: query_outcomes(["q", "q"], ["A"], [1, 0]), "teams", "2 rows"),
        (lambda: query_outcomes(["q", None], ["A", "B"], [1, 0]), "query_ids", "row 2: query id is missing"),
        (lambda: query_outcomes([], [], []), "query_ids", "empty"),
        (lambda: interleaving_preference([1, 2]), "outcomes", "row 2"),
        (lambda: interleaving_preference([]), "outcomes", "non-empty"),
        (lambda: interleaving_preference([1], confidence=2), "confidence", "between 0 and 1"),
    ],
)
def test_bad_input_is_refused_naming_the_field(call, field, problem):
    with pytest.raises(InvalidInput) as error:
        call()
    assert error.value.field == field and problem in error.value.problem


def test_evalp_score_interleaving(tmp_path, capsys):
    from eval_platform.cli import main as cli

    path = tmp_path / "clicks.parquet"
    rows = [(f"q{i}", team, 1 if team == "A" else 0) for i in range(7) for team in ("A", "B")]
    rows += [("q7", "A", 0), ("q7", "B", 1), ("q8", "A", 0), ("q8", "B", 0), ("q9", "A", 0), ("q9", "B", 0)]
    pd.DataFrame(rows, columns=["qid", "team", "click"]).to_parquet(path)
    argv = ["score", "interleaving", "--data", str(path), "--query", "qid", "--clicked", "click", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)["A_vs_B"]
    assert (out["wins"], out["losses"], out["ties"]) == (7, 1, 2)
    assert out["p_value"] == pytest.approx(18 / 256)
    assert cli.main(["score", "interleaving", "--data", str(path), "--query", "nope"]) == 2
    assert "--query: column 'nope' is not in the file" in capsys.readouterr().err
