"""Spread of the serving figures: bootstrap intervals on p95 latency, output throughput and $ per 1M tokens.

Requests are resampled with replacement (seeded). p95 e2e latency is recomputed per resample. Throughput is output
tokens over the run's span; by Little's law that is (tokens per second of request time) x (mean requests in flight),
and the load (mean in flight, set by the run's concurrency) is held fixed while the per-request token rate is
resampled, so the interval says how much the measured speed of this load could move, not how a different load
would do. Cost per 1M output tokens is the node price over that throughput: its bounds are the throughput's,
swapped. Above ``BOOTSTRAP_MAX_ROWS`` requests the distribution-free order-statistic interval (p95) and the ratio
estimator's normal interval (throughput) stand in: the bootstrap approaches them there, at thousands of times the
cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmplat_dagster.evaluation.accuracy import z_score
from llmplat_dagster.evaluation.bootstrap import resampled_means
from llmplat_dagster.evaluation.cost import cost_per_million_output_tokens

BOOTSTRAP_MAX_ROWS = 5000
_CHUNK_ENTRIES = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    @classmethod
    def nan(cls) -> Interval:
        return cls(math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class ServingSpread:
    e2e_p95_s: Interval
    output_token_throughput: Interval
    cost_per_mtok: Interval
    n: int


def _percentile_interval(samples: np.ndarray, point: float, confidence: float) -> Interval:
    alpha = (1 - confidence) / 2
    low, high = np.percentile(samples, [100 * alpha, 100 * (1 - alpha)])
    return Interval(float(point), float(low), float(high))


def quantile_interval(
    values: np.ndarray, q: float = 95, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """The q-th percentile with a bootstrap interval (order-statistic interval above BOOTSTRAP_MAX_ROWS values)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return Interval.nan()
    point = float(np.percentile(values, q))
    if n > BOOTSTRAP_MAX_ROWS:  # ranks of the interval's ends: Bin(n, q) quantiles, normal at this size
        p = q / 100
        half = z_score(confidence) * math.sqrt(n * p * (1 - p))
        ordered = np.sort(values)
        lo, hi = math.floor(n * p - half), math.ceil(n * p + half)
        return Interval(point, float(ordered[max(lo - 1, 0)]), float(ordered[min(hi, n - 1)]))
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ENTRIES // n)
    samples = np.concatenate(
        [
            np.percentile(values[rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))], q, axis=1)
            for start in range(0, n_resamples, per_chunk)
        ]
    )
    return _percentile_interval(samples, point, confidence)


def _rate_interval(
    tokens: np.ndarray, e2e: np.ndarray, in_flight: float, *, n_resamples: int, confidence: float, seed: int
) -> Interval:
    """Output tokens per second at this load: (sum tokens / sum request time) x mean requests in flight."""
    ratio = tokens.sum() / e2e.sum()
    n = len(tokens)
    if n > BOOTSTRAP_MAX_ROWS:
        se = float(np.std(tokens - ratio * e2e, ddof=1)) / math.sqrt(n) / float(e2e.mean())
        half = z_score(confidence) * se
        return Interval(ratio * in_flight, (ratio - half) * in_flight, (ratio + half) * in_flight)
    means = resampled_means(np.column_stack([tokens, e2e]), n_resamples=n_resamples, seed=seed)
    return _percentile_interval(means[:, 0] / means[:, 1] * in_flight, ratio * in_flight, confidence)


def serving_spread(
    rows: pd.DataFrame,
    price_per_hour: float,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ServingSpread:
    """Intervals over a variant's successful rows (``e2e_s``, ``output_tokens``, ``started_s``, in model time)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    e2e = ok["e2e_s"].to_numpy(dtype=float, na_value=np.nan)
    tokens = ok["output_tokens"].fillna(0).to_numpy(dtype=float)
    started = ok["started_s"].to_numpy(dtype=float, na_value=np.nan)
    keep = np.isfinite(e2e) & np.isfinite(started)
    e2e, tokens, started = e2e[keep], tokens[keep], started[keep]
    n = len(e2e)
    if n == 0:
        return ServingSpread(Interval.nan(), Interval.nan(), Interval.nan(), 0)
    span = float(np.max(started + e2e) - np.min(started))
    busy = float(e2e.sum())
    p95 = quantile_interval(e2e, 95, n_resamples=n_resamples, confidence=confidence, seed=seed)
    if span <= 0 or busy <= 0:
        return ServingSpread(p95, Interval.nan(), Interval.nan(), n)
    in_flight = busy / span  # Little's law: the load, held fixed
    throughput = _rate_interval(tokens, e2e, in_flight, n_resamples=n_resamples, confidence=confidence, seed=seed)

    def cost(tps: float) -> float:
        return cost_per_million_output_tokens(tps, price_per_hour)

    priced = Interval(cost(throughput.value), cost(throughput.high), cost(throughput.low))
    return ServingSpread(p95, throughput, priced, n)


def spread_record(
    frame: pd.DataFrame, price_per_hour: float, *, n_resamples: int, confidence: float, seed: int
) -> dict[str, float]:
    """:func:`serving_spread` as report columns: ``<figure>_ci_low/_ci_high`` and the cost itself."""
    spread = serving_spread(frame, price_per_hour, n_resamples=n_resamples, confidence=confidence, seed=seed)
    out = {"cost_per_mtok": spread.cost_per_mtok.value}
    for name, interval in (
        ("e2e_s_p95", spread.e2e_p95_s),
        ("output_token_throughput", spread.output_token_throughput),
        ("cost_per_mtok", spread.cost_per_mtok),
    ):
        out |= {f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high}
    return out
