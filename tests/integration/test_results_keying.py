"""Results keyed so nothing is mislabelled or overwritten, through real Dagster runs against the simulator:
a checkpoint belongs to one rollout and one purpose, it outlives a failed results write, and a sensor's run
writes beside the night's results instead of over them."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import dagster as dg
import huggingface_hub.constants as hf_constants
import pandas as pd
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.io import ParquetIOManager
from llmplat_dagster.defs.keys import COMPARISON, PURPOSE_TAG, TREND, TREND_POINTS, asset_key
from llmplat_dagster.defs.resources import ServingResource
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.settings import Settings
from llmplat_dagster.sim.testing import start_sim
from tests.integration.conftest import HUB_TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CATALOG = load_catalog()
AWQ = CATALOG.variant("mistral-7b-awq")
CANARY = asset_key(AWQ.name, "canary")
NIGHT = "2026-11-28"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
PROMPTS = 33


@contextlib.contextmanager
def awq_sim(**options):
    with start_sim(vllm_args(AWQ), time_scale=0.02, **options) as sim:
        yield sim


def project(tmp_path: Path, url: str, **overrides) -> dg.Definitions:
    serving = ServingResource(checkpoint_dir=str(tmp_path / "ckpt"), concurrency=4)
    settings = Settings(home=tmp_path, endpoints={v: url for v in CATALOG.names})
    return build_definitions(settings, overrides={"serving": serving, **overrides})


def run(defs: dg.Definitions, keys, instance, **kwargs) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("baseline_job")
    return job.execute_in_process(
        asset_selection=keys, run_config=kwargs.pop("run_config", QUIET), raise_on_error=False, instance=instance,
        **kwargs,
    )  # fmt: skip


def canary_meta(result: dg.ExecuteInProcessResult) -> dict:
    event = next(m for m in result.get_asset_materialization_events() if m.asset_key == CANARY)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def checkpoint_lines(tmp_path: Path) -> list[dict]:
    files = list((tmp_path / "ckpt" / AWQ.name).glob("canary-*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def results(tmp_path: Path, *parts: str) -> Path:
    return tmp_path.joinpath("llmplat", "results", "llm_baseline", AWQ.name, "canary", *parts)


def test_a_failed_results_write_keeps_the_checkpoint_and_the_rerun_sends_nothing_again(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    with dg.instance_for_test() as instance, awq_sim() as sim:
        broken_io = ParquetIOManager(base_uri=str(blocker / "results"))
        first = run(project(tmp_path, sim.base_url, parquet_io_manager=broken_io), [CANARY], instance,
                    partition_key=NIGHT)  # fmt: skip
        assert not first.success
        assert sum(r["status"] == "ok" for r in checkpoint_lines(tmp_path)) == PROMPTS  # nothing lost
        sent = len(sim.state.engine.timings)

        second = run(project(tmp_path, sim.base_url), [CANARY], instance, partition_key=NIGHT)
        assert second.success
        assert len(sim.state.engine.timings) == sent  # every row came from the checkpoint
    assert canary_meta(second)["resumed_rows"] == PROMPTS
    assert len(pd.read_parquet(results(tmp_path, f"{NIGHT}.parquet"))) == PROMPTS
    assert checkpoint_lines(tmp_path) == []  # cleared once the results were stored


def test_a_rerolled_variant_does_not_resume_the_old_revisions_rows(tmp_path: Path):
    rollout = [asset_key(AWQ.name, s) for s in ("manifests", "deployment")]
    new_sha = "1" * 40
    manifests_op = asset_key(AWQ.name, "manifests").to_python_identifier()
    with dg.instance_for_test() as instance:
        with awq_sim(exit_after=12) as sim:  # the endpoint dies part-way through tonight's canary
            defs = project(tmp_path, sim.base_url)
            assert run(defs, rollout, instance).success
            cut_short = run(defs, [CANARY], instance, partition_key=NIGHT)
        assert not cut_short.success
        old_rows = [r for r in checkpoint_lines(tmp_path) if r["status"] == "ok"]
        assert 0 < len(old_rows) < PROMPTS

        with awq_sim() as sim:  # the variant is re-rolled to a new revision the same day
            defs = project(tmp_path, sim.base_url)
            config = {**QUIET, "ops": {manifests_op: {"config": {"revision": new_sha}}}}
            assert run(defs, rollout, instance, run_config=config).success
            again = run(defs, [CANARY], instance, partition_key=NIGHT)
            served = len(sim.state.engine.timings)
    assert again.success
    assert canary_meta(again)["resumed_rows"] == 0 and served == PROMPTS  # measured afresh
    rows = pd.read_parquet(results(tmp_path, f"{NIGHT}.parquet"))
    assert set(rows["model_revision"]) == {new_sha} and len(rows) == PROMPTS


def test_a_revision_sensor_run_writes_beside_the_nights_results(tmp_path: Path, hub, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    for repo in {v.model_id for v in CATALOG.variants}:
        hub.set(repo, sha="a" * 40)
    with dg.instance_for_test() as instance, awq_sim() as sim:
        defs = project(tmp_path, sim.base_url)
        settings_defs = build_definitions(Settings(home=tmp_path, hf_endpoint=hub.endpoint, hf_timeout_s=1.0))
        sensor = settings_defs.resolve_sensor_def("model_revision_sensor")
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=settings_defs))
        hub.set(AWQ.model_id, sha="b" * 40)
        tick = dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=settings_defs)
        [request] = sensor.evaluate_tick(tick).run_requests
        assert request.tags[PURPOSE_TAG].startswith("revisions-") and request.partition_key == request.partition_key

        nightly = run(defs, [CANARY], instance, partition_key=NIGHT, tags={"llmplat/trigger": "nightly"})
        night_file = results(tmp_path, f"{NIGHT}.parquet")
        before = night_file.read_bytes()
        reroll = run(defs, [CANARY], instance, partition_key=NIGHT, tags=request.tags)
    assert nightly.success and reroll.success
    assert night_file.read_bytes() == before  # the night's results are not replaced
    beside = results(tmp_path, NIGHT, f"{request.tags[PURPOSE_TAG]}.parquet")
    assert len(pd.read_parquet(beside)) == PROMPTS
    assert canary_meta(reroll)["purpose"] == request.tags[PURPOSE_TAG]
    assert canary_meta(nightly)["purpose"] == "nightly"


def test_the_trend_shows_nightly_results_only(tmp_path: Path):
    defs = build_definitions(Settings(home=tmp_path))
    with dg.instance_for_test() as instance:
        for night, purpose, delta in [("2026-11-27", "nightly", -0.01), ("2026-11-28", "nightly", -0.02),
                                      ("2026-11-28", "revisions-0123", -0.9)]:  # fmt: skip
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    COMPARISON,
                    partition=night,
                    metadata={
                        TREND_POINTS: dg.MetadataValue.json(
                            {"mistral-7b-awq": {"quality_delta": delta, "e2e_p95_s": 1.0}}
                        ),
                        "purpose": purpose,
                    },
                )
            )
        result = defs.resolve_job_def("baseline_job").execute_in_process(
            asset_selection=[TREND], instance=instance, run_config=QUIET
        )
    table = next(m for m in result.get_asset_materialization_events()).materialization.metadata["table"].value
    deltas = sorted(r.data["quality_delta"] for r in table.records)
    assert deltas == [-0.02, -0.01]  # both nightly points; the re-roll's -0.9 is not a trend point


def test_a_dead_candidate_fails_the_comparison_naming_it(tmp_path: Path):
    from llmplat_dagster.defs.keys import RESPONSES

    options = {"mistral-7b-awq": {"error_rate": 1.0, "error_status": 500}}
    with contextlib.ExitStack() as stack:
        sims = {
            v.name: stack.enter_context(start_sim(vllm_args(v), time_scale=0.02, **options.get(v.name, {})))
            for v in CATALOG.variants
        }
        settings = Settings(home=tmp_path, endpoints={n: s.base_url for n, s in sims.items()})
        job = build_definitions(settings).resolve_job_def("baseline_job")
        result = job.execute_in_process(
            asset_selection=[RESPONSES, COMPARISON], run_config=QUIET, raise_on_error=False, partition_key=NIGHT
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == COMPARISON.to_python_identifier()
    message = failure.step_failure_data.error.message
    assert "nothing to compare for mistral-7b-awq: 0 of 42 responses ok (first error: HTTP 500" in message
    assert "mistral-7b-lora" not in message and "mistral-7b-fp16" not in message
    assert any(m.asset_key == RESPONSES for m in result.get_asset_materialization_events())  # responses kept
