"""Promptfoo-style assertions: every type, negation, spec validation, and the packaged expectations themselves."""

from __future__ import annotations

import pytest

from llmplat_dagster.evaluation.assertions import Assertion, check, evaluate, json_values, numbers_in, parse_assertions
from llmplat_dagster.evaluation.promptsets import load_promptset, parse_promptset

SCHEMA = {"type": "object", "required": ["pod", "nodes"], "properties": {"nodes": {"const": 5}}}


@pytest.mark.parametrize(
    ("spec", "output", "passed"),
    [
        ({"type": "equals", "value": "11541532"}, "  11541532\n", True),
        ({"type": "equals", "value": "11541532"}, "The answer is 11541532", False),
        ({"type": "contains", "value": "Pending"}, "stays Pending", True),
        ({"type": "contains", "value": "Pending"}, "stays pending", False),
        ({"type": "icontains", "value": "Pending"}, "stays PENDING", True),
        ({"type": "not-contains", "value": "```"}, "plain", True),
        ({"type": "not-contains", "value": "```"}, "```yaml\na: 1\n```", False),
        ({"type": "contains-all", "value": ["kubectl", "jq"]}, "kubectl get pods | jq .", True),
        ({"type": "contains-all", "value": ["kubectl", "jq"]}, "kubectl get pods", False),
        ({"type": "contains-any", "value": ["yes", "no"]}, "no", True),
        ({"type": "icontains-all", "value": ["ZONE", "alert"]}, "Zone and Alert", True),
        ({"type": "icontains-any", "value": ["x", "y"]}, "none", False),
        ({"type": "starts-with", "value": "name,ready"}, "\nname,ready,restarts", True),
        ({"type": "starts-with", "value": "name,ready"}, "Here: name,ready", False),
        ({"type": "regex", "value": r"(?i)^yes\.?$"}, "Yes.", True),
        ({"type": "regex", "value": r"(?i)^yes\.?$"}, "Yes, it can.", False),
        ({"type": "not-regex", "value": r"except\s*:"}, "except ValueError:", True),
        ({"type": "is-json"}, '{"a": 1}', True),
        ({"type": "is-json"}, 'Here you go: {"a": 1}', False),
        ({"type": "is-json", "value": SCHEMA}, '{"pod": "p", "nodes": 5}', True),
        ({"type": "is-json", "value": SCHEMA}, '{"pod": "p", "nodes": 4}', False),
        ({"type": "is-json", "value": SCHEMA}, '{"nodes": 5}', False),
        ({"type": "contains-json", "value": SCHEMA}, 'Sure! ```json\n{"pod": "p", "nodes": 5}\n```', True),
        ({"type": "contains-json", "value": SCHEMA}, 'a {"x": 1} then {"pod": "q", "nodes": 5}', True),
        ({"type": "contains-json"}, "no json here {", False),
        ({"type": "not-is-json"}, "prose", True),
        ({"type": "number", "value": 1550.37, "tolerance": 0.005}, "The saving is $1,550.37 a month.", True),
        ({"type": "number", "value": 1550.37, "tolerance": 0.005}, "The saving is $1,550.40 a month.", False),
        ({"type": "number", "value": 5270}, "total 5270 ms", True),
        ({"type": "number", "value": 8}, "runs on k8s", False),  # digits inside a word are not a number
        ({"type": "number", "value": -3}, "delta -3 points", True),
        ({"type": "not-number", "value": 7}, "replicas: 8", True),
    ],
)
def test_assertion_types(spec, output, passed):
    assertions, problems = parse_assertions([spec])
    assert problems == []
    assert (check(assertions[0], output) is None) is passed


def test_a_failure_names_the_assertion_and_says_why():
    a = Assertion("regex", r"\b10 nodes\b")
    assert check(a, "9 nodes") == 'regex "\\\\b10 nodes\\\\b": no match'
    assert check(Assertion("not-contains", "v0.9.1"), "image v0.9.1") == 'not-contains "v0.9.1": it holds but must not'
    assert "at nodes: 5 was expected" in check(Assertion("is-json", SCHEMA), '{"pod": "p", "nodes": 4}')


