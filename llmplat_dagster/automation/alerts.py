"""Run-failure alerts: one or two readable lines, secrets scrubbed, posted to a Slack-compatible webhook.

A failure message often quotes the command line or HTTP headers it failed on, so everything that leaves the
platform goes through `redact` first. Posting is best effort: an alert that cannot be delivered is reported
back (the sensor logs it) and never raises, because a broken webhook must not fail the sensor that watches
for failures.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from llmplat_dagster.retry_after import parse_retry_after

REDACTED = "***"
MAX_REASON_CHARS = 300

# Hugging Face tokens, AWS access key ids (long-term AKIA, temporary ASIA), bearer credentials, Authorization
# headers, and key=value secrets in query strings or environment dumps. Each keeps its label, loses its value.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bhf_[A-Za-z0-9]{10,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?[^\s'\",;&]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1>{REDACTED}"),
    (
        re.compile(
            r"(?i)\b((?:aws_secret_access_key|aws_session_token|hf_token|api_key|access_token|token|password|secret)"
            r"\s*[=:]\s*)['\"]?[^\s'\",;&]{6,}['\"]?"
        ),
        rf"\g<1>{REDACTED}",
    ),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret shapes, and any literal `secrets` given, with ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def format_alert(
    job: str,
    run_id: str,
    step: str | None,
    variant: str | None,
    reason: str,
    url: str | None = None,
) -> str:
    """`:x: <job> failed [variant X] [at step Y] (run abcd1234): <first line of reason>` and the run link.

    Only the first non-empty line of the reason is kept (a stack trace belongs in the run's logs, one click
    away); it is cut to a readable length and scrubbed of secrets.
    """
    first = next((line.strip() for line in reason.splitlines() if line.strip()), "no reason given")
    first = redact(first)
    if len(first) > MAX_REASON_CHARS:
        first = first[: MAX_REASON_CHARS - 3] + "..."
    where = "".join(
        [
            f" variant {variant}" if variant else "",
            f" at step {step}" if step else "",
        ]
    )
    head = f":x: {job} failed{where} (run {run_id[:8]}): {first}"
    return f"{head}\n{redact(url)}" if url else head


@dataclass(frozen=True)
class AlertOutcome:
    """Whether the webhook accepted the alert; `error` is one line when it did not."""

    sent: bool
    status: int | None
    error: str | None
    attempts: int = 0


def post_alert(
    webhook_url: str,
    text: str,
    *,
    client: httpx.Client | None = None,
    retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    backoff_s: float = 1.0,
    timeout_s: float = 10.0,
) -> AlertOutcome:
    """POST `{"text": text}`; retry connect errors, timeouts, 5xx and 429 up to `retries` more times.

    Backoff doubles from `backoff_s`; a 429's Retry-After (seconds, capped at 60) takes precedence. Other
    4xx are final: resending a rejected payload does not help. The webhook URL is itself a secret (Slack's
    carries the credential in its path), so it never appears in the outcome.
    """
    own = client is None
    http = client or httpx.Client(timeout=timeout_s)
    payload = {"text": redact(text)}
    attempts = 0
    status: int | None = None
    error: str | None = None
    try:
        for attempt in range(retries + 1):
            attempts = attempt + 1
            wait = backoff_s * 2**attempt
            try:
                response = http.post(webhook_url, json=payload)
            except httpx.TransportError as exc:
                status, error = None, f"{type(exc).__name__} while posting to the webhook"
            except Exception as exc:  # noqa: BLE001 - alerting must never take the caller down
                return AlertOutcome(False, None, f"{type(exc).__name__} while posting to the webhook", attempts)
            else:
                status = response.status_code
                if response.is_success:
                    return AlertOutcome(True, status, None, attempts)
                error = f"webhook answered HTTP {status}"
                if status != 429 and status < 500:
                    return AlertOutcome(False, status, error, attempts)
                if status == 429:
                    wait = _retry_after(response.headers.get("Retry-After"), wait)
            if attempt < retries:
                sleep(wait)
    finally:
        if own:
            http.close()
    return AlertOutcome(False, status, f"{error} (gave up after {attempts} attempts)", attempts)


def _retry_after(value: str | None, default: float) -> float:
    seconds = parse_retry_after(value)
    return default if seconds is None else min(seconds, 60.0)
