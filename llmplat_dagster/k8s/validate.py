"""Schema validation of rendered objects before anything reaches a cluster.

Built-in kinds go through `kubernetes-validate` in strict mode (unknown fields are errors) for a stated
Kubernetes version. Custom resources (ServiceMonitor, ScaledObject) are checked against their CRD's
`openAPIV3Schema`, read from a CRD folder or from the cluster: the project does not vendor upstream CRDs.
A custom resource with neither a CRD schema nor a project-side validator (`PROJECT_VALIDATORS`) is reported as
*not schema-checked*: a warning by default (a fresh clone has no CRDs beside it), a failure in strict mode.
A PrometheusRule is checked by the project itself (k8s/promrules.py: structure, then `promtool check rules`), and
said so; without promtool it is unchecked, never passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmplat_dagster import yamlio
from llmplat_dagster.catalog import DNS1123_LABEL
from llmplat_dagster.k8s import promrules
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


def _prometheus_rule(obj: Obj, source: str) -> list[Problem]:
    """promtool (and a structural check of the fields the project uses); unchecked when promtool is missing."""
    kind, name = obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?")
    found, unchecked = promrules.rule_problems(obj)
    return [Problem(kind, name, path, message, source, unchecked) for path, message in found]


PROJECT_VALIDATORS: dict[tuple[str, str], ProjectValidator] = {promrules.KIND: _prometheus_rule}


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
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            try:
                spec, name = doc["spec"], doc["metadata"]["name"]
                group, kind, versions = spec["group"], spec["names"]["kind"], list(spec["versions"])
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{source}: a CustomResourceDefinition without {exc} is not a CRD") from None
            for version in versions:
                schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version, dict) else None
                if schema:
                    key = (group, version["name"], kind)
                    top = _strict_schema(schema)
                    # apiVersion/kind/metadata are validated by the API server itself, not by the CRD.
                    top.get("properties", {}).pop("metadata", None)
                    top["additionalProperties"] = top.get("additionalProperties", False)
                    top.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schemas[key] = top
                    sources[key] = f"{source} ({name} {version['name']})"
        return cls(schemas, sources)

    @classmethod
    def from_dirs(cls, dirs: Iterable[str | Path]) -> CrdSchemas:
        docs: list[tuple[str, Obj]] = []
        for d in dirs:
            d = Path(d)
            if not d.is_dir():
                raise FileNotFoundError(f"CRD folder {d} does not exist")
            found = [(str(f), doc) for f in sorted([*d.glob("*.yaml"), *d.glob("*.yml"), *d.glob("*.json")])
                     for doc in yamlio.load_all(f.read_text(), str(f))]  # fmt: skip
            if not any(isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition" for _, doc in found):
                raise ValueError(f"CRD folder {d} holds no CustomResourceDefinition (*.yaml, *.yml, *.json)")
            docs += found
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


def error_path(error) -> str:
    """A jsonschema / kubernetes-validate error's location as `spec.template.containers[0].image`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")


def validate_object(
    obj: Obj, crds: CrdSchemas, k8s_version: str = DEFAULT_K8S_VERSION, source: str = ""
) -> list[Problem]:
    # Imported here, not at module top: loading the Dagster code location must not pay for the schema libraries.
    import jsonschema
    import kubernetes_validate

    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    if _group(obj.get("apiVersion", "")) in BUILTIN_GROUPS:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [Problem(kind, name, error_path(exc), exc.message, source)]
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
            Problem(kind, name, error_path(e), e.message, source)
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        ]
    return problems


def supported_k8s_versions() -> list[str]:
    """The Kubernetes minor versions kubernetes-validate ships schemas for, oldest first."""
    from kubernetes_validate.utils import all_versions, major_minor

    return list(dict.fromkeys(major_minor(v) for v in all_versions()))


def check_k8s_version(version: str) -> str:
    """`version` when its schemas are here; ValueError naming the versions that are."""
    known = supported_k8s_versions()
    if not isinstance(version, str) or ".".join(version.split(".")[:2]) not in known:
        raise ValueError(f"Kubernetes version {version!r} has no schemas here; choose one of {known[0]} to {known[-1]}")
    return version


def validate_objects(
    objects: Iterable[Obj] | Iterable[tuple[str, Obj]], crds: CrdSchemas, k8s_version: str = DEFAULT_K8S_VERSION
) -> list[Problem]:
    """Every problem in every object (not just the first), each naming kind, name and failing path."""
    problems: list[Problem] = []
    items = [item if isinstance(item, tuple) else ("", item) for item in objects]
    for source, obj in items:
        if not isinstance(obj, dict):
            problems.append(
                Problem("?", "?", "(root)", f"a document must be a mapping, got {type(obj).__name__}", source)
            )
            continue
        problems += validate_object(obj, crds, k8s_version, source) + house_rules(obj, source)
    return problems + set_rules([(s, o) for s, o in items if isinstance(o, dict)])


SECRET_ENV_HINTS = ("TOKEN", "SECRET", "PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "API_KEY")
# Values that are credentials whatever they are called: Hugging Face tokens, AWS access key ids, bearer headers.
SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|Bearer\s+[A-Za-z0-9._~+/=-]{16,}")
SECRET_FLAGS = ("--token", "--hf-token", "--api-key", "--password", "--aws-secret-access-key")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "CronJob")


