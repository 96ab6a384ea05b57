"""The trend frame: one row per night and variant from each night's comparison figures."""

import pytest

from llmplat_dagster.evaluation.trend import trend_frame

AWQ, LORA = "mistral-7b-awq", "mistral-7b-lora"


def test_one_row_per_night_and_variant_oldest_first():
    records = [
        ("2026-11-29", {AWQ: {"quality_delta": -0.02, "e2e_p95_s": 1.1}, LORA: {"quality_delta": 0.0}}),
        ("2026-11-28", {AWQ: {"quality_delta": -0.01, "e2e_p95_s": 1.0}}),
    ]
    frame = trend_frame(records, nights=14)
    assert list(zip(frame["night"], frame["variant"], strict=True)) == [
        ("2026-11-28", AWQ),
        ("2026-11-29", AWQ),
        ("2026-11-29", LORA),
    ]
    assert frame.loc[frame["night"] == "2026-11-29", "quality_delta"].tolist() == [-0.02, 0.0]


def test_the_newest_record_of_a_night_wins_and_only_the_last_nights_are_kept():
    records = [  # newest first, as the instance returns them: a re-run of 11-29 after the first
        ("2026-11-30", {AWQ: {"quality_delta": -0.03}}),
        ("2026-11-29", {AWQ: {"quality_delta": -0.05}}),
        ("2026-11-29", {AWQ: {"quality_delta": -0.50}}),
        ("2026-11-28", {AWQ: {"quality_delta": -0.01}}),
    ]
    frame = trend_frame(records, nights=2)
    assert frame["night"].tolist() == ["2026-11-29", "2026-11-30"]
    assert frame["quality_delta"].tolist() == [-0.05, -0.03]


def test_unknown_series_and_non_numbers_are_ignored():
    frame = trend_frame([("2026-11-28", {AWQ: {"quality_delta": "n/a", "something": 1.0}})], nights=3)
    assert frame.empty and {"night", "variant", "quality_delta", "e2e_p95_s"} <= set(frame.columns)


@pytest.mark.parametrize("nights", [0, -1])
def test_a_trend_needs_a_night(nights):
    with pytest.raises(ValueError, match="at least one night"):
        trend_frame([], nights)


def test_the_trend_plot_is_a_png():
    from llmplat_dagster.evaluation.trend import trend_plot

    frame = trend_frame([("2026-11-28", {AWQ: {"quality_delta": -0.01, "e2e_p95_s": 1.0}})], nights=3)
    png = trend_plot(frame, "simulator (test)")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
