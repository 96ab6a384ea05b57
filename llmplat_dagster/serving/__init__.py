"""The measuring instrument: a streamed, timed OpenAI-compatible client and vLLM `/metrics` parsing."""

from llmplat_dagster.serving.client import (
    Progress,
    RetryPolicy,
    ServingClient,
    ServingRequest,
    StreamTimer,
    run_promptset,
    run_requests,
)
from llmplat_dagster.serving.metrics import (
    METRIC_NAMES,
    ContractReport,
    MetricSample,
    generation,
    metric_contract,
    metrics_frame,
    parse_metrics,
    scrape,
)
from llmplat_dagster.serving.results import RequestResult, latency_summary, results_frame, summary_by

__all__ = [
    "METRIC_NAMES",
    "ContractReport",
    "MetricSample",
    "Progress",
    "RequestResult",
    "RetryPolicy",
    "ServingClient",
    "ServingRequest",
    "StreamTimer",
    "generation",
    "latency_summary",
    "metric_contract",
    "metrics_frame",
    "parse_metrics",
    "results_frame",
    "run_promptset",
    "run_requests",
    "scrape",
    "summary_by",
]
