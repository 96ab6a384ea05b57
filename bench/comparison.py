"""Time ``evaluation.comparison.compare`` on synthetic paired results (10k, 30k, 100k prompts per variant).

Synthetic, seeded: the reference answers are 50-150 word tokens (with sentence punctuation) drawn from a
2,000-word vocabulary; AWQ and LoRA replace each token independently with probability 2% and 5%, ~2% of prompts
carry top-5 logprobs (the quant-sensitivity share that requests them) and every prompt a right/wrong verdict of its
assertions (80% / 78% / 77% right). The gate metric is similarity, so the bootstrap runs over text metrics.
Data generation is not timed. Prints only; the target is < 3 s at 100k prompts.

    .venv/bin/python bench/comparison.py [--sizes 10000 30000 100000] [--resamples 2000] [--logprob-share 0.02]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import pandas as pd

from llmplat_dagster.evaluation.comparison import compare
from llmplat_dagster.evaluation.gate import GateRules

VARIANTS = {"mistral-7b-fp16": 0.0, "mistral-7b-awq": 0.02, "mistral-7b-lora": 0.05}
RIGHT = {"mistral-7b-fp16": 0.80, "mistral-7b-awq": 0.78, "mistral-7b-lora": 0.77}
VOCAB = np.array([f"w{i}" for i in range(2000)], dtype=object)
TOP_K = 5


def _logprobs(rng: np.random.Generator, ids: np.ndarray, alt: np.ndarray, noisy: np.ndarray) -> list[dict]:
    gaps = np.cumsum(rng.uniform(0.4, 2.5, size=(len(ids), TOP_K)), axis=1) - 0.4
    out = []
    for tok, other, swap, g in zip(ids, alt, noisy, gaps, strict=True):
        names = [VOCAB[tok], VOCAB[other], *VOCAB[(tok + np.arange(2, TOP_K) * 7) % len(VOCAB)]]
        lps = (-g).tolist()
        if swap:
            names[0], names[1] = names[1], names[0]
        out.append(dict(zip(names, lps, strict=True)))
    return out


def synthetic_rows(n: int, *, seed: int = 0, logprob_share: float = 0.02) -> pd.DataFrame:
    """Result rows for every variant in VARIANTS, position-aligned like the simulator's."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 151, size=n)
    ids = rng.integers(0, len(VOCAB), size=(n, 150))
    alt = (ids + rng.integers(1, len(VOCAB), size=ids.shape)) % len(VOCAB)
    stops = rng.random(ids.shape) < 0.08
    with_lp = rng.random(n) < logprob_share
    frames = []
    for v_index, (variant, noise) in enumerate(VARIANTS.items()):
        noisy = rng.random(ids.shape) < noise
        toks = np.where(noisy, alt, ids)
        words = np.where(stops, VOCAB[toks] + ".", VOCAB[toks])
        texts = [" ".join(w[:k]) for w, k in zip(words, lengths, strict=True)]
        lps = [
            _logprobs(rng, ids[i, :k], alt[i, :k], noisy[i, :k]) if with_lp[i] else None for i, k in enumerate(lengths)
        ]
        ttft = rng.gamma(4.0, 0.05 * (1 + v_index), size=n)
        tpot = rng.gamma(9.0, 0.004 * (1 + 0.5 * v_index), size=n)
        e2e = ttft + tpot * (lengths - 1)
        frames.append(
            pd.DataFrame(
                {
                    "prompt_id": [f"p{i:06d}" for i in range(n)],
                    "variant": variant,
                    "status": np.where(rng.random(n) < 0.005, "error", "ok"),
                    "output_text": texts,
                    "ttft_s": ttft,
                    "tpot_s": tpot,
                    "e2e_s": e2e,
                    "output_tokens": lengths,
                    "prompt_tokens": rng.integers(20, 400, size=n),
                    "started_s": np.sort(rng.uniform(0, n / 20, size=n)),
                    "top_logprobs": lps,
                    "correct": rng.random(n) < RIGHT[variant],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings per size")
    parser.add_argument("--logprob-share", type=float, default=0.02, help="share of prompts with top-5 logprobs")
    args = parser.parse_args()
    prices = {"mistral-7b-fp16": 0.2226, "mistral-7b-awq": 0.2226, "mistral-7b-lora": 0.2226}
    times: dict[int, float] = {}
    for n in args.sizes:
        rows = synthetic_rows(n, logprob_share=args.logprob_share)
        gc.collect()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = compare(
                rows,
                prices=prices,
                rules=GateRules(metric="similarity"),
                n_resamples=args.resamples,
                seed=0,
                measured_against="synthetic bench data (not a measurement)",
            )
            best = min(best, time.perf_counter() - t0)
        times[n] = best
        awq = report.per_variant.set_index("variant").loc["mistral-7b-awq"]
        print(
            f"{n:>7} prompts x {len(VARIANTS)} variants: compare {best:6.2f} s "
            f"(awq similarity delta {awq['quality_delta']:+.4f} [{awq['quality_delta_ci_low']:+.4f}, "
            f"{awq['quality_delta_ci_high']:+.4f}])",
            flush=True,
        )
    lo, hi = min(times), max(times)
    if hi > lo:
        print(f"scaling: time({hi})/time({lo}) = {times[hi] / times[lo]:.2f} for a {hi / lo:.0f}x size ratio")


if __name__ == "__main__":
    main()
