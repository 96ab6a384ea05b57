"""Behaviour model: greedy answers that cascade after the first differing token, with consistent logprobs.

Every server follows a *plan*, its full-precision token sequence for the prompt (sim/README.md, "Behaviour model"):

- a prompt the simulator knows (``sim/knowledge.py``) is answered with its reference answer when the model's seeded
  per-prompt skill draw succeeds, otherwise with the reference corrupted from its first critical token on;
- any other prompt gets filler words (topic words of the prompt mixed in) of a natural length per prompt.

Each position offers five candidates: the plan's token, a wrong or rephrased alternative, three filler words.
A quantized server adds Gaussian noise (std ``noise``) to the five logits; the first position where the noisy top-1
is not the plan's token is the divergence, and greedy decoding never comes back: from there on the server follows
its own continuation. A divergence on a critical token (a digit, an identifier, JSON/code syntax, a word the
prompt's expectations check, any token of a verbatim answer) corrupts it and, with even odds, each later critical
token; one on a prose word rephrases the rest of the answer, keeping what it says; filler text turns into other
filler. Sampling at temperature > 0 diverges the same way wherever it picks a candidate other than the plan's.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from llmplat_dagster.sim.knowledge import Answer, Knowledge, pieces

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_TOPIC_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{3,}")
TOP_K = 5
SKILL = 0.8  # share of the prompts it knows that a simulated model answers right at full precision
CASCADE = 0.5  # chance that each critical token after a corrupting divergence is corrupted too
REPHRASE = 0.45  # chance that a prose word after a divergence is replaced (a paraphrase keeps the content)

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
_STRUCTURE = set("{}[]\"'`|=<>();:#*")
_TRAILING = ".,;!?"

# Logit gap between the plan's token and the runner-up, by kind: computed digits are the least certain,
# copied identifiers and syntax the most (sim/README.md, "Calibration").
_MARGINS = {
    "digit": (0.6, 3.5),
    "structure": (1.0, 4.0),
    "identifier": (1.2, 4.5),
    "verbatim": (0.9, 4.0),
    "term": (1.0, 4.0),
    "prose": (0.3, 2.5),
}


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
    """What one server is: a model (base or adapter) at some precision.

    ``noise`` is the std of the Gaussian logit noise that quantization adds (0 = the full-precision model);
    ``adapter`` names a LoRA adapter: a model of its own, which re-draws what it knows on a ``drift`` share of the
    prompts and phrases its answers in its own words.
    """

    ref_key: str
    seed: int = 0
    noise: float = 0.0
    noise_key: str = ""  # e.g. "awq" or "awq+lora:chat-de"
    adapter: str | None = None
    drift: float = 0.0

    @property
    def identity(self) -> str:
        return f"{self.ref_key}|{self.seed}|{self.adapter or ''}"


@dataclass(frozen=True)
class Step:
    """One planned token and what kind of content it carries."""

    text: str
    kind: str = "prose"

    @property
    def critical(self) -> bool:
        return self.kind != "prose"


@dataclass
class Plan:
    """A token sequence and the key its candidates are drawn from. Tokens from ``open_from`` on are filler (free
    text: a chatty model's explanation after a known answer, or the whole answer to an unknown prompt)."""

    steps: list[Step]
    key: str
    open_from: int = 0
    pool: tuple[str, ...] = _VOCAB  # the words a paraphrase draws from: the answer's own, so its language


def _pool(steps: list[Step]) -> tuple[str, ...]:
    words = tuple(sorted({w for s in steps if not s.critical and (w := _core(s.text).lower()).isalpha()}))
    return words if len(words) >= 5 else _VOCAB


def _core(text: str) -> str:
    return text.strip().rstrip(_TRAILING)


def classify(text: str, answer: Answer | None = None) -> str:
    """The kind of content a token carries; everything but "prose" must survive a correct answer unchanged."""
    core = _core(text)
    if any(ch.isdigit() for ch in core):
        return "digit"
    if not core or any(ch in _STRUCTURE for ch in core) or core.startswith("-") or core.endswith(":"):
        return "structure"
    if any(ch in "-_/.@\\" for ch in core) or not core.isascii() or (len(core) > 1 and core[1:] != core[1:].lower()):
        return "identifier"
    if len(core) == 1 and core.isupper():  # an option or section label: A, B, D
        return "identifier"
    if answer is not None and answer.is_term(core):
        return "term"
    if answer is not None and answer.verbatim:
        return "verbatim"
    return "prose"


def _shape(word: str, like: str) -> str:
    """``word`` with the leading whitespace, capitalisation and trailing punctuation of ``like``."""
    lead = like[: len(like) - len(like.lstrip())]
    body = like.strip()
    core = body.rstrip(_TRAILING)
    trail = body[len(core) :]
    if core[:1].isupper():
        word = word.capitalize()
    return f"{lead}{word}{trail}"


def _vocab_word(rng: random.Random, avoid: str = "", pool: tuple[str, ...] = _VOCAB) -> str:
    while True:
        word = pool[rng.randrange(len(pool))]
        if word != avoid:
            return word


def corrupt(text: str, kind: str, rng: random.Random) -> str:
    """A wrong version of a token: another digit, a mistyped identifier, broken syntax or another word."""
    lead = text[: len(text) - len(text.lstrip())]
    body = text.strip()
    if kind == "digit":
        spots = [i for i, ch in enumerate(body) if ch.isdigit()]
        i = spots[rng.randrange(len(spots))]
        digit = str((int(body[i]) + rng.randrange(1, 10)) % 10)
        return lead + body[:i] + digit + body[i + 1 :]
    if kind == "structure":
        spots = [i for i, ch in enumerate(body) if ch in _STRUCTURE or ch in ":-"]
        if spots and len(body) > 1:
            i = spots[rng.randrange(len(spots))]
            return lead + body[:i] + body[i + 1 :]
        return lead + ("," if body != "," else ";")
    if kind == "identifier":
        spots = [i for i, ch in enumerate(body) if ch.isalnum()]
        if len(spots) >= 2:
            i = spots[rng.randrange(len(spots) - 1)]
            if body[i] != body[i + 1]:
                return lead + body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            return lead + body[:i] + ("x" if body[i] != "x" else "y") + body[i + 1 :]
    return _shape(_vocab_word(rng, avoid=_core(body).lower()), text)


def _alternative(step: Step, rng: random.Random, pool: tuple[str, ...]) -> str:
    """The runner-up at a position: wrong for a critical token, another word for prose."""
    if step.critical:
        return corrupt(step.text, step.kind, rng)
    return _shape(_vocab_word(rng, _core(step.text).lower(), pool), step.text)


def _candidates(plan: Plan, i: int) -> tuple[list[str], list[float]]:
    """Five distinct candidates (the plan's token first) and their logits, a pure function of (plan, i)."""
    step = plan.steps[i]
    rng = random.Random(_digest(plan.key, i, "cand"))
    texts = [step.text, _alternative(step, rng, plan.pool)]
    while len(texts) < TOP_K:
        word = _shape(_vocab_word(rng), step.text)
        if word not in texts:
            texts.append(word)
    if texts[1] == texts[0]:
        texts[1] = _shape("instead", step.text)
    low, high = _MARGINS[step.kind]
    logits = [0.0, -rng.uniform(low, high)]
    for _ in range(TOP_K - 2):
        logits.append(logits[-1] - rng.uniform(0.4, 2.5))
    return texts, logits


def _logprobs(logits: list[float]) -> list[float]:
    # The unseen rest of a 32k vocabulary carries a little mass, so top-1 is never exactly 0.
    rest = logits[0] - 6.0 + math.log(32000 - TOP_K) * 0.5
    z = math.log(sum(math.exp(x) for x in logits) + math.exp(rest))
    return [x - z for x in logits]


def natural_length(variant: Variant, prompt: str) -> int:
    """Tokens until a filler answer ends by itself (EOS): 24..183, fixed per prompt and model."""
    return 24 + _digest(variant.ref_key, variant.seed, variant.adapter or "", prompt, "len") % 160


def _ends_sentence(key: str, prompt: str, i: int) -> bool:
    return i >= 3 and unit(key, prompt, i, "end") < 0.08


def tail_length(variant: Variant, prompt: str) -> int:
    """Tokens of explanation a chatty model adds after an answer whose checks allow it: 16..75, per prompt."""
    return 16 + _digest(variant.identity, prompt, "tail") % 60


def _filler(key: str, prompt: str, n: int, start: int = 0, topic: tuple[str, ...] | None = None) -> list[Step]:
    """Words from a small English/infra vocabulary and the prompt's own long words (or ``topic``), as sentences."""
    topic = sorted({w.lower() for w in _TOPIC_RE.findall(prompt)}) if topic is None else list(topic)
    steps = []
    for i in range(start, start + n):
        rng = random.Random(_digest(key, prompt, i))
        pool = topic if topic and rng.random() < 0.2 else _VOCAB
        word = pool[rng.randrange(len(pool))]
        starts = i == start or _ends_sentence(key, prompt, i - 1)
        ends = _ends_sentence(key, prompt, i)
        text = ("" if i == 0 else " ") + (word.capitalize() if starts else word) + ("." if ends else "")
        steps.append(Step(text))
    return steps


def _rephrase(steps: list[Step], rng: random.Random, pool: tuple[str, ...] = _VOCAB) -> list[Step]:
    """The same content in other words: critical tokens kept, prose words replaced, now and then one dropped or
    added, so later tokens no longer line up position by position. Sentence ends and line starts stay."""
    out: list[Step] = []
    for step in steps:
        if step.critical:
            out.append(step)
            continue
        u = rng.random()
        inner = "\n" not in step.text and step.text.strip() == _core(step.text)  # not a line start or sentence end
        if u < 0.08 and out and inner:
            continue
        text = _shape(_vocab_word(rng, pool=pool), step.text) if u < REPHRASE else step.text
        out.append(Step(text))
        if rng.random() < 0.08 and inner:
            out.append(Step(_shape(_vocab_word(rng, pool=pool), " x")))
    return out


def _corrupted(steps: list[Step], rng: random.Random, first: bool, pool: tuple[str, ...] = _VOCAB) -> list[Step]:
    """Critical tokens wrong (the first one surely when ``first``, each later one at CASCADE), prose rephrased."""
    out = []
    pending = first
    for step in steps:
        if step.critical and (pending or rng.random() < CASCADE):
            out.append(Step(corrupt(step.text, step.kind, rng), step.kind))
            pending = False
        else:
            out.append(step)
    if pending and out:  # nothing critical: the answer goes wrong at a word instead
        i = rng.randrange(len(out))
        out[i] = Step(corrupt(out[i].text, "prose", rng), "term")
    return _rephrase(out, rng, pool)


def knows(variant: Variant, prompt: str) -> bool:
    """Whether the (full-precision) model answers a known prompt right; an adapter re-draws on ``drift``."""
    base = unit(variant.ref_key, variant.seed, prompt, "knows") < SKILL
    if variant.adapter is None or unit(variant.identity, prompt, "drift") >= variant.drift:
        return base
    return unit(variant.identity, prompt, "knows") < SKILL


def plan(variant: Variant, prompt: str, knowledge: Knowledge | None = None) -> Plan:
    """The full-precision model's answer to ``prompt``, before any quantization noise or sampling."""
    answer = knowledge.lookup(prompt) if knowledge is not None else None
    key = f"{variant.identity}|{prompt}"
    if answer is None:
        return Plan(_filler(variant.identity, prompt, natural_length(variant, prompt)), key)
    steps = [Step(t, classify(t, answer)) for t in answer.tokens]
    pool = _pool(steps)
    rng = random.Random(_digest(key, "plan"))
    if not knows(variant, prompt):
        steps = _corrupted(steps, rng, first=True, pool=pool)
    elif variant.adapter is not None:
        steps = _rephrase(steps, rng, pool)  # an adapter says it in its own words
    end = len(steps)
    if not answer.strict:  # a chatty model explains what it answered, unless the format forbids it
        steps += _explanation(key, prompt, tail_length(variant, prompt), end, pool)
    return Plan(steps, key, open_from=end, pool=pool)


def _explanation(key: str, prompt: str, n: int, start: int, pool: tuple[str, ...]) -> list[Step]:
    """What a chatty model adds after its answer: sentences in the answer's own words (so its language)."""
    tail = _filler(key, prompt, n, start, topic=pool)
    if tail:
        tail[0] = Step("\n\n" + tail[0].text.strip().capitalize())
    return tail


def _diverge(plan_: Plan, i: int, emitted: str, salt: str, prompt: str) -> Plan:
    """The plan after emitting ``emitted`` instead of the plan's token at position ``i``."""
    step = plan_.steps[i]
    key = f"{plan_.key}|{salt}@{i}"
    if i >= plan_.open_from:  # in free text: a different text from here on
        topic = plan_.pool if plan_.open_from else None
        rest = _filler(key, prompt, len(plan_.steps) - i - 1, start=i + 1, topic=topic)
        return Plan([*plan_.steps[:i], Step(emitted, step.kind), *rest], key, plan_.open_from, plan_.pool)
    answer, explained = plan_.steps[i + 1 : plan_.open_from], len(plan_.steps) - plan_.open_from
    rng = random.Random(_digest(key, "rest"))
    if step.critical:
        answer = _corrupted(answer, rng, first=False, pool=plan_.pool)
    else:
        answer = _rephrase(answer, rng, plan_.pool)
    steps = [*plan_.steps[:i], Step(emitted, step.kind), *answer]
    end = len(steps)
    if explained:
        steps += _explanation(key, prompt, explained, end, plan_.pool)
    return Plan(steps, key, end, plan_.pool)


def generate(
    variant: Variant,
    prompt: str,
    max_tokens: int,
    temperature: float = 0.0,
    rng: random.Random | None = None,
    knowledge: Knowledge | None = None,
) -> Iterator[Token]:
    """Yield up to ``max_tokens`` tokens; stops early at the answer's natural end (EOS)."""
    current = plan(variant, prompt, knowledge)
    salt = f"{variant.noise_key}|{variant.seed}"
    i = 0
    while i < min(max_tokens, len(current.steps)):
        texts, logits = _candidates(current, i)
        if variant.noise > 0:
            noise = random.Random(_digest(salt, current.key, i, "noise"))
            logits = [x + noise.gauss(0.0, variant.noise) for x in logits]
        lps = _logprobs(logits)
        order = sorted(range(TOP_K), key=lambda j: -lps[j])
        if temperature <= 0 or rng is None:
            pick = order[0]
        else:
            weights = [math.exp(lps[j] / temperature) for j in range(TOP_K)]
            pick = rng.choices(range(TOP_K), weights=weights)[0]
        top = tuple((texts[j], lps[j]) for j in order)
        yield Token(texts[pick], lps[pick], top)
        if pick != 0:
            current = _diverge(current, i, texts[pick], salt if rng is None else f"{salt}|t", prompt)
        i += 1


def scripted(text: str) -> list[Token]:
    """Tokens for a fixed text (judge / JSON answers) that join back to exactly ``text``."""
    return [Token(p, -0.01, ((p, -0.01), (" the", -5.2))) for p in pieces(text) or [text]]
