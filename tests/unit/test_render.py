"""What the rendered objects promise a cluster operator (issue #2 acceptance, design-document fixes)."""

from __future__ import annotations

import json

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s.render import (
    TERMINATION_GRACE_SECONDS,
    content_hash,
    render,
    vllm_args,
)

CATALOG = load_catalog()


def _by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _container(deploy):
    return deploy["spec"]["template"]["spec"]["containers"][0]


def _flag(args, flag):
    return args[args.index(flag) + 1]


@pytest.fixture(params=["dev", "prod"])
def objects(request):
    return render(CATALOG, request.param)


def test_fp16_awq_judge_and_lora_carry_their_vllm_flags():
    deploys = _by_kind(render(CATALOG, "prod"), "Deployment")
    fp16 = _container(deploys["mistral-7b-fp16"])["args"]
    assert (_flag(fp16, "--dtype"), _flag(fp16, "--max-model-len"), _flag(fp16, "--max-num-seqs")) == (
        "half",
        "1024",
        "2",
    )
    assert "--enforce-eager" in fp16 and _flag(fp16, "--max-num-batched-tokens") == "1024"
    assert "--quantization" not in fp16
    for name in ("mistral-7b-awq", "mistral-7b-judge"):
        args = _container(deploys[name])["args"]
        assert (_flag(args, "--quantization"), _flag(args, "--max-model-len")) == ("awq", "4096")
        assert "--enable-lora" not in args
    lora = _container(deploys["mistral-7b-lora"])["args"]
    assert "--enable-lora" in lora and _flag(lora, "--max-loras") == "4"
    assert _flag(lora, "--quantization") == "awq"
    for name, d in deploys.items():
        args = _container(d)["args"]
        # the variant name first (vLLM labels metrics with it), the Hugging Face id as an alias
        served = args[args.index("--served-model-name") + 1 : args.index("--dtype")]
        assert served == [name, CATALOG.variant(name).model_id]
        assert _flag(args, "--revision") == CATALOG.variant(name).revision
        assert all(isinstance(a, str) for a in args)


def test_no_object_carries_a_token_value(objects):
    text = json.dumps([o for o in objects if o["kind"] != "ConfigMap"])  # the dashboard's JSON is ConfigMap data
    assert not any(o["kind"] == "Secret" for o in objects)
    assert "stringData" not in text and '"data"' not in text
    for d in _by_kind(objects, "Deployment").values():
        env = {e["name"]: e for e in _container(d)["env"]}
        for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            assert "value" not in env[key]
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HUGGING_FACE_HUB_TOKEN"}


def test_each_variant_mounts_its_own_cache_claim(objects):
    claims = _by_kind(objects, "PersistentVolumeClaim")
    mounted = {}
    for name, d in _by_kind(objects, "Deployment").items():
        vols = d["spec"]["template"]["spec"]["volumes"]
        mounted[name] = next(v["persistentVolumeClaim"]["claimName"] for v in vols if "persistentVolumeClaim" in v)
    assert len(set(mounted.values())) == 4
    assert set(mounted.values()) == set(claims)


def test_replicas_on_several_nodes_share_a_read_write_many_claim(objects):
    """Both overlays can run two replicas of a variant on two nodes; a ReadWriteOnce claim would strand one."""
    assert {c["spec"]["accessModes"][0] for c in _by_kind(objects, "PersistentVolumeClaim").values()} == {
        "ReadWriteMany"
    }


