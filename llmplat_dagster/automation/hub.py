"""Which Hub repos the platform tracks, and their current commit shas, looked up concurrently.

The revision sensor ticks every few minutes with one look-up per tracked repo; the Hub API is synchronous
(`huggingface_hub` on httpx), so look-ups run in a thread pool and a tick costs about one round trip, not
one per repo. Every failure is classified into a small set of kinds and a one-line message so the sensor
can name the skip reason without crashing; the token never appears in either.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled

from llmplat_dagster.automation.alerts import redact
from llmplat_dagster.catalog import SHA, Catalog
from llmplat_dagster.retry_after import parse_retry_after

DEFAULT_TRACKED_REF = "main"

LookupKind = Literal["ok", "gated", "unauthorized", "not_found", "rate_limited", "timeout", "network", "error"]
RepoRef = tuple[str, str]


def tracked_ref(revision: str, default_ref: str = DEFAULT_TRACKED_REF) -> str:
    """The ref whose movement we watch: a branch or tag as written, or `default_ref` for a pinned sha.

    A pinned sha never moves, so watching it would never fire; watching the branch it was taken from tells
    the owner that upstream has moved past the pin (the plan then proposes the new sha, see `revisions`).
    The catalog has no per-variant "tracked ref" field, so pinned revisions follow `default_ref` ("main").
    """
    return default_ref if SHA.fullmatch(revision) else revision


def tracked_repos(catalog: Catalog, default_ref: str = DEFAULT_TRACKED_REF) -> dict[RepoRef, list[str]]:
    """(repo_id, ref) -> the variants that must be re-rolled when that ref moves, in catalog order.

    A variant's model id maps to that variant; variants sharing a base model (AWQ, LoRA, judge) share one
    key, so one look-up serves all three. A LoRA adapter repo maps only to the variant that loads it.
    """
    repos: dict[RepoRef, list[str]] = {}
    for variant in catalog.variants:
        keys = [(variant.model_id, tracked_ref(variant.revision, default_ref))]
        keys += [(a.repo, tracked_ref(a.revision, default_ref)) for a in variant.lora.adapters]
        for key in keys:
            names = repos.setdefault(key, [])
            if variant.name not in names:
                names.append(variant.name)
    return repos


@dataclass(frozen=True)
class LookupResult:
    """The sha a ref points at, or why we could not tell. `error` is one line and never holds the token."""

    sha: str | None
    error: str | None
    kind: LookupKind
    status: int | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def lookup_revisions(
    repos: Iterable[RepoRef],
    *,
    endpoint: str | None,
    token: str | None,
    timeout_s: float = 10,
    max_workers: int = 8,
    api: HfApi | None = None,
) -> dict[RepoRef, LookupResult]:
    """Current commit sha of each (repo_id, ref), looked up concurrently; never raises for a Hub failure.

    `endpoint=None` means huggingface_hub's configured endpoint (HF_ENDPOINT as read when it was imported);
    pass it explicitly to be independent of import order. `token=None` sends no token at all (not the
    machine's saved login): the sensor's secret comes from its own configuration or nowhere.
    """
    keys = list(dict.fromkeys(repos))
    if not keys:
        return {}
    hf = api or HfApi(endpoint=endpoint, token=token if token else False)
    shown_endpoint = hf.endpoint

    def one(key: RepoRef) -> LookupResult:
        repo_id, ref = key
        try:
            info = hf.model_info(repo_id, revision=ref, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - a tick must classify every failure, never crash
            return classify_error(exc, token=token, timeout_s=timeout_s, endpoint=shown_endpoint)
        if not info.sha:
            return LookupResult(None, "the Hub answered without a commit sha", "error")
        return LookupResult(info.sha, None, "ok", status=200)

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(keys))), thread_name_prefix="hf-lookup") as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))


def classify_error(exc: BaseException, *, token: str | None, timeout_s: float, endpoint: str) -> LookupResult:
    """Map a huggingface_hub/httpx failure to a kind and a one-line, token-free message."""
    secrets = [token] if token else []
    if isinstance(exc, GatedRepoError):
        status = _status(exc)
        why = "no token was given" if not token else "the token's account has not been granted access"
        return _result("gated", f"HTTP {status}: gated repo; {why}", exc, secrets, status)
    if isinstance(exc, HfHubHTTPError):
        status = _status(exc)
        if status in (401, 403):
            why = "no token was given" if not token else "the token was rejected or lacks access"
            return _result("unauthorized", f"HTTP {status}: unauthorized; {why}", exc, secrets, status)
        if status == 404:
            return _result("not_found", "HTTP 404: repository or revision not found", exc, secrets, status)
        if status == 429:
            retry_after = _retry_after(exc)
            hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            return _result("rate_limited", f"HTTP 429: rate limited{hint}", exc, secrets, status, retry_after)
        return _result("error", f"HTTP {status}", exc, secrets, status)
    if isinstance(exc, httpx2.TimeoutException):
        return _result("timeout", f"no answer from {endpoint} within {timeout_s:g} s", None, secrets)
    if isinstance(exc, OfflineModeIsEnabled):
        return _result("network", "HF_HUB_OFFLINE is set; huggingface_hub refuses to reach the Hub", None, secrets)
    if isinstance(exc, httpx2.TransportError | OSError):
        return _result("network", f"cannot reach {endpoint}: {type(exc).__name__}: {exc}", None, secrets)
    return _result("error", f"{type(exc).__name__}: {exc}", None, secrets)


def _status(exc: HfHubHTTPError) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _retry_after(exc: HfHubHTTPError) -> float | None:
    response = getattr(exc, "response", None)
    return parse_retry_after(response.headers.get("Retry-After")) if response is not None else None


def _result(
    kind: LookupKind,
    message: str,
    exc: BaseException | None,
    secrets: list[str],
    status: int | None = None,
    retry_after_s: float | None = None,
) -> LookupResult:
    server = getattr(exc, "server_message", None) if exc is not None else None
    if server:
        message = f"{message} (server: {server})"
    line = " ".join(redact(message, secrets).split())
    if len(line) > 300:
        line = line[:297] + "..."
    return LookupResult(None, line, kind, status, retry_after_s)
