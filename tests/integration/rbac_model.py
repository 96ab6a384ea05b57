"""What RBAC a Kubernetes API request needs, and whether a set of RBAC objects grants it.

The request side follows the API server's own reading of a URL (`RequestInfo`): `/api/v1/namespaces/X` is the
Namespace X *in* namespace X (so a Role in X can grant `get` on it), a GET with `watch` is `watch`, a collection
GET is `list`, and a server-side apply (PATCH `application/apply-patch+yaml`) also needs `create`, because it
creates the object when it is missing. The grant side evaluates Roles, ClusterRoles and their bindings for one
service account, as the RBAC authorizer does (no aggregation, no non-resource URLs). deploy/rbac.yaml is checked
against requests recorded from the real code paths (tests/integration/test_production_rbac.py), in both
directions: every request is granted, and every granted rule is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

APPLY_PATCH = "application/apply-patch+yaml"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True, order=True)
class Access:
    """One authorization check: `verb` on `group`/`resource` (with `/subresource`) in `namespace` ("" = cluster)."""

    namespace: str
    group: str
    resource: str
    verb: str
    name: str = ""

    def __str__(self) -> str:
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        named = f"/{self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named} {where}"


def parse_path(path: str) -> tuple[str, str, str, str, bool]:
    """(group, namespace, resource[/subresource], name, legacy-watch) of a resource URL."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"{path}: not a resource URL")
    watch = rest[:1] == ["watch"]
    rest = rest[1:] if watch else rest
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    if not rest:
        raise ValueError(f"{path}: no resource")
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    return group, namespace, resource, rest[1] if len(rest) > 1 else "", watch


def accesses(method: str, path: str, query: Mapping[str, Any] | str = "", content_type: str = "") -> list[Access]:
    """The checks the API server makes for one request (two for a server-side apply)."""
    group, namespace, resource, name, watch = parse_path(path)
    params = parse_qs(query) if isinstance(query, str) else {k: [str(v)] for k, v in query.items()}
    method = method.upper()
    if method == "GET":
        watching = watch or params.get("watch", ["false"])[0].lower() in ("true", "1")
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    elif method in VERBS:
        verb = VERBS[method]
    else:
        raise ValueError(f"{method} {path}: not an API verb")
    out = [Access(namespace, group, resource, verb, name)]
    if method == "PATCH" and content_type.startswith(APPLY_PATCH):
        out.append(Access(namespace, group, resource, "create", name))
    return out


# Verbs a resourceNames rule never grants: the object's name is not known when they are authorized (create), or
# they act on a collection (list, watch, deletecollection); Kubernetes' RBAC documentation says so.
UNNAMEABLE_VERBS = frozenset({"create", "list", "watch", "deletecollection"})


def _matches(rule: Mapping[str, Any], access: Access) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    named = not names or (access.verb not in UNNAMEABLE_VERBS and access.name in names)
    return has("apiGroups", access.group) and has("resources", access.resource) and has("verbs", access.verb) and named


@dataclass(frozen=True)
class Rbac:
    """Roles, ClusterRoles and bindings (the documents of an RBAC manifest)."""

    documents: tuple[dict[str, Any], ...]

    @classmethod
    def from_documents(cls, docs: Iterable[dict[str, Any] | None]) -> Rbac:
        return cls(tuple(d for d in docs if d))

    def _role(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        for doc in self.documents:
            meta = doc.get("metadata") or {}
            scoped = kind == "ClusterRole" or meta.get("namespace") == namespace
            if doc.get("kind") == kind and meta.get("name") == name and scoped:
                return doc
        return None

    def rules_for(self, namespace: str, service_account: str) -> list[tuple[str | None, dict[str, Any]]]:
        """(namespace the rule applies in, None = every namespace and cluster scope; rule) for the account."""
        out: list[tuple[str | None, dict[str, Any]]] = []
        for doc in self.documents:
            if doc.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            subjects = doc.get("subjects") or []
            bound = any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == service_account
                and s.get("namespace") == namespace
                for s in subjects
            )
            if not bound:
                continue
            ref, scope = doc["roleRef"], (doc.get("metadata") or {}).get("namespace")
            in_ns = None if doc["kind"] == "ClusterRoleBinding" else scope
            role = self._role(ref["kind"], ref["name"], scope or "")
            out += [(in_ns, rule) for rule in (role or {}).get("rules") or []]
        return out

    def allows(self, namespace: str, service_account: str, access: Access) -> bool:
        return any(
            (where is None or where == access.namespace) and _matches(rule, access)
            for where, rule in self.rules_for(namespace, service_account)
        )

    def denied(self, namespace: str, service_account: str, wanted: Iterable[Access]) -> list[Access]:
        """Every access the account is not granted (sorted, without repeats): empty means all allowed."""
        return sorted({a for a in wanted if not self.allows(namespace, service_account, a)})

    def unused(self, namespace: str, service_account: str, wanted: Iterable[Access]) -> list[str]:
        """Granted (group, resource, verb[, name]) that no access needed: what a least-privilege Role should drop.
        A resourceNames rule is probed name by name, so a name nothing touches is reported too."""
        wanted = list(wanted)
        grants = []
        for where, rule in self.rules_for(namespace, service_account):
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [None]:
                            probe = {**rule, "apiGroups": [group], "resources": [resource], "verbs": [verb]}
                            if name is not None:
                                probe["resourceNames"] = [name]
                            if not any((where is None or where == a.namespace) and _matches(probe, a) for a in wanted):
                                named = f"/{name}" if name else ""
                                grants.append(
                                    f"{verb} {group or 'core'}/{resource}{named} in {where or 'all namespaces'}"
                                )
        return sorted(set(grants))


def required_rules(wanted: Iterable[Access]) -> dict[str, list[dict[str, Any]]]:
    """The smallest Role rules per namespace that grant `wanted` (one rule per group and resource)."""
    by_ns: dict[str, dict[tuple[str, str], set[str]]] = {}
    for a in wanted:
        by_ns.setdefault(a.namespace, {}).setdefault((a.group, a.resource), set()).add(a.verb)
    return {
        ns: [{"apiGroups": [g], "resources": [r], "verbs": sorted(verbs)} for (g, r), verbs in sorted(rules.items())]
        for ns, rules in sorted(by_ns.items())
    }
