"""PromQL over vLLM's real, colon-named V1 series, per variant (`model_name`, or the Service for HTTP errors).

Every query here is what a dashboard panel, an alert or the KEDA trigger runs, unchanged; the integration test
runs them against a real Prometheus scraping the simulator fleet (tests/integration/test_prometheus.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmplat_dagster.catalog import Catalog, VariantSpec

QUEUE_METRIC = "vllm:num_requests_waiting"
WINDOW = "5m"
_SERIES = re.compile(r"vllm:[A-Za-z0-9_:]+")


def ns(catalog: Catalog) -> str:
    return f'namespace="{catalog.namespace}"'


def queue_query(catalog: Catalog, v: VariantSpec) -> str:
    """The PromQL the KEDA trigger reads: requests waiting for one variant, summed over its replicas."""
    return f'sum({QUEUE_METRIC}{{namespace="{catalog.namespace}",model_name="{v.served_name}"}})'


def quantile(catalog: Catalog, q: float, histogram: str, where: str = "") -> str:
    selector = ns(catalog) + (f",{where}" if where else "")
    return f"histogram_quantile({q:g}, sum by (le, model_name) (rate({histogram}_bucket{{{selector}}}[{WINDOW}])))"


def error_ratio(catalog: Catalog) -> str:
    """5xx share of the OpenAI routes per Service (vLLM's HTTP metrics carry no model name); 0 without errors."""
    routes = f'{ns(catalog)},handler=~"/v1/.*"'
    total = f"sum by (service) (rate(http_requests_total{{{routes}}}[{WINDOW}]))"
    failed = f'sum by (service) (rate(http_requests_total{{{routes},status="5xx"}}[{WINDOW}]))'
    return f"({failed} or {total} * 0) / {total}"


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: its queries (legend, PromQL) and the Grafana unit of their values."""

    key: str
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]
    description: str


def panels(catalog: Catalog) -> list[Panel]:
    s = ns(catalog)
    per = "{{model_name}}"

    def latency(key: str, title: str, histogram: str, what: str) -> Panel:
        return Panel(
            key,
            title,
            "s",
            (
                (f"p50 {per}", quantile(catalog, 0.5, histogram)),
                (f"p95 {per}", quantile(catalog, 0.95, histogram)),
            ),
            f"{what}, over {WINDOW}, per variant.",
        )

    return [
        Panel(
            "request_rate",
            "Requests finished",
            "reqps",
            ((per, f"sum by (model_name) (rate(vllm:request_success_total{{{s}}}[{WINDOW}]))"),),
            "Requests vLLM finished per second (any finish reason), per variant.",
        ),
        Panel(
            "errors",
            "HTTP 5xx ratio",
            "percentunit",
            (("{{service}}", error_ratio(catalog)),),
            "Share of /v1 requests answered with a 5xx, per variant Service.",
        ),
        latency("ttft", "Time to first token", "vllm:time_to_first_token_seconds", "Time to first token"),
        latency("itl", "Inter-token latency", "vllm:inter_token_latency_seconds", "Gap between output tokens"),
        latency("e2e", "End-to-end latency", "vllm:e2e_request_latency_seconds", "Request latency in the server"),
        Panel(
            "queue_depth",
            "Waiting requests",
            "short",
            ((per, f"sum by (model_name) ({QUEUE_METRIC}{{{s}}})"),),
            "Requests queued for a batch slot, summed over replicas (what KEDA scales on).",
        ),
        Panel(
            "running",
            "Running requests",
            "short",
            ((per, f"sum by (model_name) (vllm:num_requests_running{{{s}}})"),),
            "Requests in the running batch, summed over replicas.",
        ),
        Panel(
            "kv_cache",
            "KV-cache usage",
            "percentunit",
            ((per, f"max by (model_name) (vllm:kv_cache_usage_perc{{{s}}})"),),
            "The fullest replica's KV cache; near 100 % vLLM preempts requests.",
        ),
        Panel(
            "token_throughput",
            "Generated tokens",
            "short",
            ((per, f"sum by (model_name) (rate(vllm:generation_tokens_total{{{s}}}[{WINDOW}]))"),),
            "Output tokens per second, per variant.",
        ),
    ]


def dashboard_queries(catalog: Catalog) -> dict[str, str]:
    """`<panel>` or `<panel>_<p50|p95>` -> PromQL, every query the dashboard runs."""
    out = {}
    for panel in panels(catalog):
        for legend, promql in panel.queries:
            suffix = legend.split()[0] if legend.startswith("p") and " " in legend else ""
            out[f"{panel.key}_{suffix}" if suffix else panel.key] = promql
    return out


def series_in(promql: str) -> list[str]:
    return _SERIES.findall(promql)


def required_series(catalog: Catalog, variant: str) -> list[str]:
    """Every vLLM series the KEDA trigger, the dashboard and the alert rules query (the HPA reads CPU only)."""
    from llmplat_dagster.observability.rules import alert_groups

    queries = [queue_query(catalog, catalog.variant(variant)), *dashboard_queries(catalog).values()]
    for name in catalog.overlays:
        queries += [r["expr"] for g in alert_groups(catalog, catalog.overlay(name)) for r in g["rules"]]
    return sorted({s for q in queries for s in series_in(q)})
