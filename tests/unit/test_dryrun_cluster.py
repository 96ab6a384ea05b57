"""DryRunCluster (validate, diff, record, apply nothing) and the endpoint resolvers that need no cluster."""

from __future__ import annotations

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s import render
from llmplat_dagster.k8s.cluster import Cluster, ClusterError
from llmplat_dagster.k8s.dryrun import DryRunCluster
from llmplat_dagster.k8s.endpoints import EndpointError, ServiceDnsEndpoints, StaticEndpoints, pick_pod, target_port
from llmplat_dagster.k8s.validate import CrdSchemas

VARIANT = "mistral-7b-awq"


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    catalog = load_catalog()
    return render.render_variant(catalog, catalog.variant(VARIANT), "prod")


def test_first_dry_run_records_everything_as_changed(tmp_path, objects):
    cluster = DryRunCluster(tmp_path)
    assert isinstance(cluster, Cluster) and cluster.kind == "dry-run"
    result = cluster.apply(objects, variant=VARIANT)
    assert not result.applied and result.generation is None and result.conflicts == []
    assert result.objects == [render.object_id(o) for o in objects]
    assert result.message == "dry run: nothing applied (5 object(s) changed)"
    assert result.diff.startswith(f"--- {VARIANT} (recorded)\n+++ {VARIANT} (rendered)\n")
    assert (tmp_path / f"{VARIANT}.json").exists()


def test_unchanged_objects_give_an_empty_diff(tmp_path, objects):
    cluster = DryRunCluster(tmp_path)
    cluster.apply(objects, variant=VARIANT)
    again = cluster.apply(objects, variant=VARIANT)
    assert again.diff == "" and again.message == "dry run: nothing applied (no changes)"


def test_a_changed_field_shows_in_the_diff(tmp_path, objects):
    cluster = DryRunCluster(tmp_path)
    cluster.apply(objects, variant=VARIANT)
    catalog = load_catalog().with_overrides(revisions={VARIANT: "f" * 40})
    changed = render.render_variant(catalog, catalog.variant(VARIANT), "prod")
    result = cluster.apply(changed, variant=VARIANT)
    assert result.message == "dry run: nothing applied (1 object(s) changed)"
    assert "+    llmplat/model-revision: " + "f" * 40 in result.diff
    assert result.diff.count("\n-") >= 1


def test_variants_are_recorded_separately(tmp_path, objects):
    cluster = DryRunCluster(tmp_path)
    cluster.apply(objects, variant=VARIANT)
    other = cluster.apply(objects[:1], variant="other")
    assert other.message == "dry run: nothing applied (1 object(s) changed)"
    assert set(cluster.recorded(VARIANT)) == {render.object_id(o) for o in objects}


def test_schema_validation_with_crds_fails_like_a_server_would(tmp_path, objects, crd_dir):
    cluster = DryRunCluster(tmp_path, CrdSchemas.from_dirs([crd_dir]))
    assert cluster.apply(objects, variant=VARIANT).message.startswith("dry run")
    bad = [{**o, "spec": {**o["spec"], "replicaz": 2}} if o["kind"] == "Deployment" else o for o in objects]
    with pytest.raises(ClusterError, match=r"(?s)dry run of mistral-7b-awq: 1 problem\(s\).*Deployment/mistral-7b-awq"):
        cluster.apply(bad, variant=VARIANT)
    assert cluster.recorded(VARIANT) == {render.object_id(o): o for o in objects}  # not recorded


def test_house_rules_apply_without_crds(tmp_path, objects):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {"k": "dg=="}}
    with pytest.raises(ClusterError, match="must not carry a value"):
        DryRunCluster(tmp_path).apply([*objects, secret], variant=VARIANT)


def test_dry_run_rollout_says_no_cluster_was_involved(tmp_path, objects):
    cluster = DryRunCluster(tmp_path)
    cluster.apply(objects, variant=VARIANT)
    result = cluster.wait_for_rollout("llm-baseline", VARIANT, timeout_s=600)
    assert (result.ready, result.reason, result.seconds, result.evictions) == (True, "DryRun", 0.0, 0)
    assert (result.ready_replicas, result.desired_replicas) == (2, 2)  # prod: two replicas
    assert "no cluster was involved" in result.message


def test_dry_run_rollout_without_a_recorded_apply(tmp_path):
    result = DryRunCluster(tmp_path / "missing").wait_for_rollout("ns", "x", timeout_s=1)
    assert result.ready and result.reason == "DryRun"


# -- endpoints ---------------------------------------------------------------------------------------------


def test_service_dns_endpoints():
    endpoints = ServiceDnsEndpoints("llm-baseline")
    assert endpoints.kind == "service-dns"
    with endpoints.open(VARIANT) as url:
        assert url == "http://mistral-7b-awq.llm-baseline.svc.cluster.local:8000"
    assert ServiceDnsEndpoints("ns", port=9000).url("v") == "http://v.ns.svc.cluster.local:9000"


def test_static_endpoints():
    endpoints = StaticEndpoints({VARIANT: "http://127.0.0.1:8001/"})
    assert endpoints.kind == "url-map"
    with endpoints.open(VARIANT) as url:
        assert url == "http://127.0.0.1:8001"
    with pytest.raises(EndpointError) as caught, endpoints.open("nope"):
        pass
    assert "no endpoint for variant 'nope': LLMPLAT_ENDPOINTS does not name it (it names ['mistral-7b-awq'])" in str(
        caught.value
    )
    assert "llmplat sim fleet --endpoints-file" in str(caught.value)
    unset = pytest.raises(EndpointError, match="LLMPLAT_ENDPOINTS does not name it \\(it is not set\\)")
    with unset, StaticEndpoints({}).open(VARIANT):
        pass


def test_static_endpoints_do_not_swallow_the_callers_errors():
    with pytest.raises(KeyError, match="'inside'"), StaticEndpoints({"v": "http://x"}).open("v"):
        raise KeyError("inside")


def _pod(name, phase="Running", ready="True", deleting=False):
    meta = {"name": name, **({"deletionTimestamp": "t"} if deleting else {})}
    spec = {"containers": [{"name": "vllm", "ports": [{"name": "http", "containerPort": 8000}]}]}
    return {
        "metadata": meta,
        "spec": spec,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]},
    }


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([], None),
        ([_pod("b"), _pod("a")], "a"),
        ([_pod("a", ready="False"), _pod("b")], "b"),
        ([_pod("a", phase="Pending"), _pod("b", deleting=True)], None),
    ],
)
def test_pick_pod(pods, expected):
    assert pick_pod(pods) == expected


def test_target_port(objects):
    service = next(o for o in objects if o["kind"] == "Service")
    assert target_port(service, _pod("a")) == 8000  # named "http" in the pod
    numeric = {**service, "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    assert target_port(numeric, _pod("a")) == 8080
    unknown = {**service, "spec": {"ports": [{"port": 80, "targetPort": "grpc"}]}}
    with pytest.raises(LookupError, match="no container port named 'grpc'"):
        target_port(unknown, _pod("a"))
