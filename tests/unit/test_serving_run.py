"""ServingClient.run over an in-memory transport: order, resume, callbacks, concurrency, schedule."""

import asyncio

import httpx
import pytest

from llmplat_dagster.serving.client import Progress, ServingClient, ServingRequest

SSE = (
    b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
)


def make_client(handler, **kwargs):
    return ServingClient("http://sim", "m", transport=httpx.MockTransport(handler), **kwargs)


def test_rows_in_input_order_resume_skips_and_on_result_sees_each():
    seen_ids, persisted = [], []

    def handler(req):
        seen_ids.append(req.content)
        return httpx.Response(200, content=SSE)

    async def go():
        async with make_client(handler, concurrency=4) as client:
            reqs = [ServingRequest.chat(f"p{i}", f"q{i}") for i in range(10)]
            return await client.run(reqs, skip_ids={"p0", "p5"}, on_result=persisted.append)

    rows = asyncio.run(go())
    assert [r.prompt_id for r in rows] == [f"p{i}" for i in range(10) if i not in (0, 5)]
    assert sorted(r.prompt_id for r in persisted) == sorted(r.prompt_id for r in rows)
    assert len(seen_ids) == 8 and all(r.ok for r in rows)
    assert all(r.dispatch_delay_s >= 0 and r.scheduled_s <= r.started_s for r in rows)


def test_concurrency_is_bounded():
    state = {"now": 0, "peak": 0}

    async def handler(req):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.005)
        state["now"] -= 1
        return httpx.Response(200, content=SSE)

    async def go():
        async with make_client(handler, concurrency=8) as client:
            return await client.run([ServingRequest.chat(str(i), "q") for i in range(40)], concurrency=3)

    rows = asyncio.run(go())
    assert len(rows) == 40 and state["peak"] == 3


def test_concurrency_above_pool_is_refused():
    async def go():
        async with make_client(lambda r: httpx.Response(200, content=SSE), concurrency=2) as client:
            await client.run([ServingRequest.chat("a", "q")], concurrency=5)

    with pytest.raises(ValueError, match="exceeds the connection pool"):
        asyncio.run(go())


def test_request_rate_schedules_sends_and_records_dispatch_delay():
    """Evenly spaced at 10/s with a fake clock that only moves when the client sleeps."""
    now = [0.0]

    async def fake_sleep(s):
        now[0] += s
        await asyncio.sleep(0)

    async def go():
        async with make_client(
            lambda r: httpx.Response(200, content=SSE), concurrency=2, clock=lambda: now[0], sleep=fake_sleep
        ) as client:
            reqs = [ServingRequest.chat(str(i), "q") for i in range(4)]
            return await client.run(reqs, request_rate=10.0, poisson=False)

    rows = asyncio.run(go())
    assert [r.scheduled_s for r in rows] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert all(r.started_s >= r.scheduled_s for r in rows)


def test_progress_callback_reports_counts():
    reports: list[Progress] = []

    def handler(req):
        if b'"2"' in req.content or b"q2" in req.content:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        return httpx.Response(200, content=SSE)

    async def go():
        async with make_client(handler, concurrency=2) as client:
            reqs = [ServingRequest.chat(str(i), f"q{i}") for i in range(5)]
            return await client.run(reqs, on_progress=reports.append, progress_interval_s=0.001)

    rows = asyncio.run(go())
    final = reports[-1]
    assert (final.done, final.ok, final.errors, final.total) == (5, 4, 1, 5)
    assert [r.error for r in rows if not r.ok] == ["HTTP 500: boom"]


def test_on_result_failure_stops_the_run():
    def boom(row):
        raise OSError("disk full")

    async def go():
        async with make_client(lambda r: httpx.Response(200, content=SSE), concurrency=2) as client:
            await client.run([ServingRequest.chat(str(i), "q") for i in range(5)], on_result=boom)

    with pytest.raises(OSError, match="disk full"):
        asyncio.run(go())
