"""StreamTimer on constructed chunk timelines: vllm bench serve's TTFT / ITL / TPOT / e2e definitions."""

import json

import pytest

from llmplat_dagster.serving.client import StreamTimer
from llmplat_dagster.serving.results import RequestResult, percentile, tpot


def chat(content=None, *, role=None, finish=None, logprobs=None):
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [choice]})


def usage(prompt, completion):
    body = {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}
    return "data: " + json.dumps(body)


def run(timeline, start=10.0, want_logprobs=False):
    timer = StreamTimer(start, want_logprobs)
    for t, line in timeline:
        timer.feed(line.encode(), t)
    row = RequestResult("p", "v")
    timer.fill(row)
    return timer, row


def test_chat_timeline_follows_vllm_bench_definitions():
    timer, row = run(
        [
            (10.05, chat("", role="assistant")),  # role-only chunk: no token, does not start TTFT
            (10.20, chat("Hello")),
            (10.25, chat(" wor")),
            (10.32, chat("")),  # empty delta: not a token, no ITL gap
            (10.35, chat("ld", finish="stop")),
            (10.36, usage(7, 4)),  # usage and [DONE] carry no token: e2e stays at 10.35
            (10.40, "data: [DONE]"),
        ]
    )
    assert timer.done
    assert row.output_text == "Hello world"
    assert row.ttft_s == pytest.approx(0.20)
    assert row.itl_s == pytest.approx([0.05, 0.10])
    assert row.e2e_s == pytest.approx(0.35)
    assert (row.prompt_tokens, row.output_tokens) == (7, 4)
    assert row.tpot_s == pytest.approx((0.35 - 0.20) / 3)
    assert row.finish_reason == "stop"
    assert row.itl_mean_s == pytest.approx(0.075)
    assert row.itl_p50_s == pytest.approx(0.075)
    assert row.itl_p95_s == pytest.approx(0.05 + 0.05 * 0.95)


def test_completions_text_chunks_and_comments_and_unspaced_data_prefix():
    lines = [
        (1.1, ": ping"),
        (1.2, 'data:{"choices":[{"index":0,"text":"a","finish_reason":null}]}'),
        (1.5, 'data: {"choices":[{"index":0,"text":"b","finish_reason":"length"}]}'),
        (1.6, "event: something"),
        (1.7, "data: [DONE]"),
    ]
    timer, row = run(lines, start=1.0)
    assert row.output_text == "ab"
    assert row.ttft_s == pytest.approx(0.2)
    assert row.itl_s == pytest.approx([0.3])
    # no usage chunk: output tokens fall back to the number of text chunks
    assert row.output_tokens == 2
    assert row.tpot_s == pytest.approx(0.3)


def test_lines_after_done_are_ignored_and_single_token_has_no_tpot():
    timer, row = run([(0.5, chat("x")), (0.6, usage(3, 1)), (0.7, "data: [DONE]"), (0.9, chat("late"))], 0.0)
    assert row.output_text == "x"
    assert row.tpot_s is None and row.itl_s == [] and row.itl_mean_s is None
    assert row.e2e_s == pytest.approx(0.5)


def test_no_content_leaves_timings_empty():
    timer, row = run([(0.1, chat("", role="assistant")), (0.2, "data: [DONE]")], 0.0)
    assert timer.done and timer.first is None
    assert row.ttft_s is None and row.e2e_s is None


def test_in_stream_error_event_is_reported():
    line = 'data: {"error": {"message": "engine dead", "type": "InternalServerError", "code": 500}}'
    timer, _ = run([(0.1, chat("a")), (0.2, line)], 0.0)
    assert timer.error == "stream error: engine dead"


def test_chat_top_logprobs_normalised():
    lp = {
        "content": [
            {
                "token": "A",
                "logprob": -0.1,
                "top_logprobs": [{"token": "A", "logprob": -0.1}, {"token": "B", "logprob": -2.5}],
            }
        ]
    }
    _, row = run([(0.1, chat("A", logprobs=lp)), (0.2, "data: [DONE]")], 0.0, want_logprobs=True)
    assert row.top_logprobs == [{"A": -0.1, "B": -2.5}]


def test_completions_top_logprobs_normalised():
    lp = {"tokens": ["A"], "token_logprobs": [-0.1], "top_logprobs": [{"A": -0.1, "C": -3.0}]}
    line = "data: " + json.dumps({"choices": [{"index": 0, "text": "A", "logprobs": lp}]})
    _, row = run([(0.1, line), (0.2, "data: [DONE]")], 0.0, want_logprobs=True)
    assert row.top_logprobs == [{"A": -0.1, "C": -3.0}]


@pytest.mark.parametrize(
    ("e2e", "ttft", "tokens", "expected"),
    [(1.0, 0.1, 10, 0.1), (1.0, 0.1, 2, 0.9), (1.0, 0.1, 1, None), (1.0, 0.1, 0, None), (1.0, 0.1, None, None)],
)
def test_tpot(e2e, ttft, tokens, expected):
    assert tpot(e2e, ttft, tokens) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("q", [0, 10, 50, 95, 99, 100])
def test_percentile_matches_numpy_linear(q):
    import numpy as np

    values = sorted([0.3, 0.1, 0.7, 0.2, 0.9, 0.4])
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_read_events_splits_lines_across_reads_and_stamps_each_read_once():
    import asyncio

    import httpx

    from llmplat_dagster.serving.stream import read_lines

    reads = [
        b'data: {"choices":[{"index":0,"text":"a"}]}\r\n\r\ndata: {"choi',
        b'ces":[{"index":0,"text":"b"}]}\n\n',
        b"data: [DONE]",
    ]

    async def body():
        for r in reads:
            yield r

    times = iter([1.0, 2.0, 3.0, 4.0]).__next__
    seen = []
    chunks = httpx.Response(200, content=body()).aiter_bytes()
    asyncio.run(read_lines(chunks, lambda line, t: seen.append((line, t)), times))
    assert seen == [
        (b'data: {"choices":[{"index":0,"text":"a"}]}', 1.0),
        (b'data: {"choices":[{"index":0,"text":"b"}]}', 2.0),
        (b"data: [DONE]", 4.0),  # an unterminated last line is fed when the body ends
    ]
