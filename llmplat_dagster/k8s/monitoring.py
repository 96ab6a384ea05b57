"""The objects prometheus-operator and Grafana pick up: the ServiceMonitor, the alert rules, the dashboard.

kube-prometheus-stack selects ServiceMonitors and PrometheusRules by its release label, and its Grafana sidecar
loads ConfigMaps labelled `grafana_dashboard: "1"`. The queries inside come from llmplat_dagster/observability.
"""

from __future__ import annotations

from llmplat_dagster.catalog import Catalog, Overlay
from llmplat_dagster.k8s.render import PART_OF, Obj, _meta
from llmplat_dagster.observability.rules import alert_groups

DASHBOARD_LABEL = "grafana_dashboard"  # kube-prometheus-stack's Grafana sidecar loads ConfigMaps with it = "1"


def _operator_meta(catalog: Catalog, ov: Overlay) -> Obj:
    """prometheus-operator objects: kube-prometheus-stack selects them by its release label."""
    return _meta("vllm", catalog.namespace, {"app.kubernetes.io/part-of": PART_OF, "release": ov.prometheus.release})


def service_monitor(catalog: Catalog, ov: Overlay) -> Obj:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _operator_meta(catalog, ov),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/part-of": PART_OF}},
            "namespaceSelector": {"matchNames": [catalog.namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def prometheus_rule(catalog: Catalog, ov: Overlay) -> Obj:
    """The alert rules; kube-prometheus-stack's operator loads PrometheusRules labelled with its release."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _operator_meta(catalog, ov),
        "spec": {"groups": alert_groups(catalog, ov)},
    }


def dashboard_config_map(catalog: Catalog) -> Obj:
    """The fleet's Grafana dashboard as a ConfigMap the Grafana sidecar of kube-prometheus-stack loads."""
    from llmplat_dagster.observability.dashboard import DASHBOARD_UID, dashboard_json

    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"grafana-dashboard-{catalog.namespace}",
            "namespace": catalog.namespace,
            "labels": {"app.kubernetes.io/part-of": PART_OF, DASHBOARD_LABEL: "1"},
            "annotations": {"grafana_folder": "LLM platform"},
        },
        "data": {f"{DASHBOARD_UID}.json": dashboard_json(catalog)},
    }
