"""Load sweep: one variant at concurrency 1, 2, 4, ... up to twice its max_num_seqs, as `vllm bench serve` runs it.

Each level sends a slice of a promptset closed-loop at that concurrency (``--max-concurrency``, request rate inf) and
records throughput, TTFT / ITL / TPOT percentiles and goodput under an SLO. Goodput follows ``vllm bench serve
--goodput``: a request counts only if it meets every configured SLO (TTFT, TPOT with 0 for a one-token answer, e2e
latency, in ms), and goodput is those requests over the level's duration. The saturation point is the lowest
concurrency whose output throughput is within ``tolerance`` of the sweep's best: beyond it more requests in flight
only queue. One replica sustains the best goodput of the sweep, so a request rate needs ``ceil(rate / goodput)``.
Rows are converted to model time first (``serving.timebase``), so every figure is a T4's, simulated or measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from llmplat_dagster.serving.client import ServingRequest
from llmplat_dagster.serving.results import OK, RequestResult, latency_summary, results_frame
from llmplat_dagster.serving.timebase import to_model_time


@dataclass(frozen=True)
class SLO:
    """Per-request service-level objectives in milliseconds; None leaves a metric unchecked."""

    ttft_ms: float | None = 2000.0
    tpot_ms: float | None = 100.0
    e2el_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tpot_ms", "e2el_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"SLO {name} must be a positive number of milliseconds, got {value!r}")
        if self.ttft_ms is None and self.tpot_ms is None and self.e2el_ms is None:
            raise ValueError("an SLO needs at least one of ttft_ms, tpot_ms, e2el_ms")

    def describe(self) -> str:
        """vllm bench serve's spelling: ``ttft:2000 tpot:100``."""
        parts = [(k, getattr(self, f"{k}_ms")) for k in ("ttft", "tpot", "e2el")]
        return " ".join(f"{k}:{v:g}" for k, v in parts if v is not None)

    def good(self, rows: pd.DataFrame) -> np.ndarray:
        """Which successful rows meet every configured SLO (TPOT of a one-token answer counts as 0, as vLLM's)."""
        ok = (rows["status"] == OK).to_numpy(dtype=bool)
        good = ok.copy()
        tpot = rows["tpot_s"].to_numpy(dtype=float, na_value=np.nan)
        tpot = np.where(np.isnan(tpot) & ok, 0.0, tpot)
        for column, limit in (("ttft_s", self.ttft_ms), ("e2e_s", self.e2el_ms)):
            if limit is not None:
                good &= rows[column].to_numpy(dtype=float, na_value=np.inf) <= limit / 1000
        if self.tpot_ms is not None:
            good &= tpot <= self.tpot_ms / 1000
        return good


def concurrency_levels(max_num_seqs: int, factor: float = 2.0) -> list[int]:
    """1, 2, 4, ... up to ``factor`` x max_num_seqs, which ends the list even when it is not a power of two."""
    if max_num_seqs < 1 or factor <= 0:
        raise ValueError(f"need max_num_seqs >= 1 and factor > 0, got {max_num_seqs} and {factor}")
    top = max(1, math.floor(factor * max_num_seqs))
    levels = [2**i for i in range(top.bit_length()) if 2**i <= top]
    return levels if levels[-1] == top else [*levels, top]


def level_requests(requests: Sequence[ServingRequest], n: int, level: int) -> list[ServingRequest]:
    """``n`` requests cycling through the promptset slice, ids unique per level (``<id>@c<level>#<k>``)."""
    if not requests:
        raise ValueError("the sweep needs at least one prompt")
    return [
        replace(requests[i % len(requests)], prompt_id=f"{requests[i % len(requests)].prompt_id}@c{level}#{i}")
        for i in range(n)
    ]


def summarize_level(rows: pd.DataFrame, concurrency: int, slo: SLO) -> dict[str, float]:
    """One level's figures (rows already in model time): vllm bench serve's definitions plus goodput."""
    s = latency_summary(rows)
    duration = s["duration_s"]
    good = int(slo.good(rows).sum()) if len(rows) else 0
    valid = isinstance(duration, float) and duration > 0
    return {
        "concurrency": concurrency,
        "requests": s["requests"],
        "errors": s["errors"],
        "duration_s": duration,
        "request_throughput": s["request_throughput"],
        "output_token_throughput": s["output_token_throughput"],
        "ttft_p50_ms": s["ttft_s_p50"] * 1000,
        "ttft_p95_ms": s["ttft_s_p95"] * 1000,
        "itl_p50_ms": s["itl_s_p50"] * 1000,
        "itl_p95_ms": s["itl_s_p95"] * 1000,
        "tpot_p50_ms": s["tpot_s_p50"] * 1000,
        "tpot_p95_ms": s["tpot_s_p95"] * 1000,
        "e2e_p95_s": s["e2e_s_p95"],
        "good_requests": good,
        "goodput": good / duration if valid else math.nan,
        "good_share": good / s["requests"] if s["requests"] else math.nan,
    }


