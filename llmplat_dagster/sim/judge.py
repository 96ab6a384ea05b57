"""Judge behaviour: a scoring prompt gets a JSON score, sometimes wrapped in prose or fences.

Real judges wrap JSON in prose and code fences and sometimes break it; the evaluation's parser must
cope, so the simulator produces all three at configurable, deterministic rates. The score is the
word-level similarity of the judged response to the reference answer for the question, mapped onto
the requested scale, so a noisier variant really scores lower.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from llmplat_dagster.sim.model import Variant, generate, natural_length, unit

_LABEL = re.compile(
    r"^\s*(?:#{1,4}\s*|\[|\*\*)?(question|prompt|instruction|reference answer|reference|"
    r"candidate answer|candidate response|response|answer)(?:\]|\*\*)?\s*:?(?:\*\*)?\s*(.*)$",
    re.I,
)
_SCALE = re.compile(r"(\d+)\s*(?:-|to|–)\s*(\d+)")


def is_judge_prompt(prompt: str) -> bool:
    """A prompt that asks for a JSON object with a "score" field."""
    return '"score"' in prompt or bool(re.search(r"\bscore\b[\s\S]*\bjson\b", prompt, re.I))


def _sections(prompt: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in prompt.splitlines():
        m = _LABEL.match(line)
        if m:
            label = m.group(1).lower()
            key = (
                "reference"
                if label.startswith("reference")
                else ("question" if label in ("question", "prompt", "instruction") else "response")
            )
            current = found.setdefault(key, []) if key not in found else []
            if m.group(2):
                current.append(m.group(2))
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}


def _scale(prompt: str) -> tuple[int, int]:
    for m in _SCALE.finditer(prompt):
        lo, hi = int(m.group(1)), int(m.group(2))
        if 0 <= lo < hi <= 100:
            return lo, hi
    return 1, 10


def judge_score(prompt: str, reference_variant: Variant) -> tuple[int, str]:
    """(score, reasoning), deterministic from the prompt's content."""
    lo, hi = _scale(prompt)
    sec = _sections(prompt)
    response = sec.get("response")
    if response and (sec.get("reference") or sec.get("question")):
        reference = sec.get("reference")
        if not reference:
            q = sec["question"]
            n = natural_length(reference_variant, q)
            reference = "".join(t.text for t in generate(reference_variant, q, n))
        sim = difflib.SequenceMatcher(None, reference.split(), response.split(), autojunk=False).ratio()
        score = lo + round(sim * (hi - lo))
        return score, f"The response agrees with the reference answer on {sim:.0%} of its wording."
    score = lo + int(unit(prompt, "judge") * (hi - lo + 1))
    return min(score, hi), "No reference was given; the score reflects overall coherence and relevance."


def judge_text(prompt: str, reference_variant: Variant, bare: bool, seed: int, rates: dict[str, float]) -> str:
    """The judge's raw output text: bare JSON, fenced, in prose, or malformed (rates by seed)."""
    score, reasoning = judge_score(prompt, reference_variant)
    body = json.dumps({"score": score, "reasoning": reasoning})
    if unit(seed, prompt, "malformed") < rates.get("malformed", 0.0):
        return body[: len(body) // 2] if bare else f"Score: {score}/10 - {reasoning}"
    if bare:
        return body
    if unit(seed, prompt, "fence") < rates.get("fence", 0.0):
        body = f"```json\n{body}\n```"
    if unit(seed, prompt, "prose") < rates.get("prose", 0.0):
        body = f"Here is my evaluation of the response.\n\n{body}\n\nI hope this assessment helps."
    return body


_PAIR = re.compile(r"Question:\s*(?P<q>.*?)\n\s*\[Answer A\]\s*(?P<a>.*?)\n\s*\[Answer B\]\s*(?P<b>.*)\Z", re.S)
POSITION_BIAS = 0.1  # share of pairwise verdicts that just pick the first answer, as real LLM judges do


def is_pairwise_prompt(prompt: str) -> bool:
    """A prompt that asks which of two answers wins: `{"winner": "A" | "B" | "tie"}`."""
    return '"winner"' in prompt and "[Answer A]" in prompt and "[Answer B]" in prompt


def pairwise_text(prompt: str, reference_variant: Variant, bare: bool, seed: int, rates: dict[str, float]) -> str:
    """The answer closer to the reference answer wins (a 2-point margin, else a tie); at the position-bias
    rate the judge picks "A" whatever it says, so swapping the answers exposes it."""
    m = _PAIR.search(prompt)
    if not m:
        winner, reason = "tie", "The answers could not be told apart."
    else:
        q = m.group("q").strip()
        reference = "".join(t.text for t in generate(reference_variant, q, natural_length(reference_variant, q)))
        ref = reference.split()
        sims = [difflib.SequenceMatcher(None, ref, m.group(k).split(), autojunk=False).ratio() for k in ("a", "b")]
        winner = "A" if sims[0] > sims[1] + 0.02 else "B" if sims[1] > sims[0] + 0.02 else "tie"
        reason = f"Answer A matches the reference on {sims[0]:.0%} of its wording, answer B on {sims[1]:.0%}."
    if unit(seed, prompt, "position") < rates.get("position_bias", POSITION_BIAS):
        winner = "A"
    body = json.dumps({"winner": winner, "reasoning": reason})
    if unit(seed, prompt, "malformed") < rates.get("malformed", 0.0):
        return body[: len(body) // 2]
    if not bare and unit(seed, prompt, "fence") < rates.get("fence", 0.0):
        body = f"```json\n{body}\n```"
    return body


def schema_answer(schema: dict[str, Any] | None, prompt: str) -> str:
    """Bare JSON for response_format / guided_json: fills a schema's properties by type."""
    props = (schema or {}).get("properties") or {}
    if not props:
        return json.dumps({"answer": f"Simulated answer {unit(prompt, 'json'):.4f}"})
    out: dict[str, Any] = {}
    for name, spec in props.items():
        kind = spec.get("type", "string") if isinstance(spec, dict) else "string"
        u = unit(prompt, name)
        out[name] = {
            "integer": int(u * 10),
            "number": round(u * 10, 2),
            "boolean": u < 0.5,
            "array": [],
            "object": {},
        }.get(kind, f"simulated {name}")
    return json.dumps(out)
