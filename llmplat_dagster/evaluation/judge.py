"""LLM-as-judge: rubric and pairwise prompts, and parsers that survive what models really write.

Judges wrap JSON in prose and ```json fences, use single quotes, leave trailing commas, write "7/10" or
"8.5" as strings, or answer "Score: 7/10" with no JSON at all. The parsers try, in order: each balanced
``{...}`` (in fences first), as JSON, then with trailing commas removed, then as a Python literal (single
quotes); then a ``score: N`` / ``N/10`` pattern in the text, unless the answer is a JSON object cut off
before its closing brace (its last number may be cut too: ``{"score": 1`` of a 10). They never raise: a
failure is a JudgeScore with ``score=None`` and an ``error``, counted by :func:`parse_failure_rate`.
Out-of-range scores are clamped into [low, high] and flagged ``clamped`` (not a failure) when they lie within one
scale width of it; farther out (``Score: 85`` on 0-10) they are failures, as are percentages (``85%``) and an
echoed answer format (``score: <0-10>``, ``winner: A | B | tie``): a misread must count as a failure, never as a
plausible number. ``4 (out of 5)`` is rescaled like ``4/5``.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

SAME_FAMILY_NOTE = (
    "The judge (mistral-7b-judge) is Mistral-7B-Instruct, the same family as every variant it scores; LLM judges "
    "favour outputs of their own family, so judge scores are biased upwards for these variants and are a "
    "relative signal between them, not an absolute quality level. Check position bias and parse failures."
)
MAX_CHARS = 100_000  # longer outputs are cut before parsing, so a runaway generation cannot stall the parser
_MAX_OBJECTS = 20
_NUM = r"(-?\d+(?:\.\d+)?)"
_FRACTION = re.compile(rf"^\s*{_NUM}\s*(?:\(?\s*(?:/|out of)\s*{_NUM}\s*\)?)?\s*$", re.I)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_JSON_WORDS = re.compile(r"\b(true|false|null)\b")
_WINNERS = {"a": "A", "b": "B", "tie": "tie", "draw": "tie", "equal": "tie", "both": "tie", "neither": "tie"}
_WINNER_VALUE = re.compile(
    r"^\s*(?:answer|response|assistant|model|option)?[\s_]*(a|b|tie|draw|equal|both|neither)\W*$", re.I
)
_WINNER_TEXT = re.compile(r"[\"']?winner[\"']?\s*[:=]\s*[\"']?\s*(?:answer |response )?(A|B|tie)\b", re.I)
_WINNER_BRACKETS = re.compile(r"\[\[(A|B|C|tie)\]\]", re.I)
_OUT_OF = r"\s*\(?\s*(?:/|out of)\s*"  # "7/10", "7 out of 10", "4 (out of 5)"
_ECHOED_RANGE = re.compile(r"^\s*<?\s*-?\d+(?:\.\d+)?\s*(?:-|–|to)\s*-?\d+(?:\.\d+)?\s*>?")  # "0-10", "<0-10>"
_ALTERNATIVES = re.compile(r"^[\"']?\s*\|")  # `"A" | "B" | "tie"`: the format, not a verdict


def judge_schema(low: int = 0, high: int = 10) -> dict[str, Any]:
    """JSON schema for the judge's answer, for ``response_format`` (json_schema) or vLLM's ``guided_json``."""
    return {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": low, "maximum": high},
            "reasoning": {"type": "string"},
        },
        "required": ["score", "reasoning"],
        "additionalProperties": False,
    }


JUDGE_SCHEMA = judge_schema()
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reasoning": {"type": "string"}},
    "required": ["winner"],
    "additionalProperties": False,
}


def response_format(schema: dict[str, Any], name: str = "judge_score") -> dict[str, Any]:
    """The OpenAI ``response_format`` body for a JSON schema (vLLM accepts it on /v1/chat/completions)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _expected(reference: str | None, rubric: str | None) -> str:
    """The prompt's own expected answer and rubric: the judge scores against these, never against another model."""
    parts = []
    if reference:
        parts.append(f"Reference answer:\n{reference}")
    if rubric:
        parts.append(f"Rubric:\n{rubric}")
    return "".join(f"{p}\n\n" for p in parts)


