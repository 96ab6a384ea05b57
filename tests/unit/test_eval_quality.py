"""Quality metrics against hand-computed cases: tokens, exact match, first divergence, ROUGE-L, top-k KL."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from llmplat_dagster.evaluation import quality
from llmplat_dagster.evaluation.quality import (
    encode_tokens,
    kl_column,
    pair_outputs,
    per_prompt_metrics,
    tokenize,
    topk_kl,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, world.", ["Hello", ",", "world", "."]),
        (" Cache. Latency", ["Cache", ".", "Latency"]),
        ("a  b\n\tc!", ["a", "b", "c", "!"]),
        ("a.b...c", ["a", ".", "b", ".", ".", ".", "c"]),
        ("snake_case x2 4817", ["snake_case", "x2", "4817"]),
        ("naïve—test 4817×2396", ["naïve", "—", "test", "4817", "×", "2396"]),
        ('{"score": 7}', ["{", '"', "score", '"', ":", "7", "}"]),
        ("", []),
        ("   \n ", []),
        (None, []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize([text]) == [tokens]


def test_tokenize_matches_the_simulators_regex_on_ascii():
    import re

    pattern = re.compile(r"\w+|[^\w\s]")
    rng = random.Random(7)
    alphabet = "ab c.,!?\n\t_-'\"xyz09 ()"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    assert tokenize(texts) == [pattern.findall(t) for t in texts]


def test_threaded_tokenize_equals_serial(monkeypatch):
    texts = [f"w{i % 13}, w{i % 7}." for i in range(300)] + [None, ""]
    serial = tokenize(texts)
    monkeypatch.setattr(quality, "_PARALLEL_TEXTS", 50)
    assert tokenize(texts) == serial
    threaded_codes = encode_tokens(texts)
    monkeypatch.setattr(quality, "_PARALLEL_TEXTS", 10**9)
    assert threaded_codes == encode_tokens(texts)  # unified dictionaries: same codes as one serial pass


def test_too_many_distinct_tokens_falls_back_to_token_lists(monkeypatch):
    monkeypatch.setattr(quality, "_MAX_CODES", 2)
    assert encode_tokens(["a b c", "c"]) == [["a", "b", "c"], ["c"]]
    row = per_prompt_metrics(_paired("a b c", "a b d")).iloc[0]
    assert row["first_divergence"] == 2 and row["similarity"] == pytest.approx(2 / 3)


def test_encode_tokens_one_code_point_per_token_shared_across_texts():
    codes = encode_tokens(["a b a", "b a", "", None])
    assert codes[0] == codes[0][0] + codes[1] and len(codes[0]) == 3
    assert codes[2] == codes[3] == ""
    assert encode_tokens([]) == []


def _paired(ref: str | None, cand: str | None, ref_lp=None, cand_lp=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt_id": ["p"],
            "output_text_ref": [ref],
            "output_text_cand": [cand],
            "top_logprobs_ref": [ref_lp],
            "top_logprobs_cand": [cand_lp],
        }
    )


@pytest.mark.parametrize(
    ("ref", "cand", "exact", "first", "agreement", "similarity"),
    [
        ("The cat sat.", "The cat sat.", True, math.nan, 1.0, 1.0),
        ("a  b\n", "a b", True, math.nan, 1.0, 1.0),  # whitespace is not a token
        ("a b c", "a b d", False, 2, 2 / 3, 2 * 2 / 6),
        ("a b c", "a b c d", False, 3, 1.0, 2 * 3 / 7),  # reference is a prefix: all of it agrees
        ("a b c d", "a b c", False, 3, 3 / 4, 2 * 3 / 7),  # truncated candidate
        ("b a", "a b", False, 0, 0.0, 2 * 1 / 4),
        ("Hello, world.", "Hello world.", False, 1, 1 / 4, 2 * 3 / 7),
        ("The answer", "the answer", False, 0, 0.0, 2 * 1 / 4),  # case matters
        ("", "", True, math.nan, 1.0, 1.0),
        ("", "x", False, 0, 0.0, 0.0),
        ("x", None, False, 0, 0.0, 0.0),
        ("a b c d e f g h i j", "a b c X e f g h i j", False, 3, 0.3, 2 * 9 / 20),
    ],
)
def test_per_prompt_text_metrics(ref, cand, exact, first, agreement, similarity):
    row = per_prompt_metrics(_paired(ref, cand)).iloc[0]
    assert bool(row["exact_match"]) is exact
    assert (math.isnan(first) and math.isnan(row["first_divergence"])) or row["first_divergence"] == first
    assert row["token_agreement"] == pytest.approx(agreement)
    assert row["similarity"] == pytest.approx(similarity)
    assert math.isnan(row["kl_divergence"])


def _kl(p: list[float], q: list[float]) -> float:
    sp, sq = sum(p), sum(q)
    return sum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(p, q, strict=True))


L = math.log
KL_CASES = [
    ([{"a": L(0.6), "b": L(0.4)}], [{"a": L(0.6), "b": L(0.4)}], 0.0),
    # argmax differs at position 0: that position counts, then stop
    ([{"a": L(0.6), "b": L(0.4)}, {"x": 0.0}], [{"a": L(0.4), "b": L(0.6)}, {"y": 0.0}], 0.2 * math.log(1.5)),
    # a token missing from one side's top-k gets min(1e-6, that side's smallest probability)
    ([{"a": L(0.7), "b": L(0.3)}], [{"a": L(0.7), "c": L(0.3)}], _kl([0.7, 0.3, 1e-6], [0.7, 1e-6, 0.3])),
    # mean over positions up to the divergence (2 positions), the third is not counted
    (
        [{"a": L(0.9), "b": L(0.1)}, {"a": L(0.5), "b": L(0.2)}, {"z": 0.0}],
        [{"a": L(0.8), "b": L(0.2)}, {"b": L(0.5), "a": L(0.2)}, {"q": 0.0}],
        (_kl([0.9, 0.1], [0.8, 0.2]) + _kl([0.5, 0.2], [0.2, 0.5])) / 2,
    ),
    # unequal lengths: aligned positions only
    ([{"a": 0.0}], [{"a": 0.0}, {"b": 0.0}], 0.0),
    # an empty position ends the comparison before it
    ([{"a": L(0.6), "b": L(0.4)}, {}], [{"a": L(0.5), "b": L(0.5)}, {"a": 0.0}], _kl([0.6, 0.4], [0.5, 0.5])),
    ([{}], [{"a": 0.0}], math.nan),
    # -inf logprobs are clipped to exp(-700), not a crash or NaN
    ([{"a": 0.0, "b": -math.inf}], [{"a": 0.0, "b": -math.inf}], 0.0),
    (None, [{"a": 0.0}], math.nan),
    ([], [], math.nan),
    ([{"a": 0.0}], float("nan"), math.nan),
]


@pytest.mark.parametrize(("ref", "cand", "expected"), KL_CASES)
def test_topk_kl_hand_computed(ref, cand, expected):
    got = topk_kl(ref, cand)
    assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)
    vec = kl_column([ref], [cand])[0]
    assert (math.isnan(expected) and math.isnan(vec)) or vec == pytest.approx(expected, abs=1e-12)


def test_kl_column_equals_the_loop_on_random_logprobs():
    rng = random.Random(3)
    vocab = [f"t{i}" for i in range(12)]

    def lps() -> list[dict[str, float]] | None:
        if rng.random() < 0.1:
            return None
        return [
            {t: -rng.uniform(0.01, 8) for t in rng.sample(vocab, rng.randint(1, 5))} for _ in range(rng.randint(0, 12))
        ]

    ref = [lps() for _ in range(300)]
    cand = [lps() for _ in range(300)]
    expected = np.array([topk_kl(a, b) for a, b in zip(ref, cand, strict=True)])
    np.testing.assert_allclose(kl_column(ref, cand), expected, rtol=1e-9, atol=1e-12)


def test_pair_outputs_joins_ok_rows_and_reports_unpaired():
    ref = pd.DataFrame(
        {
            "prompt_id": ["p1", "p2", "p3", "p4", "p1"],
            "status": ["ok", "ok", "ok", "error", "ok"],
            "output_text": ["a", "b", "c", "", "retry ignored"],
        }
    )
    cand = pd.DataFrame({"prompt_id": ["p1", "p2", "p4", "p5"], "status": ["ok", "error", "ok", "ok"]})
    cand["output_text"] = ["a", "", "d", "e"]
    paired = pair_outputs(ref, cand)
    assert paired["prompt_id"].tolist() == ["p1"]
    assert paired["output_text_ref"].tolist() == ["a"]
    assert paired.attrs["unpaired_reference"] == ["p2", "p3"]
    assert paired.attrs["unpaired_candidate"] == ["p4", "p5"]
    assert "top_logprobs_ref" in paired  # missing column: NaN, metrics give NaN KL
    assert math.isnan(per_prompt_metrics(paired)["kl_divergence"].iloc[0])


def test_per_prompt_metrics_on_nothing():
    empty = pair_outputs(
        pd.DataFrame(columns=["prompt_id", "status", "output_text"]),
        pd.DataFrame(columns=["prompt_id", "status", "output_text"]),
    )
    out = per_prompt_metrics(empty)
    assert len(out) == 0 and {"exact_match", "similarity", "kl_divergence"} <= set(out.columns)


# --- the word-level tokeniser, the index join and the KL row mask against straightforward references ------------


def _whole_text_tokens(texts: list[str | None]) -> list[list[str]]:
    """The definition: every punctuation character spaced out over the whole text, then an ASCII-whitespace split."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.fill_null(pa.array(texts, type=pa.large_string()), "")
    spaced = pc.replace_substring_regex(arr, quality.PUNCT_RE, r" \1 ")
    return [[t for t in row if t] for row in pc.ascii_split_whitespace(spaced).to_pylist()]


