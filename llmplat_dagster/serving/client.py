"""Streamed OpenAI-compatible requests timed the way `vllm bench serve` times them (see serving/stream.py).

Every response becomes a row: `ok` with validated values, or `error` with the reason. One deadline
(`timeout_s`) bounds a request from its first send to its last byte, retries and Retry-After waits included:
a server that asks to come back after the deadline gets an error row at once, not a wait.
Clock, wall clock, sleep and randomness are injected so retry and timing logic is tested without waiting.
"""

from __future__ import annotations

import asyncio
import json
import random as _random
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmplat_dagster.retry_after import parse_retry_after
from llmplat_dagster.serving.results import OK, RequestResult
from llmplat_dagster.serving.stream import (  # noqa: F401 - StreamTimer and error_message are part of this API
    LineTooLong,
    StreamTimer,
    error_message,
    read_capped,
    read_lines,
)

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class ServingRequest:
    """One prompt to send: chat when `messages` is set, legacy completions when `prompt` is."""

    prompt_id: str
    messages: Sequence[Mapping[str, Any]] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    top_logprobs: int | None = None
    model: str | None = None  # overrides the client's model, e.g. a LoRA adapter name
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def chat(cls, prompt_id: str, text: str, **kwargs: Any) -> ServingRequest:
        return cls(prompt_id=prompt_id, messages=({"role": "user", "content": text},), **kwargs)

    def payload(self, default_model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model or default_model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.messages is not None:
            body["messages"] = list(self.messages)
            if self.top_logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = self.top_logprobs
        elif self.prompt is not None:
            body["prompt"] = self.prompt
            if self.top_logprobs:
                body["logprobs"] = self.top_logprobs
        else:
            raise ValueError(f"request {self.prompt_id!r} has neither messages nor prompt")
        if self.seed is not None:
            body["seed"] = self.seed
        body.update(self.extra_body)
        return body

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.messages is not None else "/v1/completions"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff with jitter on connect errors, 429 and 503 (Retry-After wins when sent); never on other 4xx."""

    max_attempts: int = 4
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    jitter: float = 0.25  # the delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]
    max_retry_after_s: float = 60.0

    def next_delay(
        self,
        attempt: int,
        *,
        status: int | None = None,
        connect_error: bool = False,
        retry_after_s: float | None = None,
        rand: float = 0.5,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when this outcome must not be retried."""
        if attempt >= self.max_attempts:
            return None
        if not connect_error and status not in RETRY_STATUSES:
            return None
        if retry_after_s is not None:  # the server said when to come back (429, or 503 while loading)
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return backoff * (1.0 + self.jitter * (2.0 * rand - 1.0))


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    ok: int
    errors: int
    total: int
    elapsed_s: float

    @property
    def requests_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


class ServingClient:
    """Streams requests over `concurrency` connections, one httpx.AsyncClient "lane" per connection.

    One shared pool of N connections would do, but httpcore 1.0's pool rescans every connection (and
    polls every socket) several times per request, O(N^2) in the idle checks: at N=50 that costs ~5 ms
    of CPU per request and delays the event loop that takes the timestamps. A lane holds one connection,
    so the same N connections cost O(1) per request.

    `timeout_s` bounds each attempt (send to [DONE]); `transport` is for tests (httpx.MockTransport) and is
    shared by every lane; `clock`, `wall_clock`, `sleep` and `rand` are injectable for the same reason.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        variant: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retry: RetryPolicy = RetryPolicy(),
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = _random.random,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.model = model
        self.variant = variant or model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry
        self._clock, self._wall, self._sleep, self._rand = clock, wall_clock, sleep, rand
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        ssl_context = httpx.create_ssl_context()  # built once: loading CA certs per lane is slow
        self._lanes = [
            httpx.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers=headers,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
                transport=transport,
                verify=ssl_context,
            )
            for _ in range(concurrency)
        ]
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for lane in self._lanes:
            self._free.put_nowait(lane)

    async def __aenter__(self) -> ServingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def send(
        self, request: ServingRequest, *, scheduled: float | None = None, t0: float | None = None
    ) -> RequestResult:
        """Send one streamed request (retrying as the policy allows) and return its row; never raises for
        server or network failures, which become rows with status "error". Waits for a free connection;
        that wait is dispatch delay, not latency."""
        lane = await self._free.get()
        try:
            return await self._send(lane, request, scheduled, t0)
        finally:
            self._free.put_nowait(lane)

    async def _send(
        self, lane: httpx.AsyncClient, request: ServingRequest, scheduled: float | None, t0: float | None
    ) -> RequestResult:
        row = RequestResult(prompt_id=request.prompt_id, variant=self.variant)
        body = json.dumps(request.payload(self.model)).encode()
        want_lp = bool(request.top_logprobs)
        started = self._clock()
        deadline = started + self.timeout_s
        t0 = started if t0 is None else t0
        row.started_unix = self._wall()
        row.started_s = started - t0
        row.scheduled_s = (started if scheduled is None else scheduled) - t0
        row.dispatch_delay_s = row.started_s - row.scheduled_s
        attempt, budget = 0, self.timeout_s
        while True:
            attempt += 1
            row.attempts = attempt
            outcome = await self._attempt(lane, request.path, body, want_lp, row, budget)
            if outcome is None:
                return row
            status, retry_after, connect_error = outcome
            delay = self.retry.next_delay(
                attempt,
                status=status,
                connect_error=connect_error,
                retry_after_s=retry_after,
                rand=self._rand(),
            )
            budget = deadline - self._clock() - (delay or 0.0)
            if delay is None or budget <= 0:
                if connect_error:  # refused or reset before any response: say which
                    plural = "s" if attempt > 1 else ""
                    refused = row.error.startswith(("ConnectError", "ConnectTimeout"))
                    what = "connect error" if refused else "no response"
                    row.error = f"{what} after {attempt} attempt{plural}: {row.error}"
                elif attempt > 1:
                    row.error = f"{row.error} (gave up after {attempt} attempts)"
                if delay is not None:  # a retry was allowed, but not within this request's deadline
                    asked = f"Retry-After {retry_after:g} s" if retry_after is not None else f"a {delay:.1f} s backoff"
                    row.error = f"{row.error}; not retried: {asked} ends past the {self.timeout_s:g} s request deadline"
                return row
            await self._sleep(delay)

    async def _attempt(
        self, lane: httpx.AsyncClient, path: str, body: bytes, want_lp: bool, row: RequestResult, budget: float
    ) -> tuple[int | None, float | None, bool] | None:
        """One try within `budget` seconds. Returns None when finished (ok or final error) or
        (status, retry_after, connect_error) when the outcome may be retried; `row` holds the error text.
        Never raises for anything the server sends: a broken response is this row's error, not the run's."""
        row.status, row.error, row.http_status = "error", None, None
        clock = self._clock
        timer: StreamTimer | None = None
        response: httpx.Response | None = None
        request = lane.build_request("POST", path, content=body)  # before the clock: not sending yet
        try:
            async with asyncio.timeout(budget):
                timer = StreamTimer(clock(), want_lp)
                response = await lane.send(request, stream=True)
                row.http_status = response.status_code
                if response.status_code != 200:
                    try:
                        message = error_message(await read_capped(response.aiter_bytes()))
                    except httpx.HTTPError as exc:  # e.g. a gzip body that does not decompress
                        message = f"(unreadable body: {type(exc).__name__}: {exc})"
                    row.error = f"HTTP {response.status_code}: {message}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"), self._wall())
                    return response.status_code, retry_after, False
                await read_lines(response.aiter_bytes(), timer.feed, clock)
        except TimeoutError:
            row.error = f"timeout: no complete response within {self.timeout_s:g} s"
            return None
        except httpx.ConnectTimeout as exc:
            row.error = f"{type(exc).__name__}: {exc}"
            return None, None, True
        except httpx.TimeoutException as exc:
            row.error = f"timeout: {type(exc).__name__} after {self.timeout_s:g} s"
            return None
        except httpx.TransportError as exc:
            if response is None:  # nothing received: the request never reached a live server
                row.error = f"{type(exc).__name__}: {exc}"
                return None, None, True
            row.error = (
                f"stream ended without [DONE]: connection lost after {len(timer.parts) if timer else 0} "
                f"content chunks ({type(exc).__name__}: {exc})"
            )
            return None
        except httpx.DecodingError as exc:  # Content-Encoding the body does not match (bad gzip)
            row.error = f"undecodable response body: {exc}"
            return None
        except LineTooLong as exc:
            row.error = f"response refused: {exc}"
            return None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:  # a data line that is not a chunk
            row.error = f"malformed stream chunk: {exc}"
            return None
        except Exception as exc:  # noqa: BLE001 - whatever else a response does, it costs one row, not the run
            row.error = f"unreadable response: {type(exc).__name__}: {exc}"
            return None
        finally:
            if response is not None:
                await response.aclose()
        timer.fill(row)
        if timer.error:
            row.error = timer.error
        elif not timer.done:
            row.error = timer.incomplete_reason()
        elif timer.first is None:
            row.error = "stream finished with no content chunk (nothing to time)"
        else:
            row.status = OK
        return None

    async def run(
        self,
        requests: Iterable[ServingRequest],
        *,
        concurrency: int | None = None,
        request_rate: float | None = None,
        poisson: bool = True,
        seed: int = 0,
        skip_ids: Collection[str] = (),
        on_result: Callable[[RequestResult], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval_s: float = 5.0,
    ) -> list[RequestResult]:
        """Send `requests` with at most `concurrency` in flight, optionally arriving at `request_rate`/s
        (Poisson or evenly spaced); rows come back in input order, skipping ids in `skip_ids` (resume).

        `on_result` sees each row as it finishes (persist it there); `on_progress` every few seconds."""
        concurrency = concurrency or self.concurrency
        if concurrency > self.concurrency:
            raise ValueError(
                f"concurrency {concurrency} exceeds the connection pool ({self.concurrency}); waits for a "
                "free connection would be timed as latency"
            )
        todo = [r for r in requests if r.prompt_id not in skip_ids]
        offsets = arrival_offsets(len(todo), request_rate, poisson=poisson, seed=seed)
        results: list[RequestResult | None] = [None] * len(todo)
        counts = [0, 0]  # ok, error
        queue = iter(enumerate(todo))
        clock = self._clock
        t0 = clock()

        async def worker() -> None:
            lane = await self._free.get()
            try:
                await work(lane)
            finally:
                self._free.put_nowait(lane)

        async def work(lane: httpx.AsyncClient) -> None:
            free_at = clock()
            for i, req in queue:
                if offsets is not None:
                    free_at = t0 + offsets[i]
                    wait = free_at - clock()
                    if wait > 0:
                        await self._sleep(wait)
                row = await self._send(lane, req, free_at, t0)
                results[i] = row
                counts[row.status != OK] += 1
                if on_result is not None:
                    on_result(row)
                free_at = clock()

        def report() -> None:
            if on_progress is not None:
                on_progress(Progress(sum(counts), counts[0], counts[1], len(todo), clock() - t0))

        async def ticker() -> None:  # real sleep: an injected no-op sleep would spin here
            while True:
                await asyncio.sleep(progress_interval_s)
                report()

        try:
            async with asyncio.TaskGroup() as tg:
                tick = tg.create_task(ticker()) if on_progress is not None else None
                workers = [tg.create_task(worker()) for _ in range(min(concurrency, len(todo)))]
                await asyncio.gather(*workers)
                if tick is not None:
                    tick.cancel()
        except ExceptionGroup as group:  # e.g. on_result could not persist: surface the first cause
            raise group.exceptions[0] from group
        report()
        return [r for r in results if r is not None]


def arrival_offsets(n: int, request_rate: float | None, *, poisson: bool = True, seed: int = 0) -> list[float] | None:
    """Scheduled send times (seconds from the run's start) for a request rate; None means as fast as
    the concurrency allows. Poisson arrivals like vllm bench serve's default, or evenly spaced."""
    if request_rate is None or request_rate == float("inf"):
        return None
    if request_rate <= 0:
        raise ValueError("request_rate must be > 0")
    rng = _random.Random(seed)
    offsets, t = [], 0.0
    for _ in range(n):
        offsets.append(t)
        t += rng.expovariate(request_rate) if poisson else 1.0 / request_rate
    return offsets


async def run_requests(
    base_url: str,
    model: str,
    requests: Iterable[ServingRequest],
    *,
    concurrency: int,
    variant: str | None = None,
    request_rate: float | None = None,
    skip_ids: Collection[str] = (),
    on_result: Callable[[RequestResult], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = 5.0,
    timeout_s: float = 120.0,
    retry: RetryPolicy = RetryPolicy(),
    api_key: str | None = None,
) -> list[RequestResult]:
    """Open a client sized to `concurrency`, run every request, close it; see ServingClient.run."""
    async with ServingClient(
        base_url,
        model,
        variant=variant,
        concurrency=concurrency,
        timeout_s=timeout_s,
        retry=retry,
        api_key=api_key,
    ) as client:
        return await client.run(
            requests,
            request_rate=request_rate,
            skip_ids=skip_ids,
            on_result=on_result,
            on_progress=on_progress,
            progress_interval_s=progress_interval_s,
        )


def run_promptset(
    base_url: str, model: str, requests: Iterable[ServingRequest], *, concurrency: int, **kwargs: Any
) -> list[RequestResult]:
    """Synchronous `run_requests` for callers without an event loop (Dagster assets)."""
    return asyncio.run(run_requests(base_url, model, requests, concurrency=concurrency, **kwargs))
