"""The comparison's markdown report: one row per variant, every figure with its interval, unit and time base."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from llmplat_dagster.evaluation.gate import GateResult, GateRules
from llmplat_dagster.evaluation.judge import SAME_FAMILY_NOTE
from llmplat_dagster.evaluation.pareto import markdown_table


def _nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def interval(value: float, low: float, high: float, fmt: str = ".3g", signed: bool = False) -> str:
    """``value [low, high]`` (or ``—`` when unknown), in one format."""
    if _nan(value):
        return "—"
    f = ("+" if signed else "") + fmt
    ends = "" if _nan(low) or _nan(high) else f" [{low:{f}}, {high:{f}}]"
    return f"{value:{f}}{ends}"


def _accuracy(row: pd.Series) -> str:
    if not row.get("accuracy_n"):
        return "— (no checkable prompts)"
    text = interval(row["accuracy"], row["accuracy_ci_low"], row["accuracy_ci_high"], ".2f")
    return f"{text} ({int(row['accuracy_correct'])}/{int(row['accuracy_n'])})"


def _accuracy_delta(row: pd.Series) -> str:
    if row["role"] == "reference":
        return "reference"
    if _nan(row.get("accuracy_delta")):
        return "n/a"
    text = interval(row["accuracy_delta"], row["accuracy_delta_ci_low"], row["accuracy_delta_ci_high"], ".3f", True)
    gained, lost = int(row["accuracy_gained"]), int(row["accuracy_lost"])
    return f"{text} McNemar p={row['accuracy_mcnemar_p']:.2g} (+{gained}/−{lost})"


def _gate_delta(row: pd.Series) -> str:
    if row["role"] == "reference":
        return "reference"
    if _nan(row["quality_delta"]):
        return "n/a"
    return interval(row["quality_delta"], row["quality_delta_ci_low"], row["quality_delta_ci_high"], ".4f", True)


def _spread(pv: pd.DataFrame, column: str, fmt: str) -> pd.Series:
    return pv.apply(lambda r: interval(r[column], r[f"{column}_ci_low"], r[f"{column}_ci_high"], fmt), axis=1)


def report_markdown(
    per_variant: pd.DataFrame,
    gates: dict[str, GateResult],
    rules: GateRules,
    measured_against: str,
    unpaired: dict[str, dict[str, list]],
    confidence: float,
    time_basis: Sequence[str] = (),
) -> str:
    """The table, the gates, what was left out and how to read it."""
    pv = per_variant
    ci = f"[{confidence:.0%} CI]"
    columns = {
        "variant": pv["variant"],
        f"accuracy {ci}": pv.apply(_accuracy, axis=1),
        f"Δ accuracy vs reference {ci}": pv.apply(_accuracy_delta, axis=1),
    }
    if rules.metric != "accuracy":
        columns[f"Δ {rules.metric} vs reference {ci}"] = pv.apply(_gate_delta, axis=1)
    columns |= {
        "ROUGE-L vs reference": pv["similarity_mean"],
        "top-k KL vs reference": pv["kl_mean"],
        "judge mean": pv["judge_mean"],
        "judge parse failures": pv["judge_parse_failure_rate"],
        f"p95 e2e (s) {ci}": _spread(pv, "e2e_s_p95", ".3g"),
        f"output tokens/s {ci}": _spread(pv, "output_token_throughput", ".3g"),
        f"$ / 1M output tokens {ci}": _spread(pv, "cost_per_mtok", ".3g"),
        "on frontier": pv["on_frontier"],
        "dominated by": pv["dominated_by"],
        "not separable from": pv["not_separable_from"],
        "gate": pv["gate_passed"].map({True: "pass", False: "FAIL"}).fillna("—"),
    }
    lines = ["## Quantization-quality comparison", "", f"Measured against: {measured_against}", ""]
    if time_basis:
        lines += [f"Latency, throughput and cost: {'; '.join(time_basis)}", ""]
    lines += [markdown_table(pd.DataFrame(columns)), ""]
    threshold = rules.min_quality_delta_low
    lines.append(f"- gate metric: {rules.metric} (the lower bound of its delta's CI must be >= {threshold:g})")
    for variant, gate in gates.items():
        lines.append(f"- {variant}: gate {'passed' if gate.passed else 'FAILED: ' + '; '.join(gate.tripped)}")
    for variant, ids in unpaired.items():
        if ids["reference"] or ids["candidate"]:
            lines.append(
                f"- {variant}: {len(ids['reference'])} prompt(s) ok on the reference only, "
                f"{len(ids['candidate'])} on the candidate only (left out of the paired metrics)"
            )
    lines += [
        "",
        "Accuracy is the share of checkable prompts whose response passes every assertion of the prompt; the delta "
        "is paired by prompt (bootstrap CI; McNemar's exact p over the prompts only one side got right, shown as "
        "+gained/−lost). A variant is dominated only when another is at least as good everywhere and its interval "
        "lies wholly on the better side of this one's on some objective; better only within overlapping intervals "
        "is listed as not separable.",
        "",
        f"> {SAME_FAMILY_NOTE}",
        "",
    ]
    return "\n".join(lines)
