"""The official openai client against the in-process simulator: routes, streaming, errors, metrics."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmplat_dagster.sim.testing import start_sim
from tests.integration.sim_fixtures import sim  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MSG = [{"role": "user", "content": "How do I scale a Kubernetes deployment?"}]


def _client(sim, **kw) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=sim.v1_url, api_key="sim", max_retries=0, **kw)


def _metrics(sim) -> dict[str, float]:  # noqa: F811
    out = {}
    for fam in text_string_to_metric_families(httpx.get(f"{sim.base_url}/metrics").text):
        for s in fam.samples:
            key = s.name + ("" if "finished_reason" not in s.labels else f"[{s.labels['finished_reason']}]")
            if "le" not in s.labels:
                out[key] = s.value
    return out


def test_models_health_version(sim):  # noqa: F811
    ids = [m.id for m in _client(sim).models.list().data]
    assert ids == ["sim-model"]
    assert httpx.get(f"{sim.base_url}/health").status_code == 200
    assert httpx.get(f"{sim.base_url}/version").json()["version"].endswith("(llmplat-sim)")


def test_chat_is_deterministic_with_logprobs_and_ground_truth_header(sim):  # noqa: F811
    c = _client(sim)
    raw = c.chat.completions.with_raw_response.create(
        model="sim-model", messages=MSG, max_tokens=20, temperature=0, logprobs=True, top_logprobs=3
    )
    r = raw.parse()
    again = c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=20, temperature=0)
    assert r.choices[0].message.content == again.choices[0].message.content
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 20
    for t in r.choices[0].logprobs.content:
        assert t.top_logprobs[0].token == t.token and len(t.top_logprobs) == 3
    header = dict(kv.split("=") for kv in raw.headers["x-sim-timing"].split(";"))
    assert int(header["output_tokens"]) == 20 and float(header["ttft_s"]) > 0


def test_streamed_chat_with_usage_through_the_openai_client(sim):  # noqa: F811
    chunks = list(
        _client(sim).chat.completions.create(
            model="sim-model",
            messages=MSG,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    truth = httpx.get(f"{sim.base_url}/sim/requests/{chunks[0].id}").json()
    assert truth["output_tokens"] == 12 and len(truth["itl_s"]) == 11
    assert httpx.get(f"{sim.base_url}/sim/requests", params={"last": 1}).json()["data"][0]["id"] == chunks[0].id


def test_client_measured_ttft_starts_before_the_servers_and_sees_every_token_gap(sim):  # noqa: F811
    """Measured like `vllm bench serve`: clock before send, TTFT at the first content chunk, one gap per later
    token. How close the figures come to the server's own is a benchmark (bench/timing_truth.py), not a test:
    a few milliseconds on a loaded CI machine say nothing about the code."""
    body = {"model": "sim-model", "messages": MSG, "max_tokens": 12, "stream": True}
    with httpx.Client() as h:
        for _ in range(3):
            t0 = time.perf_counter()
            stamps, rid = [], None
            with h.stream("POST", f"{sim.v1_url}/chat/completions", json=body) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        rid = chunk["id"]
                        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            stamps.append(time.perf_counter() - t0)
            truth = httpx.get(f"{sim.base_url}/sim/requests/{rid}").json()
            assert stamps[0] >= truth["ttft_s"]  # the client's clock started first
            assert len(stamps) - 1 == len(truth["itl_s"]) == 11


def test_completions_plain_and_streamed_with_legacy_logprobs(sim):  # noqa: F811
    c = _client(sim)
    r = c.completions.create(model="sim-model", prompt="Once upon a time", max_tokens=6, logprobs=2, temperature=0)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text and len(lp.top_logprobs[0]) == 2
    streamed = "".join(
        ch.choices[0].text
        for ch in c.completions.create(
            model="sim-model", prompt="Once upon a time", max_tokens=6, stream=True, temperature=0
        )
    )
    assert streamed == r.choices[0].text


def test_n_stop_and_json_mode(sim):  # noqa: F811
    c = _client(sim)
    r = c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=10, n=3, temperature=0.8, seed=1)
    assert [ch.index for ch in r.choices] == [0, 1, 2] and r.usage.completion_tokens == 30
    full = c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=10, temperature=0)
    word = full.choices[0].message.content.split()[3]
    cut = c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=10, temperature=0, stop=[word])
    assert cut.choices[0].finish_reason == "stop" and word not in cut.choices[0].message.content
    j = c.chat.completions.create(
        model="sim-model", messages=MSG, max_tokens=50, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(j.choices[0].message.content), dict)


def test_bad_requests_get_openai_errors(sim):  # noqa: F811
    c = _client(sim)
    with pytest.raises(openai.NotFoundError, match="The model `nope` does not exist"):
        c.chat.completions.create(model="nope", messages=MSG)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 4096"):
        c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=5000)
    with pytest.raises(openai.BadRequestError, match="'messages' is required"):
        c.chat.completions.create(model="sim-model", messages=[])
    r = httpx.post(f"{sim.v1_url}/chat/completions", content=b"{not json", headers={"content-type": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "BadRequestError" and "Malformed JSON" in err["message"] and err["code"] == 400


def test_lora_adapters_load_list_unload_and_respect_max_loras():
    with start_sim(time_scale=0.02, enable_lora=True, max_loras=2, lora_modules={"sql": "/a/sql"}) as s:
        c = _client(s)
        r = httpx.post(f"{s.v1_url}/load_lora_adapter", json={"lora_name": "chat", "lora_path": "/a/chat"})
        assert r.status_code == 200
        models = {m.id: m for m in c.models.list().data}
        assert models["chat"].parent == "sim-model" and models["chat"].root == "/a/chat"
        base = c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=60, temperature=0)
        lora = c.chat.completions.create(model="sql", messages=MSG, max_tokens=60, temperature=0)
        assert base.choices[0].message.content != lora.choices[0].message.content
        full = httpx.post(f"{s.v1_url}/load_lora_adapter", json={"lora_name": "x", "lora_path": "/x"})
        assert full.status_code == 400 and "max-loras" in full.json()["error"]["message"]
        assert httpx.post(f"{s.v1_url}/unload_lora_adapter", json={"lora_name": "chat"}).status_code == 200
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="chat", messages=MSG)
    with start_sim(time_scale=0.02) as s:
        r = httpx.post(f"{s.v1_url}/load_lora_adapter", json={"lora_name": "a", "lora_path": "/a"})
        assert r.status_code == 400 and "LoRA is not enabled" in r.json()["error"]["message"]


def test_awq_answers_follow_fp16_until_their_first_divergence_then_cascade():
    """Over HTTP as in the model: the same tokens up to the first differing one, unrelated text after it."""
    diverged = 0
    with (
        start_sim(time_scale=0.001) as fp16,
        start_sim(time_scale=0.001, quantization="awq", quant_noise=0.6) as awq,
    ):
        for i in range(12):
            msg = [{"role": "user", "content": f"Explain topic number {i} in detail."}]
            a, b = (
                [t.token for t in _client(s).chat.completions.create(**request).choices[0].logprobs.content]
                for s in (fp16, awq)
                for request in [dict(model="sim-model", messages=msg, temperature=0, logprobs=True, max_tokens=400)]
            )
            first = next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            if first is None:
                assert a == b
                continue
            diverged += 1
            tail = list(zip(a[first + 1 :], b[first + 1 :], strict=False))
            assert sum(x == y for x, y in tail) <= 0.2 * len(tail) + 1
    assert diverged >= 8


def test_a_known_prompt_is_answered_from_the_promptset_and_an_adapter_answers_in_its_own_words():
    from llmplat_dagster.evaluation.assertions import evaluate
    from llmplat_dagster.evaluation.promptsets import load_promptset

    prompts = load_promptset("quant-sensitivity").prompts
    with start_sim(time_scale=0.001, enable_lora=True, max_loras=1, lora_modules={"chat-de": "/adapters/chat-de"}) as s:
        c = _client(s)
        base_ok = lora_ok = differ = 0
        for p in prompts:
            base, lora = (
                c.chat.completions.create(model=m, messages=p.messages, max_tokens=p.max_tokens, temperature=0)
                .choices[0]
                .message.content
                for m in ("sim-model", "chat-de")
            )
            base_ok += evaluate(p.assertions, base).passed
            lora_ok += evaluate(p.assertions, lora).passed
            differ += base != lora
    assert 0.6 * len(prompts) <= base_ok and 0.6 * len(prompts) <= lora_ok  # the model's skill, not zero
    assert differ > len(prompts) / 2


def test_metrics_move_under_a_burst_larger_than_max_num_seqs():
    with start_sim(time_scale=0.05, max_num_seqs=2) as s:
        assert "vllm:kv_cache_usage_perc" in _metrics(s)
        peak = {"running": 0.0, "waiting": 0.0, "kv": 0.0}

        async def burst():
            c = openai.AsyncOpenAI(base_url=s.v1_url, api_key="sim", max_retries=0)
            tasks = [
                asyncio.create_task(c.chat.completions.create(model="sim-model", messages=MSG, max_tokens=20))
                for _ in range(6)
            ]
            async with httpx.AsyncClient() as h:
                while not all(t.done() for t in tasks):
                    m = {
                        f.name: f.samples[0].value
                        for f in text_string_to_metric_families((await h.get(f"{s.base_url}/metrics")).text)
                        if f.type == "gauge"
                    }
                    peak["running"] = max(peak["running"], m["vllm:num_requests_running"])
                    peak["waiting"] = max(peak["waiting"], m["vllm:num_requests_waiting"])
                    peak["kv"] = max(peak["kv"], m["vllm:kv_cache_usage_perc"])
                    await asyncio.sleep(0.01)
            await asyncio.gather(*tasks)
            await c.close()

        asyncio.run(burst())
        m = _metrics(s)
    assert peak["running"] == 2 and peak["waiting"] >= 2 and peak["kv"] > 0
    assert m["vllm:request_success_total[length]"] == 6
    assert m["vllm:generation_tokens_total"] == 120
    assert m["vllm:time_to_first_token_seconds_count"] == 6
    assert m["vllm:num_requests_running"] == 0 and m["vllm:num_requests_waiting"] == 0
    queued = sorted(t.as_dict()["queue_s"] for t in s.state.engine.timings.values())
    assert queued[-1] > 0.05  # the last admitted waited for two full requests


def test_v0_metric_names():
    with start_sim(time_scale=0.02, metrics_generation="v0") as s:
        _client(s).chat.completions.create(model="sim-model", messages=MSG, max_tokens=3)
        names = set(_metrics(s))
    assert {
        "vllm:gpu_cache_usage_perc",
        "vllm:num_requests_swapped",
        "vllm:time_per_output_token_seconds_count",
    }
    assert "vllm:gpu_cache_usage_perc" in names and "vllm:num_requests_swapped" in names
    assert "vllm:time_per_output_token_seconds_count" in names and "vllm:kv_cache_usage_perc" not in names