def pod_spec(obj: Obj) -> Obj:
    """The pod spec of any workload: a Pod's own spec, a CronJob's job template's, else the pod template's."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return spec
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def _pod_labels(obj: Obj) -> dict[str, str]:
    if obj.get("kind") == "Pod":
        return (obj.get("metadata") or {}).get("labels") or {}
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def _containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _secret_in_args(args: list[Any]) -> str | None:
    """Why a command line carries a credential: a token-shaped value, or a secret flag with a literal value."""
    for i, arg in enumerate(map(str, args)):
        if SECRET_VALUE.search(arg):
            return f"argument {i} holds a credential-shaped value"
        flag = arg.split("=", 1)[0]
        if flag in SECRET_FLAGS and ("=" in arg or i + 1 < len(args)):
            value = arg.split("=", 1)[1] if "=" in arg else str(args[i + 1])
            if not value.startswith("$("):  # $(VAR) expands an env var, which may come from a Secret
                return f"{flag} is given a literal value"
    return None


def house_rules(obj: Obj, source: str = "") -> list[Problem]:
    """What schemas allow but this platform forbids: numeric quantities and secret values in manifests."""
    kind, name = obj.get("kind", "?"), obj.get("metadata", {}).get("name", "?")
    problems = []
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        problems.append(Problem(kind, name, "data", "a rendered Secret must not carry a value", source))
    problems += _names_and_labels(kind, name, obj, source)
    if kind == "ConfigMap":
        for key, value in {**(obj.get("data") or {}), **(obj.get("binaryData") or {})}.items():
            env_like = re.fullmatch(r"[A-Z][A-Z0-9_]*", str(key)) and any(h in str(key) for h in SECRET_ENV_HINTS)
            if env_like or SECRET_VALUE.search(str(value)):
                problems.append(Problem(kind, name, f"data.{key}", "a ConfigMap must not carry a secret", source))
    for i, c in enumerate(_containers(obj)):
        for field in ("command", "args"):
            why = _secret_in_args(c.get(field) or [])
            if why:
                path = f"containers[{i}].{field}"
                problems.append(Problem(kind, name, path, f"{why}; pass it from a Secret (secretKeyRef)", source))
        for section in ("requests", "limits"):
            for res, qty in (c.get("resources", {}).get(section) or {}).items():
                if not isinstance(qty, str):
                    path = f"containers[{i}].resources.{section}.{res}"
                    problems.append(Problem(kind, name, path, f"quantity {qty!r} must be a string", source))
        for env in c.get("env") or []:
            value = env.get("value")
            named = any(h in str(env.get("name", "")).upper() for h in SECRET_ENV_HINTS)
            if "value" in env and (named or SECRET_VALUE.search(str(value))):
                path = f"containers[{i}].env.{env.get('name')}"
                problems.append(Problem(kind, name, path, "secret-like variable set inline; use secretKeyRef", source))
    return problems


_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAMED = ("Namespace", "Service")  # their names must be DNS-1123 labels, not subdomains


def _names_and_labels(kind: str, name: Any, obj: Obj, source: str) -> list[Problem]:
    """The API server's name and label rules, which the OpenAPI schemas leave out (labels are just strings there)."""
    problems = []
    meta = obj.get("metadata") or {}
    limit = 63 if kind in _LABEL_NAMED else 253
    for field, value in (("metadata.name", name), ("metadata.namespace", meta.get("namespace"))):
        if value is None or (field == "metadata.name" and value == "?"):
            continue
        rule = _SUBDOMAIN if field == "metadata.name" and kind not in _LABEL_NAMED else DNS1123_LABEL
        limit_here = limit if field == "metadata.name" else 63
        if not isinstance(value, str) or len(value) > limit_here or not rule.fullmatch(value):
            problems.append(Problem(kind, str(name), field, f"{value!r} is not a valid Kubernetes name", source))
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    for path, labels in (
        ("metadata.labels", meta.get("labels")),
        ("spec.template.metadata.labels", template.get("labels")),
    ):
        for key, value in (labels or {}).items():
            prefix, _, label = str(key).rpartition("/")
            bad_key = not _LABEL_NAME.fullmatch(label) or (prefix and not _SUBDOMAIN.fullmatch(prefix))
            if bad_key or not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                message = f"label {key}: {value!r} is not a valid label (values: <= 63 letters, digits, '-', '_', '.')"
                problems.append(Problem(kind, str(name), f"{path}.{key}", message, source))
    return problems


def set_rules(items: list[tuple[str, Obj]]) -> list[Problem]:
    """What no single object shows: the same object twice, a Service whose selector matches no pod of the set."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for source, obj in items:
        meta = obj.get("metadata") or {}
        key = (_group(str(obj.get("apiVersion", ""))), str(obj.get("kind")), str(meta.get("namespace", "")),
               str(meta.get("name")))  # fmt: skip
        if key in seen:
            also = f" (also in {seen[key]})" if seen[key] else ""
            problems.append(Problem(key[1], key[3], "metadata.name", f"duplicate object{also}", source))
        seen.setdefault(key, source)
    pods = [
        ((o.get("metadata") or {}).get("namespace", ""), _pod_labels(o)) for _, o in items if o.get("kind") in WORKLOADS
    ]
    if not pods:
        return problems  # Services for pods defined elsewhere cannot be checked here
    for source, obj in items:
        selector = (obj.get("spec") or {}).get("selector") if obj.get("kind") == "Service" else None
        if not selector or not isinstance(selector, dict):
            continue
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if not any(ns == pod_ns and selector.items() <= labels.items() for pod_ns, labels in pods):
            name = (obj.get("metadata") or {}).get("name", "?")
            problems.append(
                Problem(
                    "Service",
                    name,
                    "spec.selector",
                    f"{selector} selects no pod of any workload here: the Service would have no endpoints",
                    source,
                )  # fmt: skip
            )
    return problems
