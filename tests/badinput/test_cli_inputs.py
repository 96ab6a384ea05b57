"""Bad flags through `llmplat ...` and `llmplat sim ...`: exit 2 naming the flag, never a traceback, never a server
that starts on a value it cannot work with (a port past 65535, zero sequences that queue every request forever)."""

# ruff: noqa: E501 - the case table keeps one case per line

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# (case, argv, fragment of stderr)
CASES = [
    ("no-command", [], "the following arguments are required"),
    ("unknown-command", ["deploy"], "invalid choice: 'deploy'"),
    ("manifests-without-action", ["manifests"], "the following arguments are required: action"),
    ("render-unknown-overlay", ["manifests", "render", "--overlay", "qa"], "argument --overlay: invalid choice: 'qa'"),
    (
        "render-revision-empty-sha",
        ["manifests", "render", "--stdout", "--revision", "mistral-7b-awq="],
        "argument --revision: takes VARIANT=REVISION",
    ),
    (
        "render-revision-bad-chars",
        ["manifests", "render", "--stdout", "--revision", "mistral-7b-awq=main branch"],
        "revision 'main branch'",
    ),
    ("render-image-untagged", ["manifests", "render", "--stdout", "--image", "vllm/vllm-openai"], "must be pinned"),
    (
        "render-image-space",
        ["manifests", "render", "--stdout", "--image", "vllm/vllm openai:v1"],
        "not a container image reference",
    ),
    ("render-catalog-folder", ["manifests", "render", "--stdout", "--catalog", "/"], "cannot read catalog /"),
    ("diff-output-unknown", ["manifests", "diff", "-o", "yaml"], "argument -o/--output: invalid choice: 'yaml'"),
    (
        "promptsets-missing-file",
        ["promptsets", "validate", "/nonexistent/p.jsonl"],
        "cannot read promptset /nonexistent/p.jsonl",
    ),
    (
        "promptsets-unknown-variant",
        ["promptsets", "validate", "canary", "--variant", "mistral-7b-gptq"],
        "unknown variant 'mistral-7b-gptq'",
    ),
    ("sim-no-command", ["sim"], "usage: llmplat sim {serve,fleet}"),
    ("sim-unknown-command", ["sim", "launch"], "unknown command 'launch'"),
    ("sim-port-too-high", ["sim", "serve", "--port", "99999"], "--port 99999 must be at least 0 and at most 65535"),
    ("sim-port-negative", ["sim", "serve", "--port", "-1"], "--port -1 must be"),
    ("sim-port-words", ["sim", "serve", "--port", "http"], "argument --port: invalid int value: 'http'"),
    ("sim-max-num-seqs-zero", ["sim", "serve", "--max-num-seqs", "0"], "--max-num-seqs 0 must be at least 1"),
    ("sim-max-num-seqs-negative", ["sim", "serve", "--max-num-seqs", "-4"], "--max-num-seqs -4 must be at least 1"),
    ("sim-max-model-len-zero", ["sim", "serve", "--max-model-len", "0"], "--max-model-len 0 must be at least 1"),
    (
        "sim-gpu-util-zero",
        ["sim", "serve", "--gpu-memory-utilization", "0"],
        "--gpu-memory-utilization 0.0 must be more than 0",
    ),
    (
        "sim-gpu-util-above-one",
        ["sim", "serve", "--gpu-memory-utilization", "1.2"],
        "--gpu-memory-utilization 1.2 must be",
    ),
    ("sim-max-loras-zero", ["sim", "serve", "--max-loras", "0"], "--max-loras 0 must be at least 1"),
    ("sim-time-scale-zero", ["sim", "serve", "--sim-time-scale", "0"], "--sim-time-scale 0.0 must be more than 0"),
    ("sim-time-scale-nan", ["sim", "serve", "--sim-time-scale", "nan"], "--sim-time-scale nan must be"),
    ("sim-error-rate-above-one", ["sim", "serve", "--sim-error-rate", "2"], "--sim-error-rate 2.0 must be"),
    (
        "sim-disconnect-rate-negative",
        ["sim", "serve", "--sim-disconnect-rate", "-0.1"],
        "--sim-disconnect-rate -0.1 must be",
    ),
    ("sim-slow-delay-negative", ["sim", "serve", "--sim-slow-delay", "-1"], "--sim-slow-delay -1.0 must be"),
    ("sim-exit-after-zero", ["sim", "serve", "--sim-exit-after", "0"], "--sim-exit-after 0 must be at least 1"),
    ("sim-kv-capacity-zero", ["sim", "serve", "--sim-kv-capacity-tokens", "0"], "--sim-kv-capacity-tokens 0 must be"),
    (
        "sim-error-status-unknown",
        ["sim", "serve", "--sim-error-status", "404"],
        "argument --sim-error-status: invalid choice: 404",
    ),
    ("sim-metrics-generation-unknown", ["sim", "serve", "--sim-metrics-generation", "v2"], "invalid choice: 'v2'"),
    (
        "sim-lora-modules-no-path",
        ["sim", "serve", "--lora-modules", "adapter"],
        "invalid --lora-modules entry 'adapter'",
    ),
    (
        "sim-lora-modules-json-without-path",
        ["sim", "serve", "--lora-modules", '{"name": "a"}'],
        "want JSON with 'name' and 'path'",
    ),
    ("sim-lora-modules-bad-json", ["sim", "serve", "--lora-modules", "{name: a}"], "invalid --lora-modules entry"),
    (
        "fleet-missing-folder",
        ["sim", "fleet", "--manifests", "/nonexistent/overlay"],
        "--manifests /nonexistent/overlay: no such folder",
    ),
    ("fleet-port-zero", ["sim", "fleet", "--base-port", "0"], "--base-port 0 must be between 1 and 65535"),
    ("fleet-port-words", ["sim", "fleet", "--base-port", "x"], "argument --base-port: invalid int value"),
]


