"""The alert rules, unit-tested by promtool on synthetic series: what fires, when, with which labels.

`promtool check rules` runs in `llmplat manifests validate` (tests/unit/test_cli.py); here `promtool test rules`
replays minutes of series through the rendered rules. Annotations are dropped from the copy under test (their
templates are checked by `check rules`); the labels and the `for:` timing are what is asserted.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s.monitoring import prometheus_rule
from llmplat_dagster.k8s.promrules import promtool

CATALOG = load_catalog()
NS = 'namespace="llm-baseline"'


def _promtool() -> str:
    found = promtool()
    if found is None:
        pytest.fail("promtool not found: install Debian's prometheus package (.ci/run does it)", pytrace=False)
    return found


def _ttft(model: str, seconds_bucket: str) -> list[dict]:
    """Every request of `model` lands in the bucket up to `seconds_bucket` (and above)."""
    buckets = ["1", "2.5", "5", "+Inf"]
    first = buckets.index(seconds_bucket)
    return [
        {
            "series": f'vllm:time_to_first_token_seconds_bucket{{{NS},model_name="{model}",le="{le}"}}',
            "values": "0+60x30" if i >= first else "0x30",
        }
        for i, le in enumerate(buckets)
    ]


def _tests() -> dict:
    waiting = f"vllm:num_requests_waiting{{{NS}"
    http = f'http_requests_total{{{NS},handler="/v1/chat/completions",method="POST"'
    ksm = f"{NS},deployment="
    series = [
        {"series": f'{waiting},model_name="mistral-7b-awq",pod="a"}}', "values": "12x30"},
        {"series": f'{waiting},model_name="mistral-7b-awq",pod="b"}}', "values": "8x30"},
        {"series": f'{waiting},model_name="mistral-7b-fp16",pod="c"}}', "values": "4x30"},
        {"series": f'{http},status="5xx",service="mistral-7b-fp16"}}', "values": "0+10x30"},
        {"series": f'{http},status="2xx",service="mistral-7b-fp16"}}', "values": "0+90x30"},
        {"series": f'{http},status="2xx",service="mistral-7b-awq"}}', "values": "0+100x30"},
        {"series": f'kube_deployment_status_replicas_available{{{ksm}"mistral-7b-judge"}}', "values": "0x30"},
        {"series": f'kube_deployment_spec_replicas{{{ksm}"mistral-7b-judge"}}', "values": "1x30"},
        # scaled to zero off-hours: nothing available, nothing wanted, nothing to page about
        {"series": f'kube_deployment_status_replicas_available{{{ksm}"mistral-7b-lora"}}', "values": "0x30"},
        {"series": f'kube_deployment_spec_replicas{{{ksm}"mistral-7b-lora"}}', "values": "0x30"},
        {"series": f'vllm:kv_cache_usage_perc{{{NS},model_name="mistral-7b-lora",pod="d"}}', "values": "0.97x30"},
        {"series": f'vllm:kv_cache_usage_perc{{{NS},model_name="mistral-7b-awq",pod="a"}}', "values": "0.5x30"},
        *_ttft("mistral-7b-awq", "5"),  # p95 between 2.5 and 5 s: over the 2 s SLO
        *_ttft("mistral-7b-fp16", "2.5"),  # p95 below 2.5 s: under fp16's 3 s SLO
    ]
    warn = {"severity": "warning", "team": "platform"}
    crit = {"severity": "critical", "team": "platform"}
    firing = {
        "VllmQueueDepthSustained": [{**warn, "model_name": "mistral-7b-awq"}],  # avg 10 > 5; fp16's 4 is not
        "VllmErrorRatioHigh": [{**crit, "service": "mistral-7b-fp16"}],  # 10 % > 5 %; awq's 0 % is not
        "VllmNoReadyReplica": [{**crit, "namespace": "llm-baseline", "deployment": "mistral-7b-judge"}],
        "VllmKvCacheNearFull": [{**warn, "model_name": "mistral-7b-lora"}],
        "VllmTtftP95OverSlo": [{**warn, "model_name": "mistral-7b-awq"}],
    }
    early = [{"eval_time": "4m", "alertname": name, "exp_alerts": []} for name in firing]  # still pending
    late = [
        {"eval_time": "20m", "alertname": name, "exp_alerts": [{"exp_labels": labels} for labels in expected]}
        for name, expected in firing.items()
    ]
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": early + late}]}  # fmt: skip


def test_each_alert_fires_after_its_for_duration_and_only_for_the_variant_in_trouble(tmp_path: Path):
    groups = prometheus_rule(CATALOG, CATALOG.overlay("prod"))["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(_tests(), sort_keys=False))
    done = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_rule_that_cannot_fire_is_caught(tmp_path: Path):
    """The harness itself fails when an expectation is wrong (here: fp16's queue of 4 is not over 5)."""
    groups = prometheus_rule(CATALOG, CATALOG.overlay("prod"))["spec"]["groups"]
    for rule in groups[0]["rules"]:
        rule.pop("annotations")
    tests = _tests()
    tests["tests"][0]["alert_rule_test"][-5]["exp_alerts"].append(
        {"exp_labels": {"severity": "warning", "team": "platform", "model_name": "mistral-7b-fp16"}}
    )
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "VllmQueueDepthSustained" in done.stdout + done.stderr
