"""Parsing vLLM V0 and V1 /metrics texts, the name map, and the metric-contract report."""

import pytest

from llmplat_dagster.serving.metrics import (
    METRIC_NAMES,
    generation,
    metric_contract,
    metrics_frame,
    parse_metrics,
    select,
    series_name,
    value,
)

V1_TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="mistral-7b-awq"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="mistral-7b-awq"} 5.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="mistral-7b-awq"} 0.42
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="mistral-7b-awq"} 1200.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="mistral-7b-awq"} 800.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="mistral-7b-awq"} 7.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="mistral-7b-awq"} 3.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="mistral-7b-awq"} 4.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="mistral-7b-awq"} 10.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="mistral-7b-awq"} 10.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="mistral-7b-awq"} 2.5
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="mistral-7b-awq"} 790.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="mistral-7b-awq"} 790.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="mistral-7b-awq"} 39.5
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="mistral-7b-awq"} 10.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="mistral-7b-awq"} 10.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="mistral-7b-awq"} 45.0
"""

V0_TEXT = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="mistral-7b-fp16"} 4.0
# HELP vllm:num_requests_swapped Number of requests swapped to CPU.
# TYPE vllm:num_requests_swapped gauge
vllm:num_requests_swapped{model_name="mistral-7b-fp16"} 0.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="mistral-7b-fp16"} 2.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="mistral-7b-fp16"} 0.9
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="mistral-7b-fp16"} 50.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="mistral-7b-fp16"} 70.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="mistral-7b-fp16"} 2.0
vllm:time_to_first_token_seconds_count{model_name="mistral-7b-fp16"} 2.0
vllm:time_to_first_token_seconds_sum{model_name="mistral-7b-fp16"} 0.6
# HELP vllm:time_per_output_token_seconds Histogram of time per output token in seconds.
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="mistral-7b-fp16"} 68.0
vllm:time_per_output_token_seconds_count{model_name="mistral-7b-fp16"} 68.0
vllm:time_per_output_token_seconds_sum{model_name="mistral-7b-fp16"} 6.8
"""

# What the KEDA trigger, the HPA and the dashboards query (written for V1).
REQUIRED_V1 = [
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:inter_token_latency_seconds_bucket",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
]


def test_parse_into_tidy_rows_keeps_total_suffix_on_counters():
    rows = parse_metrics(V1_TEXT)
    counter = next(r for r in rows if r.family == "vllm:prompt_tokens")
    assert counter.name == "vllm:prompt_tokens_total" and counter.type == "counter"
    assert counter.labels == {"engine": "0", "model_name": "mistral-7b-awq"} and counter.value == 1200.0
    df = metrics_frame(rows)
    assert list(df.columns) == ["name", "labels", "value", "type", "family"]
    assert set(df.loc[df.type == "histogram", "family"]) == {
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
    }


def test_select_accepts_either_counter_spelling_and_labels():
    rows = parse_metrics(V1_TEXT)
    assert [r.value for r in select(rows, "vllm:prompt_tokens_total")] == [1200.0]
    assert [r.value for r in select(rows, "vllm:prompt_tokens")] == [1200.0]
    assert [r.value for r in select(rows, "vllm:request_success_total", finished_reason="length")] == [3.0]
    assert len(select(rows, "vllm:time_to_first_token_seconds")) == 4


@pytest.mark.parametrize(("text", "gen"), [(V1_TEXT, "v1"), (V0_TEXT, "v0"), ("up 1\n", None), ("", None)])
def test_generation(text, gen):
    assert generation(parse_metrics(text)) == gen


def test_early_v1_with_deprecated_aliases_is_v1():
    text = V1_TEXT + "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.42\n"
    assert generation(parse_metrics(text)) == "v1"


@pytest.mark.parametrize(
    ("question", "v1", "v0"),
    [
        ("queue_depth", 5.0, 2.0),
        ("running", 3.0, 4.0),
        ("kv_cache_usage", 0.42, 0.9),
        ("prompt_tokens", 1200.0, 50.0),
        ("generation_tokens", 800.0, 70.0),
        ("ttft", 0.25, 0.3),
        ("itl", 0.05, 0.1),
        ("e2e", 4.5, None),
        ("request_success", 10.0, None),
    ],
)
def test_same_question_answered_on_both_generations(question, v1, v0):
    for text, expected in ((V1_TEXT, v1), (V0_TEXT, v0)):
        got = value(parse_metrics(text), question)
        assert got == (pytest.approx(expected) if expected is not None else None)


def test_name_map():
    assert series_name("kv_cache_usage", "v1") == "vllm:kv_cache_usage_perc"
    assert series_name("kv_cache_usage", "v0") == "vllm:gpu_cache_usage_perc"
    assert series_name("itl", "v1") == "vllm:inter_token_latency_seconds"
    assert series_name("itl", "v0") == "vllm:time_per_output_token_seconds"
    assert all(n.startswith("vllm:") for gens in METRIC_NAMES.values() for n in gens.values())
    with pytest.raises(KeyError):
        series_name("queue", "v1")


def test_contract_satisfied_on_v1():
    report = metric_contract(parse_metrics(V1_TEXT), REQUIRED_V1)
    assert report.ok and report.generation == "v1" and report.missing == ()
    assert report.describe() == "v1 metrics: all 7 required series present"


def test_contract_reports_missing_series_on_v0_with_the_v0_names():
    report = metric_contract(parse_metrics(V0_TEXT), REQUIRED_V1 + ["vllm:num_requests_swapped"])
    assert report.generation == "v0" and not report.ok
    assert report.missing == ("vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds_bucket")
    assert report.hints == {
        "vllm:kv_cache_usage_perc": "vllm:gpu_cache_usage_perc",
        "vllm:inter_token_latency_seconds_bucket": "vllm:time_per_output_token_seconds_bucket",
    }
    assert "vllm:kv_cache_usage_perc (this server exposes vllm:gpu_cache_usage_perc)" in report.describe()


def test_contract_for_v0_queries_against_v1_server():
    report = metric_contract(parse_metrics(V1_TEXT), ["vllm:gpu_cache_usage_perc", "vllm:num_requests_swapped"])
    assert report.missing == ("vllm:gpu_cache_usage_perc", "vllm:num_requests_swapped")
    assert report.hints == {"vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc"}


def test_contract_on_an_empty_scrape_misses_everything():
    report = metric_contract([], REQUIRED_V1)
    assert report.generation is None and report.missing == tuple(REQUIRED_V1)
    assert report.describe().startswith("unknown metrics: missing vllm:num_requests_waiting")
