"""Plan one revision-sensor tick: which variants a moved Hub ref re-rolls, and the cursor to keep.

Pure: the tick's look-up results come in, a plan comes out, so every case (first tick, shared base model,
adapter, partial failure) is a parametrized unit test. The cursor maps "<repo>@<ref>" to the last sha seen.

First-ever tick (no cursor entry for a repo): the sha is recorded, and it is a change only for a variant
whose catalog revision is a pinned sha that differs from it (upstream has moved past the pin). A variant
that follows a branch has no recorded sha of what its pods loaded, so the first sha is a baseline, not a
re-roll: installing the sensor must not redeploy three servers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from llmplat_dagster.automation.hub import RepoRef, tracked_ref, tracked_repos
from llmplat_dagster.catalog import SHA, Catalog

TAG_PREFIX = "llmplat-revision"
_TAG_SECTION = re.compile(r"[^A-Za-z0-9_.-]")


class _Result(Protocol):
    sha: str | None
    error: str | None
    kind: str


def cursor_key(repo_id: str, ref: str) -> str:
    return f"{repo_id}@{ref}"


@dataclass(frozen=True)
class RevisionChange:
    """`repo` moved from `old_sha` to `new_sha`; `via` is "model" or "adapter:<name>" of the variant."""

    repo: str
    old_sha: str | None
    new_sha: str
    via: str


@dataclass
class RevisionPlan:
    new_cursor: dict[str, str]
    changes: dict[str, list[RevisionChange]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    all_failed: bool = False

    @property
    def variants(self) -> list[str]:
        """The variants to roll out and re-evaluate, sorted."""
        return sorted(self.changes)

    @property
    def model_revisions(self) -> dict[str, str]:
        """variant -> new base-model sha, ready for `Catalog.with_overrides(revisions=...)`."""
        return {v: c.new_sha for v, cs in sorted(self.changes.items()) for c in cs if c.via == "model"}

    @property
    def adapter_revisions(self) -> dict[str, dict[str, str]]:
        """variant -> {adapter name -> new sha} for adapters that moved."""
        out: dict[str, dict[str, str]] = {}
        for variant, changes in sorted(self.changes.items()):
            for c in changes:
                if c.via.startswith("adapter:"):
                    out.setdefault(variant, {})[c.via.removeprefix("adapter:")] = c.new_sha
        return out


def plan_revision_tick(
    catalog: Catalog,
    cursor: Mapping[str, str],
    results: Mapping[RepoRef, _Result],
    default_ref: str = "main",
) -> RevisionPlan:
    """Compare looked-up shas with the cursor; failed look-ups keep their cursor entry and give a reason.

    `all_failed` is true when at least one repo was looked up and none succeeded (the Hub or the network
    is down, or the token is wrong everywhere): the sensor should say so rather than report "no changes".
    """
    repos = tracked_repos(catalog, default_ref)
    plan = RevisionPlan(new_cursor=dict(cursor))
    looked_up = succeeded = 0
    for (repo_id, ref), variants in repos.items():
        key = cursor_key(repo_id, ref)
        result = results.get((repo_id, ref))
        if result is None:
            plan.skipped.append(f"{key}: not looked up this tick")
            continue
        looked_up += 1
        if result.kind != "ok" or not result.sha:
            plan.skipped.append(f"{key}: {result.kind}: {result.error or 'no sha'}")
            continue
        succeeded += 1
        previous = cursor.get(key)
        plan.new_cursor[key] = result.sha
        for name in variants:
            for old, via in _baselines(catalog, name, repo_id, ref, previous, default_ref):
                if old is not None and old != result.sha:
                    change = RevisionChange(repo=repo_id, old_sha=old, new_sha=result.sha, via=via)
                    plan.changes.setdefault(name, []).append(change)
    plan.all_failed = looked_up > 0 and succeeded == 0
    return plan


def _baselines(
    catalog: Catalog, name: str, repo_id: str, ref: str, previous: str | None, default_ref: str
) -> list[tuple[str | None, str]]:
    """(sha to compare against, via) for each way `name` uses `repo_id`@`ref`; None means baseline only."""
    variant = catalog.variant(name)
    uses: list[tuple[str, str]] = []
    if variant.model_id == repo_id and tracked_ref(variant.revision, default_ref) == ref:
        uses.append((variant.revision, "model"))
    for adapter in variant.lora.adapters:
        if adapter.repo == repo_id and tracked_ref(adapter.revision, default_ref) == ref:
            uses.append((adapter.revision, f"adapter:{adapter.name}"))
    if previous is not None:
        return [(previous, via) for _, via in uses]
    return [(revision if SHA.fullmatch(revision) else None, via) for revision, via in uses]


def run_key(changes: Mapping[str, list[RevisionChange]]) -> str:
    """Stable across ticks for the same set of moves, so a re-evaluated tick does not launch twice."""
    canonical = sorted(
        (variant, c.repo, c.via, c.new_sha) for variant, variant_changes in changes.items() for c in variant_changes
    )
    digest = hashlib.sha256(json.dumps(canonical).encode()).hexdigest()[:16]
    return f"revisions-{digest}"


def run_tags(changes: Mapping[str, list[RevisionChange]]) -> dict[str, str]:
    """`llmplat-revision/<variant>` -> "<old12>-><new12>" (adapters: `<variant>.<adapter>`).

    Keys have one namespace section and <= 63-character parts, as Dagster's tag-key rule asks; values are
    26 characters at most. A first sighting with no known old sha shows "none".
    """
    tags: dict[str, str] = {}
    for variant, variant_changes in sorted(changes.items()):
        for c in variant_changes:
            name = variant if c.via == "model" else f"{variant}.{c.via.removeprefix('adapter:')}"
            tags[f"{TAG_PREFIX}/{_tag_section(name)}"] = f"{_short(c.old_sha)}->{_short(c.new_sha)}"
    return tags


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def _tag_section(text: str) -> str:
    clean = _TAG_SECTION.sub("-", text)
    if len(clean) <= 63:
        return clean
    return f"{clean[:54]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
