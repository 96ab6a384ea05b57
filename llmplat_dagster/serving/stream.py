"""Reading one streamed response: SSE lines, chunk validation and vllm-bench timings.

Timing (vllm/benchmarks/lib/endpoint_request_func.py, serve.py): the clock (time.perf_counter) starts right
before the request is sent; TTFT is taken at the first SSE chunk that carries generated text; ITL is the gap
between consecutive text chunks; e2e ends at the last text chunk (the trailing usage chunk and [DONE] carry no
token); TPOT = (e2e - TTFT) / (output_tokens - 1) with output_tokens from the `usage` chunk
(stream_options.include_usage). One difference: chunks with empty text (vLLM's leading role-only chunk, empty
special-token deltas) are not tokens here, so they neither start TTFT nor add an ITL gap; older vllm bench
versions did the same, newer ones count any chunk with `choices`. Each network read is stamped once, so
chunks that arrive together share a timestamp (an ITL of 0), as in vllm bench. Only choice 0 is timed (n=1).

A broken server must never yield an `ok` row with wrong values: every field the row keeps is type-checked
(`ChunkError` names the field), and a line longer than `MAX_LINE_BYTES` is refused instead of buffered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from llmplat_dagster.serving.results import RequestResult, percentile, tpot

_DONE = b"[DONE]"
_SSE_FIELDS = (b":", b"event:", b"id:", b"retry:")  # comments and the SSE fields other than data
MAX_LINE_BYTES = 16 * 1024 * 1024  # a chunk with 5 top logprobs per token is a few kB; 16 MiB is a broken server
MAX_ERROR_BODY_BYTES = 64 * 1024


class ChunkError(ValueError):
    """A `data:` line that is not a well-formed chunk; the message names the field and what it held."""


class LineTooLong(ValueError):
    """An SSE line past MAX_LINE_BYTES: refused rather than buffered without bound."""


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _expect(value: Any, types: type | tuple[type, ...], where: str, *, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ChunkError(f"{where} is a bool ({value!r}), not {_names(types)}")
    if not isinstance(value, types):
        raise ChunkError(f"{where} is {_kind(value)} ({str(value)[:40]!r}), not {_names(types)}")
    return value


_TYPE_NAMES = {"str": "a string", "int": "an integer", "dict": "an object", "list": "a list"}


def _names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(_TYPE_NAMES.get(t.__name__, t.__name__) for t in types)


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = _expect(usage.get(key), int, f"usage.{key}")
    if value is not None and value < 0:
        raise ChunkError(f"usage.{key} is negative ({value})")
    return value


def error_message(body: bytes, limit: int = 300) -> str:
    """The human part of an error body: OpenAI's error.message, vLLM's message, else the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return _squeeze(text, limit) or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:limit]
        if isinstance(err, str):
            return err[:limit]
    return text[:limit]


def _squeeze(text: str, limit: int) -> str:
    """An HTML error page as one readable line: tags dropped, whitespace folded."""
    if text.lstrip()[:1] == "<":
        import re

        text = re.sub(r"<[^>]*>", " ", text[: limit * 20])
    return " ".join(text.split())[:limit]