def test_all_four_deployments_spread_one_per_spot_gpu_node(objects):
    deploys = _by_kind(objects, "Deployment")
    assert len(deploys) == 4
    for name, d in deploys.items():
        pod = d["spec"]["template"]
        assert pod["metadata"]["labels"]["model-variant"] == name
        anti = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert anti["topologyKey"] == "kubernetes.io/hostname"
        assert anti["labelSelector"]["matchExpressions"] == [{"key": "model-variant", "operator": "Exists"}]
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["SPOT"]
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
        # a surge pod would need a fifth GPU node that anti-affinity forbids
        assert d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_probes_drain_and_grace_fit_the_design_and_the_spot_notice(objects):
    for d in _by_kind(objects, "Deployment").values():
        c = _container(d)
        assert c["startupProbe"]["httpGet"]["path"] == "/v1/models"
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 450
        assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert "vllm:num_requests_running" in c["lifecycle"]["preStop"]["exec"]["command"][-1]
        grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == TERMINATION_GRACE_SECONDS < 120
        shm = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory"
        ann = d["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8000"


def test_resources_are_string_quantities_with_one_gpu(objects):
    for d in _by_kind(objects, "Deployment").values():
        res = _container(d)["resources"]
        for section in ("requests", "limits"):
            assert all(isinstance(q, str) for q in res[section].values())
            assert res[section]["nvidia.com/gpu"] == "1"


def test_dev_scales_on_cpu_and_prod_on_vllm_queue_depth():
    dev, prod = render(CATALOG, "dev"), render(CATALOG, "prod")
    # The autoscaler owns replicas (its minimum: 1 in dev, 2 in prod); the Deployment leaves them out.
    assert not any(
        "replicas" in d["spec"] for d in [*_by_kind(dev, "Deployment").values(), *_by_kind(prod, "Deployment").values()]
    )
    assert {h["spec"]["minReplicas"] for h in _by_kind(dev, "HorizontalPodAutoscaler").values()} == {1}
    assert len(_by_kind(dev, "HorizontalPodAutoscaler")) == 4 and not _by_kind(dev, "ScaledObject")
    scaled = _by_kind(prod, "ScaledObject")
    assert len(scaled) == 4 and not _by_kind(prod, "HorizontalPodAutoscaler")
    trigger = scaled["mistral-7b-awq"]["spec"]["triggers"][0]
    assert trigger["metadata"]["query"] == (
        'sum(vllm:num_requests_waiting{namespace="llm-baseline",model_name="mistral-7b-awq"})'
    )
    assert scaled["mistral-7b-awq"]["spec"]["minReplicaCount"] == 2


def test_services_monitor_and_labels_are_consistent(objects):
    services = _by_kind(objects, "Service")
    assert set(services) == set(CATALOG.names)
    for name, s in services.items():
        assert s["spec"]["ports"][0]["port"] == 8000
        d = _by_kind(objects, "Deployment")[name]
        assert s["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
        assert s["metadata"]["labels"]["app.kubernetes.io/instance"] == name
    monitor = _by_kind(objects, "ServiceMonitor")["vllm"]
    for s in services.values():
        assert monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    for o in objects:
        assert o["metadata"].get("namespace", o["metadata"]["name"]) == "llm-baseline"


def test_lora_adapters_are_fetched_at_their_pinned_revision():
    text = load_catalog().model_dump()
    lora = next(v for v in text["variants"] if v["name"] == "mistral-7b-lora")
    lora["lora"]["adapters"] = [{"name": "support-v1", "repo": "acme/support-lora", "revision": "c" * 40}]
    from llmplat_dagster.catalog import Catalog

    catalog = Catalog.model_validate(text)
    args = vllm_args(catalog.variant("mistral-7b-lora"))
    assert _flag(args, "--lora-modules") == "support-v1=/adapters/support-v1"
    d = _by_kind(render(catalog, "dev"), "Deployment")["mistral-7b-lora"]
    init = d["spec"]["template"]["spec"]["initContainers"][0]
    assert "repo_id='acme/support-lora', revision='" + "c" * 40 in init["command"][-1]


def test_content_hash_changes_with_the_catalog_only():
    a = content_hash(render(CATALOG, "dev"))
    assert a == content_hash(render(load_catalog(), "dev"))
    assert a != content_hash(render(load_catalog(revisions={"mistral-7b-awq": "d" * 40}), "dev"))


def _variant_objects(objects, name):
    return {o["kind"]: o for o in objects if o["metadata"]["name"] == name}


def test_keda_reads_the_installed_prometheus_and_scales_down_through_the_hpa_window():
    scaled = _by_kind(render(CATALOG, "prod"), "ScaledObject")
    for name, so in scaled.items():
        spec = so["spec"]
        (trigger,) = spec["triggers"]
        assert trigger["metadata"]["serverAddress"] == (
            "http://prometheus-kube-prometheus-prometheus.observability.svc:9090"
        )
        assert (
            trigger["metadata"]["query"]
            == f'sum(vllm:num_requests_waiting{{namespace="llm-baseline",model_name="{name}"}})'
        )
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 3)
        down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] == 300
        assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
        assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}


def _catalog(**prod):
    from llmplat_dagster.catalog import Catalog

    data = load_catalog().model_dump()
    data["overlays"]["prod"].update(prod)
    return Catalog.model_validate(data)


