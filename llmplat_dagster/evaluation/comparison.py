"""The quantization-quality comparison: one call from result rows to the report the Dagster asset persists.

Every text metric is the candidate against the FP16 reference on the same prompt, so the reference's own
level is 1.0 by definition (0 for KL) and a candidate's quality delta is its metric minus 1.0, bootstrapped
over prompts. With ``rules.metric == "judge_score"`` the delta is candidate minus reference judge score on the
prompts both were scored on. Latency percentiles and throughput come from ``serving.results.latency_summary``
over all of a variant's rows (errors count in its error rate); cost uses that measured throughput. Rows that carry a
``time_scale`` (measured against the simulator) are converted back to model time first, so latency, throughput and
cost are simulated T4 figures, labelled so, not 1/scale too fast. p95 latency, throughput and cost carry bootstrap
intervals (``evaluation.spread``), and the Pareto report calls pairs whose intervals overlap "not separable".
Rows with a ``correct`` column (the prompt's assertions, None when it has none) give every variant a task accuracy
with a Wilson interval and every candidate a paired accuracy delta with McNemar's test; ``rules.metric ==
"accuracy"`` gates on that delta.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from llmplat_dagster.evaluation.accuracy import accuracy_record, as_flags, paired_accuracy
from llmplat_dagster.evaluation.bootstrap import CI, paired_bootstrap_ci, paired_bootstrap_cis
from llmplat_dagster.evaluation.gate import GateResult, GateRules, evaluate_gate
from llmplat_dagster.evaluation.pareto import dominated_by, not_separable_from, pareto_frontier, pareto_plot
from llmplat_dagster.evaluation.quality import OK, encode_tokens, kl_column, metrics_frame
from llmplat_dagster.evaluation.report import report_markdown
from llmplat_dagster.evaluation.spread import spread_record
from llmplat_dagster.serving.results import latency_summary
from llmplat_dagster.serving.timebase import to_model_time

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


def _encode_ok_texts(texts: pd.Series, ok_rows: np.ndarray) -> np.ndarray:
    """:func:`encode_tokens` of the ok rows' texts (one token dictionary for every variant), as an object array."""
    arr = pa.array(texts, type=pa.large_string(), from_pandas=True)  # no copy when the column is Arrow-backed
    if len(ok_rows) < 0.9 * len(arr):
        return np.fromiter(encode_tokens(arr.take(pa.array(ok_rows))), dtype=object, count=len(ok_rows))
    # nearly every row is ok: encoding the few others too is cheaper than copying every text
    return np.fromiter(encode_tokens(arr), dtype=object, count=len(arr))[ok_rows]


def _has_logprobs(value: object) -> bool:
    return value is not None and len(value) > 0  # type: ignore[arg-type]


def _pair(
    ref_sel: np.ndarray, cand_sel: np.ndarray, pid_codes: np.ndarray, pid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, list]]:
    """(reference rows, candidate rows) paired on prompt id, in reference order, and the unpaired ids per side.

    Same join as ``quality.pair_outputs`` (each side holds one ok row per id), on integer id codes.
    """
    size = int(max(pid_codes.max(initial=-1) + 1, 0))
    slot = np.full(size, -1, dtype=np.int64)
    slot[pid_codes[cand_sel]] = np.arange(len(cand_sel))
    match = slot[pid_codes[ref_sel]]
    slot[:] = -1
    slot[pid_codes[ref_sel]] = 0
    cand_only = cand_sel[slot[pid_codes[cand_sel]] < 0]
    unpaired = {
        "reference": sorted(pid[ref_sel[match < 0]].tolist(), key=str),
        "candidate": sorted(pid[cand_only].tolist(), key=str),
    }
    return ref_sel[match >= 0], cand_sel[match[match >= 0]], unpaired


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


