"""deploy/rbac.yaml against the Kubernetes calls the code really makes, recorded on a kmock API server.

The calls are not a hand list: the prod graph's own deployment assets apply every variant, the rollout watch runs
until a crash loop makes it read logs, and dagster-k8s's client does what its K8sRunLauncher does. Each recorded
request becomes the RBAC checks the API server would make (tests/integration/rbac_model.py); the Roles must grant
every one of them, and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from pathlib import Path

import kmock
import pytest
import yaml
from dagster_k8s.client import DagsterKubernetesClient
from kubernetes import client as k8s

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.k8s.kube import KubernetesCluster
from llmplat_dagster.k8s.validate import CrdSchemas, validate_objects
from llmplat_dagster.settings import Settings
from tests.integration import rbac_model as rbac
from tests.integration.kube_helpers import (
    Controller,
    FakeClock,
    FakeKubeApi,
    KmockCluster,
    Step,
    api_client_for,
    dep_status,
    pod,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.kmock(cls=FakeKubeApi), pytest.mark.timeout(60)]

NS, RUN_NS = "llm-baseline", "dagster"
RUN_SA, LAUNCHER_SA = "llmplat-dagster", "dagster"
RBAC_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
JOBS = kmock.resource("batch", "v1", "jobs")
RUN_CONTAINER = {"name": "dagster", "image": "x", "imageID": "x", "ready": False, "restartCount": 0}


def rbac_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]


def recorded(server: FakeKubeApi, since: int = 0) -> list[rbac.Access]:
    """Every request kmock saw, plus the Namespace requests FakeKubeApi answers itself."""
    out = []
    for method, name in server.namespace_requests:
        out += rbac.accesses(method, f"/api/v1/namespaces/{name}".rstrip("/"))
    for r in list(server)[since:]:
        out += rbac.accesses(r.method.value, r.url.path, dict(r.params), r.headers.get("Content-Type", ""))
    return out


async def run_pod_calls(server: FakeKubeApi, crd_dirs: tuple[Path, ...]) -> list[rbac.Access]:
    """What a prod rollout run does in llm-baseline: the graph applies all four variants, then a rollout is watched."""
    server.namespaces[NS] = {"metadata": {"name": NS}}  # created beforehand by an admin (deploy/README.md)
    defs = build_definitions(
        Settings(environment="prod", crd_dirs=crd_dirs), {"cluster": KmockCluster(host=str(server.url))}
    )
    job = defs.resolve_job_def("rollout_job")
    selection = [k for k in job.asset_layer.selected_asset_keys if k.path[-1] in ("manifests", "deployment")]
    result = await asyncio.to_thread(job.execute_in_process, asset_selection=selection, raise_on_error=True)
    assert result.success
    assert len([r for r in list(server) if r.method == kmock.method.PATCH]) == 20  # 4 variants x 5 objects

    name, clock = "mistral-7b-awq", FakeClock()
    crashing = pod(
        f"{name}-7c9f-abcde",
        name,
        phase="Running",
        containerStatuses=[{"name": "vllm", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    )
    steps = [
        Step(status=dep_status(2, ready=0), pods=[pod(f"{name}-7c9f-abcde", name)]),
        Step(gone=True),
        Step(status=dep_status(2, ready=0), pods=[crashing], logs={f"{name}-7c9f-abcde": "CUDA out of memory\n"}),
    ]
    Controller(server, clock, NS, name, steps)
    cluster = KubernetesCluster(api_client_for(server), sleep=clock.sleep, clock=clock)
    rollout = await asyncio.to_thread(cluster.wait_for_rollout, NS, name, timeout_s=600)
    assert rollout.reason == "CrashLoopBackOff" and "CUDA out of memory" in rollout.message  # logs were read
    for variant in load_catalog().names:  # autoscaling_validation_job's ready replicas; its variant is run config
        await asyncio.to_thread(cluster.replica_counts, NS, variant)
    return recorded(server)


async def launcher_calls(server: FakeKubeApi) -> list[rbac.Access]:
    """What K8sRunLauncher does in the run namespace, through dagster-k8s's own client (launch, health, debug,
    terminate)."""
    server.resources[JOBS] = kmock.ResourceInfo(namespaced=True, kind="Job")
    api = api_client_for(server)
    dagster_client = DagsterKubernetesClient.production_client(
        batch_api_override=k8s.BatchV1Api(api), core_api_override=k8s.CoreV1Api(api)
    )
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(name="dagster-run-abc"),
        spec=k8s.V1JobSpec(
            template=k8s.V1PodTemplateSpec(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="dagster", image="x")]))
        ),
    )
    server.objects[kmock.resource("", "v1", "pods"), RUN_NS, "dagster-run-abc-x"] = {
        "metadata": {"name": "dagster-run-abc-x", "labels": {"job-name": "dagster-run-abc"}},
        "spec": {"containers": [{"name": "dagster", "image": "llmplat-dagster:1"}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{**RUN_CONTAINER, "state": {"terminated": {"exitCode": 1}}}],
        },
    }
    start = len(list(server))

    def drive() -> None:
        dagster_client.create_namespaced_job_with_retries(body=job, namespace=RUN_NS)  # launch_run
        for call in (
            lambda: dagster_client.get_job_status(namespace=RUN_NS, job_name="dagster-run-abc"),  # run monitoring
            lambda: dagster_client.get_pod_debug_info("dagster-run-abc-x", RUN_NS),  # get_run_worker_debug_info
            lambda: dagster_client.get_job_debug_info("dagster-run-abc", namespace=RUN_NS),
            lambda: dagster_client.delete_job(job_name="dagster-run-abc", namespace=RUN_NS),  # terminate
        ):
            with contextlib.suppress(Exception):  # kmock serves no job status subresource; the request counts
                call()

    await asyncio.to_thread(drive)
    return recorded(server, start)


async def test_every_call_of_a_prod_rollout_run_is_granted_and_nothing_more(kmock, crd_dirs: tuple[Path, ...]):
    calls = await run_pod_calls(kmock, crd_dirs)
    policy = rbac.Rbac.from_documents(rbac_docs())
    assert {a.namespace for a in calls} == {NS}
    assert policy.denied(RUN_NS, RUN_SA, calls) == []
    assert policy.unused(RUN_NS, RUN_SA, calls) == []
    kinds = {(a.group, a.resource) for a in calls}
    assert {("", "persistentvolumeclaims"), ("apps", "deployments"), ("keda.sh", "scaledobjects")} <= kinds
    assert {("", "pods/log"), ("", "events"), ("", "namespaces")} <= kinds
    # The same account may do none of it elsewhere, and nothing in the run namespace.
    assert policy.denied(RUN_NS, RUN_SA, [rbac.Access("default", "apps", "deployments", "patch", "x")])
    assert policy.denied(RUN_NS, RUN_SA, [rbac.Access(RUN_NS, "", "pods", "list")])


async def test_the_run_pod_may_patch_only_the_objects_the_catalog_names(kmock, crd_dirs: tuple[Path, ...]):
    """Patch and get are scoped by resourceNames to exactly the objects the recorded calls touched."""
    calls = await run_pod_calls(kmock, crd_dirs)
    policy = rbac.Rbac.from_documents(rbac_docs())
    role = next(d for d in rbac_docs() if d["kind"] == "Role" and d["metadata"]["namespace"] == NS)
    nameable = {"get", "patch", "update", "delete"}
    for rule in role["rules"]:
        if rule["resources"] == ["pods/log"]:
            continue  # pod names are generated by the ReplicaSet: they cannot be listed ahead
        if set(rule["verbs"]) <= nameable:
            assert rule.get("resourceNames"), f"{rule} could name the objects it grants"
        else:
            assert not set(rule["verbs"]) & nameable, f"split {rule}: some of its verbs can be named"
    touched = {(a.resource, a.name) for a in calls if a.verb in ("patch", "get") and a.resource != "pods/log"}
    granted = {(r, n) for rule in role["rules"] for r in rule["resources"] for n in rule.get("resourceNames", [])}
    assert granted == touched
    for resource, group in (("deployments", "apps"), ("services", ""), ("persistentvolumeclaims", "")):
        assert policy.denied(RUN_NS, RUN_SA, [rbac.Access(NS, group, resource, "patch", "someone-elses")])
    assert not policy.denied(RUN_NS, RUN_SA, [rbac.Access(NS, "apps", "deployments", "create", "new-one")])


def test_a_resource_names_rule_never_grants_create_list_or_watch():
    rule = {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "resourceNames": ["d"],
        "verbs": ["create", "list", "watch", "get"],
    }
    role = {"kind": "Role", "metadata": {"name": "r", "namespace": "ns"}, "rules": [rule]}
    subject = {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "b", "namespace": "ns"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [subject],
    }
    policy = rbac.Rbac.from_documents([role, binding])
    wanted = [rbac.Access("ns", "apps", "deployments", v, "d") for v in ("create", "list", "watch", "get")]
    assert [a.verb for a in policy.denied("ns", "sa", wanted)] == ["create", "list", "watch"]


async def test_removing_a_verb_the_code_uses_is_reported(kmock, crd_dirs: tuple[Path, ...]):
    calls = await run_pod_calls(kmock, crd_dirs)
    for verb, resource in (
        ("watch", "deployments"),
        ("create", "scaledobjects"),
        ("get", "namespaces"),
        ("get", "pods/log"),
    ):
        docs = copy.deepcopy(rbac_docs())
        role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == NS)
        for rule in role["rules"]:
            if resource in rule["resources"] and verb in rule["verbs"]:
                rule["verbs"].remove(verb)
        denied = rbac.Rbac.from_documents(docs).denied(RUN_NS, RUN_SA, calls)
        assert denied and {(a.verb, a.resource) for a in denied} == {(verb, resource)}, denied


async def test_a_missing_namespace_would_need_a_cluster_wide_create_that_is_not_granted(kmock):
    clock = FakeClock()
    cluster = KubernetesCluster(api_client_for(kmock), sleep=clock.sleep, clock=clock)
    await asyncio.to_thread(cluster.ensure_namespace, NS)
    denied = rbac.Rbac.from_documents(rbac_docs()).denied(RUN_NS, RUN_SA, recorded(kmock))
    assert [str(a) for a in denied] == ["create core/namespaces cluster-wide"]  # hence: created by an admin


async def test_the_run_launcher_role_grants_what_dagster_k8s_does_and_nothing_more(kmock):
    calls = await launcher_calls(kmock)
    policy = rbac.Rbac.from_documents(rbac_docs())
    verbs = {(a.resource, a.verb) for a in calls}
    assert {("jobs", "create"), ("jobs/status", "get"), ("jobs", "delete"), ("pods", "list")} <= verbs
    assert policy.denied(RUN_NS, LAUNCHER_SA, calls) == []
    assert policy.unused(RUN_NS, LAUNCHER_SA, calls) == []
    assert policy.denied(RUN_NS, LAUNCHER_SA, [rbac.Access(NS, "apps", "deployments", "patch", "x")])


def test_rbac_objects_validate_strictly():
    assert validate_objects([(str(RBAC_FILE), d) for d in rbac_docs()], CrdSchemas({}, {})) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "ctype", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns", "", "", [("ns", "", "namespaces", "get", "ns")]),
        ("POST", "/api/v1/namespaces", "", "", [("", "", "namespaces", "create", "")]),
        (
            "GET",
            "/apis/apps/v1/namespaces/ns/deployments",
            "watch=True",
            "",
            [("ns", "apps", "deployments", "watch", "")],
        ),
        ("GET", "/apis/apps/v1/watch/namespaces/ns/deployments", "", "", [("ns", "apps", "deployments", "watch")]),
        ("GET", "/api/v1/namespaces/ns/pods", "labelSelector=a%3Db", "", [("ns", "", "pods", "list", "")]),
        ("GET", "/api/v1/namespaces/ns/pods/p/log", "previous=True", "", [("ns", "", "pods/log", "get", "p")]),
        ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/j", "", "", [("ns", "batch", "jobs", "delete", "j")]),
        (
            "PATCH",
            "/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/s",
            "fieldManager=x",
            rbac.APPLY_PATCH,
            [("ns", "keda.sh", "scaledobjects", "patch", "s"), ("ns", "keda.sh", "scaledobjects", "create", "s")],
        ),
    ],
)
def test_requests_map_to_the_checks_the_api_server_makes(method, path, query, ctype, expected):
    assert rbac.accesses(method, path, query, ctype) == [rbac.Access(*e) for e in expected]
