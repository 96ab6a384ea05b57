"""Continuous-batching scheduler: at most ``max_num_seqs`` requests decode at once, the rest wait.

Each admitted request sleeps (really, with asyncio) through prefill and then one decode step per
token, whose length grows with the running batch. Per-request timings as the server scheduled them are
kept as ground truth for clients that measure latency from the outside.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from llmplat_dagster.sim.latency import LatencyModel
from llmplat_dagster.sim.metrics import SimMetrics

_KEEP_TIMINGS = 4096


@dataclass
class Timing:
    """Server-side timeline of one request, in ``time.monotonic()`` seconds."""

    request_id: str
    model: str
    prompt_tokens: int
    arrival: float
    wall_arrival: float = field(default_factory=time.time)
    admitted: float | None = None
    token_times: list[float] = field(default_factory=list)
    finished: float | None = None
    finish_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        t = self.token_times
        first = t[0] if t else None
        end = self.finished or (t[-1] if t else None)
        itls = [b - a for a, b in zip(t, t[1:], strict=False)]
        return {
            "id": self.request_id,
            "model": self.model,
            "arrival_unix": self.wall_arrival,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": len(t),
            "queue_s": (self.admitted - self.arrival) if self.admitted is not None else None,
            "ttft_s": (first - self.arrival) if first is not None else None,
            "itl_s": itls,
            "tpot_s": ((t[-1] - first) / (len(t) - 1)) if len(t) > 1 else None,
            "e2e_s": (end - self.arrival) if end is not None else None,
            "finish_reason": self.finish_reason,
        }

    def header(self) -> str:
        """Compact form for the ``x-sim-timing`` header (no ITL list: headers must stay small)."""
        d = self.as_dict()
        parts = [f"{k}={d[k]:.6f}" for k in ("queue_s", "ttft_s", "tpot_s", "e2e_s") if d[k] is not None]
        return ";".join([*parts, f"output_tokens={d['output_tokens']}"])


class Engine:
    """Admission, timing and gauges of one simulated vLLM engine."""

    def __init__(
        self,
        max_num_seqs: int,
        latency: LatencyModel,
        metrics: SimMetrics,
        kv_capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.latency = latency
        self.metrics = metrics
        self.kv_capacity = kv_capacity
        self.clock = clock
        self.max_num_seqs = max_num_seqs
        self._slots: asyncio.Semaphore | None = None
        self.running = 0
        self.waiting = 0
        self.kv_tokens = 0
        self.timings: OrderedDict[str, Timing] = OrderedDict()

    def _gauges(self) -> None:
        self.metrics.running.set(self.running)
        self.metrics.waiting.set(self.waiting)
        self.metrics.kv_usage.set(min(1.0, self.kv_tokens / self.kv_capacity))

    def new_timing(self, request_id: str, model: str, prompt_tokens: int, arrival: float | None = None) -> Timing:
        timing = Timing(request_id, model, prompt_tokens, arrival=self.clock() if arrival is None else arrival)
        self.timings[request_id] = timing
        while len(self.timings) > _KEEP_TIMINGS:
            self.timings.popitem(last=False)
        return timing

    async def run(
        self, timing: Timing, steps: int, seqs: int = 1, lora: bool = False, extra_delay_s: float = 0.0
    ) -> AsyncIterator[int]:
        """Yield step indices 0..steps-1 at their scheduled times; the caller emits step i's tokens.

        The time of each yield is recorded as that token's emission time. Use with
        ``contextlib.aclosing`` so a client disconnect frees the slot at once.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_num_seqs)
        self.waiting += 1
        self._gauges()
        admitted = False
        held = 0
        try:
            await self._slots.acquire()
            admitted = True
            self.waiting -= 1
            self.running += 1
            timing.admitted = self.clock()
            held = timing.prompt_tokens * seqs
            self.kv_tokens += held
            self._gauges()
            deadline = self.clock() + self.latency.prefill_s(timing.prompt_tokens) + extra_delay_s
            for i in range(steps):
                await asyncio.sleep(max(0.0, deadline - self.clock()))
                now = self.clock()
                timing.token_times.append(now)
                self.kv_tokens += seqs
                held += seqs
                if i % 8 == 0:
                    self._gauges()
                yield i
                deadline = max(deadline, now) + self.latency.itl_at(self.running, lora)
        finally:
            timing.finished = self.clock()
            if admitted:
                self.running -= 1
                self.kv_tokens -= held
                self._slots.release()
            else:
                self.waiting -= 1
            self._gauges()