def judge_prompt(
    question: str,
    answer: str,
    rubric: str = "helpfulness and correctness",
    *,
    reference: str | None = None,
    criteria: str | None = None,
    low: int = 0,
    high: int = 10,
) -> list[dict[str, str]]:
    """Chat messages asking for ``{"score": <low-high>, "reasoning": "..."}`` about one answer.

    With ``reference`` (the prompt's expected answer) and/or ``criteria`` (its rubric) the judge checks the answer
    against them: what it states must agree with the reference, in any wording.
    """
    against = (
        " Judge correctness against the reference answer and rubric below: a response is correct when it states what "
        "the reference states (the wording may differ) and wrong when a number, name, identifier or format differs."
        if reference or criteria
        else ""
    )
    system = (
        f"You are a strict, impartial evaluator. Rate the response below on a scale of {low} to {high} for "
        f"{rubric}, where {low} is useless or wrong and {high} is excellent.{against}\n"
        f'Reply with only a JSON object: {{"score": <{low}-{high}>, "reasoning": "<one or two sentences>"}}.'
    )
    user = f"Question:\n{question}\n\n{_expected(reference, criteria)}Response:\n{answer}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def pairwise_prompt(
    question: str, answer_a: str, answer_b: str, *, reference: str | None = None, criteria: str | None = None
) -> list[dict[str, str]]:
    """Chat messages asking which of two answers is better: ``{"winner": "A" | "B" | "tie"}``.

    With a reference answer or rubric, the better answer is the one that agrees with it; two correct answers tie.
    """
    against = (
        " Decide by the reference answer and rubric: the better reply is the one that agrees with them; if both or "
        "neither do, say tie."
        if reference or criteria
        else ""
    )
    system = (
        "You are a strict, impartial evaluator. Compare the two assistant replies to the question for "
        f"helpfulness and correctness. Do not let their order or length influence you.{against}\n"
        'Reply with only a JSON object: {"winner": "A" | "B" | "tie", "reasoning": "<one sentence>"}.'
    )
    user = f"Question:\n{question}\n\n{_expected(reference, criteria)}[Answer A]\n{answer_a}\n\n[Answer B]\n{answer_b}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class JudgeScore:
    """A parsed score (None on failure, with ``error``), whether it was clamped, and the raw text."""

    score: float | None
    clamped: bool = False
    error: str | None = None
    raw: Any = None
    reasoning: str | None = None


@dataclass(frozen=True)
class PairwiseVerdict:
    """ "A", "B", "tie", or None with ``error``."""

    winner: str | None
    error: str | None = None
    raw: Any = None


def _balanced_objects(text: str) -> Iterator[str]:
    """``{...}`` spans whose braces balance (string contents ignored), by start position; bounded work."""
    i = -1
    for _ in range(_MAX_OBJECTS):
        if (i := text.find("{", i + 1)) == -1:
            return
        depth, quote, escaped = 0, "", False
        for j in range(i, len(text)):
            ch = text[j]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    yield text[i : j + 1]
                    break
        else:  # unbalanced, often a stray apostrophe in single-quoted JSON: up to the next closing brace
            end = text.find("}", i)
            if end != -1:
                yield text[i : end + 1]


def _loads(candidate: str) -> Any:
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
    literal = _JSON_WORDS.sub(lambda m: {"true": "True", "false": "False", "null": "None"}[m.group(1)], candidate)
    try:
        with warnings.catch_warnings():  # the compiler warns about odd escapes in model text
            warnings.simplefilter("ignore")
            return ast.literal_eval(literal)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _objects(text: str) -> Iterator[dict[str, Any]]:
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for source in sources:
        for candidate in _balanced_objects(source):
            value = _loads(candidate)
            if isinstance(value, dict):
                yield value


def _field(obj: dict[str, Any], name: str) -> tuple[bool, Any]:
    """(found, value) of a key, case-insensitive, in obj or one level down."""
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == name:
            return True, value
    for value in obj.values():
        if isinstance(value, dict):
            found, inner = _field(value, name)
            if found:
                return True, inner
    return False, None


def _number(value: Any, high: float) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or value is None:
        return None, f"score is {value!r}, not a number"
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        return None, f"score {value.strip()[:20]!r} is a percentage, not a score on the scale"
    elif isinstance(value, str) and (m := _FRACTION.match(value)):
        number = float(m.group(1))
        if m.group(2) is not None:
            denominator = float(m.group(2))
            if denominator <= 0:
                return None, f"score {value!r} has a zero denominator"
            number = number if denominator == high else number / denominator * high
    else:
        return None, f"score {str(value)[:40]!r} is not a number"
    return (number, None) if math.isfinite(number) else (None, f"score {value!r} is not finite")


def _text_score(text: str, high: float) -> str | None:
    """A `score: N` (or `N/10`) in prose; a label followed by a range (`score: 0-10`) is the echoed format."""
    for labelled in re.finditer(r"\b(?:score|rating)\b[\"']?\s*(?:[:=]|is|of)\s*[\"']?\s*", text, re.I):
        rest = text[labelled.end() : labelled.end() + 40]
        if _ECHOED_RANGE.match(rest):
            continue
        number = re.match(rf"{_NUM[1:-1]}(?:{_OUT_OF}\d+(?:\.\d+)?\s*\)?)?(?:\s*%)?", rest)
        if number:
            return number.group(0)
    fraction = re.search(rf"{_NUM}{_OUT_OF}{high:g}\b\s*\)?", text)
    return fraction.group(0) if fraction else None


