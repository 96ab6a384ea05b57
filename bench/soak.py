"""Soak: the simulator fleet with faults switched on, driven for minutes; nothing lost, memory flat.

    .venv/bin/python bench/soak.py                        # 3 minutes, the four variants, 5% 503s, 2% drops
    .venv/bin/python bench/soak.py --duration 60 --sim-error-rate 0.1 --sim-disconnect-rate 0.05

One simulator per rendered Deployment (`llmplat sim fleet`'s own start-up, in subprocesses), each driven with the
canary promptset over and over by the serving client, every row checkpointed as the canary does. Prints
requests, errors by kind, rows lost (requests sent minus rows recorded in the checkpoints: must be 0) and the
resident memory of this process and of the fleet before and after. A benchmark only prints: nothing here asserts.
All figures are measured against the simulator (its time scale is printed), not a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.evaluation.promptsets import load_promptset
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.serving.checkpoint import Checkpoint
from llmplat_dagster.serving.client import RetryPolicy, ServingClient
from llmplat_dagster.serving.requests import serving_requests
from llmplat_dagster.serving.results import RequestResult
from llmplat_dagster.sim.fleet import start_fleet

KINDS = (
    ("HTTP 503", "retryable status, gave up (503)"),
    ("HTTP 429", "retryable status, gave up (429)"),
    ("HTTP 5", "server error (5xx)"),
    ("stream ended without [DONE]", "dropped stream"),
    ("timeout", "timeout"),
    ("connect error", "connect error"),
    ("no response", "no response"),
    ("malformed", "malformed response"),
)


def kind(row: RequestResult) -> str:
    """A short name for why a row failed (the first matching fragment of its error)."""
    error = row.error or ""
    return next((name for fragment, name in KINDS if fragment in error), "other: " + error[:40])


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size from /proc (Linux), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def drive(endpoints: dict, names: dict, args, checkpoints: dict) -> tuple[int, collections.Counter, int]:
    """Every variant's canary, over and over until the deadline; (requests sent, failures by kind, retries)."""
    promptset = load_promptset("canary")
    requests = serving_requests(promptset.prompts)
    deadline = time.monotonic() + args.duration
    failures: collections.Counter = collections.Counter()
    counts = {"sent": 0, "retries": 0}
    policy = RetryPolicy(max_attempts=3, backoff_base_s=0.1, max_retry_after_s=2.0)

    async def variant(name: str, url: str) -> None:
        round_ = 0
        async with ServingClient(
            url, names[name], variant=name, concurrency=args.concurrency, timeout_s=args.timeout_s, retry=policy
        ) as client:
            while time.monotonic() < deadline:
                round_ += 1
                batch = [dataclasses.replace(r, prompt_id=f"{r.prompt_id}#{round_}") for r in requests]
                rows = await client.run(batch, on_result=checkpoints[name].append)
                counts["sent"] += len(batch)
                for row in rows:
                    counts["retries"] += row.attempts - 1
                    if not row.ok:
                        failures[kind(row)] += 1

    await asyncio.gather(*(variant(n, u) for n, u in endpoints.items()))
    return counts["sent"], failures, counts["retries"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=180.0, help="seconds of load (default: 180)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per variant (default: 8)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="the client's request deadline (default: 10)")
    p.add_argument("--time-scale", type=float, default=0.05, help="simulated latency scale (default: 0.05)")
    p.add_argument("--sim-error-rate", type=float, default=0.05, help="share of requests answered with an error")
    p.add_argument("--sim-error-status", type=int, default=503, choices=[429, 500, 503], help="(default: 503)")
    p.add_argument("--sim-disconnect-rate", type=float, default=0.02, help="share of streams cut mid-way")
    p.add_argument("--sim-slow-rate", type=float, default=0.01, help="share of requests delayed (default: 0.01)")
    p.add_argument("--sim-slow-delay", type=float, default=300.0, help="their extra seconds, scaled: past the deadline")
    args = p.parse_args(argv)

    catalog = load_catalog()
    deployments = {v.name: vllm_args(v) for v in catalog.variants}
    names = {v.name: v.served_name for v in catalog.variants}
    sim_args = [
        "--sim-time-scale", str(args.time_scale),
        "--sim-error-rate", str(args.sim_error_rate),
        "--sim-error-status", str(args.sim_error_status),
        "--sim-retry-after", "1",
        "--sim-disconnect-rate", str(args.sim_disconnect_rate),
        "--sim-slow-rate", str(args.sim_slow_rate),
        "--sim-slow-delay", str(args.sim_slow_delay),
    ]  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="llmplat-soak-") as tmp,
        start_fleet(deployments, sim_args=sim_args) as fleet,
    ):
        checkpoints = {n: Checkpoint(tmp, n, "soak") for n in fleet.endpoints}
        pids = {n: proc.pid for n, proc in fleet.processes.items()}
        rss_before, fleet_before = rss_kib(), sum(rss_kib(pid) for pid in pids.values())
        started = time.monotonic()
        sent, failures, retries = asyncio.run(drive(fleet.endpoints, names, args, checkpoints))
        took = time.monotonic() - started
        rss_after, fleet_after = rss_kib(), sum(rss_kib(pid) for pid in pids.values())
        recorded = sum(len(c.path.read_text().splitlines()) for c in checkpoints.values() if c.path.exists())
        ok_recorded = sum(len(c.ok_rows()) for c in checkpoints.values())

    errors = sum(failures.values())
    print(f"soak against the simulator fleet (llmplat sim, time scale {args.time_scale}; not a GPU), "
          f"{len(deployments)} variants x concurrency {args.concurrency}, {took:.0f} s")  # fmt: skip
    print(
        f"faults on: {args.sim_error_rate:.0%} HTTP {args.sim_error_status} (Retry-After 1 s), "
        f"{args.sim_disconnect_rate:.0%} dropped streams, {args.sim_slow_rate:.0%} slow by {args.sim_slow_delay:g} s "
        f"x {args.time_scale} (client deadline {args.timeout_s:g} s)"
    )
    print(f"requests: {sent} ({sent / took:.1f}/s), ok {sent - errors}, errors {errors} ({errors / max(sent, 1):.2%}), "
          f"retries {retries}")  # fmt: skip
    for name, count in failures.most_common():
        print(f"  {name:<34} {count}")
    lost = sent - recorded
    print(f"rows recorded in checkpoints: {recorded} (ok {ok_recorded}); rows lost: {lost}")
    print(
        f"RSS of this process: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after "
        f"({(rss_after - rss_before) / 1024:+.1f} MiB); "
        f"fleet: {fleet_before / 1024:.1f} -> {fleet_after / 1024:.1f} MiB"
    )
    return 0 if lost == 0 and ok_recorded == sent - errors else 1


if __name__ == "__main__":
    sys.exit(main())
