"""Promotion gate: passes and fails on constructed intervals, naming the rule and the margin."""

from __future__ import annotations

import math

import pytest

from llmplat_dagster.evaluation.bootstrap import CI
from llmplat_dagster.evaluation.gate import GateRules, evaluate_gate


@pytest.mark.parametrize(
    ("low", "rate", "passed", "messages"),
    [
        (-0.01, 0.02, True, []),
        (-0.1, 0.1, True, []),  # exactly at both thresholds passes
        (-0.132, 0.02, False, ["quality delta lower bound -0.132 < -0.1 by 0.032"]),
        (-0.01, 0.15, False, ["judge parse-failure rate 0.150 > 0.1 by 0.050"]),
        (
            -0.3,
            0.5,
            False,
            ["quality delta lower bound -0.300 < -0.1 by 0.200", "judge parse-failure rate 0.500 > 0.1 by 0.400"],
        ),
        (-0.01, math.nan, True, []),  # judge not run: the judge rule is skipped, not failed
        (-0.01, None, True, []),
        (math.nan, 0.0, False, ["quality delta lower bound unavailable (accuracy, n=0 paired prompts)"]),
    ],
)
def test_gate(low, rate, passed, messages):
    n = 0 if math.isnan(low) else 100
    result = evaluate_gate(CI(0.0 if n else math.nan, low, 0.01, n), rate, GateRules())
    assert result.passed is passed
    assert result.tripped == messages
    assert result.details["min_quality_delta_low"] == -0.1 and result.details["metric"] == "accuracy"
    assert result.details["judge_rule"] == (
        "checked" if rate is not None and not math.isnan(rate) else "skipped: no judge scores"
    )


def test_configured_thresholds_are_used():
    rules = GateRules(min_quality_delta_low=-0.2, max_parse_failure_rate=0.5, metric="exact_match")
    result = evaluate_gate(CI(-0.1, -0.15, -0.05, 50), 0.4, rules)
    assert result.passed and result.details["metric"] == "exact_match"
    strict = evaluate_gate(CI(-0.1, -0.15, -0.05, 50), 0.4, GateRules(min_quality_delta_low=-0.12))
    assert strict.tripped[0] == "quality delta lower bound -0.150 < -0.12 by 0.030"


@pytest.mark.parametrize("kwargs", [{"metric": "kl_divergence"}, {"metric": "nope"}, {"max_parse_failure_rate": 1.5}])
def test_invalid_rules_are_refused(kwargs):
    with pytest.raises(ValueError):
        GateRules(**kwargs)
