"""`KubernetesCluster`: server-side apply and the rollout watch through the official `kubernetes` client.

Every object goes through server-side apply (PATCH `application/apply-patch+yaml`, `fieldManager`), built-in
kinds through their generated `patch_*` method, custom resources (ScaledObject, ServiceMonitor) through
`CustomObjectsApi`. A field owned by another manager is a conflict that is reported, not overwritten, unless
`force_conflicts` is set: someone edited the Deployment by hand and should hear about it. Replicas of an
autoscaled variant are the autoscaler's: the rendered Deployment leaves `spec.replicas` out, and a Deployment
whose replicas this manager still owns from an older rendering hands them over first (`_hand_over_replicas`).
Calls are retried on 429 and 5xx with exponential backoff through the injected `sleep`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from llmplat_dagster.k8s.api_errors import describe_error, status_body
from llmplat_dagster.k8s.cluster import ApplyResult, ClusterError, Obj, ReplicaCounts, RolloutResult, object_ref
from llmplat_dagster.k8s.render import FIELD_MANAGER
from llmplat_dagster.k8s.rollout_watch import ApiCalls, RolloutWatcher
from llmplat_dagster.k8s.validate import BUILTIN_GROUPS
from llmplat_dagster.retry_after import parse_retry_after

APPLY_PATCH = "application/apply-patch+yaml"
RETRYABLE = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0  # an API server asking for longer is treated as down, not waited on
# (apiVersion, kind) -> (API class, the snake-case suffix of its patch_* method)
BUILTIN: dict[tuple[str, str], tuple[type, str]] = {
    ("v1", "Namespace"): (client.CoreV1Api, "namespace"),
    ("v1", "Service"): (client.CoreV1Api, "namespaced_service"),
    ("v1", "PersistentVolumeClaim"): (client.CoreV1Api, "namespaced_persistent_volume_claim"),
    ("v1", "Secret"): (client.CoreV1Api, "namespaced_secret"),
    ("v1", "ConfigMap"): (client.CoreV1Api, "namespaced_config_map"),
    ("v1", "ServiceAccount"): (client.CoreV1Api, "namespaced_service_account"),
    ("apps/v1", "Deployment"): (client.AppsV1Api, "namespaced_deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (client.AutoscalingV2Api, "namespaced_horizontal_pod_autoscaler"),
    ("policy/v1", "PodDisruptionBudget"): (client.PolicyV1Api, "namespaced_pod_disruption_budget"),
}
CUSTOM_PLURALS = {"ScaledObject": "scaledobjects", "ServiceMonitor": "servicemonitors"}
# Holds spec.replicas while this manager stops declaring it; the autoscaler's next scale takes it over.
REPLICAS_HANDOVER = f"{FIELD_MANAGER}-replicas-handover"


def owns_replicas(live: Obj, manager: str) -> bool:
    """Whether `manager`'s Apply entry in managedFields claims spec.replicas."""
    return any(
        entry.get("manager") == manager
        and entry.get("operation") == "Apply"
        and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        for entry in (live.get("metadata") or {}).get("managedFields") or []
    )


def conflict_lines(ref: str, exc: ApiException) -> list[str]:
    """One line per conflicting field: which field, and which manager owns it (from the Status details)."""
    body = status_body(exc)
    causes = (body.get("details") or {}).get("causes") or []
    lines = []
    for cause in causes:
        found = re.search(r'conflict with "([^"]+)"', cause.get("message", ""))
        manager = found.group(1) if found else cause.get("message", "another manager")
        lines.append(f"{ref}: {cause.get('field', '?')} is owned by {manager}")
    return lines or [f"{ref}: {body.get('message') or exc.reason}"]


