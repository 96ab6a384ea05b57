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
from llmplat_dagster.k8s.validate import CrdSchemas, house_rules, validate_objects


def _dump(objects: dict[str, Obj]) -> list[str]:
    """YAML in a stable order (objects by id, keys sorted), so the diff shows content changes only."""
    docs = json.loads(json.dumps([objects[ref] for ref in sorted(objects)]))  # no shared dicts, so no YAML anchors
    return yaml.safe_dump_all(docs, sort_keys=True).splitlines(keepends=True) if docs else []


class DryRunCluster:
    kind = "dry-run"

    def __init__(self, state_dir: Path | str, crds: CrdSchemas | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.crds = crds

    def _state_file(self, variant: str) -> Path:
        return self.state_dir / f"{variant}.json"

    def recorded(self, variant: str) -> dict[str, Obj]:
        """What the last dry run of this variant recorded ({} the first time)."""
        path = self._state_file(variant)
        return json.loads(path.read_text()) if path.exists() else {}

    def apply(self, objects: list[Obj], *, variant: str) -> ApplyResult:
        if self.crds is not None:
            problems = validate_objects(objects, self.crds)
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
            dep = json.loads(path.read_text()).get(f"Deployment/{namespace}/{name}")
            if dep:
                replicas = int((dep.get("spec") or {}).get("replicas", 1))
        message = (
            f"dry run: no cluster was involved; {namespace}/{name} is not running anywhere (the simulator stands in)"
        )
        return RolloutResult(True, "DryRun", message, 0.0, replicas, replicas, 0)
