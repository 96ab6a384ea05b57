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


@pytest.fixture
def hub(hub_server: HubStandin) -> HubStandin:
    """The session's Hub stand-in, emptied, accepting HUB_TOKEN."""
    hub_server.tokens = {HUB_TOKEN}
    hub_server.repos.clear()
    hub_server.requests.clear()
    return hub_server


@pytest.fixture
def moto_s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """An S3 client for moto, with the environment pointed at it so the code's own default clients agree."""
    import boto3

    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
