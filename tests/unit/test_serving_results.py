"""Latency summaries on hand-computed numbers."""

import math

import pandas as pd
import pytest

from llmplat_dagster.serving.results import RequestResult, latency_summary, results_frame, summary_by


def ok_row(i, ttft, e2e, itl, out=5, prompt=10, started=0.0, variant="awq", delay=0.0):
    return RequestResult(
        prompt_id=f"p{i}",
        variant=variant,
        status="ok",
        ttft_s=ttft,
        e2e_s=e2e,
        itl_s=itl,
        tpot_s=(e2e - ttft) / (out - 1),
        output_tokens=out,
        prompt_tokens=prompt,
        started_s=started,
        scheduled_s=started - delay,
        dispatch_delay_s=delay,
    )


ROWS = [
    ok_row(0, 0.1, 0.5, [0.1, 0.1, 0.1, 0.1], started=0.0),
    ok_row(1, 0.2, 1.0, [0.2, 0.2, 0.2, 0.2], started=0.5),
    ok_row(2, 0.3, 1.5, [0.3, 0.3, 0.3, 0.3], started=1.0, delay=0.4),
    RequestResult("p3", "awq", error="HTTP 500: boom", http_status=500, attempts=1, started_s=1.0),
]


def test_summary_on_hand_computed_numbers():
    s = latency_summary(ROWS)
    assert (s["requests"], s["ok"], s["errors"], s["error_rate"]) == (4, 3, 1, 0.25)
    assert s["ttft_s_p50"] == pytest.approx(0.2)
    assert s["ttft_s_mean"] == pytest.approx(0.2)
    assert s["ttft_s_p95"] == pytest.approx(0.29)  # linear: 0.2 + 0.9 * 0.1
    assert s["e2e_s_p99"] == pytest.approx(1.49)
    assert s["tpot_s_p50"] == pytest.approx(0.2)
    assert s["itl_s_mean"] == pytest.approx(0.2)  # pooled over 12 gaps
    assert s["itl_s_p50"] == pytest.approx(0.2)
    # span: first start 0.0 -> last finish 1.0 + 1.5 = 2.5 s
    assert s["duration_s"] == pytest.approx(2.5)
    assert s["request_throughput"] == pytest.approx(3 / 2.5)
    assert s["output_token_throughput"] == pytest.approx(15 / 2.5)
    assert s["total_token_throughput"] == pytest.approx(45 / 2.5)
    assert s["dispatch_delay_p95_s"] == pytest.approx(float(pd.Series([0, 0, 0.4]).quantile(0.95)))


def test_explicit_duration_and_frame_input():
    s = latency_summary(results_frame(ROWS), duration_s=10.0)
    assert s["request_throughput"] == pytest.approx(0.3)


def test_all_failed_and_empty():
    s = latency_summary(ROWS[3:])
    assert s["error_rate"] == 1.0 and math.isnan(s["ttft_s_p50"]) and math.isnan(s["request_throughput"])
    s = latency_summary([])
    assert s["requests"] == 0 and math.isnan(s["error_rate"])


def test_frame_has_one_column_per_field():
    df = results_frame(ROWS)
    assert len(df) == 4 and {"prompt_id", "ttft_s", "itl_s", "dispatch_delay_s", "top_logprobs"} <= set(df)
    assert df.loc[3, "status"] == "error" and df.loc[0, "itl_s"] == [0.1, 0.1, 0.1, 0.1]


def test_summary_by_variant():
    rows = ROWS + [ok_row(9, 1.0, 2.0, [0.5, 0.5], out=3, variant="fp16")]
    table = summary_by(rows)
    assert list(table["variant"]) == ["awq", "fp16"]
    assert table.set_index("variant").loc["fp16", "ttft_s_p50"] == pytest.approx(1.0)
    assert table.set_index("variant").loc["awq", "errors"] == 1


def test_a_resumed_run_counts_every_row_but_takes_its_rate_from_its_own_requests():
    from llmplat_dagster.serving.results import resumed_summary

    done = [ok_row(0, 0.1, 0.5, [0.1] * 4, started=100.0)]  # written by a killed run, on its own clock
    new = [ok_row(1, 0.2, 1.0, [0.2] * 4, started=0.0), ok_row(2, 0.3, 1.0, [0.3] * 4, started=1.0)]
    frame, s = resumed_summary(done, new)
    assert len(frame) == 3 and s["requests"] == 3 and s["ttft_s_p50"] == pytest.approx(0.2)
    assert s["duration_s"] == pytest.approx(2.0) and s["request_throughput"] == pytest.approx(1.0)  # 2 requests / 2 s
    _, only_resumed = resumed_summary(done, [])
    assert only_resumed["requests"] == 1 and math.isnan(only_resumed["request_throughput"])
