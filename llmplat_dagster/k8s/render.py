"""Kubernetes objects from the catalog: pure functions, no cluster, no environment.

Deliberate departures from the design document (ARCHITECTURE.md lists its defects):
- one model-cache claim per variant; `prod` runs two replicas per variant on different nodes, so its
  claims are ReadWriteMany (EFS) while `dev` (one replica) keeps ReadWriteOnce gp3;
- rollouts never surge (maxSurge 0): every GPU node is taken by anti-affinity, a surge pod would pend;
- resource requests fit a g4dn.xlarge's allocatable (the document's 4 CPU / 16Gi never schedule there);
- metric names are vLLM's real, colon-named ones;
- a preStop drain and a grace period that end inside the two-minute spot notice;
- liveness on vLLM's `/health`, vLLM's compile caches on the model-cache volume, a PodDisruptionBudget per
  variant, and KEDA scale-down governed by an HPA stabilization window (cooldownPeriod only covers scaling to
  zero), with a fallback when Prometheus cannot be read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmplat_dagster.capacity import NODE_POOL_ANNOTATION
from llmplat_dagster.catalog import Catalog, Overlay, VariantSpec
from llmplat_dagster.observability.queries import queue_query

PORT = 8000
FIELD_MANAGER = "llmplat-dagster"
HF_SECRET = "hf-token"
HF_SECRET_KEY = "HUGGING_FACE_HUB_TOKEN"
CACHE_MOUNT = "/root/.cache/huggingface"
# torch.compile, Triton and vLLM's own caches on the model-cache volume: a spot replacement reuses them
# instead of compiling again on a new node.
VLLM_CACHE = f"{CACHE_MOUNT}/vllm"
TRITON_CACHE = f"{CACHE_MOUNT}/triton"
ADAPTER_MOUNT = "/adapters"
PART_OF = "llm-optimization-platform"
# Spot nodes get a two-minute notice; the drain plus vLLM's shutdown must end well inside it.
TERMINATION_GRACE_SECONDS = 90
DRAIN_DEADLINE_SECONDS = 70

Obj = dict[str, Any]

# The drain: wait for endpoints to drop the pod, then for vLLM's running and waiting requests to finish.
DRAIN_SCRIPT = f"""\
import time, urllib.request
time.sleep(5)
deadline = time.time() + {DRAIN_DEADLINE_SECONDS}
while time.time() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:{PORT}/metrics", timeout=2).read().decode()
    except Exception:
        break
    busy = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(("vllm:num_requests_running{{", "vllm:num_requests_waiting{{")))
    if busy == 0:
        break
    time.sleep(2)
"""


def overlay(catalog: Catalog, name: str) -> Overlay:
    return catalog.overlay(name)


def image_tag(image: str) -> str:
    """The image's tag as a label value (`v0.10.2`); a digest-only reference gives `sha256-<12 hex>`, never the
    repository (`vllm/vllm-openai` is not a valid label value). Cut to a label's 63 characters."""
    name, _, digest = image.partition("@")
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    value = tag or digest.replace(":", "-")[:19] or "untagged"
    return value[:63].strip("-_.") or "untagged"


def labels(catalog_variant: VariantSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": catalog_variant.name,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/version": image_tag(catalog_variant.image),
        "model-variant": catalog_variant.name,
        "lab.team": catalog_variant.team,
    }


def selector(v: VariantSpec) -> dict[str, str]:
    return {"app.kubernetes.io/instance": v.name, "model-variant": v.name}


def vllm_args(v: VariantSpec, port: int = PORT, otlp_traces_endpoint: str | None = None) -> list[str]:
    """The `vllm serve` flags for one variant; `llmplat sim serve` accepts the same list.

    The served name comes first (vLLM labels its metrics with it); the Hugging Face id follows as an alias, so
    clients that name `mistralai/Mistral-7B-Instruct-v0.2` are served too.
    """
    args = [
        "--model", v.model_id,
        "--revision", v.revision,
        "--served-model-name", *v.served_names,
        "--dtype", v.dtype,
        "--max-model-len", str(v.max_model_len),
        "--max-num-seqs", str(v.max_num_seqs),
        "--gpu-memory-utilization", f"{v.gpu_memory_utilization:g}",
    ]  # fmt: skip
    if v.max_num_batched_tokens is not None:
        args += ["--max-num-batched-tokens", str(v.max_num_batched_tokens)]
    if v.enforce_eager:
        args.append("--enforce-eager")
    if v.quantization != "none":
        args += ["--quantization", v.quantization]
    if v.lora.enabled:
        args += ["--enable-lora", "--max-loras", str(v.lora.max_loras), "--max-lora-rank", str(v.lora.max_lora_rank)]
        if v.lora.adapters:
            args += ["--lora-modules", *(f"{a.name}={ADAPTER_MOUNT}/{a.name}" for a in v.lora.adapters)]
    if otlp_traces_endpoint:
        args += ["--otlp-traces-endpoint", otlp_traces_endpoint]
    return args + [*v.extra_args, "--host", "0.0.0.0", "--port", str(port)]


