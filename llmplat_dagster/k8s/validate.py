"""Schema validation of rendered objects before anything reaches a cluster.

Built-in kinds go through `kubernetes-validate` in strict mode (unknown fields are errors) for a stated
Kubernetes version. Custom resources (ServiceMonitor, ScaledObject) are checked against their CRD's
`openAPIV3Schema`, read from a CRD folder or from the cluster: the project does not vendor upstream CRDs.
A custom resource with neither a CRD schema nor a project-side validator (`PROJECT_VALIDATORS`) is reported as
*not schema-checked*: a warning by default (a fresh clone has no CRDs beside it), a failure in strict mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from llmplat_dagster.k8s.render import Obj

DEFAULT_K8S_VERSION = "1.31"  # EKS standard support; kubernetes-validate ships schemas up to 1.37
BUILTIN_GROUPS = {"", "apps", "autoscaling", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io"}
UNCHECKED_HINT = (
    "check custom resources with --crd-dir DIR (or LLMPLAT_CRD_DIR) or --crds-from-cluster; "
    "--strict (LLMPLAT_STRICT_SCHEMAS=1) fails on unchecked ones"
)


@dataclass(frozen=True)
class Problem:
    kind: str
    name: str
    path: str
    message: str
    source: str = ""
    unchecked: bool = False  # nothing to check it against (no CRD schema, no project validator): not an error

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.kind}/{self.name}: at {self.path or '(root)'}: {self.message}"


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


# (API group, kind) -> a check the project itself runs (e.g. promtool for PrometheusRule). A kind with one counts
# as checked even without its CRD; with both, both run.
ProjectValidator = Callable[[Obj, str], list[Problem]]
PROJECT_VALIDATORS: dict[tuple[str, str], ProjectValidator] = {}


def failures(problems: Iterable[Problem], strict: bool) -> list[Problem]:
    """The problems that fail validation: every real one, and the unchecked ones only in strict mode."""
    return [p for p in problems if strict or not p.unchecked]


def _strict_schema(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema that rejects fields the API would prune."""
    if isinstance(node, list):
        return [_strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class CrdSchemas:
    """(group, version, kind) -> JSON Schema, plus where each came from (file and CRD version)."""

    schemas: dict[tuple[str, str, str], dict[str, Any]]
    sources: dict[tuple[str, str, str], str]

    @classmethod
    def from_documents(cls, docs: Iterable[tuple[str, Obj]]) -> CrdSchemas:
        schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        sources: dict[tuple[str, str, str], str] = {}
        for source, doc in docs:
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec.get("versions", []):
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema:
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    top = _strict_schema(schema)
                    # apiVersion/kind/metadata are validated by the API server itself, not by the CRD.
                    top.get("properties", {}).pop("metadata", None)
                    top["additionalProperties"] = top.get("additionalProperties", False)
                    top.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[key] = top
                    sources[key] = f"{source} ({doc['metadata']['name']} {version['name']})"
        return cls(schemas, sources)

    @classmethod
    def from_dirs(cls, dirs: Iterable[str | Path]) -> CrdSchemas:
        docs: list[tuple[str, Obj]] = []
        for d in dirs:
            d = Path(d)
            if not d.is_dir():
                raise FileNotFoundError(f"CRD folder {d} does not exist")
            for f in sorted([*d.glob("*.yaml"), *d.glob("*.yml"), *d.glob("*.json")]):
                docs += [(str(f), doc) for doc in yaml.safe_load_all(f.read_text())]
        return cls.from_documents(docs)

    @classmethod
    def from_cluster(cls, api_client: Any, names: Iterable[str]) -> CrdSchemas:
        """Read the CRDs the cluster actually serves (apiextensions.k8s.io/v1)."""
        from kubernetes import client

        api = client.ApiextensionsV1Api(api_client)
        docs = []
        for name in names:
            crd = api_client.sanitize_for_serialization(api.read_custom_resource_definition(name))
            docs.append((f"cluster:{name}", crd))
        return cls.from_documents(docs)

    def lookup(self, obj: Obj) -> tuple[dict[str, Any] | None, str]:
        group, _, version = obj["apiVersion"].rpartition("/")
        key = (group, version, obj["kind"])
        return self.schemas.get(key), self.sources.get(key, "")


def _path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")


def validate_object(
    obj: Obj, crds: CrdSchemas, k8s_version: str = DEFAULT_K8S_VERSION, source: str = ""
) -> list[Problem]:
    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    if _group(obj.get("apiVersion", "")) in BUILTIN_GROUPS:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [Problem(kind, name, _path(exc), exc.message, source)]
        except kubernetes_validate.SchemaNotFoundError as exc:
            return [Problem(kind, name, "apiVersion", exc.message, source)]
        return []
    schema, _ = crds.lookup(obj)
    project = PROJECT_VALIDATORS.get((_group(obj.get("apiVersion", "")), kind))
    if schema is None and project is None:
        known = ", ".join(sorted(f"{g}/{v} {k}" for g, v, k in crds.schemas)) or "none"
        return [
            Problem(
                kind,
                name,
                "apiVersion",
                f"not schema-checked: no CRD schema for {obj.get('apiVersion')} {kind} (loaded: {known}); "
                "pass --crd-dir DIR (or LLMPLAT_CRD_DIR) or --crds-from-cluster",
                source,
                unchecked=True,
            )
        ]
    problems = project(obj, source) if project else []
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        problems += [
            Problem(kind, name, _path(e), e.message, source)
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        ]
    return problems


def validate_objects(
    objects: Iterable[Obj] | Iterable[tuple[str, Obj]], crds: CrdSchemas, k8s_version: str = DEFAULT_K8S_VERSION
) -> list[Problem]:
    """Every problem in every object (not just the first), each naming kind, name and failing path."""
    problems: list[Problem] = []
    for item in objects:
        source, obj = item if isinstance(item, tuple) else ("", item)
        problems += validate_object(obj, crds, k8s_version, source) + house_rules(obj, source)
    return problems


SECRET_ENV_HINTS = ("TOKEN", "SECRET", "PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "API_KEY")


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def house_rules(obj: Obj, source: str = "") -> list[Problem]:
    """What schemas allow but this platform forbids: numeric quantities and secret values in manifests."""
    kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "?")
    problems = []
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        problems.append(Problem(kind, name, "data", "a rendered Secret must not carry a value", source))
    for i, c in enumerate(_containers(obj)):
        for section in ("requests", "limits"):
            for res, qty in (c.get("resources", {}).get(section) or {}).items():
                if not isinstance(qty, str):
                    path = f"containers[{i}].resources.{section}.{res}"
                    problems.append(Problem(kind, name, path, f"quantity {qty!r} must be a string", source))
        for env in c.get("env", []):
            if "value" in env and any(h in env["name"].upper() for h in SECRET_ENV_HINTS):
                path = f"containers[{i}].env.{env['name']}"
                problems.append(Problem(kind, name, path, "secret-like variable set inline; use secretKeyRef", source))
    return problems
