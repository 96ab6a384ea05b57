"""The KEDA trigger, every dashboard query and every alert, run by a real Prometheus against the simulator fleet.

The queries are exactly the rendered ones (the ScaledObject's trigger, the dashboard ConfigMap's targets, the
PrometheusRule's expressions); the fleet and its troubles are described in prometheus_fixtures.py.
"""

from __future__ import annotations

import json
import time

import pytest

from llmplat_dagster.k8s.render import render
from tests.integration.prometheus_fixtures import ObservedFleet, observed_fleet, prometheus  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VARIANTS = {"mistral-7b-awq", "mistral-7b-fp16", "mistral-7b-lora", "mistral-7b-judge"}


def _by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _values(result, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def test_the_keda_trigger_reads_each_variants_own_queue(observed_fleet: ObservedFleet):  # noqa: F811
    scaled = _by_kind(render(observed_fleet.catalog, "prod"), "ScaledObject")
    threshold = observed_fleet.catalog.overlay("prod").keda.queue_threshold
    queries = {name: so["spec"]["triggers"][0]["metadata"]["query"] for name, so in scaled.items()}

    def awq_over_threshold():
        found = observed_fleet.query(queries["mistral-7b-awq"])
        return bool(found) and float(found[0]["value"][1]) > threshold

    observed_fleet.wait_for("mistral-7b-awq's queue above the KEDA threshold", awq_over_threshold)
    observed_fleet.wait_for("every variant scraped", lambda: all(observed_fleet.query(q) for q in queries.values()))
    for name, promql in queries.items():
        (sample,) = observed_fleet.query(promql)  # one number per variant: what KEDA divides by the threshold
        if name != "mistral-7b-awq":
            assert float(sample["value"][1]) <= 3, (name, sample)  # at most its few clients wait


def _dashboard_targets(fleet: ObservedFleet) -> dict[str, list[tuple[str, str]]]:
    (cm,) = _by_kind(render(fleet.catalog, "prod"), "ConfigMap").values()
    (board,) = (json.loads(v) for v in cm["data"].values())
    return {
        p["title"]: [(t["legendFormat"], t["expr"]) for t in p["targets"]] for p in board["panels"] if "targets" in p
    }


def test_every_dashboard_query_returns_a_sensible_series_per_variant(observed_fleet: ObservedFleet):  # noqa: F811
    panels = _dashboard_targets(observed_fleet)
    assert len(panels) == 9
    rate = panels["Requests finished"][0][1]
    observed_fleet.wait_for("finished requests of all four variants", lambda: len(observed_fleet.query(rate)) == 4)
    observed_fleet.wait_for("latencies of all four variants",
                            lambda: len(observed_fleet.query(panels["Time to first token"][1][1])) == 4)  # fmt: skip
    # Every query at one instant (p50 and p95 of the same data), one second back, so no scrape is in flight.
    time.sleep(1.5)
    at = time.time() - 1
    for title, targets in panels.items():
        label = "service" if title == "HTTP 5xx ratio" else "model_name"
        values = [_values(observed_fleet.query(expr, at), label) for _, expr in targets]
        for per_variant in values:
            assert set(per_variant) == VARIANTS, (title, per_variant)
            assert all(v >= 0 for v in per_variant.values()), (title, per_variant)
        if title in ("Time to first token", "Inter-token latency", "End-to-end latency"):
            p50, p95 = values
            assert all(0 < p50[v] <= p95[v] < 60 for v in VARIANTS), (title, p50, p95)
        if title in ("Requests finished", "Generated tokens"):
            assert all(v > 0 for v in values[0].values()), (title, values)
        if title in ("HTTP 5xx ratio", "KV-cache usage"):
            assert all(v <= 1 for v in values[0].values()), (title, values)
    errors = _values(observed_fleet.query(panels["HTTP 5xx ratio"][0][1], at), "service")
    assert 0.05 < errors["mistral-7b-fp16"] < 0.8 and errors["mistral-7b-awq"] == 0, errors


EXPECTED = {
    ("VllmQueueDepthSustained", "mistral-7b-awq"),
    ("VllmErrorRatioHigh", "mistral-7b-fp16"),
    ("VllmKvCacheNearFull", "mistral-7b-lora"),
    ("VllmTtftP95OverSlo", "mistral-7b-judge"),
    ("VllmNoReadyReplica", "mistral-7b-judge"),
}


def _firing(fleet: ObservedFleet) -> set[tuple[str, str]]:
    out = set()
    for alert in fleet.alerts():
        if alert["state"] == "firing":
            labels = alert["labels"]
            who = labels.get("model_name") or labels.get("service") or labels.get("deployment", "")
            out.add((labels["alertname"], who))
    return out


def test_every_alert_fires_for_the_variant_in_trouble_and_no_other(observed_fleet: ObservedFleet):  # noqa: F811
    observed_fleet.wait_for("every expected alert firing", lambda: _firing(observed_fleet) >= EXPECTED)
    unexpected = _firing(observed_fleet) - EXPECTED
    assert not unexpected, unexpected
    rules = [r for g in observed_fleet.rules() for r in g["rules"]]
    assert len(rules) == 8 and all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
