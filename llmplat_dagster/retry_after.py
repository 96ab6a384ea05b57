"""The one Retry-After parser (RFC 9110 §10.2.3), shared by the serving client, the Hub look-ups, the alert
webhook and the Kubernetes calls, so every caller reads the header the same way and caps it the same way."""

from __future__ import annotations

import email.utils
import math
import time


def parse_retry_after(value: str | None, now_unix: float | None = None) -> float | None:
    """Seconds from now (delta-seconds or an HTTP date, never negative); None when absent or unreadable."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now_unix is None else now_unix)
    return max(seconds, 0.0) if math.isfinite(seconds) else None
