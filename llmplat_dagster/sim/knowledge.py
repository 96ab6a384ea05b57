"""What the simulated model knows: the reference answers of the packaged promptsets, found by prompt text.

A simulator cannot be right or wrong about a question it has no answer for, so task accuracy against it would be
noise. The packaged promptsets carry a reference answer and checkable expectations per prompt; the simulator reads
them once and answers a prompt it recognises with that reference (or a corruption of it, see ``sim/model.py``).
Every other prompt gets filler text. The assertion values tell which words an answer is judged on (its terms), and
the tags whether it must be reproduced verbatim (code, JSON, YAML, copying, strict formats).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VERBATIM_TAGS = frozenset({"code", "json", "yaml", "copying", "formatting"})
_PIECE = re.compile(r"\s*\S+")
_WORD = re.compile(r"\w+")
_REGEX_ESCAPE = re.compile(r"\\[A-Za-z]|\(\?[A-Za-z]+[:)]")  # \b, \d, (?i) ... are syntax, not words
_FLAGS = re.compile(r"^\(\?[A-Za-z]+\)")  # a leading (?i) before an anchor
_REGEX_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")


def normalize(text: str) -> str:
    """Whitespace-insensitive key: what a server sees differs from the file only in spacing, if at all."""
    return " ".join(text.split())


def pieces(text: str) -> list[str]:
    """The simulator's tokens of a text: whitespace-led chunks that join back to exactly the text."""
    return _PIECE.findall(text) or ([text] if text else [])


@dataclass(frozen=True)
class Answer:
    """A prompt the simulator can answer right or wrong."""

    prompt_id: str
    reference: str
    terms: tuple[str, ...] = ()  # casefolded texts the prompt's assertions look for
    verbatim: bool = False
    strict: bool = False  # its checks pin the whole output (equals, is-json, starts-with, an anchored regex)

    @functools.cached_property
    def tokens(self) -> list[str]:
        return pieces(self.reference)

    @functools.cached_property
    def term_words(self) -> frozenset[str]:
        return frozenset(w for term in self.terms for w in _WORD.findall(term))

    def is_term(self, word: str) -> bool:
        """Whether the expectations look for this word (or for a longer word that contains it, or it them)."""
        parts = _WORD.findall(word.casefold())
        return any(p in self.term_words or any(len(t) > 3 and t in p for t in self.term_words) for p in parts)


def _schema_strings(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("const", "pattern") and isinstance(value, str):
                yield value
            else:
                yield from _schema_strings(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _schema_strings(value)


def assertion_terms(assertions) -> tuple[str, ...]:
    """The literal texts positive assertions look for, and the words their regexes name (numbers are found by form)."""
    out: list[str] = []
    for a in assertions:
        if a.negated:
            continue
        if a.base == "regex":
            out += _REGEX_WORDS.findall(_REGEX_ESCAPE.sub(" ", a.value))
        elif isinstance(a.value, str):
            out.append(a.value)
        elif isinstance(a.value, list):
            out += [v for v in a.value if isinstance(v, str)]
        elif isinstance(a.value, dict):
            out += list(_schema_strings(a.value))
    return tuple(t.casefold() for t in out if t.strip())


def pins_whole_output(assertions) -> bool:
    """Whether a check leaves no room for text around the answer (a chatty model would fail it)."""
    return any(
        not a.negated
        and (
            a.base in ("equals", "is-json", "starts-with")
            or (a.base == "regex" and a.value.lstrip("(?ims)").startswith(("^", "\\A")))
        )
        for a in assertions
    )


class Knowledge:
    """Answers by normalized prompt text (a chat request's messages joined by newlines, system folded in)."""

    def __init__(self, answers: Mapping[str, Answer] | None = None) -> None:
        self.answers = dict(answers or {})

    def __len__(self) -> int:
        return len(self.answers)

    def lookup(self, prompt: str) -> Answer | None:
        return self.answers.get(normalize(prompt))

    @classmethod
    def from_prompts(cls, prompts) -> Knowledge:
        """From loaded promptset prompts (``evaluation.promptsets.Prompt``) that carry a reference answer."""
        from llmplat_dagster.evaluation.promptsets import fold_system_message

        answers = {}
        for p in prompts:
            if not p.reference:
                continue
            text = "\n".join(m["content"] for m in fold_system_message([dict(m) for m in p.messages]))
            verbatim = bool(VERBATIM_TAGS & set(p.tags))
            answers[normalize(text)] = Answer(
                p.id, p.reference, assertion_terms(p.assertions), verbatim, pins_whole_output(p.assertions)
            )
        return cls(answers)


@functools.cache
def packaged_knowledge() -> Knowledge:
    """Every packaged promptset's reference answers, read once per process."""
    from llmplat_dagster.evaluation.promptsets import load_promptset, packaged_promptsets

    prompts = [p for name in packaged_promptsets() for p in load_promptset(name).prompts]
    return Knowledge.from_prompts(prompts)
