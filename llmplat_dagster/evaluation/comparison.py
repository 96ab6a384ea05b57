"""The quantization-quality comparison: one call from result rows to the report the Dagster asset persists.

Every text metric is the candidate against the FP16 reference on the same prompt, so the reference's own
level is 1.0 by definition (0 for KL) and a candidate's quality delta is its metric minus 1.0, bootstrapped
over prompts. With ``rules.metric == "judge_score"`` the delta is candidate minus reference judge score on the
prompts both were scored on. Latency percentiles and throughput come from ``serving.results.latency_summary``
over all of a variant's rows (errors count in its error rate); cost uses that measured throughput.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmplat_dagster.evaluation.bootstrap import CI, paired_bootstrap_ci, paired_bootstrap_cis
from llmplat_dagster.evaluation.cost import cost_per_million_output_tokens
from llmplat_dagster.evaluation.gate import GateResult, GateRules, evaluate_gate
from llmplat_dagster.evaluation.judge import SAME_FAMILY_NOTE
from llmplat_dagster.evaluation.pareto import dominated_by, markdown_table, pareto_frontier, pareto_plot
from llmplat_dagster.evaluation.quality import CODES, OK, encode_tokens, pair_outputs, per_prompt_metrics
from llmplat_dagster.serving.results import latency_summary

REFERENCE = "mistral-7b-fp16"
CANDIDATES = ("mistral-7b-awq", "mistral-7b-lora")
REQUIRED = ("prompt_id", "variant", "status", "output_text")
_LATENCY = ("ttft_s", "tpot_s", "e2e_s", "output_tokens", "prompt_tokens", "started_s", "dispatch_delay_s")
_TEXT_MEANS = {
    "exact_match": "exact_match_mean",
    "token_agreement": "token_agreement_mean",
    "similarity": "similarity_mean",
    "kl_divergence": "kl_mean",
}
_SELF = {"exact_match_mean": 1.0, "token_agreement_mean": 1.0, "similarity_mean": 1.0}


@dataclass
class ComparisonReport:
    """Everything the asset persists and shows; ``unpaired`` lists prompt ids per candidate and side."""

    per_prompt: pd.DataFrame
    per_variant: pd.DataFrame
    gates: dict[str, GateResult]
    markdown: str
    plot_png: bytes
    measured_against: str
    unpaired: dict[str, dict[str, list]] = field(default_factory=dict)


def _latency(frame: pd.DataFrame) -> dict[str, float]:
    """latency_summary on the columns it reads; ITL gaps are not reported here, so they are not pooled."""
    slim = frame.drop(columns="variant")
    slim["itl_s"] = [[]] * len(slim)
    s = latency_summary(slim)
    keys = [f"{m}_p{q}" for m in ("ttft_s", "tpot_s", "e2e_s") for q in (50, 95, 99)]
    return {
        "requests": s["requests"],
        "error_rate": s["error_rate"],
        **{k: s[k] for k in keys},
        "output_token_throughput": s["output_token_throughput"],
    }


def _judge(judge_scores: pd.DataFrame | None, variant: str) -> dict[str, float]:
    if judge_scores is None:
        return {"judge_mean": math.nan, "judge_n": 0, "judge_parse_failure_rate": math.nan}
    scores = judge_scores.loc[judge_scores["variant"] == variant, "score"].astype(float)
    return {
        "judge_mean": float(scores.mean()) if scores.notna().any() else math.nan,
        "judge_n": int(len(scores)),
        "judge_parse_failure_rate": float(scores.isna().mean()) if len(scores) else math.nan,
    }


def _judge_pairs(
    judge_scores: pd.DataFrame | None, reference: str, candidate: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt ids, candidate scores, reference scores) of the prompts both were judged on."""
    if judge_scores is None:
        return np.array([], dtype=object), np.array([]), np.array([])
    js = judge_scores.drop_duplicates(["variant", "prompt_id"])
    ref = js[js["variant"] == reference][["prompt_id", "score"]]
    both = js[js["variant"] == candidate][["prompt_id", "score"]].merge(ref, on="prompt_id", suffixes=("_c", "_r"))
    return (
        both["prompt_id"].to_numpy(dtype=object),
        both["score_c"].to_numpy(dtype=float),
        both["score_r"].to_numpy(dtype=float),
    )


