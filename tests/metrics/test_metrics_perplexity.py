"""Perplexity from token log-probabilities, against hand computation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.core.states import BaselineState
from eval_platform.gates.rules import OVERALL, Observation, decide, parse_rules
from eval_platform.metrics.catalog import get_metric
from eval_platform.metrics.perplexity import (
    logprob_totals,
    perplexity,
    perplexity_per_example,
    perplexity_report,
    perplexity_reports,
)

# three answers whose tokens had these probabilities (the second's first token unscored, as an echoed prompt's)
PROBABILITIES = [[0.5, 0.25], [None, 0.1, 0.2, 0.4], [0.9]]
LOGPROBS = [[None if p is None else math.log(p) for p in row] for row in PROBABILITIES]


def test_per_example_perplexity_is_the_inverse_geometric_mean_probability():
    sums, counts = logprob_totals(LOGPROBS)
    assert counts.tolist() == [2, 3, 1]
    # by hand: (0.5 * 0.25) ** (-1/2), (0.1 * 0.2 * 0.4) ** (-1/3), 0.9 ** -1
    expected = [(0.5 * 0.25) ** -0.5, (0.1 * 0.2 * 0.4) ** (-1 / 3), 1 / 0.9]
    assert perplexity_per_example(sums, counts) == pytest.approx(expected, rel=1e-12)


def test_corpus_perplexity_is_token_weighted_not_the_mean_of_per_example_values():
    sums, counts = logprob_totals(LOGPROBS)
    # by hand: all six scored probabilities multiplied, to the power -1/6
    product = 0.5 * 0.25 * 0.1 * 0.2 * 0.4 * 0.9
    assert perplexity(sums, counts) == pytest.approx(product ** (-1 / 6), rel=1e-12)
    assert perplexity(sums, counts) != pytest.approx(float(np.mean(perplexity_per_example(sums, counts))))


def test_a_uniform_guess_over_v_tokens_has_perplexity_v():
    sums, counts = logprob_totals([[math.log(1 / 50)] * 7, [math.log(1 / 50)] * 3])
    assert perplexity(sums, counts) == pytest.approx(50.0, rel=1e-12)


def test_examples_without_a_scored_token_are_undefined_excluded_and_counted():
    sums, counts = logprob_totals([[math.log(0.5)], [], [None]])
    per_example = perplexity_per_example(sums, counts)
    assert per_example[0] == pytest.approx(2.0) and np.isnan(per_example[1:]).all()
    report = perplexity_report(sums, counts)
    assert (report.value, report.n_tokens, report.n_examples, report.n_excluded) == (pytest.approx(2.0), 1, 1, 2)
    assert math.isnan(perplexity(*logprob_totals([[], [None]])))  # no token at all: undefined
    assert math.isnan(perplexity([], []))


def test_a_zero_probability_token_gives_infinite_perplexity():
    sums, counts = logprob_totals([[-math.inf, -1.0], [-1.0]])
    assert sums[0] == -math.inf
    assert perplexity_per_example(sums, counts).tolist() == [math.inf, math.e]
    assert perplexity(sums, counts) == math.inf


def test_rounding_above_zero_is_probability_one_and_huge_values_do_not_warn():
    sums, counts = logprob_totals([[1e-9, 0.0]])
    assert perplexity(sums, counts) == 1.0
    with np.errstate(all="raise"):
        assert perplexity([-1e6], [1]) == math.inf  # exp overflows to inf, no warning turned error


@pytest.mark.parametrize(("logprobs", "field"), [
    ([[0.5]], "token_logprobs[0][0]"),  # a probability above 1
    ([[-1.0, float("nan")]], "token_logprobs[0][1]"),
    ([[-1.0], ["-1"]], "token_logprobs[1][0]"),
    ([[True]], "token_logprobs[0][0]"),
    (["-1.0"], "token_logprobs[0]"),
])
def test_malformed_token_logprobs_are_refused_naming_the_row(logprobs, field):
    with pytest.raises(InvalidInput) as raised:
        logprob_totals(logprobs)
    assert raised.value.field == field


@pytest.mark.parametrize(("sums", "counts", "field"), [
    ([-1.0, float("nan")], [1, 1], "logprob_sum[1]"),
    ([-1.0, 2.0], [1, 1], "logprob_sum[1]"),
    ([-1.0], [1.5], "logprob_tokens[0]"),
    ([-1.0], [-1], "logprob_tokens[0]"),
    ([-1.0], [0], "logprob_sum[0]"),  # a sum over no token
    ([-1.0, -2.0], [1], "logprob_tokens"),
    (["x"], [1], "logprob_sum"),
    ([-1.0], ["x"], "logprob_tokens"),
])
def test_malformed_totals_are_refused_naming_the_field(sums, counts, field):
    with pytest.raises(InvalidInput) as raised:
        perplexity(sums, counts)
    assert raised.value.field == field


def test_the_catalog_metric_reads_the_source_columns_and_lower_is_better():
    metric = get_metric("perplexity@1")
    assert metric.direction == "lower" and metric.better(-1.0) == 1.0
    sums, counts = logprob_totals(LOGPROBS)
    columns = {"prediction": np.array(["a", "b", "c"], dtype=object), "logprob_sum": sums, "logprob_tokens": counts,
               "reference_logprob_sum": np.array([math.log(0.5)] * 3), "reference_logprob_tokens": np.ones(3)}
    product = 0.5 * 0.25 * 0.1 * 0.2 * 0.4 * 0.9
    assert metric.compute(columns, **metric.resolve_params({})) == pytest.approx(product ** (-1 / 6))
    assert metric.compute(columns, **metric.resolve_params({"source": "reference"})) == pytest.approx(2.0)
    with pytest.raises(InvalidInput, match="source"):
        metric.resolve_params({"source": "prompt"})
    with pytest.raises(InvalidInput, match="source"):
        metric.compute(columns, source="prompt")
    with pytest.raises(InvalidInput, match="no token log-probabilities") as raised:
        metric.compute({"prediction": columns["prediction"]}, source="generation")
    assert raised.value.field == "logprob_sum"


def test_an_infinite_or_undefined_perplexity_leaves_a_gate_without_decision_and_a_finite_one_decides():
    definitions = {"ppl": get_metric("perplexity@1")}
    rules = parse_rules([{"metric": "ppl", "max": 20.0}], definitions)

    def verdict(value):
        observations = {("ppl", *OVERALL): Observation(value, 10)}
        return decide(rules, definitions, observations, BaselineState.NONE, False).decision

    assert verdict(perplexity(*logprob_totals([[-math.inf, -1.0]]))) == "no_decision"
    assert verdict(perplexity(*logprob_totals([[], [None]]))) == "no_decision"
    assert verdict(perplexity(*logprob_totals([[math.log(0.1)]]))) == "pass"  # 10 <= 20
    assert verdict(perplexity(*logprob_totals([[math.log(0.01)]]))) == "fail"  # 100 > 20


def test_a_run_records_tokens_and_excluded_examples_per_perplexity_metric():
    metric = get_metric("perplexity@1")
    configured = [SimpleNamespace(name="ppl", definition=metric, params={"source": "generation"}),
                  SimpleNamespace(name="ref", definition=metric, params={"source": "reference"}),
                  SimpleNamespace(name="em", definition=get_metric("exact_match@1"), params={})]
    sums, counts = logprob_totals([[math.log(0.5), math.log(0.5)], [], [None]])
    reports = perplexity_reports(configured, {"logprob_sum": sums, "logprob_tokens": counts})
    assert reports == {"ppl": {"source": "generation", "value": pytest.approx(2.0), "n_tokens": 2, "n_examples": 1,
                               "n_excluded": 2}}  # no reference columns: nothing to report for "ref"
