"""Promptsets: the packaged ones load and fit the FP16 reference; a bad file names every bad line once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.evaluation.promptsets import (
    LoadedPromptset,
    Prompt,
    PromptsetError,
    PromptsetIssue,
    estimate_prompt_tokens,
    estimate_tokens,
    fold_system_message,
    load_promptset,
    packaged_promptsets,
    parse_promptset,
)
from llmplat_dagster.sim.protocol import ApiError, parse_params

PACKAGED = ["canary", "performance", "quant-sensitivity"]
CATEGORIES = {"kubernetes", "code", "reasoning", "extraction", "summarisation", "factual", "multilingual"}
FP16 = "mistral-7b-fp16"
LONG_AT = 200  # estimated prompt tokens from which the packaged sets tag a prompt "long"


def _line(pid: str = "p-001", **overrides) -> str:
    record = {
        "id": pid,
        "messages": [{"role": "user", "content": "How do I drain a node?"}],
        "max_tokens": 64,
        "temperature": 0.0,
        "tags": ["kubernetes"],
    }
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not _DROP})


_DROP = object()


def _write(tmp_path: Path, *lines: str, name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the packaged promptsets ---------------------------------------------------------------------------------


def test_packaged_promptsets_are_listed():
    assert packaged_promptsets() == PACKAGED


@pytest.fixture(scope="module", params=PACKAGED)
def packaged(request) -> LoadedPromptset:
    return load_promptset(request.param, variant=FP16)


def test_packaged_promptset_loads_strictly_within_the_fp16_context(packaged: LoadedPromptset):
    """Every set fits max_model_len 1024 so it can run against every variant, the FP16 reference included."""
    assert packaged.issues == []
    assert len(packaged.prompts) >= 30
    assert len(set(packaged.ids)) == len(packaged.ids)
    assert packaged.source == f"{packaged.name}.jsonl"
    assert packaged.version == f"sha256:{packaged.sha256[:16]}"
    for p in packaged.prompts:
        assert p.prompt_tokens + p.max_tokens <= 1024, p.id


def test_packaged_promptset_covers_the_categories_and_lengths(packaged: LoadedPromptset):
    tags = {t for p in packaged.prompts for t in p.tags}
    assert {"kubernetes", "code", "reasoning", "extraction", "factual", "long", "short"} <= tags
    for p in packaged.prompts:
        assert CATEGORIES & set(p.tags), f"{p.id} has no category tag"
        length = "long" if p.prompt_tokens >= LONG_AT else "short"
        assert length in p.tags and ({"long", "short"} - {length}).isdisjoint(p.tags), p.id


def test_packaged_prompts_are_accepted_by_the_simulator_at_1024_tokens(packaged: LoadedPromptset):
    """The estimate is conservative: the simulator's own count (and its 400 on overflow) never trips first."""
    for p in packaged.prompts:
        body = {"messages": p.messages, "max_tokens": p.max_tokens}
        try:
            parse_params(body, "chat", "sim-model", 1024)
        except ApiError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{p.id}: {exc.message}")


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("canary", 32, 128), ("quant-sensitivity", 64, 384), ("performance", 64, 512)],
)
def test_packaged_max_tokens_ranges(name, low, high):
    prompts = load_promptset(name).prompts
    assert all(low <= p.max_tokens <= high for p in prompts)
    if name != "performance":
        assert all(p.temperature == 0.0 for p in prompts), "evaluation sets are greedy"


def test_quant_sensitivity_stresses_what_quantization_breaks():
    tags = {t for p in load_promptset("quant-sensitivity").prompts for t in p.tags}
    assert {"arithmetic", "copying", "json", "formatting", "code", "multilingual", "rare-fact"} <= tags


def test_performance_mixes_short_and_long_prompts_and_outputs():
    prompts = load_promptset("performance").prompts
    long_prompts = [p for p in prompts if "long" in p.tags]
    assert len(long_prompts) >= 10 and len(prompts) - len(long_prompts) >= 10
    assert min(p.max_tokens for p in prompts) <= 64 and max(p.max_tokens for p in prompts) == 512


def test_a_few_prompts_carry_a_system_message_and_fold_for_templates_without_one():
    with_system = [p for name in PACKAGED for p in load_promptset(name).prompts if p.messages[0]["role"] == "system"]
    assert 2 <= len(with_system) <= 12
    assert all("system-prompt" in p.tags for p in with_system)
    folded = fold_system_message(with_system[0].messages)
    assert [m["role"] for m in folded] == ["user"]
    assert folded[0]["content"].startswith(with_system[0].messages[0]["content"] + "\n\n")


