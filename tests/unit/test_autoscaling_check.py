"""Autoscaling validation on a fake clock: replicas follow a script, sleeping only advances time."""

from __future__ import annotations

import pytest

from llmplat_dagster.automation.autoscaling import AutoscalingCheck
from llmplat_dagster.k8s.cluster import ReplicaCounts


class FakeCluster:
    """Replicas as a function of time since the load started or stopped; sleep advances the clock.

    The autoscaler asks for `peak` replicas `up_after` s into the load; they become ready `ready_after` s later
    (a new node and the model's cold start), or never when `pending` (no GPU node to schedule on)."""

    def __init__(self, baseline=1, up_after=None, peak=2, down_after=None, errors_at=(), ready_after=0, pending=False):
        self.now = 1000.0
        self.baseline, self.up_after, self.peak, self.down_after = baseline, up_after, peak, down_after
        self.ready_after, self.pending = ready_after, pending
        self.load_started = self.load_stopped = None
        self.errors_at = set(errors_at)
        self.reads = 0
        self.events: list[str] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def replicas(self) -> ReplicaCounts:
        self.reads += 1
        if self.reads in self.errors_at:
            raise ConnectionError("apiserver blip")
        scaled = (
            self.load_started is not None
            and self.up_after is not None
            and self.now - self.load_started >= self.up_after
        )
        if self.load_stopped is not None and scaled:
            scaled = self.down_after is None or self.now - self.load_stopped < self.down_after
        if not scaled:
            return ReplicaCounts(self.baseline, self.baseline, self.baseline)
        capacity = not self.pending and self.now - self.load_started - self.up_after >= self.ready_after
        return ReplicaCounts(self.peak, self.peak, self.peak if capacity else self.baseline)

    def start(self) -> None:
        self.events.append("start")
        self.load_started = self.now

    def stop(self) -> None:
        self.events.append("stop")
        self.load_stopped = self.now

    def check(self, **kw) -> AutoscalingCheck:
        windows = {"scale_up_window_s": 120, "scale_down_window_s": 300, "scale_down_margin_s": 60, "poll_s": 15, **kw}
        return AutoscalingCheck(self.replicas, self.start, self.stop, self.clock, self.sleep, **windows)


def _steps(report):
    return {s.name: s for s in report.steps}


def test_scale_up_then_down_passes_with_timings():
    cluster = FakeCluster(baseline=1, up_after=40, peak=3, down_after=310)
    report = cluster.check().run()
    steps = _steps(report)
    assert report.passed and list(steps) == ["baseline", "start_load", "scale_up", "stop_load", "scale_down"]
    assert steps["baseline"].detail == "1 ready of 1 replicas"
    # polled every 15 s
    assert steps["scale_up"].detail == "1 -> 3 ready replicas after 45.0 s (asked for more after 45.0 s; window 120 s)"
    assert steps["scale_up"].seconds == 45.0 and steps["scale_up"].started_s == 0.0
    assert steps["stop_load"].started_s == 45.0
    assert steps["scale_down"].detail == ("back to 1 replicas after 315.0 s (stabilization window 300 s + margin 60 s)")
    assert steps["scale_down"].started_s == 45.0 and steps["scale_down"].seconds == 315.0
    assert cluster.events == ["start", "stop"]
    assert (0.0, ReplicaCounts(1, 1, 1)) in report.samples and (45.0, ReplicaCounts(3, 3, 3)) in report.samples
    assert "passed" in report.summary()


def test_no_scale_up_fails_with_the_window_and_still_stops_the_load():
    cluster = FakeCluster(baseline=2, up_after=None)
    report = cluster.check(scale_up_window_s=30, poll_s=10).run()
    steps = _steps(report)
    assert not report.passed and cluster.events == ["start", "stop"]
    assert not steps["scale_up"].passed and steps["scale_up"].seconds == 30.0
    assert steps["scale_up"].detail == (
        "no more ready capacity within 30 s: the autoscaler never asked for more; 2 desired, 2 pods, 2 ready "
        "(baseline 2 ready, peak 2 desired)"
    )
    assert steps["scale_down"].passed  # nothing to undo, and honest about it: replicas <= baseline
    assert "FAIL scale_up" in report.summary()


def test_scale_up_after_the_window_is_a_failure():
    cluster = FakeCluster(up_after=130, down_after=10)
    report = cluster.check().run()
    assert not _steps(report)["scale_up"].passed and not report.passed


