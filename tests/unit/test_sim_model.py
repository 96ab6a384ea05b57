"""Pure behaviour model: determinism, cascading divergence, knowledge, adapters, logprobs, judge, stop strings."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from llmplat_dagster.evaluation.assertions import evaluate
from llmplat_dagster.evaluation.promptsets import fold_system_message, load_promptset
from llmplat_dagster.evaluation.quality import topk_kl
from llmplat_dagster.sim.config import SimConfig
from llmplat_dagster.sim.generation import ChoiceState
from llmplat_dagster.sim.judge import agreement, is_judge_prompt, judge_score, judge_text, schema_answer
from llmplat_dagster.sim.knowledge import Knowledge, packaged_knowledge
from llmplat_dagster.sim.model import (
    SKILL,
    Variant,
    classify,
    corrupt,
    count_tokens,
    generate,
    knows,
    natural_length,
    reference_key,
    scripted,
)

REF = Variant("mistral-7b-instruct-v0.2", seed=0)
AWQ_NOISE = SimConfig(quantization="awq").effective_quant_noise
PROMPTS = [f"Question {i}: how do I tune Kubernetes pod autoscaling for service {i}?" for i in range(150)]
KNOWN = load_promptset("quant-sensitivity").prompts
KNOWLEDGE = packaged_knowledge()


def _asked(prompt) -> str:
    """What a server sees of a promptset prompt: the messages' contents, the system message folded in."""
    return "\n".join(m["content"] for m in fold_system_message([dict(m) for m in prompt.messages]))


def _tokens(variant: Variant, prompt: str, n: int = 500, knowledge: Knowledge | None = None):
    return list(generate(variant, prompt, n, knowledge=knowledge))


def _text(variant: Variant, prompt: str, n: int = 500, knowledge: Knowledge | None = None) -> str:
    return "".join(t.text for t in _tokens(variant, prompt, n, knowledge))


def _awq(seed: int = 0, noise: float = AWQ_NOISE) -> Variant:
    return Variant(REF.ref_key, seed, noise, "awq")


def _first_divergence(a, b) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x.text != y.text), None)


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


def test_filler_mentions_the_prompt_topic_and_looks_like_sentences():
    text = _text(REF, "Explain Kubernetes autoscaling for inference workloads")
    assert text[0].isupper()
    assert any(w in text.lower() for w in ("kubernetes", "autoscaling", "inference", "workloads"))


def test_generation_stops_at_natural_length_or_max_tokens():
    n = natural_length(REF, PROMPTS[0])
    assert len(_tokens(REF, PROMPTS[0], 10_000)) == n
    assert len(_tokens(REF, PROMPTS[0], 5)) == 5


def test_a_quantized_server_follows_the_reference_until_its_first_divergence_and_never_realigns():
    """Greedy decoding cascades: identical up to the first differing token, a different answer afterwards."""
    diverged, after_same, after_total = 0, 0, 0
    for p in PROMPTS:
        ref, awq = _tokens(REF, p), _tokens(_awq(), p)
        first = _first_divergence(ref, awq)
        if first is None:
            assert [t.text for t in ref] == [t.text for t in awq]
            continue
        diverged += 1
        assert [t.text for t in ref[:first]] == [t.text for t in awq[:first]]
        tail = list(zip(ref[first + 1 :], awq[first + 1 :], strict=False))
        after_same += sum(a.text == b.text for a, b in tail)
        after_total += len(tail)
    assert diverged > 0.6 * len(PROMPTS)  # filler answers of 24-183 tokens mostly diverge somewhere
    assert after_same / after_total < 0.1  # after the divergence the two answers are unrelated text


@pytest.mark.parametrize(("low", "high"), [(0.1, 0.3), (0.3, 1.0)])
def test_more_logit_noise_diverges_earlier(low, high):
    def mean_first(noise: float) -> float:
        positions = []
        for p in PROMPTS[:60]:
            ref, q = _tokens(REF, p), _tokens(_awq(noise=noise), p)
            first = _first_divergence(ref, q)
            positions.append(len(ref) if first is None else first)
        return statistics.mean(positions)

    assert mean_first(high) < mean_first(low) < statistics.mean(len(_tokens(REF, p)) for p in PROMPTS[:60])
    assert _text(_awq(noise=0.0), PROMPTS[0]) == _text(REF, PROMPTS[0])


