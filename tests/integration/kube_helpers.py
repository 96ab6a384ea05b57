"""A kmock-based fake Kubernetes API and a scripted controller for `KubernetesCluster` tests.

What kmock 0.8 does not do, and this file adds (nothing more):
- server-side apply: a PATCH with `application/apply-patch+yaml` to a missing object creates it, and a
  Deployment's `metadata.generation` grows with each apply (kmock only merges JSON into existing objects);
- cluster-scoped `/api/v1/namespaces[/name]`: kmock 0.8 parses the name as a namespace and fails on
  POST to the collection, so `FakeKubeApi` serves Namespace reads, creates and applies itself;
- `?watch=True` (the Python client's spelling of a bool) is read as a watch, as the API server does;
- the watch: kmock's own watch never ends (it ignores `timeoutSeconds`), so `Controller` answers each watch
  of the Deployment with one scripted state and then closes the stream, as a server does at its timeout;
  each watch also advances the fake clock, so deadlines pass without anyone sleeping.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import dagster as dg
import kmock
from kubernetes import client

from llmplat_dagster.k8s.kube import KubernetesCluster

DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")
EVENTS = kmock.resource("", "v1", "events")
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")


class FakeClock:
    """The injected clock and sleep: time only moves when the controller or a backoff moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> kmock.Response:
    body = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason}
    return kmock.Response(status=code, payload={**body, "message": message, "details": details or {}})


class FakeKubeApi(kmock.KubernetesEmulator):
    """kmock's emulator plus server-side-apply creation and cluster-scoped Namespaces (see the module doc)."""

    namespaces: dict[str, dict[str, Any]]
    namespace_requests: list[tuple[str, str]]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces = {}
        self.namespace_requests = []
        for res, kind in ((DEPLOYMENTS, "Deployment"), (PODS, "Pod"), (EVENTS, "Event")):
            self.resources[res] = kmock.ResourceInfo(namespaced=True, kind=kind)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.query.get("watch") == "True":  # the client sends Python's bool; kmock wants "true"
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.update_query(watch="true"))
        found = NAMESPACE_PATH.match(raw_request.path)
        if not found:
            return await super().__call__(raw_request)
        name, method = found.group(1), raw_request.method
        self.namespace_requests.append((method, name or ""))
        if method == "POST":
            name = (await raw_request.json())["metadata"]["name"]
            if name in self.namespaces:
                return aiohttp.web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409)
        elif method == "GET" and name not in self.namespaces:
            return aiohttp.web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        if method in ("POST", "PATCH"):
            self.namespaces[name] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        return aiohttp.web.json_response(self.namespaces[name], status=201 if method == "POST" else 200)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        is_apply = request.headers.get("Content-Type", "").startswith("application/apply-patch")
        if request.action == kmock.action.UPDATE and is_apply and request.resource is not None:
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                self.objects[key] = {"metadata": {"name": request.name, "namespace": request.namespace}}
            if request.resource == DEPLOYMENTS:
                generation = self.objects[key].get("metadata", {}).get("generation", 0)
                self.objects[key].patch({"metadata": {"generation": generation + 1}})
        return await super()._handle(request)


def api_client_for(server: Any) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = str(server.url).rstrip("/")
    return client.ApiClient(cfg)


class KmockCluster(dg.ConfigurableResource):
    """The prod ClusterResource's `kubernetes` mode, with the client pointed at kmock instead of in-cluster config."""

    mode: str = "kubernetes"
    host: str
    rollout_timeout_s: float = 60.0

    def get(self) -> KubernetesCluster:
        clock = FakeClock()
        return KubernetesCluster(api_client_for(type("S", (), {"url": self.host})()), sleep=clock.sleep, clock=clock)


def ssa_patches(server: Any) -> list[kmock.Request]:
    return [r for r in list(server) if r.method == kmock.method.PATCH]


# -- the controller ------------------------------------------------------------------------------------------


