"""`DryRunCluster`: the local default; validates and diffs what would be applied, and applies nothing.

It records the objects of each variant in `state_dir/<variant>.json`, so the next run's diff shows exactly
what a real apply would change. Objects that a real API server would reject fail here the same way.
Its rollout wait is immediately "ready" with reason `DryRun`: no cluster is involved, the simulator stands in
for the server, and the metadata says so.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import yaml

from llmplat_dagster.k8s.cluster import ApplyResult, ClusterError, Obj, RolloutResult, object_ref
from llmplat_dagster.k8s.validate import CrdSchemas, failures, house_rules, validate_objects


def _dump(objects: dict[str, Obj]) -> list[str]:
    """YAML in a stable order (objects by id, keys sorted), so the diff shows content changes only."""
    docs = json.loads(json.dumps([objects[ref] for ref in sorted(objects)]))  # no shared dicts, so no YAML anchors
    return yaml.safe_dump_all(docs, sort_keys=True).splitlines(keepends=True) if docs else []


def _desired(dep: Obj, recorded: dict[str, Obj], namespace: str, name: str) -> int:
    """The Deployment's replicas, or its autoscaler's minimum when the autoscaler owns them (no spec.replicas)."""
    if "replicas" in (dep.get("spec") or {}):
        return int(dep["spec"]["replicas"])
    for kind, field in (("HorizontalPodAutoscaler", "minReplicas"), ("ScaledObject", "minReplicaCount")):
        scaler = recorded.get(f"{kind}/{namespace}/{name}")
        if scaler and field in (scaler.get("spec") or {}):
            return int(scaler["spec"][field])
    return 1  # the API server's default


class DryRunCluster:
    kind = "dry-run"

    def __init__(self, state_dir: Path | str, crds: CrdSchemas | None = None, strict: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.crds = crds
        self.strict = strict  # custom resources without a CRD schema fail instead of passing unchecked

    def _state_file(self, variant: str) -> Path:
        return self.state_dir / f"{variant}.json"

    def recorded(self, variant: str) -> dict[str, Obj]:
        """What the last dry run of this variant recorded ({} the first time)."""
        path = self._state_file(variant)
        return json.loads(path.read_text()) if path.exists() else {}

    def apply(self, objects: list[Obj], *, variant: str) -> ApplyResult:
        if self.crds is not None:
            problems = failures(validate_objects(objects, self.crds), self.strict)
        else:
            problems = [p for o in objects for p in house_rules(o)]
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise ClusterError(f"dry run of {variant}: {len(problems)} problem(s) an API server would reject:\n{lines}")
        new = {object_ref(o): o for o in objects}
        old = self.recorded(variant)
        changed = sorted(ref for ref in new.keys() | old.keys() if new.get(ref) != old.get(ref))
        diff = "".join(difflib.unified_diff(_dump(old), _dump(new), f"{variant} (recorded)", f"{variant} (rendered)"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._state_file(variant).write_text(json.dumps(new, indent=1, sort_keys=True))
        what = f"{len(changed)} object(s) changed" if changed else "no changes"
        return ApplyResult(False, list(new), None, diff, [], f"dry run: nothing applied ({what})")

    def wait_for_rollout(self, namespace: str, name: str, *, timeout_s: float) -> RolloutResult:
        replicas = 1
        for path in sorted(self.state_dir.glob("*.json")) if self.state_dir.is_dir() else []:
            recorded = json.loads(path.read_text())
            dep = recorded.get(f"Deployment/{namespace}/{name}")
            if dep:
                replicas = _desired(dep, recorded, namespace, name)
        message = (
            f"dry run: no cluster was involved; {namespace}/{name} is not running anywhere (the simulator stands in)"
        )
        return RolloutResult(True, "DryRun", message, 0.0, replicas, replicas, 0)