def test_top1_logprob_is_the_emitted_token_and_candidates_match_until_the_divergence():
    kls = []
    for p in PROMPTS[:20]:
        ref, awq = _tokens(REF, p), _tokens(_awq(), p)
        first = _first_divergence(ref, awq)
        for tok in (*ref, *awq):
            assert tok.top[0] == (tok.text, tok.logprob)
            assert all(x >= y for (_, x), (_, y) in zip(tok.top, tok.top[1:], strict=False))
            assert math.fsum(math.exp(lp) for _, lp in tok.top) <= 1.0
        for a, b in zip(ref[: first if first is not None else len(ref)], awq, strict=False):
            assert {t for t, _ in a.top} == {t for t, _ in b.top}  # same candidates: only their mass moves
        kls.append(topk_kl([dict(t.top) for t in ref], [dict(t.top) for t in awq]))
    assert min(kls) >= 0 and statistics.mean(kls) > 0.002


def test_default_quantization_lands_in_the_published_awq_range():
    """sim/README.md "Calibration": per-token KL over top-k logprobs 0.005-0.025 (AWQ INT4 vs 16-bit, cyankiwi's
    2026 measurement) and 1-5 points of task accuracy lost (Qwen2-7B-Instruct AWQ vs BF16: -1.7 to -3.6), most of
    it on arithmetic, copying and strict formats rather than on prose."""
    kls, lost, by_tag = [], [], {"fragile": [], "prose": []}
    for seed in range(12):
        ref, awq = Variant(REF.ref_key, seed), _awq(seed)
        for p in KNOWN:
            text = _asked(p)
            a, b = _tokens(ref, text, p.max_tokens, KNOWLEDGE), _tokens(awq, text, p.max_tokens, KNOWLEDGE)
            kls.append(topk_kl([dict(t.top) for t in a], [dict(t.top) for t in b]))
            drop = (
                evaluate(p.assertions, "".join(t.text for t in a)).passed
                - evaluate(p.assertions, "".join(t.text for t in b)).passed
            )
            lost.append(drop)
            fragile = {"arithmetic", "copying", "json", "code"} & set(p.tags)
            by_tag["fragile" if fragile else "prose"].append(drop)
    assert 0.005 <= statistics.mean(kls) <= 0.025
    assert 0.01 <= statistics.mean(lost) <= 0.05
    assert statistics.mean(by_tag["fragile"]) > statistics.mean(by_tag["prose"])


def test_a_known_prompt_is_answered_right_at_the_skill_rate_and_wrong_answers_fail_their_checks():
    right = wrong_but_passing = wrong = 0
    for seed in range(10):
        v = Variant(REF.ref_key, seed)
        for p in KNOWN:
            text = _asked(p)
            passed = evaluate(p.assertions, _text(v, text, p.max_tokens, KNOWLEDGE)).passed
            if knows(v, text):
                assert passed, p.id  # a right answer is the reference: it passes its own checks
                right += 1
            else:
                wrong += 1
                wrong_but_passing += passed
    assert abs(right / (right + wrong) - SKILL) < 0.06
    assert wrong_but_passing / wrong < 0.2  # a corrupted answer rarely still passes


def test_a_right_answer_is_the_reference_with_an_explanation_where_the_checks_allow_one():
    strict, chatty = (next(p for p in KNOWN if p.id == pid) for pid in ("quant-arith-001", "quant-fact-002"))
    seed = next(s for s in range(20) if all(knows(Variant(REF.ref_key, s), _asked(p)) for p in (strict, chatty)))
    model = Variant(REF.ref_key, seed)
    assert _text(model, _asked(strict), strict.max_tokens, KNOWLEDGE) == strict.reference  # "the exact integer only"
    explained = _text(model, _asked(chatty), chatty.max_tokens, KNOWLEDGE)
    assert explained.startswith(chatty.reference + "\n\n") and len(explained) > len(chatty.reference) + 40
    assert _text(model, _asked(strict), strict.max_tokens) != strict.reference  # without knowledge: filler


def test_an_adapter_is_a_model_of_its_own_wording_and_knowledge():
    adapter = Variant(REF.ref_key, 0, adapter="chat-de", drift=0.3)
    differs = reworded = 0
    for p in KNOWN:
        text = _asked(p)
        if knows(adapter, text) != knows(REF, text):
            differs += 1
        if knows(adapter, text):
            out = _text(adapter, text, p.max_tokens, KNOWLEDGE)
            assert evaluate(p.assertions, out).passed, p.id  # its own words, the same content
            reworded += out != p.reference
    expected = 0.3 * 2 * SKILL * (1 - SKILL) * len(KNOWN)  # re-drawn and landing on the other outcome
    assert 0 < differs <= 3 * expected + 2
    assert reworded > 5
    filler = [_text(adapter, p) != _text(REF, p) for p in PROMPTS[:20]]
    assert all(filler)


