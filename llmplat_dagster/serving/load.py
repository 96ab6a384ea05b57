"""A steady load: a promptset over and over at a fixed concurrency, in a background thread until stopped."""

from __future__ import annotations

import asyncio
import threading

from llmplat_dagster.serving.client import ServingClient, ServingRequest


class LoadDriver:
    """The promptset, over and over, at a fixed concurrency, in a background thread until stopped."""

    def __init__(self, base_url: str, model: str, requests: list[ServingRequest], concurrency: int) -> None:
        self.base_url, self.model, self.requests, self.concurrency = base_url, model, requests, concurrency
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="autoscaling-load", daemon=True)
        self._started = threading.Event()

    async def _drive(self) -> None:
        async with ServingClient(self.base_url, self.model, concurrency=self.concurrency, timeout_s=60) as client:
            while True:
                rows = await client.run(self.requests)
                self.sent += len(rows)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(self._drive())
        self._started.set()
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    def start(self) -> str:
        self._thread.start()
        self._started.wait(10)
        return f"driving {len(self.requests)} prompts in a loop at concurrency {self.concurrency}"

    def stop(self) -> str:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=30)
        return f"stopped after {self.sent} completed requests"
