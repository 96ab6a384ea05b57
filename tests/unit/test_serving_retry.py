"""Retry policy decisions, Retry-After parsing, error-body wording, and the client's retry loop driven
through httpx.MockTransport (no sockets) with an injected sleep, clock and randomness."""

import asyncio
import email.utils
import json

import httpx
import pytest

from llmplat_dagster.retry_after import parse_retry_after
from llmplat_dagster.serving.client import (
    RetryPolicy,
    ServingClient,
    ServingRequest,
    arrival_offsets,
    error_message,
)

POLICY = RetryPolicy(max_attempts=4, backoff_base_s=0.5, backoff_max_s=3.0, jitter=0.2)


@pytest.mark.parametrize(
    ("status", "connect_error", "retry"),
    [(429, False, True), (503, False, True), (None, True, True), (500, False, False), (502, False, False)]
    + [(s, False, False) for s in (400, 401, 403, 404, 409, 413, 422)],
)
def test_which_outcomes_are_retried(status, connect_error, retry):
    delay = POLICY.next_delay(1, status=status, connect_error=connect_error)
    assert (delay is not None) is retry


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.5, 0.5), (2, 0.5, 1.0), (3, 0.5, 2.0), (1, 0.0, 0.4), (1, 1.0, 0.6), (3, 1.0, 2.4)],
)
def test_exponential_backoff_with_jitter(attempt, rand, expected):
    assert POLICY.next_delay(attempt, status=503, rand=rand) == pytest.approx(expected)


def test_backoff_is_capped_and_attempts_are_bounded():
    policy = RetryPolicy(max_attempts=10, backoff_base_s=1.0, backoff_max_s=3.0, jitter=0.0)
    assert policy.next_delay(8, status=503) == pytest.approx(3.0)
    assert POLICY.next_delay(4, status=503) is None  # the 4th attempt was the last


def test_retry_after_is_honoured_and_capped():
    assert POLICY.next_delay(1, status=429, retry_after_s=7.0, rand=0.0) == 7.0
    assert POLICY.next_delay(2, status=503, retry_after_s=0.0, rand=0.9) == 0.0
    assert RetryPolicy(max_retry_after_s=5).next_delay(1, status=429, retry_after_s=100) == 5
    assert POLICY.next_delay(1, status=400, retry_after_s=7.0) is None


def test_parse_retry_after():
    now = 1_700_000_000.0
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-2", now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 12, usegmt=True), now) == pytest.approx(12.0)
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}}',
            "The model `x` does not exist.",
        ),
        (b'{"object": "error", "message": "too long", "code": 400}', "too long"),
        (b'{"error": "overloaded"}', "overloaded"),
        (b"Internal Server Error", "Internal Server Error"),
        (b"", "(empty body)"),
    ],
)
def test_error_message(body, expected):
    assert error_message(body) == expected


def test_arrival_offsets():
    assert arrival_offsets(3, None) is None
    assert arrival_offsets(3, float("inf")) is None
    assert arrival_offsets(4, 2.0, poisson=False) == pytest.approx([0.0, 0.5, 1.0, 1.5])
    poisson = arrival_offsets(2000, 10.0, seed=1)
    assert poisson == arrival_offsets(2000, 10.0, seed=1)
    assert poisson[-1] / 1999 == pytest.approx(0.1, rel=0.1)
    with pytest.raises(ValueError):
        arrival_offsets(3, 0.0)


# --- the client's loop, over an in-memory transport -------------------------------------------------

SSE_OK = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)


def run_client(responses, policy=POLICY, request=None, **client_kwargs):
    """Serve `responses` (callables or Responses) in order; return (row, seen requests, sleeps)."""
    seen, sleeps = [], []
    queue = list(responses)

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        item = queue.pop(0)
        return item(req) if callable(item) else item

    async def fake_sleep(s):
        sleeps.append(s)

    async def go():
        async with ServingClient(
            "http://sim",
            "m",
            variant="awq",
            transport=httpx.MockTransport(handler),
            retry=policy,
            sleep=fake_sleep,
            rand=lambda: 0.5,
            **client_kwargs,
        ) as client:
            return await client.send(request or ServingRequest.chat("p1", "hello", max_tokens=8))

    return asyncio.run(go()), seen, sleeps


def ok():
    return httpx.Response(200, content=SSE_OK, headers={"content-type": "text/event-stream"})


