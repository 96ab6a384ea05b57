"""Revision pins (pure): their record, their validation, and how they lay over the catalog."""

from __future__ import annotations

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.pins import Pin, PinError, apply_pins, check_pin, provenance_revision

CATALOG = load_catalog()
SHA = "a" * 40


@pytest.mark.parametrize(
    "pin",
    [
        Pin("mistral-7b-awq", SHA, {}, "model_revision_sensor", "TheBloke/x moved 1 -> a"),
        Pin("mistral-7b-lora", None, {"support-v1": "b" * 40}, "pin_revision_job"),
        Pin("mistral-7b-awq"),  # an unpin
    ],
)
def test_a_pin_survives_its_metadata_round_trip(pin: Pin):
    meta = pin.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())  # readable on the asset page
    back = Pin.from_metadata(pin.variant, meta)
    assert (back.revision, dict(back.adapter_revisions), back.pinned_by) == (
        pin.revision,
        dict(pin.adapter_revisions),
        pin.pinned_by,
    )
    assert back.active == pin.active


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (Pin("mistral-7b-gptq", SHA), "variant 'mistral-7b-gptq' is not in the catalog"),
        (Pin("mistral-7b-awq", "main"), "variant 'mistral-7b-awq': field 'revision': 'main' is not a 40-character"),
        (Pin("mistral-7b-awq", "abc123"), "'abc123' is not a 40-character commit sha"),
        (Pin("mistral-7b-lora", None, {"x": "main"}), "field 'adapter_revisions.x': 'main' is not"),
        (Pin("mistral-7b-lora", None, {"x": SHA}), "variant 'mistral-7b-lora' has no LoRA adapter(s) ['x']"),
    ],
)
def test_bad_pins_are_refused_naming_variant_field_and_value(pin: Pin, message: str):
    with pytest.raises(PinError) as caught:
        check_pin(CATALOG, pin)
    assert message in str(caught.value)


def test_pins_lay_over_the_catalog_and_an_unpin_restores_it():
    pinned = apply_pins(CATALOG, {"mistral-7b-awq": Pin("mistral-7b-awq", SHA)})
    assert pinned.variant("mistral-7b-awq").revision == SHA
    assert pinned.variant("mistral-7b-lora").revision == CATALOG.variant("mistral-7b-lora").revision
    assert apply_pins(CATALOG, {"mistral-7b-awq": Pin("mistral-7b-awq")}) is CATALOG


@pytest.mark.parametrize(
    ("revision", "recorded"),
    [
        (SHA, SHA),
        ("main", "unresolved (main)"),
        ("v1.0", "unresolved (v1.0)"),
        ("A" * 40, "unresolved (" + "A" * 40 + ")"),
    ],
)
def test_provenance_never_passes_a_branch_off_as_a_commit(revision: str, recorded: str):
    assert provenance_revision(revision) == recorded
