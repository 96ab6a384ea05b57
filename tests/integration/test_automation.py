"""Schedules and sensors as Dagster evaluates them: ticks against a Hub stand-in and moto, failure alerts."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import huggingface_hub.constants as hf_constants
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from llmplat_dagster.automation.hub import lookup_revisions
from llmplat_dagster.catalog import default_catalog_path
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.settings import Settings
from tests.integration.conftest import HUB_TOKEN
from tests.integration.hub_standin import HubStandin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = HUB_TOKEN
AWQ, FP16 = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "mistralai/Mistral-7B-Instruct-v0.2"
OLD, NEW = "1" * 40, "2" * 40
FP16_SHA = "63a8b081895390a26e140280378bc85ec8bce07a"
ADAPTER, ADAPTER_SHA = "UnderstandLing/Mistral-7B-Instruct-v0.2-de", "4d3be4bff0f0b568746f7502b134bcf921bb23a8"


@pytest.fixture(autouse=True)
def _hub_client(monkeypatch):
    """Loopback only: huggingface_hub's user-agent telemetry would otherwise call huggingface.co once."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


@pytest.fixture
def hub(hub: HubStandin) -> HubStandin:
    """The shared stand-in (tests/integration/conftest.py) serving the catalog's two base models and its adapter."""
    hub.set(AWQ, sha=OLD)
    hub.set(FP16, sha=FP16_SHA)
    hub.set(ADAPTER, sha=ADAPTER_SHA)
    return hub


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def _defs(tmp_path: Path, **settings) -> dg.Definitions:
    return build_definitions(Settings(home=tmp_path, hf_timeout_s=1.0, **settings))


def _tick(defs: dg.Definitions, name: str, instance, cursor: str | None = None, resources=None):
    sensor = defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
    return sensor.evaluate_tick(context)


# -- nightly schedule -----------------------------------------------------------------------------------------


def test_nightly_schedule_requests_that_nights_partition(tmp_path: Path):
    defs = _defs(tmp_path)
    schedule = defs.resolve_schedule_def("nightly_comparison_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert schedule.job_name == "nightly_comparison_job"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert (request.partition_key, request.run_key) == ("2026-11-29", "nightly-2026-11-29")
    job = defs.resolve_job_def("nightly_comparison_job")
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert "llm_baseline/quant_quality_comparison" in selected and "llm_baseline/quality_trend" in selected
    assert not any(k.endswith(("/deployment", "/readiness")) for k in selected)  # nightly never re-rolls


def test_cron_and_timezone_are_configuration(tmp_path: Path):
    defs = _defs(tmp_path, nightly_cron="30 1 * * *", nightly_timezone="America/New_York")
    schedule = defs.resolve_schedule_def("nightly_comparison_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *", "America/New_York")
    moment = dt.datetime(2026, 11, 29, 6, 30, tzinfo=dt.UTC)  # 01:30 in New York
    context = dg.build_schedule_context(scheduled_execution_time=moment, repository_def=defs.get_repository_def())
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-29"


# -- model revision sensor ------------------------------------------------------------------------------------


def test_a_new_awq_sha_rolls_out_and_evaluates_the_three_variants_built_on_it(tmp_path, hub, instance, caplog):
    defs = _defs(tmp_path, hf_endpoint=hub.endpoint)
    first = _tick(defs, "model_revision_sensor", instance)
    assert first.run_requests == [] and "no tracked revision moved" in first.skip_message
    cursor = json.loads(first.cursor)
    assert cursor == {f"{AWQ}@main": OLD, f"{FP16}@main": FP16_SHA, f"{ADAPTER}@main": ADAPTER_SHA}

    hub.set(AWQ, sha=NEW)
    with caplog.at_level("DEBUG"):
        second = _tick(defs, "model_revision_sensor", instance, cursor=first.cursor)
    [request] = second.run_requests
    selected = {k.to_user_string() for k in request.asset_selection}
    for v in ("mistral-7b-awq", "mistral-7b-lora", "mistral-7b-judge"):
        assert {f"llm_baseline/{v}/{s}" for s in ("manifests", "deployment", "readiness", "canary")} <= selected
    assert not any("mistral-7b-fp16" in k for k in selected)
    assert "llm_baseline/quant_quality_comparison" in selected
    assert request.tags["llmplat-revision/mistral-7b-awq"] == f"{OLD[:12]}->{NEW[:12]}"
    assert json.loads(second.cursor)[f"{AWQ}@main"] == NEW
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests)
    assert TOKEN not in caplog.text and TOKEN not in json.dumps(request.tags)

    # The requested run renders the new revision into the Deployment's vLLM args.
    result = defs.resolve_job_def("manifests_job").execute_in_process(run_config=request.run_config)
    for v in ("mistral_7b_awq", "mistral_7b_lora", "mistral_7b_judge"):
        objects = result.output_for_node(f"llm_baseline__{v}__manifests")
        args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
        assert args[args.index("--revision") + 1] == NEW

    third = _tick(defs, "model_revision_sensor", instance, cursor=second.cursor)
    assert third.run_requests == [] and json.loads(third.cursor) == json.loads(second.cursor)


