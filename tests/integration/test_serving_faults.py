"""Every simulator fault mode reaches the serving client's row as the right, clearly worded error.

The simulator runs in-process (llmplat_dagster.sim.testing.start_sim) on an ephemeral loopback port;
retry waits are recorded by an injected sleep instead of being slept.
"""

import asyncio

import httpx
import pytest

from llmplat_dagster.serving.client import RetryPolicy, ServingClient, ServingRequest, run_promptset
from llmplat_dagster.serving.metrics import metric_contract, parse_metrics, scrape, value
from llmplat_dagster.serving.results import latency_summary
from llmplat_dagster.sim.testing import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAST = dict(time_scale=0.05)
POLICY = RetryPolicy(max_attempts=3, backoff_base_s=0.1, jitter=0.0)


def run(base_url, requests, *, concurrency=1, model="sim-model", **client_kwargs):
    """Rows for `requests`, plus the retry waits the client asked for."""
    sleeps = []

    async def fake_sleep(s):
        sleeps.append(s)
        await asyncio.sleep(0)

    async def go():
        kwargs = dict(concurrency=concurrency, retry=POLICY, sleep=fake_sleep, timeout_s=10.0)
        async with ServingClient(base_url, model, **(kwargs | client_kwargs)) as client:
            return await client.run(requests)

    return asyncio.run(go()), sleeps


def chats(n, max_tokens=6, prefix="p"):
    return [
        ServingRequest.chat(f"{prefix}{i}", f"Say something about topic {i}.", max_tokens=max_tokens) for i in range(n)
    ]


def test_healthy_stream_is_ok_with_usage_and_timings():
    with start_sim(**FAST) as sim:
        (row,), sleeps = run(sim.base_url, chats(1, max_tokens=8))
        truth = sim.timing(row.request_id)
    assert row.status == "ok" and row.error is None and row.attempts == 1 and sleeps == []
    assert row.output_tokens == 8 == truth["output_tokens"] and row.prompt_tokens == truth["prompt_tokens"]
    assert row.output_text and len(row.itl_s) == 7 and row.finish_reason == "length"
    assert row.ttft_s >= truth["ttft_s"] and row.e2e_s >= row.ttft_s
    assert row.tpot_s == pytest.approx((row.e2e_s - row.ttft_s) / 7)


def test_completions_endpoint_and_top_logprobs():
    with start_sim(**FAST) as sim:
        req = ServingRequest(prompt_id="c", prompt="Once upon a time", max_tokens=5, top_logprobs=3)
        (row,), _ = run(sim.base_url, [req])
        chat_req = ServingRequest.chat("d", "Once upon a time", max_tokens=5, top_logprobs=3)
        (chat_row,), _ = run(sim.base_url, [chat_req])
    for r in (row, chat_row):
        assert r.status == "ok", r.error
        assert len(r.top_logprobs) == 5 and all(1 <= len(d) <= 3 for d in r.top_logprobs)


def test_500_is_reported_and_not_retried():
    with start_sim(error_rate=1.0, error_status=500, **FAST) as sim:
        (row,), sleeps = run(sim.base_url, chats(1))
    assert row.status == "error" and row.http_status == 500 and row.attempts == 1 and sleeps == []
    assert row.error == "HTTP 500: Internal server error (simulated)."


@pytest.mark.parametrize(("status", "message"), [(503, "Service unavailable"), (429, "Too many requests")])
def test_retryable_status_gives_up_after_max_attempts_honouring_retry_after(status, message):
    with start_sim(error_rate=1.0, error_status=status, retry_after_s=2, **FAST) as sim:
        (row,), sleeps = run(sim.base_url, chats(1))
    assert row.http_status == status and row.attempts == 3 and sleeps == [2.0, 2.0]
    assert row.error == f"HTTP {status}: {message} (simulated). (gave up after 3 attempts)"


def test_429_retried_then_succeeds():
    with start_sim(error_rate=0.5, error_status=429, retry_after_s=0, seed=7, **FAST) as sim:
        rows, sleeps = run(sim.base_url, chats(12), retry=RetryPolicy(max_attempts=8))
    assert all(r.status == "ok" for r in rows), [r.error for r in rows if not r.ok]
    retried = [r for r in rows if r.attempts > 1]
    assert retried and sleeps == [0.0] * sum(r.attempts - 1 for r in rows)


def test_mid_stream_disconnect_is_an_error_not_retried():
    with start_sim(disconnect_rate=1.0, disconnect_after_chunks=3, **FAST) as sim:
        (row,), sleeps = run(sim.base_url, chats(1, max_tokens=10))
    assert row.status == "error" and row.attempts == 1 and sleeps == []
    assert row.error.startswith("stream ended without [DONE]"), row.error
    assert row.http_status == 200


