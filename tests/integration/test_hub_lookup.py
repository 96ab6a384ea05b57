"""Revision look-ups through the real huggingface_hub client against a local Hub stand-in on loopback."""

from __future__ import annotations

import logging
import time

import pytest
from huggingface_hub import constants as hf_constants

from llmplat_dagster.automation.hub import lookup_revisions, tracked_repos
from llmplat_dagster.automation.revisions import cursor_key, plan_revision_tick
from llmplat_dagster.catalog import load_catalog
from tests.integration.conftest import HUB_TOKEN
from tests.integration.hub_standin import HubStandin, start_hub_standin

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = HUB_TOKEN
AWQ = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ"
FP16 = "mistralai/Mistral-7B-Instruct-v0.2"
ADAPTER = "UnderstandLing/Mistral-7B-Instruct-v0.2-de"  # the catalog's LoRA adapter, tracked too
OLD, NEW = "1" * 40, "2" * 40


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Online (for loopback), but without huggingface_hub's user-agent telemetry, which would fetch
    https://huggingface.co/api/agent-harnesses once per process whatever endpoint the client targets."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)


def _one(hub: HubStandin, repo: str = "org/model", ref: str = "main", *, token: str | None = TOKEN, **kw):
    return lookup_revisions([(repo, ref)], endpoint=hub.endpoint, token=token, **kw)[(repo, ref)]


@pytest.mark.parametrize(
    ("setup", "token", "kind", "status", "fragment"),
    [
        pytest.param({"sha": NEW}, TOKEN, "ok", 200, None, id="ok"),
        pytest.param({"sha": NEW, "gated": True}, None, "gated", 401, "gated repo; no token was given", id="gated"),
        pytest.param({"sha": NEW}, "hf_WrongToken000000000000", "unauthorized", 401, "token was rejected", id="401"),
        pytest.param({"sha": NEW, "status": 404}, TOKEN, "not_found", 404, "not found", id="404"),
        pytest.param(None, TOKEN, "not_found", 404, "not found", id="unknown-repo"),
        pytest.param(
            {"sha": NEW, "status": 429, "retry_after": "30"}, TOKEN, "rate_limited", 429, "retry after 30 s", id="429"
        ),
        pytest.param({"sha": NEW, "status": 503}, TOKEN, "error", 503, "HTTP 503", id="503"),
    ],
)
def test_each_answer_is_classified(hub, setup, token, kind, status, fragment):
    if setup is not None:
        hub.set("org/model", **setup)
    result = _one(hub, token=token)
    assert (result.kind, result.status) == (kind, status)
    assert (result.sha == NEW) is (kind == "ok")
    if fragment:
        assert fragment in result.error and "\n" not in result.error


def test_rate_limit_keeps_the_retry_after(hub):
    hub.set("org/model", NEW, status=429, retry_after="12")
    assert _one(hub).retry_after_s == 12.0


def test_unknown_revision_is_not_found(hub):
    hub.set("org/model", NEW, ref="main")
    assert _one(hub, ref="v2.0").kind == "not_found"


def test_a_slow_hub_is_a_timeout_not_a_hang(hub):
    hub.set("org/model", NEW, delay_s=1.0)
    started = time.monotonic()
    result = _one(hub, timeout_s=0.2)
    assert result.kind == "timeout" and "0.2 s" in result.error
    assert time.monotonic() - started < 0.9


def test_nobody_listening_is_a_network_error():
    with start_hub_standin() as gone:
        endpoint = gone.endpoint
    result = lookup_revisions([("org/model", "main")], endpoint=endpoint, token=TOKEN, timeout_s=2)
    assert result[("org/model", "main")].kind == "network"
    assert endpoint in result[("org/model", "main")].error


def test_the_token_is_sent_but_never_in_a_message_a_repr_or_a_log(hub, caplog):
    hub.set("org/ok", NEW)
    hub.set("org/limited", NEW, status=429)
    hub.set("org/gated", NEW, gated=True)
    keys = [("org/ok", "main"), ("org/limited", "main"), ("org/gated", "main"), ("org/none", "main")]
    hf_logger = logging.getLogger("huggingface_hub")
    previous = hf_logger.level, hf_logger.propagate
    hf_logger.setLevel(logging.DEBUG)
    hf_logger.propagate = True
    try:
        with caplog.at_level(logging.DEBUG):
            results = lookup_revisions(keys, endpoint=hub.endpoint, token=TOKEN)
            wrong = lookup_revisions(keys, endpoint=hub.endpoint, token=TOKEN[:-1] + "X")
    finally:
        hf_logger.setLevel(previous[0])
        hf_logger.propagate = previous[1]
    assert {r.authorization for r in hub.requests[:4]} == {f"Bearer {TOKEN}"}
    assert [r.kind for r in results.values()] == ["ok", "rate_limited", "ok", "not_found"]
    assert {r.kind for r in wrong.values()} == {"unauthorized"}
    for result in [*results.values(), *wrong.values()]:
        assert TOKEN not in repr(result) and TOKEN[:-1] not in repr(result)
    assert TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text


