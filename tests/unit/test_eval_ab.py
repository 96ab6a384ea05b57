"""A/B sign test: matches scipy's binomial test and a hand-computed Wilson interval."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from llmplat_dagster.evaluation.ab import ab_test


@pytest.mark.parametrize(("wins", "losses", "ties"), [(60, 40, 7), (8, 2, 0), (50, 50, 10), (0, 12, 3), (130, 70, 0)])
def test_matches_scipy(wins, losses, ties):
    result = ab_test(wins, losses, ties)
    reference = binomtest(wins, wins + losses, 0.5)
    ci = reference.proportion_ci(0.95, method="wilson")
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high))
    assert result.win_rate == pytest.approx(wins / (wins + losses))
    assert result.n == wins + losses and result.ties == ties


def test_wilson_by_hand():
    z, n, p = 1.959963984540054, 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    result = ab_test(8, 2)
    assert (result.ci_low, result.ci_high) == pytest.approx((centre - half, centre + half))
    assert result.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024)  # P(X <= 2) + P(X >= 8), X ~ Bin(10, 1/2)
    assert not result.significant


def test_significance_and_ties_excluded():
    assert ab_test(70, 30, 500).significant
    assert ab_test(70, 30, 500).win_rate == pytest.approx(0.7)


def test_no_decided_pairs():
    result = ab_test(0, 0, 5)
    assert result.n == 0 and math.isnan(result.p_value) and math.isnan(result.win_rate) and not result.significant


@pytest.mark.parametrize("bad", [(-1, 0, 0), (1.5, 0, 0), (1, 1, -2)])
def test_bad_counts(bad):
    with pytest.raises(ValueError):
        ab_test(*bad)