@pytest.mark.parametrize(("case", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_flag_exits_2_naming_it(llmplat, case, argv, fragment):
    result = llmplat(*argv)
    assert result.code == 2, result.text
    assert fragment in result.err, result.err


def test_sim_serve_on_a_port_in_use_exits_2_naming_it(llmplat):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = llmplat("sim", "serve", "--port", str(port))
    assert result.code == 2 and f"cannot listen on --host 127.0.0.1 --port {port}" in result.err, result.text


def test_fleet_on_a_folder_without_deployments_exits_2(llmplat, tmp_path: Path):
    result = llmplat("sim", "fleet", "--manifests", str(tmp_path))
    assert result.code == 2 and f"no Deployments found under {tmp_path}" in result.err


EXE = shutil.which("llmplat", path=str(Path(sys.executable).parent))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["manifests", "validate", "--k8s-version", "9.99"], "--k8s-version"),
        (["sim", "serve", "--port", "99999"], "--port 99999"),
        (["sim", "serve", "--max-num-seqs", "0"], "--max-num-seqs 0"),
        (["manifests", "diff", "--dir", "/nonexistent"], "--dir /nonexistent"),
    ],
)
def test_the_installed_script_prints_the_message_not_a_traceback(argv, fragment, tmp_path):
    done = subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_version_help_and_examples(llmplat):
    version = llmplat("--version")
    assert version.code == 0 and version.out.startswith("llmplat 0.")
    helped = llmplat("manifests", "validate", "--help")
    assert helped.code == 0
    assert "(default: all)" in helped.out and "(default: 1.31)" in helped.out and "examples:" in helped.out
    assert "exit status: 0 valid, 1 problems found, 2 bad usage or input" in helped.out
    sim = llmplat("sim", "serve", "--help")
    assert sim.code == 0 and "--max-num-seqs MAX_NUM_SEQS" in sim.out and "(default: 256)" in sim.out
