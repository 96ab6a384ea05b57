"""Fault injection, drawn deterministically from (--sim-seed, request number, fault kind).

The n-th generation request always meets the same fate for a given seed, so a failing test or demo
can be replayed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplat_dagster.sim.config import SimConfig
from llmplat_dagster.sim.model import unit


@dataclass(frozen=True)
class Fate:
    """What happens to one request."""

    error_status: int | None = None
    slow_s: float = 0.0
    disconnect_after: int | None = None  # chunks (streamed) before the connection is cut


class Faults:
    def __init__(self, config: SimConfig) -> None:
        self.c = config
        self.count = 0

    def draw(self) -> Fate:
        """Fate of the next generation request (also advances the request counter)."""
        self.count += 1
        n, c = self.count, self.c
        if unit(c.seed, n, "error") < c.error_rate:
            return Fate(error_status=c.error_status)
        slow = c.slow_delay_s * c.time_scale if unit(c.seed, n, "slow") < c.slow_rate else 0.0
        cut = c.disconnect_after_chunks if unit(c.seed, n, "disconnect") < c.disconnect_rate else None
        return Fate(slow_s=slow, disconnect_after=cut)

    def exhausted(self) -> bool:
        """True once --sim-exit-after requests have been taken: the server should go away."""
        return self.c.exit_after is not None and self.count >= self.c.exit_after
