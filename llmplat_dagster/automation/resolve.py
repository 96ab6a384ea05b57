"""Resolve a variant's branch revisions to commit shas at rollout time, so provenance never records a branch.

A variant that follows `main` renders the sha `main` points at now (pods then load exactly that commit, and
every result says which). A look-up that fails after its retries leaves the branch in place and says why:
an unresolved revision is reported as such, never passed off as a commit. The look-up is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from llmplat_dagster.catalog import SHA, VariantSpec

RETRYABLE = {"timeout", "network", "rate_limited", "error"}  # a GET of model info is safe to repeat
RepoRef = tuple[str, str]


class _Result(Protocol):
    sha: str | None
    error: str | None
    kind: str
    retry_after_s: float | None


Lookup = Callable[[list[RepoRef]], Mapping[RepoRef, _Result]]


@dataclass(frozen=True)
class Resolved:
    revision: str  # a sha, or the ref as written when it could not be resolved
    adapter_revisions: dict[str, str] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()  # "<repo>@<ref>: <why>", one per ref left as a branch

    def resolved_refs(self, spec: VariantSpec) -> dict[str, str]:
        """'<repo>@<ref>' -> sha for what this resolution changed, for the asset's metadata."""
        out = {}
        if self.revision != spec.revision:
            out[f"{spec.model_id}@{spec.revision}"] = self.revision
        for a in spec.lora.adapters:
            if self.adapter_revisions.get(a.name, a.revision) != a.revision:
                out[f"{a.repo}@{a.revision}"] = self.adapter_revisions[a.name]
        return out


def refs_to_resolve(spec: VariantSpec) -> list[RepoRef]:
    refs = [] if SHA.fullmatch(spec.revision) else [(spec.model_id, spec.revision)]
    refs += [(a.repo, a.revision) for a in spec.lora.adapters if not SHA.fullmatch(a.revision)]
    return list(dict.fromkeys(refs))


def resolve(
    spec: VariantSpec,
    lookup: Lookup | None,
    *,
    attempts: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    offline_reason: str = "Hub look-ups are off",
) -> Resolved:
    """Shas for every branch `spec` loads; failed look-ups are retried with backoff, then reported."""
    pending = refs_to_resolve(spec)
    shas: dict[RepoRef, str] = {}
    why: dict[RepoRef, str] = {ref: offline_reason for ref in pending}
    for attempt in range(attempts if lookup is not None else 0):
        if not pending:
            break
        results = lookup(pending)
        retry, wait = [], backoff_s * 2**attempt
        for ref in pending:
            result = results.get(ref)
            if result is not None and result.kind == "ok" and result.sha:
                shas[ref] = result.sha
                continue
            why[ref] = f"{result.kind}: {result.error}" if result is not None else "not looked up"
            if result is not None and result.kind in RETRYABLE:
                retry.append(ref)
                wait = max(wait, min(result.retry_after_s or 0.0, 30.0))
        pending = retry
        if pending and attempt + 1 < attempts:
            sleep(wait)
    model = shas.get((spec.model_id, spec.revision), spec.revision)
    adapters = {a.name: shas.get((a.repo, a.revision), a.revision) for a in spec.lora.adapters}
    unresolved = tuple(
        f"{repo}@{ref}: {why[(repo, ref)]}" for repo, ref in refs_to_resolve(spec) if (repo, ref) not in shas
    )
    return Resolved(model, {k: v for k, v in adapters.items() if v}, unresolved)