class KubernetesCluster:
    """Server-side apply plus a watched rollout wait; time and sleep injected so tests never wait."""

    kind = "kubernetes"

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = FIELD_MANAGER,
        force_conflicts: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 5,
        backoff_s: float = 0.5,
        log: Any = None,
        watch_timeout_s: int = 30,
    ) -> None:
        self.api_client = api_client
        self.field_manager = field_manager
        self.force_conflicts = force_conflicts
        self.sleep, self.clock = sleep, clock
        self.retries, self.backoff_s = retries, backoff_s
        self.log = log or logging.getLogger(__name__)
        self.watch_timeout_s = watch_timeout_s
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_config(cls, context: str | None = None, in_cluster: bool = False, **kwargs: Any) -> KubernetesCluster:
        """Kubeconfig (optionally a named context) on a laptop, the service account inside the cluster."""
        from kubernetes import config

        if in_cluster:
            config.load_incluster_config()
            return cls(client.ApiClient(), **kwargs)
        return cls(config.new_client_from_config(context=context), **kwargs)

    # -- calls -----------------------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, retried on 429/5xx with exponential backoff; other API errors propagate."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                if exc.status not in RETRYABLE:
                    raise
                if attempt == self.retries:
                    raise ClusterError(f"{what}: gave up after {attempt + 1} attempts: {describe_error(exc)}") from exc
                delay = self.backoff_s * 2**attempt
                retry_after = parse_retry_after((exc.headers or {}).get("Retry-After"))
                if retry_after is not None:
                    delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
                self.log.warning(f"{what}: {describe_error(exc)}; retry {attempt + 1}/{self.retries} in {delay:g} s")
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def replica_counts(self, namespace: str, name: str) -> ReplicaCounts:
        """Desired (spec), existing (status.replicas, which counts Pending pods) and ready replicas: autoscaling
        validation judges the ready ones, so a scale-up without GPU capacity does not pass."""
        deploy = self.call(f"read Deployment/{namespace}/{name}", self.apps.read_namespaced_deployment, name, namespace)
        status = deploy.status
        return ReplicaCounts(
            desired=int((deploy.spec and deploy.spec.replicas) or 0),
            current=int((status and status.replicas) or 0),
            ready=int((status and status.ready_replicas) or 0),
        )

    # -- apply -----------------------------------------------------------------------------------------------

    def _patch(self, obj: Obj) -> Obj:
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj["metadata"]
        opts: dict[str, Any] = {"field_manager": self.field_manager, "_content_type": APPLY_PATCH}
        if self.force_conflicts:
            opts["force"] = True
        group, _, version = api_version.rpartition("/")
        if group not in BUILTIN_GROUPS:
            plural = CUSTOM_PLURALS.get(kind, kind.lower() + "s")
            fn, args = self.custom.patch_namespaced_custom_object, (group, version, meta["namespace"], plural)
            return self.call(f"apply {object_ref(obj)}", fn, *args, meta["name"], obj, **opts)
        try:
            api_cls, suffix = BUILTIN[(api_version, kind)]
        except KeyError:
            raise ClusterError(f"apply {object_ref(obj)}: no API mapping for {api_version} {kind}") from None
        fn = getattr(api_cls(self.api_client), f"patch_{suffix}")
        args = (meta["name"], meta["namespace"]) if suffix.startswith("namespaced_") else (meta["name"],)
        result = self.call(f"apply {object_ref(obj)}", fn, *args, obj, **opts)
        return self.api_client.sanitize_for_serialization(result)

    def _hand_over_replicas(self, obj: Obj) -> str | None:
        """Keep a scaled Deployment's replicas when this manager stops declaring them.

        Dropping a field that only this manager owns makes the API server remove it, i.e. reset the Deployment
        to 1 replica. Kubernetes' documented way out ("Transferring ownership", server-side apply): re-declare
        the live value under a separate manager first; the autoscaler's next scale then owns it alone.
        """
        meta = obj["metadata"]
        ref = object_ref(obj)
        try:
            live = self.call(f"read {ref}", self.apps.read_namespaced_deployment, meta["name"], meta["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ClusterError(f"read {ref}: {describe_error(exc)}") from exc
        live = self.api_client.sanitize_for_serialization(live)
        if not owns_replicas(live, self.field_manager):
            return None
        replicas = (live.get("spec") or {}).get("replicas", 1)
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": replicas},
        }
        opts = {"field_manager": REPLICAS_HANDOVER, "_content_type": APPLY_PATCH}
        patch = self.apps.patch_namespaced_deployment
        self.call(f"hand over {ref} replicas", patch, meta["name"], meta["namespace"], body, **opts)
        return f"{ref}: spec.replicas ({replicas}) handed over from {self.field_manager} to the autoscaler"

    def ensure_namespace(self, name: str) -> bool:
        """Create the namespace when it is missing; True if it was created."""
        try:
            self.call(f"read Namespace/{name}", self.core.read_namespace, name)
            return False
        except ApiException as exc:
            if exc.status != 404:
                raise ClusterError(f"read Namespace/{name}: {describe_error(exc)}") from exc
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            self.call(f"create Namespace/{name}", self.core.create_namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # created meanwhile by someone else: fine
                raise ClusterError(f"create Namespace/{name}: {describe_error(exc)}") from exc
        self.log.info(f"created namespace {name}")
        return True

    def apply(self, objects: list[Obj], *, variant: str) -> ApplyResult:
        """Namespaces first (applied, or created when missing), then every object in the given order."""
        ordered = sorted(objects, key=lambda o: o.get("kind") != "Namespace")
        declared = {o["metadata"]["name"] for o in ordered if o.get("kind") == "Namespace"}
        for ns in dict.fromkeys(o["metadata"].get("namespace") for o in ordered):
            if ns and ns not in declared:
                self.ensure_namespace(ns)
        applied: list[str] = []
        conflicts: list[str] = []
        generation: int | None = None
        for obj in ordered:
            ref = object_ref(obj)
            autoscaled = obj["kind"] == "Deployment" and "replicas" not in (obj.get("spec") or {})
            if autoscaled and (note := self._hand_over_replicas(obj)):
                self.log.info(note)
            try:
                result = self._patch(obj)
            except ApiException as exc:
                if exc.status == 409:
                    conflicts += conflict_lines(ref, exc)
                    continue
                raise ClusterError(f"apply {ref}: {describe_error(exc)}") from exc
            applied.append(ref)
            if obj["kind"] == "Deployment" and generation is None:
                generation = (result.get("metadata") or {}).get("generation")
        message = f"applied {len(applied)} objects for {variant} (server-side apply as {self.field_manager})"
        if conflicts:
            message += f"; {len(conflicts)} conflict(s) not forced: {conflicts[0]}"
        self.log.info(message)
        return ApplyResult(True, applied, generation, "", conflicts, message)

    # -- rollout ---------------------------------------------------------------------------------------------

    def wait_for_rollout(self, namespace: str, name: str, *, timeout_s: float) -> RolloutResult:
        api = ApiCalls(
            core=self.core,
            apps=self.apps,
            call=self.call,
            sleep=self.sleep,
            clock=self.clock,
            log=self.log,
            watch_timeout_s=self.watch_timeout_s,
            backoff_s=self.backoff_s,
        )
        return RolloutWatcher(api, namespace, name).wait(timeout_s)