def _quality_cis(
    samples: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], *, n_resamples: int, confidence: float, seed: int
) -> dict[str, CI]:
    """Paired bootstrap CI per candidate; candidates paired on the very same prompts share one index matrix
    (same result as separate calls with the same seed, at about half the cost for two candidates)."""
    ids = [v[0] for v in samples.values()]
    shared = len(ids) > 1 and all(np.array_equal(ids[0], i) for i in ids[1:]) and len(ids[0]) > 0
    if shared and all(np.isfinite(v[1]).all() and np.isfinite(v[2]).all() for v in samples.values()):
        cand = np.column_stack([v[1] for v in samples.values()])
        ref = np.column_stack([v[2] for v in samples.values()])
        cis = paired_bootstrap_cis(cand, ref, n_resamples=n_resamples, confidence=confidence, seed=seed)
        return dict(zip(samples, cis, strict=True))

    def one(sample: tuple[np.ndarray, np.ndarray, np.ndarray]) -> CI:
        return paired_bootstrap_ci(sample[1], sample[2], n_resamples=n_resamples, confidence=confidence, seed=seed)

    # numpy releases the GIL in integers/take/sum; each call owns its generator, so threads change no number
    workers = max(1, min(len(samples), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
    with ThreadPoolExecutor(workers) as pool:
        return dict(zip(samples, pool.map(one, samples.values()), strict=True))


def _delta_text(row: pd.Series) -> str:
    if row["role"] == "reference":
        return "reference"
    if math.isnan(row["quality_delta"]):
        return "n/a"
    return f"{row['quality_delta']:+.4f} [{row['quality_delta_ci_low']:+.4f}, {row['quality_delta_ci_high']:+.4f}]"


def _markdown(
    per_variant: pd.DataFrame,
    gates: dict[str, GateResult],
    rules: GateRules,
    measured_against: str,
    unpaired: dict[str, dict[str, list]],
    confidence: float,
) -> str:
    table = pd.DataFrame(
        {
            "variant": per_variant["variant"],
            f"Δ {rules.metric} vs reference [{confidence:.0%} CI]": per_variant.apply(_delta_text, axis=1),
            "judge mean": per_variant["judge_mean"],
            "judge parse failures": per_variant["judge_parse_failure_rate"],
            "p95 e2e (s)": per_variant["p95_latency_s"],
            "$ / 1M output tokens": per_variant["cost_per_mtok"],
            "on frontier": per_variant["on_frontier"],
            "dominated by": per_variant["dominated_by"],
            "gate": per_variant["gate_passed"].map({True: "pass", False: "FAIL"}).fillna("—"),
        }
    )
    lines = [
        "## Quantization-quality comparison",
        "",
        f"Measured against: {measured_against}",
        "",
        markdown_table(table),
        "",
    ]
    for variant, gate in gates.items():
        lines.append(f"- {variant}: gate {'passed' if gate.passed else 'FAILED: ' + '; '.join(gate.tripped)}")
    for variant, ids in unpaired.items():
        if ids["reference"] or ids["candidate"]:
            lines.append(
                f"- {variant}: {len(ids['reference'])} prompt(s) ok on the reference only, "
                f"{len(ids['candidate'])} on the candidate only (left out of the paired metrics)"
            )
    lines += ["", f"> {SAME_FAMILY_NOTE}", ""]
    return "\n".join(lines)


def compare(
    rows: pd.DataFrame,
    *,
    reference: str = REFERENCE,
    candidates: Sequence[str] = CANDIDATES,
    judge_scores: pd.DataFrame | None = None,
    prices: Mapping[str, float] | None = None,
    rules: GateRules | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    measured_against: str,
) -> ComparisonReport:
    """Per-prompt metrics, per-variant summary with CIs, gates, Pareto frontier, markdown and a PNG plot.

    ``rows``: result rows of every variant (columns as ``serving.results.RequestResult``; ``top_logprobs``
    optional). ``judge_scores``: prompt_id, variant, score (NaN when unparsed). ``prices``: $/hour per variant.
    """
    rules = rules or GateRules()
    missing = [c for c in REQUIRED if c not in rows]
    if missing:
        raise ValueError(f"result rows lack column(s) {', '.join(missing)}")
    if not (rows["variant"] == reference).any():
        raise ValueError(f"no rows for the reference variant {reference!r}")
    variants = [reference, *candidates]
    rows = rows[rows["variant"].isin(variants)]
    ok_mask = (rows["status"] == OK).to_numpy() & ~rows.duplicated(["variant", "prompt_id"]).to_numpy()
    ok = pd.DataFrame(
        {
            "variant": rows["variant"].to_numpy(dtype=object)[ok_mask],
            "prompt_id": rows["prompt_id"].to_numpy(dtype=object)[ok_mask],
            "status": OK,
            "top_logprobs": rows["top_logprobs"].to_numpy(dtype=object)[ok_mask] if "top_logprobs" in rows else None,
        }
    )
    # one shared token dictionary for every variant; object dtype, since Arrow-backed str columns iterate slowly
    ok[CODES] = pd.Series(encode_tokens(rows["output_text"][ok_mask]), dtype=object)
    by_variant = dict(tuple(ok.groupby("variant", sort=False)))
    ref_ok = by_variant[reference] if reference in by_variant else ok.iloc[:0]
    latency_rows = rows.reindex(columns=["variant", "status", *_LATENCY])

    per_prompt, records, samples, unpaired = [], [], {}, {}
    prices = prices or {}
    for variant in variants:
        record = {"variant": variant, "role": "reference" if variant == reference else "candidate"}
        if variant == reference:
            kl = 0.0 if ref_ok["top_logprobs"].map(lambda v: v is not None and len(v) > 0).any() else math.nan
            record |= {"n": len(ref_ok), "unpaired": 0, **_SELF, "kl_mean": kl}
        else:
            paired = pair_outputs(ref_ok, by_variant.get(variant, ref_ok.iloc[:0]))
            unpaired[variant] = {
                "reference": paired.attrs["unpaired_reference"],
                "candidate": paired.attrs["unpaired_candidate"],
            }
            metrics = per_prompt_metrics(paired)
            per_prompt.append(metrics.assign(variant=variant))
            record |= {"n": len(metrics), "unpaired": sum(map(len, unpaired[variant].values()))}
            record |= {
                name: float(metrics[col].mean()) if len(metrics) else math.nan for col, name in _TEXT_MEANS.items()
            }
            if rules.metric == "judge_score":
                samples[variant] = _judge_pairs(judge_scores, reference, variant)
            else:
                values = metrics[rules.metric].to_numpy(dtype=float)
                samples[variant] = (metrics["prompt_id"].to_numpy(dtype=object), values, np.ones_like(values))
        record |= _judge(judge_scores, variant)
        record |= _latency(latency_rows[latency_rows["variant"] == variant])
        record["price_per_hour"] = float(prices.get(variant, math.nan))
        record["cost_per_mtok"] = cost_per_million_output_tokens(
            record["output_token_throughput"], record["price_per_hour"]
        )
        records.append(record)

    cis = _quality_cis(samples, n_resamples=n_resamples, confidence=confidence, seed=seed)
    cis[reference] = CI(0.0, 0.0, 0.0, len(ref_ok), confidence, 0)
    gates = {
        r["variant"]: evaluate_gate(cis[r["variant"]], r["judge_parse_failure_rate"], rules)
        for r in records
        if r["variant"] != reference
    }
    for r in records:
        ci = cis[r["variant"]]
        r |= {"quality_delta": ci.delta, "quality_delta_ci_low": ci.low, "quality_delta_ci_high": ci.high}
    pv = pd.DataFrame.from_records(records)
    pv["quality"] = pv["judge_mean"] if rules.metric == "judge_score" else pv[f"{rules.metric}_mean"]
    pv["p95_latency_s"] = pv["e2e_s_p95"]
    pv["on_frontier"] = pareto_frontier(pv)
    pv["dominated_by"] = dominated_by(pv)
    pv["gate_passed"] = pv["variant"].map(lambda v: gates[v].passed if v in gates else None).astype(object)
    pv["gate_tripped"] = pv["variant"].map(lambda v: list(gates[v].tripped) if v in gates else [])
    cols = [
        "variant",
        "prompt_id",
        "exact_match",
        "first_divergence",
        "token_agreement",
        "similarity",
        "kl_divergence",
        "ref_tokens",
        "cand_tokens",
    ]
    pp = pd.concat(per_prompt, ignore_index=True)[cols] if per_prompt else pd.DataFrame(columns=cols)
    markdown = _markdown(pv, gates, rules, measured_against, unpaired, confidence)
    png = pareto_plot(pv, measured_against=measured_against, quality_label=f"quality ({rules.metric}, mean)")
    return ComparisonReport(pp, pv, gates, markdown, png, measured_against, unpaired)
