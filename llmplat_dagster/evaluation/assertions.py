"""Checkable expectations per prompt, in the spirit of promptfoo's ``assert`` list.

A promptset line may carry ``"assert": [{"type": ..., "value": ...}, ...]``; a response is correct when every
assertion passes (promptfoo's rule). Types: ``equals`` (whole output, surrounding whitespace ignored),
``contains`` / ``icontains``, ``contains-all`` / ``contains-any`` / ``icontains-all`` / ``icontains-any`` (a list),
``starts-with``, ``regex`` (Python ``re.search``), ``is-json`` (the whole output is JSON, optionally valid against a
JSON Schema given as ``value``), ``contains-json`` (some JSON object or array in the output is, optionally against
the schema) and ``number`` (a number in the output equals ``value`` within ``tolerance``). Any type negates with a
``not-`` prefix (``not-contains``, ``not-regex``). Specs are validated when the promptset loads, so a bad regex or
schema is reported with its line, not discovered mid-run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

STRING_TYPES = ("equals", "contains", "icontains", "starts-with", "regex")
LIST_TYPES = ("contains-all", "contains-any", "icontains-all", "icontains-any")
JSON_TYPES = ("is-json", "contains-json")
TYPES = (*STRING_TYPES, *LIST_TYPES, *JSON_TYPES, "number")
KEYS = ("type", "value", "tolerance")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
_FENCE = re.compile(r"```[A-Za-z]*\n?(.*?)```", re.S)
_JSON_START = re.compile(r"[\[{]")


@dataclass(frozen=True)
class Assertion:
    """One expectation: its type (maybe ``not-`` prefixed), value and, for ``number``, tolerance."""

    type: str
    value: Any = None
    tolerance: float = 0.0

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base(self) -> str:
        return self.type.removeprefix("not-")

    def describe(self) -> str:
        shown = json.dumps(self.value, ensure_ascii=False) if self.value is not None else ""
        if len(shown) > 60:
            shown = shown[:57] + "..."
        extra = f" ±{self.tolerance:g}" if self.base == "number" and self.tolerance else ""
        return f"{self.type} {shown}{extra}".strip()


@dataclass(frozen=True)
class Outcome:
    """Whether every assertion passed, and one line per failed assertion."""

    passed: bool
    failures: list[str] = field(default_factory=list)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _spec_problems(spec: Any) -> list[str]:
    if not isinstance(spec, dict):
        return [f"must be an object with 'type' and 'value', got {type(spec).__name__}"]
    problems = []
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}; expected {', '.join(KEYS)}")
    kind = spec.get("type")
    base = kind.removeprefix("not-") if isinstance(kind, str) else None
    if base not in TYPES:
        return [*problems, f"unknown type {kind!r}; expected one of {', '.join(TYPES)} (or not-<type>)"]
    value = spec.get("value")
    if base in STRING_TYPES and not (isinstance(value, str) and value):
        problems.append(f"{kind}: 'value' must be a non-empty string")
    elif base == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            problems.append(f"regex {value!r} does not compile: {exc}")
    elif base in LIST_TYPES and not _is_str_list(value):
        problems.append(f"{kind}: 'value' must be a non-empty list of non-empty strings")
    elif base in JSON_TYPES and value is not None:
        problems += _schema_problems(kind, value)
    elif base == "number" and not _finite(value):
        problems.append(f"{kind}: 'value' must be a finite number")
    tolerance = spec.get("tolerance", 0.0)
    if "tolerance" in spec and base != "number":
        problems.append(f"{kind}: 'tolerance' only applies to number")
    elif not _finite(tolerance) or tolerance < 0:
        problems.append(f"{kind}: 'tolerance' must be a finite number >= 0")
    return problems


def _schema_problems(kind: str, schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{kind}: 'value' must be a JSON Schema object (or absent)"]
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"{kind}: 'value' is not a valid JSON Schema: {exc.message}"]
    return []


def parse_assertions(raw: Any) -> tuple[list[Assertion], list[str]]:
    """Assertions from a promptset line's ``assert`` field, and one problem per bad entry (1-based)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [f"'assert' must be a list of assertions, got {type(raw).__name__}"]
    out, problems = [], []
    for i, spec in enumerate(raw, start=1):
        found = _spec_problems(spec)
        if found:
            problems += [f"assertion {i}: {p}" for p in found]
            continue
        out.append(Assertion(spec["type"], spec.get("value"), float(spec.get("tolerance", 0.0))))
    return out, problems


def numbers_in(text: str) -> list[float]:
    """Numbers written in the text: ``1,550.37`` is one number; digits inside words (``k8s``) are not numbers."""
    return [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)]


def json_values(text: str) -> Iterator[Any]:
    """Every JSON object or array in the text: fenced blocks first, then each balanced span, in order."""
    decoder = json.JSONDecoder()
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for source in sources:
        i = 0
        while (m := _JSON_START.search(source, i)) is not None:
            try:
                value, end = decoder.raw_decode(source, m.start())
            except ValueError:
                i = m.start() + 1
                continue
            yield value
            i = end


def _schema_error(value: Any, schema: dict | None) -> str | None:
    if schema is None:
        return None
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "(root)"
    return f"at {where}: {error.message}"


def _holds(a: Assertion, output: str) -> tuple[bool, str]:
    """(the un-negated assertion holds, why or why not)."""
    base, value = a.base, a.value
    if base == "equals":
        ok = output.strip() == value.strip()
        return ok, "the output is exactly it" if ok else f"output is {output.strip()[:60]!r}"
    if base in ("contains", "icontains"):
        hay, needle = (output, value) if base == "contains" else (output.casefold(), value.casefold())
        return needle in hay, "found" if needle in hay else "not found"
    if base in LIST_TYPES:
        fold = base.startswith("i")
        hay = output.casefold() if fold else output
        found = [v for v in value if (v.casefold() if fold else v) in hay]
        missing = [v for v in value if v not in found]
        ok = not missing if base.endswith("-all") else bool(found)
        return ok, f"missing {missing}" if missing else f"found {found}"
    if base == "starts-with":
        ok = output.lstrip().startswith(value)
        return ok, "it does" if ok else f"output starts {output.lstrip()[:30]!r}"
    if base == "regex":
        m = re.search(value, output)
        return m is not None, f"matched {m.group(0)[:40]!r}" if m else "no match"
    if base == "is-json":
        try:
            parsed = json.loads(output.strip())
        except ValueError as exc:
            return False, f"output is not JSON ({exc.msg} at char {exc.pos})"
        problem = _schema_error(parsed, value)
        return problem is None, problem or "valid JSON"
    if base == "contains-json":
        last = "no JSON object or array in the output"
        for parsed in json_values(output):
            problem = _schema_error(parsed, value)
            if problem is None:
                return True, "found valid JSON"
            last = f"JSON found but {problem}"
        return False, last
    numbers = numbers_in(output)
    hit = next((n for n in numbers if abs(n - value) <= a.tolerance), None)
    return hit is not None, f"found {hit:g}" if hit is not None else f"numbers in the output: {numbers[:8]}"


def check(assertion: Assertion, output: str) -> str | None:
    """None when the assertion passes, else why it failed (named by its type and value)."""
    holds, why = _holds(assertion, output or "")
    if holds != assertion.negated:
        return None
    return f"{assertion.describe()}: {'it holds but must not' if assertion.negated else why}"


def evaluate(assertions: Sequence[Assertion], output: str) -> Outcome:
    """All assertions against one output; correct when every one passes."""
    failures = [f for f in (check(a, output) for a in assertions) if f is not None]
    return Outcome(not failures, failures)
