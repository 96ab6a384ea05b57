"""The catalog is the single source of truth: it loads typed, and a bad one fails with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplat_dagster.catalog import CatalogError, default_catalog_path, load_catalog, parse_catalog

BASE = default_catalog_path().read_text()


def test_packaged_catalog_has_the_four_variants_of_the_design_document():
    catalog = load_catalog()
    assert catalog.names == ["mistral-7b-awq", "mistral-7b-fp16", "mistral-7b-lora", "mistral-7b-judge"]
    fp16 = catalog.variant("mistral-7b-fp16")
    assert (fp16.quantization, fp16.dtype, fp16.max_model_len, fp16.max_num_seqs) == ("none", "half", 1024, 4)
    assert fp16.model_id == "mistralai/Mistral-7B-Instruct-v0.2"
    for name in ("mistral-7b-awq", "mistral-7b-judge", "mistral-7b-lora"):
        v = catalog.variant(name)
        assert (v.quantization, v.max_model_len, v.model_id) == ("awq", 4096, "TheBloke/Mistral-7B-Instruct-v0.2-AWQ")
    assert catalog.variant("mistral-7b-lora").lora.enabled and catalog.variant("mistral-7b-lora").lora.max_loras == 4
    assert {v.team for v in catalog.variants} == {"quant", "platform", "finetune", "eval"}
    assert all(":" in v.image and not v.image.endswith(":latest") for v in catalog.variants)


def test_revision_and_image_are_overridable_and_revalidated():
    catalog = load_catalog(revisions={"mistral-7b-awq": "a" * 40}, image="vllm/vllm-openai:v0.11.0")
    assert catalog.variant("mistral-7b-awq").revision == "a" * 40
    assert catalog.variant("mistral-7b-awq").pinned
    assert catalog.variant("mistral-7b-fp16").revision != "a" * 40
    assert {v.image for v in catalog.variants} == {"vllm/vllm-openai:v0.11.0"}
    with pytest.raises(CatalogError, match="unknown variant 'mistral-7b-gptq'"):
        load_catalog(revisions={"mistral-7b-gptq": "b" * 40})
    with pytest.raises(CatalogError, match="must be pinned"):
        load_catalog(image="vllm/vllm-openai:latest")


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "quantization: awq\n",
            "quantization: awq4\n",
            "variant 'mistral-7b-awq': field 'quantization': unknown quantization 'awq4'",
        ),
        (
            "name: mistral-7b-judge",
            "name: Mistral_7B_Judge",
            "variant 'Mistral_7B_Judge': field 'name': 'Mistral_7B_Judge' is not a DNS-1123 label",
        ),
        (
            "name: mistral-7b-judge",
            "name: " + "m" * 64,
            "field 'name': '" + "m" * 64 + "' is 64 characters; a DNS-1123 label has at most 63",
        ),
    ],
    ids=["unknown-quantization", "not-dns-1123", "longer-than-63"],
)
def test_bad_field_names_file_line_variant_and_field(tmp_path: Path, old: str, new: str, expected: str):
    text = BASE.replace(old, new, 1)
    assert text != BASE
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert expected in message
    field = expected.split("field '")[1].split("'")[0]
    line = _line_of(text, new.split("\n")[0]) if field in ("name", "quantization") else None
    assert f"{path}:{line}:" in message


def test_duplicate_names_point_at_the_second_entry():
    text = BASE.replace("name: mistral-7b-judge", "name: mistral-7b-awq")
    with pytest.raises(CatalogError) as err:
        parse_catalog(text, source="catalog.yaml")
    line = text.count("\n", 0, text.rindex("name: mistral-7b-awq")) + 1
    assert f"catalog.yaml:{line}: variant 'mistral-7b-awq': field 'name': duplicate name (also variant #1)" in str(
        err.value
    )


def test_fp16_that_cannot_fit_a_t4_is_rejected_with_the_numbers():
    # The design document's single-deployment example: max_len 8192, 64 sequences, FP16.
    text = BASE.replace("max_model_len: 1024", "max_model_len: 8192").replace("max_num_seqs: 4\n", "max_num_seqs: 64\n")
    with pytest.raises(CatalogError) as err:
        parse_catalog(text, source="catalog.yaml")
    message = str(err.value)
    assert "variant 'mistral-7b-fp16'" in message
    assert "max_model_len=8192 x max_num_seqs=64" in message
    assert "weights 13.49 GiB + KV cache 64.00 GiB" in message
    assert "exceed 14.25 GiB" in message


def test_fp16_at_the_documented_limits_fits_but_one_step_more_does_not():
    parse_catalog(BASE)  # 1024 x 4 fits
    with pytest.raises(CatalogError, match="mistral-7b-fp16"):
        parse_catalog(BASE.replace("max_model_len: 1024", "max_model_len: 4096"))


def test_requests_beyond_the_node_are_rejected():
    text = BASE.replace('memory_request: "12Gi"', 'memory_request: "16Gi"').replace('"14Gi"', '"16Gi"')
    with pytest.raises(CatalogError, match=r"field 'resources.memory_request' 16Gi exceeds the g4dn.xlarge"):
        parse_catalog(text)


def test_numeric_quantities_and_unknown_fields_are_errors():
    with pytest.raises(CatalogError, match=r"field 'resources.cpu_request'.*must be a string"):
        parse_catalog(BASE.replace('cpu_request: "3"', "cpu_request: 3"))
    with pytest.raises(CatalogError, match=r"variant 'mistral-7b-fp16': field 'gpu_mem_util'.*Extra inputs"):
        parse_catalog(BASE.replace("gated: true", "gated: true\n    gpu_mem_util: 0.9"))


def test_not_yaml_is_reported_with_its_source():
    with pytest.raises(CatalogError, match="broken.yaml:2: not valid YAML"):
        parse_catalog("variants: [\n", source="broken.yaml")
