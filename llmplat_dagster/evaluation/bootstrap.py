"""Percentile bootstrap confidence intervals for a mean and for a paired mean difference.

Paired: each resample draws prompt indices and takes both variants' values at those indices, so the
between-prompt variance (hard prompts are hard for every variant) cancels out of the delta's interval.
One index matrix per chunk of resamples (``chunk x n``, ~4M entries, so 100k prompts x 2000 resamples needs
~100 MB of buffers instead of 1.6 GB of indices); the generator is seeded, so a report is reproducible. Two calls
with the same seed and the same n draw the same indices (common random numbers across candidates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

CHUNK_ENTRIES = 1 << 22
_BLOCK_ENTRIES = 1 << 17  # indices gathered at a time: the gathered values stay in L2
_THREADED_ENTRIES = 1 << 23  # draws below which a drawing thread costs more than it saves


@dataclass(frozen=True)
class CI:
    """Observed mean (difference) ``delta`` with its percentile interval; n = pairs (or values) used."""

    delta: float
    low: float
    high: float
    n: int
    confidence: float = 0.95
    n_resamples: int = 0


def resampled_means(
    values: np.ndarray, *, n_resamples: int = 2000, seed: int = 0, chunk_entries: int = CHUNK_ENTRIES
) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the rows of ``values`` (shape (n,) or (n, m)).

    Columns share one index matrix, so m candidates cost one set of random draws. Drawing the indices and
    gathering the values cost about the same, so for large inputs a helper thread draws the next chunk while
    this one is gathered (numpy releases the GIL in both); the draws still come from one generator in one order,
    so the result does not depend on chunking or threading. Each resample is gathered and summed on its own, into
    a buffer that stays in cache (``np.take`` with ``mode="clip"`` writes into it unbuffered; indices are always
    in range), and summed with the same pairwise summation as a whole chunk would be.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    if n == 0 or n_resamples < 1:
        raise ValueError("need at least one value and one resample")
    columns = np.ascontiguousarray(values.reshape(n, -1).T)  # one contiguous row per column: fast 1-D take
    rng = np.random.default_rng(seed)
    per_chunk = min(n_resamples, max(1, chunk_entries // n))
    starts = range(0, n_resamples, per_chunk)
    block = max(1, min(per_chunk, _BLOCK_ENTRIES // n))
    gathered = np.empty((block, n))
    sums = np.empty((columns.shape[0], n_resamples))

    def draw(start: int) -> np.ndarray:
        return rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))

    def gather(start: int, idx: np.ndarray) -> None:
        for row in range(0, len(idx), block):
            part = idx[row : row + block]
            k = len(part)
            for j, column in enumerate(columns):
                np.take(column, part, out=gathered[:k], mode="clip")  # mode="raise" would buffer `out`
                gathered[:k].sum(axis=1, out=sums[j, start + row : start + row + k])

    if len(starts) == 1 or n * n_resamples < _THREADED_ENTRIES:
        for start in starts:
            gather(start, draw(start))
    else:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(draw, starts[0])
            for i, start in enumerate(starts):
                idx = pending.result()
                if i + 1 < len(starts):
                    pending = pool.submit(draw, starts[i + 1])  # the generator is only ever used by this thread
                gather(start, idx)
    means = sums.T / n
    return means.reshape(n_resamples, *values.shape[1:])


def _interval(delta: float, means: np.ndarray, n: int, confidence: float, n_resamples: int) -> CI:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return CI(float(delta), float(low), float(high), n, confidence, n_resamples)


def _check(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> CI:
    """Mean of the finite values with its percentile bootstrap interval; NaN interval when there are none."""
    _check(confidence)
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return CI(math.nan, math.nan, math.nan, 0, confidence, n_resamples)
    return _interval(v.mean(), resampled_means(v, n_resamples=n_resamples, seed=seed), v.size, confidence, n_resamples)


def paired_bootstrap_ci(
    candidate_values: Sequence[float] | np.ndarray,
    reference_values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CI:
    """Mean of (candidate - reference) over pairs where both are finite, with a paired bootstrap interval.

    Resampling prompt indices and averaging the per-prompt differences is the same as resampling both
    columns with one index matrix, at half the memory traffic.
    """
    _check(confidence)
    cand = np.asarray(candidate_values, dtype=float)
    ref = np.asarray(reference_values, dtype=float)
    if cand.shape != ref.shape or cand.ndim != 1:
        raise ValueError(f"paired values need the same 1-D shape, got {cand.shape} and {ref.shape}")
    diff = cand - ref
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return CI(math.nan, math.nan, math.nan, 0, confidence, n_resamples)
    means = resampled_means(diff, n_resamples=n_resamples, seed=seed)
    return _interval(diff.mean(), means, diff.size, confidence, n_resamples)


def paired_bootstrap_cis(
    candidate_values: np.ndarray,
    reference_values: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[CI]:
    """:func:`paired_bootstrap_ci` for m candidates on the same n prompts ((n, m) and (n,) or (n, m)) at once.

    One index matrix serves every column, so the result equals m separate calls with the same seed when no
    value is missing, at a fraction of the cost; prompts with a missing value in any column are dropped.
    """
    _check(confidence)
    cand = np.asarray(candidate_values, dtype=float)
    ref = np.asarray(reference_values, dtype=float)
    ref = ref[:, None] if ref.ndim == 1 else ref
    if cand.ndim != 2 or cand.shape[0] != ref.shape[0]:
        raise ValueError(f"need (n, m) candidates and (n,) or (n, m) reference, got {cand.shape} and {ref.shape}")
    diff = cand - ref
    diff = diff[np.isfinite(diff).all(axis=1)]
    if diff.shape[0] == 0:
        return [CI(math.nan, math.nan, math.nan, 0, confidence, n_resamples) for _ in range(cand.shape[1])]
    means = resampled_means(diff, n_resamples=n_resamples, seed=seed)
    return [_interval(d, means[:, j], diff.shape[0], confidence, n_resamples) for j, d in enumerate(diff.mean(axis=0))]