def deployment(name: str, namespace: str, *, replicas: int = 1, generation: int = 2) -> dict[str, Any]:
    selector = {"app.kubernetes.io/instance": name, "model-variant": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": generation, "resourceVersion": "1"},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 900,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"}]},
            },
        },
        "status": {"observedGeneration": generation - 1, "replicas": replicas},
    }


def dep_status(generation: int, *, ready: int, desired: int = 1, total: int | None = None, **extra: Any) -> dict:
    """A Deployment status at `generation` where every pod runs the new template and `ready` of them are ready;
    `total` above `desired` means old pods are still around."""
    return {
        "observedGeneration": generation,
        "replicas": desired if total is None else total,
        "updatedReplicas": desired,
        "readyReplicas": ready,
        "availableReplicas": ready,
        **extra,
    }


def pod(name: str, deployment_name: str, *, phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": deployment_name}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"}]},
        "status": {"phase": phase, **status},
    }


def event(name: str, pod_name: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": reason,
        "message": message,
    }


@dataclass
class Step:
    """One state the controller reaches; it is served on the next watch, `advance_s` after the previous one."""

    advance_s: float = 10.0
    status: dict[str, Any] | None = None  # replaces the Deployment's .status
    pods: list[dict[str, Any]] | None = None  # replaces the Deployment's pods
    events: list[dict[str, Any]] = field(default_factory=list)  # added
    logs: dict[str, str] = field(default_factory=dict)  # pod name -> previous container log
    gone: bool = False  # answer this watch with 410 Gone instead


class Controller:
    """Plays the Deployment controller, the scheduler and the kubelet from a script of `Step`s."""

    def __init__(self, api: FakeKubeApi, clock: FakeClock, namespace: str, name: str, steps: list[Step]) -> None:
        self.api, self.clock, self.namespace, self.name = api, clock, namespace, name
        self.steps = list(steps)
        self.watches: list[dict[str, str]] = []  # the query of every watch request
        self.logs: dict[str, str] = {}
        self._rv = 1
        api.objects[DEPLOYMENTS, namespace, name] = deployment(name, namespace)
        api[kmock.action.WATCH, DEPLOYMENTS] << self._watch
        api[kmock.method.GET, PODS, kmock.subresource("log")] << self._log

    def _log(self, request: kmock.Request) -> bytes | kmock.Response:
        if request.name not in self.logs:
            return status(400, "BadRequest", f'previous terminated container "vllm" in pod "{request.name}" not found')
        return self.logs[request.name].encode()

    def _apply(self, step: Step) -> None:
        key = (DEPLOYMENTS, self.namespace, self.name)
        if step.status is not None:
            self.api.objects[key].patch({"status": None})
            self.api.objects[key].patch({"status": step.status})
        if step.pods is not None:
            for res, ns, name in list(self.api.objects):
                if res == PODS and ns == self.namespace:
                    del self.api.objects[res, ns, name]
            for p in step.pods:
                self.api.objects[PODS, self.namespace, p["metadata"]["name"]] = p
        for e in step.events:
            self.api.objects[EVENTS, self.namespace, e["metadata"]["name"]] = e
        self.logs.update(step.logs)

    def _watch(self, request: kmock.Request) -> tuple[dict[str, Any], ...]:
        self.watches.append(dict(request.params))
        step = self.steps.pop(0) if self.steps else Step()  # past the script: time passes, nothing changes
        self.clock.now += step.advance_s
        if step.gone:
            gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
            return ({"type": "ERROR", "object": gone},)
        self._apply(step)
        self._rv += 1
        self.api.objects[DEPLOYMENTS, self.namespace, self.name].patch({"metadata": {"resourceVersion": str(self._rv)}})
        dep = self.api.objects[DEPLOYMENTS, self.namespace, self.name].raw
        return ({"type": "MODIFIED", "object": json.loads(json.dumps(dep))},)