def _with_frontier(pv: pd.DataFrame, rules: GateRules) -> pd.DataFrame:
    """The per-variant table plus quality (with its interval), p95 latency and its place on the Pareto frontier."""
    if rules.metric == "accuracy":
        pv["quality"] = pv["accuracy"]
        pv["quality_ci_low"], pv["quality_ci_high"] = pv["accuracy_ci_low"], pv["accuracy_ci_high"]
    else:
        pv["quality"] = pv["judge_mean"] if rules.metric == "judge_score" else pv[f"{rules.metric}_mean"]
        if "quality_delta" in pv:  # the level's interval is the delta's, shifted onto the level
            pv["quality_ci_low"] = pv["quality"] + pv["quality_delta_ci_low"] - pv["quality_delta"]
            pv["quality_ci_high"] = pv["quality"] + pv["quality_delta_ci_high"] - pv["quality_delta"]
    pv["p95_latency_s"] = pv["e2e_s_p95"]
    pv["p95_latency_s_ci_low"], pv["p95_latency_s_ci_high"] = pv["e2e_s_p95_ci_low"], pv["e2e_s_p95_ci_high"]
    pv["on_frontier"] = pareto_frontier(pv)
    pv["dominated_by"] = dominated_by(pv)
    pv["not_separable_from"] = not_separable_from(pv)
    return pv


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

    ``rows``: result rows of every variant (columns as ``serving.results.RequestResult``; optional
    ``top_logprobs``, ``correct`` (True/False/None per the prompt's assertions), ``time_scale`` and ``time_basis``
    (``serving.timebase``)). ``judge_scores``: prompt_id, variant, score (NaN when unparsed). ``prices``: $/hour
    per variant.
    """
    rules = rules or GateRules()
    missing = [c for c in REQUIRED if c not in rows]
    if missing:
        raise ValueError(f"result rows lack column(s) {', '.join(missing)}")
    if not (rows["variant"] == reference).any():
        raise ValueError(f"no rows for the reference variant {reference!r}")
    variants = [reference, *candidates]
    # integer codes for variants and prompt ids: masks, dedupe and pairing are then numpy work, not string hashing
    first = {v: i for i, v in reversed(list(enumerate(variants)))}
    v_codes, v_names = pd.factorize(rows["variant"])
    vcode = np.append(np.array([first.get(v, -1) for v in v_names], dtype=np.int64), -1)[v_codes]
    if not (vcode >= 0).all():
        keep = vcode >= 0
        rows, vcode = rows[keep], vcode[keep]
    pcode, pid_names = pd.factorize(rows["prompt_id"], use_na_sentinel=False)
    per_prompt, records, samples, unpaired = [], [], {}, {}
    first_row = ~pd.Series(vcode * max(len(pid_names), 1) + pcode).duplicated().to_numpy()
    ok_rows = np.flatnonzero((rows["status"] == OK).to_numpy(dtype=bool, na_value=False) & first_row)
    v_ok, p_ok = vcode[ok_rows], pcode[ok_rows]
    # Tokenising is the longest step and runs in Arrow threads without the GIL, so it starts first and the
    # pairing, KL (Python loops over logprob dicts), latency and judge summaries run meanwhile.
    with ThreadPoolExecutor(1) as pool:
        encoding = pool.submit(_encode_ok_texts, rows["output_text"], ok_rows)
        pid_ok = rows["prompt_id"].to_numpy(dtype=object)[ok_rows]
        lp_ok = (
            rows["top_logprobs"].to_numpy(dtype=object)[ok_rows]
            if "top_logprobs" in rows
            else np.full(len(ok_rows), None, dtype=object)
        )
        ref_sel = np.flatnonzero(v_ok == 0)
        pairs, kls = {}, {}
        for variant in variants[1:]:
            if variant != reference and variant not in pairs:
                ref_at, cand_at, unpaired[variant] = _pair(
                    ref_sel, np.flatnonzero(v_ok == first[variant]), p_ok, pid_ok
                )
                pairs[variant] = ref_at, cand_at
                kls[variant] = kl_column(lp_ok[ref_at], lp_ok[cand_at])
        correct_ok = (
            as_flags(rows["correct"].to_numpy(dtype=object)[ok_rows])
            if "correct" in rows
            else np.full(len(ok_rows), np.nan)
        )
        latency_rows = rows.reindex(columns=["variant", "status", *_LATENCY])
        if "time_scale" in rows:  # measured against the simulator: back to model time
            latency_rows = to_model_time(latency_rows, pd.to_numeric(rows["time_scale"], errors="coerce").fillna(1.0))
        measured = {
            v: _judge(judge_scores, v) | _latency(latency_rows.iloc[np.flatnonzero(vcode == first[v])]) for v in first
        }
        codes_ok = encoding.result()

    prices = prices or {}
    for variant in variants:
        record = {"variant": variant, "role": "reference" if variant == reference else "candidate"}
        record |= accuracy_record(correct_ok[np.flatnonzero(v_ok == first[variant])], confidence)
        if variant == reference:
            kl = 0.0 if any(_has_logprobs(v) for v in lp_ok[ref_sel[pd.notna(lp_ok[ref_sel])]]) else math.nan
            record |= {"n": len(ref_sel), "unpaired": 0, **_SELF, "kl_mean": kl}
        else:
            ref_at, cand_at = pairs[variant]
            metrics = metrics_frame(pid_ok[ref_at], codes_ok[ref_at].tolist(), codes_ok[cand_at].tolist(), kls[variant])
            per_prompt.append(metrics.assign(variant=variant))
            record |= {"n": len(metrics), "unpaired": sum(map(len, unpaired[variant].values()))}
            record |= {
                name: float(metrics[col].mean()) if len(metrics) else math.nan for col, name in _TEXT_MEANS.items()
            }
            gated = rules.metric == "accuracy"  # the gate's bootstrap below is this interval: not drawn twice
            paired = paired_accuracy(
                correct_ok[cand_at],
                correct_ok[ref_at],
                n_resamples=0 if gated else n_resamples,
                confidence=confidence,
                seed=seed,
            )
            record |= {
                "accuracy_delta": paired.delta,
                "accuracy_delta_ci_low": paired.low,
                "accuracy_delta_ci_high": paired.high,
                "accuracy_gained": paired.gained,
                "accuracy_lost": paired.lost,
                "accuracy_mcnemar_p": paired.p_value,
            }
            if rules.metric == "judge_score":
                samples[variant] = _judge_pairs(judge_scores, reference, variant)
            elif rules.metric == "accuracy":
                samples[variant] = (p_ok[ref_at], correct_ok[cand_at], correct_ok[ref_at])
            else:
                values = metrics[rules.metric].to_numpy(dtype=float)
                samples[variant] = (p_ok[ref_at], values, np.ones_like(values))  # ids as codes: same prompts?
        record |= measured[variant]
        price = record["price_per_hour"] = float(prices.get(variant, math.nan))
        own = latency_rows.iloc[np.flatnonzero(vcode == first[variant])]
        record |= spread_record(own, price, n_resamples=n_resamples, confidence=confidence, seed=seed)
        records.append(record)

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
    cis = _quality_cis(samples, n_resamples=n_resamples, confidence=confidence, seed=seed)
    cis[reference] = CI(0.0, 0.0, 0.0, len(ref_sel), confidence, 0)
    gates = {
        r["variant"]: evaluate_gate(cis[r["variant"]], r["judge_parse_failure_rate"], rules)
        for r in records
        if r["variant"] != reference
    }
    for r in records:
        ci = cis[r["variant"]]
        r |= {"quality_delta": ci.delta, "quality_delta_ci_low": ci.low, "quality_delta_ci_high": ci.high}
        if rules.metric == "accuracy" and r["variant"] != reference:
            r |= {"accuracy_delta_ci_low": ci.low, "accuracy_delta_ci_high": ci.high}
    pv = _with_frontier(pd.DataFrame.from_records(records), rules)
    pv["gate_passed"] = pv["variant"].map(lambda v: gates[v].passed if v in gates else None).astype(object)
    pv["gate_tripped"] = pv["variant"].map(lambda v: list(gates[v].tripped) if v in gates else [])
    basis = sorted(set(rows["time_basis"].dropna())) if "time_basis" in rows else []
    png = pareto_plot(pv, measured_against=measured_against, quality_label=f"quality ({rules.metric})")
    markdown = report_markdown(pv, gates, rules, measured_against, unpaired, confidence, basis)
    return ComparisonReport(pp, pv, gates, markdown, png, measured_against, unpaired)
