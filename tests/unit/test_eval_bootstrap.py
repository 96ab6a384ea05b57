"""Bootstrap CIs: seeded, chunking-invariant, paired, and covering a known delta at about the nominal rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmplat_dagster.evaluation import bootstrap
from llmplat_dagster.evaluation.bootstrap import (
    bootstrap_mean_ci,
    paired_bootstrap_ci,
    paired_bootstrap_cis,
    resampled_means,
)


def test_seeded_and_reproducible():
    rng = np.random.default_rng(0)
    cand, ref = rng.normal(size=300), rng.normal(size=300)
    a = paired_bootstrap_ci(cand, ref, n_resamples=400, seed=5)
    assert a == paired_bootstrap_ci(cand, ref, n_resamples=400, seed=5)
    assert a != paired_bootstrap_ci(cand, ref, n_resamples=400, seed=6)
    assert a.delta == pytest.approx(float(np.mean(cand - ref)))
    assert a.low < a.delta < a.high and a.n == 300 and a.n_resamples == 400


@pytest.mark.parametrize("chunk_entries", [1, 7, 100, 1_000, 10**9])
def test_chunking_does_not_change_the_draws(chunk_entries):
    values = np.arange(50, dtype=float) ** 1.5
    expected = resampled_means(values, n_resamples=64, seed=3)
    np.testing.assert_allclose(resampled_means(values, n_resamples=64, seed=3, chunk_entries=chunk_entries), expected)


def test_resampled_means_by_hand():
    # one value: every resample is that value; two columns share indices
    np.testing.assert_array_equal(resampled_means(np.array([4.0]), n_resamples=5), np.full(5, 4.0))
    two = resampled_means(np.column_stack([np.arange(10.0), 2 * np.arange(10.0)]), n_resamples=20, seed=1)
    np.testing.assert_allclose(two[:, 1], 2 * two[:, 0])
    with pytest.raises(ValueError):
        resampled_means(np.array([]))


def test_paired_beats_unpaired_on_correlated_data():
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 1, size=400)
    ref = difficulty + rng.normal(0, 0.05, size=400)
    cand = difficulty - 0.02 + rng.normal(0, 0.05, size=400)
    paired = paired_bootstrap_ci(cand, ref, n_resamples=500)
    unpaired_width = 2 * 1.96 * math.sqrt(cand.var() / 400 + ref.var() / 400)
    assert paired.high - paired.low < unpaired_width / 5
    assert paired.high < 0  # the small shift is detected only because the pairing removes prompt difficulty


def test_missing_values_are_dropped_and_nothing_gives_nan():
    ci = paired_bootstrap_ci([1.0, np.nan, 3.0], [0.0, 0.0, np.nan], n_resamples=10)
    assert ci.n == 1 and ci.delta == ci.low == ci.high == 1.0
    empty = paired_bootstrap_ci([], [], n_resamples=10)
    assert empty.n == 0 and math.isnan(empty.delta) and math.isnan(empty.low)
    assert math.isnan(bootstrap_mean_ci([np.nan]).low)


@pytest.mark.parametrize("bad", [([1.0, 2.0], [1.0]), ([[1.0]], [[1.0]])])
def test_shape_mismatch_raises(bad):
    with pytest.raises(ValueError):
        paired_bootstrap_ci(*bad)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
def test_confidence_must_be_a_probability(confidence):
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], confidence=confidence)


def test_wider_confidence_gives_a_wider_interval():
    values = np.random.default_rng(2).exponential(size=200)
    narrow = bootstrap_mean_ci(values, confidence=0.8, n_resamples=1000)
    wide = bootstrap_mean_ci(values, confidence=0.99, n_resamples=1000)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_joint_cis_equal_separate_calls_with_the_same_seed():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=250)
    cands = np.column_stack([ref + rng.normal(-0.1, 0.3, 250), ref + rng.normal(0.05, 0.3, 250)])
    joint = paired_bootstrap_cis(cands, ref, n_resamples=300, seed=9)
    for j, ci in enumerate(joint):
        alone = paired_bootstrap_ci(cands[:, j], ref, n_resamples=300, seed=9)
        assert (ci.delta, ci.low, ci.high, ci.n) == pytest.approx((alone.delta, alone.low, alone.high, alone.n))


@pytest.mark.parametrize(("make", "truth"), [("paired", 0.1), ("mean", 0.5)])
def test_coverage_of_a_known_delta_is_near_nominal(make, truth):
    """200 seeded experiments of n=200: the 95% interval should contain the truth ~95% of the time."""
    rng = np.random.default_rng(2024)
    hits = 0
    for rep in range(200):
        if make == "paired":
            ref = rng.normal(0.6, 0.2, size=200)
            cand = ref + truth + rng.normal(0, 0.3, size=200)
            ci = paired_bootstrap_ci(cand, ref, n_resamples=500, seed=rep)
        else:
            ci = bootstrap_mean_ci(rng.exponential(truth, size=200), n_resamples=500, seed=rep)
        hits += ci.low <= truth <= ci.high
    assert 0.90 <= hits / 200 <= 0.99


@pytest.mark.parametrize(("n", "chunk_entries"), [(1001, 5_000), (2_000, 1 << 22), (3, 7)])
def test_drawing_thread_and_cache_blocks_do_not_change_the_means(monkeypatch, n, chunk_entries):
    values = np.random.default_rng(n).normal(size=(n, 2))
    monkeypatch.setattr(bootstrap, "_THREADED_ENTRIES", 1 << 62)  # serial
    monkeypatch.setattr(bootstrap, "_BLOCK_ENTRIES", 1 << 62)  # one block per chunk
    serial = resampled_means(values, n_resamples=97, seed=8, chunk_entries=chunk_entries)
    monkeypatch.setattr(bootstrap, "_THREADED_ENTRIES", 0)  # drawing thread
    monkeypatch.setattr(bootstrap, "_BLOCK_ENTRIES", 1)  # one resample per block
    np.testing.assert_array_equal(resampled_means(values, n_resamples=97, seed=8, chunk_entries=chunk_entries), serial)


def test_means_equal_a_plain_gather_with_the_same_draws():
    values = np.random.default_rng(3).exponential(size=500)
    idx = np.random.default_rng(6).integers(0, 500, size=(40, 500))
    np.testing.assert_array_equal(resampled_means(values, n_resamples=40, seed=6), values[idx].sum(axis=1) / 500)
