"""The ASGI app: vLLM's OpenAI-compatible routes over the behaviour, latency and fault models.

``create_app(config)`` builds a self-contained app (own metrics registry, engine, adapters), so several
simulators can live in one process.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from llmplat_dagster.sim import __version__
from llmplat_dagster.sim.config import SimConfig
from llmplat_dagster.sim.engine import Engine, Timing
from llmplat_dagster.sim.faults import Faults
from llmplat_dagster.sim.generation import ChoiceState, plan_choices
from llmplat_dagster.sim.knowledge import Knowledge, packaged_knowledge
from llmplat_dagster.sim.latency import family, kv_capacity_tokens, latency_model
from llmplat_dagster.sim.metrics import SimMetrics
from llmplat_dagster.sim.model import Variant, reference_key
from llmplat_dagster.sim.protocol import ApiError, json_body, parse_params
from llmplat_dagster.sim.responses import DisconnectAfterBody, SimulatedDisconnect, body_json, sse_events

log = logging.getLogger("llmplat.sim")


class SimState:
    """Everything one simulated server owns; reachable as ``app.state.sim``."""

    def __init__(
        self, config: SimConfig, clock: Callable[[], float] = time.monotonic, knowledge: Knowledge | None = None
    ) -> None:
        self.config = config
        self.knowledge = packaged_knowledge() if knowledge is None else knowledge
        self.clock = clock
        self.metrics = SimMetrics(config.served_names[0], config.metrics_generation)
        self.engine = Engine(
            config.max_num_seqs, latency_model(config), self.metrics, kv_capacity_tokens(config), clock
        )
        self.faults = Faults(config)
        self.adapters: dict[str, str] = dict(config.lora_modules)
        self.ready_at = clock() + config.startup_delay_s * config.time_scale
        self.created = int(time.time())
        self.gone = False
        # Called once --sim-exit-after is reached; the CLI / start_sim point it at uvicorn's shutdown.
        self.on_exhausted: Callable[[], None] = lambda: None
        ref = config.reference_model or reference_key(config.model)
        self.base_variant = Variant(ref, config.seed, config.effective_quant_noise, family(config))

    def variant(self, adapter: str | None) -> Variant:
        """The base model, or an adapter: a model of its own (its knowledge and wording), at the base's precision."""
        if adapter is None:
            return self.base_variant
        b = self.base_variant
        return Variant(
            b.ref_key, b.seed, b.noise, f"{b.noise_key}+lora:{adapter}", adapter=adapter, drift=self.config.lora_noise
        )

    def check_ready(self) -> None:
        if self.gone:
            raise ApiError(503, "Server is shutting down (simulated preemption).")
        if self.clock() < self.ready_at:
            raise ApiError(503, "Model is still loading.", headers={"Retry-After": "1"})


def _sim(request: Request) -> SimState:
    return request.app.state.sim


async def health(request: Request) -> Response:
    sim = _sim(request)
    if sim.gone or sim.clock() < sim.ready_at:
        return Response(status_code=503)
    return Response(status_code=200)


async def version(request: Request) -> Response:
    return JSONResponse({"version": f"{__version__} (llmplat-sim)"})


async def info(request: Request) -> Response:
    """What a report must say about figures measured here: simulated, and at which time scale."""
    c = _sim(request).config
    return JSONResponse(
        {"simulator": "llmplat-sim", "version": __version__, "time_scale": c.time_scale, "seed": c.seed}
    )