def test_evaluate_passes_only_when_every_assertion_passes():
    assertions, _ = parse_assertions([{"type": "number", "value": 402}, {"type": "icontains", "value": "median"}])
    assert evaluate(assertions, "The median is 402 ms.").passed
    outcome = evaluate(assertions, "The mean is 402 ms.")
    assert not outcome.passed and outcome.failures == ['icontains "median": not found']
    assert evaluate([], "anything").passed


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"type": "equals"}, "'assert' must be a list"),
        ([{"type": "matches", "value": "x"}], "assertion 1: unknown type 'matches'"),
        ([{"type": "regex", "value": "("}], "does not compile"),
        ([{"type": "equals", "value": ""}], "'value' must be a non-empty string"),
        ([{"type": "contains-all", "value": "x"}], "must be a non-empty list"),
        ([{"type": "is-json", "value": {"type": "objekt"}}], "not a valid JSON Schema"),
        ([{"type": "is-json", "value": "schema"}], "must be a JSON Schema object"),
        ([{"type": "number", "value": "5"}], "'value' must be a finite number"),
        ([{"type": "number", "value": 5, "tolerance": -1}], "'tolerance' must be a finite number >= 0"),
        ([{"type": "contains", "value": "x", "tolerance": 1}], "'tolerance' only applies to number"),
        ([{"type": "contains", "value": "x", "weight": 2}], "unknown field(s) 'weight'"),
        (["contains"], "must be an object"),
    ],
)
def test_bad_specs_are_reported_with_their_position(raw, problem):
    assertions, problems = parse_assertions(raw)
    assert assertions == [] and any(problem in p for p in problems), problems


def test_numbers_and_json_values_are_found_in_text():
    assert numbers_in("$1,550.37 and 4 h 22.8 min, k8s, -2") == [1550.37, 4.0, 22.8, -2.0]
    assert list(json_values('x [1, 2] y {"a": {"b": 1}} {bad')) == [[1, 2], {"a": {"b": 1}}]


def test_a_promptset_line_whose_reference_fails_its_own_assertions_is_reported_with_its_line():
    good = '{"id": "a", "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 8, "reference": "4", "assert": [{"type": "equals", "value": "4"}]}'  # noqa: E501
    bad = '{"id": "b", "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 8, "reference": "5", "assert": [{"type": "equals", "value": "4"}]}'  # noqa: E501
    long = '{"id": "c", "messages": [{"role": "user", "content": "say"}], "max_tokens": 2, "reference": "one two three four five six"}'  # noqa: E501
    broken = '{"id": "d", "messages": [{"role": "user", "content": "x"}], "max_tokens": 8, "assert": [{"type": "regex", "value": "["}]}'  # noqa: E501
    prompts, issues = parse_promptset("\n".join([good, bad, long, broken]), "p.jsonl")
    assert [p.id for p in prompts] == ["a"] and prompts[0].checkable and prompts[0].reference == "4"
    messages = [str(i) for i in issues]
    assert messages[0].startswith("p.jsonl:2: prompt 'b': the reference answer fails its own assertion(s): equals")
    assert messages[1] == "p.jsonl:3: prompt 'c': the reference answer needs ~6 tokens, more than max_tokens 2"
    assert messages[2].startswith("p.jsonl:4: prompt 'd': assertion 1: regex '[' does not compile")


def test_every_quant_sensitivity_prompt_is_checkable_and_its_reference_passes():
    promptset = load_promptset("quant-sensitivity", variant="mistral-7b-fp16")
    assert len(promptset.prompts) == 42 and not promptset.issues
    for p in promptset.prompts:
        assert p.checkable and p.reference and evaluate(p.assertions, p.reference).passed, p.id


@pytest.mark.parametrize(
    ("prompt_id", "wrong"),
    [
        ("quant-arith-001", "11541632"),
        ("quant-arith-001", "The product is 11541532."),  # right number, not the format asked for
        ("quant-arith-004", "The monthly saving is $1,550.73."),
        ("quant-copy-002", "63a8b081895390a26e140280378bc85ec8bce07a\nsha256:9f2c1e7b"),
        ("quant-json-001", '```json\n{"pod": "mistral-7b-fp16-7c9f8d6b5-q8rvm"}\n```'),
        ("quant-format-003", "Yes, because a toleration does not require a taint."),
        ("quant-code-006", "[5, 6, 9] 117 [3, 4, 2]"),
        ("quant-long-001", "40 / 6.5 = 6.15, so 7 replicas."),
    ],
)
def test_a_plausible_wrong_answer_fails(prompt_id, wrong):
    prompt = next(p for p in load_promptset("quant-sensitivity").prompts if p.id == prompt_id)
    assert not evaluate(prompt.assertions, wrong).passed
