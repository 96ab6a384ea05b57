"""Bootstrap spread of p95 latency, throughput and cost; the simulator's time base and the way back."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pandas as pd
import pytest

from llmplat_dagster.evaluation.spread import BOOTSTRAP_MAX_ROWS, quantile_interval, serving_spread
from llmplat_dagster.serving.timebase import Timebase, probe_timebase, to_model_time


def _rows(e2e: np.ndarray, tokens: np.ndarray, concurrency: int = 1) -> pd.DataFrame:
    """Requests in ``concurrency`` lanes, back to back in each."""
    started = np.zeros(len(e2e))
    lanes = np.zeros(concurrency)
    for i, d in enumerate(e2e):
        lane = int(np.argmin(lanes))
        started[i], lanes[lane] = lanes[lane], lanes[lane] + d
    return pd.DataFrame({"status": "ok", "e2e_s": e2e, "output_tokens": tokens, "started_s": started})


def test_point_estimates_are_the_measured_figures_and_the_intervals_bracket_them():
    rng = np.random.default_rng(0)
    e2e = rng.gamma(4.0, 0.5, size=200)
    tokens = rng.integers(20, 200, size=200).astype(float)
    rows = _rows(e2e, tokens, concurrency=4)
    spread = serving_spread(rows, 0.2226, n_resamples=1000, seed=1)
    span = (rows["started_s"] + rows["e2e_s"]).max() - rows["started_s"].min()
    assert spread.e2e_p95_s.value == pytest.approx(np.percentile(e2e, 95))
    assert spread.output_token_throughput.value == pytest.approx(tokens.sum() / span)
    assert spread.cost_per_mtok.value == pytest.approx(0.2226 / (tokens.sum() / span * 3600) * 1e6)
    for interval in (spread.e2e_p95_s, spread.output_token_throughput, spread.cost_per_mtok):
        assert interval.low < interval.value < interval.high
    assert serving_spread(rows, 0.2226, n_resamples=1000, seed=1) == spread  # seeded


def test_more_requests_narrow_the_intervals():
    rng = np.random.default_rng(1)

    def width(n: int) -> float:
        s = serving_spread(_rows(rng.gamma(4.0, 0.5, n), rng.integers(20, 200, n).astype(float)), 1.0, seed=0)
        return s.output_token_throughput.high - s.output_token_throughput.low

    assert width(800) < width(50)


def test_failed_and_missing_rows_are_left_out_and_nothing_measured_is_nan():
    rows = _rows(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]))
    rows.loc[1, "status"] = "error"
    assert serving_spread(rows, 1.0).n == 2
    empty = serving_spread(rows.assign(status="error"), 1.0)
    assert empty.n == 0 and math.isnan(empty.e2e_p95_s.value) and math.isnan(empty.cost_per_mtok.high)


def test_large_samples_use_the_order_statistic_interval_which_agrees_with_the_bootstrap():
    rng = np.random.default_rng(2)
    values = rng.lognormal(0, 0.5, size=BOOTSTRAP_MAX_ROWS + 1)
    big = quantile_interval(values, 95)
    boot = quantile_interval(values[:BOOTSTRAP_MAX_ROWS], 95, n_resamples=400)
    assert big.low < big.value < big.high
    assert big.high - big.low == pytest.approx(boot.high - boot.low, rel=0.35)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, json={"simulator": "llmplat-sim", "time_scale": 0.05}), Timebase(0.05, True)),
        (httpx.Response(404, json={"detail": "Not Found"}), Timebase()),
        (httpx.Response(200, json={"simulator": "other"}), Timebase()),
        (httpx.Response(200, text="not json"), Timebase()),
        (httpx.ConnectError("refused"), Timebase()),
    ],
)
def test_probe_timebase_knows_the_simulator_and_takes_anything_else_as_real(answer, expected):
    def get(url, timeout):
        assert url == "http://sim:8000/sim/info"
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert probe_timebase("http://sim:8000/", get=get) == expected


def test_the_label_says_simulated_and_at_which_scale():
    assert Timebase(0.05, True).label.startswith("simulated (llmplat-sim at time scale 0.05")
    assert Timebase(0.05, True).raw_label.startswith("simulated, as measured at llmplat-sim's time scale 0.05")
    assert Timebase().label == Timebase().raw_label == "measured (real server time)"
    with pytest.raises(ValueError):
        Timebase(0.0, True)


def test_to_model_time_divides_every_time_by_the_scale():
    rows = pd.DataFrame(
        {"ttft_s": [0.005, 0.01], "e2e_s": [0.1, None], "itl_s": [[0.001, 0.002], []], "output_tokens": [10, 20]}
    )
    out = to_model_time(rows, 0.05)
    assert out["ttft_s"].tolist() == pytest.approx([0.1, 0.2]) and out["e2e_s"].iloc[0] == pytest.approx(2.0)
    assert out["itl_s"].iloc[0] == pytest.approx([0.02, 0.04]) and out["output_tokens"].tolist() == [10, 20]
    assert math.isnan(out["e2e_s"].iloc[1]) and rows["ttft_s"].iloc[0] == 0.005  # a copy, the input untouched
    per_row = to_model_time(rows, pd.Series([0.5, 1.0]))
    assert per_row["ttft_s"].tolist() == pytest.approx([0.01, 0.01])