def saturation_point(levels: pd.DataFrame, tolerance: float = 0.1) -> int | None:
    """The lowest concurrency whose output throughput is within ``tolerance`` of the best level's."""
    throughput = levels["output_token_throughput"].to_numpy(dtype=float)
    if not np.isfinite(throughput).any():
        return None
    best = np.nanmax(throughput)
    reached = levels.loc[throughput >= (1 - tolerance) * best, "concurrency"]
    return int(reached.min())


def replicas_needed(request_rate: float, goodput_per_replica: float) -> int | None:
    """Replicas for ``request_rate`` requests/s within the SLO; None when no level met it at all."""
    if request_rate <= 0:
        raise ValueError(f"request rate must be > 0, got {request_rate}")
    if not (math.isfinite(goodput_per_replica) and goodput_per_replica > 0):
        return None
    return math.ceil(request_rate / goodput_per_replica - 1e-9)


@dataclass(frozen=True)
class SweepResult:
    levels: pd.DataFrame
    saturation: int | None
    best_goodput: float
    best_goodput_concurrency: int | None
    replicas: int | None


def analyse(levels: pd.DataFrame, request_rate: float, tolerance: float = 0.1) -> SweepResult:
    """Saturation, the best goodput (and where), and the replicas ``request_rate`` needs."""
    goodput = levels["goodput"].to_numpy(dtype=float)
    if np.isfinite(goodput).any() and np.nanmax(goodput) > 0:
        at = int(np.nanargmax(goodput))
        best, where = float(goodput[at]), int(levels["concurrency"].iloc[at])
    else:
        best, where = 0.0, None
    return SweepResult(levels, saturation_point(levels, tolerance), best, where, replicas_needed(request_rate, best))


def run_sweep(
    send: Callable[[int, list[ServingRequest]], list[RequestResult]],
    requests: Sequence[ServingRequest],
    levels: Sequence[int],
    *,
    slo: SLO,
    time_scale: float = 1.0,
    requests_per_slot: int = 4,
    min_requests: int = 8,
    on_level: Callable[[dict[str, float]], None] | None = None,
) -> pd.DataFrame:
    """Every level in turn through ``send(concurrency, requests)`` (the serving client, injected); one row each."""
    out = []
    for level in levels:
        n = max(min_requests, requests_per_slot * level)
        rows = to_model_time(results_frame(send(level, level_requests(requests, n, level))), time_scale)
        summary = summarize_level(rows, level, slo)
        if on_level is not None:
            on_level(summary)
        out.append(summary)
    return pd.DataFrame(out)


def sweep_plot(levels: pd.DataFrame, *, title: str, measured_against: str, slo: SLO) -> bytes:
    """PNG: throughput and goodput vs concurrency; TTFT and ITL p95 vs concurrency (the SLO drawn in)."""
    from llmplat_dagster.plots import figure, png

    with figure(1, 2, figsize=(10, 3.8), dpi=100) as (fig, (left, right)):
        c = levels["concurrency"]
        left.plot(c, levels["output_token_throughput"], marker="o", label="output tokens/s")
        twin = left.twinx()
        twin.plot(c, levels["goodput"], marker="s", color="tab:green", label="goodput (req/s)")
        left.set_xscale("log", base=2)
        left.set_xlabel("concurrency")
        left.set_ylabel("output tokens/s")
        twin.set_ylabel("goodput (requests/s within SLO)")
        left.legend(loc="upper left", fontsize=8)
        twin.legend(loc="lower right", fontsize=8)
        right.plot(c, levels["ttft_p95_ms"], marker="o", label="TTFT p95 (ms)")
        right.plot(c, levels["itl_p95_ms"], marker="o", label="ITL p95 (ms)")
        if slo.ttft_ms is not None:
            right.axhline(slo.ttft_ms, linestyle="--", color="grey", linewidth=1, label=f"TTFT SLO {slo.ttft_ms:g} ms")
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set_xlabel("concurrency")
        right.legend(fontsize=8)
        fig.suptitle(f"{title} — measured against {measured_against}", fontsize=9)
        return png(fig)
