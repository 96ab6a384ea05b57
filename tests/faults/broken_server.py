"""A deliberately broken OpenAI-compatible server: raw HTTP/1.1 on an asyncio socket, so it can send what no
framework would (bodies shorter than their Content-Length, bad gzip, resets, 30 MB lines, wrong types).

Each chat request names its fault in its last message (``fault:<name>``); ``FAULTS`` says what the server
does for each and what the client must make of it. ``/v1/models``, ``/metrics`` and non-fault chats answer
according to ``probe_mode``, for the golden checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

Send = Callable[[asyncio.StreamWriter], Awaitable[None]]
OK_TEXT = "Hello there, friend"
MODEL = "broken-model"


def chunk(content=None, *, finish=None, **extra) -> dict:
    delta = {} if content is None else {"content": content}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
            "finish_reason": finish}], **extra}  # fmt: skip


def usage(prompt=5, completion=3) -> dict:
    return {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def sse(*events, done=True) -> bytes:
    lines = [b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


GOOD = sse(chunk("Hello"), chunk(" there,"), chunk(" friend", finish="stop"), usage(5, 3))


def head(status: int = 200, ctype: str = "text/event-stream", length: int | None = None, **headers) -> bytes:
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
              503: "Service Unavailable"}.get(status, "X")  # fmt: skip
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {ctype}", "connection: close"]
    if length is not None:
        lines.append(f"content-length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reply(body: bytes, status: int = 200, ctype: str = "text/event-stream", **headers) -> Send:
    async def send(w: asyncio.StreamWriter) -> None:
        w.write(head(status, ctype, len(body), **headers) + body)
        await w.drain()

    return send


def streamed(body: bytes, piece: int = 64 * 1024, status: int = 200) -> Send:
    """Close-delimited body in `piece`-sized writes (a long line arrives over many reads)."""

    async def send(w: asyncio.StreamWriter) -> None:
        w.write(head(status))
        for i in range(0, len(body), piece):
            w.write(body[i : i + piece])
            await w.drain()

    return send


def truncated(body: bytes, keep: int) -> Send:
    async def send(w: asyncio.StreamWriter) -> None:
        w.write(head(200, length=len(body)) + body[:keep])
        await w.drain()

    return send


def reset(after: bytes = b"") -> Send:
    async def send(w: asyncio.StreamWriter) -> None:
        if after:
            w.write(after)
            await w.drain()
            await asyncio.sleep(0.05)
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    return send


def stall(before: bytes = b"") -> Send:
    async def send(w: asyncio.StreamWriter) -> None:
        w.write(head(200) + before)
        await w.drain()
        await asyncio.sleep(3600)

    return send


@dataclass(frozen=True)
class Fault:
    """What the server does, and what the row must say: `ok` (with GOOD's values) or an error fragment."""

    send: Send
    expect: str  # "ok", or a fragment of the row's error
    then: Send | None = None  # a second answer for a retried request
    text: str = OK_TEXT  # the output text of an ok row


def _deep(n: int = 100_000) -> bytes:
    return b'{"choices":' + b"[" * n + b"]" * n + b"}"


BIG = 30 * 1024 * 1024
FAULTS: dict[str, Fault] = {
    # healthy variants that must be ok
    "good": Fault(reply(GOOD), "ok"),
    "good-gzip": Fault(reply(gzip.compress(GOOD), content_encoding="gzip"), "ok"),
    "good-crlf": Fault(reply(GOOD.replace(b"\n", b"\r\n")), "ok"),
    "good-comments": Fault(reply(b": keep-alive\n\nevent: message\n" + GOOD), "ok"),
    "good-close-delimited": Fault(streamed(GOOD, piece=7), "ok"),
    "good-after-503": Fault(
        reply(b'{"error":{"message":"loading"}}', 503, "application/json", retry_after="0"), "ok", then=reply(GOOD)
    ),  # fmt: skip
    "good-big-line": Fault(
        streamed(sse(chunk("x" * 4_000_000), chunk(" y", finish="stop"), usage(5, 3))),
        "ok",
        text="x" * 4_000_000 + " y",
    ),  # fmt: skip
    # malformed chunks
    "not-json": Fault(reply(sse(b"{not json")), "malformed stream chunk"),
    "cut-json": Fault(reply(sse(b'{"choices": [{"delta": {"content": "a')), "malformed stream chunk"),
    "bad-utf8": Fault(reply(sse(b'{"choices": [{"delta": {"content": "\xff\xfe"}}]}')), "malformed stream chunk"),
    "json-list-chunk": Fault(reply(sse(b"[1, 2]")), "a chunk is a JSON object, got list"),
    "deep-nesting": Fault(reply(sse(_deep())), "nested too deeply"),
    # wrong types
    "content-int": Fault(reply(sse(chunk(5))), "choices[0].delta.content is int"),
    "content-list": Fault(reply(sse(chunk(["a"]))), "choices[0].delta.content is list"),
    "tokens-string": Fault(
        reply(sse(chunk("a"), {"choices": [], "usage": {"completion_tokens": "3"}})), "usage.completion_tokens is str"
    ),  # fmt: skip
    "tokens-negative": Fault(reply(sse(chunk("a"), usage(5, -3))), "usage.completion_tokens is negative"),
    "prompt-tokens-negative": Fault(reply(sse(chunk("a"), usage(-1, 1))), "usage.prompt_tokens is negative"),
    "tokens-bool": Fault(reply(sse(chunk("a"), usage(5, True))), "usage.completion_tokens is a bool"),
    "id-int": Fault(reply(sse({**chunk("a"), "id": 12345})), "chunk id is int"),
    "finish-object": Fault(reply(sse(chunk("a", finish={"type": "stop"}))), "finish_reason is dict"),
    "choices-object": Fault(reply(sse({"choices": {"0": {"delta": {"content": "a"}}}})), "choices is dict"),
    "delta-string": Fault(reply(sse({"choices": [{"delta": "a"}]})), "choices[0].delta is str"),
    "usage-list": Fault(reply(sse(chunk("a"), {"choices": [], "usage": [1, 2]})), "usage is list"),
    # bodies and framing
    "truncated": Fault(truncated(GOOD, keep=90), "stream ended without [DONE]: connection lost"),
    "no-done": Fault(reply(sse(chunk("a"), done=False)), "stream ended without [DONE] after 1 content chunks"),
    "empty-200": Fault(reply(b""), "stream ended without [DONE] after 0 content chunks"),
    "done-only": Fault(reply(sse()), "no content chunk"),
    "gzip-bad-200": Fault(reply(b"this is not gzip", content_encoding="gzip"), "undecodable response body"),
    "gzip-bad-500": Fault(reply(b"this is not gzip", 500, content_encoding="gzip"), "HTTP 500: (unreadable body"),
    "huge-line": Fault(streamed(b"data: " + b"x" * BIG + b"\n\n"), "longer than 16 MiB"),
    "html-200": Fault(
        reply(b"<html><body><h1>Welcome to nginx!</h1></body></html>", ctype="text/html"),
        "not an event stream: the 200 response began '<html>",
    ),  # fmt: skip
    "json-200": Fault(
        reply(b'{"choices": [{"message": {"content": "hi"}}]}', ctype="application/json"), "not an event stream"
    ),  # fmt: skip
    "json-list-200": Fault(reply(b"[1, 2, 3]", ctype="application/json"), "not an event stream"),
    "html-502": Fault(
        reply(b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", 502, "text/html"),
        "HTTP 502: 502 Bad Gateway",
    ),  # fmt: skip
    "deep-error-500": Fault(reply(_deep(50_000), 500, "application/json"), 'HTTP 500: {"choices"'),
    "stream-error": Fault(reply(sse(chunk("a"), {"error": {"message": "engine died"}})), "stream error: engine died"),
    # network
    "reset-before": Fault(reset(), "no response after"),
    "reset-mid-stream": Fault(reset(head(200) + sse(chunk("a"), done=False)), "connection lost after 1 content"),
    "stall-headers": Fault(stall(), "timeout: no complete response"),
    "stall-mid-stream": Fault(stall(sse(chunk("a"), done=False)), "timeout: no complete response"),
    "retry-after-3600": Fault(
        reply(b'{"error":{"message":"slow down"}}', 429, "application/json", retry_after="3600"),
        "Retry-After 3600 s ends past the",
    ),  # fmt: skip
    "retry-after-date": Fault(
        reply(b"busy", 503, "text/plain", retry_after="Fri, 01 Jan 2100 00:00:00 GMT"), "ends past the"
    ),  # fmt: skip
}


@dataclass
class BrokenServer:
    """The running server; `probe_mode` picks how /v1/models, /metrics and plain chats answer."""

    base_url: str = ""
    probe_mode: str = "ok"
    served: list[str] = field(default_factory=lambda: [MODEL])
    seen: Counter = field(default_factory=Counter)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = raw.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            await self.route(method, path, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client gave up, or the server is stopping
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def route(self, method: str, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        if path == "/v1/models":
            return await self.models(w)
        if path == "/metrics":
            return await self.metrics(w)
        if path == "/version":
            return await reply(b'{"version": "broken-server"}', ctype="application/json")(w)
        payload = json.loads(body or b"{}")
        text = (payload.get("messages") or [{}])[-1].get("content", "")
        name = text.removeprefix("fault:") if text.startswith("fault:") else None
        if name is None:
            return await self.chat(w)
        self.seen[name] += 1
        fault = FAULTS[name]
        send = fault.then if fault.then is not None and self.seen[name] > 1 else fault.send
        await send(w)

    async def models(self, w: asyncio.StreamWriter) -> None:
        listing = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in self.served]})
        shapes = {
            "json-list": b'["broken-model"]',
            "data-not-list": b'{"data": "broken-model"}',
            "ids-not-strings": b'{"data": [{"id": 7}, "x"]}',
        }
        await self._answer(w, shapes, reply(listing.encode(), ctype="application/json"))

    async def chat(self, w: asyncio.StreamWriter) -> None:
        shapes = {
            "json-list": b"[1, 2, 3]",
            "data-not-list": b'{"choices": "hello"}',
            "ids-not-strings": b'{"choices": [{"message": {"content": 7}}]}',
        }
        ok = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]}
        await self._answer(w, shapes, reply(json.dumps(ok).encode(), ctype="application/json"))

    async def metrics(self, w: asyncio.StreamWriter) -> None:
        fallback = reply(b"# HELP x x\n# TYPE x gauge\nx 1\n", ctype="text/plain")
        await self._answer(w, {"json-list": b"[1, 2, 3]"}, fallback)

    async def _answer(self, w: asyncio.StreamWriter, shapes: dict[str, bytes], healthy: Send) -> None:
        """`probe_mode`'s answer: a wrong JSON shape for this route, a broken body, or the healthy one."""
        broken = {
            "html": reply(b"<html><body>Welcome to nginx!</body></html>", ctype="text/html"),
            "gzip-bad": reply(b"not gzip", ctype="application/json", content_encoding="gzip"),
            "deep": reply(_deep(50_000), ctype="application/json"),
            "reset": reset(),
            **{mode: reply(body, ctype="application/json") for mode, body in shapes.items()},
        }
        await broken.get(self.probe_mode, healthy)(w)


@contextlib.contextmanager
def start_broken_server() -> Iterator[BrokenServer]:
    """The server on an ephemeral loopback port, its event loop in a daemon thread; stopped on exit."""
    server = BrokenServer()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def main() -> None:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, limit=2**16)
        holder["srv"] = srv
        server.base_url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        started.set()
        async with srv:
            await srv.serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(_quiet(main())), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks()])
        thread.join(10)


async def _quiet(coro) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await coro