def test_word_level_tokenising_equals_tokenising_whole_texts():
    rng = random.Random(11)
    alphabet = "ab Z9_.,;!?'\"()-\n\t\v\f\r" + "é\u00a0\u2028\u3000—×\u0301日本" + "\x00\x1c\x1f"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(400)] + [None, ""]
    assert tokenize(texts) == _whole_text_tokens(texts)


def test_chunked_arrow_input_and_parts_keep_order_and_codes(monkeypatch):
    import pyarrow as pa

    texts = [f"t{i % 17}. x{i % 5}, {'y' * (i % 3)}" for i in range(500)] + [None, "  ", "last!"]
    expected_tokens = tokenize(texts)
    expected_codes = encode_tokens(texts)
    monkeypatch.setattr(quality, "_PARALLEL_TEXTS", 40)
    monkeypatch.setattr(quality, "_PART_TEXTS", 60)
    chunked = pa.chunked_array([pa.array(texts[:123], pa.large_string()), pa.array(texts[123:], pa.large_string())])
    assert tokenize(chunked) == expected_tokens
    assert encode_tokens(chunked) == expected_codes  # same code numbering as one serial pass
    assert encode_tokens(pd.Series(texts, dtype="str")) == expected_codes


def test_pair_outputs_equals_a_merge():
    rng = random.Random(5)
    ids = [f"p{rng.randint(0, 60)}" for _ in range(120)]

    def frame(seed: int) -> pd.DataFrame:
        r = random.Random(seed)
        n = len(ids)
        return pd.DataFrame(
            {
                "prompt_id": [ids[r.randrange(n)] for _ in range(n)],
                "status": [r.choice(["ok", "ok", "ok", "error"]) for _ in range(n)],
                "output_text": [f"text {r.random():.3f}" for _ in range(n)],
                "top_logprobs": [None] * n,
            }
        )

    ref, cand = frame(1), frame(2)
    got = pair_outputs(ref, cand)
    ref_ok = ref[ref["status"] == "ok"].drop_duplicates("prompt_id")
    cand_ok = cand[cand["status"] == "ok"].drop_duplicates("prompt_id")
    keep = ["prompt_id", "output_text", "top_logprobs"]
    expected = ref_ok[keep].merge(cand_ok[keep], on="prompt_id", how="inner", suffixes=("_ref", "_cand"))
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))
    assert got.attrs["unpaired_reference"] == sorted(set(ref_ok["prompt_id"]) - set(cand_ok["prompt_id"]))
    assert got.attrs["unpaired_candidate"] == sorted(set(cand_ok["prompt_id"]) - set(ref_ok["prompt_id"]))


