"""Each fault mode as the user of the official openai client sees it."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

from llmplat_dagster.sim.testing import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MSG = [{"role": "user", "content": "Explain spot preemption."}]


def _client(sim, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.v1_url, api_key="sim", max_retries=retries, timeout=10)


@pytest.mark.parametrize(
    ("status", "exc", "message"),
    [
        (500, openai.InternalServerError, "Internal server error (simulated)"),
        (503, openai.InternalServerError, "Service unavailable (simulated)"),
        (429, openai.RateLimitError, "Too many requests (simulated)"),
    ],
)
def test_error_rate_returns_the_chosen_status(status, exc, message):
    with (
        start_sim(time_scale=0.02, error_rate=1.0, error_status=status, retry_after_s=7) as s,
        pytest.raises(exc, match=re.escape(message)) as info,
    ):
        _client(s).chat.completions.create(model="sim-model", messages=MSG, max_tokens=5)
    assert info.value.status_code == status
    if status in (429, 503):
        assert info.value.response.headers["retry-after"] == "7"


def test_error_rate_is_a_deterministic_fraction():
    def fates():
        with start_sim(time_scale=0.001, error_rate=0.3, seed=5) as s:
            out = []
            for _ in range(60):
                try:
                    _client(s).completions.create(model="sim-model", prompt="x", max_tokens=1)
                    out.append(True)
                except openai.InternalServerError:
                    out.append(False)
            return out

    first = fates()
    assert first == fates()
    assert 8 <= first.count(False) <= 28


def test_slow_responses_add_the_delay():
    with start_sim(time_scale=1.0, itl_s=0.001, ttft_base_s=0.001, slow_rate=1.0, slow_delay_s=0.3) as s:
        t0 = time.perf_counter()
        r = _client(s).chat.completions.create(model="sim-model", messages=MSG, max_tokens=2)
        assert time.perf_counter() - t0 >= 0.3
        assert s.timing(r.id)["ttft_s"] >= 0.3


def test_mid_stream_disconnect_ends_the_stream_without_done():
    with start_sim(time_scale=0.02, disconnect_rate=1.0, disconnect_after_chunks=3) as s:
        got = []
        with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError, openai.APIError)):
            for ch in _client(s).chat.completions.create(model="sim-model", messages=MSG, max_tokens=50, stream=True):
                got.append(ch)
        assert len(got) == 4  # role chunk + 3 content chunks, then the connection drops
        with pytest.raises(openai.APIConnectionError):
            _client(s).chat.completions.create(model="sim-model", messages=MSG, max_tokens=50)


def test_exit_after_n_requests_stops_the_server():
    with start_sim(time_scale=0.02, exit_after=2) as s:
        c = _client(s)
        for _ in range(2):
            c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=3)
        s.thread.join(5)
        assert not s.thread.is_alive()
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=3)


def test_startup_delay_answers_503_until_loaded():
    with start_sim(time_scale=1.0, startup_delay_s=0.4) as s:
        assert httpx.get(f"{s.base_url}/health").status_code == 503
        with pytest.raises(openai.InternalServerError, match="still loading"):
            _client(s).models.list()
        time.sleep(0.45)
        assert httpx.get(f"{s.base_url}/health").status_code == 200
        assert _client(s).models.list().data[0].id == "sim-model"


def test_malformed_judge_output_rate():
    judge = 'Score the response 1-10 as JSON {"score": int}.\nQuestion: q\nResponse: r'
    with start_sim(time_scale=0.01, judge_malformed_rate=1.0) as s:
        text = (
            _client(s)
            .chat.completions.create(model="sim-model", messages=[{"role": "user", "content": judge}])
            .choices[0]
            .message.content
        )
    assert text.startswith("Score:") and "{" not in text
