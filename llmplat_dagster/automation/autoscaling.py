"""Autoscaling validation (design document section 6.3) as an object with injected replicas, load and time.

The design's script sleeps a fixed 2 and 6 minutes and reads replicas once; this polls instead, so a pass
reports how long scaling took and a failure reports what was observed until the window closed. The
defaults mirror the design's KEDA ScaledObject (pollingInterval 15 s, cooldownPeriod 300 s, 2 minutes
to scale up, 1 minute of margin for the scale-down itself); tests pass seconds and a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One step of the validation; `started_s` is relative to the start of the run."""

    name: str
    started_s: float
    seconds: float
    passed: bool
    detail: str


@dataclass
class AutoscalingReport:
    steps: list[Step] = field(default_factory=list)
    passed: bool = False
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, replicas)

    def summary(self) -> str:
        lines = [f"autoscaling validation {'passed' if self.passed else 'FAILED'}"]
        for s in self.steps:
            mark = "ok  " if s.passed else "FAIL"
            lines.append(f"  {mark} {s.name:<11} t+{s.started_s:6.1f}s {s.seconds:6.1f}s  {s.detail}")
        return "\n".join(lines)


class _StepFailed(Exception):
    pass


@dataclass
class AutoscalingCheck:
    """baseline -> start load -> scale-up within window -> stop load -> scale-down within cooldown + margin.

    `start_load` must return once load is running (the lead's caller drives the performance promptset at
    concurrency 50 in the background); `stop_load` must return once it has stopped. The load is stopped
    whenever it was started, even when the scale-up check failed.
    """

    read_replicas: Callable[[], int]
    start_load: Callable[[], Any]
    stop_load: Callable[[], Any]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    scale_up_window_s: float = 120.0
    cooldown_s: float = 300.0
    scale_down_margin_s: float = 60.0
    poll_s: float = 15.0

    def run(self) -> AutoscalingReport:
        report = AutoscalingReport()
        t0 = self.clock()
        baseline: int | None = None

        def step(name: str, body: Callable[[], str]) -> bool:
            started = self.clock()
            try:
                detail, passed = body(), True
            except _StepFailed as exc:
                detail, passed = str(exc), False
            except Exception as exc:  # noqa: BLE001 - a validation job reports, it does not crash midway
                detail, passed = f"{type(exc).__name__}: {exc}", False
            report.steps.append(Step(name, started - t0, self.clock() - started, passed, detail))
            return passed

        def record_baseline() -> str:
            nonlocal baseline
            baseline = self.read_replicas()
            report.samples.append((self.clock() - t0, baseline))
            return f"{baseline} replicas"

        if not step("baseline", record_baseline) or baseline is None:
            return report
        load_started = step("start_load", lambda: _done(self.start_load, "load started"))
        if load_started:
            step("scale_up", lambda: self._scale_up(baseline, t0, report))
        stopped = step("stop_load", lambda: _done(self.stop_load, "load stopped")) if load_started else False
        if stopped:
            step("scale_down", lambda: self._scale_down(baseline, t0, report))
        report.passed = len(report.steps) == 5 and all(s.passed for s in report.steps)
        return report

    def _scale_up(self, baseline: int, t0: float, report: AutoscalingReport) -> str:
        return self._wait_for(
            lambda r: r > baseline,
            self.scale_up_window_s,
            t0,
            report,
            success="scaled {baseline} -> {replicas} replicas after {elapsed:.1f} s (window {window:g} s)",
            failure="no scale-up within {window:g} s: replicas stayed at {replicas} (baseline {baseline}, peak {peak})",
            baseline=baseline,
        )

    def _scale_down(self, baseline: int, t0: float, report: AutoscalingReport) -> str:
        return self._wait_for(
            lambda r: r <= baseline,
            self.cooldown_s + self.scale_down_margin_s,
            t0,
            report,
            success="back to {replicas} replicas after {elapsed:.1f} s (cooldown {cooldown:g} s + margin {margin:g} s)",
            failure="no scale-down within {window:g} s (cooldown {cooldown:g} s + margin {margin:g} s): "
            "{replicas} replicas, baseline {baseline}",
            baseline=baseline,
        )

    def _wait_for(
        self,
        done: Callable[[int], bool],
        window_s: float,
        t0: float,
        report: AutoscalingReport,
        *,
        success: str,
        failure: str,
        baseline: int,
    ) -> str:
        """Poll replicas every poll_s until `done` or the window closes; read errors are retried until then."""
        start = self.clock()
        deadline = start + window_s
        replicas: int | None = None
        peak = baseline
        last_error: str | None = None
        while True:
            now = self.clock()
            try:
                replicas = self.read_replicas()
                last_error = None
                report.samples.append((now - t0, replicas))
                peak = max(peak, replicas)
            except Exception as exc:  # noqa: BLE001 - the API server blips; keep polling until the window closes
                last_error = f"{type(exc).__name__}: {exc}"
            fields = {
                "baseline": baseline,
                "replicas": replicas,
                "peak": peak,
                "elapsed": self.clock() - start,
                "window": window_s,
                "cooldown": self.cooldown_s,
                "margin": self.scale_down_margin_s,
            }
            if replicas is not None and last_error is None and done(replicas):
                return success.format(**fields)
            now = self.clock()
            if now >= deadline:
                message = failure.format(**fields)
                raise _StepFailed(f"{message}; last read failed: {last_error}" if last_error else message)
            self.sleep(max(0.0, min(self.poll_s, deadline - now)))


def _done(action: Callable[[], Any], message: str) -> str:
    action()
    return message
