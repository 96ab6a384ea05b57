"""HTTP probes of an OpenAI-compatible server: what it serves, what it is, whether it answers a chat, whether
its `/metrics` meets the contract. Pure (no Dagster): the golden checks and readiness wire them up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmplat_dagster.serving.metrics import ContractReport, metric_contract, parse_metrics
from llmplat_dagster.serving.stream import error_message


class ProbeError(RuntimeError):
    """A server that never became what it should be; the message says what it answered last."""


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


def _json(response: httpx.Response, what: str) -> Any:
    """The JSON body of a 200 answer, or ProbeError saying what came back instead (status, HTML, garbage)."""
    if response.status_code != 200:
        raise ProbeError(f"{what} answered HTTP {response.status_code}: {error_message(response.content)}")
    try:
        return response.json()
    except (ValueError, RecursionError):
        kind = response.headers.get("content-type", "no content-type").split(";")[0]
        raise ProbeError(f"{what} answered {kind}, not JSON: {error_message(response.content, 120)!r}") from None


def served_models(base_url: str, timeout_s: float = 5.0) -> list[str]:
    """The model ids `/v1/models` lists; ProbeError (naming what came back) for anything not OpenAI-shaped."""
    what = "GET /v1/models"
    try:
        data = _json(httpx.get(f"{base_url}/v1/models", timeout=timeout_s), what)
    except httpx.HTTPError as exc:
        raise ProbeError(f"{what}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ProbeError(f"{what} answered {_shape(data)}, not an object with a 'data' list")
    ids = [m.get("id") if isinstance(m, dict) else m for m in data["data"]]
    if not all(isinstance(i, str) for i in ids):
        raise ProbeError(f"{what}: model entries without a string 'id': {str(data['data'])[:120]}")
    return ids


def _shape(data: Any) -> str:
    return f"a JSON {type(data).__name__} ({str(data)[:60]})"


def wait_for_model(
    base_url: str,
    name: str,
    deadline_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    mismatch_polls: int = 5,
) -> list[str]:
    """The port can answer before the model is loaded (503, or refused): poll /v1/models until it lists `name`.

    A server that is up and lists other models `mismatch_polls` times in a row will not change its mind (vLLM
    lists its served names once loaded): fail then, naming what it lists, instead of waiting out the deadline."""
    end, last, mismatches = clock() + deadline_s, "no answer", 0
    while True:
        try:
            models = served_models(base_url)
        except ProbeError as exc:
            last, mismatches = str(exc), 0
        else:
            if name in models:
                return models
            last = f"/v1/models lists {models}, not {name!r}"
            mismatches = mismatches + 1 if models else 0
            if mismatches >= mismatch_polls:
                raise ProbeError(
                    f"{base_url} serves {models}, not {name!r} ({mismatches} answers in a row): check the variant's "
                    "served_model_name and the endpoint it resolves to"
                )
        if clock() >= end:
            raise ProbeError(f"{base_url} never served {name!r} within {deadline_s:.0f}s: {last}")
        sleep(1.0)


def describe_server(base_url: str, timeout_s: float = 5.0) -> str:
    """'simulator (llmplat-sim x)' or 'vLLM x': every figure says what it was measured against."""
    try:
        data = httpx.get(f"{base_url}/version", timeout=timeout_s).json()
        version = data.get("version", "?") if isinstance(data, dict) else "?"
    except (httpx.HTTPError, ValueError, RecursionError):
        return "unknown (no /version)"
    return f"simulator ({version})" if "llmplat-sim" in str(version) else f"vLLM {version}"


def models_probe(base_url: str, expected: str) -> ProbeResult:
    """Passes when /v1/models lists `expected`; a broken answer is a failed check that says what came back."""
    try:
        models = served_models(base_url)
    except ProbeError as exc:
        return ProbeResult(False, {"expected": expected, "error": str(exc)}, str(exc))
    listed = expected in models
    why = None if listed else f"/v1/models lists {models}, not {expected!r}"
    return ProbeResult(listed, {"expected": expected, "models": models}, why)


def chat_probe(base_url: str, model: str) -> ProbeResult:
    """One short greedy chat completion; passes when it returns non-empty content."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello in one word."}],
        "max_tokens": 10,
        "temperature": 0,
    }
    what = "POST /v1/chat/completions"
    try:
        data = _json(httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60), what)
        choices = data.get("choices") if isinstance(data, dict) else None
        message = (
            choices[0].get("message")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict)
            else None
        )
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ProbeError(f"{what} answered {_shape(data)}, without a string choices[0].message.content")
    except httpx.HTTPError as exc:
        content, detail = "", f"{what}: {type(exc).__name__}: {exc}"
    except ProbeError as exc:
        content, detail = "", str(exc)
    else:
        detail = "" if content.strip() else f"{what} returned empty content"
    passed = bool(content.strip())
    return ProbeResult(passed, {"content": content[:200], "error": detail}, None if passed else detail)


def metrics_probe(base_url: str, required: list[str]) -> tuple[ContractReport | None, str | None]:
    """The metric contract over a `/metrics` scrape: (report, None), or (None, why the scrape failed)."""
    what = "GET /metrics"
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=10)
        if response.status_code != 200:
            return None, f"{what} answered HTTP {response.status_code}: {error_message(response.content)}"
        text = response.text
        if text.lstrip()[:1] in ("<", "[", "{"):
            return None, f"{what} answered {text.lstrip()[:60]!r}, not the Prometheus text format"
        return metric_contract(parse_metrics(text), required), None
    except httpx.HTTPError as exc:
        return None, f"{what}: {type(exc).__name__}: {exc}"
    except (ValueError, TypeError, IndexError) as exc:  # prometheus_client's parser on text that is not metrics
        return None, f"{what}: not the Prometheus text format ({type(exc).__name__}: {exc})"
