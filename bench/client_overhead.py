"""Client overhead: the serving client vs a bare asyncio + httpx loop, same server, same load.

    .venv/bin/python bench/client_overhead.py                 # N=2000, C=50 against the simulator
    .venv/bin/python bench/client_overhead.py -n 500 -c 20 --server minimal --max-tokens 8

The server runs in a subprocess (the simulator at --sim-time-scale 0, i.e. no simulated latency, or a
minimal SSE server) so the client's CPU time (time.process_time of this process) is the client's alone.
Prints requests/s and client CPU seconds per 1000 requests for each, and the ratio; target >= 0.8x.
A benchmark only prints: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from llmplat_dagster.serving.client import ServingClient, ServingRequest

MODEL = "bench-model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _minimal_app(max_tokens_default: int):
    """An SSE server that does nearly nothing: the floor under any client."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        n = int(body.get("max_tokens") or max_tokens_default)

        def event(obj: dict) -> str:
            return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"

        def chunk(delta: dict) -> str:
            return event(
                {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "model": MODEL,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
            )

        async def events():
            yield chunk({"role": "assistant", "content": ""})
            for i in range(n):
                yield chunk({"content": f"t{i} "})
            yield event({"id": "x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": n}})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def _serve_minimal(port: int) -> None:
    import uvicorn

    uvicorn.run(_minimal_app(16), host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server(kind: str, max_num_seqs: int) -> Iterator[str]:
    port = _free_port()
    if kind == "sim":
        cmd = [
            sys.executable,
            "-m",
            "llmplat_dagster.sim",
            "serve",
            "--model",
            MODEL,
            "--port",
            str(port),
            "--sim-time-scale",
            "0",
            "--max-num-seqs",
            str(max_num_seqs),
            "--max-model-len",
            "4096",
        ]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve-minimal", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(base + "/v1/chat/completions", json=_payload("warm", 1), timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _payload(prompt: str, max_tokens: int) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _prompts(n: int) -> list[str]:
    return [f"Explain item {i} of the benchmark in a few words." for i in range(n)]


async def run_bare(base: str, n: int, c: int, max_tokens: int) -> int:
    """The textbook loop: C workers, one shared pooled httpx.AsyncClient, read every line."""
    bodies = [json.dumps(_payload(p, max_tokens)).encode() for p in _prompts(n)]
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        counts = await asyncio.gather(*(_bare_worker(client, bodies_it) for bodies_it in [iter(bodies)] * c))
    return sum(counts)


async def run_bare_lanes(base: str, n: int, c: int, max_tokens: int) -> int:
    """The same loop with one single-connection httpx.AsyncClient per worker (no shared-pool scans)."""
    bodies = iter([json.dumps(_payload(p, max_tokens)).encode() for p in _prompts(n)])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    ssl_context = httpx.create_ssl_context()  # once, not per client (it loads the CA bundle)
    clients = [httpx.AsyncClient(base_url=base, limits=limits, timeout=60, verify=ssl_context) for _ in range(c)]
    try:
        counts = await asyncio.gather(*(_bare_worker(client, bodies) for client in clients))
    finally:
        for client in clients:
            await client.aclose()
    return sum(counts)


async def _bare_worker(client: httpx.AsyncClient, bodies: Iterator[bytes]) -> int:
    done = 0
    headers = {"content-type": "application/json"}
    for body in bodies:
        async with client.stream("POST", "/v1/chat/completions", content=body, headers=headers) as r:
            async for line in r.aiter_lines():
                if line == "data: [DONE]":
                    done += 1
    return done


async def run_client(base: str, n: int, c: int, max_tokens: int) -> int:
    requests = [ServingRequest.chat(f"p{i}", p, max_tokens=max_tokens) for i, p in enumerate(_prompts(n))]
    async with ServingClient(base, MODEL, concurrency=c, timeout_s=60) as client:
        rows = await client.run(requests)
    return sum(r.ok for r in rows)


def measure(fn, base: str, n: int, c: int, max_tokens: int) -> tuple[float, float, int]:
    """(requests/s, client CPU s per 1000 requests, completed) for one run."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    completed = asyncio.run(fn(base, n, c, max_tokens))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return completed / wall, cpu / n * 1000, completed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--requests", type=int, default=2000)
    ap.add_argument("-c", "--concurrency", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=16, help="tokens (SSE chunks) per response")
    ap.add_argument("--server", choices=["sim", "minimal"], default="sim")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best is kept")
    ap.add_argument("--serve-minimal", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_minimal:
        _serve_minimal(args.serve_minimal)
        return 0
    n, c, mt = args.requests, args.concurrency, args.max_tokens
    print(f"server={args.server} (subprocess)  N={n}  C={c}  max_tokens={mt}  repeats={args.repeats}")
    runners = {"bare": run_bare, "bare-lanes": run_bare_lanes, "client": run_client}
    results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in runners}
    with server(args.server, max_num_seqs=max(256, c)) as base:
        for fn in runners.values():  # warm both sides (imports, caches, connections)
            measure(fn, base, min(n, 200), c, mt)
        for _ in range(args.repeats):
            for name, fn in runners.items():
                results[name].append(measure(fn, base, n, c, mt))
                rps, cpu, ok = results[name][-1]
                print(f"  {name:10s} {rps:8.1f} req/s  {cpu:6.3f} CPU s/1000 req  ({ok}/{n} ok)")
    best = {k: max(r[0] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    labels = {
        "bare": "bare loop (shared pool)",
        "bare-lanes": "bare loop (client per connection)",
        "client": "serving client",
    }
    for k, label in labels.items():
        print(f"{label:34s}: {best[k]:8.1f} req/s  {cpu[k]:6.3f} CPU s/1000 req")
    for k in ("bare", "bare-lanes"):
        ratio = best["client"] / best[k]
        verdict = "meets" if ratio >= 0.8 else "MISSES"
        print(
            f"ratio client / {labels[k]}: {ratio:.2f}x request rate ({verdict} the >= 0.8x target), "
            f"{cpu['client'] / cpu[k]:.2f}x CPU per request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
