"""Where a variant's OpenAI-compatible server answers, per environment, behind one context manager.

`with endpoints.open(variant) as base_url:` works the same for in-cluster service DNS (Dagster runs in the
cluster), an explicit URL map (local runs against the simulator), and a port-forward (a laptop against a
real cluster), so the readiness and canary assets never branch on where they run.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from llmplat_dagster.k8s.render import PORT


class Endpoints(Protocol):
    kind: str  # "service-dns" | "url-map" | "port-forward"

    def open(self, variant: str) -> contextlib.AbstractContextManager[str]: ...


class ServiceDnsEndpoints:
    """The variant's ClusterIP Service by its cluster DNS name; nothing to open or close."""

    kind = "service-dns"

    def __init__(self, namespace: str, port: int = PORT, cluster_domain: str = "cluster.local") -> None:
        self.namespace, self.port, self.cluster_domain = namespace, port, cluster_domain

    def url(self, variant: str) -> str:
        return f"http://{variant}.{self.namespace}.svc.{self.cluster_domain}:{self.port}"

    @contextlib.contextmanager
    def open(self, variant: str) -> Iterator[str]:
        yield self.url(variant)


class EndpointError(LookupError):
    """No server to talk to for a variant; the message says what to set."""


class StaticEndpoints:
    """An explicit variant -> base URL map (the simulator fleet, or any server the user points at)."""

    kind = "url-map"

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = {k: v.rstrip("/") for k, v in urls.items()}

    @contextlib.contextmanager
    def open(self, variant: str) -> Iterator[str]:
        if variant not in self.urls:
            named = f"it names {sorted(self.urls)}" if self.urls else "it is not set"
            raise EndpointError(
                f"no endpoint for variant {variant!r}: LLMPLAT_ENDPOINTS does not name it ({named}). "
                "Start servers with `llmplat sim fleet --endpoints-file endpoints.json` and set "
                "LLMPLAT_ENDPOINTS=endpoints.json (or variant=http://host:port,...) where Dagster runs"
            )
        yield self.urls[variant]


def pick_pod(pods: list[dict[str, Any]]) -> str | None:
    """A Running pod whose Ready condition is True (the one a Service would route to), by name order."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp"):
            return pod["metadata"]["name"]
    return None


def target_port(service: dict[str, Any], pod: dict[str, Any]) -> int:
    """The container port behind the Service's first port (a named targetPort is looked up in the pod)."""
    port = service["spec"]["ports"][0]
    target = port.get("targetPort", port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    raise LookupError(f"Service {service['metadata']['name']}: no container port named {target!r}")


class PortForwardEndpoints:
    """A local port relayed to a ready pod of the variant's Service over the API server's port-forward."""

    kind = "port-forward"

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.api_client, self.namespace = api_client, namespace
        self.core = client.CoreV1Api(api_client)

    def resolve(self, variant: str) -> tuple[str, int]:
        """(pod name, container port) the Service `variant` routes to."""
        ser = self.api_client.sanitize_for_serialization
        service = ser(self.core.read_namespaced_service(variant, self.namespace))
        selector = ",".join(f"{k}={v}" for k, v in sorted((service["spec"].get("selector") or {}).items()))
        pods = [ser(p) for p in self.core.list_namespaced_pod(self.namespace, label_selector=selector).items]
        name = pick_pod(pods)
        if name is None:
            raise LookupError(f"Service {self.namespace}/{variant}: no Running and Ready pod to forward to")
        pod = next(p for p in pods if p["metadata"]["name"] == name)
        return name, target_port(service, pod)

    @contextlib.contextmanager
    def open(self, variant: str) -> Iterator[str]:
        from kubernetes.stream import portforward

        pod, port = self.resolve(variant)
        listener = socket.create_server(("127.0.0.1", 0))
        stop = threading.Event()

        def serve(conn: socket.socket) -> None:
            pf = portforward(self.core.connect_get_namespaced_pod_portforward, pod, self.namespace, ports=str(port))
            _relay(conn, pf.socket(port))
            pf.close()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, name=f"port-forward-{variant}", daemon=True).start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            listener.close()


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join(timeout=30)
    for s in (a, b):
        with contextlib.suppress(OSError):
            s.close()
