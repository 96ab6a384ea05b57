"""The golden checks and readiness against a broken server: a failed check that says what came back, never a
raised exception; a wrong served model name fails in seconds, not after the 900 s rollout deadline."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import asset_key
from llmplat_dagster.defs.rollout import GOLDEN_CHECKS
from llmplat_dagster.serving.probes import ProbeError, chat_probe, metrics_probe, models_probe, wait_for_model
from llmplat_dagster.settings import Settings
from tests.faults.broken_server import start_broken_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CATALOG = load_catalog()
VARIANT = CATALOG.variant("mistral-7b-awq")
BROKEN = ["html", "json-list", "data-not-list", "ids-not-strings", "gzip-bad", "deep", "reset"]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture(scope="module")
def server():
    with start_broken_server() as s:
        s.served = [VARIANT.served_name]
        yield s


@pytest.mark.parametrize("mode", BROKEN)
def test_each_probe_returns_a_failed_result_naming_the_answer(server, mode):
    server.probe_mode = mode
    models = models_probe(server.base_url, VARIANT.served_name)
    chat = chat_probe(server.base_url, VARIANT.served_name)
    assert not models.passed and models.description and "/v1/models" in models.description
    assert not chat.passed and chat.description and "/v1/chat/completions" in chat.description
    if mode in ("html", "json-list", "gzip-bad", "reset"):
        report, error = metrics_probe(server.base_url, ["vllm:num_requests_waiting"])
        assert report is None and "/metrics" in error


def golden_defs(url: str, home) -> dg.Definitions:
    """The project's own definitions (local environment) pointed at the broken server, plus a checks-only job."""
    job = dg.define_asset_job(
        "golden_job", selection=dg.AssetSelection.checks_for_assets(asset_key(VARIANT.name, "readiness"))
    )
    settings = Settings(home=home, endpoints={v: url for v in CATALOG.names})
    return dg.Definitions.merge(build_definitions(settings), dg.Definitions(jobs=[job]))


@pytest.mark.parametrize("mode", ["html", "json-list", "deep", "reset"])
def test_golden_checks_record_failed_checks_instead_of_raising(server, mode, tmp_path):
    server.probe_mode = mode
    job = golden_defs(server.base_url, tmp_path).resolve_job_def("golden_job")
    result = job.execute_in_process(run_config=QUIET, raise_on_error=False)
    # The step ends because blocking checks failed (the gate), not because a probe raised.
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(GOLDEN_CHECKS)
    assert not any(e.passed for e in evaluations.values())
    assert all(e.description for e in evaluations.values())  # each says what came back


def test_golden_checks_pass_on_a_healthy_answer(server, tmp_path):
    server.probe_mode = "ok"
    job = golden_defs(server.base_url, tmp_path).resolve_job_def("golden_job")
    result = job.execute_in_process(run_config=QUIET, raise_on_error=False)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    # this server's /metrics lacks vLLM's series: only the metric contract fails
    assert evaluations == {"models_listed": True, "chat_completion": True, "metric_contract": False}


def test_a_wrong_served_name_fails_fast_naming_what_the_server_lists(server):
    server.probe_mode, server.served = "ok", ["mistral-7b-awq-old"]
    try:
        started = time.monotonic()
        with pytest.raises(ProbeError) as raised:
            wait_for_model(server.base_url, "mistral-7b-awq", deadline_s=900, sleep=lambda s: None)
        assert time.monotonic() - started < 60
    finally:
        server.served = [VARIANT.served_name]
    assert "serves ['mistral-7b-awq-old'], not 'mistral-7b-awq' (5 answers in a row)" in str(raised.value)


def test_an_unready_server_is_polled_until_the_deadline():
    """Refused connections (the pod still loading) are not a wrong answer: they are waited out, then reported."""
    now = [0.0]

    def sleep(s):
        now[0] += s

    with pytest.raises(ProbeError, match=r"never served 'm' within 30s: GET /v1/models: ConnectError"):
        wait_for_model("http://127.0.0.1:9", "m", deadline_s=30, sleep=sleep, clock=lambda: now[0])
    assert now[0] >= 30


def test_readiness_fails_fast_on_a_wrong_served_name(server, tmp_path):
    server.probe_mode, server.served = "ok", ["someone-else"]
    defs = build_definitions(Settings(home=tmp_path, endpoints={v: server.base_url for v in CATALOG.names}))
    keys = [asset_key(VARIANT.name, stage) for stage in ("manifests", "deployment", "readiness")]
    try:
        started = time.monotonic()
        result = defs.resolve_job_def("rollout_job").execute_in_process(
            asset_selection=keys, raise_on_error=False, run_config=QUIET
        )
        took = time.monotonic() - started
    finally:
        server.served = [VARIANT.served_name]
    assert not result.success and took < 120
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "serves ['someone-else'], not 'mistral-7b-awq'" in failure.step_failure_data.error.message
