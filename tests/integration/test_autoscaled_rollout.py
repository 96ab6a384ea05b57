"""A rollout of an autoscaled variant leaves its replicas to the autoscaler: no conflict, no reset.

Against kmock with server-side apply's field ownership (tests/integration/ssa_fake.py): the autoscaler scales
the Deployment under its own field manager, the rollout job runs again, and the replicas stay where the
autoscaler put them. The Deployment as it used to be rendered (with `spec.replicas`) shows what broke.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client as k8s

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import asset_key, variant_job_name
from llmplat_dagster.k8s import render
from llmplat_dagster.k8s.kube import REPLICAS_HANDOVER, KubernetesCluster
from llmplat_dagster.settings import Settings
from tests.integration.kube_helpers import DEPLOYMENTS, FakeClock, KmockCluster, api_client_for
from tests.integration.ssa_fake import FieldManagedKubeApi, ownership

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.kmock(cls=FieldManagedKubeApi),
    pytest.mark.timeout(120),
]

NS, AWQ = "llm-baseline", "mistral-7b-awq"
AUTOSCALER = "kube-controller-manager"  # the HPA controller (KEDA's HPA too) writes replicas as this manager
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def live(server, name: str = AWQ) -> dict:
    return server.objects[DEPLOYMENTS, NS, name].raw


def scale(server, replicas: int, name: str = AWQ) -> None:
    """What the HPA does: an update of replicas under its own field manager."""
    apps = k8s.AppsV1Api(api_client_for(server))
    apps.patch_namespaced_deployment(name, NS, {"spec": {"replicas": replicas}}, field_manager=AUTOSCALER)


def deployment(overlay: str, name: str = AWQ, replicas: int | None = None) -> dict:
    catalog = load_catalog()
    obj = render.deployment(catalog, catalog.variant(name), render.overlay(catalog, overlay))
    if replicas is not None:  # as it was rendered before the autoscaler owned replicas
        obj["spec"] = {"replicas": replicas, **obj["spec"]}
    return obj


async def test_rerunning_the_rollout_job_keeps_the_replicas_the_autoscaler_set(kmock):
    kmock.namespaces[NS] = {"metadata": {"name": NS}}
    defs = build_definitions(
        Settings(environment="prod", resolve_revisions=False), {"cluster": KmockCluster(host=str(kmock.url))}
    )
    job = defs.resolve_job_def(variant_job_name("rollout", AWQ))
    selection = [asset_key(AWQ, "manifests"), asset_key(AWQ, "deployment")]

    first = await asyncio.to_thread(job.execute_in_process, asset_selection=selection, run_config=QUIET)
    assert first.success
    assert live(kmock)["spec"]["replicas"] == 1  # created at the API server's default; KEDA raises it to its min

    await asyncio.to_thread(scale, kmock, 3)  # load arrives, KEDA's HPA scales out
    sha = "a" * 40
    config = {**QUIET, "ops": {"llm_baseline__mistral_7b_awq__manifests": {"config": {"revision": sha}}}}
    second = await asyncio.to_thread(job.execute_in_process, asset_selection=selection, run_config=config)

    assert second.success  # no field-manager conflict
    deploy = live(kmock)
    assert deploy["spec"]["replicas"] == 3  # not reset: no scaled-out GPU pod is killed
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--revision") + 1] == sha  # the rollout itself went through
    owners = ownership(deploy)
    assert ("spec", "replicas") in owners[(AUTOSCALER, "Update")]
    assert ("spec", "replicas") not in owners[(render.FIELD_MANAGER, "Apply")]


async def test_the_old_rendering_with_replicas_conflicts_with_the_autoscaler(kmock):
    cluster = KubernetesCluster(api_client_for(kmock), sleep=FakeClock().sleep)
    kmock.namespaces[NS] = {"metadata": {"name": NS}}
    await asyncio.to_thread(cluster.apply, [deployment("prod")], variant=AWQ)
    await asyncio.to_thread(scale, kmock, 3)

    result = await asyncio.to_thread(cluster.apply, [deployment("prod", replicas=2)], variant=AWQ)

    assert result.conflicts == [f"Deployment/{NS}/{AWQ}: .spec.replicas is owned by {AUTOSCALER}"]
    assert live(kmock)["spec"]["replicas"] == 3


async def test_replicas_an_older_rollout_owned_are_handed_over_not_reset(kmock):
    cluster = KubernetesCluster(api_client_for(kmock), sleep=FakeClock().sleep)
    kmock.namespaces[NS] = {"metadata": {"name": NS}}
    # Rolled out before the autoscaler owned replicas: llmplat-dagster declared replicas: 2, nobody scaled since.
    for name in (AWQ, "mistral-7b-judge"):
        await asyncio.to_thread(cluster.apply, [deployment("prod", name, replicas=2)], variant=name)

    # Dropping the field without a hand-over is the reset this guards against (the fake models it):
    await asyncio.to_thread(cluster._patch, deployment("prod", "mistral-7b-judge"))
    assert live(kmock, "mistral-7b-judge")["spec"]["replicas"] == 1

    result = await asyncio.to_thread(cluster.apply, [deployment("prod")], variant=AWQ)
    assert not result.conflicts
    assert live(kmock)["spec"]["replicas"] == 2  # kept
    assert ("spec", "replicas") in ownership(live(kmock))[(REPLICAS_HANDOVER, "Apply")]

    await asyncio.to_thread(scale, kmock, 4)  # the autoscaler's next scale takes the field from the hand-over
    assert (REPLICAS_HANDOVER, "Apply") not in ownership(live(kmock))
    handovers = len([r for r in list(kmock) if r.params.get("fieldManager") == REPLICAS_HANDOVER])
    await asyncio.to_thread(cluster.apply, [deployment("prod")], variant=AWQ)
    assert live(kmock)["spec"]["replicas"] == 4
    assert len([r for r in list(kmock) if r.params.get("fieldManager") == REPLICAS_HANDOVER]) == handovers
