"""Start a simulator in-process for tests and benches: uvicorn in a thread on an ephemeral port.

    with start_sim(max_num_seqs=4, time_scale=0.05) as sim:
        client = openai.OpenAI(base_url=sim.v1_url, api_key="x")
        ...
        sim.state.engine.timings[response.id]   # server-side ground truth

Options are ``SimConfig`` field names, or pass ``argv`` exactly as on the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from llmplat_dagster.sim.app import SimState, create_app
from llmplat_dagster.sim.config import SimConfig, parse_args


@dataclass
class RunningSim:
    """A running in-process simulator."""

    base_url: str  # http://127.0.0.1:PORT
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def v1_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def state(self) -> SimState:
        return self.app.state.sim

    @property
    def config(self) -> SimConfig:
        return self.state.config

    def timing(self, request_id: str) -> dict:
        """Server-side timings of one request (same as ``GET /sim/requests/{id}``)."""
        return self.state.engine.timings[request_id].as_dict()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def _config(argv: list[str] | None, options: dict) -> SimConfig:
    base = parse_args(argv) if argv is not None else SimConfig(served_model_names=["sim-model"])
    fields = {f.name for f in dataclasses.fields(SimConfig)}
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"unknown simulator options: {sorted(unknown)}")
    return dataclasses.replace(base, **options)


def loopback_socket() -> socket.socket:
    """A socket bound to 127.0.0.1 on a free port, so the port is known before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def serve_in_thread(
    app, sock: socket.socket, *, name: str, startup_timeout: float = 10.0, graceful_s: int = 2
) -> tuple[uvicorn.Server, threading.Thread]:
    """Run an ASGI app with uvicorn on `sock` in a daemon thread; return once it accepts connections."""
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=graceful_s)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=name)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.005)
    return server, thread


@contextlib.contextmanager
def start_sim(argv: list[str] | None = None, *, startup_timeout: float = 10.0, **options) -> Iterator[RunningSim]:
    """Serve a simulator on 127.0.0.1:<free port> for the duration of the ``with`` block.

    Without ``argv`` the served model name is ``sim-model`` (override with served_model_names=[...]).
    ``--sim-exit-after`` stops this server (the listening socket closes, later connects are refused).
    """
    config = _config(argv, options)
    sock = loopback_socket()
    port = sock.getsockname()[1]
    config = dataclasses.replace(config, host="127.0.0.1", port=port)
    app = create_app(config)
    server, thread = serve_in_thread(app, sock, name=f"sim-{port}", startup_timeout=startup_timeout)
    app.state.sim.on_exhausted = lambda: setattr(server, "should_exit", True)
    running = RunningSim(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        yield running
    finally:
        running.stop()
        sock.close()
