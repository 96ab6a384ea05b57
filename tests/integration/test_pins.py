"""Pins that stay, and provenance that never records a branch: against the Hub stand-in, on one instance.

The revision sensor's pin is recorded as the daemon records a tick's asset events; the next plain rollout
renders it; a person re-pins or unpins through `pin_revision_job`; a variant that follows `main` is resolved
to the sha `main` points at when it is rolled out (offline, it is recorded as unresolved).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import huggingface_hub.constants as hf_constants
import pytest
import yaml

from llmplat_dagster.catalog import default_catalog_path
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import asset_key, pin_key, variant_job_name
from llmplat_dagster.settings import Settings
from tests.integration.conftest import HUB_TOKEN
from tests.integration.hub_standin import HubStandin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AWQ_REPO, FP16_REPO = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "mistralai/Mistral-7B-Instruct-v0.2"
FP16_SHA = "63a8b081895390a26e140280378bc85ec8bce07a"
OLD, NEW = "1" * 40, "2" * 40
AWQ = "mistral-7b-awq"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(autouse=True)
def _hub_client(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)


@pytest.fixture
def hub(hub: HubStandin) -> HubStandin:
    hub.set(AWQ_REPO, sha=OLD)
    hub.set(FP16_REPO, sha=FP16_SHA)
    return hub


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def rollout(defs: dg.Definitions, instance, variant: str = AWQ, run_config: dict | None = None) -> dict:
    """A plain rollout of one variant (manifests -> dry-run apply), as the per-variant job runs it; its metadata."""
    job = defs.resolve_job_def(variant_job_name("rollout", variant))
    selection = [asset_key(variant, "manifests"), asset_key(variant, "deployment")]
    result = job.execute_in_process(
        asset_selection=selection, instance=instance, run_config={**QUIET, **(run_config or {})}
    )
    assert result.success
    mats = {m.asset_key.path[-1]: m.materialization.metadata for m in result.get_asset_materialization_events()}
    objects = result.output_for_node(f"llm_baseline__{variant.replace('-', '_')}__manifests")
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    return {
        "rendered": args[args.index("--revision") + 1],
        "provenance": mats["deployment"]["model_revision"].value,
        "source": mats["manifests"]["revision_source"].value,
    }


def pin(defs: dg.Definitions, instance, **config) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("pin_revision_job")
    return job.execute_in_process(
        run_config={**QUIET, "ops": {"pin_revision": {"config": config}}}, instance=instance, raise_on_error=False
    )


def test_the_sensors_pin_stays_for_the_next_plain_rollout_and_a_person_can_revert_it(tmp_path: Path, hub, instance):
    defs = build_definitions(Settings(home=tmp_path, hf_endpoint=hub.endpoint, hf_timeout_s=2))
    sensor = defs.resolve_sensor_def("model_revision_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    hub.set(AWQ_REPO, sha=NEW)
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
    assert len(tick.run_requests) == 1
    for event in tick.asset_events:  # what the sensor daemon does with a tick's asset events
        instance.report_runless_asset_event(event)
    pinned = instance.get_latest_materialization_event(pin_key(AWQ)).asset_materialization
    assert pinned.metadata["revision"].value == NEW and pinned.metadata["pinned_by"].value == "model_revision_sensor"
    assert f"{AWQ_REPO} moved {OLD[:12]} -> {NEW[:12]}" in pinned.metadata["reason"].value

    hub.set(AWQ_REPO, sha="3" * 40)  # upstream moves again, but nobody re-rolled: the pin holds
    plain = rollout(defs, instance)  # no run config: what a person launching rollout_job gets
    assert plain["rendered"] == NEW and plain["provenance"] == NEW
    assert plain["source"].startswith("pin by model_revision_sensor")

    assert pin(defs, instance, variant=AWQ, revision=OLD, reason="NEW regressed on the canary").success
    assert rollout(defs, instance)["rendered"] == OLD  # reverted to the earlier commit
    assert pin(defs, instance, variant=AWQ).success  # unpin: follow the catalog's `main` again
    after = rollout(defs, instance)
    assert after == {"rendered": "3" * 40, "provenance": "3" * 40, "source": "catalog"}  # main, resolved now
    history = instance.fetch_materializations(pin_key(AWQ), limit=10).records
    assert [r.asset_materialization.metadata["revision"].value for r in history] == ["(catalog)", OLD, NEW]


def test_a_run_config_revision_is_a_one_off_over_the_pin(tmp_path: Path, hub, instance):
    defs = build_definitions(Settings(home=tmp_path, hf_endpoint=hub.endpoint, hf_timeout_s=2))
    assert pin(defs, instance, variant=AWQ, revision=NEW).success
    once = rollout(
        defs, instance, run_config={"ops": {"llm_baseline__mistral_7b_awq__manifests": {"config": {"revision": OLD}}}}
    )
    assert once["rendered"] == OLD and once["source"] == "run config"
    assert rollout(defs, instance)["rendered"] == NEW


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"variant": AWQ, "revision": "main"},
            "variant 'mistral-7b-awq': field 'revision': 'main' is not a 40-character",
        ),
        ({"variant": "mistral-7b-gptq", "revision": NEW}, "variant 'mistral-7b-gptq' is not in the catalog"),
    ],
)
def test_a_bad_pin_fails_naming_what_is_wrong_and_records_nothing(tmp_path: Path, instance, config, message):
    defs = build_definitions(Settings(home=tmp_path))
    result = pin(defs, instance, **config)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert message in failure.step_failure_data.error.message
    assert instance.get_latest_materialization_event(pin_key(AWQ)) is None


def test_provenance_records_the_commit_main_pointed_at_when_rolled_out(tmp_path: Path, hub, instance):
    online = build_definitions(Settings(home=tmp_path / "on", hf_endpoint=hub.endpoint, hf_timeout_s=2))
    assert rollout(online, instance) == {"rendered": OLD, "provenance": OLD, "source": "catalog"}
    assert rollout(online, instance, "mistral-7b-fp16")["provenance"] == FP16_SHA  # pinned: no look-up needed

    offline = build_definitions(Settings(home=tmp_path / "off"))  # the local default: no Hub
    assert rollout(offline, instance) == {"rendered": "main", "provenance": "unresolved (main)", "source": "catalog"}


def test_an_unreachable_hub_is_retried_then_recorded_as_unresolved(tmp_path: Path, hub, instance):
    hub.set(AWQ_REPO, status=503)
    defs = build_definitions(Settings(home=tmp_path, hf_endpoint=hub.endpoint, hf_timeout_s=2))
    hub.requests.clear()
    job = defs.resolve_job_def(variant_job_name("rollout", AWQ))
    result = job.execute_in_process(asset_selection=[asset_key(AWQ, "manifests")], instance=instance, run_config=QUIET)
    meta = next(iter(result.get_asset_materialization_events())).materialization.metadata
    assert meta["model_revision"].value == "unresolved (main)"
    assert meta["unresolved"].value == [f"{AWQ_REPO}@main: error: HTTP 503 (server: forced status 503)"]
    assert len([r for r in hub.requests if r.repo_id == AWQ_REPO]) == 3  # retried with backoff, then reported


def test_a_pin_the_catalog_has_outgrown_fails_the_rollout_saying_what_to_do(tmp_path: Path, instance):
    data = yaml.safe_load(default_catalog_path().read_text())
    lora = next(v for v in data["variants"] if v["name"] == "mistral-7b-lora")
    lora["lora"]["adapters"] = [{"name": "support-v1", "repo": "acme/support", "revision": OLD}]
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(data))
    before = build_definitions(Settings(home=tmp_path, catalog_path=tmp_path / "catalog.yaml"))
    assert pin(before, instance, variant="mistral-7b-lora", adapter_revisions={"support-v1": NEW}).success

    after = build_definitions(Settings(home=tmp_path))  # the adapter has since left the catalog
    job = after.resolve_job_def(variant_job_name("rollout", "mistral-7b-lora"))
    result = job.execute_in_process(
        asset_selection=[asset_key("mistral-7b-lora", "manifests")], instance=instance, raise_on_error=False
    )
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "mistral-7b-lora: the pin by pin_revision_job" in message
    assert "has no LoRA adapter(s) ['support-v1']" in message and "Re-pin or unpin the variant" in message
