"""A local stand-in for the Hugging Face Hub's model-info API, for the real `huggingface_hub` client.

`HfApi.model_info(repo_id, revision=ref)` calls ``GET {endpoint}/api/models/{repo_id}/revision/{ref}``
(without a revision: ``/api/models/{repo_id}``). Each repo is programmable: its sha per ref, a forced
status (401, 404, 429 with Retry-After, 500), gating, and a delay for timeouts and concurrency tests.
Error responses carry the headers the real Hub sends (X-Error-Code, X-Error-Message), so huggingface_hub
raises the same exception classes it raises against huggingface.co.

    with start_hub_standin(tokens={"hf_good"}) as hub:
        hub.set("org/model", sha="a" * 40, delay_s=0.3)
        HfApi(endpoint=hub.endpoint, token="hf_good").model_info("org/model", revision="main")
        hub.requests[-1].authorization   # "Bearer hf_good"
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llmplat_dagster.sim.testing import loopback_socket, serve_in_thread


@dataclass
class RepoBehaviour:
    shas: dict[str, str] = field(default_factory=dict)  # ref -> commit sha
    status: int | None = None  # forced error status
    retry_after: str | None = None
    delay_s: float = 0.0
    gated: bool = False
    echo_authorization: bool = False  # a misbehaving server that quotes the credential back in its error


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    repo_id: str
    revision: str | None
    authorization: str | None
    at: float


@dataclass
class HubStandin:
    endpoint: str = ""
    tokens: set[str] = field(default_factory=set)  # tokens the stand-in accepts
    repos: dict[str, RepoBehaviour] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def set(
        self,
        repo_id: str,
        sha: str | None = None,
        *,
        ref: str = "main",
        status: int | None = None,
        retry_after: str | None = None,
        delay_s: float = 0.0,
        gated: bool = False,
        echo_authorization: bool = False,
    ) -> RepoBehaviour:
        behaviour = self.repos.setdefault(repo_id, RepoBehaviour())
        if sha is not None:
            behaviour.shas[ref] = sha
        behaviour.status, behaviour.retry_after = status, retry_after
        behaviour.delay_s, behaviour.gated = delay_s, gated
        behaviour.echo_authorization = echo_authorization
        return behaviour

    async def model_info(self, request: Request) -> JSONResponse:
        repo_id = request.path_params["repo_id"]
        revision = request.path_params.get("revision")
        auth = request.headers.get("authorization")
        self.requests.append(RecordedRequest(request.url.path, repo_id, revision, auth, time.monotonic()))
        behaviour = self.repos.get(repo_id)
        if behaviour and behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        token = auth.removeprefix("Bearer ").strip() if auth else None
        if token is not None and token not in self.tokens:
            return _error(401, "Invalid credentials in Authorization header")
        if behaviour is None:
            return _error(404, "Repository not found", code="RepoNotFound")
        if behaviour.gated and token is None:
            message = f"Access to model {repo_id} is restricted. You must be authenticated to access it."
            return _error(401, message, code="GatedRepo")
        if behaviour.status == 429:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            return _error(429, "Too many requests", headers=headers)
        if behaviour.status is not None:
            code = "RepoNotFound" if behaviour.status == 404 else None
            echo = f" for Authorization: {auth}" if behaviour.echo_authorization else ""
            return _error(behaviour.status, f"forced status {behaviour.status}{echo}", code=code)
        sha = behaviour.shas.get(revision or "main")
        if sha is None:
            return _error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return JSONResponse(
            {"_id": f"id-{repo_id}", "id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
             "gated": "auto" if behaviour.gated else False, "disabled": False, "tags": [], "siblings": []}
        )  # fmt: skip


def _error(status: int, message: str, *, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(hub: HubStandin) -> Starlette:
    return Starlette(
        routes=[
            Route("/api/models/{repo_id:path}/revision/{revision}", hub.model_info),
            Route("/api/models/{repo_id:path}", hub.model_info),
        ]
    )


@contextlib.contextmanager
def start_hub_standin(tokens: set[str] | None = None, startup_timeout: float = 10.0) -> Iterator[HubStandin]:
    """Serve the stand-in on 127.0.0.1:<free port> for the duration of the ``with`` block."""
    hub = HubStandin(tokens=set(tokens or ()))
    sock = loopback_socket()
    port = sock.getsockname()[1]
    hub.endpoint = f"http://127.0.0.1:{port}"
    server, thread = serve_in_thread(create_app(hub), sock, name=f"hub-{port}", startup_timeout=startup_timeout)
    try:
        yield hub
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
