"""compare() end to end: a hand-built frame, and outputs of the simulator's behaviour model at several noise levels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llmplat_dagster.evaluation.comparison import compare
from llmplat_dagster.evaluation.gate import GateRules
from llmplat_dagster.evaluation.judge import SAME_FAMILY_NOTE
from llmplat_dagster.sim.model import Variant, generate

REF, AWQ, LORA = "mistral-7b-fp16", "mistral-7b-awq", "mistral-7b-lora"
PER_VARIANT = {
    "variant", "role", "n", "unpaired", "exact_match_mean", "token_agreement_mean", "similarity_mean", "kl_mean",
    "quality", "quality_ci_low", "quality_ci_high", "quality_delta", "quality_delta_ci_low", "quality_delta_ci_high",
    "judge_mean", "judge_n", "judge_parse_failure_rate", "ttft_s_p50", "ttft_s_p95", "ttft_s_p99", "tpot_s_p50",
    "tpot_s_p95", "tpot_s_p99", "e2e_s_p50", "e2e_s_p95", "e2e_s_p99", "e2e_s_p95_ci_low", "e2e_s_p95_ci_high",
    "requests", "error_rate", "output_token_throughput", "output_token_throughput_ci_low",
    "output_token_throughput_ci_high", "price_per_hour", "cost_per_mtok", "cost_per_mtok_ci_low",
    "cost_per_mtok_ci_high", "p95_latency_s", "p95_latency_s_ci_low", "p95_latency_s_ci_high", "on_frontier",
    "dominated_by", "not_separable_from", "gate_passed", "gate_tripped", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "accuracy_n", "accuracy_correct", "accuracy_delta", "accuracy_delta_ci_low",
    "accuracy_delta_ci_high", "accuracy_gained", "accuracy_lost", "accuracy_mcnemar_p",
}  # fmt: skip
SIMILARITY = GateRules(metric="similarity", min_quality_delta_low=-0.05)


def _rows(variant: str, texts: dict[str, str], *, e2e: float, status: dict[str, str] | None = None) -> pd.DataFrame:
    ids = list(texts)
    return pd.DataFrame(
        {
            "prompt_id": ids,
            "variant": variant,
            "status": [(status or {}).get(i, "ok") for i in ids],
            "output_text": list(texts.values()),
            "ttft_s": 0.1,
            "tpot_s": 0.02,
            "e2e_s": e2e,
            "output_tokens": 100,
            "prompt_tokens": 20,
            "started_s": np.arange(len(ids), dtype=float) * e2e,  # one request at a time: 100 tokens / e2e
        }
    )


def small_frame() -> pd.DataFrame:
    ref = {f"p{i}": f"The answer is {i}. It uses the cache." for i in range(40)}
    awq = dict(ref) | {"p0": "The answer is 0. It uses a cache.", "p1": "The answer is 1. It uses the cache!"}
    lora = {k: "Nothing in common" for k in ref}
    return pd.concat(
        [
            _rows(REF, ref, e2e=4.0),
            _rows(AWQ, awq, e2e=2.0, status={"p39": "error"}),
            _rows(LORA, lora, e2e=2.5),
            _rows("mistral-7b-judge", {"p0": "{}"}, e2e=1.0),  # not compared
        ],
        ignore_index=True,
    )


def test_compare_small_frame_end_to_end():
    judge = pd.DataFrame(
        {
            "prompt_id": ["p0", "p1", "p2", "p0", "p1", "p0"],
            "variant": [REF, REF, AWQ, AWQ, AWQ, LORA],
            "score": [9.0, 8.0, 8.0, np.nan, 7.0, 2.0],
        }
    )
    prices = {REF: 0.526, AWQ: 0.2226, LORA: 0.2226}
    report = compare(
        small_frame(),
        judge_scores=judge,
        prices=prices,
        rules=SIMILARITY,
        n_resamples=300,
        measured_against="unit test",
    )
    pv = report.per_variant.set_index("variant")
    assert set(report.per_variant.columns) == PER_VARIANT
    assert list(pv.index) == [REF, AWQ, LORA]
    # reference: itself by definition
    assert pv.loc[REF, "quality"] == 1.0 and pv.loc[REF, "quality_delta"] == 0.0 and pv.loc[REF, "n"] == 40
    assert pv.loc[REF, "gate_passed"] is None
    # awq: 39 paired prompts (p39 errored), 37 identical
    assert pv.loc[AWQ, "n"] == 39 and pv.loc[AWQ, "unpaired"] == 1
    assert pv.loc[AWQ, "exact_match_mean"] == pytest.approx(37 / 39)
    assert pv.loc[AWQ, "quality_delta"] == pytest.approx(pv.loc[AWQ, "similarity_mean"] - 1.0)
    assert pv.loc[AWQ, "quality_delta_ci_low"] <= pv.loc[AWQ, "quality_delta"] <= pv.loc[AWQ, "quality_delta_ci_high"]
    assert pv.loc[AWQ, "gate_passed"] is False  # the quality holds, but 1 of 3 judge answers was unreadable
    assert pv.loc[AWQ, "gate_tripped"] == ["judge parse-failure rate 0.333 > 0.1 by 0.233"]
    assert pv.loc[AWQ, "judge_mean"] == pytest.approx(7.5) and pv.loc[AWQ, "judge_parse_failure_rate"] == pytest.approx(
        1 / 3
    )
    # lora: nothing in common -> fails the quality rule, judged once
    assert pv.loc[LORA, "similarity_mean"] == 0.0 and pv.loc[LORA, "gate_passed"] is False
    assert pv.loc[LORA, "gate_tripped"][0].startswith("quality delta lower bound -1.000 < -0.05 by 0.950")
    assert pv.loc[LORA, "not_separable_from"] == []
    # latency and cost: one request at a time, 100 tokens per e2e; every request alike, so the intervals are points
    assert pv.loc[AWQ, "p95_latency_s"] == pytest.approx(2.0)
    assert pv.loc[AWQ, "output_token_throughput"] == pytest.approx(50.0)
    assert pv.loc[AWQ, "cost_per_mtok"] == pytest.approx(0.2226 / (50 * 3600) * 1e6)
    assert pv.loc[REF, "cost_per_mtok"] == pytest.approx(0.526 / (25 * 3600) * 1e6)
    assert pv.loc[AWQ, "cost_per_mtok_ci_low"] == pytest.approx(pv.loc[AWQ, "cost_per_mtok_ci_high"])
    # no assertions on these prompts: accuracy is unknown, not zero
    assert pv.loc[AWQ, "accuracy_n"] == 0 and math.isnan(pv.loc[AWQ, "accuracy"])
    assert "— (no checkable prompts)" in report.markdown
    # frontier: fp16 best quality, awq fastest and cheapest, lora dominated by awq
    assert pv["on_frontier"].to_dict() == {REF: True, AWQ: True, LORA: False}
    assert pv.loc[LORA, "dominated_by"] == [AWQ]
    assert not report.gates[LORA].passed and REF not in report.gates
    assert report.gates[AWQ].details["quality_delta_low"] > -0.05
    assert report.unpaired[AWQ] == {"reference": ["p39"], "candidate": []}
    # per prompt
    pp = report.per_prompt
    awq_p0 = pp[(pp["variant"] == AWQ) & (pp["prompt_id"] == "p0")].iloc[0]
    assert awq_p0["first_divergence"] == 7 and not awq_p0["exact_match"]  # The answer is 0 . It uses [a]
    assert len(pp) == 39 + 40
    # report
    assert "Measured against: unit test" in report.markdown and SAME_FAMILY_NOTE in report.markdown
    assert "FAIL" in report.markdown and "mistral-7b-lora: gate FAILED: quality delta lower bound" in report.markdown
    assert report.plot_png.startswith(b"\x89PNG\r\n\x1a\n")


def test_judge_gate_metric_and_missing_inputs():
    judge = pd.DataFrame(
        {
            "prompt_id": [f"p{i}" for i in range(10)] * 2,
            "variant": [REF] * 10 + [AWQ] * 10,
            "score": [8.0] * 10 + [7.0] * 10,
        }
    )
    frame = small_frame()
    report = compare(
        frame.drop(columns=["started_s"]),
        candidates=(AWQ,),
        judge_scores=judge,
        rules=GateRules(metric="judge_score", min_quality_delta_low=-0.5),
        n_resamples=200,
        measured_against="unit test",
    )
    pv = report.per_variant.set_index("variant")
    assert pv.loc[AWQ, "quality_delta"] == pytest.approx(-1.0) and pv.loc[AWQ, "quality_delta_ci_low"] == pytest.approx(
        -1.0
    )
    assert pv.loc[AWQ, "gate_tripped"] == ["quality delta lower bound -1.000 < -0.5 by 0.500"]
    assert math.isnan(pv.loc[AWQ, "cost_per_mtok"])  # no prices, no start times: unknown, not zero
    with pytest.raises(ValueError, match="reference"):
        compare(frame[frame["variant"] != REF], measured_against="x")
    with pytest.raises(ValueError, match="output_text"):
        compare(frame.drop(columns=["output_text"]), measured_against="x")


def test_a_candidate_without_rows_fails_its_gate():
    report = compare(
        small_frame(), candidates=(AWQ, "mistral-7b-missing"), rules=SIMILARITY, n_resamples=50, measured_against="x"
    )
    gate = report.gates["mistral-7b-missing"]
    assert not gate.passed and "unavailable" in gate.tripped[0]


# --- the simulator's behaviour model: more quantization noise must measure as lower quality ---------------------

PROMPTS = [f"Explain how to tune the {topic} of a vLLM server, case {i}." for i in range(60) for topic in ("cache",)]


def _sim_rows(noise: float, name: str) -> pd.DataFrame:
    variant = Variant("mistral-7b-instruct-v0.2", seed=0, noise=noise, noise_key=name)
    texts, lps = [], []
    for prompt in PROMPTS:
        tokens = list(generate(variant, prompt, 80))
        texts.append("".join(t.text for t in tokens))
        lps.append([dict(t.top) for t in tokens])
    frame = _rows(name, {f"q{i}": t for i, t in enumerate(texts)}, e2e=2.0)
    frame["top_logprobs"] = lps
    return frame


@pytest.fixture(scope="module")
def sim_reports():
    ref = _sim_rows(0.0, REF)
    out = {}
    for noise in (0.1, 0.4, 1.2):
        rows = pd.concat([ref, _sim_rows(noise, AWQ)], ignore_index=True)
        out[noise] = compare(
            rows, candidates=(AWQ,), rules=SIMILARITY, n_resamples=300, measured_against="llmplat-sim behaviour model"
        )
    return out


def test_more_noise_lowers_quality_and_widens_the_gap(sim_reports):
    awq = {noise: r.per_variant.set_index("variant").loc[AWQ] for noise, r in sim_reports.items()}
    levels = (0.1, 0.4, 1.2)
    sims = [awq[n]["similarity_mean"] for n in levels]
    deltas = [awq[n]["quality_delta"] for n in levels]
    exact = [awq[n]["exact_match_mean"] for n in levels]
    agreement = [awq[n]["token_agreement_mean"] for n in levels]
    assert sims[0] > sims[1] > sims[2]
    assert deltas[0] > deltas[1] > deltas[2] and deltas[0] < 0
    assert exact[0] >= exact[1] >= exact[2] and agreement[0] > agreement[1] > agreement[2]
    # the logit noise moves every position's distribution, so KL is positive and measured everywhere
    assert all(awq[n]["kl_mean"] > 0 for n in awq)
    assert sim_reports[0.1].gates[AWQ].passed and not sim_reports[1.2].gates[AWQ].passed
    assert awq[1.2]["quality_delta_ci_high"] < awq[0.1]["quality_delta_ci_low"]  # the intervals separate


def test_per_prompt_rows_equal_pairing_and_metrics_done_one_candidate_at_a_time():
    """compare() pairs on integer id codes and encodes every text in one call; the same as the public pieces."""
    from llmplat_dagster.evaluation.quality import pair_outputs, per_prompt_metrics

    rng = np.random.default_rng(12)
    words = np.array(["the", "cache", "is", "warm", ".", ",", "KV", "blocks", "évict", "!"])
    frames = []
    for variant in (REF, AWQ, LORA, "mistral-7b-judge"):
        n = 80
        ids = [f"p{i}" for i in rng.integers(0, 60, size=n)]  # repeats: retries, and ids on one side only
        texts = [" ".join(rng.choice(words, size=rng.integers(0, 12))) for _ in range(n)]
        lps = [[{"a": -0.1, "b": -2.5}, {"b": -0.2, "a": -1.9}] if rng.random() < 0.3 else None for _ in range(n)]
        frame = pd.DataFrame(
            {
                "prompt_id": ids,
                "variant": variant,
                "status": rng.choice(["ok", "ok", "ok", "error"], size=n),
                "output_text": texts,
                "ttft_s": 0.1,
                "tpot_s": 0.02,
                "e2e_s": 2.0,
                "output_tokens": 100,
                "prompt_tokens": 20,
                "started_s": np.arange(n, dtype=float),
                "top_logprobs": lps,
            }
        )
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    report = compare(rows, rules=SIMILARITY, n_resamples=50, measured_against="x")

    kept = rows[rows["variant"].isin([REF, AWQ, LORA])]
    ok = kept[(kept["status"] == "ok").to_numpy() & ~kept.duplicated(["variant", "prompt_id"]).to_numpy()]
    for cand in (AWQ, LORA):
        paired = pair_outputs(ok[ok["variant"] == REF], ok[ok["variant"] == cand])
        expected = per_prompt_metrics(paired)
        got = report.per_prompt[report.per_prompt["variant"] == cand].drop(columns="variant")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected[got.columns].reset_index(drop=True))
        assert report.unpaired[cand] == {
            "reference": paired.attrs["unpaired_reference"],
            "candidate": paired.attrs["unpaired_candidate"],
        }


# --- task accuracy, time scale and spread ---------------------------------------------------------------------


def _accuracy_frame(ref_right: int, cand_right: dict[str, int], n: int = 42) -> pd.DataFrame:
    """Every variant answers the same texts; ``correct`` says how many of the n prompts each got right."""
    texts = {f"p{i}": f"The answer is {i}." for i in range(n)}
    frames = []
    for variant, right in {REF: ref_right, **cand_right}.items():
        frame = _rows(variant, texts, e2e=2.0)
        frame["correct"] = pd.Series([i < right for i in range(n)], dtype=object)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_accuracy_is_reported_per_variant_and_paired_against_the_reference():
    rows = _accuracy_frame(34, {AWQ: 33, LORA: 20})
    rows.loc[(rows["variant"] == AWQ) & (rows["prompt_id"] == "p40"), "correct"] = True  # right where FP16 is not
    rows.loc[rows["prompt_id"] == "p41", "correct"] = None  # not checkable anywhere
    report = compare(rows, n_resamples=500, measured_against="unit test")
    pv = report.per_variant.set_index("variant")
    assert pv.loc[REF, "accuracy"] == pytest.approx(34 / 41) and pv.loc[REF, "accuracy_n"] == 41
    assert pv.loc[REF, "accuracy_ci_low"] < pv.loc[REF, "accuracy"] < pv.loc[REF, "accuracy_ci_high"]
    assert (pv.loc[AWQ, "accuracy_gained"], pv.loc[AWQ, "accuracy_lost"]) == (1, 1)
    assert pv.loc[AWQ, "accuracy_delta"] == 0.0 and pv.loc[AWQ, "accuracy_mcnemar_p"] == 1.0
    assert (pv.loc[LORA, "accuracy_gained"], pv.loc[LORA, "accuracy_lost"]) == (0, 14)
    assert pv.loc[LORA, "accuracy_mcnemar_p"] < 0.001
    # the default gate is on accuracy: AWQ holds it, LoRA is credibly worse
    assert report.gates[AWQ].passed and report.gates[AWQ].details["metric"] == "accuracy"
    assert not report.gates[LORA].passed and "quality delta lower bound" in report.gates[LORA].tripped[0]
    assert pv.loc[AWQ, "quality"] == pv.loc[AWQ, "accuracy"]  # the Pareto quality axis is accuracy too
    assert "34/41" in report.markdown and "McNemar p=" in report.markdown and "(+1/−1)" in report.markdown


def test_a_candidate_more_often_right_than_the_reference_scores_better_not_worse():
    report = compare(_accuracy_frame(30, {AWQ: 38}), candidates=(AWQ,), n_resamples=500, measured_against="x")
    awq = report.per_variant.set_index("variant").loc[AWQ]
    assert awq["accuracy_delta"] > 0 and awq["quality_delta_ci_low"] > 0 and report.gates[AWQ].passed
    assert awq["similarity_mean"] == 1.0  # same texts here; a better answer in other words would score lower on it


def test_simulated_times_are_converted_back_through_the_time_scale_and_labelled():
    rows = _accuracy_frame(40, {AWQ: 40})
    scaled = rows.assign(
        e2e_s=rows["e2e_s"] * 0.05,
        ttft_s=rows["ttft_s"] * 0.05,
        started_s=rows["started_s"] * 0.05,
        time_scale=0.05,
        time_basis="simulated (llmplat-sim at time scale 0.05, converted to simulated T4 time)",
    )
    prices = {REF: 0.526, AWQ: 0.2226}
    real = compare(rows, candidates=(AWQ,), prices=prices, n_resamples=200, measured_against="x").per_variant
    sim = compare(scaled, candidates=(AWQ,), prices=prices, n_resamples=200, measured_against="x")
    for column in ("e2e_s_p95", "ttft_s_p50", "output_token_throughput", "cost_per_mtok"):
        assert sim.per_variant[column].to_numpy() == pytest.approx(real[column].to_numpy()), column
    assert "Latency, throughput and cost: simulated (llmplat-sim at time scale 0.05" in sim.markdown


def test_noisy_latency_makes_a_slower_variant_not_separable_instead_of_dominated():
    rng = np.random.default_rng(3)
    frames = []
    texts = {f"p{i}": "same answer" for i in range(30)}
    for variant, centre in ((REF, 2.0), (AWQ, 1.5), (LORA, 1.6)):
        frame = _rows(variant, texts, e2e=centre)
        frame["e2e_s"] = centre * rng.lognormal(0, 0.5, size=len(frame))
        frame["started_s"] = frame["e2e_s"].cumsum() - frame["e2e_s"]
        frame["correct"] = True
        frames.append(frame)
    report = compare(pd.concat(frames, ignore_index=True), n_resamples=500, measured_against="x")
    pv = report.per_variant.set_index("variant")
    assert pv.loc[LORA, "p95_latency_s_ci_low"] < pv.loc[AWQ, "p95_latency_s_ci_high"]  # intervals overlap
    assert pv.loc[LORA, "dominated_by"] == [] and pv.loc[LORA, "on_frontier"]
    assert pv.loc[LORA, "not_separable_from"] == [AWQ]  # looks slower and costlier, within the noise
    assert pv.loc[REF, "not_separable_from"] == [AWQ, LORA]
    assert "not separable" in report.markdown
