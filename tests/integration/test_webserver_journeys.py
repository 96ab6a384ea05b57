"""The UI's path: runs launched through the real webserver's GraphQL API, queued and run by the real daemon.

One webserver + daemon for the module (tests/integration/webserver.py), on a throwaway DAGSTER_HOME holding the
shipped dagster.yaml, against a simulator fleet on loopback. Launches are what the launchpad sends: a job, run
config, tags (the partition), an op selection or an asset selection.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.defs.keys import asset_key, variant_job_name
from tests.integration.webserver import Ui, gated_fleet, start_ui

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CATALOG = load_catalog()
AWQ, FP16 = "mistral-7b-awq", "mistral-7b-fp16"
NIGHT = "2026-11-28"
# The launchpad's executor choice. In-process: one process per run instead of one per step, which on a loaded
# 2-core CI machine is minutes; the queue, the pools, the retries and the steps are the same.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
PARTITION = {"dagster/partition": NIGHT}


@pytest.fixture(scope="module")
def ui(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    home = tmp_path_factory.mktemp("dagster_home")
    with pytest.MonkeyPatch.context() as mp, gated_fleet(CATALOG) as fleet, start_ui(repo_root, home, fleet) as ui:
        mp.setenv("DAGSTER_HOME", str(home))  # the shipped dagster.yaml names its storage by DAGSTER_HOME
        yield ui


@pytest.fixture(autouse=True)
def _open_gates(ui: Ui):
    for sim in ui.fleet.values():
        sim.gate.reset()
    yield
    for sim in ui.fleet.values():
        sim.gate.release.set()


def materialized(ui: Ui, run_id: str) -> set[str]:
    with ui.instance() as instance:
        return {
            r.dagster_event.asset_key.to_user_string()
            for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }


def run_record(ui: Ui, run_id: str):
    with ui.instance() as instance:
        return instance.get_run_record_by_id(run_id)


def awq_keys(*stages: str) -> set[str]:
    return {asset_key(AWQ, s).to_user_string() for s in stages}


# -- picking one variant ---------------------------------------------------------------------------------------


def test_rollout_of_one_variant_through_its_job(ui: Ui):
    run_id = ui.launch(variant_job_name("rollout", AWQ), run_config=IN_PROCESS)
    assert ui.wait(run_id) == "SUCCESS", ui.failure(run_id)
    assert materialized(ui, run_id) == awq_keys("manifests", "deployment", "readiness")


def test_rollout_job_with_one_variants_steps_picked_in_the_launchpad(ui: Ui):
    """The op selection the launchpad sends; deployment used to get [[objects], [objects]] and crash."""
    run_id = ui.launch("rollout_job", op_selection=["*mistral_7b_awq_golden_checks"], run_config=IN_PROCESS)
    assert ui.wait(run_id) == "SUCCESS", ui.failure(run_id)
    # everything upstream of the AWQ checks: its own steps and the shared manifests every deployment depends on
    shared = dg.AssetKey(["llm_baseline", "shared", "manifests"]).to_user_string()
    assert materialized(ui, run_id) == awq_keys("manifests", "deployment", "readiness") | {shared}


def test_rollout_job_with_one_variants_assets_selected(ui: Ui):
    """Materializing one variant's group from the asset graph."""
    keys = [asset_key(AWQ, s) for s in ("manifests", "deployment", "readiness")]
    run_id = ui.launch("rollout_job", asset_selection=keys, run_config=IN_PROCESS)
    assert ui.wait(run_id) == "SUCCESS", ui.failure(run_id)
    assert materialized(ui, run_id) == awq_keys("manifests", "deployment", "readiness")


def test_a_missing_endpoint_fails_naming_what_to_set(ui: Ui):
    no_endpoints = {**IN_PROCESS, "resources": {"endpoints": {"config": {"mode": "url-map", "urls": {}}}}}
    run_id = ui.launch(variant_job_name("rollout", AWQ), run_config=no_endpoints)
    assert ui.wait(run_id) == "FAILURE"
    message = ui.failure(run_id)
    assert "no endpoint for variant 'mistral-7b-awq': LLMPLAT_ENDPOINTS does not name it" in message
    assert "llmplat sim fleet --endpoints-file" in message and "KeyError" not in message


def test_canary_of_one_variant_for_one_night(ui: Ui):
    run_id = ui.launch(variant_job_name("canary", FP16), run_config=IN_PROCESS, tags=PARTITION)
    assert ui.wait(run_id) == "SUCCESS", ui.failure(run_id)
    assert materialized(ui, run_id) == {asset_key(FP16, "canary").to_user_string()}
    assert ui.fleet[FP16].gate.generations == 33  # the canary promptset, once


