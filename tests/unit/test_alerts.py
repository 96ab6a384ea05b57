"""Failure alerts: concise text, secrets scrubbed, posting retried where it helps and never raising."""

from __future__ import annotations

import json

import httpx
import pytest

from llmplat_dagster.automation.alerts import AlertOutcome, format_alert, post_alert, redact

# Built at runtime so that no token-shaped literal sits in the repository for secret scanners to flag.
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
AKIA = "AKIA" + "IOSFODNN7EXAMPLE"
WEBHOOK = "https://hooks.slack.test/services/T000/B000/SECRETPATH"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"download failed with token {HF}", HF),
        (f"HF_TOKEN={HF} vllm serve", HF),
        (f"aws key {AKIA} was rejected", AKIA),
        ("temporary key ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        ("curl -H 'Authorization: Bearer sk-live-1234567890abcdef'", "sk-live-1234567890abcdef"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("GET /x?api_key=abcdef123456&x=1", "abcdef123456"),
        ('password: "hunter2hunter2"', "hunter2hunter2"),
    ],
)
def test_redact_removes_secret_shapes(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "***" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "readiness probe failed: connection refused on :8000",
        "the token was rejected by the Hub",
        "Basic authentication is not configured",
        "bearer tokens are not used here",
        "sha 63a8b081895390a26e140280378bc85ec8bce07a not found",
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_redact_removes_literal_secrets_given():
    assert redact("the password is opensesame", ["opensesame"]) == "the password is ***"


def test_format_alert_is_one_line_with_job_variant_step_and_run():
    text = format_alert("rollout_job", "0123456789abcdef", "readiness", "mistral-7b-awq", "pod crashlooped")
    assert text == ":x: rollout_job failed variant mistral-7b-awq at step readiness (run 01234567): pod crashlooped"


def test_format_alert_keeps_the_first_line_of_a_trace_and_adds_the_link():
    reason = "\n\n  RuntimeError: vLLM exited 1\nTraceback (most recent call last):\n  File ..."
    text = format_alert("canary_job", "run-1", None, None, reason, url="http://dagster/runs/run-1")
    assert text == ":x: canary_job failed (run run-1): RuntimeError: vLLM exited 1\nhttp://dagster/runs/run-1"
    assert len(text.splitlines()) == 2


def test_format_alert_redacts_and_truncates():
    text = format_alert("j", "r", "s", "v", f"HF_TOKEN={HF} " + "x" * 1000, url=f"http://d/runs?token={HF}")
    assert HF not in text and len(text.splitlines()[0]) < 400


def test_format_alert_without_reason():
    assert format_alert("j", "r", None, None, "  \n").endswith("no reason given")


class Webhook:
    """A scripted webhook: each entry a status code or an exception to raise."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        return httpx.Response(status, headers=headers, text="ok" if status < 300 else "nope")

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def _post(hook: Webhook, **kw) -> tuple[AlertOutcome, list[float]]:
    sleeps: list[float] = []
    outcome = post_alert(WEBHOOK, "hello", client=hook.client(), sleep=sleeps.append, **kw)
    return outcome, sleeps


def test_post_sends_slack_compatible_json():
    hook = Webhook(200)
    outcome, sleeps = _post(hook)
    assert outcome == AlertOutcome(True, 200, None, 1) and sleeps == []
    assert json.loads(hook.requests[0].content) == {"text": "hello"}
    assert hook.requests[0].headers["content-type"] == "application/json"


def test_post_redacts_the_payload():
    hook = Webhook(200)
    post_alert(WEBHOOK, f"token {HF}", client=hook.client(), sleep=lambda s: None)
    assert HF not in hook.requests[0].content.decode()


@pytest.mark.parametrize(
    ("script", "sent", "status", "attempts", "sleeps"),
    [
        pytest.param([503, 200], True, 200, 2, [1.0], id="5xx-then-ok"),
        pytest.param([httpx.ConnectError("refused"), 502, 200], True, 200, 3, [1.0, 2.0], id="connect-5xx-ok"),
        pytest.param([(429, {"Retry-After": "7"}), 200], True, 200, 2, [7.0], id="429-retry-after"),
        pytest.param([(429, {"Retry-After": "9999"}), 200], True, 200, 2, [60.0], id="429-capped"),
        pytest.param([(429, {"Retry-After": "soon"}), 200], True, 200, 2, [1.0], id="429-bad-header"),
        pytest.param([httpx.ReadTimeout("slow"), 200], True, 200, 2, [1.0], id="timeout-then-ok"),
        pytest.param([500, 500, 500, 500], False, 500, 4, [1.0, 2.0, 4.0], id="gives-up"),
        pytest.param([400], False, 400, 1, [], id="4xx-final"),
        pytest.param([404], False, 404, 1, [], id="404-final"),
    ],
)
def test_post_retries_what_can_succeed(script, sent, status, attempts, sleeps):
    outcome, slept = _post(Webhook(*script))
    assert (outcome.sent, outcome.status, outcome.attempts) == (sent, status, attempts)
    assert slept == sleeps
    assert (outcome.error is None) is sent


def test_post_gives_up_on_connect_errors_with_a_reason_and_no_url():
    outcome, slept = _post(Webhook(*[httpx.ConnectError("refused")] * 3), retries=2, backoff_s=0.5)
    assert not outcome.sent and outcome.status is None and slept == [0.5, 1.0]
    assert "ConnectError" in outcome.error and "3 attempts" in outcome.error
    assert "SECRETPATH" not in repr(outcome)


def test_post_never_raises_even_on_unexpected_errors():
    outcome, _ = _post(Webhook(ValueError("boom")))
    assert not outcome.sent and "ValueError" in outcome.error


def test_post_never_raises_on_a_malformed_url():
    outcome = post_alert("not a url", "x", sleep=lambda s: None, retries=1)
    assert not outcome.sent and outcome.error
