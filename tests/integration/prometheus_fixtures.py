"""A real Prometheus (Debian's binary, on loopback) scraping the simulator fleet under load, once per session.

Each variant is put in a different kind of trouble, so every alert has one variant it must fire for and three
it must not: mistral-7b-awq queues (2 batch slots, 12 concurrent clients), mistral-7b-fp16 answers 30 % of
requests with a 500, mistral-7b-lora has a KV cache of 64 tokens, mistral-7b-judge has a TTFT SLO of 1 ms and
(in the kube-state-metrics stand-in) no available replica. The alert rules are the rendered ones with `for:`
set to 0s (their timing is promtool's unit test, tests/unit/test_alert_rules.py). Prometheus starts once per
session (`prometheus`); the troubled fleet and its load live for one test module (`observed_fleet`). Missing
binaries are a failure that says what to install, never a skip: `.ci/run` installs the `prometheus` package.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from llmplat_dagster.catalog import Catalog, load_catalog
from llmplat_dagster.evaluation.promptsets import load_promptset
from llmplat_dagster.k8s.monitoring import prometheus_rule
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.serving.load import LoadDriver
from llmplat_dagster.serving.requests import serving_requests
from llmplat_dagster.sim.testing import loopback_socket, serve_in_thread, start_sim
from tests.integration.postgres_fixtures import free_port

TIME_SCALE = 0.05
# variant -> (simulator options, concurrent clients)
TROUBLE: dict[str, tuple[dict[str, Any], int]] = {
    "mistral-7b-awq": ({"max_num_seqs": 2}, 12),
    "mistral-7b-fp16": ({"error_rate": 0.3}, 3),
    "mistral-7b-lora": ({"kv_capacity_tokens": 64}, 3),
    "mistral-7b-judge": ({}, 3),
}
# kube-state-metrics stand-in: deployment -> (spec replicas, available replicas)
DEPLOYMENTS = {
    "mistral-7b-awq": (2, 2),
    "mistral-7b-fp16": (2, 2),
    "mistral-7b-lora": (0, 0),
    "mistral-7b-judge": (2, 0),
}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if found is None:
        pytest.fail(
            "No Prometheus server for the observability tests: install it (Debian: `apt-get install -y prometheus`; "
            ".ci/run does it)",
            pytrace=False,
        )
    return found


def observed_catalog() -> Catalog:
    """The packaged catalog, with a TTFT SLO only the judge breaks (1 ms) and one nobody else reaches."""
    data = load_catalog().model_dump()
    for v in data["variants"]:
        v["ttft_p95_slo_s"] = 0.001 if v["name"] == "mistral-7b-judge" else 600.0
    return Catalog.model_validate(data)


def _kube_state_metrics() -> Starlette:
    lines = []
    for name, (spec, available) in DEPLOYMENTS.items():
        labels = f'namespace="llm-baseline",deployment="{name}"'
        lines += [f"kube_deployment_spec_replicas{{{labels}}} {spec}",
                  f"kube_deployment_status_replicas_available{{{labels}}} {available}"]  # fmt: skip
    text = "\n".join(lines) + "\n"
    return Starlette(routes=[Route("/metrics", lambda request: PlainTextResponse(text))])


@dataclass
class ObservedFleet:
    """The running Prometheus and what it scrapes; `query` and `alerts` ask its HTTP API."""

    url: str
    catalog: Catalog
    loads: dict[str, LoadDriver] = field(default_factory=dict)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query, now or `at` (Unix seconds), so related queries can read the same instant."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        response = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        return body["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def rules(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]

    def wait_for(self, what: str, check, timeout_s: float = 60.0) -> Any:
        """Poll `check()` until it returns something truthy; fail naming `what` and the last value."""
        deadline, last = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.5)
        pytest.fail(
            f"Prometheus never showed {what} within {timeout_s:g} s; last: {last!r}; targets: {self.targets()}",
            pytrace=False,
        )

    def targets(self) -> list[str]:
        """What Prometheus scrapes and how that went, for a failure message."""
        try:
            active = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return [f"targets unreadable: {exc}"]
        return [f"{t['scrapeUrl']} {t['health']} {t.get('lastError') or ''}".strip() for t in active]


@dataclass
class PrometheusServer:
    """One Prometheus for the session: scrape targets come from file_sd files, rules are reloaded on demand."""

    url: str
    home: Path

    def serve(self, job: str, targets: list[dict[str, Any]]) -> None:
        """Scrape `targets` (file_sd entries) as `job` from now on (Prometheus watches the file)."""
        path = self.home / "targets" / f"{job}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets))
        tmp.replace(path)

    def load_rules(self, groups: list[dict[str, Any]]) -> None:
        (self.home / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        response = httpx.post(f"{self.url}/-/reload", timeout=30)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    """Debian's Prometheus on a loopback port, a temp data dir, 1 s scrape and evaluation intervals."""
    with tempfile.TemporaryDirectory(prefix="llmplat-prometheus-") as tmp:
        home = Path(tmp)
        (home / "targets").mkdir()
        (home / "rules.yaml").write_text("groups: []\n")
        jobs = ("vllm", "kube-state-metrics")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(home / "rules.yaml")],
            "scrape_configs": [
                # refresh_interval: re-read the target files every second too, not only on inotify events (a long
                # test session can run out of inotify instances, and the targets would then wait 5 minutes)
                {
                    "job_name": job,
                    "file_sd_configs": [{"files": [str(home / "targets" / f"{job}.json")], "refresh_interval": "1s"}],
                }
                for job in jobs
            ],
        }
        for job in jobs:
            (home / "targets" / f"{job}.json").write_text("[]")
        (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        with _prometheus(home / "prometheus.yml", home / "data") as url:
            yield PrometheusServer(url, home)


@contextlib.contextmanager
def _prometheus(config: Path, data: Path) -> Iterator[str]:
    port = free_port()
    log = (data.parent / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"Prometheus did not start:\n{(data.parent / 'prometheus.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def observed_fleet(prometheus: PrometheusServer) -> Iterator[ObservedFleet]:
    """The fleet in trouble, under load, scraped by the session's Prometheus, for one test module: the load
    stops with the module, so later tests do not share the CPU with it."""
    catalog = observed_catalog()
    groups = prometheus_rule(catalog, catalog.overlay("prod"))["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule["for"] = "0s"
    with contextlib.ExitStack() as stack:
        sims = {}
        for v in catalog.variants:
            options, _ = TROUBLE[v.name]
            sims[v.name] = stack.enter_context(start_sim(vllm_args(v), time_scale=TIME_SCALE, **options))
        ksm_server, ksm_thread = serve_in_thread(_kube_state_metrics(), sock := loopback_socket(), name="ksm")
        stack.callback(lambda: (setattr(ksm_server, "should_exit", True), ksm_thread.join(5), sock.close()))
        stack.callback(lambda: [prometheus.serve(job, []) for job in ("vllm", "kube-state-metrics")])
        prometheus.load_rules(groups)
        prometheus.serve("kube-state-metrics", [{"targets": [f"127.0.0.1:{sock.getsockname()[1]}"]}])
        prometheus.serve(
            "vllm",
            [
                {"targets": [sim.base_url.removeprefix("http://")],
                 "labels": {"namespace": catalog.namespace, "service": name, "pod": f"{name}-0"}}
                for name, sim in sims.items()
            ],
        )  # fmt: skip
        fleet = ObservedFleet(prometheus.url, catalog)
        for v in catalog.variants:
            prompts = load_promptset("performance", max_model_len=v.max_model_len, variant=v.name).prompts
            load = LoadDriver(sims[v.name].base_url, v.served_name, serving_requests(prompts), TROUBLE[v.name][1])
            load.start()
            stack.callback(load.stop)
            fleet.loads[v.name] = load
        yield fleet