def test_temperature_sampling_is_reproducible_with_a_seeded_rng():
    a = "".join(t.text for t in generate(REF, PROMPTS[0], 50, 1.0, random.Random(7)))
    b = "".join(t.text for t in generate(REF, PROMPTS[0], 50, 1.0, random.Random(7)))
    assert a == b != _text(REF, PROMPTS[0], 50)


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        (" 11541532", "digit"),
        (" $0.3034.", "digit"),
        (' {"pod":', "structure"),
        ("\n-", "structure"),
        (" name:", "structure"),
        (" llm-baseline", "identifier"),
        (" ReadWriteOnce", "identifier"),
        (" Übersetze", "identifier"),
        (" D", "identifier"),
        (" the", "prose"),
        (" zone.", "prose"),
    ],
)
def test_classify_marks_what_a_correct_answer_must_keep(token, kind):
    assert classify(token) == kind


def test_terms_and_verbatim_answers_make_words_critical():
    answers = {a.prompt_id: a for a in KNOWLEDGE.answers.values()}
    assert classify(" weights", answers["quant-format-001"]) == "verbatim"  # a strict format: every word counts
    assert classify(" nodes", answers["quant-arith-005"]) == "term"  # its regex looks for "nodes"
    assert classify(" please", answers["quant-lang-001"]) == "prose"
    assert classify(" nodes", answers["quant-lang-001"]) == "term"  # "spot node group" is checked


@pytest.mark.parametrize(
    ("token", "kind"),
    [(" 4817", "digit"), (' {"pod":', "structure"), (" vllm-awq-0", "identifier"), (" cache", "prose")],
)
def test_corrupt_always_changes_the_token_and_keeps_its_spacing(token, kind):
    for seed in range(50):
        bad = corrupt(token, kind, random.Random(seed))
        assert bad != token and bad.startswith(" ") and not bad.startswith("  ")


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
Reference answer: {ref}
Response: {r}"""


def test_judge_scores_against_the_expected_answer_in_any_wording():
    p = next(p for p in KNOWN if p.id == "quant-arith-004")
    adapter = Variant(REF.ref_key, 0, adapter="x", drift=0.0)
    reworded = _text(adapter, _asked(p), p.max_tokens, KNOWLEDGE) if knows(adapter, _asked(p)) else None
    wrong = p.reference.replace("1,550.37", "1,505.37").replace("221.482", "212.482")
    best, _ = judge_score(JUDGE.format(q=_asked(p), ref=p.reference, r=p.reference))
    mid, _ = judge_score(JUDGE.format(q=_asked(p), ref=p.reference, r=wrong))
    worst, _ = judge_score(JUDGE.format(q=_asked(p), ref=p.reference, r="I do not know."))
    assert best == 10 and worst < mid < best
    if reworded is not None:
        assert reworded != p.reference and judge_score(JUDGE.format(q=_asked(p), ref=p.reference, r=reworded))[0] == 10


def test_judge_without_a_reference_uses_the_answer_it_knows_never_a_model_output():
    p = KNOWN[0]
    prompt = f'Score 1-10 in JSON {{"score": n}}.\nQuestion: {_asked(p)}\nResponse: {p.reference}'
    assert judge_score(prompt, KNOWLEDGE)[0] == 10
    assert judge_score(prompt.replace(p.reference, "42"), KNOWLEDGE)[0] < 10
    assert agreement("The total is 5270 ms.", "5270 ms is the total.") == pytest.approx(1.0)


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
    text = judge_text(JUDGE.format(q="q", ref="r", r="r"), None, bare=False, seed=0, rates=rates)
    assert check(text), text


def test_judge_in_json_mode_is_bare_json_unless_malformed():
    prompt = JUDGE.format(q="q", ref="r", r="r")
    assert json.loads(judge_text(prompt, None, bare=True, seed=0, rates={"fence": 1.0, "prose": 1.0}))
    with pytest.raises(json.JSONDecodeError):
        json.loads(judge_text(prompt, None, bare=True, seed=0, rates={"malformed": 1.0}))


def test_schema_answer_fills_properties_by_type():
    schema = {"properties": {"score": {"type": "integer"}, "ok": {"type": "boolean"}, "why": {"type": "string"}}}
    out = json.loads(schema_answer(schema, "p"))
    assert isinstance(out["score"], int) and isinstance(out["ok"], bool) and isinstance(out["why"], str)