@pytest.mark.parametrize(
    ("behaviour", "token", "kind"),
    [
        ({"sha": NEW}, "hf_RejectedToken000000000000", "unauthorized"),
        ({"sha": NEW, "status": 429, "retry_after": "30"}, TOKEN, "rate_limited"),
        ({"sha": NEW, "delay_s": 2.0}, TOKEN, "timeout"),
        ({"sha": NEW, "gated": True}, "", "gated"),
    ],
    ids=["401", "429", "timeout", "gated-without-token"],
)
def test_hub_errors_leave_the_cursor_and_name_the_reason(tmp_path, hub, instance, monkeypatch, behaviour, token, kind):
    defs = _defs(tmp_path, hf_endpoint=hub.endpoint)
    cursor = json.dumps({f"{AWQ}@main": OLD, f"{FP16}@main": FP16_SHA, f"{ADAPTER}@main": ADAPTER_SHA})
    for repo in (AWQ, FP16, ADAPTER):
        hub.set(repo, **behaviour)
    monkeypatch.setenv("HF_TOKEN", token)
    tick = _tick(defs, "model_revision_sensor", instance, cursor=cursor)
    assert tick.run_requests == []
    assert json.loads(tick.cursor) == json.loads(cursor)
    assert "all look-ups failed" in tick.skip_message and f"{AWQ}@main: {kind}" in tick.skip_message
    if token:
        assert token not in tick.skip_message


def _catalog_with_adapters(tmp_path: Path) -> Path:
    catalog = yaml.safe_load(default_catalog_path().read_text())
    lora = next(v for v in catalog["variants"] if v["name"] == "mistral-7b-lora")
    lora["lora"]["adapters"] = [{"name": f"a{i}", "repo": f"acme/adapter-{i}", "revision": "main"} for i in (1, 2)]
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


def test_a_moved_adapter_re_rolls_only_the_lora_variant_with_that_adapter_pinned(tmp_path, hub, instance):
    path = _catalog_with_adapters(tmp_path)
    for repo in ("acme/adapter-1", "acme/adapter-2"):
        hub.set(repo, sha=OLD)
    defs = build_definitions(Settings(home=tmp_path, catalog_path=path, hf_endpoint=hub.endpoint, hf_timeout_s=5))
    first = _tick(defs, "model_revision_sensor", instance)
    hub.set("acme/adapter-2", sha=NEW)
    [request] = _tick(defs, "model_revision_sensor", instance, cursor=first.cursor).run_requests
    assert {k.path[1] for k in request.asset_selection if len(k.path) == 3} == {"mistral-7b-lora"}
    assert request.tags["llmplat-revision/mistral-7b-lora.a2"] == f"{OLD[:12]}->{NEW[:12]}"
    assert [k for k in request.tags if k.startswith("llmplat-revision/")] == ["llmplat-revision/mistral-7b-lora.a2"]
    result = defs.resolve_job_def("manifests_job").execute_in_process(run_config=request.run_config)
    objects = result.output_for_node("llm_baseline__mistral_7b_lora__manifests")
    init = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["initContainers"][0]
    assert f"repo_id='acme/adapter-2', revision='{NEW}'" in init["command"][-1]
    assert f"repo_id='acme/adapter-1', revision='{OLD}'" in init["command"][-1]  # `main`, resolved at rollout


