"""Task accuracy: Wilson intervals (against scipy), paired deltas with McNemar's exact test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from llmplat_dagster.evaluation.accuracy import accuracy, mcnemar_p, paired_accuracy, wilson


@pytest.mark.parametrize(("k", "n"), [(34, 42), (0, 12), (12, 12), (1, 3), (500, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high))


def test_wilson_of_nothing_is_nan_and_narrows_with_n():
    assert all(math.isnan(x) for x in wilson(0, 0))
    low_small, high_small = wilson(8, 10)
    low_big, high_big = wilson(800, 1000)
    assert high_big - low_big < high_small - low_small


def test_accuracy_leaves_out_prompts_that_cannot_be_checked():
    result = accuracy([True, False, True, None, float("nan"), True])
    assert (result.value, result.n, result.correct) == (0.75, 4, 3)
    assert result.low < 0.75 < result.high
    empty = accuracy([None, None])
    assert empty.n == 0 and math.isnan(empty.value) and math.isnan(empty.low)


@pytest.mark.parametrize(("gained", "lost"), [(0, 0), (1, 4), (3, 3), (0, 9), (12, 2)])
def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs(gained, lost):
    expected = 1.0 if gained + lost == 0 else binomtest(gained, gained + lost, 0.5).pvalue
    assert mcnemar_p(gained, lost) == pytest.approx(expected)


def test_paired_accuracy_counts_discordant_prompts_and_bootstraps_the_delta():
    ref = [True] * 30 + [False] * 12
    cand = [True] * 26 + [False] * 4 + [True] * 1 + [False] * 11  # loses 4, gains 1
    result = paired_accuracy(cand, ref, n_resamples=2000, seed=0)
    assert (result.gained, result.lost, result.n) == (1, 4, 42)
    assert result.delta == pytest.approx(-3 / 42)
    assert result.low < result.delta < result.high <= 0.03
    assert result.p_value == pytest.approx(binomtest(1, 5, 0.5).pvalue)
    again = paired_accuracy(cand, ref, n_resamples=2000, seed=0)
    assert (again.low, again.high) == (result.low, result.high)  # seeded


def test_an_identical_candidate_has_zero_delta_and_no_evidence():
    flags = np.array([True, False] * 21)
    result = paired_accuracy(flags, flags)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_accuracy_uses_prompts_checkable_on_both_sides_and_refuses_misaligned_input():
    result = paired_accuracy([True, None, False], [True, True, None])
    assert result.n == 1 and result.delta == 0.0
    with pytest.raises(ValueError, match="same prompts"):
        paired_accuracy([True], [True, False])
