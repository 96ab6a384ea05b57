"""One row per request, and the latency summaries computed from many rows.

Definitions follow `vllm bench serve` (vllm/benchmarks/lib/endpoint_request_func.py and serve.py) so
numbers from this client and from vLLM's own benchmark can be compared directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OK = "ok"
ERROR = "error"


@dataclass(slots=True)
class RequestResult:
    """What one request did, measured from the client side; failed requests keep their timings as None."""

    prompt_id: str
    variant: str
    status: str = ERROR  # "ok" | "error"
    error: str | None = None
    http_status: int | None = None
    attempts: int = 0
    output_text: str = ""
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    itl_mean_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    # Seconds on the run's monotonic clock from the run's start; dispatch_delay_s = started - scheduled, so
    # a client that cannot keep up with its schedule shows up here instead of silently inflating latency.
    scheduled_s: float | None = None
    started_s: float | None = None
    dispatch_delay_s: float | None = None
    started_unix: float | None = None
    finish_reason: str | None = None
    request_id: str | None = None  # the server's id (response `id`), to find the request in its logs
    top_logprobs: list[dict[str, float]] | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of an already sorted, non-empty sequence."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def tpot(e2e_s: float, ttft_s: float, output_tokens: int | None) -> float | None:
    """Time per output token excluding the first: (e2e - TTFT) / (tokens - 1); undefined below 2 tokens."""
    if output_tokens is None or output_tokens < 2:
        return None
    return (e2e_s - ttft_s) / (output_tokens - 1)


def results_frame(rows: Iterable[RequestResult]) -> pd.DataFrame:
    """Rows as a DataFrame (one column per field, the ITL list kept as a list column)."""
    columns = [f.name for f in dataclasses.fields(RequestResult)]
    return pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)


def _frame(rows: pd.DataFrame | Iterable[RequestResult]) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else results_frame(rows)


def _quantiles(values: np.ndarray, prefix: str, qs: Sequence[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    finite = values[~np.isnan(values)]
    out[f"{prefix}_mean"] = float(finite.mean()) if finite.size else math.nan
    pcts = np.percentile(finite, qs) if finite.size else [math.nan] * len(qs)
    for q, v in zip(qs, pcts, strict=True):
        out[f"{prefix}_p{q}"] = float(v)
    return out


def latency_summary(
    rows: pd.DataFrame | Iterable[RequestResult],
    *,
    duration_s: float | None = None,
    quantiles: Sequence[int] = (50, 95, 99),
) -> dict[str, Any]:
    """p50/p95/p99 of TTFT, TPOT, ITL and e2e over successful requests, error rate and throughput.

    ITL percentiles pool every gap of every request (as vllm bench serve does), so long answers weigh more.
    Throughput uses `duration_s` when given, else the span from the first start to the last finish.
    """
    df = _frame(rows)
    n = len(df)
    ok = df[df["status"] == OK] if n else df
    summary: dict[str, Any] = {
        "requests": n,
        "ok": len(ok),
        "errors": n - len(ok),
        "error_rate": (n - len(ok)) / n if n else math.nan,
    }
    for col, prefix in (("ttft_s", "ttft_s"), ("tpot_s", "tpot_s"), ("e2e_s", "e2e_s")):
        values = ok[col].to_numpy(dtype=float, na_value=np.nan) if len(ok) else np.array([], dtype=float)
        summary.update(_quantiles(values, prefix, quantiles))
    itl = np.fromiter((g for gaps in ok["itl_s"] for g in gaps), dtype=float) if len(ok) else np.array([], dtype=float)
    summary.update(_quantiles(itl, "itl_s", quantiles))
    if duration_s is None and len(ok):
        started = ok["started_s"].to_numpy(dtype=float, na_value=np.nan)
        ended = started + ok["e2e_s"].to_numpy(dtype=float, na_value=np.nan)
        duration_s = float(np.nanmax(ended) - np.nanmin(started)) if np.isfinite(started).any() else None
    out_tokens = float(ok["output_tokens"].fillna(0).sum()) if len(ok) else 0.0
    in_tokens = float(ok["prompt_tokens"].fillna(0).sum()) if len(ok) else 0.0
    summary["duration_s"] = duration_s if duration_s is not None else math.nan
    valid = bool(duration_s) and duration_s > 0
    summary["request_throughput"] = len(ok) / duration_s if valid else math.nan
    summary["output_token_throughput"] = out_tokens / duration_s if valid else math.nan
    summary["total_token_throughput"] = (in_tokens + out_tokens) / duration_s if valid else math.nan
    delays = df["dispatch_delay_s"].to_numpy(dtype=float, na_value=np.nan) if n else np.array([])
    delays = delays[~np.isnan(delays)]
    summary["dispatch_delay_p95_s"] = float(np.percentile(delays, 95)) if delays.size else math.nan
    return summary


def summary_by(rows: pd.DataFrame | Iterable[RequestResult], by: str = "variant", **kwargs: Any) -> pd.DataFrame:
    """`latency_summary` per group (default per variant), one row each."""
    df = _frame(rows)
    records = [{by: key, **latency_summary(group, **kwargs)} for key, group in df.groupby(by, sort=True)]
    return pd.DataFrame.from_records(records)


def resumed_summary(done: list[RequestResult], new: list[RequestResult]) -> tuple[pd.DataFrame, dict[str, float]]:
    """All rows (resumed and new) and their summary; duration and throughput over this run's own requests only,
    since the resumed rows were timed on another run's clock (and a run that only resumed measured no rate)."""
    frame = results_frame([*done, *new])
    summary = latency_summary(frame)
    if done:
        this_run = latency_summary(results_frame(new)) if new else {}
        for k in ("duration_s", "request_throughput", "output_token_throughput", "total_token_throughput"):
            summary[k] = this_run.get(k, math.nan)
    return frame, summary
