"""McNemar's exact test and the paired bootstrap, against cases worked by hand."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from mnistlab.analysis.statistics import bootstrap_difference, explain, mcnemar


def _pairs(only_a: int, only_b: int, both: int, neither: int):
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_counts_the_discordant_digits_and_gives_the_exact_binomial_p_value():
    a, b = _pairs(only_a=2, only_b=8, both=80, neither=10)
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b, result.both, result.neither, result.n) == (2, 8, 80, 10, 100)
    # by hand: P(X <= 2) + P(X >= 8) for X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert result.p_value == pytest.approx(2 * (comb(10, 0) + comb(10, 1) + comb(10, 2)) / 2**10)
    assert result.p_value == pytest.approx(0.109375)


def test_mcnemar_even_split_and_no_disagreement_give_p_one():
    assert mcnemar(*_pairs(5, 5, 10, 0)).p_value == pytest.approx(1.0)
    assert mcnemar(*_pairs(0, 0, 10, 3)).p_value == 1.0


def test_mcnemar_lopsided_split_is_significant():
    result = mcnemar(*_pairs(0, 12, 50, 5))
    assert result.p_value == pytest.approx(2 / 2**12)


def test_bootstrap_interval_holds_the_observed_difference_and_matches_the_normal_approximation():
    a, b = _pairs(only_a=40, only_b=80, both=9000, neither=880)
    interval = bootstrap_difference(a, b, resamples=20_000, seed=1)
    assert interval.difference == pytest.approx(40 / 10_000)
    assert interval.low < interval.difference < interval.high
    # by hand: the per-digit differences d in {-1, 0, 1}; sd of the mean = sqrt((p_a + p_b - (p_b - p_a)^2) / n)
    n, p_a, p_b = 10_000, 40 / 10_000, 80 / 10_000
    se = np.sqrt((p_a + p_b - (p_b - p_a) ** 2) / n)
    assert interval.low == pytest.approx(interval.difference - 1.96 * se, abs=0.0005)
    assert interval.high == pytest.approx(interval.difference + 1.96 * se, abs=0.0005)


def test_bootstrap_of_identical_runs_is_a_point_and_is_reproducible():
    a, _ = _pairs(3, 0, 10, 2)
    interval = bootstrap_difference(a, a)
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)
    x, y = _pairs(3, 7, 50, 5)
    assert bootstrap_difference(x, y, seed=3) == bootstrap_difference(x, y, seed=3)


def test_explanation_is_one_sentence_that_names_the_counts():
    a, b = _pairs(2, 8, 80, 10)
    text = explain(mcnemar(a, b), bootstrap_difference(a, b), "run A", "run B")
    assert "8" in text and "2" in text and "luck" in text and text.count(". ") == 0
    a, b = _pairs(0, 40, 900, 60)
    text = explain(mcnemar(a, b), bootstrap_difference(a, b), "A", "B")
    assert "B is very likely really better" in text and "less than 0.1% of the time" in text  # p = 1.8e-12
    a, b = _pairs(0, 1, 900, 60)
    text = explain(mcnemar(a, b), bootstrap_difference(a, b), "A", "B")
    assert text.startswith("Of the 1 test digit that only one of them gets right, B gets 1 and A 0")


def test_mismatched_or_non_boolean_inputs_are_refused():
    with pytest.raises(ValueError, match="same test digits"):
        mcnemar([True, False], [True])
    with pytest.raises(ValueError, match="booleans"):
        mcnemar([0.3, 1], [1, 0])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_difference([True], [False], resamples=5)
