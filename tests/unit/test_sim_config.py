"""vLLM flag parsing, latency defaults and manifest reading for the fleet."""

from __future__ import annotations

import logging

import pytest

from llmplat_dagster.sim.config import parse_args
from llmplat_dagster.sim.fleet import deployment_args_from_manifests, rewrite_host_port
from llmplat_dagster.sim.latency import kv_capacity_tokens, latency_model

_AWQ = (
    "--model TheBloke/Mistral-7B-Instruct-v0.2-AWQ --revision abc123 --served-model-name mistral-7b-awq "
    "--quantization awq --dtype half --max-model-len 4096 --max-num-seqs 16 --gpu-memory-utilization 0.9 "
    "--host 0.0.0.0 --port 8000"
)
AWQ_ARGS = _AWQ.split()


def test_rendered_deployment_args_parse_unchanged():
    c = parse_args(AWQ_ARGS)
    assert (c.model, c.revision, c.served_names, c.quantization, c.dtype) == (
        "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
        "abc123",
        ["mistral-7b-awq"],
        "awq",
        "half",
    )
    assert (c.max_model_len, c.max_num_seqs, c.gpu_memory_utilization, c.host, c.port) == (
        4096,
        16,
        0.9,
        "0.0.0.0",
        8000,
    )
    assert c.effective_quant_noise == 0.3 and not c.unknown_args  # logit noise std, sim/README.md "Calibration"


@pytest.mark.parametrize(
    "modules",
    [
        ["sql-adapter=/adapters/sql", "chat=/adapters/chat"],
        ['{"name": "sql-adapter", "path": "/adapters/sql"}', '{"name": "chat", "path": "/adapters/chat"}'],
    ],
)
def test_lora_modules_in_both_vllm_syntaxes(modules):
    lora = ["--enable-lora", "--max-loras", "4", "--max-lora-rank", "64", "--lora-modules", *modules]
    c = parse_args([*AWQ_ARGS, *lora])
    assert c.enable_lora and c.max_loras == 4 and c.max_lora_rank == 64 and not c.unknown_args
    assert c.lora_modules == {"sql-adapter": "/adapters/sql", "chat": "/adapters/chat"}


def test_unknown_flags_warn_and_their_values_are_not_mistaken_for_the_model(caplog):
    with caplog.at_level(logging.WARNING, logger="llmplat.sim"):
        c = parse_args(["--model", "m/x", "--speculative-config", "ngram", "--enforce-eager", "--port", "9"])
    assert c.model == "m/x" and c.port == 9
    assert "--speculative-config" in caplog.text and "ngram" in caplog.text


def test_positional_model_like_vllm_serve():
    assert parse_args(["mistralai/Mistral-7B-Instruct-v0.2"]).model == "mistralai/Mistral-7B-Instruct-v0.2"


def test_awq_decodes_faster_and_fp16_has_less_kv_room_and_time_scale_applies():
    awq, fp16 = latency_model(parse_args(AWQ_ARGS)), latency_model(parse_args(["--dtype", "half"]))
    assert awq.itl_s < fp16.itl_s
    assert awq.itl_at(8) > awq.itl_at(1)  # batch slowdown
    scaled = latency_model(parse_args([*AWQ_ARGS, "--sim-time-scale", "0.1"]))
    assert scaled.itl_at(1) == pytest.approx(awq.itl_at(1) * 0.1)
    assert kv_capacity_tokens(parse_args(AWQ_ARGS)) > kv_capacity_tokens(parse_args(["--max-model-len", "1024"]))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "m", "--host", "0.0.0.0", "--port", "8000"], ["--model", "m"]),
        (["--host=0.0.0.0", "--port=8000", "--model", "m"], ["--model", "m"]),
        (["--model", "m"], ["--model", "m"]),
    ],
)
def test_fleet_rewrites_host_and_port_to_loopback(args, expected):
    assert rewrite_host_port(args, 8123) == [*expected, "--host", "127.0.0.1", "--port", "8123"]


def test_fleet_reads_deployment_args_from_multi_document_yaml(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "all.yaml").write_text(
        """apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mistral-7b-awq}
spec:
  template:
    spec:
      containers:
        - name: vllm
          args: ["--model", "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "--max-num-seqs", 16]
"""
    )
    assert deployment_args_from_manifests(tmp_path) == {
        "mistral-7b-awq": ["--model", "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "--max-num-seqs", "16"]
    }


def _catalog_with(**prod):
    from llmplat_dagster.catalog import load_catalog

    data = load_catalog().model_dump()
    data["overlays"]["prod"].update(prod)
    for v in data["variants"]:
        v["extra_args"] = list(EVERY_EXTRA)
    from llmplat_dagster.catalog import Catalog

    return Catalog.model_validate(data)


EVERY_EXTRA = ("--enable-prefix-caching", "--kv-cache-dtype=fp8", "--swap-space=4", "--uvicorn-log-level=info")


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_flag_a_rendered_deployment_passes_is_accepted_without_warning(overlay, caplog):
    """The simulator runs the container args unchanged: knobs, alias, OTLP endpoint and extra args included."""
    from llmplat_dagster.k8s.render import render

    catalog = _catalog_with(otlp_traces_endpoint="http://otel-collector.observability.svc:4317")
    for d in (o for o in render(catalog, overlay) if o["kind"] == "Deployment"):
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        if d["metadata"]["name"] == "mistral-7b-lora":
            at = args.index("--max-lora-rank")  # not modelled by the simulator (the LoRA flags' owners)
            args = args[:at] + args[at + 2 :]
        with caplog.at_level(logging.WARNING, logger="llmplat.sim"):
            c = parse_args(args)
        assert c.unknown_args == [] and "ignoring" not in caplog.text, (d["metadata"]["name"], caplog.text)
        assert c.served_names == [d["metadata"]["name"], catalog.variant(d["metadata"]["name"]).model_id]
