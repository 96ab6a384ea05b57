"""The catalog is the single source of truth: it loads typed, and a bad one fails with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplat_dagster.catalog import (
    GIB,
    CatalogError,
    PrometheusSpec,
    default_catalog_path,
    load_catalog,
    memory_fit,
    parse_catalog,
)

BASE = default_catalog_path().read_text()


def test_packaged_catalog_has_the_four_variants_of_the_design_document():
    catalog = load_catalog()
    assert catalog.names == ["mistral-7b-awq", "mistral-7b-fp16", "mistral-7b-lora", "mistral-7b-judge"]
    fp16 = catalog.variant("mistral-7b-fp16")
    assert (fp16.quantization, fp16.dtype, fp16.max_model_len, fp16.max_num_seqs) == ("none", "half", 1024, 2)
    assert fp16.enforce_eager and fp16.max_num_batched_tokens == 1024
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


FP16 = "    max_model_len: 1024\n    max_num_seqs: 2\n"


def test_fp16_that_cannot_fit_a_t4_is_rejected_with_the_numbers():
    # The design document's single-deployment example: max_len 8192, 64 sequences, FP16.
    text = BASE.replace(FP16, "    max_model_len: 8192\n    max_num_seqs: 64\n")
    with pytest.raises(CatalogError) as err:
        parse_catalog(text, source="catalog.yaml")
    message = str(err.value)
    assert "variant 'mistral-7b-fp16': field 'max_num_seqs'" in message
    assert "max_num_seqs=64 x max_model_len=8192 needs 64.00 GiB" in message
    assert "nvidia-tesla-t4 14.74 GiB x gpu_memory_utilization=0.95 = 14.00 GiB" in message
    assert "weights 13.49 GiB, activation peak 0.13 GiB and non-torch 0.05 GiB leaves 0.34 GiB" in message


def test_fp16_at_1024_by_4_does_not_fit_a_t4_once_context_activation_and_graphs_count():
    """The design document's FP16 reference (1024 x 4) needs 0.50 GiB of KV cache; vLLM leaves it 0.35 GiB."""
    catalog = parse_catalog(BASE)  # the shipped 1024 x 2, eager, 1024-token steps: fits
    fit = memory_fit(catalog, catalog.variant("mistral-7b-fp16"))
    assert fit.fits and round(fit.kv_room / GIB, 2) == 0.35 and fit.kv_needed == 0.25 * GIB
    with pytest.raises(CatalogError, match=r"field 'max_num_seqs': KV cache for max_num_seqs=4 .* needs 0.50 GiB"):
        parse_catalog(BASE.replace(FP16, "    max_model_len: 1024\n    max_num_seqs: 4\n"))
    # Without eager mode the 0.3 GiB of CUDA graphs do not fit beside the CUDA context in 5 % of the T4.
    with pytest.raises(CatalogError) as err:
        parse_catalog(BASE.replace("    enforce_eager: true\n", ""), source="catalog.yaml")
    assert (
        "variant 'mistral-7b-fp16': field 'gpu_memory_utilization': 0.95 leaves 0.74 GiB of the nvidia-tesla-t4 "
        "14.74 GiB outside vLLM's budget, but the CUDA context 0.5 GiB + CUDA graphs 0.3 GiB need 0.80 GiB"
    ) in str(err.value)


