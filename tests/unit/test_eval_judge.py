"""Judge prompts and parsers: realistic model output, never a crash, failures counted."""

from __future__ import annotations

import json
import math
import random

import jsonschema
import pytest

from llmplat_dagster.evaluation.judge import (
    JUDGE_SCHEMA,
    PAIRWISE_SCHEMA,
    SAME_FAMILY_NOTE,
    JudgeScore,
    PairwiseVerdict,
    judge_prompt,
    pairwise_outcomes,
    pairwise_prompt,
    parse_failure_rate,
    parse_judge,
    parse_pairwise,
    position_bias,
    response_format,
)
from llmplat_dagster.sim.judge import is_judge_prompt

# (raw judge output, expected score or None, clamped)
REALISTIC = [
    ('{"score": 7, "reasoning": "Correct and concise."}', 7.0, False),
    ('{"score": 8.5, "reasoning": "Good."}', 8.5, False),
    ('```json\n{"score": 6, "reasoning": "Partly correct."}\n```', 6.0, False),
    ('```\n{"score": 4, "reasoning": "Vague."}\n```', 4.0, False),
    (
        'Here is my evaluation of the response.\n\n{"score": 9, "reasoning": "Excellent."}\n\nI hope this helps.',
        9.0,
        False,
    ),
    (
        'Here is my evaluation.\n\n```json\n{"score": 3, "reasoning": "Wrong formula."}\n```\n\nLet me know!',
        3.0,
        False,
    ),
    ("{'score': 5, 'reasoning': 'Average answer.'}", 5.0, False),
    ("{'score': 6, 'reasoning': 'It's mostly right.'}", 6.0, False),  # apostrophe breaks the literal: text fallback
    ('{"score": 7, "reasoning": "Fine",}', 7.0, False),
    ('{\n  "score": 8,\n  "reasoning": "Clear steps.",\n}\n', 8.0, False),
    ('{"score": "7", "reasoning": "ok"}', 7.0, False),
    ('{"score": "7/10", "reasoning": "ok"}', 7.0, False),
    ('{"score": "8.5"}', 8.5, False),
    ('{"score": "3 out of 5"}', 6.0, False),  # another scale is rescaled to 0-10
    ("Score: 7/10 - The response agrees with the reference on most points.", 7.0, False),
    ("I would rate this response 6/10 overall.", 6.0, False),
    ("The score is 8 because the answer is right.", 8.0, False),
    ('{"Score": 9, "Reasoning": "Great."}', 9.0, False),
    ('{"evaluation": {"score": 4, "reasoning": "meh"}}', 4.0, False),
    ('{"score": 12, "reasoning": "Outstanding!"}', 10.0, True),
    ('{"score": -2, "reasoning": "Harmful."}', 0.0, True),
    ('{"score": "15/10"}', 10.0, True),
    ('{"score": 7, "reasoning": "uses {braces} and \\"quotes\\" inside"}', 7.0, False),
    ('{"reasoning": "I cannot evaluate this."}', None, False),
    ('{"score": null, "reasoning": "n/a"}', None, False),
    ('{"score": true}', None, False),
    ('{"score": "seven"}', None, False),
    ('{"score": NaN}', None, False),
    ('{"score": 1e999}', None, False),
    ('{"score": 7, "reas', None, False),  # cut off mid-JSON, no closing brace: nothing to read
    ("The response is good but could be more detailed.", None, False),
    ("", None, False),
    ("{{{{{{{{", None, False),
    ("}}}}{{{{", None, False),
]


@pytest.mark.parametrize(("text", "score", "clamped"), REALISTIC)
def test_parse_judge_realistic(text, score, clamped):
    result = parse_judge(text)
    assert result.score == score
    assert result.clamped is clamped
    assert (result.error is None) is (score is not None)
    assert result.raw == text


def test_reasoning_is_kept_when_present():
    assert parse_judge('{"score": 7, "reasoning": "Correct."}').reasoning == "Correct."


@pytest.mark.parametrize("value", [None, 7, b'{"score": 7}', ["score", 7], {"score": 7}])
def test_non_text_is_a_failure_not_a_crash(value):
    result = parse_judge(value)
    assert result.score is None and "not text" in result.error


def test_other_scales():
    assert parse_judge('{"score": 4}', low=1, high=5).score == 4.0
    assert parse_judge('{"score": 9}', low=1, high=5) == JudgeScore(5.0, True, None, '{"score": 9}')
    assert parse_judge("Rating: 80/100", low=0, high=100).score == 80.0


