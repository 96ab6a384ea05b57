"""Cost per 1M output tokens and the price configuration."""

from __future__ import annotations

import math

import pytest

from llmplat_dagster.evaluation.cost import DEFAULT_PRICES, NodePrice, cost_per_million_output_tokens, load_prices


@pytest.mark.parametrize(
    ("tps", "price", "expected"),
    [
        (100.0, 0.526, 0.526 / 360_000 * 1e6),  # 1.4611 $/1M
        (250.0, 0.2226, 0.2226 / 900_000 * 1e6),
        (1_000_000 / 3600, 1.0, 1.0),  # exactly 1M tokens per hour at $1/h
        (0.0, 0.5, math.inf),
        (0.0, 0.0, math.nan),
        (math.nan, 0.5, math.nan),
        (100.0, math.nan, math.nan),
        (None, 0.5, math.nan),
    ],
)
def test_cost_per_million(tps, price, expected):
    got = cost_per_million_output_tokens(tps, price)
    assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected)


def test_negative_inputs_raise():
    with pytest.raises(ValueError):
        cost_per_million_output_tokens(-1.0, 0.5)


def test_prices_from_configuration():
    prices = load_prices({"g4dn.xlarge": {"spot_per_hour": 0.2, "on_demand_per_hour": 0.526}})
    assert prices["g4dn.xlarge"] == NodePrice("g4dn.xlarge", 0.2, 0.526)
    assert prices["g4dn.xlarge"].per_hour("on_demand") == 0.526 and prices["g4dn.xlarge"].per_hour() == 0.2
    assert set(load_prices()) == set(DEFAULT_PRICES)


@pytest.mark.parametrize(
    "config",
    [
        {"g4dn.xlarge": {"spot_per_hour": 0.2}},
        {"g4dn.xlarge": {"spot_per_hour": -1, "on_demand_per_hour": 0.5}},
        {"g4dn.xlarge": {"spot_per_hour": "cheap", "on_demand_per_hour": 0.5}},
    ],
)
def test_bad_configuration_names_the_entry(config):
    with pytest.raises(ValueError, match="g4dn.xlarge"):
        load_prices(config)


def test_unknown_market():
    with pytest.raises(ValueError):
        NodePrice("x", 1.0, 2.0).per_hour("reserved")