def test_a_server_quoting_the_token_back_is_redacted(hub):
    hub.set("org/echo", NEW, status=500, echo_authorization=True)
    result = _one(hub, "org/echo")
    assert result.kind == "error" and "Authorization: ***" in result.error
    assert TOKEN not in repr(result)


def test_no_token_sends_no_authorization_even_with_a_saved_login(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SavedOnThisMachine0000000000")
    hub.set("org/model", NEW)
    assert _one(hub, token=None).kind == "ok"
    assert hub.requests[-1].authorization is None


def test_endpoint_none_follows_huggingface_hub_configuration(hub, monkeypatch):
    monkeypatch.setattr(hf_constants, "ENDPOINT", hub.endpoint)
    hub.set("org/model", NEW)
    assert lookup_revisions([("org/model", "main")], endpoint=None, token=None)[("org/model", "main")].sha == NEW


def test_four_lookups_take_about_as_long_as_one(hub):
    delay = 0.3
    repos = [(f"org/model-{i}", "main") for i in range(4)]
    for repo, _ in repos:
        hub.set(repo, NEW, delay_s=delay)
    lookup_revisions(repos[:1], endpoint=hub.endpoint, token=TOKEN)  # warm the client's connection pool

    started = time.monotonic()
    assert lookup_revisions(repos[:1], endpoint=hub.endpoint, token=TOKEN)[repos[0]].ok
    one = time.monotonic() - started
    hub.requests.clear()
    started = time.monotonic()
    results = lookup_revisions(repos, endpoint=hub.endpoint, token=TOKEN)
    four = time.monotonic() - started

    assert all(r.ok for r in results.values())
    assert one >= delay and four >= delay
    assert four < 1.5 * one, f"four look-ups took {four:.3f} s, one took {one:.3f} s: not concurrent"
    arrivals = [r.at for r in hub.requests]
    assert max(arrivals) - min(arrivals) < delay  # all four were in flight together


def _catalog_results(hub: HubStandin, awq_sha: str) -> dict:
    hub.set(AWQ, awq_sha)
    hub.set(FP16, "f" * 40)
    hub.set(ADAPTER, "a" * 40)
    return lookup_revisions(tracked_repos(load_catalog()), endpoint=hub.endpoint, token=TOKEN)


CURSOR = {cursor_key(AWQ, "main"): OLD, cursor_key(FP16, "main"): "f" * 40, cursor_key(ADAPTER, "main"): "a" * 40}


def test_a_new_awq_sha_re_rolls_the_three_variants_built_on_it(hub):
    cursor = dict(CURSOR)
    plan = plan_revision_tick(load_catalog(), cursor, _catalog_results(hub, NEW))
    assert plan.variants == ["mistral-7b-awq", "mistral-7b-judge", "mistral-7b-lora"]
    assert plan.model_revisions == dict.fromkeys(plan.variants, NEW)
    assert plan.new_cursor[cursor_key(AWQ, "main")] == NEW and not plan.skipped


def test_the_same_sha_requests_nothing(hub):
    cursor = dict(CURSOR)
    plan = plan_revision_tick(load_catalog(), cursor, _catalog_results(hub, OLD))
    assert plan.changes == {} and plan.new_cursor == cursor


@pytest.mark.parametrize("status", [401, 404, 429, 503])
def test_an_error_keeps_the_cursor_and_names_the_reason(hub, status):
    hub.set(AWQ, NEW, status=status, retry_after="5")
    hub.set(FP16, "f" * 40)
    hub.set(ADAPTER, "a" * 40)
    cursor = dict(CURSOR)
    results = lookup_revisions(tracked_repos(load_catalog()), endpoint=hub.endpoint, token=TOKEN)
    plan = plan_revision_tick(load_catalog(), cursor, results)
    assert plan.changes == {} and plan.new_cursor == cursor and not plan.all_failed
    assert len(plan.skipped) == 1 and plan.skipped[0].startswith(f"{AWQ}@main: ")
