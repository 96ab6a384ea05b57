"""A/B: ties-half win rate with a Wilson interval (scipy's, by hand) and the sign test on decided pairs."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from llmplat_dagster.evaluation.ab import ab_test


@pytest.mark.parametrize(("wins", "losses"), [(60, 40), (8, 2), (50, 50), (0, 12), (130, 70)])
def test_without_ties_it_matches_scipy(wins, losses):
    result = ab_test(wins, losses)
    reference = binomtest(wins, wins + losses, 0.5)
    ci = reference.proportion_ci(0.95, method="wilson")
    assert result.p_value == pytest.approx(reference.pvalue)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high))
    assert result.win_rate == pytest.approx(wins / (wins + losses)) == pytest.approx(result.decided_win_rate)
    assert result.n == wins + losses == result.pairs


def test_wilson_by_hand():
    z, n, p = 1.959963984540054, 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    result = ab_test(8, 2)
    assert (result.ci_low, result.ci_high) == pytest.approx((centre - half, centre + half))
    assert result.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024)  # P(X <= 2) + P(X >= 8), X ~ Bin(10, 1/2)
    assert not result.significant


def test_ties_count_half_in_the_win_rate_and_nothing_in_the_sign_test():
    result = ab_test(70, 30, 500)
    assert result.win_rate == pytest.approx((70 + 250) / 600) and result.decided_win_rate == pytest.approx(0.7)
    assert result.significant and result.p_value == pytest.approx(binomtest(70, 100, 0.5).pvalue)
    assert result.ci_low < result.win_rate < result.ci_high


def test_a_treatment_the_judge_cannot_tell_from_its_control_scores_one_half_with_no_evidence():
    result = ab_test(0, 0, 42)
    assert result.win_rate == 0.5 and result.p_value == 1.0 and result.n == 0 and not result.significant
    assert result.ci_low < 0.5 < result.ci_high and math.isnan(result.decided_win_rate)


def test_no_pairs_at_all():
    result = ab_test(0, 0, 0)
    assert result.pairs == 0 and math.isnan(result.win_rate) and math.isnan(result.p_value) and not result.significant


@pytest.mark.parametrize("bad", [(-1, 0, 0), (1.5, 0, 0), (1, 1, -2)])
def test_bad_counts(bad):
    with pytest.raises(ValueError):
        ab_test(*bad)


def test_the_ab_plot_is_a_png_for_a_result_and_for_no_pairs():
    from llmplat_dagster.evaluation.ab import ab_plot

    for result in (ab_test(12, 4, 26), ab_test(0, 0, 0)):
        png = ab_plot(result, control="fp16", treatment="lora", measured_against="simulator (test)")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
