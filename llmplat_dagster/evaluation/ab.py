"""A/B significance for pairwise judge verdicts: a win rate with ties counted half, and a two-sided sign test.

The win rate is (wins + ties / 2) / pairs, the convention of pairwise leaderboards: a treatment no better and no
worse than its control scores 0.5, however many pairs the judge calls a tie. Its interval is a Wilson score
interval (close to nominal coverage at small n and near 0 or 1). Ties carry no information about which variant is
better, so the sign test uses the decided pairs only; with none decided there is no evidence of a difference
(p = 1). ``decided_win_rate`` is wins / (wins + losses) for those who want it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmplat_dagster.evaluation.accuracy import wilson

CI_METHOD = "wilson"


@dataclass(frozen=True)
class ABResult:
    """Win rate of B over A (ties half) over ``pairs``, its CI, the sign test's p-value; n = wins + losses."""

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
    def pairs(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def decided_win_rate(self) -> float:
        return self.wins / self.n if self.n else math.nan

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < 1 - self.confidence


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins against losses; 1.0 when nothing was decided."""
    if wins + losses == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def ab_test(wins: int, losses: int, ties: int = 0, *, confidence: float = 0.95) -> ABResult:
    """Sign test of H0 "wins and losses are equally likely" and the ties-half win rate with its Wilson interval."""
    for name, value in (("wins", wins), ("losses", losses), ("ties", ties)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    wins, losses, ties = int(wins), int(losses), int(ties)
    pairs = wins + losses + ties
    if pairs == 0:
        return ABResult(math.nan, math.nan, math.nan, math.nan, 0, 0, 0, 0, confidence)
    rate = (wins + ties / 2) / pairs
    low, high = wilson(wins + ties / 2, pairs, confidence)
    return ABResult(rate, low, high, sign_test_p(wins, losses), wins + losses, wins, losses, ties, confidence)


def ab_plot(result: ABResult, *, control: str, treatment: str, measured_against: str) -> bytes:
    """PNG: the treatment's wins, ties and losses as one stacked bar, and its win rate with the CI against the 0.5
    a treatment no better than its control would score."""
    from llmplat_dagster.plots import figure, png

    with figure(1, 2, figsize=(9, 2.8), dpi=100, gridspec_kw={"width_ratios": [3, 2]}) as (fig, (bars, rate)):
        left = 0
        for count, label, colour in (
            (result.wins, f"{treatment} better", "#2a9d8f"),
            (result.ties, "tie / inconsistent", "#bbbbbb"),
            (result.losses, f"{control} better", "#e76f51"),
        ):
            bars.barh([0], [count], left=left, color=colour, label=f"{label} ({count})")
            left += count
        bars.set_yticks([])
        bars.set_xlabel("prompt pairs (judged in both orders)")
        bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3, frameon=False)
        if not math.isnan(result.win_rate):
            rate.errorbar(
                [result.win_rate],
                [0],
                xerr=[[result.win_rate - result.ci_low], [result.ci_high - result.win_rate]],
                fmt="o",
                capsize=5,
                color="#264653",
            )
        rate.axvline(0.5, color="grey", linestyle="--", linewidth=1)
        rate.set_xlim(0, 1)
        rate.set_yticks([])
        rate.set_xlabel(f"win rate (ties half), 95% CI; sign test p={result.p_value:.3g}", fontsize=8)
        fig.suptitle(f"{treatment} vs {control} — measured against {measured_against}", fontsize=9)
        return png(fig)
