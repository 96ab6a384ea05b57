"""Pareto frontier on constructed points, the plot and the markdown table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmplat_dagster.evaluation.pareto import (
    dominated_by,
    markdown_table,
    not_separable_from,
    pareto_frontier,
    pareto_plot,
)


def _df(points: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    rows = [{"variant": k, "quality": q, "p95_latency_s": lat, "cost_per_mtok": c} for k, (q, lat, c) in points.items()]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("points", "frontier", "dominators"),
    [
        # fp16 best quality; awq faster and cheaper; lora worse than awq on everything
        (
            {"fp16": (1.0, 4.0, 3.0), "awq": (0.97, 2.0, 1.0), "lora": (0.95, 2.5, 1.2)},
            {"fp16": True, "awq": True, "lora": False},
            {"lora": ["awq"]},
        ),
        # equal points do not dominate each other
        ({"a": (0.9, 1.0, 1.0), "b": (0.9, 1.0, 1.0)}, {"a": True, "b": True}, {}),
        # equal on two objectives, better on one: dominates
        ({"a": (0.9, 1.0, 1.0), "b": (0.9, 1.0, 1.5)}, {"a": True, "b": False}, {"b": ["a"]}),
        # dominated by two
        (
            {"a": (0.9, 1.0, 1.0), "b": (0.95, 1.0, 2.0), "c": (0.8, 3.0, 3.0)},
            {"a": True, "b": True, "c": False},
            {"c": ["a", "b"]},
        ),
        # a missing value is the worst possible: that variant cannot dominate
        ({"a": (0.9, 1.0, math.nan), "b": (0.8, 2.0, 1.0)}, {"a": True, "b": True}, {}),
        ({"a": (0.9, 1.0, math.nan), "b": (0.9, 1.0, 1.0)}, {"a": False, "b": True}, {"a": ["b"]}),
        # infinite cost (zero throughput) is worse than any finite cost
        ({"a": (0.9, 1.0, math.inf), "b": (0.9, 1.0, 1.0)}, {"a": False, "b": True}, {"a": ["b"]}),
        ({"only": (0.5, 1.0, 1.0)}, {"only": True}, {}),
    ],
)
def test_frontier(points, frontier, dominators):
    df = _df(points)
    on = pareto_frontier(df)
    assert dict(zip(df["variant"], on, strict=True)) == frontier
    assert on.name == "on_frontier"
    by = dict(zip(df["variant"], dominated_by(df), strict=True))
    assert by == {k: dominators.get(k, []) for k in points}


def _with_intervals(points: dict, half_widths: dict) -> pd.DataFrame:
    df = _df(points)
    for col, half in half_widths.items():
        df[f"{col}_ci_low"] = df[col] - half
        df[f"{col}_ci_high"] = df[col] + half
    return df


@pytest.mark.parametrize(
    ("half_widths", "dominated", "inseparable"),
    [
        # tight intervals: lora is credibly slower and costlier than awq
        ({"p95_latency_s": 0.05, "cost_per_mtok": 0.05, "quality": 0.001}, {"lora": ["awq"]}, {}),
        # wide intervals: awq only looks better; noise could flip it
        ({"p95_latency_s": 1.0, "cost_per_mtok": 0.5, "quality": 0.05}, {}, {"lora": ["awq"]}),
        # separated on one objective is enough, the point estimates already agree on the others
        ({"p95_latency_s": 1.0, "cost_per_mtok": 0.05, "quality": 0.05}, {"lora": ["awq"]}, {}),
    ],
)
def test_overlapping_intervals_are_not_separable_instead_of_dominated(half_widths, dominated, inseparable):
    df = _with_intervals({"fp16": (1.0, 4.0, 3.0), "awq": (0.97, 2.0, 1.0), "lora": (0.95, 2.5, 1.2)}, half_widths)
    names = df["variant"].tolist()
    assert dict(zip(names, dominated_by(df), strict=True)) == {k: dominated.get(k, []) for k in names}
    assert dict(zip(names, not_separable_from(df), strict=True)) == {k: inseparable.get(k, []) for k in names}
    assert dict(zip(names, pareto_frontier(df), strict=True))["lora"] is (not dominated)


def test_custom_objectives():
    df = pd.DataFrame({"variant": ["a", "b"], "q": [1.0, 2.0], "lat": [1.0, 5.0]})
    assert pareto_frontier(df, maximize=("q",), minimize=()).tolist() == [False, True]
    assert pareto_frontier(df, maximize=(), minimize=("lat",)).tolist() == [True, False]
    with pytest.raises(ValueError):
        pareto_frontier(df, maximize=(), minimize=())


@pytest.mark.parametrize("intervals", [False, True])
def test_plot_is_a_png(intervals):
    points = {"fp16": (1.0, 4.0, 3.0), "awq": (0.97, 2.0, math.nan), "lora": (0.95, 2.5, math.inf)}
    df = _with_intervals(points, {"p95_latency_s": 0.3, "quality": 0.02}) if intervals else _df(points)
    df["on_frontier"] = pareto_frontier(df)
    png = pareto_plot(df, measured_against="llmplat-sim (simulator, not a measurement)")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_markdown_table():
    df = _df({"fp16": (1.0, 4.0, 3.0), "lora": (0.95, 2.5, 1.2)})
    df["on_frontier"] = [True, False]
    df["dominated_by"] = [[], ["awq", "fp16"]]
    text = markdown_table(df)
    lines = text.splitlines()
    assert lines[0].startswith("| variant") and "on_frontier" in lines[0]
    assert "| yes" in lines[2] and "awq, fp16" in lines[3]
