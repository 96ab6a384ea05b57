"""`llmplat sim serve` ends on SIGTERM even while a request is stuck (a pod must stop inside its grace period);
before, an in-flight request that never finished kept the server up forever."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from llmplat_dagster.sim.cli import GRACE_S

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_sigterm_stops_the_server_with_a_request_in_flight():
    exe = shutil.which("llmplat", path=str(Path(sys.executable).parent))
    proc = subprocess.Popen(
        [exe, "sim", "serve", "--port", "0", "--sim-slow-rate", "1", "--sim-slow-delay", "3600"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stderr.readline()
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", line).group(1)
        body = {"model": "mistralai/Mistral-7B-Instruct-v0.2", "messages": [{"role": "user", "content": "hi"}]}

        def post() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server cuts it when the grace period ends
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)

        stuck = threading.Thread(target=post, daemon=True)
        stuck.start()
        time.sleep(1.0)  # the request is now in flight, held by the slow fault
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=GRACE_S + 30)
        assert time.monotonic() - started < GRACE_S + 30
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM it handled once it has shut down
