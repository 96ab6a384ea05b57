"""The `evaluation:` section of the catalog: who is the reference, the candidates, the judge and the A/B pair,
checked when the catalog loads, each error naming file:line and field."""

from __future__ import annotations

import pytest

from llmplat_dagster.catalog import CatalogError, default_catalog_path, load_catalog, parse_catalog
from tests.catalog_edits import with_gptq_candidate

BASE = default_catalog_path().read_text()
ROLES = BASE[BASE.index("\nevaluation:") :]


def _line(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_the_packaged_catalog_declares_the_design_documents_roles():
    roles = load_catalog().evaluation
    assert roles.reference == "mistral-7b-fp16" and roles.judge == "mistral-7b-judge"
    assert roles.candidates == ("mistral-7b-awq", "mistral-7b-lora")
    assert (roles.ab.control, roles.ab.treatment) == ("mistral-7b-fp16", "mistral-7b-lora")
    assert roles.compared == ["mistral-7b-fp16", "mistral-7b-awq", "mistral-7b-lora"]


@pytest.mark.parametrize(
    ("old", "new", "at", "message"),
    [
        (
            "    - mistral-7b-lora\n  judge",
            "    - mistral-7b-gptq\n  judge",
            "    - mistral-7b-gptq",
            "field 'candidates[1]': unknown variant 'mistral-7b-gptq'; the catalog has ['mistral-7b-awq',",
        ),
        (
            "    - mistral-7b-lora\n  judge",
            "    - mistral-7b-fp16\n  judge",
            "    - mistral-7b-fp16\n  judge",
            "field 'candidates[1]': 'mistral-7b-fp16' is the reference; a variant is not compared with itself",
        ),
        (
            "    - mistral-7b-awq\n    - mistral-7b-lora",
            "    - mistral-7b-awq\n    - mistral-7b-judge",
            "    - mistral-7b-judge",
            "field 'candidates[1]': 'mistral-7b-judge' is the judge; the judge must not score its own answers",
        ),
        (
            "    - mistral-7b-lora\n  judge",
            "    - mistral-7b-awq\n  judge",
            "    - mistral-7b-awq\n  judge",
            "field 'candidates[1]': 'mistral-7b-awq' is listed twice",
        ),
        (
            "  judge: mistral-7b-judge ",
            "  judge: mistral-7b-fp16 ",
            "  judge: mistral-7b-fp16",
            "field 'judge': 'mistral-7b-fp16' is the reference; the judge must not score its own answers",
        ),
        (
            "    control: mistral-7b-fp16",
            "    control: mistral-7b-base",
            "    control: mistral-7b-base",
            "field 'ab.control': unknown variant 'mistral-7b-base'",
        ),
        (
            "    treatment: mistral-7b-lora",
            "    treatment: mistral-7b-judge",
            "    treatment: mistral-7b-judge",
            "field 'ab.treatment': 'mistral-7b-judge' is neither the reference nor a candidate",
        ),
        (
            "    treatment: mistral-7b-lora",
            "    treatment: mistral-7b-fp16",
            "    treatment: mistral-7b-fp16",
            "field 'ab.treatment': 'mistral-7b-fp16' is also the control",
        ),
    ],
    ids=[
        "unknown-candidate",
        "reference-as-candidate",
        "judge-as-candidate",
        "duplicate",
        "judge-is-reference",
        "unknown-ab-control",
        "ab-not-compared",
        "ab-same",
    ],  # fmt: skip
)
def test_bad_roles_fail_naming_file_line_and_field(old: str, new: str, at: str, message: str):
    assert old in ROLES
    text = BASE.replace(ROLES, ROLES.replace(old, new, 1))
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, source="catalog.yaml")
    assert f"catalog.yaml:{_line(text, at)}: evaluation: {message}" in str(caught.value)


def test_no_candidates_is_an_error_and_no_section_means_no_evaluation():
    text = BASE.replace(
        ROLES, ROLES.replace("  candidates:                       # compared", "  candidates: []  #", 1)
    )
    text = text.replace("    - mistral-7b-awq\n    - mistral-7b-lora\n", "")
    with pytest.raises(CatalogError, match=r"field 'evaluation.candidates': Tuple should have at least 1 item"):
        parse_catalog(text, source="catalog.yaml")
    assert parse_catalog(BASE.replace(ROLES, "\n")).evaluation is None


def test_a_fifth_variant_can_be_a_candidate_without_code():
    text = with_gptq_candidate(BASE)
    roles = parse_catalog(text).evaluation
    assert roles.candidates == ("mistral-7b-awq", "mistral-7b-lora", "mistral-7b-gptq")


def test_an_advisory_gate_must_belong_to_a_candidate():
    assert parse_catalog(BASE).evaluation.advisory_gates == ("mistral-7b-lora",)
    text = BASE.replace("advisory_gates: [mistral-7b-lora]", "advisory_gates: [mistral-7b-judge]")
    with pytest.raises(CatalogError) as err:
        parse_catalog(text, source="catalog.yaml")
    line = _line(text, "advisory_gates:")
    assert f"catalog.yaml:{line}: evaluation: field 'advisory_gates[0]': 'mistral-7b-judge' is not a candidate" in str(
        err.value
    )
