"""Per-prompt agreement of a candidate's output with the FP16 reference: exact match, first divergence, ROUGE-L, KL.

Tokens are words and punctuation, case kept: every character that is not a letter, digit, combining mark,
``_``, space separator or whitespace (RE2 ``[^\\pL\\pN\\pM\\pZ_\\s]``) is a token of its own, and the rest is
split on ASCII whitespace, so ``" Cache."`` is ``["Cache", "."]`` as with the simulator's ``\\w+|[^\\w\\s]``
(a non-breaking space joins the words around it). Tokenising 100k texts into Python strings allocates ~10M
objects and takes seconds, so it runs in Arrow: texts are split on ASCII whitespace and dictionary-encoded in
C++, the RE2 punctuation split runs once per distinct word, and each token becomes one code point of a
per-call dictionary: a text turns into a short string rapidfuzz compares in C (``cpdist``).

``similarity`` is ROUGE-L F1 (beta = 1) over these tokens: 2 * LCS / (len_ref + len_cand), which is exactly
rapidfuzz's ``Indel.normalized_similarity`` (Indel distance = len_ref + len_cand - 2 * LCS); 1.0 for two empty
texts. KL is over top-k logprobs only, so it is a truncated KL, comparable between variants of one run, not
the full-vocabulary KL; see :func:`topk_kl`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Indel, Prefix
from rapidfuzz.process import cpdist

OK = "ok"
CODES = "token_codes"  # optional column of pre-encoded texts (see encode_tokens), carried through pair_outputs
FLOOR = 1e-6  # probability given to a token missing from one side's top-k (capped by that side's smallest)
PUNCT_RE = r"([^\pL\pN\pM\pZ_\s])"
METRICS = ("exact_match", "first_divergence", "token_agreement", "similarity", "kl_divergence")
_MAX_CODES = 0x10FFFF - 0x800
_MIN_LOGPROB = -700.0  # -inf logprobs are clipped so that every listed probability is > 0
_PARALLEL_TEXTS = 20_000  # texts per thread below which threads cost more than they save
_PART_TEXTS = 50_000  # texts per part (smaller parts: less memory to map per step)
_MAX_SMALL_BYTES = 1 << 30  # texts cast to 32-bit offsets below this size (a split list must stay < 2 GiB)


def _offsets(lengths: np.ndarray) -> list[int]:
    return np.concatenate([[0], np.cumsum(lengths)]).tolist()


def _parts(texts: Sequence[Any] | pd.Series | pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The texts as string arrays without nulls (None counts as an empty text), in order, split into parts of
    about ``_PART_TEXTS`` (one part below ``2 * _PARALLEL_TEXTS``) along the chunks of an Arrow-backed column,
    so nothing is copied whole; 32-bit offsets where they fit (list<string> builds about twice as fast)."""
    arr = (
        texts
        if isinstance(texts, pa.Array | pa.ChunkedArray)
        else pa.array(texts, type=pa.large_string(), from_pandas=True)
    )
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    total = sum(len(c) for c in chunks)
    size = max(_PARALLEL_TEXTS, min(_PART_TEXTS, -(-total // pa.cpu_count())))
    parts = []
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            chunk = chunk.cast(pa.large_string())
        for start in range(0, len(chunk), size):
            part = chunk.slice(start, size)
            if part.null_count:
                part = pc.fill_null(part, "")
            if pa.types.is_large_string(part.type) and part.nbytes < _MAX_SMALL_BYTES:
                part = part.cast(pa.string())
            parts.append(part)
    return parts or [pa.array([], pa.string())]


def _words(arr: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(index of each whitespace-separated word in ``words``, the distinct words, words per text)."""
    lists = pc.ascii_split_whitespace(arr)
    width = np.int64 if pa.types.is_large_list(lists.type) else np.int32
    offsets = np.frombuffer(lists.buffers()[1], width, len(lists) + 1, lists.offset * np.dtype(width).itemsize)
    encoded = pc.dictionary_encode(lists.flatten())
    return encoded.indices, encoded.dictionary, np.diff(offsets).astype(np.int64)


def _expand(
    word_codes: pa.Array, codes: np.ndarray, n_tokens: np.ndarray, words_per_text: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(every token's code, in text order; tokens per text): each word replaced by its tokens' codes, which
    are ``codes`` split into runs of ``n_tokens`` (one binary value per distinct word: an Arrow take)."""
    byte_off = np.zeros(len(n_tokens) + 1, np.int64)
    np.cumsum(n_tokens * 4, out=byte_off[1:])
    small = byte_off[-1] < 2**31 and len(word_codes) * int(n_tokens.max(initial=0)) * 4 < 2**31
    width, kind = (np.int32, pa.binary()) if small else (np.int64, pa.large_binary())
    per_word = pa.Array.from_buffers(
        kind, len(n_tokens), [None, pa.py_buffer(byte_off.astype(width)), pa.py_buffer(codes)]
    )
    taken = per_word.take(word_codes)
    _, offsets, data = taken.buffers()
    item = np.dtype(width).itemsize
    byte_at = np.frombuffer(offsets, width, len(taken) + 1, taken.offset * item)
    out = np.frombuffer(data, np.uint32, (int(byte_at[-1]) - int(byte_at[0])) // 4, int(byte_at[0]))
    word_off = np.zeros(len(words_per_text) + 1, np.int64)
    np.cumsum(words_per_text, out=word_off[1:])
    return out, np.diff(byte_at[word_off].astype(np.int64)) // 4


def _token_codes(
    texts: Sequence[Any] | pd.Series | pa.Array, finish: Callable[[int, np.ndarray, np.ndarray], Any] | None = None
) -> tuple[pa.Array, list[Any]]:
    """(distinct tokens; per part of the texts: every token's index into them and tokens per text, or what
    ``finish(len(distinct tokens), codes, tokens per text)`` makes of them, in the part's thread).

    Splitting on ASCII whitespace first and tokenising each distinct word once (the punctuation regex runs on a
    few thousand words instead of every text) gives the same tokens as tokenising whole texts, since a token
    never spans ASCII whitespace. Large inputs are split into parts handled by threads (Arrow kernels release
    the GIL); the parts' distinct words are concatenated, so equal tokens get equal codes everywhere, and codes
    are numbered in order of first appearance, as one serial pass would.
    """
    parts = _parts(texts)
    threads = min(pa.cpu_count(), 8, len(parts))
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        done = list(pool.map(_words, parts)) if pool else [_words(p) for p in parts]
        words = pa.concat_arrays([d for _, d, _ in done])
        spaced = pc.ascii_trim_whitespace(pc.replace_substring_regex(words, PUNCT_RE, r" \1 "))
        lists = pc.ascii_split_whitespace(pc.if_else(pc.equal(spaced, ""), pa.scalar(None, spaced.type), spaced))
        encoded = pc.dictionary_encode(lists.flatten())
        n_tokens = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.uint32)
        tok_off = np.concatenate([[0], np.cumsum(n_tokens)])
        starts = np.cumsum([0] + [len(d) for _, d, _ in done]).tolist()
        n_vocab = len(encoded.dictionary)

        def job(i: int) -> Any:
            indices, distinct, per_text = done[i]
            s, e = starts[i], starts[i] + len(distinct)
            part = _expand(indices, codes[tok_off[s] : tok_off[e]], n_tokens[s:e], per_text)
            return finish(n_vocab, *part) if finish else part

        out = list(pool.map(job, range(len(done)))) if pool else [job(i) for i in range(len(done))]
    finally:
        if pool:
            pool.shutdown()
    return encoded.dictionary, out


def tokenize(texts: Sequence[Any] | pd.Series) -> list[list[str]]:
    """The tokens of each text (None counts as empty), for tests and for people reading a divergence."""
    vocab, parts = _token_codes(texts)
    result: list[list[str]] = []
    for codes, lengths in parts:
        flat, off = vocab.take(pa.array(codes)).to_pylist(), _offsets(lengths)
        result += [flat[a:b] for a, b in zip(off[:-1], off[1:], strict=True)]
    return result


def _as_strings(n_vocab: int, codes: np.ndarray, lengths: np.ndarray) -> list[str] | None:
    """Each text's codes as a str with one code point per token; None past the code points there are."""
    if n_vocab > _MAX_CODES:
        return None
    if n_vocab > 0xD800:
        codes = codes + (codes >= 0xD800).astype(np.uint32) * 0x800  # skip the surrogates UTF-32 cannot carry
    joined = str(memoryview(codes), "utf-32-le")
    off = _offsets(lengths)
    return [joined[a:b] for a, b in zip(off[:-1], off[1:], strict=True)]


def encode_tokens(texts: Sequence[Any] | pd.Series) -> list[str] | list[list[str]]:
    """Each text as a string with one code point per distinct token, codes shared by every text of this call.

    Texts compared with each other must be encoded in the same call. Past ~1.1M distinct tokens there are not
    enough code points, and the token lists themselves are returned (rapidfuzz accepts both; slower).
    """
    vocab, parts = _token_codes(texts, _as_strings)
    if len(vocab) > _MAX_CODES:
        return tokenize(texts)
    return [text for part in parts for text in part]


def _ok_rows(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == OK] if "status" in frame else frame
    return ok.drop_duplicates("prompt_id", keep="first")


def pair_outputs(reference: pd.DataFrame, candidate: pd.DataFrame) -> pd.DataFrame:
    """Inner join of the two runs' successful rows on prompt_id (first ok row per id, retries ignored).

    Columns: prompt_id, output_text_ref/_cand, top_logprobs_ref/_cand (and token_codes_ref/_cand when both
    inputs carry a ``token_codes`` column). Ids with an ok row on one side only are listed, sorted, in
    ``attrs["unpaired_reference"]`` and ``attrs["unpaired_candidate"]`` so a failing server cannot hide.
    """
    keep = ["prompt_id", "output_text", "top_logprobs"] + ([CODES] if CODES in reference and CODES in candidate else [])
    ref, cand = _ok_rows(reference).reindex(columns=keep), _ok_rows(candidate).reindex(columns=keep)
    ref_ids, cand_ids = ref["prompt_id"].to_numpy(dtype=object), cand["prompt_id"].to_numpy(dtype=object)
    # ids are unique on each side (_ok_rows), so an index lookup is the join, in the reference's order
    in_cand = pd.Index(cand_ids).get_indexer(ref_ids)
    in_ref = pd.Index(ref_ids).get_indexer(cand_ids)
    left = np.flatnonzero(in_cand >= 0)
    right = in_cand[left]
    columns = {"prompt_id": ref["prompt_id"].iloc[left].reset_index(drop=True)}
    for suffix, frame, at in (("_ref", ref, left), ("_cand", cand, right)):
        columns |= {f"{c}{suffix}": frame[c].iloc[at].reset_index(drop=True) for c in keep[1:]}
    paired = pd.DataFrame(columns)
    paired.attrs["unpaired_reference"] = sorted(ref_ids[in_cand < 0].tolist(), key=str)
    paired.attrs["unpaired_candidate"] = sorted(cand_ids[in_ref < 0].tolist(), key=str)
    return paired


def _has(lp: Any) -> bool:
    return lp is not None and not isinstance(lp, float) and len(lp) > 0


def _position_kl(p_lp: Mapping[str, float], q_lp: Mapping[str, float], floor: float) -> float:
    """KL(p || q) over the union of both top-k lists, each side renormalised over that union."""
    p = {t: math.exp(max(v, _MIN_LOGPROB)) for t, v in p_lp.items()}
    q = {t: math.exp(max(v, _MIN_LOGPROB)) for t, v in q_lp.items()}
    p_floor, q_floor = min(floor, min(p.values())), min(floor, min(q.values()))
    union = p.keys() | q.keys()
    pu = [p.get(t, p_floor) for t in union]
    qu = [q.get(t, q_floor) for t in union]
    sp, sq = sum(pu), sum(qu)
    return max(0.0, sum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(pu, qu, strict=True) if a > 0))


def topk_kl(reference: Any, candidate: Any, *, floor: float = FLOOR) -> float:
    """Mean per-position KL(ref || cand) over top-k logprobs, from position 0 to the first divergence.

    Positions are generation steps (one dict each). A step diverges when the two sides' most likely tokens
    differ (greedy decoding emits the argmax); that step is included, later ones are not, since their
    contexts differ. A token in one side's top-k but not the other's gets ``min(floor, that side's smallest
    top-k probability)``: it cannot be likelier than the least likely listed one. NaN without logprobs.
    """
    if not (_has(reference) and _has(candidate)):
        return math.nan
    total, n = 0.0, 0
    for p_lp, q_lp in zip(reference, candidate, strict=False):
        if not (_has(p_lp) and _has(q_lp)):
            break
        total += _position_kl(p_lp, q_lp, floor)
        n += 1
        if max(p_lp, key=p_lp.__getitem__) != max(q_lp, key=q_lp.__getitem__):
            break
    return total / n if n else math.nan


def _flat(lps: list[Any], n_pos: np.ndarray) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """(entries per position, tokens, logprobs) of the first n_pos[i] positions of each row, flattened in C."""
    dicts = list(chain.from_iterable(lp[:k] for lp, k in zip(lps, n_pos.tolist(), strict=True) if k))
    sizes = np.fromiter(map(len, dicts), dtype=np.int64, count=len(dicts))
    tokens = list(chain.from_iterable(dicts))
    values = np.fromiter(chain.from_iterable(map(dict.values, dicts)), dtype=float, count=len(tokens))
    return sizes, tokens, values


def _compared_positions(reference: list[Mapping[str, float]], candidate: list[Mapping[str, float]]) -> int:
    """How many leading positions :func:`topk_kl` averages over: up to and including the first divergence."""
    n = 0
    for p_lp, q_lp in zip(reference, candidate, strict=False):
        if not (p_lp and q_lp):
            break
        n += 1
        if _argmax(p_lp) != _argmax(q_lp):
            break
    return n


def _argmax(lp: Mapping[str, float]) -> str:
    """``max(lp, key=lp.__getitem__)`` (the first of equal maxima): servers list top-k best first, so the
    first key usually is it, which one C-level ``max`` over the values confirms."""
    first = next(iter(lp))
    return first if lp[first] >= max(lp.values()) else max(lp, key=lp.__getitem__)


def _sum_by(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Float sums of ``weights`` per ``index`` (bincount returns ints when it is given nothing)."""
    return np.bincount(index, weights, size).astype(float, copy=False)


def _segment_min(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    out = np.full(len(sizes), np.inf)
    filled = np.flatnonzero(sizes)
    if len(filled):
        out[filled] = np.minimum.reduceat(values, (np.cumsum(sizes) - sizes)[filled])
    return out


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of the values (np.asarray would make lists of equal length a 2-D array)."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=object)
    return np.fromiter(values, dtype=object, count=len(values))


def kl_column(reference: Sequence[Any], candidate: Sequence[Any], *, floor: float = FLOOR) -> np.ndarray:
    """:func:`topk_kl` for every pair: a per-row walk finds the compared positions, numpy does the KL math."""
    ref, cand = _objects(reference), _objects(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"kl_column needs as many candidate rows as reference rows, got {ref.shape} and {cand.shape}")
    out = np.full(len(ref), np.nan)
    # most rows carry no logprobs: a C-level NA test first, the exact check only on the rows that pass it
    maybe = np.flatnonzero(pd.notna(ref) & pd.notna(cand)).tolist()
    rows = [i for i in maybe if _has(ref[i]) and _has(cand[i])]
    if not rows:
        return out
    ref, cand = [ref[i] for i in rows], [cand[i] for i in rows]
    # Walking the dicts to the first divergence is the one per-row loop (dicts are Python objects, and
    # flattening every position instead costs more: most of a diverged answer is past the divergence).
    n_pos = np.fromiter(map(_compared_positions, ref, cand), dtype=np.int64, count=len(rows))
    rs, rt, rv = _flat(ref, n_pos)
    cs, ct, cv = _flat(cand, n_pos)
    codes, vocab = pd.factorize(pd.Index(rt + ct, dtype=object))
    rc, cc = codes[: len(rt)].astype(np.int64), codes[len(rt) :].astype(np.int64)
    row_of = np.repeat(np.arange(len(rows)), n_pos)
    # KL over the union of both top-k lists per position; the side lacking a token gives it its floor.
    n_vocab = max(len(vocab), 1)
    r_pos, c_pos = np.repeat(np.arange(len(rs)), rs), np.repeat(np.arange(len(cs)), cs)
    p, q = np.exp(np.maximum(rv, _MIN_LOGPROB)), np.exp(np.maximum(cv, _MIN_LOGPROB))
    q_of_r = pd.Index(c_pos * n_vocab + cc).get_indexer(r_pos * n_vocab + rc)  # -1: token not in cand's top-k
    r_has_c = pd.Index(r_pos * n_vocab + rc).get_indexer(c_pos * n_vocab + cc) >= 0
    n_pos_all = len(rs)
    p_floor = np.minimum(floor, _segment_min(p, rs))
    q_floor = np.minimum(floor, _segment_min(q, cs))
    q_r = np.where(q_of_r >= 0, q[np.maximum(q_of_r, 0)], q_floor[r_pos])  # q at each ref entry
    p_c = p_floor[c_pos[~r_has_c]]  # p at each cand-only entry
    sum_p = _sum_by(r_pos, p, n_pos_all) + _sum_by(c_pos[~r_has_c], p_c, n_pos_all)
    sum_q = _sum_by(c_pos, q, n_pos_all) + _sum_by(r_pos[q_of_r < 0], q_r[q_of_r < 0], n_pos_all)
    pn_r, qn_r = p / sum_p[r_pos], q_r / sum_q[r_pos]
    pn_c, qn_c = p_c / sum_p[c_pos[~r_has_c]], q[~r_has_c] / sum_q[c_pos[~r_has_c]]
    kl_pos = _sum_by(r_pos, pn_r * np.log(pn_r / qn_r), n_pos_all)
    kl_pos += _sum_by(c_pos[~r_has_c], pn_c * np.log(pn_c / qn_c), n_pos_all)
    kl_pos = np.maximum(kl_pos, 0.0)
    counts = np.bincount(row_of, minlength=len(rows))
    sums = _sum_by(row_of, kl_pos, len(rows))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[rows] = np.where(counts > 0, sums / counts, np.nan)
    return out


def _text_metrics(ref_codes: list[Any], cand_codes: list[Any]) -> dict[str, np.ndarray]:
    n = len(ref_codes)
    if n == 0:
        empty = np.array([], dtype=float)
        return {
            "exact_match": np.array([], dtype=bool),
            "first_divergence": empty,
            "token_agreement": empty,
            "similarity": empty,
            "ref_tokens": np.array([], dtype=int),
            "cand_tokens": np.array([], dtype=int),
        }
    ref_len = np.fromiter(map(len, ref_codes), dtype=np.int64, count=n)
    cand_len = np.fromiter(map(len, cand_codes), dtype=np.int64, count=n)
    workers = -1 if n >= _PARALLEL_TEXTS else 1  # rapidfuzz threads, GIL released
    prefix = cpdist(ref_codes, cand_codes, scorer=Prefix.similarity, dtype=np.int64, workers=workers)
    exact = (prefix == ref_len) & (prefix == cand_len)
    agreement = np.where(exact, 1.0, prefix / np.maximum(ref_len, 1))
    return {
        "exact_match": exact,
        "first_divergence": np.where(exact, np.nan, prefix.astype(float)),
        "token_agreement": agreement,
        "similarity": cpdist(
            ref_codes, cand_codes, scorer=Indel.normalized_similarity, dtype=np.float64, workers=workers
        ),
        "ref_tokens": ref_len,
        "cand_tokens": cand_len,
    }


def per_prompt_metrics(paired: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: prompt_id, exact_match, first_divergence (token index, NaN when identical),
    token_agreement (share of reference tokens before the first divergence; 1.0 when identical, 0.0 for an
    empty reference), similarity (ROUGE-L F1), kl_divergence (:func:`topk_kl`), ref_tokens, cand_tokens."""
    if f"{CODES}_ref" in paired and f"{CODES}_cand" in paired:
        ref_codes = paired[f"{CODES}_ref"].to_numpy(dtype=object).tolist()
        cand_codes = paired[f"{CODES}_cand"].to_numpy(dtype=object).tolist()
    else:
        codes = encode_tokens(pd.concat([paired["output_text_ref"], paired["output_text_cand"]], ignore_index=True))
        ref_codes, cand_codes = codes[: len(paired)], codes[len(paired) :]
    kl = kl_column(paired["top_logprobs_ref"], paired["top_logprobs_cand"])
    return metrics_frame(paired["prompt_id"].to_numpy(), ref_codes, cand_codes, kl)


def metrics_frame(prompt_ids: np.ndarray, ref_codes: list[Any], cand_codes: list[Any], kl: np.ndarray) -> pd.DataFrame:
    """:func:`per_prompt_metrics` of already paired rows: texts as :func:`encode_tokens` codes (one call for
    both sides), ``kl`` from :func:`kl_column`."""
    out = pd.DataFrame({"prompt_id": prompt_ids, **_text_metrics(ref_codes, cand_codes)})
    out["kl_divergence"] = kl
    return out