def test_lora_slots_count_against_the_kv_cache():
    catalog = parse_catalog(BASE)
    awq, lora = (memory_fit(catalog, catalog.variant(n)) for n in ("mistral-7b-awq", "mistral-7b-lora"))
    slots, rank = catalog.variant("mistral-7b-lora").lora.max_loras, 64
    assert catalog.variant("mistral-7b-lora").lora.max_lora_rank == rank  # chat-de is a rank-64 adapter
    # 4 slots x rank 64 x 32 layers x (9 x 4096 + 2 x 1024 + 3 x 14336) x 2 bytes = 1.25 GiB
    assert lora.weights - awq.weights == slots * rank * 32 * 81920 * 2


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


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    return str(err.value)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("--trust-remote-code", "--trust-remote-code is refused: it runs Python code from the model repository"),
        ("--max-model-len=2048", "--max-model-len is set by the renderer; use the catalog field max_model_len"),
        ("--api-key=sk-123", "--api-key is refused: a secret on the command line"),
        ("--enable-prefix-cache", "--enable-prefix-cache is not an allowed vLLM flag"),
        ("--kv-cache-dtype=int4", "--kv-cache-dtype='int4' is not one of auto, fp8, fp8_e4m3, fp8_e5m2"),
        ("--swap-space=-1", "--swap-space=-1 is below 0"),
        ("--enable-prefix-caching=yes", "--enable-prefix-caching takes no value"),
        ("--seed", "--seed needs a value: '--seed=VALUE'"),
        ("--block-size 16", "'--block-size 16' is not one vLLM flag; write each as '--flag' or '--flag=value'"),
    ],
)
def test_extra_args_are_checked_per_item_naming_file_line_variant_and_index(tmp_path: Path, arg: str, expected: str):
    text = BASE.replace(
        "    enforce_eager: true\n", f'    enforce_eager: true\n    extra_args: ["--seed=1", "{arg}"]\n'
    )
    message = _load(tmp_path, text)
    line = text[: text.rindex("extra_args: [")].count("\n") + 1
    assert f"catalog.yaml:{line}: variant 'mistral-7b-fp16': field 'extra_args.1': {expected}" in message


def test_allowed_extra_args_load_and_contradictions_do_not(tmp_path: Path):
    ok = BASE.replace(
        "    enforce_eager: true\n", '    enforce_eager: true\n    extra_args: ["--enable-prefix-caching"]\n'
    )
    assert parse_catalog(ok).variant("mistral-7b-fp16").extra_args == ("--enable-prefix-caching",)
    bad = ok.replace('["--enable-prefix-caching"]', '["--enable-prefix-caching", "--no-enable-prefix-caching"]')
    assert "--enable-prefix-caching and --no-enable-prefix-caching contradict each other" in _load(tmp_path, bad)


def test_batched_tokens_below_the_sequences_is_refused():
    with pytest.raises(CatalogError, match="max_num_batched_tokens 1 is below max_num_seqs 2"):
        parse_catalog(BASE.replace("max_num_batched_tokens: 1024", "max_num_batched_tokens: 1"))


PROD = "    replicas: 2              # one spot interruption never takes a variant down\n"


