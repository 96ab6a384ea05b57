"""Rollout-time resolution of branches to commit shas (pure: the Hub look-up is injected)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llmplat_dagster.automation.resolve import refs_to_resolve, resolve
from llmplat_dagster.catalog import load_catalog

CATALOG = load_catalog()
AWQ = CATALOG.variant("mistral-7b-awq")
REPO = ("TheBloke/Mistral-7B-Instruct-v0.2-AWQ", "main")
SHA = "c" * 40


@dataclass
class Result:
    sha: str | None
    error: str | None
    kind: str
    retry_after_s: float | None = None


class Hub:
    """Answers each look-up from a script; records what was asked."""

    def __init__(self, *answers: Result) -> None:
        self.answers, self.asked = list(answers), []

    def __call__(self, refs):
        self.asked.append(list(refs))
        answer = self.answers.pop(0)
        return {ref: answer for ref in refs}


def test_a_branch_resolves_to_the_sha_it_points_at():
    hub = Hub(Result(SHA, None, "ok"))
    resolved = resolve(AWQ, hub)
    assert resolved.revision == SHA and resolved.unresolved == ()
    assert resolved.resolved_refs(AWQ) == {f"{REPO[0]}@main": SHA}
    assert hub.asked == [[REPO]]


def test_a_pinned_sha_is_not_looked_up():
    fp16 = CATALOG.variant("mistral-7b-fp16")
    assert refs_to_resolve(fp16) == []
    hub = Hub()
    assert resolve(fp16, hub).revision == fp16.revision and hub.asked == []


@pytest.mark.parametrize("kind", ["timeout", "network", "rate_limited", "error"])
def test_transient_failures_are_retried_with_backoff(kind: str):
    sleeps: list[float] = []
    hub = Hub(
        Result(None, "boom", kind, retry_after_s=7.0 if kind == "rate_limited" else None), Result(SHA, None, "ok")
    )
    resolved = resolve(AWQ, hub, attempts=3, backoff_s=1.0, sleep=sleeps.append)
    assert resolved.revision == SHA and len(hub.asked) == 2
    assert sleeps == [7.0 if kind == "rate_limited" else 1.0]  # Retry-After is honoured


def test_what_cannot_be_resolved_stays_a_branch_and_says_why():
    sleeps: list[float] = []
    hub = Hub(*[Result(None, "no answer within 10 s", "timeout")] * 3)
    resolved = resolve(AWQ, hub, attempts=3, backoff_s=0.5, sleep=sleeps.append)
    assert resolved.revision == "main"
    assert resolved.unresolved == (f"{REPO[0]}@main: timeout: no answer within 10 s",)
    assert sleeps == [0.5, 1.0] and len(hub.asked) == 3


def test_a_permanent_failure_is_not_retried():
    hub = Hub(Result(None, "HTTP 404: repository or revision not found", "not_found"))
    resolved = resolve(AWQ, hub, sleep=lambda s: pytest.fail("slept"))
    assert resolved.unresolved == (f"{REPO[0]}@main: not_found: HTTP 404: repository or revision not found",)


def test_offline_everything_unpinned_is_reported_unresolved():
    resolved = resolve(AWQ, None, offline_reason="Hub look-ups are off")
    assert resolved.revision == "main" and resolved.unresolved == (f"{REPO[0]}@main: Hub look-ups are off",)


def test_lora_adapters_are_resolved_too():
    catalog = CATALOG.with_overrides()
    data = catalog.model_dump()
    lora = next(v for v in data["variants"] if v["name"] == "mistral-7b-lora")
    lora["lora"]["adapters"] = [{"name": "support-v1", "repo": "acme/support", "revision": "main"}]
    spec = type(catalog).model_validate(data).variant("mistral-7b-lora")
    hub = Hub(Result(SHA, None, "ok"))
    resolved = resolve(spec, hub)
    assert resolved.adapter_revisions == {"support-v1": SHA} and resolved.revision == SHA
    assert sorted(hub.asked[0]) == sorted([REPO, ("acme/support", "main")])
