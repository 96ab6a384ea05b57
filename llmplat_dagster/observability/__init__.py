"""The PromQL that autoscaling, dashboards and alerts run against vLLM, and the series it needs.

One source for every query: KEDA's trigger (`queries.queue_query`), the Grafana dashboard (`queries.panels`,
built into JSON by `dashboard`), the alert rules (`rules`) and the golden "metric contract" check, which derives
its required series from all of them, so a server whose metric names don't match fails before anyone trusts an
empty panel or a silent alert.
"""

from llmplat_dagster.observability.queries import dashboard_queries, queue_query, required_series, series_in

__all__ = ["dashboard_queries", "queue_query", "required_series", "series_in"]
