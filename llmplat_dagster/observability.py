"""The PromQL that autoscaling and dashboards run against vLLM, and the series it needs.

The golden "metric contract" check derives its required series from these queries, so a server whose metric
names don't match what KEDA and the dashboards read fails before anyone trusts an empty panel.
"""

from __future__ import annotations

import re

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.k8s.render import queue_query

NS = 'namespace="llm-baseline"'

# The design document's Grafana panels (section 4.2), with vLLM V1's real, colon-named series.
DASHBOARD_QUERIES: dict[str, str] = {
    "queue_depth": f"vllm:num_requests_waiting{{{NS}}}",
    "running": f"vllm:num_requests_running{{{NS}}}",
    "request_rate": f"sum(rate(vllm:request_success_total{{{NS}}}[5m]))",
    "e2e_p95": f"histogram_quantile(0.95, sum(rate(vllm:e2e_request_latency_seconds_bucket{{{NS}}}[5m])) by (le))",
    "kv_cache_pressure": f"vllm:kv_cache_usage_perc{{{NS}}}",
    "ttft_p95": f"histogram_quantile(0.95, sum(rate(vllm:time_to_first_token_seconds_bucket{{{NS}}}[5m])) by (le))",
    "itl_p95": f"histogram_quantile(0.95, sum(rate(vllm:inter_token_latency_seconds_bucket{{{NS}}}[5m])) by (le))",
    "token_throughput": f"sum(rate(vllm:generation_tokens_total{{{NS}}}[5m]))",
}

_SERIES = re.compile(r"vllm:[A-Za-z0-9_:]+")


def series_in(promql: str) -> list[str]:
    return _SERIES.findall(promql)


def required_series(catalog: Catalog, variant: str) -> list[str]:
    """Every vLLM series the KEDA trigger (prod) and the dashboards query; the HPA (dev) reads CPU only."""
    queries = [queue_query(catalog, catalog.variant(variant)), *DASHBOARD_QUERIES.values()]
    return sorted({s for q in queries for s in series_in(q)})
