"""Behaviour model: deterministic, plausible-looking tokens with consistent logprobs.

Assumptions (documented in sim/README.md): a "token" is a word or punctuation run with its leading
space; the FP16 variant emits the reference sequence of (reference model, prompt, --sim-seed); a
quantized or LoRA variant diverges at each position independently with probability = its noise rate,
by promoting the reference's second candidate, so outputs stay position-aligned and KL is computable.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_TOPIC_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{3,}")
TOP_K = 5

_WORDS = """the a of to and in is that for it as with on be by this are or can from an which you use when
    should will not more each their service request model server cluster node pod container memory
    latency throughput cache token batch queue time value data system version setting configuration
    resource limit default example case first then also because however usually typically often
    different important simple common specific performance quality response answer question result
    step process option approach method change update error check run start stop scale deploy monitor
    measure compare increase reduce improve ensure provide require allow support handle define create
    new same other most many few high low large small fast slow good better best well only just into
    over under between after before during while about through without within across per both all"""
_VOCAB = tuple(_WORDS.split())


def count_tokens(text: str) -> int:
    """Prompt-token estimate: words and punctuation marks (Mistral's tokenizer is ~1.3x words)."""
    return len(_TOKEN_RE.findall(text))


def _digest(*parts: object) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def unit(*parts: object) -> float:
    """A deterministic uniform draw in [0, 1) from the parts."""
    return _digest(*parts) / 2.0**64


def reference_key(model: str) -> str:
    """Same key for every packaging of one base model: org, quant suffix and case are dropped."""
    name = model.rstrip("/").split("/")[-1].lower()
    return re.sub(r"[-_.](awq|gptq|gguf|fp16|bf16|int4|int8)$", "", name)


@dataclass(frozen=True)
class Token:
    """One emitted token, its logprob and the top-k alternatives (highest first)."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Variant:
    """What makes one server's output differ from the reference."""

    ref_key: str
    seed: int = 0
    noise: float = 0.0
    noise_key: str = ""  # e.g. "awq" or "awq+lora:sql-adapter"


def natural_length(variant: Variant, prompt: str) -> int:
    """Tokens until the reference answer ends by itself (EOS): 24..183, fixed per prompt."""
    return 24 + _digest(variant.ref_key, variant.seed, prompt, "len") % 160


def _ends_sentence(variant: Variant, prompt: str, i: int) -> bool:
    return i >= 3 and unit(variant.ref_key, variant.seed, prompt, i, "end") < 0.08


def _position(variant: Variant, prompt: str, topic: list[str], i: int) -> tuple[list[str], list[float]]:
    """Reference candidates and logits at position i (candidate 0 is the reference token)."""
    rng = random.Random(_digest(variant.ref_key, variant.seed, prompt, i))
    words: list[str] = []
    while len(words) < TOP_K:
        pool = topic if topic and rng.random() < 0.2 else _VOCAB
        w = pool[rng.randrange(len(pool))]
        if w not in words:
            words.append(w)
    logits = [0.0]
    for _ in range(TOP_K - 1):
        logits.append(logits[-1] - rng.uniform(0.4, 2.5))
    # Sentence structure is a property of the position, shared by every candidate.
    starts = i == 0 or _ends_sentence(variant, prompt, i - 1)
    ends = _ends_sentence(variant, prompt, i)
    lead = "" if i == 0 else " "
    texts = [lead + (w.capitalize() if starts else w) + ("." if ends else "") for w in words]
    return texts, logits


def _perturb(variant: Variant, prompt: str, i: int, logits: list[float]) -> list[float]:
    """Quantization noise: swap top-2 with probability ``noise``; otherwise jitter the tail a little."""
    if variant.noise <= 0:
        return logits
    out = list(logits)
    if unit(variant.noise_key, variant.ref_key, variant.seed, prompt, i, "div") < variant.noise:
        out[0], out[1] = out[1], out[0]
        return out
    rng = random.Random(_digest(variant.noise_key, prompt, i, "jit"))
    amp = min(1.0, variant.noise * 10) * 0.3
    for j in range(1, len(out)):
        out[j] = min(out[0] - 0.05, out[j] + rng.uniform(-amp, amp))
    return out


def _logprobs(logits: list[float]) -> list[float]:
    # The unseen rest of a 32k vocabulary carries a little mass, so top-1 is never exactly 0.
    rest = logits[0] - 6.0 + math.log(32000 - TOP_K) * 0.5
    z = math.log(sum(math.exp(x) for x in logits) + math.exp(rest))
    return [x - z for x in logits]


def generate(
    variant: Variant, prompt: str, max_tokens: int, temperature: float = 0.0, rng: random.Random | None = None
) -> Iterator[Token]:
    """Yield up to ``max_tokens`` tokens; stops early at the answer's natural length (EOS)."""
    topic = sorted({w.lower() for w in _TOPIC_RE.findall(prompt)})
    for i in range(min(max_tokens, natural_length(variant, prompt))):
        texts, logits = _position(variant, prompt, topic, i)
        lps = _logprobs(_perturb(variant, prompt, i, logits))
        order = sorted(range(TOP_K), key=lambda j: -lps[j])
        top = tuple((texts[j], lps[j]) for j in order)
        if temperature <= 0 or rng is None:
            pick = order[0]
        else:
            weights = [math.exp(lps[j] / temperature) for j in range(TOP_K)]
            pick = rng.choices(range(TOP_K), weights=weights)[0]
        yield Token(texts[pick], lps[pick], top)


def scripted(text: str) -> list[Token]:
    """Tokens for a fixed text (judge / JSON answers) that join back to exactly ``text``."""
    pieces = re.findall(r"\s*\S+", text) or [text]
    return [Token(p, -0.01, ((p, -0.01), (" the", -5.2))) for p in pieces]
