"""`KubernetesCluster` through the real `kubernetes` client against a kmock API server on loopback.

The sync client runs in a worker thread (`asyncio.to_thread`) while kmock serves on the test's event loop;
time and sleep are a `FakeClock`, so deadlines and backoffs pass without waiting.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes.client import ApiClient

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s import render
from llmplat_dagster.k8s.cluster import ClusterError
from llmplat_dagster.k8s.kube import APPLY_PATCH, KubernetesCluster
from tests.integration.kube_helpers import (
    Controller,
    FakeClock,
    FakeKubeApi,
    Step,
    api_client_for,
    dep_status,
    event,
    pod,
    ssa_patches,
    status,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.kmock(cls=FakeKubeApi), pytest.mark.timeout(30)]

NS = "llm-baseline"
NAME = "mistral-7b-awq"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(kmock: FakeKubeApi) -> ApiClient:
    return api_client_for(kmock)


def make_cluster(api: ApiClient, clock: FakeClock, **kwargs) -> KubernetesCluster:
    return KubernetesCluster(api, sleep=clock.sleep, clock=clock, **kwargs)


def variant_objects(overlay: str) -> list[dict]:
    catalog = load_catalog()
    return render.render_variant(catalog, catalog.variant(NAME), overlay)


# -- apply -------------------------------------------------------------------------------------------------


async def test_apply_sends_server_side_apply_for_every_kind(kmock, api, clock):
    # PVC, Deployment, Service, PDB, HPA, ScaledObject
    objects = variant_objects("dev") + [variant_objects("prod")[-1]]
    result = await asyncio.to_thread(make_cluster(api, clock).apply, objects, variant=NAME)

    assert result.applied and not result.conflicts
    assert result.objects == [
        f"PersistentVolumeClaim/{NS}/hf-cache-{NAME}",
        f"Deployment/{NS}/{NAME}",
        f"Service/{NS}/{NAME}",
        f"PodDisruptionBudget/{NS}/{NAME}",
        f"HorizontalPodAutoscaler/{NS}/{NAME}",
        f"ScaledObject/{NS}/{NAME}",
    ]
    assert result.generation == 1
    patches = ssa_patches(kmock)
    assert [r.url.path for r in patches] == [
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims/hf-cache-{NAME}",
        f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}",
        f"/api/v1/namespaces/{NS}/services/{NAME}",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{NAME}",
        f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/{NAME}",
        f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects/{NAME}",  # custom object path
    ]
    for r in patches:
        assert r.headers["Content-Type"] == APPLY_PATCH
        assert r.params == {"fieldManager": "llmplat-dagster"}  # no force unless configured
        assert json.loads(r.body)["kind"] in {o["kind"] for o in objects}
    deployment = kmock.objects["apps/v1/deployments", NS, NAME]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # the applied body is what is stored
    assert "replicas" not in deployment["spec"]  # the autoscaler's field (tests/integration/test_autoscaled_rollout.py)
    # The namespace was missing: read (404), then created, before anything in it was applied.
    assert kmock.namespace_requests == [("GET", NS), ("POST", "")]


async def test_apply_keeps_an_existing_namespace_and_counts_generations(kmock, api, clock):
    kmock.namespaces[NS] = {"metadata": {"name": NS}}
    cluster = make_cluster(api, clock)
    objects = variant_objects("dev")
    await asyncio.to_thread(cluster.apply, objects, variant=NAME)
    again = await asyncio.to_thread(cluster.apply, objects, variant=NAME)
    assert again.generation == 2
    assert kmock.namespace_requests == [("GET", NS), ("GET", NS)]


async def test_apply_of_a_namespace_object_goes_first(kmock, api, clock):
    catalog = load_catalog()
    objects = [*variant_objects("dev"), render.namespace(catalog)]
    result = await asyncio.to_thread(make_cluster(api, clock).apply, objects, variant=NAME)
    assert result.objects[0] == f"Namespace/{NS}"
    assert kmock.namespace_requests == [("PATCH", NS)]  # applied, not read-then-created


CONFLICT = {
    "causes": [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
}


def conflict_unless_forced(request):
    if request.params.get("force", "").lower() == "true":  # the client sends "True"
        return NotImplemented  # let the emulator apply it
    return status(409, "Conflict", "Apply failed with 1 conflict", CONFLICT)


async def test_conflict_is_reported_not_forced(kmock, api, clock):
    kmock["patch", kmock.resource("apps", "v1", "deployments")] << conflict_unless_forced
    result = await asyncio.to_thread(make_cluster(api, clock).apply, variant_objects("dev"), variant=NAME)
    assert result.conflicts == [f"Deployment/{NS}/{NAME}: .spec.replicas is owned by kubectl-edit"]
    assert f"Deployment/{NS}/{NAME}" not in result.objects and len(result.objects) == 4
    assert "1 conflict(s) not forced" in result.message


async def test_conflict_is_forced_when_configured(kmock, api, clock):
    kmock["patch", kmock.resource("apps", "v1", "deployments")] << conflict_unless_forced
    cluster = make_cluster(api, clock, force_conflicts=True)
    result = await asyncio.to_thread(cluster.apply, variant_objects("dev"), variant=NAME)
    assert result.conflicts == [] and f"Deployment/{NS}/{NAME}" in result.objects
    assert all(r.params.get("force") == "True" for r in ssa_patches(kmock))


def failing(times: int, code: int):
    calls = {"n": 0}

    def reaction(request):
        calls["n"] += 1
        if calls["n"] > times:
            return NotImplemented
        return status(code, "TooManyRequests" if code == 429 else "ServiceUnavailable", "try again later")

    return reaction


@pytest.mark.parametrize("code", [429, 503])
async def test_retries_with_backoff_then_succeeds(kmock, api, clock, code):
    kmock["patch", kmock.resource("", "v1", "services")] << failing(2, code)
    result = await asyncio.to_thread(
        make_cluster(api, clock, backoff_s=0.5).apply, variant_objects("dev"), variant=NAME
    )
    assert f"Service/{NS}/{NAME}" in result.objects
    assert clock.sleeps == [0.5, 1.0]


async def test_gives_up_after_n_retries_with_a_clear_error(kmock, api, clock):
    kmock["patch", kmock.resource("", "v1", "services")] << failing(100, 503)
    cluster = make_cluster(api, clock, retries=3, backoff_s=0.5)
    with pytest.raises(ClusterError, match=rf"apply Service/{NS}/{NAME}: gave up after 4 attempts: HTTP 503"):
        await asyncio.to_thread(cluster.apply, variant_objects("dev"), variant=NAME)
    assert clock.sleeps == [0.5, 1.0, 2.0]


async def test_other_errors_name_the_object(kmock, api, clock):
    kmock["patch", kmock.resource("", "v1", "services")] << status(422, "Invalid", "spec.ports: Required value")
    with pytest.raises(ClusterError, match=rf"apply Service/{NS}/{NAME}: HTTP 422 Invalid: spec.ports"):
        await asyncio.to_thread(make_cluster(api, clock).apply, variant_objects("dev"), variant=NAME)
    assert clock.sleeps == []


# -- rollout -----------------------------------------------------------------------------------------------

SCHEDULING = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."


def pending_pod(name: str = f"{NAME}-7c9f-abcde") -> dict:
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": SCHEDULING}
    return pod(name, NAME, conditions=[cond])


def running_pod(name: str = f"{NAME}-7c9f-abcde", ready: bool = True) -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False"}]
    return pod(name, NAME, phase="Running", conditions=conds)


async def wait(api, clock, kmock, steps, timeout_s=600.0):
    controller = Controller(kmock, clock, NS, NAME, steps)
    cluster = make_cluster(api, clock)
    result = await asyncio.to_thread(cluster.wait_for_rollout, NS, NAME, timeout_s=timeout_s)
    return result, controller


async def test_rollout_progresses_to_ready(kmock, api, clock):
    steps = [
        Step(status=dep_status(1, ready=0, desired=1, total=1), pods=[pending_pod()]),  # controller not caught up
        Step(status=dep_status(2, ready=0), pods=[running_pod(ready=False)]),
        Step(gone=True),  # the watch expired: re-list
        Step(advance_s=400, status=dep_status(2, ready=1), pods=[running_pod()]),
    ]
    result, controller = await wait(api, clock, kmock, steps)
    assert (result.ready, result.reason) == (True, "Ready")
    assert (result.ready_replicas, result.desired_replicas, result.evictions) == (1, 1, 0)
    assert result.seconds == 430.0
    # Every watch: the one Deployment, bounded, resumed from the last resourceVersion (a fresh list after 410).
    assert all(w["fieldSelector"] == f"metadata.name={NAME}" and w["watch"] == "true" for w in controller.watches)
    assert all(1 <= int(w["timeoutSeconds"]) <= 30 for w in controller.watches)
    assert [w.get("resourceVersion") for w in controller.watches] == [None, "2", "3", None]


async def test_pending_unschedulable_until_the_deadline(kmock, api, clock):
    steps = [Step(status=dep_status(2, ready=0), pods=[pending_pod()])]
    result, controller = await wait(api, clock, kmock, steps, timeout_s=300)
    assert not result.ready
    assert result.reason == "Unschedulable"
    assert result.message == (
        f"{NAME} not ready after 300 s (0/1 ready, 1 updated, 0 available): pod {NAME}-7c9f-abcde is Pending: "
        f"no node can take it: {SCHEDULING} (no spot GPU capacity?)"
    )
    assert result.seconds == 300.0 and len(controller.watches) == 30


async def test_crash_loop_ends_early_with_the_last_log_lines(kmock, api, clock):
    name = f"{NAME}-7c9f-abcde"
    crashing = pod(
        name,
        NAME,
        phase="Running",
        containerStatuses=[
            {
                "name": "vllm",
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
            }
        ],
    )
    log = "".join(f"INFO line {i}\n" for i in range(30)) + "ValueError: The model's max seq len (4096) is larger\n"
    steps = [Step(status=dep_status(2, ready=0), pods=[crashing], logs={name: log})]
    result, _ = await wait(api, clock, kmock, steps)
    assert (result.ready, result.reason) == (False, "CrashLoopBackOff")
    first, *lines = result.message.splitlines()
    assert first == f"container vllm of pod {name} keeps crashing (3 restarts, last exit code 1); last log lines:"
    assert len(lines) == 20 and lines[-1].startswith("ValueError: The model's max seq len")
    assert result.seconds == 10.0  # it did not wait for the deadline
    log_reads = [r for r in list(kmock) if r.url.path.endswith("/log")]
    assert log_reads[0].params == {"container": "vllm", "previous": "True", "tailLines": "20"}


async def test_spot_eviction_mid_rollout_then_the_replacement_is_ready(kmock, api, clock):
    old, new = f"{NAME}-7c9f-aaaaa", f"{NAME}-7c9f-bbbbb"
    evicted = pod(old, NAME, phase="Failed", reason="Evicted", message="The node was low on resource")
    steps = [
        Step(status=dep_status(2, ready=0), pods=[running_pod(old, ready=False)]),
        Step(
            status=dep_status(2, ready=0, total=2),
            pods=[evicted, pending_pod(new)],
            events=[event("e1", old, "SpotInterruption", "Spot interruption notice: node will be terminated")],
        ),
        Step(status=dep_status(2, ready=0), pods=[pending_pod(new)]),
        Step(advance_s=200, status=dep_status(2, ready=1), pods=[running_pod(new)]),
    ]
    result, _ = await wait(api, clock, kmock, steps)
    assert (result.ready, result.reason, result.evictions) == (True, "Ready", 1)
    assert result.seconds == 230.0


async def test_deadline_passes_without_a_cause(kmock, api, clock):
    steps = [Step(status=dep_status(2, ready=0), pods=[running_pod(ready=False)])]
    result, _ = await wait(api, clock, kmock, steps, timeout_s=120)
    assert (result.ready, result.reason) == (False, "DeadlineExceeded")
    assert result.message == f"{NAME} not ready after 120 s (0/1 ready, 1 updated, 0 available)"


async def test_progress_deadline_exceeded_reported_by_the_deployment(kmock, api, clock):
    cond = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": f'ReplicaSet "{NAME}-7c9f" has timed out progressing.',
    }
    steps = [
        Step(status=dep_status(2, ready=0), pods=[pending_pod()]),
        Step(advance_s=900, status=dep_status(2, ready=0, conditions=[cond]), pods=[pending_pod()]),
    ]
    result, _ = await wait(api, clock, kmock, steps, timeout_s=1800)
    assert (result.ready, result.reason) == (False, "ProgressDeadlineExceeded")
    assert result.message.startswith(f"Deployment {NAME} made no progress within its 900 s progress deadline")
    assert "likely cause: pod" in result.message and "(no spot GPU capacity?)" in result.message
    assert result.seconds == 910.0


# -- port-forward endpoints (resolution only: kmock 0.8 serves no websocket/SPDY port-forward) --------------


async def test_port_forward_resolves_a_ready_pod_behind_the_service(kmock, api):
    from llmplat_dagster.k8s.endpoints import PortForwardEndpoints

    service = next(o for o in variant_objects("dev") if o["kind"] == "Service")
    kmock.objects["v1/services", NS, NAME] = service
    ready = running_pod(f"{NAME}-b")
    ready["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8000}]
    for p in (running_pod(f"{NAME}-a", ready=False), ready):
        kmock.objects["v1/pods", NS, p["metadata"]["name"]] = p
    endpoints = PortForwardEndpoints(api, NS)
    assert endpoints.kind == "port-forward"
    assert await asyncio.to_thread(endpoints.resolve, NAME) == (f"{NAME}-b", 8000)
    pod_list = next(r for r in list(kmock) if r.url.path == f"/api/v1/namespaces/{NS}/pods")
    assert pod_list.params["labelSelector"] == f"app.kubernetes.io/instance={NAME},model-variant={NAME}"
