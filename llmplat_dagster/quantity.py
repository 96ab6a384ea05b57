"""Kubernetes resource quantities ("3920m", "14.5Gi") as numbers, for fit checks before the cluster sees them."""

from __future__ import annotations

from kubernetes.utils import parse_quantity as _k8s_parse_quantity


def parse_quantity(value: str) -> float:
    """The official client's parser, but only for strings: manifests must carry string quantities."""
    if not isinstance(value, str):
        raise ValueError(f"quantity {value!r} must be a string such as '4' or '16Gi'")
    try:
        return float(_k8s_parse_quantity(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '3920m', '4', '14.5Gi')") from None