def parse_judge(text: Any, *, low: float = 0, high: float = 10) -> JudgeScore:
    """The judge's score from raw output; never raises (see the module docstring for what it accepts)."""
    try:
        if not isinstance(text, str):
            return JudgeScore(None, error=f"judge output is {type(text).__name__}, not text", raw=text)
        body = text[:MAX_CHARS]
        value, reasoning, error = None, None, "no JSON object and no 'score: N' in the output"
        for obj in _objects(body):
            found, value = _field(obj, "score")
            has_reason, reason = _field(obj, "reasoning")
            reasoning = reason if has_reason and isinstance(reason, str) else None
            if found:
                error = None
                break
            error = "JSON object without a 'score' field"
        if error is not None and body.lstrip().startswith("{") and "}" not in body:
            return JudgeScore(None, error="JSON object cut off before its end", raw=text)
        if error is not None:
            value = _text_score(body, high)
            if value is None:
                if re.search(r"\b(?:score|rating)\b[\"']?\s*[:=]\s*[\"']?\s*(?:<|\d+\s*(?:-|–|to)\s*\d)", body, re.I):
                    error = "the output echoes the answer format (score: <low-high>), not a score"
                return JudgeScore(None, error=error, raw=text)
        score, problem = _number(value, high)
        if score is None:
            return JudgeScore(None, error=problem, raw=text, reasoning=reasoning)
        width = high - low
        if not low - width <= score <= high + width:  # not a slip past the end: another scale, or a misread
            error = f"score {score:g} is far outside the {low:g}-{high:g} scale"
            return JudgeScore(None, error=error, raw=text, reasoning=reasoning)
        clamped = float(min(max(score, low), high))
        return JudgeScore(clamped, clamped != score, None, text, reasoning)
    except Exception as exc:  # noqa: BLE001 - a parser bug must count as a parse failure, not stop a run
        return JudgeScore(None, error=f"parser error: {type(exc).__name__}: {exc}", raw=text)


def parse_failure_rate(scores: Iterable[JudgeScore]) -> float:
    """Share of outputs without a usable score (clamped scores are usable); NaN for no outputs."""
    flags = [s.score is None for s in scores]
    return sum(flags) / len(flags) if flags else math.nan


def parse_pairwise(text: Any) -> PairwiseVerdict:
    """ "A", "B" or "tie" from a pairwise verdict (JSON, prose with ``winner: A``, or ``[[A]]``); never raises."""
    try:
        if not isinstance(text, str):
            return PairwiseVerdict(None, f"judge output is {type(text).__name__}, not text", text)
        body = text[:MAX_CHARS]
        for obj in _objects(body):
            found, value = _field(obj, "winner")
            if found:
                m = _WINNER_VALUE.match(str(value))
                if m:
                    return PairwiseVerdict(_WINNERS[m.group(1).lower()], None, text)
                return PairwiseVerdict(None, f"winner {str(value)[:40]!r} is not A, B or tie", text)
        for m in _WINNER_TEXT.finditer(body):
            if not _ALTERNATIVES.match(body[m.end() :]):
                return PairwiseVerdict(_WINNERS[m.group(1).lower()], None, text)
        brackets = {_WINNERS.get(b.lower(), "tie") for b in _WINNER_BRACKETS.findall(body)}  # [[C]] is MT-bench's tie
        if len(brackets) == 1:
            return PairwiseVerdict(brackets.pop(), None, text)
        if len(brackets) > 1 or _WINNER_TEXT.search(body):
            return PairwiseVerdict(None, "the output lists several verdicts (an echoed format?), not one winner", text)
        return PairwiseVerdict(None, "no winner in the output", text)
    except Exception as exc:  # noqa: BLE001
        return PairwiseVerdict(None, f"parser error: {type(exc).__name__}: {exc}", text)


def _winner(v: Any) -> str | None:
    return v.winner if isinstance(v, PairwiseVerdict) else v


def position_bias(first: Iterable[Any], swapped: Iterable[Any]) -> float:
    """Share of prompts whose verdict names the same position (A/A or B/B) after the answers were swapped.

    ``first[i]`` judged (x, y) as (A, B), ``swapped[i]`` judged (y, x). A consistent judge flips (A then B) or
    says tie twice; a tie on one side only is inconsistent but not position-following. Prompts with an
    unparsed verdict on either side are left out; NaN when none remain.
    """
    pairs = [(_winner(a), _winner(b)) for a, b in zip(first, swapped, strict=True)]
    valid = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not valid:
        return math.nan
    return sum(a == b and a in ("A", "B") for a, b in valid) / len(valid)


def pairwise_outcomes(first: Iterable[Any], swapped: Iterable[Any]) -> tuple[int, int, int, int]:
    """(wins, losses, ties, unparsed) for the answer shown as A in ``first``; only a flipped verdict counts.

    Inconsistent pairs (the judge followed the position, or tied once) count as ties, so position bias cannot
    manufacture a win for whichever answer happens to come first.
    """
    wins = losses = ties = unparsed = 0
    for a, b in zip(first, swapped, strict=True):
        a, b = _winner(a), _winner(b)
        if a is None or b is None:
            unparsed += 1
        elif a == "A" and b == "B":
            wins += 1
        elif a == "B" and b == "A":
            losses += 1
        else:
            ties += 1
    return wins, losses, ties, unparsed