def test_slow_response_times_out():
    with start_sim(slow_rate=1.0, slow_delay_s=5.0, time_scale=1.0) as sim:
        (row,), sleeps = run(sim.base_url, chats(1), timeout_s=0.3)
    assert row.status == "error" and row.error == "timeout: no complete response within 0.3 s"
    assert row.attempts == 1 and sleeps == []


def test_server_exit_after_n_requests_becomes_connect_error():
    """A spot preemption: later requests find nobody listening (the server may first answer 503 while it
    shuts down); real, short backoff sleeps give it time to go away."""
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.2, jitter=0.0)
    with start_sim(exit_after=2, **FAST) as sim:
        rows, _ = run(sim.base_url, chats(4), connect_timeout_s=1.0, retry=policy, sleep=asyncio.sleep)
    assert [r.status for r in rows[:2]] == ["ok", "ok"]
    for r in rows[2:]:
        assert r.status == "error" and r.attempts == 3 and r.http_status is None
        assert r.error.startswith("connect error after 3 attempts: "), r.error


@pytest.mark.parametrize(
    ("request_kwargs", "model", "status", "fragment"),
    [
        ({}, "no-such-model", 404, "does not exist"),
        ({"max_tokens": 100_000}, "sim-model", 400, ""),
    ],
)
def test_client_errors_are_never_retried(request_kwargs, model, status, fragment):
    with start_sim(**FAST) as sim:
        req = ServingRequest.chat("bad", "hello", **({"max_tokens": 4} | request_kwargs))
        (row,), sleeps = run(sim.base_url, [req], model=model)
    assert row.http_status == status and row.attempts == 1 and sleeps == []
    assert row.error.startswith(f"HTTP {status}: ") and fragment in row.error
    assert "gave up" not in row.error


def test_metrics_under_load_show_running_and_waiting():
    """12 concurrent requests against 4 sequence slots: the excess waits, and /metrics shows it."""
    with start_sim(max_num_seqs=4, time_scale=0.2) as sim:
        seen = []

        async def go():
            async with ServingClient(sim.base_url, "sim-model", concurrency=12) as client:
                task = asyncio.create_task(client.run(chats(12, max_tokens=24)))
                async with httpx.AsyncClient() as http:
                    while not task.done():
                        text = (await http.get(sim.base_url + "/metrics")).text
                        samples = parse_metrics(text)
                        seen.append((value(samples, "running"), value(samples, "queue_depth")))
                        await asyncio.sleep(0.02)
                return await task

        rows = asyncio.run(go())
        final = scrape(sim.base_url)
    assert all(r.ok for r in rows)
    assert max(r for r, _ in seen) > 0 and max(w for _, w in seen) > 0, seen
    assert max(r for r, _ in seen) <= 4
    assert value(final, "generation_tokens") >= 12 * 24 and value(final, "prompt_tokens") > 0
    assert value(final, "running") == 0 and value(final, "queue_depth") == 0
    required = [
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
    ]
    report = metric_contract(final, required)
    assert report.ok and report.generation == "v1", report.describe()


def test_v0_metrics_generation_is_recognised_and_answers_the_same_questions():
    with start_sim(metrics_generation="v0", **FAST) as sim:
        run(sim.base_url, chats(2))
        samples = scrape(sim.base_url)
    report = metric_contract(samples, ["vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"])
    assert report.generation == "v0"
    assert report.missing == ("vllm:kv_cache_usage_perc",)
    assert report.hints == {"vllm:kv_cache_usage_perc": "vllm:gpu_cache_usage_perc"}
    assert value(samples, "kv_cache_usage") is not None and value(samples, "itl") is not None


def test_run_promptset_resumes_and_persists_rows_as_they_finish():
    persisted, progress = [], []
    with start_sim(**FAST) as sim:
        rows = run_promptset(
            sim.base_url,
            "sim-model",
            chats(6),
            concurrency=3,
            variant="awq",
            skip_ids={"p0", "p1"},
            on_result=persisted.append,
            on_progress=progress.append,
        )
    assert [r.prompt_id for r in rows] == ["p2", "p3", "p4", "p5"] and all(r.ok for r in rows)
    assert sorted(r.prompt_id for r in persisted) == ["p2", "p3", "p4", "p5"]
    assert {r.variant for r in rows} == {"awq"} and progress[-1].done == 4
    summary = latency_summary(rows)
    assert summary["ok"] == 4 and summary["ttft_s_p50"] > 0 and summary["request_throughput"] > 0
