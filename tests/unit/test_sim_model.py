"""Pure behaviour model: determinism, divergence rate, logprob consistency, judge, stop strings."""

from __future__ import annotations

import json
import math

import pytest

from llmplat_dagster.sim.generation import ChoiceState
from llmplat_dagster.sim.judge import is_judge_prompt, judge_score, judge_text, schema_answer
from llmplat_dagster.sim.model import Variant, count_tokens, generate, natural_length, reference_key, scripted

REF = Variant("mistral-7b-instruct-v0.2", seed=0)
PROMPTS = [f"Question {i}: how do I tune Kubernetes pod autoscaling for service {i}?" for i in range(150)]


def _text(variant: Variant, prompt: str, n: int = 500) -> str:
    return "".join(t.text for t in generate(variant, prompt, n))


@pytest.mark.parametrize(
    "model",
    [
        "mistralai/Mistral-7B-Instruct-v0.2",
        "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
        "TheBloke/Mistral-7B-Instruct-v0.2-GPTQ",
        "/models/mistral-7b-instruct-v0.2/",
    ],
)
def test_reference_key_is_shared_by_every_packaging_of_the_base_model(model):
    assert reference_key(model) == "mistral-7b-instruct-v0.2"


def test_same_prompt_and_seed_give_the_same_text_and_seed_changes_it():
    assert _text(REF, PROMPTS[0]) == _text(REF, PROMPTS[0])
    assert _text(REF, PROMPTS[0]) != _text(Variant(REF.ref_key, seed=1), PROMPTS[0])
    assert _text(REF, PROMPTS[0]) != _text(REF, PROMPTS[1])


def test_text_mentions_the_prompt_topic_and_looks_like_sentences():
    text = _text(REF, "Explain Kubernetes autoscaling for inference workloads")
    assert text[0].isupper()
    assert any(w in text.lower() for w in ("kubernetes", "autoscaling", "inference", "workloads"))


def test_generation_stops_at_natural_length_or_max_tokens():
    n = natural_length(REF, PROMPTS[0])
    assert len(list(generate(REF, PROMPTS[0], 10_000))) == n
    assert len(list(generate(REF, PROMPTS[0], 5))) == 5


@pytest.mark.parametrize("rate", [0.03, 0.1, 0.3])
def test_quantized_variant_diverges_per_token_at_the_configured_rate(rate):
    noisy = Variant(REF.ref_key, 0, noise=rate, noise_key="awq")
    same = total = 0
    for p in PROMPTS:
        for a, b in zip(generate(REF, p, 500), generate(noisy, p, 500), strict=True):
            total += 1
            same += a.text == b.text
    observed = 1 - same / total
    assert total > 5000
    assert abs(observed - rate) < 0.25 * rate + 0.005


def test_top1_logprob_is_the_emitted_token_and_kl_is_computable_on_aligned_positions():
    noisy = Variant(REF.ref_key, 0, noise=0.1, noise_key="awq")
    kl = []
    for p in PROMPTS[:20]:
        for a, b in zip(generate(REF, p, 500), generate(noisy, p, 500), strict=True):
            for tok in (a, b):
                assert tok.top[0] == (tok.text, tok.logprob)
                assert all(x >= y for (_, x), (_, y) in zip(tok.top, tok.top[1:], strict=False))
                assert math.fsum(math.exp(lp) for _, lp in tok.top) <= 1.0
            pa, pb = dict(a.top), dict(b.top)
            assert set(pa) == set(pb)  # same candidates: only their order / mass moves
            za = math.log(math.fsum(math.exp(v) for v in pa.values()))
            zb = math.log(math.fsum(math.exp(v) for v in pb.values()))
            kl.append(math.fsum(math.exp(pa[t] - za) * ((pa[t] - za) - (pb[t] - zb)) for t in pa))
    assert min(kl) >= -1e-9 and max(kl) > 0.01


def test_temperature_sampling_is_reproducible_with_a_seeded_rng():
    import random

    a = "".join(t.text for t in generate(REF, PROMPTS[0], 50, 1.0, random.Random(7)))
    b = "".join(t.text for t in generate(REF, PROMPTS[0], 50, 1.0, random.Random(7)))
    assert a == b != _text(REF, PROMPTS[0], 50)


def test_scripted_tokens_join_back_to_the_text_and_count_tokens_counts_words_and_marks():
    text = '{"score": 7, "reasoning": "fine"}'
    assert "".join(t.text for t in scripted(text)) == text
    assert count_tokens("Hello, world!") == 4


@pytest.mark.parametrize(
    ("stop", "expected_text", "reason"),
    [([], " a b c d", "length"), ([" c"], " a b", "stop"), (["b c"], " a ", "stop")],
)
def test_stop_strings_truncate_and_finish_with_stop(stop, expected_text, reason):
    ch = ChoiceState(0, scripted(" a b c d"), natural_stop=False, stop=stop)
    for i in range(4):
        ch.step(i)
    assert (ch.text, ch.finish) == (expected_text, reason)


JUDGE = """Rate the response on a scale of 1-10. Reply in JSON: {{"score": <int>, "reasoning": <str>}}
Question: {q}
Response: {r}"""


def test_judge_scores_the_reference_answer_higher_than_a_noisy_one_and_an_unrelated_one():
    q = PROMPTS[3]
    reference = _text(REF, q)
    noisy = _text(Variant(REF.ref_key, 0, noise=0.3, noise_key="awq"), q)
    best, _ = judge_score(JUDGE.format(q=q, r=reference), REF)
    mid, _ = judge_score(JUDGE.format(q=q, r=noisy), REF)
    worst, _ = judge_score(JUDGE.format(q=q, r="I do not know."), REF)
    assert best == 10 and worst < mid < best


def test_judge_prompt_detection():
    assert is_judge_prompt(JUDGE)
    assert not is_judge_prompt("What is the capital of France?")


@pytest.mark.parametrize(
    ("rates", "check"),
    [
        ({}, lambda t: json.loads(t)["score"] >= 1),
        ({"fence": 1.0}, lambda t: t.startswith("```json\n") and t.endswith("\n```")),
        ({"prose": 1.0}, lambda t: t.startswith("Here is my evaluation") and '"score"' in t),
        ({"malformed": 1.0}, lambda t: t.startswith("Score:") and "{" not in t),
    ],
)
def test_judge_wrapping_follows_the_rates(rates, check):
    text = judge_text(JUDGE.format(q="q", r="r"), REF, bare=False, seed=0, rates=rates)
    assert check(text), text


def test_judge_in_json_mode_is_bare_json_unless_malformed():
    prompt = JUDGE.format(q="q", r="r")
    assert json.loads(judge_text(prompt, REF, bare=True, seed=0, rates={"fence": 1.0, "prose": 1.0}))
    with pytest.raises(json.JSONDecodeError):
        json.loads(judge_text(prompt, REF, bare=True, seed=0, rates={"malformed": 1.0}))


def test_schema_answer_fills_properties_by_type():
    schema = {"properties": {"score": {"type": "integer"}, "ok": {"type": "boolean"}, "why": {"type": "string"}}}
    out = json.loads(schema_answer(schema, "p"))
    assert isinstance(out["score"], int) and isinstance(out["ok"], bool) and isinstance(out["why"], str)