def _meta(name: str, namespace: str, lbls: dict[str, str]) -> Obj:
    return {"name": name, "namespace": namespace, "labels": dict(lbls)}


def namespace(catalog: Catalog) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": catalog.namespace,
            "labels": {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": "baseline-inference"},
        },
    }


def hf_token_secret_template(catalog: Catalog) -> Obj:
    """A Secret without a value: documents the name and key; the value comes from outside git."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": HF_SECRET,
            "namespace": catalog.namespace,
            "annotations": {
                "llmplat/usage": (
                    f"kubectl -n {catalog.namespace} create secret generic {HF_SECRET} "
                    f'--from-literal={HF_SECRET_KEY}="$HF_TOKEN" (or External Secrets); never commit a value'
                )
            },
        },
    }


def cache_claim(catalog: Catalog, v: VariantSpec, ov: Overlay) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(f"hf-cache-{v.name}", catalog.namespace, labels(v)),
        "spec": {
            "accessModes": [ov.cache_access_mode],
            "storageClassName": ov.cache_storage_class,
            "resources": {"requests": {"storage": v.cache_size}},
        },
    }


def _env(v: VariantSpec | None = None, otlp: bool = False) -> list[Obj]:
    token = {"secretKeyRef": {"name": HF_SECRET, "key": HF_SECRET_KEY}}
    field = lambda path: {"fieldRef": {"fieldPath": path}}  # noqa: E731
    env = [
        {"name": "HF_TOKEN", "valueFrom": token},
        {"name": HF_SECRET_KEY, "valueFrom": token},
        {"name": "HF_HOME", "value": CACHE_MOUNT},
        {"name": "VLLM_CACHE_ROOT", "value": VLLM_CACHE},
        {"name": "TRITON_CACHE_DIR", "value": TRITON_CACHE},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_UID", "valueFrom": field("metadata.uid")},
    ]
    if otlp and v is not None:
        env.append({"name": "OTEL_SERVICE_NAME", "value": v.name})
    return env


def _probe(path: str, period: int, timeout: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": PORT},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


# vLLM's image runs as root and writes its caches under /root: the container keeps uid 0 and a writable root
# filesystem, but loses every capability, privilege escalation and unconfined syscalls (README, "Production").
POD_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}


def _resources(v: VariantSpec) -> Obj:
    r = v.resources
    gpu = str(r.gpu)
    return {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request, "nvidia.com/gpu": gpu},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit, "nvidia.com/gpu": gpu},
    }


def _adapter_init(v: VariantSpec) -> list[Obj]:
    """LoRA adapters are fetched at their pinned revision before vLLM starts, into a pod-local volume."""
    if not v.lora.adapters:
        return []
    calls = "; ".join(
        f"snapshot_download(repo_id={a.repo!r}, revision={a.revision!r}, local_dir={ADAPTER_MOUNT + '/' + a.name!r})"
        for a in v.lora.adapters
    )
    return [
        {
            "name": "fetch-adapters",
            "image": v.image,
            "command": ["python3", "-c", f"from huggingface_hub import snapshot_download; {calls}"],
            "env": _env()[:3],
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [{"name": "adapters", "mountPath": ADAPTER_MOUNT}],
        }
    ]


def deployment(catalog: Catalog, v: VariantSpec, ov: Overlay) -> Obj:
    lbls = labels(v)
    volumes = [
        {"name": "hf-cache", "persistentVolumeClaim": {"claimName": f"hf-cache-{v.name}"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
    ]
    mounts = [{"name": "hf-cache", "mountPath": CACHE_MOUNT}, {"name": "shm", "mountPath": "/dev/shm"}]
    if v.lora.adapters:
        volumes.append({"name": "adapters", "emptyDir": {}})
        mounts.append({"name": "adapters", "mountPath": ADAPTER_MOUNT, "readOnly": True})
    container = {
        "name": "vllm",
        "image": v.image,
        "imagePullPolicy": "IfNotPresent",
        "args": vllm_args(v, otlp_traces_endpoint=ov.otlp_traces_endpoint),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(v, otlp=bool(ov.otlp_traces_endpoint)),
        "resources": _resources(v),
        "volumeMounts": mounts,
        # Startup gates the 7.5-minute cold start; readiness asks for the model list; liveness asks vLLM's
        # /health, which fails when the engine is dead (a /metrics page can outlive it).
        "startupProbe": _probe("/v1/models", period=5, timeout=5, failures=90),
        "readinessProbe": _probe("/v1/models", period=5, timeout=2, failures=12),
        "livenessProbe": _probe("/health", period=15, timeout=5, failures=6),
        "lifecycle": {"preStop": {"exec": {"command": ["python3", "-c", DRAIN_SCRIPT]}}},
        "securityContext": CONTAINER_SECURITY,
    }
    pod_spec = {
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": POD_SECURITY,
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["SPOT"]}
                            ]
                        }
                    ]
                }
            },
            # One model server per GPU node, whatever the variant.
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchExpressions": [{"key": "model-variant", "operator": "Exists"}]},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            },
        },
        "initContainers": _adapter_init(v),
        "containers": [container],
        "volumes": volumes,
    }
    if not pod_spec["initContainers"]:
        del pod_spec["initContainers"]
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_meta(v.name, catalog.namespace, lbls),
            "annotations": {
                "llmplat/model-id": v.model_id,
                "llmplat/model-revision": v.revision,
                NODE_POOL_ANNOTATION: ov.node_pool,
            },
        },
        "spec": {
            "replicas": ov.replicas,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 900,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "selector": {"matchLabels": selector(v)},
            "template": {
                "metadata": {
                    "labels": lbls,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                        "llmplat/model-revision": v.revision,
                    },
                },
                "spec": pod_spec,
            },
        },
    }
    if ov.autoscaler in ("hpa", "keda"):
        # The autoscaler owns replicas: server-side apply leaves the field to its field manager, so a rollout
        # neither conflicts with it nor resets a scaled-out variant (the first apply starts at 1, the default).
        del deploy["spec"]["replicas"]
    return deploy


def service(catalog: Catalog, v: VariantSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(v.name, catalog.namespace, labels(v)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(v),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(catalog: Catalog, v: VariantSpec) -> Obj:
    """At most one pod of a variant drained at a time (node upgrades, consolidation); a crash-looping pod
    does not block a drain (unhealthyPodEvictionPolicy)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(v.name, catalog.namespace, labels(v)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(v)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _keda_triggers(catalog: Catalog, v: VariantSpec, ov: Overlay) -> list[Obj]:
    triggers = [
        {
            "type": "prometheus",
            "metadata": {
                "serverAddress": ov.prometheus.address,
                "query": queue_query(catalog, v),
                "threshold": str(ov.keda.queue_threshold),
            },
        }
    ]
    if ov.off_hours:
        # Inside the window KEDA holds the working replicas; outside it, an idle variant goes to zero.
        window = ov.off_hours
        triggers.append(
            {
                "type": "cron",
                "metadata": {
                    "timezone": window.timezone,
                    "start": window.start,
                    "end": window.end,
                    "desiredReplicas": str(ov.replicas),
                },
            }
        )
    return triggers


def autoscaler(catalog: Catalog, v: VariantSpec, ov: Overlay) -> Obj:
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": v.name}
    if ov.autoscaler == "hpa":
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(v.name, catalog.namespace, labels(v)),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": ov.replicas,
                "maxReplicas": ov.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        }
    keda = ov.keda
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(v.name, catalog.namespace, labels(v)),
        "spec": {
            "scaleTargetRef": target,
            "minReplicaCount": 0 if ov.off_hours else ov.replicas,
            "maxReplicaCount": ov.max_replicas,
            "pollingInterval": keda.polling_interval_s,
            # KEDA applies cooldownPeriod only when scaling to zero; the HPA behaviour below paces the rest.
            "cooldownPeriod": keda.cooldown_s,
            # Prometheus unreadable: hold at least the working replicas instead of guessing from no data.
            "fallback": {
                "failureThreshold": keda.fallback_failures,
                "replicas": ov.replicas,
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": keda.scale_up_stabilization_s,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                        },
                        # One model server at a time, after the queue stayed low for the whole window.
                        "scaleDown": {
                            "stabilizationWindowSeconds": keda.scale_down_stabilization_s,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
                        },
                    }
                }
            },
            "triggers": _keda_triggers(catalog, v, ov),
        },
    }


