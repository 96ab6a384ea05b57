"""Server-side apply's field ownership for Deployments, on top of the kmock fake API (kube_helpers.FakeKubeApi).

kmock merges every PATCH into the stored object; a real API server also tracks which field manager owns which
field (`metadata.managedFields`) and acts on it. This adds exactly the rules an autoscaled rollout meets:
- an apply (`application/apply-patch+yaml`) that sets a field another manager owns to a different value is a
  409 Conflict naming field and manager, unless `force=true`, which takes the field over;
- an apply that no longer sets a field its manager owned removes the field when nobody else owns it (for
  `spec.replicas`, that is the API server's default of 1: the reset that kills a scaled-out pod);
- an update (a non-apply PATCH with `fieldManager`, as the HPA controller writes replicas) takes ownership of
  what it changed from everybody else;
- a Deployment created without `spec.replicas` gets the default 1, owned by nobody.
Lists are atomic leaves here (the real server merges list-maps by key; no test here needs that).
"""

from __future__ import annotations

import copy
from typing import Any

import aiohttp.web
import kmock

from tests.integration.kube_helpers import DEPLOYMENTS, FakeKubeApi

IGNORED = {("metadata", "managedFields"), ("metadata", "generation"), ("metadata", "resourceVersion"), ("status",)}
IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
DEFAULTS = {("spec", "replicas"): 1}

Path = tuple[str, ...]


def leaves(obj: Any, prefix: Path = ()) -> dict[Path, Any]:
    """path -> value of every leaf (scalars and lists), the identity fields and server-owned ones left out."""
    if prefix in IGNORED:
        return {}
    if isinstance(obj, dict) and obj:
        out: dict[Path, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, (*prefix, k)))
        return out
    return {} if prefix in IDENTITY or not prefix else {prefix: obj}


def get_path(obj: dict, path: Path) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def fields_v1(paths: set[Path]) -> dict:
    tree: dict = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def paths_of(tree: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in tree.items():
        path = (*prefix, key.removeprefix("f:"))
        out |= paths_of(sub, path) if sub else {path}
    return out


def nested(path: Path, value: Any) -> dict:
    """A merge patch that sets `path` to `value` (None deletes it)."""
    patch: dict = {path[-1]: value}
    for part in reversed(path[:-1]):
        patch = {part: patch}
    return patch


def ownership(obj: dict) -> dict[tuple[str, str], set[Path]]:
    """(manager, operation) -> the paths it owns, from metadata.managedFields."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return {(e["manager"], e["operation"]): paths_of(e["fieldsV1"]) for e in entries}


def conflict(conflicts: list[tuple[Path, str]]) -> aiohttp.web.Response:
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using apps/v1', "field": "." + ".".join(p)}
        for p, m in conflicts
    ]
    text = f"Apply failed with {len(causes)} conflict(s): " + "; ".join(c["message"] for c in causes)
    body = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 409, "reason": "Conflict"}
    return aiohttp.web.json_response({**body, "message": text, "details": {"causes": causes}}, status=409)


class FieldManagedKubeApi(FakeKubeApi):
    """FakeKubeApi plus server-side apply field ownership for Deployments (see the module doc)."""

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        manager = request.params.get("fieldManager")
        key = (DEPLOYMENTS, request.namespace, request.name)
        exists = key in self.objects and not self.objects[key].deleted
        is_apply = request.headers.get("Content-Type", "").startswith("application/apply-patch")
        if request.resource != DEPLOYMENTS or request.action != kmock.action.UPDATE or not manager:
            return await super()._handle(request)
        if not exists and not is_apply:
            return await super()._handle(request)  # 404, as kmock answers
        live = copy.deepcopy(self.objects[key].raw) if exists else {}
        owners = ownership(live)
        new = leaves(request.data or {})
        if is_apply:
            others = {o: paths for o, paths in owners.items() if o[0] != manager}
            clashes = [
                (path, o[0])
                for path, value in new.items()
                for o, paths in others.items()
                if path in paths and get_path(live, path) != value
            ]
            if clashes and request.params.get("force", "").lower() != "true":
                return conflict(clashes)
            for o in others:  # a forced apply takes the clashing fields over
                owners[o] -= {p for p, _ in clashes}
            still_owned = set().union(*(paths for o, paths in owners.items() if o != (manager, "Apply")))
            for path in owners.get((manager, "Apply"), set()) - set(new) - still_owned:
                self.objects[key].patch(nested(path, None))  # declared by nobody any more: the server drops it
            owners[(manager, "Apply")] = set(new)
        else:
            changed = {p for p, v in new.items() if get_path(live, p) != v}
            for o in owners:
                owners[o] -= changed
            owners[(manager, "Update")] = owners.get((manager, "Update"), set()) | changed
        response = await super()._handle(request)
        obj = self.objects[key]
        for path, value in DEFAULTS.items():
            if get_path(obj.raw, path) is None:
                obj.patch(nested(path, value))
        managed = [
            {"manager": m, "operation": op, "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": fields_v1(p)}
            for (m, op), p in sorted(owners.items())
            if p
        ]
        obj.patch({"metadata": {"managedFields": None}})
        obj.patch({"metadata": {"managedFields": managed}})
        return response