def test_baseline_job_materializes_the_whole_graph(ui: Ui):
    run_id = ui.launch("baseline_job", run_config=IN_PROCESS, tags=PARTITION)
    assert ui.wait(run_id, timeout_s=420) == "SUCCESS", ui.failure(run_id)
    done = materialized(ui, run_id)
    assert {
        "llm_baseline/quant_quality_comparison",
        "llm_baseline/promotion_record",
        "llm_baseline/quality_trend",
    } <= done
    assert {asset_key(v, "canary").to_user_string() for v in CATALOG.names} <= done


def test_nightly_comparison_job_for_one_partition(ui: Ui):
    run_id = ui.launch("nightly_comparison_job", run_config=IN_PROCESS, tags=PARTITION)
    assert ui.wait(run_id, timeout_s=420) == "SUCCESS", ui.failure(run_id)
    done = materialized(ui, run_id)
    assert "llm_baseline/lora_ab_experiment" in done and "llm_baseline/quant_sensitivity_responses" in done
    assert not any(key.endswith(("/deployment", "/readiness")) for key in done)  # it never re-rolls servers
    with ui.instance() as instance:
        record = instance.get_latest_materialization_event(dg.AssetKey(["llm_baseline", "promotion_record"]))
    assert record.asset_materialization.partition == NIGHT


# -- one rollout per variant at a time -------------------------------------------------------------------------


def test_a_second_rollout_of_the_same_variant_waits_and_another_variant_does_not(ui: Ui):
    gate = ui.fleet[AWQ].gate
    gate.loading.set()  # the AWQ server is "loading its model": the first rollout waits at readiness
    first = ui.launch(variant_job_name("rollout", AWQ), run_config=IN_PROCESS)
    ui.wait(first, statuses={"STARTED"})
    second = ui.launch(variant_job_name("rollout", AWQ), run_config=IN_PROCESS)
    other = ui.launch(variant_job_name("rollout", FP16), run_config=IN_PROCESS)

    assert ui.wait(other) == "SUCCESS", ui.failure(other)  # a different variant does not wait
    assert ui.status(first) == "STARTED"
    assert ui.status(second) == "QUEUED"  # launched before `other`, still queued after it finished

    gate.loading.clear()  # the model has loaded
    assert ui.wait(first) == "SUCCESS", ui.failure(first)
    assert ui.wait(second) == "SUCCESS", ui.failure(second)
    assert run_record(ui, second).start_time >= run_record(ui, first).end_time  # strictly one after the other


# -- a killed run is retried and resumes from its checkpoint -----------------------------------------------------


def test_a_killed_canary_run_is_retried_and_sends_only_the_prompts_its_checkpoint_lacks(ui: Ui):
    gate = ui.fleet[AWQ].gate
    gate.hold_after = 10  # ten prompts answered, then the server stalls with requests in flight
    run_id = ui.launch(variant_job_name("canary", AWQ), run_config=IN_PROCESS, tags={"dagster/partition": "2026-11-29"})
    checkpoint = _wait_for_checkpoint(ui, AWQ, rows=10)
    pid = _run_worker_pid(ui, run_id)
    os.kill(pid, signal.SIGKILL)  # the run pod dies (spot reclaim, OOM): every process of the run is gone
    assert ui.wait(run_id) == "FAILURE"
    sent_before = gate.generations
    gate.hold_after = None
    gate.release.set()

    retry = _wait_for_retry(ui, run_id)
    assert ui.wait(retry) == "SUCCESS", ui.failure(retry)
    with ui.instance() as instance:
        mat = instance.get_latest_materialization_event(asset_key(AWQ, "canary")).asset_materialization
    assert mat.metadata["resumed_rows"].value == 10
    assert mat.metadata["requests"].value == 33 and mat.metadata["error rate (%)"].value == 0
    assert gate.generations - sent_before == 33 - 10  # only the prompts the checkpoint lacked were sent again
    assert not checkpoint.exists()


def _wait_for_checkpoint(ui: Ui, variant: str, rows: int, timeout_s: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout_s
    folder = ui.home / "llmplat" / "checkpoints" / variant
    while time.monotonic() < deadline:
        for path in folder.glob("canary-*.jsonl") if folder.is_dir() else []:
            if sum('"status": "ok"' in line for line in path.read_text().splitlines()) >= rows:
                return path
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint with {rows} rows in {folder}")


def _run_worker_pid(ui: Ui, run_id: str) -> int:
    with ui.instance() as instance:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if record.message.startswith("Started process for run (pid: "):
                return int(record.message.split("pid: ")[1].split(")")[0])
    raise AssertionError(f"run {run_id} logged no run worker pid")


def _wait_for_retry(ui: Ui, run_id: str, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with ui.instance() as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        if runs:
            return runs[0].run_id
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} was not retried within {timeout_s:.0f}s")