def test_fuzz_never_raises():
    rng = random.Random(11)
    alphabet = "{}[]\"':,.0123456789-/ score reasoning winner A B tie\n`json NaNtruefalsenull\\"
    pieces = ['{"score": ', "}", "```json", "'score'", "/10", ",}", "{", '"', "\\"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.5:
            text = "".join(rng.choice(pieces) + text[i : i + 5] for i in range(0, len(text), 5))
        result = parse_judge(text)
        assert isinstance(result, JudgeScore)
        assert result.score is None or 0.0 <= result.score <= 10.0
        assert (result.score is None) is (result.error is not None)
        assert isinstance(parse_pairwise(text), PairwiseVerdict)


def test_huge_output_is_bounded():
    result = parse_judge("{" * 200_000 + '"score": 5}')
    assert isinstance(result, JudgeScore)


def test_parse_failure_rate():
    scores = [parse_judge(t) for t in ['{"score": 7}', "garbage", '{"score": 12}', "nope"]]
    assert parse_failure_rate(scores) == 0.5  # a clamped score is usable, not a failure
    assert math.isnan(parse_failure_rate([]))


def test_judge_prompt_and_schema():
    messages = judge_prompt("What is 2+2?", "4", rubric="correctness")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "correctness" in messages[0]["content"] and '"score"' in messages[0]["content"]
    assert "0 to 10" in messages[0]["content"]
    assert messages[1]["content"] == "Question:\nWhat is 2+2?\n\nResponse:\n4"
    assert is_judge_prompt("\n".join(m["content"] for m in messages))  # the simulator recognises it
    jsonschema.validate({"score": 7.5, "reasoning": "ok"}, JUDGE_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"score": 11, "reasoning": "ok"}, JUDGE_SCHEMA)
    assert response_format(JUDGE_SCHEMA)["json_schema"]["schema"] is JUDGE_SCHEMA
    assert "Mistral" in SAME_FAMILY_NOTE and "family" in SAME_FAMILY_NOTE


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ('{"winner": "A", "reasoning": "more precise"}', "A"),
        ('```json\n{"winner": "B"}\n```', "B"),
        ("{'winner': 'tie'}", "tie"),
        ('{"winner": "Answer B"}', "B"),
        ('{"winner": "a"}', "A"),
        ('{"winner": "draw"}', "tie"),
        ('After comparing, "winner": "A" seems right.', "A"),
        ("Winner: B", "B"),
        ("My verdict: [[A]]", "A"),
        ("[[C]]", "tie"),
        ('{"winner": "C"}', None),
        ('{"winner": "both are bad"}', None),
        ("I cannot decide.", None),
        (None, None),
    ],
)
def test_parse_pairwise(text, winner):
    verdict = parse_pairwise(text)
    assert verdict.winner == winner
    assert (verdict.error is None) is (winner is not None)


def test_pairwise_prompt():
    messages = pairwise_prompt("Q?", "first answer", "second answer")
    assert (
        "[Answer A]\nfirst answer" in messages[1]["content"] and "[Answer B]\nsecond answer" in messages[1]["content"]
    )
    assert '"winner"' in messages[0]["content"]
    jsonschema.validate({"winner": "tie"}, PAIRWISE_SCHEMA)


@pytest.mark.parametrize(
    ("first", "swapped", "bias", "outcomes"),
    [
        (["A", "B", "tie"], ["B", "A", "tie"], 0.0, (1, 1, 1, 0)),  # consistent judge
        (["A", "A", "A", "A"], ["A", "A", "A", "A"], 1.0, (0, 0, 4, 0)),  # always picks the first slot
        (["A", "B", "A", "tie"], ["A", "A", "B", "A"], 0.25, (1, 1, 2, 0)),
        (["A", None, "B"], ["A", "B", None], 1.0, (0, 0, 1, 2)),  # unparsed prompts are left out
        ([None], [None], math.nan, (0, 0, 0, 1)),
    ],
)
def test_position_bias_and_outcomes(first, swapped, bias, outcomes):
    got = position_bias(first, swapped)
    assert (math.isnan(bias) and math.isnan(got)) or got == bias
    assert pairwise_outcomes(first, swapped) == outcomes
    verdicts = [PairwiseVerdict(w) for w in first]
    assert pairwise_outcomes(verdicts, swapped) == outcomes


def test_schema_is_json_serialisable():
    assert json.loads(json.dumps(JUDGE_SCHEMA))["required"] == ["score", "reasoning"]
