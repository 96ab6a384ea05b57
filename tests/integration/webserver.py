"""The real `dagster-webserver` and `dagster-daemon` on a throwaway instance, driven through the GraphQL API.

What a platform engineer's launchpad click does, end to end: the webserver loads the code location from
workspace.yaml, a launch goes through `launchPipelineExecution` (dagster_graphql's client), the run waits in the
queue of the shipped dagster.yaml, the daemon dequeues it, a run worker process executes it against a simulator
fleet on loopback. The instance is the repository's own dagster.yaml; only the dequeue interval is shortened.

Each simulator sits behind a `Gate` the test controls: it counts generation requests, can answer /v1/models
with 503 (a model still loading, which holds a rollout at readiness) and can hold completions after the first
N (so a run can be killed at a known point).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx
import yaml
from dagster_graphql import DagsterGraphQLClient
from starlette.responses import JSONResponse

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.sim.app import create_app
from llmplat_dagster.sim.config import parse_args
from llmplat_dagster.sim.testing import loopback_socket, serve_in_thread

BIN = Path(sys.executable).parent
GENERATION = ("/v1/chat/completions", "/v1/completions")
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class Gate:
    """ASGI middleware in front of a simulator (see the module doc); thread-safe, set from the test thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.loading = threading.Event()  # set: /v1/models answers 503, as vLLM does while the model loads
        self.release = threading.Event()  # set: held completions go on
        self.hold_after: int | None = None
        self.lock = threading.Lock()
        self.generations = 0  # generation requests that arrived
        self.held = 0

    def reset(self) -> None:
        with self.lock:
            self.loading.clear()
            self.release.clear()
            self.hold_after, self.generations, self.held = None, 0, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/models" and self.loading.is_set():
            await JSONResponse({"error": {"message": "model is loading"}}, status_code=503)(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] in GENERATION:
            with self.lock:
                self.generations += 1
                hold = self.hold_after is not None and self.generations > self.hold_after
                self.held += hold
            while hold and not self.release.is_set():
                await asyncio.sleep(0.05)
        await self.app(scope, receive, send)


@dataclass
class GatedSim:
    variant: str
    base_url: str
    gate: Gate
    server: object
    thread: threading.Thread


@contextlib.contextmanager
def gated_fleet(catalog: Catalog, time_scale: float = 0.02) -> Iterator[dict[str, GatedSim]]:
    """One simulator per catalog variant, started from the variant's own vLLM args, each behind a Gate."""
    fleet: dict[str, GatedSim] = {}
    socks = []
    try:
        for v in catalog.variants:
            sock = loopback_socket()
            socks.append(sock)
            port = sock.getsockname()[1]
            config = dataclasses.replace(parse_args(vllm_args(v)), time_scale=time_scale, host="127.0.0.1", port=port)
            gate = Gate(create_app(config))
            server, thread = serve_in_thread(gate, sock, name=f"sim-{v.name}")
            fleet[v.name] = GatedSim(v.name, f"http://127.0.0.1:{port}", gate, server, thread)
        yield fleet
    finally:
        for sim in fleet.values():
            sim.gate.release.set()
            sim.server.should_exit = True
        for sim in fleet.values():
            sim.thread.join(10)
        for sock in socks:
            sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ui:
    """A running webserver + daemon on `home`, with the GraphQL client the tests launch runs through."""

    home: Path
    port: int
    fleet: dict[str, GatedSim]
    client: DagsterGraphQLClient
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def launch(self, job: str, *, run_config: dict | None = None, **kwargs) -> str:
        return self.client.submit_job_execution(job, run_config=run_config or {}, **kwargs)

    def status(self, run_id: str) -> str:
        return self.client.get_run_status(run_id).value

    def wait(self, run_id: str, statuses=TERMINAL, timeout_s: float = 240.0) -> str:
        deadline = time.monotonic() + timeout_s
        while (status := self.status(run_id)) not in statuses:
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {status} after {timeout_s:.0f}s; logs in {self.logs}")
            time.sleep(0.5)
        return status

    def failure(self, run_id: str) -> str:
        """The first step failure's message (or the run failure's), as the run's page shows it."""
        with self.instance() as instance:
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event is not None and event.event_type_value == "STEP_FAILURE":
                    return event.step_failure_data.error.message
            return "\n".join(r.message for r in instance.all_logs(run_id) if r.level >= 40)


def instance_yaml(repo_root: Path) -> str:
    """The shipped local instance, dequeued every second instead of every five (nothing else changes)."""
    config = yaml.safe_load((repo_root / "dagster.yaml").read_text())
    config["run_coordinator"].setdefault("config", {})["dequeue_interval_seconds"] = 1
    return yaml.safe_dump(config, sort_keys=False)


@contextlib.contextmanager
def start_ui(repo_root: Path, home: Path, fleet: dict[str, GatedSim], startup_timeout_s: float = 180.0) -> Iterator[Ui]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(repo_root))
    logs = home.parent / f"{home.name}-logs"  # outside DAGSTER_HOME, which Dagster manages
    logs.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPLAT_", "DAGSTER_", "HF_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "LLMPLAT_ENDPOINTS": json.dumps({name: sim.base_url for name, sim in fleet.items()}),
        "PYTHONUNBUFFERED": "1",
        "DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS": "1",  # run retries noticed within a second
    }
    port = free_port()
    commands = {
        "webserver": [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    ui = Ui(home, port, fleet, DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60), logs)
    # Create the SQLite storage once, here: two processes creating it at the same time race on its migrations.
    with _environ(DAGSTER_HOME=str(home)), dg.DagsterInstance.from_config(str(home)):
        pass
    try:
        for name, argv in commands.items():
            out = (logs / f"{name}.log").open("w")
            ui.processes.append(
                subprocess.Popen(
                    argv, cwd=repo_root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            if name == "webserver":
                _wait_until_loaded(ui, startup_timeout_s)
        yield ui
    finally:
        for proc in ui.processes:  # each started in its own session: its code servers go with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in ui.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _wait_until_loaded(ui: Ui, timeout_s: float) -> None:
    """The webserver answers and its code location has loaded without error."""
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in ui.processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; see {ui.logs}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            answer = httpx.post(f"http://127.0.0.1:{ui.port}/graphql", json={"query": query}, timeout=5).json()
            entries = answer["data"]["workspaceOrError"]["locationEntries"]
            errors = [e["locationOrLoadError"].get("message") for e in entries if e["locationOrLoadError"]]
            if any(errors):
                raise RuntimeError(f"the code location failed to load: {errors}")
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        time.sleep(1)
    raise RuntimeError(f"the webserver did not load the code location within {timeout_s:.0f}s; see {ui.logs}")
