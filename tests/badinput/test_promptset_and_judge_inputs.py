"""Bad promptset lines through `llmplat promptsets validate` (exit 1, each named file:line) and judge outputs that
used to be misread silently: each is now a parse failure with its reason, or the right score."""

# ruff: noqa: E501 - the case tables keep one case per line

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplat_dagster.evaluation.judge import parse_judge, parse_pairwise

GOOD = {"id": "p1", "messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 16}


def line(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


# (case, the bad line, fragment of the error)
LINES = [
    ("not-json", "{not json", "not valid JSON"),
    ("json-list", "[1, 2]", "not"),
    ("missing-id", line(id=...), "missing 'id'"),
    ("id-trailing-newline", line(id="p1\n"), "'id' must be a string of letters"),
    ("id-with-space", line(id="p 1"), "'id' must be a string of letters"),
    ("id-number", line(id=7), "got 7"),
    ("missing-messages", line(messages=...), "messages"),
    ("empty-messages", line(messages=[]), "messages"),
    ("unknown-role", line(messages=[{"role": "robot", "content": "hi"}]), "unknown role 'robot'"),
    ("content-not-text", line(messages=[{"role": "user", "content": 5}]), "empty or non-text 'content'"),
    ("content-blank", line(messages=[{"role": "user", "content": "   "}]), "empty or non-text 'content'"),
    (
        "ends-with-assistant",
        line(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
        "the last message must be from 'user'",
    ),
    (
        "system-in-the-middle",
        line(messages=[{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]),
        "'system' message may only come first",
    ),
    ("message-extra-field", line(messages=[{"role": "user", "content": "a", "name": "x"}]), "unknown field(s) 'name'"),
    ("missing-max-tokens", line(max_tokens=...), "missing 'max_tokens'"),
    ("max-tokens-zero", line(max_tokens=0), "'max_tokens' must be a positive integer"),
    ("max-tokens-text", line(max_tokens="16"), "'max_tokens' must be a positive integer"),
    ("max-tokens-bool", line(max_tokens=True), "'max_tokens' must be a positive integer"),
    ("temperature-negative", line(temperature=-1), "'temperature' must be a number"),
    ("temperature-text", line(temperature="hot"), "'temperature' must be a number"),
    ("unknown-field", line(prompt="x"), "unknown field(s) 'prompt'"),
    ("tags-not-list", line(tags="math"), "'tags' must be a list"),
]


@pytest.mark.parametrize(("case", "bad", "fragment"), LINES, ids=[c[0] for c in LINES])
def test_a_bad_promptset_line_exits_1_naming_file_and_line(llmplat, tmp_path: Path, case, bad, fragment):
    path = tmp_path / "prompts.jsonl"
    path.write_text(line(id="p0") + "\n" + bad + "\n" + line(id="p2") + "\n")
    result = llmplat("promptsets", "validate", str(path))
    assert result.code == 1, result.text
    assert f"{path}:2:" in result.err and fragment in result.err, result.err


def test_a_prompt_too_long_for_the_variant_is_named(llmplat, tmp_path: Path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(line(max_tokens=1000, messages=[{"role": "user", "content": "word " * 400}]) + "\n")
    result = llmplat("promptsets", "validate", str(path), "--variant", "mistral-7b-fp16")
    assert (
        result.code == 1 and f"{path}:1:" in result.err and "exceed max_model_len 1024 of mistral-7b-fp16" in result.err
    )


def test_lenient_mode_with_no_valid_line_is_an_error_not_an_index_error(llmplat, tmp_path: Path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(line(id="a b") + "\n" + "{oops\n")
    result = llmplat("promptsets", "validate", str(path), "--lenient")
    assert result.code == 1 and "contains no prompts (all 2 line(s) were bad" in result.err, result.text


def test_lenient_mode_names_the_lines_it_skipped(llmplat, tmp_path: Path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(line(id="a") + "\n" + line(id="b\n") + "\n")
    result = llmplat("promptsets", "validate", str(path), "--lenient")
    assert result.code == 1 and "1 prompt(s) ok" in result.out and f"skipped: {path}:2:" in result.out


@pytest.mark.parametrize(
    ("case", "content", "fragment"),
    [("empty-file", b"", "contains no prompts"), ("not-utf8", '{"id": "é"}'.encode("latin-1"), "is not UTF-8 text")],
)
def test_an_unusable_promptset_file_is_an_error(llmplat, tmp_path: Path, case, content, fragment):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(content)
    result = llmplat("promptsets", "validate", str(path))
    assert result.code in (1, 2) and fragment in result.err and str(path) in result.err


# (case, judge output, the score it means or None for a parse failure, fragment of the failure's reason)
JUDGE = [
    ("percent", "Score: 85%", None, "is a percentage"),
    ("percent-in-json", '{"score": "85%", "reasoning": "good"}', None, "is a percentage"),
    ("percent-spaced", "My rating is 70 %", None, "is a percentage"),
    ("far-above-scale", "Score: 85", None, "far outside the 0-10 scale"),
    ("far-above-scale-json", '{"score": 85}', None, "far outside the 0-10 scale"),
    ("far-below-scale", '{"score": -40}', None, "far outside"),
    (
        "echoed-format-json",
        '{"score": <0-10>, "reasoning": "<one or two sentences>"}',
        None,
        "echoes the answer format",
    ),
    ("echoed-format-prose", "Reply with score: <0-10>", None, "echoes the answer format"),
    ("echoed-range", "Score: 0-10", None, "echoes the answer format"),
    ("echoed-range-words", "Score: 0 to 10", None, "echoes the answer format"),
    ("echoed-then-real", 'Format: {"score": <0-10>}\nScore: 6', 6.0, None),
    ("out-of-5-in-parens", "Score: 4 (out of 5)", 8.0, None),
    ("out-of-5-in-parens-json", '{"score": "4 (out of 5)"}', 8.0, None),
    ("out-of-5-plain", "Rating: 4 out of 5", 8.0, None),
    ("out-of-100", "Score: 72/100", 7.2, None),
    ("fraction-of-ten", "Score: 7/10", 7.0, None),
    ("zero-denominator", '{"score": "3/0"}', None, "zero denominator"),
    ("slightly-over", '{"score": 10.5}', 10.0, None),
    ("text-score", '{"score": "seven"}', None, "is not a number"),
    ("bool-score", '{"score": false}', None, "not a number"),
]


@pytest.mark.parametrize(("case", "text", "score", "fragment"), JUDGE, ids=[c[0] for c in JUDGE])
def test_judge_outputs_are_read_right_or_counted_as_failures(case, text, score, fragment):
    result = parse_judge(text)
    assert result.score == (pytest.approx(score) if score is not None else None), result
    if score is None:
        assert fragment in result.error
    else:
        assert result.error is None


PAIRWISE = [
    ("echoed-json", '{"winner": "A" | "B" | "tie", "reasoning": "<one sentence>"}'),
    ("echoed-prose", "Answer with winner: A | B | tie"),
    ("both-brackets", 'Output "[[A]]" if A is better, "[[B]]" if B is better'),
    ("three-brackets", "[[A]] [[B]] [[C]]"),
]


@pytest.mark.parametrize(("case", "text"), PAIRWISE, ids=[c[0] for c in PAIRWISE])
def test_an_echoed_pairwise_format_is_a_failure_not_a_win_for_a(case, text):
    verdict = parse_pairwise(text)
    assert verdict.winner is None and "several verdicts" in verdict.error