def render_variant(catalog: Catalog, v: VariantSpec, overlay_name: str) -> list[Obj]:
    ov = catalog.overlay(overlay_name, v.name)
    return [
        cache_claim(catalog, v, ov),
        deployment(catalog, v, ov),
        service(catalog, v),
        disruption_budget(catalog, v),
        autoscaler(catalog, v, ov),
    ]


def shared_objects(catalog: Catalog, overlay_name: str) -> list[Obj]:
    """What every variant shares and an admin applies once: namespace, scrape config, alerts, dashboard."""
    from llmplat_dagster.k8s.monitoring import dashboard_config_map, prometheus_rule, service_monitor

    ov = catalog.overlay(overlay_name)
    return [
        namespace(catalog),
        service_monitor(catalog, ov),
        prometheus_rule(catalog, ov),
        dashboard_config_map(catalog),
    ]


def render(catalog: Catalog, overlay_name: str) -> list[Obj]:
    """Every object of one overlay, in apply order (namespace and claims before their users)."""
    shared = shared_objects(catalog, overlay_name)
    objects = shared[:1]
    for v in catalog.variants:
        objects += render_variant(catalog, v, overlay_name)
    return objects + shared[1:]


def content_hash(objects: list[Obj]) -> str:
    """Stable across dict order: the data version of a manifests asset and the applied-hash annotation."""
    canonical = json.dumps(objects, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def object_id(obj: Obj) -> str:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{meta['name']}"
