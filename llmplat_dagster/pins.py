"""Revision pins that outlive a run: the commit the next rollout of a variant renders, who set it and why.

The revision sensor (or a person, through `pin_revision_job`) pins a sha; the Dagster wiring stores each pin as
a materialization of `llm_baseline/<variant>/revision_pin`, so it is visible and revertible in the UI and every
later plain rollout renders it. This module is the record's shape and its validation, with no Dagster import.
Precedence when rendering: a run's own config, then the pin, then the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from llmplat_dagster.catalog import SHA, Catalog, CatalogError

UNRESOLVED = "unresolved"


class PinError(ValueError):
    """A pin that cannot be applied; the message names the variant, the field and the value."""


@dataclass(frozen=True)
class Pin:
    """What one variant is pinned to. `revision=None` and no adapters is an unpin: follow the catalog again."""

    variant: str
    revision: str | None = None
    adapter_revisions: Mapping[str, str] = field(default_factory=dict)
    pinned_by: str = "person"
    reason: str = ""

    @property
    def active(self) -> bool:
        return bool(self.revision or self.adapter_revisions)

    def to_metadata(self) -> dict[str, str]:
        """Flat text, as a person reads it on the asset page."""
        return {
            "variant": self.variant,
            "revision": self.revision or "(catalog)",
            "adapter_revisions": json.dumps(dict(sorted(self.adapter_revisions.items()))),
            "pinned_by": self.pinned_by,
            "reason": self.reason or "—",
        }

    @classmethod
    def from_metadata(cls, variant: str, meta: Mapping[str, object]) -> Pin:
        revision = str(meta.get("revision") or "")
        adapters = json.loads(str(meta.get("adapter_revisions") or "{}"))
        return cls(
            variant=variant,
            revision=revision if SHA.fullmatch(revision) else None,
            adapter_revisions={str(k): str(v) for k, v in adapters.items()},
            pinned_by=str(meta.get("pinned_by") or "?"),
            reason=str(meta.get("reason") or ""),
        )


def check_pin(catalog: Catalog, pin: Pin) -> Pin:
    """A pin is a commit of something the variant loads: unknown variants, adapters and non-shas are refused."""
    if pin.variant not in catalog.by_name:
        raise PinError(f"variant {pin.variant!r} is not in the catalog; it has {catalog.names}")
    values = [("revision", pin.revision)] if pin.revision else []
    values += [(f"adapter_revisions.{name}", sha) for name, sha in pin.adapter_revisions.items()]
    for where, value in values:
        if not SHA.fullmatch(value):
            raise PinError(
                f"variant {pin.variant!r}: field {where!r}: {value!r} is not a 40-character commit sha; "
                "a pin is a commit (branches are resolved through the Hub at rollout time)"
            )
    try:
        catalog.with_overrides(adapter_revisions={pin.variant: dict(pin.adapter_revisions)})
    except CatalogError as exc:
        raise PinError(str(exc)) from None
    return pin


def apply_pins(catalog: Catalog, pins: Mapping[str, Pin]) -> Catalog:
    """The catalog as the next rollout sees it: every active pin applied over the catalog's revisions."""
    active = [p for p in pins.values() if p.active]
    if not active:
        return catalog
    return catalog.with_overrides(
        revisions={p.variant: p.revision for p in active if p.revision},
        adapter_revisions={p.variant: dict(p.adapter_revisions) for p in active if p.adapter_revisions},
    )


def provenance_revision(revision: str) -> str:
    """A commit sha as is; anything else (a branch or tag nobody resolved) says so instead of passing for one."""
    return revision if SHA.fullmatch(revision) else f"{UNRESOLVED} ({revision})"