def test_canary_has_a_multi_turn_conversation():
    roles = [[m["role"] for m in p.messages] for p in load_promptset("canary").prompts]
    assert ["user", "assistant", "user"] in roles


# --- loading sources -----------------------------------------------------------------------------------------


def test_local_path_loads_with_its_stem_as_name_and_content_hash_as_version(tmp_path):
    path = _write(tmp_path, _line("a-1"), "", "   ", _line("a-2"), name="mine.jsonl")
    loaded = load_promptset(str(path))
    assert (loaded.name, loaded.source, loaded.ids) == ("mine", str(path), ["a-1", "a-2"])
    assert loaded.version.startswith("sha256:") and len(loaded.sha256) == 64
    assert loaded.prompts[0] == Prompt(
        "a-1", [{"role": "user", "content": "How do I drain a node?"}], 64, 0.0, ["kubernetes"]
    )


def test_the_version_changes_with_the_content(tmp_path):
    first = load_promptset(_write(tmp_path, _line("a-1"))).version
    assert load_promptset(_write(tmp_path, _line("a-1", max_tokens=65))).version != first


def test_a_missing_file_names_the_path_and_the_packaged_sets(tmp_path):
    with pytest.raises(PromptsetError, match=r"cannot read promptset .*nope\.jsonl.*canary, performance"):
        load_promptset(str(tmp_path / "nope.jsonl"))


def test_an_empty_file_is_an_error_strict_or_not(tmp_path):
    path = _write(tmp_path, "")
    with pytest.raises(PromptsetError, match="contains no prompts"):
        load_promptset(path)
    with pytest.raises(PromptsetError, match="contains no prompts"):  # a canary of nothing would measure nothing
        load_promptset(path, strict=False)


def test_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(_line().replace("drain", "dr\u00e4in").encode("latin-1"))
    with pytest.raises(PromptsetError, match="is not UTF-8 text"):
        load_promptset(path)


def test_variant_limit_comes_from_the_catalog():
    assert load_catalog().variant(FP16).max_model_len == 1024
    with pytest.raises(ValueError, match="unknown variant 'mistral-7b-gptq'"):
        load_promptset("canary", variant="mistral-7b-gptq")


# --- validation: every bad line, with its number, as the user reads it ----------------------------------------

MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "set.jsonl:2: not valid JSON: Expecting property name enclosed in double quotes (column 2)"),
        ('["a", "list"]', "set.jsonl:2: expected a JSON object, got list"),
        ("42", "set.jsonl:2: expected a JSON object, got int"),
        (_line("x", messages=_DROP), "set.jsonl:2: prompt 'x': missing 'messages'"),
        (
            _line("x", messages=[]),
            "set.jsonl:2: prompt 'x': 'messages' must be a non-empty list of {role, content} objects",
        ),
        (
            _line("x", messages="hi"),
            "set.jsonl:2: prompt 'x': 'messages' must be a non-empty list of {role, content} objects",
        ),
        (_line("x", messages=["hi"]), "set.jsonl:2: prompt 'x': message 1 is not an object"),
        (_line("x", messages=[{"content": "hi"}]), "set.jsonl:2: prompt 'x': message 1 has no 'role'"),
        (_line("x", messages=[{"role": "user"}]), "set.jsonl:2: prompt 'x': message 1 has no 'content'"),
        (
            _line("x", messages=[{"role": "user", "content": "  "}]),
            "set.jsonl:2: prompt 'x': message 1 has empty or non-text 'content'",
        ),
        (
            _line("x", messages=[{"role": "tool", "content": "hi"}]),
            "set.jsonl:2: prompt 'x': message 1 has unknown role 'tool'; expected one of system, user, assistant",
        ),
        (
            _line("x", messages=[{"role": "user", "content": "hi", "name": "bob"}]),
            "set.jsonl:2: prompt 'x': message 1 has unknown field(s) 'name'",
        ),
        (
            _line("x", messages=[*MSG, {"role": "system", "content": "be brief"}]),
            "set.jsonl:2: prompt 'x': a 'system' message may only come first",
        ),
        (
            _line("x", messages=[{"role": "system", "content": "be brief"}]),
            "set.jsonl:2: prompt 'x': 'messages' needs a 'user' message after the system message",
        ),
        (
            _line("x", messages=[*MSG, *MSG]),
            "set.jsonl:2: prompt 'x': roles must alternate user/assistant starting with user; got user, user",
        ),
        (
            _line("x", messages=[*MSG, {"role": "assistant", "content": "hello"}]),
            "set.jsonl:2: prompt 'x': the last message must be from 'user' (the model answers it)",
        ),
        (_line(_DROP), "set.jsonl:2: missing 'id'"),
        (_line(""), "set.jsonl:2: 'id' must be a string of letters, digits, '.', '_' or '-'; got ''"),
        (_line(7), "set.jsonl:2: 'id' must be a string of letters, digits, '.', '_' or '-'; got 7"),
        (_line("x", max_tokens=_DROP), "set.jsonl:2: prompt 'x': missing 'max_tokens'"),
        (_line("x", max_tokens=0), "set.jsonl:2: prompt 'x': 'max_tokens' must be a positive integer; got 0"),
        (_line("x", max_tokens=-5), "set.jsonl:2: prompt 'x': 'max_tokens' must be a positive integer; got -5"),
        (_line("x", max_tokens=12.5), "set.jsonl:2: prompt 'x': 'max_tokens' must be a positive integer; got 12.5"),
        (_line("x", max_tokens=True), "set.jsonl:2: prompt 'x': 'max_tokens' must be a positive integer; got True"),
        (_line("x", max_tokens="64"), "set.jsonl:2: prompt 'x': 'max_tokens' must be a positive integer; got '64'"),
        (_line("x", temperature=2.5), "set.jsonl:2: prompt 'x': 'temperature' must be a number in [0, 2]; got 2.5"),
        (_line("x", temperature=-0.1), "set.jsonl:2: prompt 'x': 'temperature' must be a number in [0, 2]; got -0.1"),
        (_line("x", temperature="hot"), "set.jsonl:2: prompt 'x': 'temperature' must be a number in [0, 2]; got 'hot'"),
        (_line("x", tags="k8s"), "set.jsonl:2: prompt 'x': 'tags' must be a list of non-empty strings; got 'k8s'"),
        (
            _line("x", tags=["ok", ""]),
            "set.jsonl:2: prompt 'x': 'tags' must be a list of non-empty strings; got ['ok', '']",
        ),
        (
            _line("x", max_token=64),
            "set.jsonl:2: prompt 'x': unknown field(s) 'max_token'; "
            "expected id, messages, max_tokens, temperature, tags, reference, rubric, assert",
        ),
    ],
)
def test_each_bad_line_is_reported_with_its_number(tmp_path, line, expected):
    path = _write(tmp_path, _line("good-1"), line, _line("good-2"))
    with pytest.raises(PromptsetError) as err:
        load_promptset(str(path))
    assert [str(i) for i in err.value.issues] == [expected.replace("set.jsonl", str(path))]
    assert (
        str(err.value)
        == f"promptset {path}: 1 bad line(s), nothing loaded:\n  {expected.replace('set.jsonl', str(path))}"
    )


@pytest.mark.parametrize(
    ("temperature", "max_tokens"),
    [(0, 1), (0.0, 64), (2, 64), (2.0, 64), (0.7, 4000)],
)
def test_boundary_values_are_accepted(temperature, max_tokens):
    prompts, issues = parse_promptset(_line(temperature=temperature, max_tokens=max_tokens), "set.jsonl")
    assert issues == [] and prompts[0].temperature == float(temperature)


def test_temperature_and_tags_default_to_greedy_and_none():
    prompts, issues = parse_promptset(_line(temperature=_DROP, tags=_DROP), "s")
    assert issues == [] and (prompts[0].temperature, prompts[0].tags) == (0.0, [])


def test_one_line_with_several_problems_reports_each(tmp_path):
    _, issues = parse_promptset(_line("x", max_tokens=0, temperature=9, tags=[1]), "set.jsonl")
    assert [i.message.split(";")[0] for i in issues] == [
        "'max_tokens' must be a positive integer",
        "'temperature' must be a number in [0, 2]",
        "'tags' must be a list of non-empty strings",
    ]
    assert {i.line for i in issues} == {1}