class StreamTimer:
    """Turns SSE lines and their arrival times into vllm-bench timings; pure, so tests feed it timelines."""

    __slots__ = (
        "start",
        "first",
        "last",
        "itl",
        "parts",
        "done",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "logprobs",
        "error",
        "request_id",
        "events",
        "stray",
    )

    def __init__(self, start: float, want_logprobs: bool = False) -> None:
        self.start = start
        self.first: float | None = None
        self.last = start
        self.itl: list[float] = []
        self.parts: list[str] = []
        self.done = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.logprobs: list[dict[str, float]] | None = [] if want_logprobs else None
        self.error: str | None = None
        self.request_id: str | None = None
        self.events = 0  # `data:` lines seen
        self.stray: bytes | None = None  # the first line that is not SSE at all (an HTML page, plain JSON)

    def feed(self, line: bytes, now: float) -> None:
        """Consume one SSE line (`data: {...}`, `data: [DONE]`; comments, events and blanks are ignored).

        Raises ChunkError (a ValueError) for a data line that is not a well-formed chunk."""
        if self.done:
            return
        if not line.startswith(b"data:"):
            if self.stray is None and not line.startswith(_SSE_FIELDS):
                self.stray = line[:120]
            return
        self.events += 1
        payload = line[6:] if line[5:6] == b" " else line[5:]
        if payload == _DONE:
            self.done = True
            return
        try:
            data = json.loads(payload)
        except RecursionError:
            raise ChunkError("JSON nested too deeply to read") from None
        if not isinstance(data, dict):
            raise ChunkError(f"a chunk is a JSON object, got {_kind(data)}")
        if "error" in data or data.get("object") == "error":
            self.error = "stream error: " + error_message(json.dumps(data).encode())
            return
        request_id = _expect(data.get("id"), str, "chunk id")
        if self.request_id is None:
            self.request_id = request_id
        choices = _expect(data.get("choices"), list, "choices")
        if choices:
            self._choice(_expect(choices[0], dict, "choices[0]", optional=False), now)
        usage = _expect(data.get("usage"), dict, "usage")
        if usage:
            prompt, completion = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
            self.prompt_tokens = self.prompt_tokens if prompt is None else prompt
            self.completion_tokens = self.completion_tokens if completion is None else completion

    def _choice(self, c0: dict[str, Any], now: float) -> None:
        delta = _expect(c0.get("delta"), dict, "choices[0].delta")
        if delta is None:
            text = _expect(c0.get("text"), str, "choices[0].text")
        else:
            text = _expect(delta.get("content"), str, "choices[0].delta.content")
        if text:
            if self.first is None:
                self.first = now
            else:
                self.itl.append(now - self.last)
            self.last = now
            self.parts.append(text)
        finish = _expect(c0.get("finish_reason"), str, "choices[0].finish_reason")
        if finish:
            self.finish_reason = finish
        if self.logprobs is not None and c0.get("logprobs"):
            self.logprobs.extend(_top_logprobs(_expect(c0["logprobs"], dict, "choices[0].logprobs")))

    def fill(self, row: RequestResult) -> None:
        """Write timings and text into `row`; success requires [DONE] after at least one text chunk."""
        row.output_text = "".join(self.parts)
        row.prompt_tokens = self.prompt_tokens
        row.finish_reason = self.finish_reason
        row.top_logprobs = self.logprobs
        row.output_tokens = self.completion_tokens
        row.request_id = self.request_id
        if self.first is None:
            return
        row.ttft_s = self.first - self.start
        row.e2e_s = self.last - self.start
        row.itl_s = self.itl
        if row.output_tokens is None:  # no usage chunk: fall back to counting text chunks
            row.output_tokens = len(self.parts)
        row.tpot_s = tpot(row.e2e_s, row.ttft_s, row.output_tokens)
        if self.itl:
            ordered = sorted(self.itl)
            row.itl_mean_s = sum(ordered) / len(ordered)
            row.itl_p50_s = percentile(ordered, 50)
            row.itl_p95_s = percentile(ordered, 95)

    def incomplete_reason(self) -> str:
        """Why a body that ended cleanly is still not a result."""
        if self.events == 0 and self.stray is not None:
            return f"not an event stream: the 200 response began {self.stray.decode('utf-8', 'replace')[:80]!r}"
        return f"stream ended without [DONE] after {len(self.parts)} content chunks"


async def read_lines(
    chunks: AsyncIterator[bytes],
    feed: Callable[[bytes, float], None],
    clock: Callable[[], float],
    max_line_bytes: int = MAX_LINE_BYTES,
) -> None:
    """Split a body into lines as bytes and stamp each network read once (as vllm bench does).

    Linear in the body: a line spread over many reads is joined once, when its end arrives (re-joining the
    partial line on every read cost quadratic time: 30 MB took 20 s). json.loads reads bytes directly."""
    pending: list[bytes] = []
    pending_len = 0
    async for data in chunks:
        now = clock()
        if b"\n" not in data:
            pending.append(data)
            pending_len += len(data)
            if pending_len > max_line_bytes:
                raise LineTooLong(f"an SSE line is longer than {max_line_bytes // (1024 * 1024)} MiB")
            continue
        if pending:
            pending.append(data)
            data = b"".join(pending)
            pending.clear()
        lines = data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            if len(line) > max_line_bytes:
                raise LineTooLong(f"an SSE line is longer than {max_line_bytes // (1024 * 1024)} MiB")
            if line and line[-1] == 13:  # CRLF line endings: drop the "\r"
                line = line[:-1]
            if line:
                feed(line, now)
        pending_len = len(rest)
        if rest:
            pending.append(rest)
    if pending:
        feed(b"".join(pending), clock())


async def read_capped(chunks: AsyncIterator[bytes], limit: int = MAX_ERROR_BODY_BYTES) -> bytes:
    """At most `limit` bytes of a body (an error page can be any size; its first kilobytes say enough)."""
    out = bytearray()
    async for data in chunks:
        out += data[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


def _top_logprobs(lp: Mapping[str, Any]) -> list[dict[str, float]]:
    try:
        if "content" in lp:  # chat: [{token, logprob, top_logprobs: [{token, logprob}]}]
            return [
                {t["token"]: float(t["logprob"]) for t in e.get("top_logprobs") or ()}
                or {e["token"]: float(e["logprob"])}
                for e in lp["content"] or ()
            ]
        return [{str(k): float(v) for k, v in d.items()} for d in lp.get("top_logprobs") or ()]  # completions
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise ChunkError(f"choices[0].logprobs is not in the OpenAI shape ({type(exc).__name__}: {exc})") from None
