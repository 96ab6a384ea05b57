"""Turns a validated request into per-choice token plans and applies stop strings as tokens emit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from llmplat_dagster.sim.judge import is_judge_prompt, is_pairwise_prompt, judge_text, pairwise_text, schema_answer
from llmplat_dagster.sim.knowledge import Knowledge
from llmplat_dagster.sim.model import Token, Variant, generate, scripted, unit
from llmplat_dagster.sim.protocol import GenParams


@dataclass
class ChoiceState:
    """One of the ``n`` choices: its planned tokens and what has been emitted so far."""

    index: int
    planned: list[Token]
    natural_stop: bool
    stop: list[str]
    text: str = ""
    emitted: list[Token] = field(default_factory=list)
    finish: str | None = None

    def step(self, i: int) -> str | None:
        """Emit planned token ``i``; the text piece to send, or None once this choice has finished."""
        if self.finish or i >= len(self.planned):
            return None
        tok = self.planned[i]
        self.emitted.append(tok)
        acc = self.text + tok.text
        hits = [p for p in (acc.find(s) for s in self.stop if s) if p >= 0]
        if hits:
            cut = min(hits)
            piece, self.text, self.finish = acc[len(self.text) : cut], acc[:cut], "stop"
            return piece
        self.text = acc
        if i == len(self.planned) - 1:
            self.finish = "stop" if self.natural_stop else "length"
        return tok.text


def plan_choices(
    params: GenParams, variant: Variant, knowledge: Knowledge | None, seed: int, judge_rates: dict[str, float]
) -> list[ChoiceState]:
    """Plan every choice's tokens up front: text is a pure function of the request and variant."""
    if is_pairwise_prompt(params.prompt):
        return _scripted_choices(params, pairwise_text(params.prompt, knowledge, params.json_mode, seed, judge_rates))
    if is_judge_prompt(params.prompt):
        text = judge_text(params.prompt, knowledge, params.json_mode, seed, judge_rates)
        return _scripted_choices(params, text)
    if params.json_mode:
        return _scripted_choices(params, schema_answer(params.json_schema, params.prompt))
    out = []
    for i in range(params.n):
        rng = None
        if params.temperature > 0:
            rng = random.Random(unit(params.seed, i)) if params.seed is not None else random.Random()
        # one token past the limit tells a natural end (EOS) from a cut-off (finish_reason "length")
        toks = list(generate(variant, params.prompt, params.max_tokens + 1, params.temperature, rng, knowledge))
        out.append(ChoiceState(i, toks[: params.max_tokens], len(toks) <= params.max_tokens, params.stop))
    return out


def _scripted_choices(params: GenParams, text: str) -> list[ChoiceState]:
    toks = scripted(text)
    natural = len(toks) <= params.max_tokens
    return [ChoiceState(i, toks[: params.max_tokens], natural, params.stop) for i in range(params.n)]
