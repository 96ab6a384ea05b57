"""vLLM's Prometheus `/metrics`: scrape, parse into tidy rows, and ask V0 and V1 servers the same questions.

vLLM V1 renamed `vllm:gpu_cache_usage_perc` -> `vllm:kv_cache_usage_perc` and
`vllm:time_per_output_token_seconds` -> `vllm:inter_token_latency_seconds` (vllm/v1/metrics/loggers.py vs
vllm/engine/metrics.py); KEDA triggers, HPAs and dashboards written for one generation silently read nothing
from the other. `metric_contract` says which generation a scrape is and which queried series are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

V0, V1 = "v0", "v1"

# question -> {generation: family name as the server exposes it (counters with their _total suffix)}
METRIC_NAMES: dict[str, dict[str, str]] = {
    "queue_depth": {V1: "vllm:num_requests_waiting", V0: "vllm:num_requests_waiting"},
    "running": {V1: "vllm:num_requests_running", V0: "vllm:num_requests_running"},
    "kv_cache_usage": {V1: "vllm:kv_cache_usage_perc", V0: "vllm:gpu_cache_usage_perc"},
    "ttft": {V1: "vllm:time_to_first_token_seconds", V0: "vllm:time_to_first_token_seconds"},
    "itl": {V1: "vllm:inter_token_latency_seconds", V0: "vllm:time_per_output_token_seconds"},
    "e2e": {V1: "vllm:e2e_request_latency_seconds", V0: "vllm:e2e_request_latency_seconds"},
    "prompt_tokens": {V1: "vllm:prompt_tokens_total", V0: "vllm:prompt_tokens_total"},
    "generation_tokens": {V1: "vllm:generation_tokens_total", V0: "vllm:generation_tokens_total"},
    "request_success": {V1: "vllm:request_success_total", V0: "vllm:request_success_total"},
}
# Series only one generation emits (early V1 releases still emitted the deprecated V0 names alongside).
_V1_ONLY = frozenset({"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"})
_V0_ONLY = frozenset({"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds", "vllm:num_requests_swapped"})
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One sample: `name` as exposed (`vllm:prompt_tokens_total`, `..._bucket`), its family and type."""

    name: str
    labels: Mapping[str, str]
    value: float
    type: str
    family: str


def parse_metrics(text: str) -> list[MetricSample]:
    """Prometheus text exposition -> tidy rows (prometheus_client's parser, which drops `_total` from a
    counter's family name but keeps it on the sample, so both spellings stay findable)."""
    return [
        MetricSample(s.name, s.labels, float(s.value), fam.type, fam.name)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    ]


def metrics_frame(samples: Iterable[MetricSample]) -> pd.DataFrame:
    return pd.DataFrame(
        [(s.name, dict(s.labels), s.value, s.type, s.family) for s in samples],
        columns=["name", "labels", "value", "type", "family"],
    )


def scrape(base_url: str, *, client: httpx.Client | None = None, timeout_s: float = 5.0) -> list[MetricSample]:
    """GET {base_url}/metrics and parse it; raises httpx errors (a failed scrape is not an empty one)."""
    url = base_url.rstrip("/") + "/metrics"
    response = client.get(url, timeout=timeout_s) if client else httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    return parse_metrics(response.text)


async def ascrape(base_url: str, client: httpx.AsyncClient, *, timeout_s: float = 5.0) -> list[MetricSample]:
    response = await client.get(base_url.rstrip("/") + "/metrics", timeout=timeout_s)
    response.raise_for_status()
    return parse_metrics(response.text)


def _names(samples: Iterable[MetricSample]) -> set[str]:
    names: set[str] = set()
    for s in samples:
        names.add(s.name)
        names.add(s.family)
        if s.type == "counter":
            names.add(s.family + "_total")
    return names


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def generation(samples: Iterable[MetricSample]) -> str | None:
    """Which naming generation a scrape uses: "v1", "v0", or None when neither's marker series is present.

    V1-only names win because early V1 releases still emitted the deprecated V0 names alongside them."""
    names = {_base(n) for n in _names(samples)}
    if names & _V1_ONLY:
        return V1
    if names & _V0_ONLY:
        return V0
    return None


def series_name(question: str, gen: str) -> str:
    """The family name that answers `question` ("queue_depth", "kv_cache_usage", "itl", ...) on `gen`."""
    try:
        return METRIC_NAMES[question][gen]
    except KeyError:
        raise KeyError(f"unknown question {question!r} or generation {gen!r}") from None


def select(samples: Iterable[MetricSample], name: str, **labels: str) -> list[MetricSample]:
    """Samples whose sample or family name is `name` (either counter spelling) and whose labels match."""
    alt = name[: -len("_total")] if name.endswith("_total") else name
    return [
        s
        for s in samples
        if (s.name == name or s.family in (name, alt)) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(samples: Iterable[MetricSample], question: str, **labels: str) -> float | None:
    """A gauge or counter answered the same way on V0 and V1: summed over matching label sets (e.g. over
    engines); None when the server does not expose it. Histograms answer with their mean (sum / count)."""
    samples = list(samples)
    gen = generation(samples) or V1
    name = series_name(question, gen)
    rows = select(samples, name, **labels)
    if not rows:
        return None
    if rows[0].type == "histogram":
        total = sum(s.value for s in rows if s.name.endswith("_sum"))
        count = sum(s.value for s in rows if s.name.endswith("_count"))
        return total / count if count else None
    return sum(s.value for s in rows if not s.name.endswith("_created"))


@dataclass(frozen=True)
class ContractReport:
    """Which generation the server speaks and which of the queried series it does not expose."""

    generation: str | None
    present: tuple[str, ...]
    missing: tuple[str, ...]
    hints: dict[str, str] = field(default_factory=dict)  # missing name -> the name this generation uses

    @property
    def ok(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        if self.ok:
            return f"{self.generation or 'unknown'} metrics: all {len(self.present)} required series present"
        parts = [f"{m} (this server exposes {self.hints[m]})" if m in self.hints else m for m in self.missing]
        return f"{self.generation or 'unknown'} metrics: missing {', '.join(parts)}"


def _equivalent(req: str, gen: str, names: set[str]) -> str | None:
    """The series this generation exposes for a name written for the other one, if any."""
    base = _base(req)
    suffix = req[len(base) :]
    for gens in METRIC_NAMES.values():
        if gen in gens and any(_base(n) == base for n in gens.values()):
            other = gens[gen]
            candidate = other if suffix in ("", "_total") else _base(other) + suffix
            if candidate != req and candidate in names:
                return candidate
    return None


def metric_contract(samples: Iterable[MetricSample], required: Iterable[str]) -> ContractReport:
    """Check the series that KEDA triggers, HPAs and dashboards query (`vllm:num_requests_waiting`,
    `vllm:prompt_tokens_total`, `vllm:time_to_first_token_seconds_bucket`, ...) against a scrape."""
    samples = list(samples)
    names = _names(samples)
    gen = generation(samples)
    present, missing, hints = [], [], {}
    for req in required:
        if req in names:
            present.append(req)
            continue
        missing.append(req)
        hint = _equivalent(req, gen, names) if gen else None
        if hint:
            hints[req] = hint
    return ContractReport(gen, tuple(present), tuple(missing), hints)