@pytest.mark.parametrize(
    ("old", "new", "anchor", "expected"),
    [
        (
            "    min_nodes: 8\n    max_nodes: 12\n",
            "    min_nodes: 4\n    max_nodes: 7\n",
            PROD,
            "overlay 'prod': field 'replicas': 8 model servers always (mistral-7b-awq 2, mistral-7b-fp16 2, "
            "mistral-7b-lora 2, mistral-7b-judge 2) need 8 GPU nodes (one server per node by anti-affinity), but "
            "node pool 'gpu-spot' has at most 7 (max_nodes)",
        ),
        (
            "    max_replicas: 3          #",
            "    max_replicas: 4          #",
            "    max_replicas: 4",
            "overlay 'prod': field 'max_replicas': 16 model servers at full scale (mistral-7b-awq 4, "
            "mistral-7b-fp16 4, mistral-7b-lora 4, mistral-7b-judge 4) need 16 GPU nodes",
        ),
        (
            "    autoscaler: cluster-autoscaler\n",
            "    autoscaler: none\n",
            "    max_replicas: 3 ",
            "node pool 'gpu-spot' has at most 8 (min_nodes (no node autoscaler))",
        ),
        (
            "    variants: {}",
            "    variants: {mistral-7b-judge: {replicas: 1, max_replicas: 6}}",
            "    max_replicas: 3 ",
            "15 model servers at full scale (mistral-7b-awq 3, mistral-7b-fp16 3, mistral-7b-lora 3, "
            "mistral-7b-judge 6)",
        ),
        (
            "    variants: {}",
            "    variants: {mistral-7b-gptq: {replicas: 1}}",
            "    variants: {mistral-7b",
            "overlay 'prod': field 'variants': unknown variant 'mistral-7b-gptq'",
        ),
        (
            "    node_pool: gpu-spot\n    replicas: 2",
            "    node_pool: gpu-ondemand\n    replicas: 2",
            "    node_pool: gpu-ondemand",
            "overlay 'prod': field 'node_pool': unknown 'gpu-ondemand'; node_pools has ['gpu-spot']",
        ),
        (
            "    cache_access_mode: ReadWriteMany\n    cache_storage_class: efs-sc\n  prod:",
            "    cache_access_mode: ReadWriteOnce\n    cache_storage_class: gp3\n  prod:",
            "    cache_access_mode: ReadWriteOnce",
            "overlay 'dev': variant 'mistral-7b-awq': field 'cache_access_mode': ReadWriteOnce mounts on one node, "
            "but max_replicas 2 puts replicas on different nodes",
        ),
    ],
    ids=[
        "min-over-pool",
        "max-over-pool",
        "no-autoscaler",
        "variant-override",
        "unknown-variant",
        "unknown-pool",
        "rwo-claim-with-two-replicas",
    ],  # fmt: skip
)
def test_overlays_must_fit_their_node_pool(tmp_path: Path, old: str, new: str, anchor: str, expected: str):
    text = BASE.replace(old, new, 1)
    assert text != BASE
    message = _load(tmp_path, text)
    assert expected in message
    assert f"catalog.yaml:{_line_of(text, anchor)}: " in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    off_hours: null", "    off_hours: {timezone: Mars/Olympus, start: 0 7 * * 1-5, end: 0 20 * * 1-5}",
         "overlay 'prod': field 'off_hours.timezone': 'Mars/Olympus' is not an IANA time zone"),
        ("    off_hours: null", "    off_hours: {timezone: UTC, start: 7am, end: 0 20 * * 1-5}",
         "overlay 'prod': field 'off_hours.start': '7am' is not a five-field cron expression"),
        ("    autoscaler: hpa\n", "    autoscaler: hpa\n    off_hours: {timezone: UTC, start: 0 7 * * *, end: 0 8 * * *}\n",  # noqa: E501
         "overlay 'dev': field '(entry)': off_hours scale-to-zero needs autoscaler: keda"),
        ("    otlp_traces_endpoint: null", "    otlp_traces_endpoint: otel:4317",
         "otlp_traces_endpoint 'otel:4317' must be an http(s) URL"),
    ],
)  # fmt: skip
def test_overlay_options_are_validated(tmp_path: Path, old: str, new: str, expected: str):
    assert expected in _load(tmp_path, BASE.replace(old, new, 1))


@pytest.mark.parametrize(
    ("spec", "address"),
    [
        (PrometheusSpec(), "http://prometheus-kube-prometheus-prometheus.observability.svc:9090"),
        (PrometheusSpec(namespace="monitoring"), "http://prometheus-kube-prometheus-prometheus.monitoring.svc:9090"),
        (PrometheusSpec(release="kube-prometheus-stack"), "http://kube-prometheus-stack-prometheus.observability.svc:9090"),
        (PrometheusSpec(release="mon"), "http://mon-kube-prometheus-stack-prometheus.observability.svc:9090"),
        (PrometheusSpec(release="monitoring"), "http://monitoring-kube-prometheus-prometheus.observability.svc:9090"),
        (PrometheusSpec(url="http://thanos.example:9090"), "http://thanos.example:9090"),
    ],
)  # fmt: skip
def test_keda_reads_the_prometheus_service_kube_prometheus_stack_creates(spec: PrometheusSpec, address: str):
    """The chart's fullname: release name, or `<release>-kube-prometheus-stack`, cut to 26 characters."""
    assert spec.address == address
