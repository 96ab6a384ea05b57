"""HTTP probes of an OpenAI-compatible server: what it serves, what it is, whether it answers a chat, whether
its `/metrics` meets the contract. Pure (no Dagster): the golden checks and readiness wire them up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmplat_dagster.serving.metrics import ContractReport, metric_contract, parse_metrics


class ProbeError(RuntimeError):
    """A server that never became what it should be; the message says what it answered last."""


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def served_models(base_url: str, timeout_s: float = 5.0) -> list[str]:
    response = httpx.get(f"{base_url}/v1/models", timeout=timeout_s)
    response.raise_for_status()
    return [m["id"] for m in response.json().get("data", [])]


def wait_for_model(
    base_url: str,
    name: str,
    deadline_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """The port can answer before the model is loaded (503, or refused): poll /v1/models until it lists `name`."""
    end, last = clock() + deadline_s, "no answer"
    while True:
        try:
            models = served_models(base_url)
            if name in models:
                return models
            last = f"/v1/models lists {models}, not {name!r}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if clock() >= end:
            raise ProbeError(f"{base_url} never served {name!r} within {deadline_s:.0f}s: {last}")
        sleep(1.0)


def describe_server(base_url: str, timeout_s: float = 5.0) -> str:
    """'simulator (llmplat-sim x)' or 'vLLM x': every figure says what it was measured against."""
    try:
        version = httpx.get(f"{base_url}/version", timeout=timeout_s).json().get("version", "?")
    except (httpx.HTTPError, ValueError):
        return "unknown (no /version)"
    return f"simulator ({version})" if "llmplat-sim" in str(version) else f"vLLM {version}"


def models_probe(base_url: str, expected: str) -> ProbeResult:
    try:
        models = served_models(base_url)
    except httpx.HTTPError as exc:
        return ProbeResult(False, {"error": str(exc)})
    return ProbeResult(expected in models, {"expected": expected, "models": models})


def chat_probe(base_url: str, model: str) -> ProbeResult:
    """One short greedy chat completion; passes when it returns non-empty content."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in one word."}],
        "max_tokens": 10,
        "temperature": 0,
    }
    try:
        response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60)
        content = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
        detail = "" if response.status_code == 200 else response.text[:300]
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        content, detail = "", f"{type(exc).__name__}: {exc}"
    return ProbeResult(bool(content and content.strip()), {"content": (content or "")[:200], "error": detail})


def metrics_probe(base_url: str, required: list[str]) -> tuple[ContractReport | None, str | None]:
    """The metric contract over a `/metrics` scrape: (report, None), or (None, why the scrape failed)."""
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=10)
        response.raise_for_status()
        return metric_contract(parse_metrics(response.text), required), None
    except httpx.HTTPError as exc:
        return None, str(exc)
