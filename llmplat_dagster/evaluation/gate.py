"""Promotion gate: a candidate passes when its quality is not credibly worse than FP16 and its judge is readable.

Uses the CI's lower bound, not the mean: a small sample with a wide interval fails instead of passing on luck.
A missing quality interval (no paired prompts) fails; a missing judge parse-failure rate (judge not run) is
reported in ``details`` and does not trip, since judge scoring is optional.

The default gates on task accuracy (the prompts' assertions), not on agreement with FP16: a 4-bit model whose
greedy answers diverge in wording but not in substance should pass, and one that is more often right than the
reference must not count as worse. The threshold, -0.10, is calibrated on the 42-prompt quant-sensitivity set
against the simulator (sim/README.md, "Calibration"): published AWQ INT4 losses at 7B are 1-5 points, and with 42
prompts a paired 95% interval is about +-7 points wide, so a candidate fails when a loss of more than 10 points
cannot be ruled out. Against the simulator a typical AWQ (~2-point loss) passes about 4 nights in 5, one losing ~7
points fails 9 in 10, one losing 11 fails 39 in 40; more checkable prompts narrow the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the rules are configuration a code location loads; numpy is for when a gate is evaluated
    from llmplat_dagster.evaluation.bootstrap import CI

GATE_METRICS = ("accuracy", "similarity", "exact_match", "token_agreement", "judge_score")  # higher is better, all
DEFAULT_METRIC = "accuracy"
DEFAULT_MIN_DELTA_LOW = -0.10


@dataclass(frozen=True)
class GateRules:
    """Thresholds; ``metric`` is the per-prompt metric whose candidate - reference delta is bootstrapped."""

    min_quality_delta_low: float = DEFAULT_MIN_DELTA_LOW
    max_parse_failure_rate: float = 0.1
    metric: str = DEFAULT_METRIC

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ValueError(f"gate metric must be one of {', '.join(GATE_METRICS)}, got {self.metric!r}")
        if not 0.0 <= self.max_parse_failure_rate <= 1.0:
            raise ValueError(f"max_parse_failure_rate must be in [0, 1], got {self.max_parse_failure_rate}")


@dataclass(frozen=True)
class GateResult:
    """Whether the candidate passed, one message per tripped rule (rule, value, threshold, margin), numbers."""

    passed: bool
    tripped: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def evaluate_gate(ci: CI, parse_failure_rate: float | None, rules: GateRules) -> GateResult:
    """Apply both rules; every tripped rule is listed, not only the first."""
    tripped: list[str] = []
    low, threshold = ci.low, rules.min_quality_delta_low
    if low is None or math.isnan(low):
        tripped.append(f"quality delta lower bound unavailable ({rules.metric}, n={ci.n} paired prompts)")
    elif low < threshold:
        tripped.append(f"quality delta lower bound {low:.3f} < {threshold:g} by {threshold - low:.3f}")
    rate, max_rate = parse_failure_rate, rules.max_parse_failure_rate
    judged = rate is not None and not math.isnan(rate)
    if judged and rate > max_rate:
        tripped.append(f"judge parse-failure rate {rate:.3f} > {max_rate:g} by {rate - max_rate:.3f}")
    details = {
        "metric": rules.metric,
        "quality_delta": ci.delta,
        "quality_delta_low": low,
        "quality_delta_high": ci.high,
        "min_quality_delta_low": threshold,
        "n": ci.n,
        "confidence": ci.confidence,
        "parse_failure_rate": rate if judged else None,
        "max_parse_failure_rate": max_rate,
        "judge_rule": "checked" if judged else "skipped: no judge scores",
    }
    return GateResult(not tripped, tripped, details)