def test_kl_column_takes_series_lists_and_rows_of_equal_length():
    lp = [{"a": L(0.6), "b": L(0.4)}]
    other = [{"a": L(0.5), "b": L(0.5)}]
    expected = _kl([0.6, 0.4], [0.5, 0.5])
    # equal-length lists must stay one object per row (np.asarray would build a 2-D array of dicts)
    for ref, cand in (([lp, lp], [other, other]), (pd.Series([lp, lp]), pd.Series([other, other]))):
        np.testing.assert_allclose(kl_column(ref, cand), [expected, expected])
    assert np.isnan(kl_column([None, float("nan"), []], [lp, lp, lp])).all()
    with pytest.raises(ValueError):
        kl_column([lp], [lp, lp])


@pytest.mark.parametrize(
    "lp",
    [
        {"a": -1.0, "b": -0.5, "c": -0.5},
        {"a": -0.5, "b": -0.5},
        {"a": 0.0, "b": -1.0},
        {"a": math.nan, "b": 0.0},
        {"a": 0.0, "b": math.nan, "c": 1.0},
        {"a": 1.0, "b": math.nan, "c": 0.5},
        {"a": -math.inf, "b": -math.inf},
    ],
)
def test_argmax_is_max_by_value_first_of_equals(lp):
    assert quality._argmax(lp) == max(lp, key=lp.__getitem__)
