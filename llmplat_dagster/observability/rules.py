"""Alert rules for the fleet, as Prometheus rule groups (rendered into a PrometheusRule, checked by promtool).

What pages an SRE, and why each threshold: the queue stays above KEDA's per-replica target although KEDA
should have added capacity (it is at its maximum, or nodes do not come); 5xx answers; a variant that should
run has no available replica (kube-state-metrics, shipped with kube-prometheus-stack); a KV cache so full that
vLLM preempts; TTFT p95 above the variant's SLO from the catalog. `for:` keeps one slow scrape from paging.
"""

from __future__ import annotations

from typing import Any

from llmplat_dagster.catalog import Catalog, Overlay
from llmplat_dagster.observability.queries import QUEUE_METRIC, error_ratio, ns, quantile

GROUP = "llmplat-vllm"
ERROR_RATIO = 0.05
KV_CACHE_FULL = 0.9


def _rule(alert: str, expr: str, for_: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "team": "platform"},
        "annotations": {"summary": summary, "description": description, "runbook": "deploy/README.md, Alerts"},
    }


def alert_groups(catalog: Catalog, ov: Overlay) -> list[dict[str, Any]]:
    s = ns(catalog)
    deployments = "|".join(v.name for v in catalog.variants)
    ksm = f'{s},deployment=~"{deployments}"'
    threshold = ov.keda.queue_threshold
    rules = [
        _rule(
            "VllmQueueDepthSustained",
            f"avg by (model_name) ({QUEUE_METRIC}{{{s}}}) > {threshold}",
            "10m",
            "warning",
            "{{ $labels.model_name }}: requests keep queueing",
            f"{{{{ $labels.model_name }}}} has had more than {threshold} waiting requests per replica for 10 minutes "
            "(now {{ $value | humanize }}); the autoscaler is at its maximum or new GPU nodes are not coming.",
        ),
        _rule(
            "VllmErrorRatioHigh",
            f"{error_ratio(catalog)} > {ERROR_RATIO:g}",
            "5m",
            "critical",
            "{{ $labels.service }}: 5xx answers",
            f"More than {ERROR_RATIO:.0%} of /v1 requests to {{{{ $labels.service }}}} failed with a 5xx over the "
            "last 5 minutes (now {{ $value | humanizePercentage }}).",
        ),
        _rule(
            "VllmNoReadyReplica",
            f"kube_deployment_status_replicas_available{{{ksm}}} < 1 "
            f"and on (namespace, deployment) kube_deployment_spec_replicas{{{ksm}}} > 0",
            "10m",
            "critical",
            "{{ $labels.deployment }}: no replica serves",
            "{{ $labels.deployment }} should run but has had no available replica for 10 minutes (longer than a "
            "cold start): look for Pending pods (no GPU node), crash loops or a failed model download.",
        ),
        _rule(
            "VllmKvCacheNearFull",
            f"max by (model_name) (vllm:kv_cache_usage_perc{{{s}}}) > {KV_CACHE_FULL:g}",
            "10m",
            "warning",
            "{{ $labels.model_name }}: KV cache nearly full",
            f"A replica of {{{{ $labels.model_name }}}} has used more than {KV_CACHE_FULL:.0%} of its KV cache for "
            "10 minutes (now {{ $value | humanizePercentage }}); vLLM preempts requests, latency rises.",
        ),
    ]
    for v in catalog.variants:
        where = f'model_name="{v.served_name}"'
        rules.append(
            _rule(
                "VllmTtftP95OverSlo",
                f"{quantile(catalog, 0.95, 'vllm:time_to_first_token_seconds', where)} > {v.ttft_p95_slo_s:g}",
                "10m",
                "warning",
                f"{v.name}: TTFT p95 over its {v.ttft_p95_slo_s:g} s SLO",
                f"{v.name}'s time to first token p95 has been above {v.ttft_p95_slo_s:g} s for 10 minutes "
                "(now {{ $value | humanizeDuration }}).",
            )
        )
    return [{"name": GROUP, "rules": rules}]
