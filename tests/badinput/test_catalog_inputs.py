"""A bad variant catalog through `llmplat manifests render --catalog`: exit 2, the file and line, the variant and
field, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplat_dagster.catalog import default_catalog_path
from tests.badinput.conftest import line_of

BASE = default_catalog_path().read_text()
AWQ = "  - name: mistral-7b-awq\n    team: quant\n"

# (case, text to replace, replacement, fragment of the error, text whose line the error must name or None)
CASES = [
    ("team-with-spaces", "team: quant", "team: quant team", "team 'quant team' becomes the label", "team: quant team"),
    ("team-with-slash", "team: quant", "team: quant/a", "must be a Kubernetes label value", "team: quant/a"),
    ("team-too-long", "team: quant", "team: " + "q" * 64, "at most 63", "team: qqq"),
    ("team-empty", "team: quant", 'team: ""', "must be a Kubernetes label value", 'team: ""'),
    ("team-trailing-dash", "team: quant", "team: quant-", "label value", "team: quant-"),
    ("name-upper-case", "name: mistral-7b-awq", "name: Mistral-7b-awq", "not a DNS-1123 label", "Mistral-7b"),
    ("name-trailing-dash", "name: mistral-7b-awq", "name: mistral-7b-awq-", "not a DNS-1123 label", "awq-\n"),
    ("name-trailing-newline", "name: mistral-7b-awq", 'name: "mistral-7b-awq\\n"', "DNS-1123", 'awq\\n"'),
    ("name-64-chars", "name: mistral-7b-awq", "name: " + "m" * 64, "a DNS-1123 label has at most 63", "mmmm"),
    (
        "name-duplicate",
        "name: mistral-7b-lora",
        "name: mistral-7b-awq",
        "duplicate name",
        "name: mistral-7b-awq\n    team: finetune",
    ),
    ("namespace-upper", "namespace: llm-baseline", "namespace: LLM_Baseline", "not a DNS-1123 label", "LLM_Baseline"),
    ("namespace-too-long", "namespace: llm-baseline", "namespace: " + "n" * 70, "at most 63", "nnnn"),
    ("namespace-dot", "namespace: llm-baseline", "namespace: llm.baseline", "not a DNS-1123 label", "llm.baseline"),
    (
        "cpu-request-above-limit",
        'cpu_request: "3"\n    cpu_limit: "4"',
        'cpu_request: "3900m"\n    cpu_limit: "2"',
        "cpu_request 3900m is above cpu_limit 2",
        None,
    ),
    (
        "memory-request-above-limit",
        'memory_limit: "14Gi"',
        'memory_limit: "10Gi"',
        "memory_request 12Gi is above memory_limit 10Gi",
        None,
    ),
    (
        "cpu-request-above-node",
        'cpu_request: "3"\n    cpu_limit: "4"',
        'cpu_request: "3950m"\n    cpu_limit: "5"',
        "exceeds the g4dn.xlarge allocatable",
        None,
    ),
    ("numeric-quantity", 'cpu_request: "3"', "cpu_request: 3", "must be a string", "cpu_request: 3"),
    ("quantity-words", 'cpu_request: "3"', 'cpu_request: "3 cores"', "is not a Kubernetes quantity", "3 cores"),
    ("cache-size-words", "cache_size: 50Gi", "cache_size: lots", "is not a Kubernetes quantity", "cache_size: lots"),
    ("node-cpu-words", 'allocatable_cpu: "3920m"', 'allocatable_cpu: "four"', "not a Kubernetes quantity", "four"),
    ("gpu-zero", "    gpu: 1\n", "    gpu: 0\n", "greater than or equal to 1", "gpu: 0"),
    ("served-name-quote", AWQ, AWQ + '    served_model_name: awq"x\n', "a quote would change the query", 'awq"x'),
    ("served-name-brace", AWQ, AWQ + "    served_model_name: awq}\n", "served_model_name 'awq}'", "awq}"),
    ("served-name-space", AWQ, AWQ + "    served_model_name: my awq\n", "served_model_name 'my awq'", "my awq"),
    (
        "duplicate-key-variant",
        AWQ,
        AWQ + "    team: platform\n",
        "duplicate key 'team' (first on line",
        "team: platform",
    ),
    (
        "duplicate-key-top",
        "namespace: llm-baseline\n",
        "namespace: llm-baseline\nnamespace: other\n",
        "duplicate key 'namespace'",
        "namespace: other",
    ),
    (
        "duplicate-key-resources",
        '    cpu_limit: "4"\n',
        '    cpu_limit: "4"\n    cpu_limit: "8"\n',
        "duplicate key 'cpu_limit'",
        'cpu_limit: "8"',
    ),
    (
        "image-latest",
        "image: vllm/vllm-openai:v0.10.2",
        "image: vllm/vllm-openai:latest",
        "must be pinned",
        "openai:latest",
    ),
    ("image-untagged", "image: vllm/vllm-openai:v0.10.2", "image: vllm/vllm-openai", "must be pinned", "vllm-openai\n"),
    (
        "image-short-digest",
        "image: vllm/vllm-openai:v0.10.2",
        "image: vllm/vllm-openai@sha256:abc",
        "not a container image reference",
        "sha256:abc",
    ),
    (
        "image-upper-case",
        "image: vllm/vllm-openai:v0.10.2",
        "image: VLLM/vllm-openai:v0.10.2",
        "not a container image reference",
        "VLLM",
    ),
    (
        "image-space",
        "image: vllm/vllm-openai:v0.10.2",
        'image: "vllm/vllm openai:v1"',
        "not a container image reference",
        "vllm openai",
    ),
    ("quantization-unknown", "quantization: none", "quantization: int3", "unknown quantization 'int3'", "int3"),
    ("dtype-unknown", "dtype: half ", "dtype: fp4 ", "field 'dtype'", "dtype: fp4"),
    ("max-model-len-zero", "max_model_len: 1024", "max_model_len: 0", "greater than 0", "max_model_len: 0"),
    ("max-num-seqs-negative", "max_num_seqs: 2\n", "max_num_seqs: -1\n", "greater than 0", "max_num_seqs: -1"),
    (
        "gpu-util-above-one",
        "gpu_memory_utilization: 0.95",
        "gpu_memory_utilization: 1.5",
        "less than or equal to 1",
        "1.5",
    ),
    (
        "unknown-field",
        "gated: true",
        "gated: true\n    gpu_mem_util: 0.9",
        "Extra inputs are not permitted",
        "gpu_mem_util",
    ),
    ("unknown-architecture", "architecture: mistral-7b\n", "architecture: llama-3\n", "unknown 'llama-3'", None),
    (
        "revision-with-space",
        "revision: main         # pin",
        'revision: "main branch"  # pin',
        "revision 'main branch'",
        "main branch",
    ),
    (
        "model-id-not-a-repo",
        "model_id: TheBloke/Mistral-7B-Instruct-v0.2-AWQ\n    revision: main         # pin",
        "model_id: not a repo id\n    revision: main  # pin",
        "not a Hugging Face repo id",
        "not a repo id",
    ),
    (
        "fp16-too-long",
        "max_model_len: 1024",
        "max_model_len: 4096",
        "KV cache for max_num_seqs=2 x max_model_len=4096",
        None,
    ),
    (
        "adapter-bad-name",
        "- name: chat-de",
        "- name: 'bad name'",
        "adapter name 'bad name'",
        "bad name",
    ),
    ("yaml-syntax", "variants:\n", "variants: [\n", "not valid YAML", None),
    ("yaml-tab", "namespace: llm-baseline\n", "namespace:\tllm-baseline\n\t- x\n", "not valid YAML", None),
]
CASES += [
    ("adapters-beyond-max-loras", "      adapters:\n",
     "      adapters:\n" + "".join(f"        - {{name: a{i}, repo: o/a{i}}}\n" for i in range(4)),
     "5 adapters exceed max_loras=4", "    lora:\n"),
]  # fmt: skip

WHOLE = [
    ("empty-file", "", "the catalog must be a mapping"),
    ("a-list", "- name: x\n", "the catalog must be a mapping"),
    ("no-variants", BASE[: BASE.index("\nvariants:")] + "\nvariants: []\n", "no variants to serve"),
    ("no-node", BASE.replace("node:", "nodes:"), "field 'node'"),
]


@pytest.mark.parametrize(("case", "old", "new", "fragment", "at"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_catalog_edit_exits_2_naming_file_line_and_field(llmplat, tmp_path: Path, case, old, new, fragment, at):
    assert old in BASE, case
    text = BASE.replace(old, new, 1)
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    result = llmplat("manifests", "render", "--catalog", str(path), "--out", str(out))
    assert result.code == 2, result.text
    assert fragment in result.err, result.err
    assert str(path) in result.err
    if at is not None:
        assert f"{path}:{line_of(text, at)}" in result.err, result.err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(("case", "text", "fragment"), WHOLE, ids=[c[0] for c in WHOLE])
def test_a_catalog_that_is_not_one_exits_2(llmplat, tmp_path: Path, case, text, fragment):
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    result = llmplat("manifests", "render", "--catalog", str(path), "--out", str(tmp_path / "out"))
    assert result.code == 2 and fragment in result.err and str(path) in result.err, result.text


def test_a_digest_pinned_image_renders_a_valid_version_label(llmplat, tmp_path: Path, crd_dir: Path):
    """Was silently accepted with the invalid label `version: vllm/vllm-openai`; now valid and validated."""
    image = "vllm/vllm-openai@sha256:" + "ab" * 32
    out = tmp_path / "out"
    assert llmplat("manifests", "render", "--image", image, "--out", str(out)).code == 0
    assert "app.kubernetes.io/version: sha256-abababababab" in (out / "base/deployment-mistral-7b-awq.yaml").read_text()
    result = llmplat("manifests", "validate", "--dir", str(out), "--crd-dir", str(crd_dir))
    assert result.code == 0, result.text