def test_duplicate_id_names_both_lines(tmp_path):
    path = _write(tmp_path, _line("k8s-007"), _line("other"), "", _line("k8s-007"))
    with pytest.raises(PromptsetError) as err:
        load_promptset(path)
    assert [str(i) for i in err.value.issues] == [
        f"{path}:4: prompt 'k8s-007': duplicate id 'k8s-007' (first on line 1)"
    ]


def test_strict_lists_every_bad_line_and_lenient_skips_them(tmp_path):
    lines = [_line("a"), "{", _line("b", max_tokens=0), _line("c"), _line("a"), "null", _line("d", temperature=3)]
    path = _write(tmp_path, *lines)
    with pytest.raises(PromptsetError) as err:
        load_promptset(path)
    message = str(err.value)
    assert message.startswith(f"promptset {path}: 5 bad line(s), nothing loaded:\n")
    for n in (2, 3, 5, 6, 7):
        assert f"{path}:{n}:" in message
    lenient = load_promptset(path, strict=False)
    assert lenient.ids == ["a", "c"]
    assert [i.line for i in lenient.issues] == [2, 3, 5, 6, 7]
    assert lenient.issues == err.value.issues


# --- fitting a variant's context -----------------------------------------------------------------------------


def test_max_tokens_beyond_max_model_len_names_the_variant(tmp_path):
    path = _write(tmp_path, _line("ok", max_tokens=900), _line("k8s-007", max_tokens=2000), name="canary.jsonl")
    prompt_tokens = estimate_prompt_tokens([{"role": "user", "content": "How do I drain a node?"}])
    with pytest.raises(PromptsetError) as err:
        load_promptset(path, variant=FP16)
    assert [str(i) for i in err.value.issues] == [
        f"{path}:2: prompt 'k8s-007': max_tokens 2000 + ~{prompt_tokens} prompt tokens exceed "
        f"max_model_len 1024 of mistral-7b-fp16"
    ]
    assert load_promptset(path, variant="mistral-7b-awq").ids == ["ok", "k8s-007"]


def test_a_long_prompt_alone_can_overflow_and_an_explicit_limit_wins(tmp_path):
    long_text = "Summarise this. " + "The node pool ran out of spot capacity in the zone. " * 80
    path = _write(tmp_path, _line("long-1", messages=[{"role": "user", "content": long_text}], max_tokens=64))
    assert load_promptset(path).ids == ["long-1"]  # no limit given, nothing to fit
    with pytest.raises(PromptsetError, match=r"max_tokens 64 \+ ~\d+ prompt tokens exceed max_model_len 512\n?$"):
        load_promptset(path, max_model_len=512)
    assert load_promptset(path, max_model_len=4096, variant=FP16).ids == ["long-1"]


def test_issue_without_source_or_prompt_reads_cleanly():
    assert str(PromptsetIssue(3, None, "not valid JSON")) == "line 3: not valid JSON"
    assert str(PromptsetIssue(12, "k8s-007", "boom", "canary.jsonl")) == "canary.jsonl:12: prompt 'k8s-007': boom"


# --- the token estimate --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("the pod", 2),  # short words are one token each
        ("Kubernetes", 2),  # one per 5 letters, rounded up
        ("12345", 5),  # Mistral splits digits
        ("a.b/c", 5),  # every punctuation mark counts
        ("line\nline", 3),
        ("    indented", 1 + 2),  # a run of spaces is not free
        ("café", 1 + 1),  # Latin-1 letters: one each
        ("東京", 4),  # CJK: two per character
    ],
)
def test_estimate_tokens(text, tokens):
    assert estimate_tokens(text) == tokens


def test_english_prose_is_estimated_near_or_above_1_3_tokens_per_word():
    text = "The autoscaler could not add capacity because the spot pool in the zone was exhausted that night."
    words = len(text.split())
    assert 1.1 * words <= estimate_tokens(text) <= 1.8 * words


def test_prompt_estimate_adds_the_chat_template_per_message():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert estimate_prompt_tokens(messages) == 1 + (2 + 1 + 1) + 2 * 8


@pytest.mark.parametrize(
    ("messages", "folded"),
    [
        ([{"role": "user", "content": "q"}], [{"role": "user", "content": "q"}]),
        (
            [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
            [{"role": "user", "content": "s\n\nq"}],
        ),
        (
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q2"},
            ],
            [
                {"role": "user", "content": "s\n\nq1"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q2"},
            ],
        ),
    ],
)
def test_fold_system_message(messages, folded):
    assert fold_system_message(messages) == folded
