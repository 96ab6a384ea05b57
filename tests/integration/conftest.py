"""Servers several integration test modules share: moto (S3) and the Hugging Face Hub stand-in, on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from tests.integration.hub_standin import HubStandin, start_hub_standin

HUB_TOKEN = "hf_TestToken0123456789abcdefXYZ"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode; tests use their own bucket names, so one server serves the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubStandin]:
    """The Hub stand-in; it accepts HUB_TOKEN. Reset its repos and requests per test (see the `hub` fixtures)."""
    with start_hub_standin(tokens={HUB_TOKEN}) as hub:
        yield hub
