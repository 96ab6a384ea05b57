"""Judge behaviour: a scoring prompt gets a JSON score, sometimes wrapped in prose or fences.

Real judges wrap JSON in prose and code fences and sometimes break it; the evaluation's parser must
cope, so the simulator produces all three at configurable, deterministic rates. The score is how much of the
expected answer's content (its numbers, identifiers, syntax and checked words, in order) the judged response
states, against the reference answer given in the prompt (or, without one, the answer the simulator knows for the
question), mapped onto the requested scale. It never compares with what another model said: two correct answers in
different words score alike, and a treatment identical to its control ties with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rapidfuzz.distance import LCSseq

from llmplat_dagster.sim.knowledge import Answer, Knowledge, pieces
from llmplat_dagster.sim.model import classify, unit

_LABEL = re.compile(
    r"^\s*(?:#{1,4}\s*|\[|\*\*)?(question|prompt|instruction|reference answer|expected answer|reference|rubric|"
    r"candidate answer|candidate response|response|answer)(?:\]|\*\*)?\s*:?(?:\*\*)?\s*(.*)$",
    re.I,
)
_SCALE = re.compile(r"(\d+)\s*(?:-|to|–)\s*(\d+)")
_KEYS = {"question": "question", "prompt": "question", "instruction": "question", "rubric": "rubric"}


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
            key = "reference" if label.startswith(("reference", "expected")) else _KEYS.get(label, "response")
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


def _norm(token: str) -> str:
    return token.strip().casefold()


def agreement(reference: str, response: str, answer: Answer | None = None) -> float:
    """Share of the reference's content tokens the response states, in order (1.0 = all of them)."""
    tokens = pieces(reference)
    content = [_norm(t) for t in tokens if classify(t, answer) != "prose"] or [_norm(t) for t in tokens]
    if not content:
        return 0.0
    return LCSseq.similarity(content, [_norm(t) for t in pieces(response)]) / len(content)


def _expected(sections: dict[str, str], knowledge: Knowledge | None) -> tuple[str | None, Answer | None]:
    answer = knowledge.lookup(sections.get("question", "")) if knowledge is not None else None
    return sections.get("reference") or (answer.reference if answer else None), answer


def judge_score(prompt: str, knowledge: Knowledge | None = None) -> tuple[int, str]:
    """(score, reasoning), deterministic from the prompt's content."""
    lo, hi = _scale(prompt)
    sec = _sections(prompt)
    reference, answer = _expected(sec, knowledge)
    response = sec.get("response")
    if response is not None and reference:
        share = agreement(reference, response, answer)
        score = lo + round(share * (hi - lo))
        return score, f"The response states {share:.0%} of what the reference answer states."
    score = lo + int(unit(prompt, "judge") * (hi - lo + 1))
    return min(score, hi), "No reference answer was given; the score reflects overall coherence and relevance."


def judge_text(prompt: str, knowledge: Knowledge | None, bare: bool, seed: int, rates: dict[str, float]) -> str:
    """The judge's raw output text: bare JSON, fenced, in prose, or malformed (rates by seed)."""
    score, reasoning = judge_score(prompt, knowledge)
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


_PAIR = re.compile(r"\A(?P<head>.*?)\n\s*\[Answer A\]\s*(?P<a>.*?)\n\s*\[Answer B\]\s*(?P<b>.*)\Z", re.S)
POSITION_BIAS = 0.1  # share of pairwise verdicts that just pick the first answer, as real LLM judges do
MARGIN = 0.02  # agreement difference below which two answers tie


def is_pairwise_prompt(prompt: str) -> bool:
    """A prompt that asks which of two answers wins: `{"winner": "A" | "B" | "tie"}`."""
    return '"winner"' in prompt and "[Answer A]" in prompt and "[Answer B]" in prompt


def pairwise_text(prompt: str, knowledge: Knowledge | None, bare: bool, seed: int, rates: dict[str, float]) -> str:
    """The answer that states more of the expected answer wins (by a margin, else a tie); at the position-bias
    rate the judge picks "A" whatever it says, so swapping the answers exposes it."""
    m = _PAIR.search(prompt)
    reference, answer = _expected(_sections(m.group("head")), knowledge) if m else (None, None)
    if not m or not reference:
        winner, reason = "tie", "Without a reference answer the replies could not be told apart."
    else:
        a, b = (agreement(reference, m.group(k).strip(), answer) for k in ("a", "b"))
        winner = "A" if a > b + MARGIN else "B" if b > a + MARGIN else "tie"
        reason = f"Answer A states {a:.0%} of the reference answer, answer B {b:.0%}."
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