def err(status, message="nope", **headers):
    return httpx.Response(status, json={"error": {"message": message, "code": status}}, headers=headers)


def refuse(req):
    raise httpx.ConnectError("[Errno 111] Connection refused", request=req)


def test_success_row_and_request_body():
    row, seen, sleeps = run_client([ok()])
    assert row.status == "ok" and row.error is None and row.attempts == 1 and sleeps == []
    assert row.output_text == "hi!" and (row.prompt_tokens, row.output_tokens) == (5, 2)
    assert row.http_status == 200 and row.variant == "awq" and row.prompt_id == "p1"
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/chat/completions"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "m" and body["max_tokens"] == 8 and body["temperature"] == 0.0


def test_429_honours_retry_after_then_succeeds():
    row, seen, sleeps = run_client([err(429, "rate limited", **{"retry-after": "2"}), ok()])
    assert row.status == "ok" and row.attempts == 2 and sleeps == [2.0]


def test_503_backs_off_exponentially_then_gives_up_with_reason():
    row, seen, sleeps = run_client([err(503, "overloaded")] * 4)
    assert row.status == "error" and row.http_status == 503 and row.attempts == 4
    assert row.error == "HTTP 503: overloaded (gave up after 4 attempts)"
    assert sleeps == pytest.approx([0.5, 1.0, 2.0])


@pytest.mark.parametrize("status", [400, 404, 422, 500])
def test_other_errors_are_not_retried(status):
    row, seen, sleeps = run_client([err(status, "bad thing"), ok()])
    assert len(seen) == 1 and sleeps == [] and row.attempts == 1
    assert row.error == f"HTTP {status}: bad thing" and row.http_status == status


def test_connect_errors_retry_then_give_up():
    row, seen, sleeps = run_client([refuse] * 4)
    assert len(seen) == 4 and len(sleeps) == 3
    assert row.error.startswith("connect error after 4 attempts: ConnectError:")
    assert row.http_status is None


def test_connect_error_then_success():
    row, _, sleeps = run_client([refuse, ok()])
    assert row.status == "ok" and row.attempts == 2 and sleeps == [0.5]


def test_stream_without_done_is_an_error():
    body = SSE_OK.replace(b"data: [DONE]\n\n", b"")
    row, _, _ = run_client([httpx.Response(200, content=body)])
    assert row.status == "error" and row.error == "stream ended without [DONE] after 2 content chunks"
    assert row.output_text == "hi!"  # what arrived is kept for diagnosis


def test_mid_stream_disconnect_is_an_error_and_not_retried():
    async def chunks():
        yield SSE_OK[:120]
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    row, seen, sleeps = run_client([httpx.Response(200, content=chunks()), ok()])
    assert len(seen) == 1 and sleeps == []
    assert row.error.startswith("stream ended without [DONE]: connection lost after")
    assert "RemoteProtocolError" in row.error


def test_timeout_is_reported_and_not_retried():
    async def slow():
        yield SSE_OK[:60]
        await asyncio.sleep(5)
        yield b""

    row, seen, _ = run_client([httpx.Response(200, content=slow()), ok()], timeout_s=0.05)
    assert len(seen) == 1 and row.error == "timeout: no complete response within 0.05 s"


def test_completions_request_and_dispatch_fields():
    clock = iter([100.0, 100.5, 100.6, 100.7, 100.8, 100.9, 101.0, 101.1]).__next__
    body = b'data: {"choices":[{"index":0,"text":"x"}]}\n\ndata: [DONE]\n\n'
    req = ServingRequest(prompt_id="c", prompt="hi", top_logprobs=2, seed=3)
    row, seen, _ = run_client([httpx.Response(200, content=body)], request=req, clock=clock)
    sent = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/completions" and sent["logprobs"] == 2 and sent["seed"] == 3
    assert row.started_s == 0.0 and row.dispatch_delay_s == 0.0
    assert row.ttft_s == pytest.approx(0.1)  # attempt clock 100.5 -> first line 100.6


@pytest.mark.parametrize("line", [b"data: {not json", b"data: [1, 2]"])
def test_malformed_chunk_is_an_error(line):
    row, seen, sleeps = run_client([httpx.Response(200, content=line + b"\n\ndata: [DONE]\n\n")])
    assert row.status == "error" and row.error.startswith("malformed stream chunk: ") and sleeps == []
