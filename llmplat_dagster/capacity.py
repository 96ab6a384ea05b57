"""Do an overlay's model servers fit the GPU node pool it targets?

Anti-affinity gives every model server a node of its own, whatever the variant, so an overlay needs as many
GPU nodes as it runs servers: the sum of the minimum replicas always, the sum of the autoscaler maxima at full
scale. A pool without a node autoscaler stays at `min_nodes`. The same check runs on the catalog (when it is
loaded) and on rendered objects (`llmplat manifests validate`), so a hand-edited tree is judged too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NODE_POOL_ANNOTATION = "llmplat/node-pool"
AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")


@dataclass(frozen=True)
class Placement:
    """How many servers of one variant run: at least `min_replicas`, at most `max_replicas`."""

    variant: str
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Pool:
    name: str
    min_nodes: int
    max_nodes: int
    autoscaler: str  # "cluster-autoscaler" | "karpenter" | "none"

    @property
    def capacity(self) -> int:
        """Nodes the pool can reach: a pool nobody scales stays at its minimum."""
        return self.min_nodes if self.autoscaler == "none" else self.max_nodes


def _listing(placements: Iterable[Placement], attr: str) -> str:
    return ", ".join(f"{p.variant} {getattr(p, attr)}" for p in placements)


def capacity_problems(overlay: str, pool: Pool, placements: list[Placement]) -> list[tuple[str, str]]:
    """(field, message) for each way the overlay does not fit; the field is the overlay's to change."""
    problems = []
    limit = "max_nodes" if pool.autoscaler != "none" else "min_nodes (no node autoscaler)"
    for field, attr, when in (
        ("replicas", "min_replicas", "always"),
        ("max_replicas", "max_replicas", "at full scale"),
    ):
        need = sum(getattr(p, attr) for p in placements)
        if need > pool.capacity:
            problems.append(
                (
                    field,
                    f"overlay {overlay!r}: field {field!r}: {need} model servers {when} ({_listing(placements, attr)}) "
                    f"need {need} GPU nodes (one server per node by anti-affinity), but node pool {pool.name!r} "
                    f"has at most {pool.capacity} ({limit}); lower the replicas or raise the pool",
                )
            )
    return problems


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) else default


def placements_from_objects(objects: Iterable[dict[str, Any]]) -> dict[str, list[Placement]]:
    """Node pool -> placements, read from rendered Deployments (annotated with their pool) and their autoscalers."""
    objects = list(objects)
    scalers = {
        (o["spec"].get("scaleTargetRef") or {}).get("name"): o
        for o in objects
        if o.get("kind") in AUTOSCALER_KINDS and isinstance(o.get("spec"), dict)
    }
    pools: dict[str, list[Placement]] = {}
    for d in objects:
        if d.get("kind") != "Deployment":
            continue
        meta = d.get("metadata") or {}
        pool = (meta.get("annotations") or {}).get(NODE_POOL_ANNOTATION)
        if not pool:
            continue
        fixed = _int((d.get("spec") or {}).get("replicas"), 1)
        low, high = fixed, fixed
        scaler = scalers.get(meta.get("name"))
        if scaler is not None and scaler["kind"] == "HorizontalPodAutoscaler":
            low, high = _int(scaler["spec"].get("minReplicas"), 1), _int(scaler["spec"].get("maxReplicas"), fixed)
        elif scaler is not None:
            low = _int(scaler["spec"].get("minReplicaCount"), 0)
            high = _int(scaler["spec"].get("maxReplicaCount"), 100)  # KEDA's default maximum
        pools.setdefault(pool, []).append(Placement(meta.get("name", "?"), low, high))
    return pools


def objects_capacity_problems(objects: Iterable[dict[str, Any]], pools: dict[str, Pool], overlay: str) -> list[str]:
    """The check above on rendered objects: their Deployments' pools, replicas and autoscaler bounds."""
    messages = []
    for name, found in placements_from_objects(objects).items():
        pool = pools.get(name)
        if pool is None:
            messages.append(f"overlay {overlay!r}: Deployments target node pool {name!r}, which the catalog lacks")
            continue
        messages += [message for _, message in capacity_problems(overlay, pool, found)]
    return messages
