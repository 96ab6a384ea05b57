"""A/B significance for pairwise judge verdicts: a two-sided sign test on wins vs losses.

Ties carry no information about which variant is better, so the sign test excludes them (reported in
``ties``). The interval is scipy's Wilson score interval (no continuity correction): it keeps close to nominal
coverage at small n and near 0 or 1, where the exact Clopper-Pearson interval is conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import binomtest

CI_METHOD = "wilson"


@dataclass(frozen=True)
class ABResult:
    """Win rate of B over A among decided pairs, its CI, the sign test's p-value; n = wins + losses."""

    win_rate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    wins: int = 0
    losses: int = 0
    ties: int = 0
    confidence: float = 0.95
    ci_method: str = CI_METHOD

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < 1 - self.confidence


def ab_test(wins: int, losses: int, ties: int = 0, *, confidence: float = 0.95) -> ABResult:
    """Sign test of H0 "wins and losses are equally likely" with the win rate's Wilson interval."""
    for name, value in (("wins", wins), ("losses", losses), ("ties", ties)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    wins, losses, ties = int(wins), int(losses), int(ties)
    n = wins + losses
    if n == 0:
        return ABResult(math.nan, math.nan, math.nan, math.nan, 0, wins, losses, ties, confidence)
    test = binomtest(wins, n, 0.5, alternative="two-sided")
    ci = test.proportion_ci(confidence_level=confidence, method=CI_METHOD)
    return ABResult(wins / n, float(ci.low), float(ci.high), float(test.pvalue), n, wins, losses, ties, confidence)
