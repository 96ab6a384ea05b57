"""`autoscaling_validation_job` against a kmock API server and the simulator, with a stand-in autoscaler.

The stand-in plays KEDA and the cluster: it watches the simulator's `vllm:num_requests_waiting` (what the
ScaledObject queries), sets the Deployment's desired replicas in kmock and, a little later, its ready replicas
(or never, when no GPU node can take the new pod), so the job's real client reads them as a cluster's.
"""

from __future__ import annotations

import asyncio
import threading
import time

import dagster as dg
import httpx
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.k8s.kube import KubernetesCluster
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.serving.metrics import parse_metrics, value
from llmplat_dagster.settings import Settings
from llmplat_dagster.sim.testing import start_sim
from tests.integration.kube_helpers import DEPLOYMENTS, FakeKubeApi, api_client_for, deployment

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.kmock(cls=FakeKubeApi), pytest.mark.timeout(90)]

NS, NAME = "llm-baseline", "mistral-7b-awq"
FAST = {
    "scale_up_window_s": 8.0,
    "scale_down_window_s": 2.0,
    "scale_down_margin_s": 4.0,
    "poll_s": 0.2,
    "concurrency": 50,
}


class KmockCluster(dg.ConfigurableResource):
    mode: str = "kubernetes"
    host: str
    rollout_timeout_s: float = 60.0

    def get(self) -> KubernetesCluster:
        return KubernetesCluster(api_client_for(type("S", (), {"url": self.host})()))


class StandInAutoscaler:
    """Queue depth above zero -> 2 replicas asked for, ready `ready_after_s` later unless `pending`; an empty
    queue for `quiet_s` -> back to 1."""

    def __init__(
        self, api: FakeKubeApi, sim_url: str, *, scales: bool, pending: bool = False, quiet_s: float = 0.6
    ) -> None:
        self.api, self.sim_url, self.scales, self.pending, self.quiet_s = api, sim_url, scales, pending, quiet_s
        self.ready_after_s = 0.5
        self.stop = threading.Event()
        self.seen_waiting = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _set(self, desired: int, ready: int) -> None:
        self.api.objects[DEPLOYMENTS, NS, NAME].patch(
            {"spec": {"replicas": desired}, "status": {"replicas": desired, "readyReplicas": ready}}
        )

    def _run(self) -> None:
        quiet_since = time.monotonic()
        asked_at: float | None = None
        while not self.stop.is_set():
            waiting = value(parse_metrics(httpx.get(f"{self.sim_url}/metrics").text), "queue_depth") or 0.0
            self.seen_waiting = max(self.seen_waiting, waiting)
            now = time.monotonic()
            if waiting > 0:
                quiet_since = now
                if self.scales:
                    asked_at = asked_at or now
                    ready = not self.pending and now - asked_at >= self.ready_after_s
                    self._set(2, 2 if ready else 1)
            elif now - quiet_since > self.quiet_s:
                asked_at = None
                self._set(1, 1)
            time.sleep(0.1)


async def _run_job(
    kmock, *, scales: bool, pending: bool = False
) -> tuple[dg.ExecuteInProcessResult, StandInAutoscaler]:
    catalog = load_catalog()
    kmock.objects[DEPLOYMENTS, NS, NAME] = deployment(NAME, NS, replicas=1)
    kmock.objects[DEPLOYMENTS, NS, NAME].patch({"status": {"readyReplicas": 1}})
    with start_sim(vllm_args(catalog.variant(NAME)), time_scale=0.02, max_num_seqs=4) as sim:
        defs = build_definitions(
            Settings(endpoints={NAME: sim.base_url}), {"cluster": KmockCluster(host=str(kmock.url))}
        )
        scaler = StandInAutoscaler(kmock, sim.base_url, scales=scales, pending=pending)
        scaler.thread.start()
        try:
            job = defs.resolve_job_def("autoscaling_validation_job")
            run_config = {"ops": {"validate_autoscaling": {"config": FAST}}}
            result = await asyncio.to_thread(job.execute_in_process, run_config=run_config, raise_on_error=False)
        finally:
            scaler.stop.set()
            scaler.thread.join(5)
    return result, scaler


async def test_scale_up_under_load_and_back_down_after_it_passes(kmock):
    result, scaler = await _run_job(kmock, scales=True)
    assert result.success, result.all_events
    assert scaler.seen_waiting > 0  # concurrency 50 over max_num_seqs 4 really queued
    meta = result.get_step_success_events()[0]
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    steps = output.event_specific_data.metadata
    assert steps["scale_up"].value.startswith("pass") and steps["scale_down"].value.startswith("pass")
    assert "1 -> 2 ready replicas" in steps["scale_up"].value
    # the stand-in makes the new replica ready half a second after it was asked for
    assert steps["capacity ready after (s)"].value >= steps["scale requested after (s)"].value + 0.4
    assert meta.step_key == "validate_autoscaling"


async def test_replicas_asked_for_but_never_ready_fail_the_scale_up(kmock):
    """No GPU node for the new pod: status.replicas says 2, readyReplicas stays 1, and that is not a scale-up."""
    result, _ = await _run_job(kmock, scales=True, pending=True)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "no more ready capacity within 8 s: asked for more after" in message and "2 pods, 1 ready" in message


async def test_no_scale_up_fails_with_the_step_and_its_timing(kmock):
    result, _ = await _run_job(kmock, scales=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "autoscaling validation failed" in message and "scale_up" in message
