"""Kubernetes resource quantities ("3920m", "14.5Gi") as numbers, for fit checks before the cluster sees them.

The grammar is apimachinery's (`k8s.io/apimachinery/pkg/api/resource/quantity.go`): a signed decimal number
and one suffix, binary SI (Ki..Ei), decimal SI (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2).
Written here rather than imported from `kubernetes.utils` because that import loads the whole generated client
(over a second of start-up for every run pod and code server); tests/unit/test_quantity.py checks it against
the official client's parser.
"""

from __future__ import annotations

import re
from decimal import Decimal

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: str) -> float:
    """A quantity string as a number (bytes, cores); manifests must carry string quantities."""
    if not isinstance(value, str):
        raise ValueError(f"quantity {value!r} must be a string such as '4' or '16Gi'")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '3920m', '4', '14.5Gi')")
    number = Decimal(match["number"])
    if match["binary"]:
        number *= Decimal(1024) ** _BINARY[match["binary"]]
    elif match["decimal"]:
        number = number.scaleb(_DECIMAL[match["decimal"]])
    elif match["exponent"] is not None:
        number = number.scaleb(int(match["exponent"]))
    return float(number)
