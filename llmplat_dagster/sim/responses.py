"""Response bodies: whole JSON for plain requests, SSE chunks for streamed ones, and the two ways a
simulated disconnect breaks a response."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from llmplat_dagster.sim.generation import ChoiceState
from llmplat_dagster.sim.protocol import GenParams, chat_logprobs, completion_logprobs, envelope, usage


class SimulatedDisconnect(Exception):
    """Raised inside a stream to make the server drop the connection without ``[DONE]``."""


def _logprobs(params: GenParams, tokens, offset: int = 0):
    if params.logprobs is None:
        return None
    if params.kind == "chat":
        return chat_logprobs(tokens, params.logprobs)
    return completion_logprobs(tokens, params.logprobs, offset)


def body_json(params: GenParams, rid: str, choices: list[ChoiceState]) -> bytes:
    out = envelope(params.kind, rid, params.model)
    items = []
    for ch in choices:
        item: dict = {
            "index": ch.index,
            "logprobs": _logprobs(params, ch.emitted),
            "finish_reason": ch.finish,
        }
        if params.kind == "chat":
            item["message"] = {"role": "assistant", "content": ch.text, "tool_calls": []}
        else:
            item["text"] = ch.text
        items.append(item)
    out["choices"] = items
    out["usage"] = usage(params.prompt_tokens, sum(len(ch.emitted) for ch in choices))
    return json.dumps(out).encode()


def _event(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"


async def sse_events(
    params: GenParams,
    rid: str,
    choices: list[ChoiceState],
    steps: AsyncIterator,
    disconnect_after: int | None,
) -> AsyncIterator[str]:
    """vLLM's chunk sequence: role chunk, one chunk per token per choice (the last one carries
    finish_reason), an optional usage chunk with empty choices, then ``[DONE]``."""
    created = int(time.time())
    chat = params.kind == "chat"
    sent = 0
    offsets = [0] * len(choices)
    async for i, pieces in steps:
        for ch, piece in zip(choices, pieces, strict=True):
            if piece is None:
                continue
            base = envelope(params.kind, rid, params.model, created, chunk=True)
            if chat and i == 0:
                role = {
                    "index": ch.index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
                yield _event({**base, "choices": [role]})
            tok = ch.emitted[-1:]
            lp = _logprobs(params, tok, offsets[ch.index])
            offsets[ch.index] += len(piece)
            item: dict = {"index": ch.index, "logprobs": lp, "finish_reason": ch.finish}
            if chat:
                item["delta"] = {"content": piece}
            else:
                item["text"] = piece
            yield _event({**base, "choices": [item]})
            sent += 1
            if disconnect_after is not None and sent >= disconnect_after:
                raise SimulatedDisconnect(f"simulated disconnect after {sent} chunks of {rid}")
    if params.include_usage:
        base = envelope(params.kind, rid, params.model, created, chunk=True)
        yield _event(
            {
                **base,
                "choices": [],
                "usage": usage(params.prompt_tokens, sum(len(ch.emitted) for ch in choices)),
            }
        )
    yield "data: [DONE]\n\n"


class DisconnectAfterBody:
    """A plain response that announces its full length, sends half and returns: the server closes the
    connection and the client sees an incomplete body."""

    def __init__(self, payload: bytes, headers: dict[str, str]) -> None:
        self.payload, self.headers = payload, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.payload)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.payload[: len(self.payload) // 2], "more_body": True})
        raise SimulatedDisconnect("simulated disconnect mid-body")
