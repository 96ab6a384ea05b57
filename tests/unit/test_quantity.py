"""The quantity parser against the official client's (`kubernetes.utils.parse_quantity`) and apimachinery's
grammar: same numbers for every valid form, a clear error for what the API server would reject."""

import pytest
from kubernetes.utils import parse_quantity as official

from llmplat_dagster.quantity import parse_quantity

VALID = [
    "0", "1", "4", "3", "100m", "3920m", "250m", "1.5", ".5", "+2", "-1", "0.1",
    "1Ki", "1Mi", "1Gi", "14.5Gi", "12Gi", "1Ti", "2Pi", "1Ei", "50Gi",
    "1n", "1u", "1k", "1M", "1G", "1T", "1P", "1E", "2.5G",
]  # fmt: skip


@pytest.mark.parametrize("text", VALID)
def test_agrees_with_the_official_client(text):
    assert parse_quantity(text) == pytest.approx(float(official(text)), rel=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e3", 1000.0), ("1E3", 1000.0), ("5e-1", 0.5), ("12e+2", 1200.0), ("1Gi", 2.0**30), ("3920m", 3.92)],
)
def test_decimal_exponents_and_exact_values(text, expected):
    assert parse_quantity(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["", " ", "abc", "1.2.3", "Gi", "1gi", "1 Gi", "1GB", "1Gb", "1Ki1", "NaN", "Infinity", "1K", "1ki", "--1"]
)
def test_rejects_what_the_api_server_rejects(text):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("value", [4, 4.0, None, ["4"]])
def test_non_strings_are_refused(value):
    with pytest.raises(ValueError, match="must be a string"):
        parse_quantity(value)
