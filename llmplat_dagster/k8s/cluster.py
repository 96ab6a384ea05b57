"""The Cluster interface the deployment and readiness assets call, and the results they record.

Two implementations: `KubernetesCluster` (k8s/kube.py: server-side apply + rollout watch against a real
API server) and `DryRunCluster` (k8s/dryrun.py: validate + diff, nothing applied; the local default).
The results are plain frozen dataclasses so asset metadata can be built from them without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Obj = dict[str, Any]


class ClusterError(RuntimeError):
    """An API call that failed for good; the message names the object and the verb."""


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # False for the dry run
    objects: list[str]  # "Kind/namespace/name" applied (or that would be)
    generation: int | None  # the Deployment's metadata.generation after apply (None in dry run)
    diff: str  # dry run: unified diff against what it recorded last ("" if unchanged); real: ""
    conflicts: list[str]  # field-manager conflicts reported (not forced)
    message: str  # one line for asset metadata


@dataclass(frozen=True)
class RolloutResult:
    ready: bool
    reason: str  # "Ready" | "Unschedulable" | "ImagePullBackOff" | "CrashLoopBackOff" | "OOMKilled" | ...
    message: str  # the one clear sentence a user reads (with last log lines for CrashLoopBackOff)
    seconds: float  # time to ready (or until failure)
    ready_replicas: int
    desired_replicas: int
    evictions: int  # spot interruptions seen while waiting


@dataclass(frozen=True)
class ReplicaCounts:
    """A Deployment's replicas: asked for (spec), existing pods (status; Pending included), ready to serve."""

    desired: int
    current: int
    ready: int


@runtime_checkable
class Cluster(Protocol):
    kind: str  # "kubernetes" | "dry-run"

    def apply(self, objects: list[Obj], *, variant: str) -> ApplyResult: ...

    def wait_for_rollout(self, namespace: str, name: str, *, timeout_s: float) -> RolloutResult: ...


def object_ref(obj: Obj) -> str:
    """ "Kind/namespace/name" (cluster-scoped objects: "Kind/name"), the id used in results and errors."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{meta.get('name', '?')}"
