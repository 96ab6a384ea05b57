"""What clock a measurement ran on: a real server's, or the simulator's scaled one, and the way back.

``llmplat sim`` multiplies every latency by ``--sim-time-scale`` (0.05 in the demo: 20x faster than a T4), so a
throughput measured against it is 1/scale too high and a latency scale too low. Every figure that leaves the
measuring code is converted back to model time (what the simulator models: a T4) and labelled simulated, so a
$/1M-tokens figure is never 20x too cheap. A server that does not answer ``/sim/info`` is taken to be real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd

# per-request time columns of serving.results.RequestResult that scale with the server's clock
TIME_COLUMNS = (
    "ttft_s",
    "itl_mean_s",
    "itl_p50_s",
    "itl_p95_s",
    "tpot_s",
    "e2e_s",
    "scheduled_s",
    "started_s",
    "dispatch_delay_s",
)


@dataclass(frozen=True)
class Timebase:
    """``time_scale`` = measured seconds per model second (1.0 for a real server)."""

    time_scale: float = 1.0
    simulated: bool = False

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time scale must be > 0, got {self.time_scale}")

    @property
    def label(self) -> str:
        """For figures converted with :func:`to_model_time`."""
        if not self.simulated:
            return "measured (real server time)"
        return f"simulated (llmplat-sim at time scale {self.time_scale:g}, converted to simulated T4 time)"

    @property
    def raw_label(self) -> str:
        """For figures left as measured."""
        if not self.simulated:
            return "measured (real server time)"
        return f"simulated, as measured at llmplat-sim's time scale {self.time_scale:g} (divide by it for T4 time)"


def probe_timebase(base_url: str, timeout_s: float = 5.0, get: Callable[..., Any] = httpx.get) -> Timebase:
    """The simulator says its time scale at ``/sim/info``; anything else is a real server."""
    try:
        response = get(f"{base_url.rstrip('/')}/sim/info", timeout=timeout_s)
        if response.status_code != 200:
            return Timebase()
        info = response.json()
    except (httpx.HTTPError, ValueError):
        return Timebase()
    if not isinstance(info, dict) or info.get("simulator") != "llmplat-sim":
        return Timebase()
    return Timebase(float(info.get("time_scale", 1.0)), simulated=True)


def to_model_time(frame: pd.DataFrame, time_scale: float | pd.Series) -> pd.DataFrame:
    """Result rows with every time divided by the time scale (a number, or one per row), ITL lists included."""
    out = frame.copy()
    scale = time_scale if isinstance(time_scale, pd.Series) else pd.Series(float(time_scale), index=frame.index)
    if (scale == 1.0).all():
        return out
    for column in TIME_COLUMNS:
        if column in out:
            out[column] = pd.to_numeric(out[column], errors="coerce") / scale
    if "itl_s" in out:
        out["itl_s"] = [
            [g / s for g in gaps] if hasattr(gaps, "__iter__") else gaps
            for gaps, s in zip(out["itl_s"], scale, strict=True)
        ]
    return out
