"""Autoscaling validation (design document section 6.3) as an object with injected replicas, load and time.

The design's script sleeps a fixed 2 and 6 minutes and reads `status.replicas` once, which counts Pending pods:
"scaled up" could pass before any GPU node existed. This polls instead and judges READY replicas: a scale-up
passes when more replicas are ready than before, and it records both when the autoscaler asked for them and
when the capacity became ready (node provisioning plus the model's cold start). A scale-down passes when the
autoscaler went back and the extra pods are gone. The scale-up window covers a new spot node and a 7.5-minute
cold start; the scale-down window is the ScaledObject's HPA stabilization window (KEDA's cooldownPeriod only
governs scaling to zero). Tests pass seconds and a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmplat_dagster.k8s.cluster import ReplicaCounts


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
    samples: list[tuple[float, ReplicaCounts]] = field(default_factory=list)  # (seconds since start, counts)
    scale_requested_s: float | None = None  # load start -> the autoscaler asked for more replicas
    capacity_ready_s: float | None = None  # load start -> more replicas ready to serve

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

    read_replicas: Callable[[], ReplicaCounts]
    start_load: Callable[[], Any]
    stop_load: Callable[[], Any]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    scale_up_window_s: float = 900.0
    scale_down_window_s: float = 300.0
    scale_down_margin_s: float = 60.0
    poll_s: float = 15.0

    def run(self) -> AutoscalingReport:
        report = AutoscalingReport()
        t0 = self.clock()
        baseline: ReplicaCounts | None = None

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
            return f"{baseline.ready} ready of {baseline.desired} replicas"

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

    def _scale_up(self, baseline: ReplicaCounts, t0: float, report: AutoscalingReport) -> str:
        start = self.clock()

        def done(counts: ReplicaCounts) -> bool:
            if counts.desired > baseline.desired and report.scale_requested_s is None:
                report.scale_requested_s = self.clock() - start
            if counts.ready > baseline.ready:
                report.capacity_ready_s = self.clock() - start
                return True
            return False

        def asked() -> str:
            if report.scale_requested_s is None:
                return "the autoscaler never asked for more"
            return f"asked for more after {report.scale_requested_s:.1f} s"

        return self._wait_for(
            done,
            self.scale_up_window_s,
            t0,
            report,
            success=lambda c, peak, elapsed: (
                f"{baseline.ready} -> {c.ready} ready replicas after {elapsed:.1f} s ({asked()}; "
                f"window {self.scale_up_window_s:g} s)"
            ),
            failure=lambda c, peak, elapsed: (
                f"no more ready capacity within {self.scale_up_window_s:g} s: {asked()}; {c.desired} desired, "
                f"{c.current} pods, {c.ready} ready (baseline {baseline.ready} ready, peak {peak} desired)"
                if c
                else f"no replica count read within {self.scale_up_window_s:g} s"
            ),
            peak=baseline.desired,
        )

    def _scale_down(self, baseline: ReplicaCounts, t0: float, report: AutoscalingReport) -> str:
        window = self.scale_down_window_s + self.scale_down_margin_s
        why = f"stabilization window {self.scale_down_window_s:g} s + margin {self.scale_down_margin_s:g} s"
        return self._wait_for(
            lambda c: c.desired <= baseline.desired and c.current <= baseline.current,
            window,
            t0,
            report,
            success=lambda c, peak, elapsed: f"back to {c.desired} replicas after {elapsed:.1f} s ({why})",
            failure=lambda c, peak, elapsed: (
                f"no scale-down within {window:g} s ({why}): {c.desired} desired, {c.current} pods, "
                f"baseline {baseline.desired}"
                if c
                else f"no replica count read within {window:g} s"
            ),
            peak=baseline.desired,
        )

    def _wait_for(
        self,
        done: Callable[[ReplicaCounts], bool],
        window_s: float,
        t0: float,
        report: AutoscalingReport,
        *,
        success: Callable[[ReplicaCounts, int, float], str],
        failure: Callable[[ReplicaCounts | None, int, float], str],
        peak: int,
    ) -> str:
        """Poll the counts every poll_s until `done` or the window closes; read errors are retried until then."""
        start = self.clock()
        deadline = start + window_s
        counts: ReplicaCounts | None = None
        last_error: str | None = None
        while True:
            now = self.clock()
            try:
                counts = self.read_replicas()
                last_error = None
                report.samples.append((now - t0, counts))
                peak = max(peak, counts.desired)
            except Exception as exc:  # noqa: BLE001 - the API server blips; keep polling until the window closes
                last_error = f"{type(exc).__name__}: {exc}"
            if counts is not None and last_error is None and done(counts):
                return success(counts, peak, self.clock() - start)
            now = self.clock()
            if now >= deadline:
                message = failure(counts, peak, self.clock() - start)
                raise _StepFailed(f"{message}; last read failed: {last_error}" if last_error else message)
            self.sleep(max(0.0, min(self.poll_s, deadline - now)))


def _done(action: Callable[[], Any], message: str) -> str:
    action()
    return message
