"""`llmplat sim serve` / `fleet` as real subprocesses: Deployment args run unchanged, Ctrl-C stops all."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

from llmplat_dagster.sim.fleet import start_fleet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  template:
    spec:
      containers:
        - name: vllm
          args: {args}
"""
VARIANTS = {
    "mistral-7b-awq": [
        "--model", "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "--served-model-name", "mistral-7b-awq",
        "--quantization", "awq", "--max-num-seqs", "16", "--kv-cache-dtype", "auto",
        "--host", "0.0.0.0", "--port", "8000",
    ],
    "mistral-7b-fp16": [
        "--model", "mistralai/Mistral-7B-Instruct-v0.2", "--served-model-name", "mistral-7b-fp16",
        "--dtype", "half", "--max-model-len", "1024", "--max-num-seqs", "4", "--port", "8000",
    ],
}  # fmt: skip


def test_start_fleet_serves_every_variant_with_its_own_args():
    args = {
        "mistral-7b-awq": ["--model", "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "--served-model-name", "awq"],
        "mistral-7b-fp16": [
            "--model",
            "mistralai/Mistral-7B-Instruct-v0.2",
            "--served-model-name",
            "fp16",
            "--max-model-len",
            "1024",
            "--unknown-flag",
            "7",
        ],
    }
    with start_fleet(args, sim_args=["--sim-time-scale", "0.01"], base_port=18301) as fleet:
        assert set(fleet.endpoints) == set(args)
        for name, served in (("mistral-7b-awq", "awq"), ("mistral-7b-fp16", "fp16")):
            c = openai.OpenAI(base_url=fleet.endpoints[name] + "/v1", api_key="x", max_retries=0)
            assert [m.id for m in c.models.list().data] == [served]
        with pytest.raises(openai.BadRequestError, match="maximum context length is 1024"):
            c.chat.completions.create(model="fp16", messages=[{"role": "user", "content": "x"}], max_tokens=2000)
        assert "--unknown-flag" in fleet.log_tail("mistral-7b-fp16")
        procs = list(fleet.processes.values())
    assert all(p.poll() is not None for p in procs)


def test_fleet_cli_reads_manifests_prints_the_map_and_stops_on_sigint(tmp_path):
    for name, args in VARIANTS.items():
        (tmp_path / f"{name}.yaml").write_text(DEPLOYMENT.format(name=name, args=json.dumps(args)))
    endpoints_file = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmplat_dagster.sim",
            "fleet",
            "--manifests",
            str(tmp_path),
            "--base-port",
            "18311",
            "--endpoints-file",
            str(endpoints_file),
            "--sim-time-scale",
            "0.01",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not endpoints_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        endpoints = json.loads(endpoints_file.read_text())
        assert set(endpoints) == set(VARIANTS)
        for url in endpoints.values():
            assert url.startswith("http://127.0.0.1:") and httpx.get(f"{url}/health").status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "mistral-7b-awq" in out and endpoints["mistral-7b-awq"] in out
    for url in endpoints.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/health")


def test_fleet_reads_the_committed_overlay_through_its_kustomization(repo_root):
    """`llmplat sim fleet` runs exactly the args the dev overlay would run on the cluster."""
    from llmplat_dagster.catalog import load_catalog
    from llmplat_dagster.k8s.render import vllm_args
    from llmplat_dagster.sim.fleet import deployment_args_from_manifests

    found = deployment_args_from_manifests(repo_root / "manifests" / "overlays" / "dev")
    catalog = load_catalog()
    assert found == {v.name: vllm_args(v) for v in catalog.variants}