async def metrics(request: Request) -> Response:
    return Response(_sim(request).metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def models(request: Request) -> Response:
    sim = _sim(request)
    sim.check_ready()
    c = sim.config

    def card(mid: str, root: str, parent: str | None) -> dict:
        return {
            "id": mid,
            "object": "model",
            "created": sim.created,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": c.max_model_len,
            "permission": [],
        }

    data = [card(name, c.model, None) for name in c.served_names]
    data += [card(name, path, c.served_names[0]) for name, path in sim.adapters.items()]
    return JSONResponse({"object": "list", "data": data})


async def load_lora(request: Request) -> Response:
    sim = _sim(request)
    body = await json_body(request)
    if not sim.config.enable_lora:
        raise ApiError(400, "LoRA is not enabled on this server; start it with --enable-lora.")
    name, path = body.get("lora_name"), body.get("lora_path")
    if not name or not path:
        raise ApiError(400, "Both 'lora_name' and 'lora_path' must be provided.", "lora_name")
    if name in sim.adapters:
        raise ApiError(400, f"The lora adapter '{name}' has already been loaded.", "lora_name")
    if len(sim.adapters) >= sim.config.max_loras:
        raise ApiError(400, f"Cannot load '{name}': --max-loras {sim.config.max_loras} adapters are loaded.")
    sim.adapters[name] = path
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


async def unload_lora(request: Request) -> Response:
    sim = _sim(request)
    body = await json_body(request)
    if not sim.config.enable_lora:
        raise ApiError(400, "LoRA is not enabled on this server; start it with --enable-lora.")
    name = body.get("lora_name")
    if name not in sim.adapters:
        raise ApiError(404, f"The lora adapter '{name}' cannot be found.", "lora_name")
    del sim.adapters[name]
    return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")


async def timings(request: Request) -> Response:
    sim = _sim(request)
    rid = request.path_params.get("request_id")
    if rid is not None:
        t = sim.engine.timings.get(rid)
        if t is None:
            raise ApiError(404, f"No timing recorded for request '{rid}'.")
        return JSONResponse(t.as_dict())
    last = int(request.query_params.get("last", "100"))
    items = list(sim.engine.timings.values())[-last:] if last > 0 else []
    return JSONResponse({"data": [t.as_dict() for t in items]})


async def chat(request: Request) -> Response:
    return await _generate(request, "chat")


async def completions(request: Request) -> Response:
    return await _generate(request, "completion")


async def _generate(request: Request, kind: str) -> Response:
    sim = _sim(request)
    arrival = sim.clock()  # before the body is read: the client's clock started even earlier
    body = await json_body(request)
    sim.check_ready()
    c = sim.config
    params = parse_params(body, kind, c.served_names[0], c.max_model_len)
    if params.model in c.served_names:
        adapter = None
    elif params.model in sim.adapters:
        adapter = params.model
    else:
        raise ApiError(404, f"The model `{params.model}` does not exist.", "model")
    fate = sim.faults.draw()
    if fate.error_status is not None:
        _maybe_exit(sim)
        headers = {"Retry-After": str(c.retry_after_s)} if fate.error_status in (429, 503) else None
        msg = {429: "Too many requests (simulated).", 503: "Service unavailable (simulated)."}
        raise ApiError(
            fate.error_status,
            msg.get(fate.error_status, "Internal server error (simulated)."),
            headers=headers,
        )
    rates = {"malformed": c.judge_malformed_rate, "fence": c.judge_fence_rate, "prose": c.judge_prose_rate}
    choices = plan_choices(params, sim.variant(adapter), sim.knowledge, c.seed, rates)
    rid = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
    timing = sim.engine.new_timing(rid, params.model, params.prompt_tokens, arrival)
    steps = sim.engine.run(timing, max(len(ch.planned) for ch in choices), params.n, adapter is not None, fate.slow_s)
    if params.stream:
        events = sse_events(params, rid, choices, _drive(sim, timing, steps, choices), fate.disconnect_after)
        return StreamingResponse(_finishing(sim, events), media_type="text/event-stream")
    async for _ in _drive(sim, timing, steps, choices):
        pass
    _maybe_exit(sim)
    payload = body_json(params, rid, choices)
    headers = {"x-sim-timing": timing.header(), "x-request-id": rid}
    if fate.disconnect_after is not None:
        return DisconnectAfterBody(payload, headers)
    return Response(payload, media_type="application/json", headers=headers)


async def _drive(sim: SimState, timing: Timing, steps: AsyncIterator[int], choices: list[ChoiceState]):
    """Advance the engine and the choices together; yields per step the pieces emitted per choice."""
    async with contextlib.aclosing(steps):
        async for i in steps:
            yield i, [ch.step(i) for ch in choices]
            if all(ch.finish for ch in choices):
                break
    reason = next((ch.finish for ch in choices if ch.finish), None) or "abort"
    timing.finish_reason = reason
    sim.metrics.finished(
        reason=reason,
        prompt_tokens=timing.prompt_tokens,
        gen_tokens=sum(len(ch.emitted) for ch in choices),
        **_stats(timing),
    )


def _stats(timing: Timing) -> dict:
    d = timing.as_dict()
    return {
        "queue_s": d["queue_s"] or 0.0,
        "ttft_s": d["ttft_s"] or 0.0,
        "itls": d["itl_s"],
        "e2e_s": d["e2e_s"] or 0.0,
    }


async def _finishing(sim: SimState, events: AsyncIterator[str]):
    try:
        async for e in events:
            yield e
    finally:
        _maybe_exit(sim)


def _maybe_exit(sim: SimState) -> None:
    if sim.faults.exhausted() and not sim.gone:
        sim.gone = True
        log.warning("simulated preemption: exiting after %s requests", sim.faults.count)
        sim.on_exhausted()


# Routes vLLM's instrumentator leaves uncounted.
_UNCOUNTED = ("/metrics", "/health", "/load", "/ping", "/version", "/server_info")


class _CountRequests:
    """Counts every answered request into `http_requests_total` as vLLM's API server does."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNCOUNTED:
            await self.app(scope, receive, send)
            return

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start":
                route = next((r.path for r in scope["app"].routes if r.matches(scope)[0].name == "FULL"), "none")
                status = f"{str(message['status'])[0]}xx"
                scope["app"].state.sim.metrics.http_requests.labels(scope["method"], status, route).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def create_app(
    config: SimConfig, clock: Callable[[], float] = time.monotonic, knowledge: Knowledge | None = None
) -> Starlette:
    """A fresh simulator app for ``config`` (answering from ``knowledge``, the packaged promptsets by default);
    its state is ``app.state.sim``."""
    routes = [
        Route("/health", health),
        Route("/version", version),
        Route("/metrics", metrics),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/load_lora_adapter", load_lora, methods=["POST"]),
        Route("/v1/unload_lora_adapter", unload_lora, methods=["POST"]),
        Route("/sim/info", info),
        Route("/sim/requests", timings),
        Route("/sim/requests/{request_id}", timings),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error}, middleware=[Middleware(_CountRequests)])
    app.state.sim = SimState(config, clock, knowledge)
    return app


__all__ = ["create_app", "SimState", "SimulatedDisconnect"]