def test_off_hours_add_a_cron_trigger_and_let_idle_variants_reach_zero():
    catalog = _catalog(off_hours={"timezone": "Europe/Berlin", "start": "0 7 * * 1-5", "end": "0 20 * * 1-5"})
    so = _by_kind(render(catalog, "prod"), "ScaledObject")["mistral-7b-judge"]["spec"]
    assert so["minReplicaCount"] == 0 and so["cooldownPeriod"] == 300
    cron = next(t for t in so["triggers"] if t["type"] == "cron")
    assert cron["metadata"] == {"timezone": "Europe/Berlin", "start": "0 7 * * 1-5", "end": "0 20 * * 1-5",
                                "desiredReplicas": "2"}  # fmt: skip
    assert all(t["type"] != "cron" for t in _by_kind(render(CATALOG, "prod"), "ScaledObject")["mistral-7b-judge"]
               ["spec"]["triggers"])  # fmt: skip


def test_otlp_endpoint_is_off_by_default_and_passed_to_vllm_when_set():
    assert all("--otlp-traces-endpoint" not in _container(d)["args"] for d in _by_kind(render(CATALOG, "prod"),
               "Deployment").values())  # fmt: skip
    catalog = _catalog(otlp_traces_endpoint="http://otel-collector.observability.svc:4317")
    d = _by_kind(render(catalog, "prod"), "Deployment")["mistral-7b-awq"]
    assert _flag(_container(d)["args"], "--otlp-traces-endpoint") == "http://otel-collector.observability.svc:4317"
    assert {"name": "OTEL_SERVICE_NAME", "value": "mistral-7b-awq"} in _container(d)["env"]
    assert all("--otlp-traces-endpoint" not in _container(d)["args"] for d in _by_kind(render(catalog, "dev"),
               "Deployment").values())  # fmt: skip


def test_extra_args_follow_the_rendered_flags():
    from llmplat_dagster.catalog import Catalog

    data = load_catalog().model_dump()
    data["variants"][0]["extra_args"] = ["--enable-prefix-caching", "--kv-cache-dtype=fp8"]
    args = vllm_args(Catalog.model_validate(data).variants[0])
    assert args[-6:] == ["--enable-prefix-caching", "--kv-cache-dtype=fp8", "--host", "0.0.0.0", "--port", "8000"]


def test_each_variant_has_a_disruption_budget_over_its_own_pods(objects):
    budgets = _by_kind(objects, "PodDisruptionBudget")
    assert set(budgets) == set(CATALOG.names)
    for name, pdb in budgets.items():
        d = _by_kind(objects, "Deployment")[name]
        assert pdb["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_model_servers_keep_caches_on_the_volume_and_drop_privileges(objects):
    for d in _by_kind(objects, "Deployment").values():
        c, pod = _container(d), d["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        cache = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "hf-cache")
        assert env["VLLM_CACHE_ROOT"].startswith(cache + "/") and env["TRITON_CACHE_DIR"].startswith(cache + "/")
        assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                        "capabilities": {"drop": ["ALL"]}}  # fmt: skip
        assert d["metadata"]["annotations"]["llmplat/node-pool"] == "gpu-spot"


def test_dashboard_and_alert_rules_ship_where_kube_prometheus_stack_looks(objects):
    (cm,) = _by_kind(objects, "ConfigMap").values()
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (board,) = (json.loads(v) for v in cm["data"].values())
    from llmplat_dagster.observability import dashboard_queries

    exprs = [t["expr"] for p in board["panels"] if p["type"] == "timeseries" for t in p["targets"]]
    assert sorted(exprs) == sorted(dashboard_queries(CATALOG).values())
    assert {p["title"] for p in board["panels"] if p["type"] == "row"} == {"Traffic", "Latency", "Capacity"}
    rule = _by_kind(objects, "PrometheusRule")["vllm"]
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert alerts[:4] == ["VllmQueueDepthSustained", "VllmErrorRatioHigh", "VllmNoReadyReplica", "VllmKvCacheNearFull"]
    assert alerts.count("VllmTtftP95OverSlo") == 4


def test_loading_the_definitions_does_not_import_the_dashboard_library():
    """Every run pod and UI launch loads the code location; the Grafana SDK is for rendering dashboards only."""
    import subprocess
    import sys

    code = (
        "import sys, llmplat_dagster.definitions as d; from llmplat_dagster.settings import Settings; "
        "d.build_definitions(Settings()); print('grafana_foundation_sdk' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr
