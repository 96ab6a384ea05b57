"""Task accuracy: the share of checkable prompts answered right, with its interval, and a candidate's paired delta.

A prompt is right when its response passes every assertion (``evaluation.assertions``). One variant's accuracy gets a
Wilson score interval (close to nominal coverage at 40-ish prompts and near 0 or 1). A candidate against the
reference is paired by prompt: the delta's interval is a paired bootstrap over prompts (seeded, like the other
quality deltas), and McNemar's exact test asks whether the prompts it newly gets right and newly gets wrong are
equally likely (a two-sided binomial test on the discordant pairs; the concordant ones carry no information).
Above ``BOOTSTRAP_MAX_ROWS`` prompts the normal interval of the mean paired difference stands in for the bootstrap
(they agree at that size, and the bootstrap's cost grows with n x resamples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from llmplat_dagster.evaluation.assertions import evaluate
from llmplat_dagster.evaluation.bootstrap import paired_bootstrap_ci

BOOTSTRAP_MAX_ROWS = 5000


@dataclass(frozen=True)
class Accuracy:
    """Share right (``value``) of ``n`` checkable prompts, with its Wilson interval."""

    value: float
    low: float
    high: float
    n: int
    correct: int
    confidence: float = 0.95


@dataclass(frozen=True)
class PairedAccuracy:
    """Candidate minus reference accuracy on the prompts both answered; ``gained``/``lost`` are the discordant
    prompts (right only for the candidate / only for the reference), ``p_value`` McNemar's exact test."""

    delta: float
    low: float
    high: float
    n: int
    gained: int
    lost: int
    p_value: float
    confidence: float = 0.95


def as_flags(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """Right/wrong as 1.0/0.0, not checkable (None, NaN) as NaN."""
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype == bool:
        return arr.astype(float)
    from pandas import isna

    missing = np.asarray(isna(arr), dtype=bool)
    out = np.full(len(arr), np.nan)
    out[~missing] = arr[~missing].astype(bool)
    return out


def z_score(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (1.96 at 95%)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion, without continuity correction (scipy's ``method="wilson"``); a
    half success (a tie counted half) is allowed. NaN for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    z = z_score(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(correct: Sequence[object] | np.ndarray, confidence: float = 0.95) -> Accuracy:
    """Accuracy of one variant over its checkable prompts (None/NaN entries are not checkable and left out)."""
    flags = as_flags(correct)
    flags = flags[~np.isnan(flags)]
    n, k = len(flags), int(flags.sum())
    low, high = wilson(k, n, confidence)
    return Accuracy(k / n if n else math.nan, low, high, n, k, confidence)


def accuracy_record(correct: Sequence[object] | np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """:func:`accuracy` as report columns."""
    acc = accuracy(correct, confidence)
    return {
        "accuracy": acc.value,
        "accuracy_ci_low": acc.low,
        "accuracy_ci_high": acc.high,
        "accuracy_n": acc.n,
        "accuracy_correct": acc.correct,
    }


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact McNemar test: two-sided binomial test of the discordant pairs against 1/2; 1.0 when there are none.

    Bin(n, 1/2) is symmetric, so the two-sided p is twice the smaller tail (scipy's ``binomtest`` gives the same).
    """
    n, k = gained + lost, min(gained, lost)
    if n == 0 or 2 * k == n:
        return 1.0
    log_half_n = n * math.log(0.5)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n for i in range(k + 1)]
    top = max(terms)
    tail = math.exp(top) * math.fsum(math.exp(t - top) for t in terms)
    return min(1.0, 2 * tail)


def paired_accuracy(
    candidate: Sequence[object] | np.ndarray,
    reference: Sequence[object] | np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedAccuracy:
    """Candidate minus reference accuracy over the prompts checkable on both sides (same order = same prompt)."""
    cand, ref = as_flags(candidate), as_flags(reference)
    if cand.shape != ref.shape:
        raise ValueError(f"paired accuracy needs the same prompts on both sides, got {cand.shape} and {ref.shape}")
    both = ~np.isnan(cand) & ~np.isnan(ref)
    cand, ref = cand[both], ref[both]
    gained, lost = int(((cand == 1) & (ref == 0)).sum()), int(((cand == 0) & (ref == 1)).sum())
    n = len(cand)
    p = mcnemar_p(gained, lost)
    if n == 0:
        return PairedAccuracy(math.nan, math.nan, math.nan, 0, 0, 0, p, confidence)
    delta = (gained - lost) / n
    if n_resamples < 1:  # counts only; the caller has the interval already
        return PairedAccuracy(delta, math.nan, math.nan, n, gained, lost, p, confidence)
    if n > BOOTSTRAP_MAX_ROWS:
        half = z_score(confidence) * float(np.std(cand - ref, ddof=1)) / math.sqrt(n)
        return PairedAccuracy(delta, delta - half, delta + half, n, gained, lost, p, confidence)
    ci = paired_bootstrap_ci(cand, ref, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return PairedAccuracy(ci.delta, ci.low, ci.high, ci.n, gained, lost, p, confidence)


def expectation_columns(frame, prompts) -> dict[str, list]:
    """Per result row: ``correct`` (the prompt's assertions on its output; None when the prompt has none or the
    request failed), ``assert_failures`` (why not, "; "-joined), and the prompt's ``reference_answer`` and
    ``rubric`` for the judge. ``prompts``: the promptset's prompts (``evaluation.promptsets.Prompt``)."""
    by_id = {p.id: p for p in prompts}
    out: dict[str, list] = {"correct": [], "assert_failures": [], "reference_answer": [], "rubric": []}
    for pid, status, text in zip(frame["prompt_id"], frame["status"], frame["output_text"], strict=True):
        prompt = by_id.get(pid)
        outcome = evaluate(prompt.assertions, text or "") if prompt and prompt.checkable and status == "ok" else None
        out["correct"].append(None if outcome is None else outcome.passed)
        out["assert_failures"].append("; ".join(outcome.failures) if outcome and outcome.failures else None)
        out["reference_answer"].append(prompt.reference if prompt else None)
        out["rubric"].append(prompt.rubric if prompt else None)
    return out
