"""The client's TTFT / ITL agree with the simulator's own ground truth (GET /sim/requests/{id}).

The simulator runs in a subprocess so that its event loop and the client's do not share a GIL; the load
is moderate (Poisson arrivals at 16/s, ~3-4 in flight, ITL ~18 ms). Client TTFT is larger by
construction: its clock starts before the request is sent (vllm bench serve's definition), the
server's when the request arrives.
"""

import asyncio
import socket
import statistics
import subprocess
import sys
import time

import httpx
import pytest

from llmplat_dagster.serving.client import ServingClient, ServingRequest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def sim_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "llmplat_dagster.sim",
        "serve",
        "--served-model-name",
        "sim-model",
        "--port",
        str(port),
        "--sim-time-scale",
        "0.4",
        "--max-num-seqs",
        "8",
        "--sim-seed",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def measure(sim_url, n=40, rate=16.0, concurrency=8):
    """One round at a moderate open-loop load (Poisson arrivals at `rate`/s, ~3-4 requests in flight, as
    vllm bench serve --request-rate drives it): (client rows, the simulator's timings of them)."""
    requests = [ServingRequest.chat(f"p{i}", f"Describe item {i} briefly.", max_tokens=12) for i in range(n)]

    async def go():
        async with ServingClient(sim_url, "sim-model", concurrency=concurrency) as client:
            await client.run([ServingRequest.chat(f"w{i}", "warm up", max_tokens=2) for i in range(concurrency)])
            return await client.run(requests, request_rate=rate, seed=3)

    rows = asyncio.run(go())
    assert all(r.ok for r in rows), [r.error for r in rows if not r.ok]
    with httpx.Client(base_url=sim_url) as http:
        truth = [http.get(f"/sim/requests/{r.request_id}").json() for r in rows]
    return rows, truth


def test_ttft_and_itl_agree_with_simulator_ground_truth(sim_url):
    """TTFT p50 within 2 ms, ITL and TPOT medians within 1 ms.

    The client and the simulator share two CPUs with whatever else runs, so one round can be pushed over
    by the OS scheduler; the best of up to three rounds is compared. A systematic error (a clock started late,
    TTFT taken at the role chunk or the usage chunk, an ITL off by one chunk) is off by a whole token
    (~18 ms here) in every round.
    """
    ttft_gaps = []
    for _ in range(3):
        rows, truth = measure(sim_url)
        for r, t in zip(rows, truth, strict=True):
            assert r.output_tokens == t["output_tokens"] == 12 and len(r.itl_s) == len(t["itl_s"]) == 11
        client_itl = statistics.median(g for r in rows for g in r.itl_s)
        server_itl = statistics.median(g for t in truth for g in t["itl_s"])
        assert abs(client_itl - server_itl) < 0.001, (client_itl, server_itl)
        client_tpot = statistics.median(r.tpot_s for r in rows)
        server_tpot = statistics.median(t["tpot_s"] for t in truth)
        assert abs(client_tpot - server_tpot) < 0.001, (client_tpot, server_tpot)
        client_ttft = statistics.median(r.ttft_s for r in rows)
        server_ttft = statistics.median(t["ttft_s"] for t in truth)
        assert client_ttft >= server_ttft  # the client's clock starts first
        ttft_gaps.append(client_ttft - server_ttft)
        if ttft_gaps[-1] < 0.002:
            break
    assert min(ttft_gaps) < 0.002, f"client TTFT p50 exceeds the simulator's by {ttft_gaps} s"