def test_no_scale_down_fails_after_cooldown_plus_margin():
    cluster = FakeCluster(baseline=1, up_after=0, peak=2, down_after=None)
    report = cluster.check(scale_down_window_s=5, scale_down_margin_s=1, poll_s=2).run()
    steps = _steps(report)
    assert steps["scale_up"].passed and steps["scale_up"].seconds == 0.0
    assert not steps["scale_down"].passed and steps["scale_down"].seconds == 6.0
    assert steps["scale_down"].detail == (
        "no scale-down within 6 s (stabilization window 5 s + margin 1 s): 2 desired, 2 pods, baseline 1"
    )
    assert not report.passed


def test_scale_down_inside_the_margin_passes():
    cluster = FakeCluster(up_after=0, down_after=64)
    report = cluster.check(scale_down_window_s=60, scale_down_margin_s=10, poll_s=4).run()
    assert report.passed and _steps(report)["scale_down"].seconds == 64.0


@pytest.mark.parametrize("poll_s", [1, 7, 15, 200])
def test_the_last_poll_lands_on_the_window_edge(poll_s):
    cluster = FakeCluster(up_after=None)
    report = cluster.check(scale_up_window_s=20, poll_s=poll_s).run()
    assert _steps(report)["scale_up"].seconds == 20.0


def test_a_failed_read_while_polling_is_retried():
    cluster = FakeCluster(up_after=20, down_after=20, errors_at={2})
    report = cluster.check(poll_s=10).run()
    assert report.passed and _steps(report)["scale_up"].seconds == 20.0


def test_reads_failing_until_the_window_closes_name_the_error():
    cluster = FakeCluster(up_after=0, errors_at=set(range(2, 100)))
    report = cluster.check(scale_up_window_s=10, poll_s=5).run()
    assert "last read failed: ConnectionError: apiserver blip" in _steps(report)["scale_up"].detail


def test_a_baseline_that_cannot_be_read_stops_before_any_load():
    cluster = FakeCluster(errors_at={1})
    report = cluster.check().run()
    assert [s.name for s in report.steps] == ["baseline"] and not report.passed
    assert cluster.events == [] and "ConnectionError" in report.steps[0].detail


def test_a_load_that_cannot_start_is_reported_and_not_stopped():
    cluster = FakeCluster()

    def broken() -> None:
        raise RuntimeError("promptset missing")

    report = AutoscalingCheck(cluster.replicas, broken, cluster.stop, cluster.clock, cluster.sleep).run()
    assert [(s.name, s.passed) for s in report.steps] == [("baseline", True), ("start_load", False)]
    assert report.steps[1].detail == "RuntimeError: promptset missing" and cluster.events == []


def test_a_stop_that_fails_skips_the_scale_down_check():
    cluster = FakeCluster(up_after=0)

    def broken() -> None:
        raise RuntimeError("still running")

    report = AutoscalingCheck(cluster.replicas, cluster.start, broken, cluster.clock, cluster.sleep, poll_s=1).run()
    assert [s.name for s in report.steps] == ["baseline", "start_load", "scale_up", "stop_load"]
    assert not report.passed


def test_replicas_asked_for_but_pending_are_not_a_scale_up():
    """status.replicas counts Pending pods; judging it, this run would pass with no GPU node in sight."""
    cluster = FakeCluster(baseline=1, up_after=30, peak=3, down_after=0, pending=True)
    report = cluster.check(scale_up_window_s=300, poll_s=15).run()
    steps = _steps(report)
    assert not steps["scale_up"].passed and not report.passed
    assert steps["scale_up"].detail == (
        "no more ready capacity within 300 s: asked for more after 30.0 s; 3 desired, 3 pods, 1 ready "
        "(baseline 1 ready, peak 3 desired)"
    )
    assert report.scale_requested_s == 30.0 and report.capacity_ready_s is None


def test_time_to_ready_capacity_is_recorded_apart_from_the_scale_request():
    cluster = FakeCluster(baseline=2, up_after=30, peak=3, down_after=30, ready_after=420)  # a node + a cold start
    report = cluster.check(scale_up_window_s=900, poll_s=15).run()
    assert report.passed
    assert (report.scale_requested_s, report.capacity_ready_s) == (30.0, 450.0)
    assert "2 -> 3 ready replicas after 450.0 s (asked for more after 30.0 s; window 900 s)" in report.summary()
