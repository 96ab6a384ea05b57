"""Revision pins in the Dagster instance: one `llm_baseline/<variant>/revision_pin` asset per variant.

A pin is a materialization of that asset (from the revision sensor or `pin_revision_job`), so the UI shows the
current pin, who set it and why, and the history to revert to; the manifests asset depends on it, so a new pin
marks the rendered manifests stale until the next rollout renders it.
"""

from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.keys import PIN_STAGE, pin_key
from llmplat_dagster.defs.ownership import variant_asset
from llmplat_dagster.pins import Pin, PinError, check_pin


def pin_specs(catalog: Catalog) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            **variant_asset(v, PIN_STAGE),
            description=f"The model and LoRA adapter commits the next rollout of {v.name} renders "
            "(set by model_revision_sensor or pin_revision_job; '(catalog)' = follow catalog.yaml).",
        )
        for v in catalog.variants
    ]


def read_pin(instance: dg.DagsterInstance, variant: str) -> Pin | None:
    event = instance.get_latest_materialization_event(pin_key(variant))
    if event is None or event.asset_materialization is None:
        return None
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return Pin.from_metadata(variant, meta)


def read_pins(instance: dg.DagsterInstance, catalog: Catalog) -> dict[str, Pin]:
    """Every variant's current pin (absent: never pinned)."""
    return {v: pin for v in catalog.names if (pin := read_pin(instance, v)) is not None}


def pin_event(pin: Pin) -> dg.AssetMaterialization:
    what = pin.revision or "(catalog)"
    return dg.AssetMaterialization(
        asset_key=pin_key(pin.variant),
        description=f"{pin.variant} pinned to {what} by {pin.pinned_by}" if pin.active else f"{pin.variant} unpinned",
        metadata=pin.to_metadata(),
    )


class PinConfig(dg.Config):
    """Pin (or, with no revisions, unpin) one variant; the next rollout renders it."""

    variant: str = Field(description="catalog variant name, e.g. mistral-7b-awq")
    revision: str | None = Field(default=None, description="model commit sha; empty: follow the catalog")
    adapter_revisions: dict[str, str] = Field(default_factory=dict, description="LoRA adapter name -> commit sha")
    reason: str = ""


def pin_defs(catalog: Catalog) -> dg.Definitions:
    @dg.op(name="pin_revision", out={}, description="Record a pin the next rollout of the variant renders.")
    def pin_revision(context: dg.OpExecutionContext, config: PinConfig):
        previous = read_pin(context.instance, config.variant)
        reason = config.reason or (f"was {previous.revision or '(catalog)'}" if previous else "first pin")
        pin = Pin(config.variant, config.revision or None, dict(config.adapter_revisions), "pin_revision_job", reason)
        try:
            check_pin(catalog, pin)
        except PinError as exc:
            raise dg.Failure(f"pin_revision_job: {exc}") from None
        context.log.info(pin_event(pin).description)
        yield pin_event(pin)

    @dg.job(name="pin_revision_job", description="Pin (or unpin) the model revision the next rollout renders.")
    def pin_revision_job():
        pin_revision()

    return dg.Definitions(assets=pin_specs(catalog), jobs=[pin_revision_job])


def pins_for_run(instance: dg.DagsterInstance, catalog: Catalog) -> Mapping[str, Pin]:
    """Active pins only: what `apply_pins` lays over the catalog."""
    return {v: p for v, p in read_pins(instance, catalog).items() if p.active}
