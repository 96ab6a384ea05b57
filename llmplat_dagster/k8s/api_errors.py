"""Reading the Kubernetes API's error Status: shared by server-side apply and the rollout watch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client.rest import ApiException

Obj = dict[str, Any]


def status_body(exc: ApiException) -> Obj:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def describe_error(exc: ApiException) -> str:
    body = status_body(exc)
    return f"HTTP {exc.status} {body.get('reason') or exc.reason}: {body.get('message') or exc.reason}"
