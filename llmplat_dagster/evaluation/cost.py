"""Node prices and cost per million output tokens.

Prices are configuration: ``load_prices`` validates a mapping shaped like ``DEFAULT_PRICES`` (instance type ->
spot and on-demand $/hour). The defaults are example list prices only, to make the schema concrete and the
demo runnable; a report must not be read as today's prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Market = Literal["spot", "on_demand"]

# EXAMPLE list prices, AWS us-east-1, Linux, recorded 2024-06 (on-demand from the public price list; spot
# varies by zone and hour, about $0.16-0.23/h for g4dn.xlarge then). Configure real values; do not trust these.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "g4dn.xlarge": {"spot_per_hour": 0.2226, "on_demand_per_hour": 0.526},
    "g4dn.2xlarge": {"spot_per_hour": 0.30, "on_demand_per_hour": 0.752},
    "g5.xlarge": {"spot_per_hour": 0.42, "on_demand_per_hour": 1.006},
}


@dataclass(frozen=True)
class NodePrice:
    """What one node of an instance type costs per hour, on the spot market and on demand."""

    instance_type: str
    spot_per_hour: float
    on_demand_per_hour: float

    def __post_init__(self) -> None:
        for name in ("spot_per_hour", "on_demand_per_hour"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{self.instance_type}: {name} must be a finite number >= 0, got {value!r}")

    def per_hour(self, market: Market = "spot") -> float:
        if market not in ("spot", "on_demand"):
            raise ValueError(f"market must be 'spot' or 'on_demand', got {market!r}")
        return self.spot_per_hour if market == "spot" else self.on_demand_per_hour


def load_prices(config: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, NodePrice]:
    """NodePrice per instance type from configuration (``DEFAULT_PRICES``'s shape); errors name the entry."""
    out: dict[str, NodePrice] = {}
    for instance_type, entry in (DEFAULT_PRICES if config is None else config).items():
        missing = {"spot_per_hour", "on_demand_per_hour"} - set(entry)
        if missing:
            raise ValueError(f"{instance_type}: missing {', '.join(sorted(missing))}")
        out[instance_type] = NodePrice(instance_type, entry["spot_per_hour"], entry["on_demand_per_hour"])
    return out


def cost_per_million_output_tokens(output_tokens_per_s: float, price_per_hour: float) -> float:
    """Dollars per 1M output tokens for a node producing ``output_tokens_per_s`` while it is paid for.

    The throughput is whatever the measurement achieved (its concurrency), so the cost is for that load;
    an idle or failing server (0 tokens/s) costs infinitely much per token, an unknown one is NaN.
    """
    if price_per_hour is None or output_tokens_per_s is None:
        return math.nan
    tps, price = float(output_tokens_per_s), float(price_per_hour)
    if math.isnan(tps) or math.isnan(price):
        return math.nan
    if price < 0 or tps < 0:
        raise ValueError(f"price and throughput must be >= 0, got {price} $/h and {tps} tokens/s")
    if tps == 0:
        return math.inf if price > 0 else math.nan
    return price / (tps * 3600.0) * 1e6
