"""PrometheusRule objects, checked by this project because no upstream CRD schema is vendored for them.

Two checks, reported as what they are ("checked by promtool", never "CRD schema"): a structural schema of the
fields the renderer writes (metadata, spec.groups[].name/interval/rules[], each rule's alert or record, expr,
for, labels, annotations; anything else is an error), then `promtool check rules` on the groups, which parses
every expression and duration the way Prometheus will. promtool comes from Debian's `prometheus` package; where
it is missing the rules are reported as not checked (`unverified`), never as passing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

KIND = ("monitoring.coreos.com", "PrometheusRule")
_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": "string", "minLength": 1},
        "for": {"type": "string", "pattern": _DURATION},
        "keep_firing_for": {"type": "string", "pattern": _DURATION},
        "labels": _STRINGS,
        "annotations": _STRINGS,
    },
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRINGS},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "rules": {"type": "array", "items": _RULE},
                        },
                    },
                }
            },
        },
    },
}
_WHERE = re.compile(r'group "(?P<group>[^"]*)", rule (?P<rule>\d+)')


def promtool() -> str | None:
    """promtool on PATH, else Debian's /usr/bin/promtool (PATH may be trimmed, e.g. in CI)."""
    found = shutil.which("promtool")
    return found or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)


def structure_problems(obj: dict[str, Any]) -> list[tuple[str, str]]:
    import jsonschema  # only when a PrometheusRule is validated, not when the code location loads

    from llmplat_dagster.k8s.validate import error_path

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [(error_path(e), f"{e.message} (structural check of a PrometheusRule)") for e in errors]


def check_rules(groups: list[dict[str, Any]], binary: str) -> list[tuple[str, str]]:
    """`promtool check rules` on the groups; each failure with the spec path of the rule it names."""
    with tempfile.TemporaryDirectory(prefix="llmplat-rules-") as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        done = subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        return []
    names = [g.get("name") for g in groups]
    problems = []
    for line in (done.stdout + done.stderr).splitlines():
        line = line.strip()
        if not line.startswith(str(path)):
            continue
        message = line.removeprefix(f"{path}:").strip()
        where = _WHERE.search(message)
        at = "spec.groups"
        if where and where["group"] in names:
            at = f"spec.groups[{names.index(where['group'])}].rules[{int(where['rule']) - 1}]"
        problems.append((at, f"checked by promtool: {message}"))
    return problems or [("spec.groups", f"checked by promtool: failed ({done.returncode}): {done.stderr.strip()}")]


def rule_problems(obj: dict[str, Any], structural: bool = True) -> tuple[list[tuple[str, str]], bool]:
    """(path, message) problems and whether the rules went unverified (no promtool to run). `structural=False`
    when a CRD schema already judged the structure (e.g. read from the cluster): promtool still parses the PromQL."""
    problems = structure_problems(obj) if structural else []
    if problems:
        return problems, False
    binary = promtool()
    if binary is None:
        return [
            (
                "spec.groups",
                "not checked: promtool not found (Debian: `apt-get install -y prometheus`); the structural "
                "check passed, the expressions were not parsed",
            )
        ], True
    groups = (obj.get("spec") or {}).get("groups")
    return (check_rules(groups, binary) if isinstance(groups, list) else []), False
