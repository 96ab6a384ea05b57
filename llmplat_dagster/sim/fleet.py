"""``llmplat sim fleet``: one simulator subprocess per rendered Deployment, on loopback ports.

The Deployment's own container args are used unchanged except ``--host``/``--port``, so the fleet
exercises exactly the flags the cluster will run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml


def _documents(directory: Path) -> Iterator[dict]:
    """A kustomize overlay is built (its Deployments live in ../../base); a plain folder is read whole."""
    if (directory / "kustomization.yaml").is_file():
        from llmplat_dagster.k8s.tree import build

        yield from build(directory)
        return
    for path in sorted(directory.rglob("*")):
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield from (d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))


def deployment_args_from_manifests(directory: str | Path) -> dict[str, list[str]]:
    """{Deployment metadata.name: first container's args} for the Deployments under ``directory``."""
    found: dict[str, list[str]] = {}
    for doc in _documents(Path(directory)):
        if doc.get("kind") != "Deployment":
            continue
        containers = doc["spec"]["template"]["spec"]["containers"]
        found[doc["metadata"]["name"]] = [str(a) for a in containers[0].get("args") or []]
    return found


def rewrite_host_port(args: Sequence[str], port: int) -> list[str]:
    """Drop any --host/--port (both ``--flag v`` and ``--flag=v``) and bind to 127.0.0.1:port."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--host", "--port"):
            skip = True
            continue
        if a.startswith(("--host=", "--port=")):
            continue
        out.append(a)
    return [*out, "--host", "127.0.0.1", "--port", str(port)]


def _free_port(start: int, taken: set[int]) -> int:
    port = start
    while True:
        if port not in taken:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    pass
        port += 1


@dataclass
class Fleet:
    """Running simulators: ``endpoints`` maps variant name to base URL (``http://127.0.0.1:P``)."""

    endpoints: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        return self.logs[name].read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 5.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(fleet.endpoints)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            for name, url in list(pending.items()):
                code = fleet.processes[name].poll()
                if code is not None:
                    raise RuntimeError(f"simulator {name} exited with {code}:\n{fleet.log_tail(name)}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{url}/health").status_code == 200:
                        del pending[name]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"simulators not healthy after {timeout}s: {sorted(pending)}")
            time.sleep(0.05)


@contextlib.contextmanager
def start_fleet(
    deployment_args: dict[str, list[str]],
    *,
    sim_args: Sequence[str] = (),
    base_port: int = 8001,
    startup_timeout: float = 60.0,
    log_dir: str | Path | None = None,
) -> Iterator[Fleet]:
    """Start one ``llmplat sim serve`` per variant, wait for every /health 200, stop all on exit."""
    fleet = Fleet()
    logdir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="llmplat-fleet-"))
    taken: set[int] = set()
    try:
        for name, args in deployment_args.items():
            port = _free_port(base_port, taken)
            taken.add(port)
            cmd = [
                sys.executable,
                "-m",
                "llmplat_dagster.sim",
                "serve",
                *rewrite_host_port(args, port),
                *sim_args,
            ]
            fleet.logs[name] = logdir / f"{name}.log"
            with fleet.logs[name].open("wb") as out:
                fleet.processes[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            fleet.endpoints[name] = f"http://127.0.0.1:{port}"
        _wait_healthy(fleet, startup_timeout)
        yield fleet
    finally:
        fleet.stop()


def _table(endpoints: dict[str, str]) -> str:
    width = max([len("variant"), *map(len, endpoints)])
    lines = [f"{'variant':<{width}}  url", f"{'-' * width}  {'-' * 24}"]
    lines += [f"{name:<{width}}  {url}" for name, url in endpoints.items()]
    return "\n".join(lines)


def fleet_main(argv: list[str]) -> int:
    """CLI: unknown flags (e.g. ``--sim-time-scale 0.05``) are passed to every simulator."""
    from llmplat_dagster.cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="llmplat sim fleet",
        description="One simulator per Deployment of a rendered overlay, on loopback; other flags go to each server.",
        epilog="examples:\n  llmplat sim fleet --sim-time-scale 0.05 --endpoints-file endpoints.json\n"
        "  llmplat sim fleet --manifests manifests/overlays/prod --base-port 9001 --sim-error-rate 0.05\n\n"
        "exit status: 0 stopped (Ctrl-C, SIGTERM), 1 a simulator died, 2 bad usage or input",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--manifests", default="manifests/overlays/dev", help="overlay (or folder) with the Deployments")
    p.add_argument("--base-port", type=int, default=8001, help="first loopback port to try")
    p.add_argument("--endpoints-file", default=None, help="write {variant: url} JSON here (for LLMPLAT_ENDPOINTS)")
    p.add_argument("--startup-timeout", type=float, default=60.0, help="seconds for every /health to answer 200")
    ns, sim_args = p.parse_known_args(argv)
    if not 0 < ns.base_port < 65536:
        p.error(f"--base-port {ns.base_port} must be between 1 and 65535")
    if not Path(ns.manifests).is_dir():
        print(f"llmplat sim fleet: --manifests {ns.manifests}: no such folder", file=sys.stderr)
        return 2
    try:
        deployments = deployment_args_from_manifests(ns.manifests)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"llmplat sim fleet: --manifests {ns.manifests}: {exc}", file=sys.stderr)
        return 2
    if not deployments:
        print(f"llmplat sim fleet: no Deployments found under {ns.manifests}", file=sys.stderr)
        return 2

    def _term(signum, frame):  # SIGTERM behaves like Ctrl-C: stop children, exit 0
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        with start_fleet(
            deployments, sim_args=sim_args, base_port=ns.base_port, startup_timeout=ns.startup_timeout
        ) as fleet:
            print(_table(fleet.endpoints), flush=True)
            if ns.endpoints_file:
                Path(ns.endpoints_file).write_text(json.dumps(fleet.endpoints, indent=2) + "\n")
            while True:
                for name, proc in fleet.processes.items():
                    if proc.poll() is not None:
                        print(f"simulator {name} exited with {proc.returncode}", file=sys.stderr)
                        return 1
                time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping fleet", file=sys.stderr)
        return 0
