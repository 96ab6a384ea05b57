"""Load sweep logic: levels, goodput as vllm bench serve defines it, saturation, replicas, the run loop."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmplat_dagster.serving.client import ServingRequest
from llmplat_dagster.serving.results import RequestResult
from llmplat_dagster.serving.sweep import (
    SLO,
    analyse,
    concurrency_levels,
    level_requests,
    replicas_needed,
    run_sweep,
    saturation_point,
    summarize_level,
    sweep_plot,
)


@pytest.mark.parametrize(
    ("max_num_seqs", "factor", "levels"),
    [
        (16, 2, [1, 2, 4, 8, 16, 32]),
        (4, 2, [1, 2, 4, 8]),
        (6, 2, [1, 2, 4, 8, 12]),
        (1, 2, [1, 2]),
        (3, 1, [1, 2, 3]),
        (1, 0.5, [1]),
    ],
)
def test_levels_double_up_to_twice_max_num_seqs(max_num_seqs, factor, levels):
    assert concurrency_levels(max_num_seqs, factor) == levels


@pytest.mark.parametrize(("seqs", "factor"), [(0, 2), (4, 0)])
def test_levels_refuse_nonsense(seqs, factor):
    with pytest.raises(ValueError):
        concurrency_levels(seqs, factor)


def _row(i: int, *, ttft: float, tpot: float | None, e2e: float, tokens: int = 10, status: str = "ok") -> RequestResult:
    return RequestResult(
        prompt_id=f"p{i}",
        variant="v",
        status=status,
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        output_tokens=tokens,
        prompt_tokens=5,
        started_s=float(i),
        itl_s=[tpot] * (tokens - 1) if tpot else [],
    )


def _frame(rows: list[RequestResult]) -> pd.DataFrame:
    from llmplat_dagster.serving.results import results_frame

    return results_frame(rows)


@pytest.mark.parametrize(
    ("slo", "good"),
    [
        (SLO(ttft_ms=200, tpot_ms=None), [True, False, True, True, False]),
        (SLO(ttft_ms=None, tpot_ms=50), [True, True, True, False, False]),
        (SLO(ttft_ms=200, tpot_ms=50), [True, False, True, False, False]),
        (SLO(ttft_ms=None, tpot_ms=None, e2el_ms=1000), [True, False, True, True, False]),
    ],
)
def test_a_request_counts_toward_goodput_only_if_it_meets_every_slo(slo, good):
    rows = _frame(
        [
            _row(0, ttft=0.1, tpot=0.04, e2e=0.5),
            _row(1, ttft=0.3, tpot=0.04, e2e=1.5),
            _row(2, ttft=0.1, tpot=None, e2e=0.1, tokens=1),  # one token: TPOT counts as 0, as vLLM's
            _row(3, ttft=0.1, tpot=0.06, e2e=0.9),
            _row(4, ttft=0.1, tpot=0.01, e2e=0.2, status="error"),  # failed requests are never good
        ]
    )
    assert slo.good(rows).tolist() == good


def test_slo_validation_and_vllm_spelling():
    assert SLO(ttft_ms=2000, tpot_ms=100).describe() == "ttft:2000 tpot:100"
    with pytest.raises(ValueError, match="at least one"):
        SLO(ttft_ms=None, tpot_ms=None)
    with pytest.raises(ValueError, match="positive"):
        SLO(ttft_ms=-1)


def test_a_level_summary_reports_goodput_over_the_levels_duration():
    rows = _frame([_row(i, ttft=0.1 if i % 2 else 0.5, tpot=0.02, e2e=1.0) for i in range(4)])
    s = summarize_level(rows, 2, SLO(ttft_ms=200, tpot_ms=None))
    assert s["duration_s"] == pytest.approx(4.0)  # started 0..3, each 1 s long
    assert s["good_requests"] == 2 and s["goodput"] == pytest.approx(0.5) and s["good_share"] == 0.5
    assert s["output_token_throughput"] == pytest.approx(40 / 4.0)
    assert s["ttft_p50_ms"] == pytest.approx(300) and s["itl_p95_ms"] == pytest.approx(20)


@pytest.mark.parametrize(
    ("throughput", "tolerance", "saturation"),
    [
        ([50, 95, 180, 300, 310, 305], 0.1, 8),
        ([50, 95, 180, 300, 310, 305], 0.0, 16),
        ([100, 100, 100], 0.1, 1),
        ([math.nan, math.nan], 0.1, None),
    ],
)
def test_saturation_is_where_more_concurrency_stops_paying(throughput, tolerance, saturation):
    concurrency = [2**i for i in range(len(throughput))]
    levels = pd.DataFrame({"concurrency": concurrency, "output_token_throughput": throughput})
    assert saturation_point(levels, tolerance) == saturation


@pytest.mark.parametrize(
    ("rate", "goodput", "replicas"),
    [(10.0, 2.5, 4), (10.0, 3.0, 4), (9.0, 3.0, 3), (0.5, 3.0, 1), (10.0, 0.0, None), (10.0, math.nan, None)],
)
def test_replicas_for_a_request_rate(rate, goodput, replicas):
    assert replicas_needed(rate, goodput) == replicas


def test_replicas_refuse_a_non_positive_rate():
    with pytest.raises(ValueError):
        replicas_needed(0, 1.0)


def test_analyse_picks_the_best_goodput_and_where_it_was():
    levels = pd.DataFrame(
        {"concurrency": [1, 2, 4, 8], "output_token_throughput": [40, 78, 140, 150], "goodput": [0.9, 1.7, 2.4, 1.1]}
    )
    result = analyse(levels, request_rate=10.0)
    assert (result.best_goodput, result.best_goodput_concurrency, result.replicas) == (2.4, 4, 5)
    assert result.saturation == 4


def test_level_requests_cycle_the_slice_with_unique_ids():
    base = [ServingRequest.chat("a", "x"), ServingRequest.chat("b", "y")]
    reqs = level_requests(base, 5, 4)
    assert [r.prompt_id for r in reqs] == ["a@c4#0", "b@c4#1", "a@c4#2", "b@c4#3", "a@c4#4"]
    assert reqs[3].messages == base[1].messages
    with pytest.raises(ValueError):
        level_requests([], 3, 1)


def test_run_sweep_sends_each_level_at_its_concurrency_in_model_time():
    sent = []

    def send(concurrency, requests):
        sent.append((concurrency, len(requests)))
        # a server whose latency grows with load, measured at time scale 0.1
        return [
            _row(i, ttft=0.01 * concurrency, tpot=0.002 * (1 + concurrency / 8), e2e=0.05 * concurrency)
            for i in range(len(requests))
        ]

    seen = []
    levels = run_sweep(
        send,
        [ServingRequest.chat("a", "x")],
        [1, 2, 4],
        slo=SLO(ttft_ms=250, tpot_ms=None),
        time_scale=0.1,
        requests_per_slot=3,
        min_requests=4,
        on_level=seen.append,
    )
    assert sent == [(1, 4), (2, 6), (4, 12)]
    assert levels["concurrency"].tolist() == [1, 2, 4] and len(seen) == 3
    assert levels["ttft_p50_ms"].tolist() == pytest.approx([100, 200, 400])  # divided by the time scale
    assert levels["good_share"].tolist() == [1.0, 1.0, 0.0]


def test_plot_is_a_png():
    levels = pd.DataFrame(
        {
            "concurrency": [1, 2, 4],
            "output_token_throughput": [40, 78, 140],
            "goodput": [0.9, 1.7, 2.4],
            "ttft_p95_ms": [90, 120, 400],
            "itl_p95_ms": [30, 32, 40],
        }
    )
    png = sweep_plot(levels, title="mistral-7b-awq", measured_against="simulator", slo=SLO())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
