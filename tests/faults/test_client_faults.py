"""The canary client against a deliberately broken server: every response is a correct `ok` row or an error
row with its reason, the run never aborts because of one response, and a deadline bounds every request."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from llmplat_dagster.serving.client import RetryPolicy, ServingClient, ServingRequest, run_promptset
from llmplat_dagster.serving.stream import LineTooLong, read_lines
from tests.faults.broken_server import FAULTS, MODEL, start_broken_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

POLICY = RetryPolicy(max_attempts=3, backoff_base_s=0.05, jitter=0.0)


def fault_requests(names, copies=1):
    return [ServingRequest.chat(f"{n}#{i}", f"fault:{n}", max_tokens=8) for i in range(copies) for n in names]


@pytest.fixture(scope="module")
def server():
    with start_broken_server() as s:
        yield s


def test_every_broken_response_is_an_ok_row_with_right_values_or_an_error_row_with_its_reason(server):
    persisted = []
    requests = fault_requests(FAULTS)
    rows = run_promptset(
        server.base_url,
        MODEL,
        requests,
        concurrency=6,
        timeout_s=3.0,
        retry=POLICY,
        on_result=persisted.append,
    )
    assert [r.prompt_id for r in rows] == [r.prompt_id for r in requests]  # nothing lost, order kept
    assert sorted(r.prompt_id for r in persisted) == sorted(
        r.prompt_id for r in requests
    )  # every row reached on_result
    for row in rows:
        fault = FAULTS[row.prompt_id.split("#")[0]]
        if fault.expect == "ok":
            assert row.status == "ok", (row.prompt_id, row.error)
            assert row.output_text == fault.text and row.error is None
            assert (row.prompt_tokens, row.output_tokens, row.finish_reason) == (5, 3, "stop"), row.prompt_id
            assert row.request_id == "chatcmpl-1" and 0 <= row.ttft_s <= row.e2e_s
        else:
            assert row.status == "error", (row.prompt_id, row.output_text[:80])
            assert fault.expect in (row.error or ""), (row.prompt_id, row.error)
            assert len(row.error) < 1000  # a reason a person reads, not a dumped body


def test_the_good_rows_in_flight_survive_every_fault_at_once(server):
    """The faults that used to crash the whole run, mixed with good requests at high concurrency."""
    crashers = ["content-int", "tokens-string", "deep-nesting", "gzip-bad-200", "gzip-bad-500", "json-list-chunk"]
    requests = fault_requests(["good", *crashers], copies=5)
    rows = run_promptset(server.base_url, MODEL, requests, concurrency=12, timeout_s=5.0, retry=POLICY)
    assert len(rows) == len(requests)
    assert sum(r.ok for r in rows) == 5 and all(r.ok == r.prompt_id.startswith("good#") for r in rows)


def test_retry_after_past_the_deadline_is_recorded_at_once_not_slept(server):
    sleeps = []

    async def sleep(s):
        sleeps.append(s)

    async def go():
        async with ServingClient(server.base_url, MODEL, timeout_s=5.0, retry=POLICY, sleep=sleep) as client:
            return await client.send(ServingRequest.chat("p", "fault:retry-after-3600"))

    started = time.monotonic()
    row = asyncio.run(go())
    assert sleeps == [] and row.attempts == 1 and row.http_status == 429
    assert row.error == "HTTP 429: slow down; not retried: Retry-After 3600 s ends past the 5 s request deadline"
    assert time.monotonic() - started < 5.0  # bounded by the deadline whatever the machine's load


def test_the_deadline_covers_retries_and_their_waits():
    """Three 503s with Retry-After 2 under a 5 s deadline: the third wait would end past it, so no third try."""
    now = [0.0]
    seen = []

    def handler(request):
        seen.append(request)
        now[0] += 0.5  # each answer takes half a second
        return httpx.Response(503, json={"error": {"message": "loading"}}, headers={"retry-after": "2"})

    async def sleep(s):
        now[0] += s

    async def go():
        async with ServingClient(
            "http://x",
            "m",
            timeout_s=5.0,
            retry=RetryPolicy(max_attempts=10),
            transport=httpx.MockTransport(handler),
            clock=lambda: now[0],
            sleep=sleep,
        ) as client:
            return await client.send(ServingRequest.chat("p", "hi"))

    row = asyncio.run(go())
    assert len(seen) == 2 and now[0] <= 5.0
    assert row.error.endswith("not retried: Retry-After 2 s ends past the 5 s request deadline")


def test_a_30_mb_line_is_refused_in_linear_time():
    """1 KiB reads of one 30 MB line: re-joining the partial line per read would copy ~450 GB (minutes);
    joining once is milliseconds. The bound below is three orders of magnitude above the linear cost."""

    async def reads():
        yield b"data: "
        piece = b"x" * 1024
        for _ in range(30 * 1024):
            yield piece

    seen = []
    started = time.process_time()
    with pytest.raises(LineTooLong, match="longer than 16 MiB"):
        asyncio.run(read_lines(reads(), lambda line, t: seen.append(line), time.perf_counter))
    assert time.process_time() - started < 10 and seen == []


def test_a_long_line_below_the_cap_is_read_whole_in_linear_time():
    head, tail = b'data: {"choices":[{"delta":{"content":"', b'"}}]}'

    async def reads():
        yield head
        for _ in range(8 * 1024):
            yield b"y" * 1024
        yield tail + b"\n\ndata: [DONE]\n\n"

    seen = []
    started = time.process_time()
    asyncio.run(read_lines(reads(), lambda line, t: seen.append(len(line)), time.perf_counter))
    assert time.process_time() - started < 10
    assert seen == [len(head) + 8 * 1024 * 1024 + len(tail), len(b"data: [DONE]")]