def test_four_lookups_in_one_tick_take_about_as_long_as_one(tmp_path, hub, instance):
    """Look-ups run concurrently: a catalog with two LoRA adapters tracks four repos."""
    path = _catalog_with_adapters(tmp_path)
    for repo in (AWQ, FP16, "acme/adapter-1", "acme/adapter-2"):
        hub.set(repo, sha=OLD, delay_s=0.4)
    start = time.perf_counter()
    lookup_revisions([(AWQ, "main")], endpoint=hub.endpoint, token=TOKEN)
    one = time.perf_counter() - start
    defs = build_definitions(Settings(home=tmp_path, catalog_path=path, hf_endpoint=hub.endpoint, hf_timeout_s=5))
    start = time.perf_counter()
    tick = _tick(defs, "model_revision_sensor", instance)
    four = time.perf_counter() - start
    assert len(json.loads(tick.cursor)) == 4
    assert four < 1.5 * one, f"four look-ups took {four:.2f}s, one took {one:.2f}s"


# -- promptset sensor -----------------------------------------------------------------------------------------


def test_a_new_promptset_version_reruns_the_canaries_against_it(tmp_path, instance, moto_endpoint, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="evals")
    s3.put_bucket_versioning(Bucket="evals", VersioningConfiguration={"Status": "Enabled"})
    body = (Path(__file__).parents[2] / "llmplat_dagster" / "promptsets" / "canary.jsonl").read_bytes()
    s3.put_object(Bucket="evals", Key="promptsets/canary/v2/promptset.jsonl", Body=body)
    defs = _defs(tmp_path, promptset_s3_uri="s3://evals/promptsets")
    resources = {"s3": S3Resource(endpoint_url=moto_endpoint, region_name="us-east-1")}
    tick = _tick(defs, "promptset_sensor", instance, resources=resources)
    [request] = tick.run_requests
    assert {k.path[-1] for k in request.asset_selection} == {"canary"}
    op = request.run_config["ops"]["llm_baseline__mistral_7b_awq__canary"]
    assert op["config"]["promptset"] == "s3://evals/promptsets/canary/v2/promptset.jsonl"
    again = _tick(defs, "promptset_sensor", instance, cursor=tick.cursor, resources=resources)
    assert again.run_requests == [] and "no new promptset version" in again.skip_message


def test_promptset_sensor_explains_a_missing_bucket(tmp_path, instance, moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    defs = _defs(tmp_path, promptset_s3_uri="s3://no-such-bucket/promptsets")
    resources = {"s3": S3Resource(endpoint_url=moto_endpoint, region_name="us-east-1")}
    tick = _tick(defs, "promptset_sensor", instance, cursor='{"x": "y"}', resources=resources)
    assert tick.run_requests == [] and "no-such-bucket" in tick.skip_message
    assert tick.cursor in (None, '{"x": "y"}')


# -- run failure alerts ---------------------------------------------------------------------------------------


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the stdlib's spelling
        length = int(self.headers["Content-Length"])
        _Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failed_canary_posts_a_concise_alert(tmp_path, instance, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LLMPLAT_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    _Webhook.received.clear()
    defs = _defs(tmp_path)  # no endpoints: the canary cannot find its server
    job = defs.resolve_job_def("canary_job")
    key = dg.AssetKey(["llm_baseline", "mistral-7b-awq", "canary"])
    result = job.execute_in_process(
        instance=instance, asset_selection=[key], partition_key="2026-11-28", raise_on_error=False
    )
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    defs.resolve_sensor_def("run_failure_alert_sensor")(context)
    server.shutdown()
    [alert] = _Webhook.received
    assert alert["text"].startswith(
        ":x: canary_job failed variant mistral-7b-awq at step llm_baseline__mistral_7b_awq__canary"
    )
    assert "mistral-7b-awq" in alert["text"] and len(alert["text"].splitlines()) <= 2
