"""PrometheusRule objects are checked by the project (structure + promtool), and say so; never silently passed."""

from __future__ import annotations

import copy

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s import promrules
from llmplat_dagster.k8s.monitoring import prometheus_rule
from llmplat_dagster.k8s.validate import CrdSchemas, validate_objects

CATALOG = load_catalog()
RULE = prometheus_rule(CATALOG, CATALOG.overlay("prod"))
NO_CRDS = CrdSchemas({}, {})


def _broken(expr: str = "sum(rate(x[5m])") -> dict:
    obj = copy.deepcopy(RULE)
    obj["spec"]["groups"][0]["rules"][2]["expr"] = expr
    return obj


def test_the_rendered_rules_pass_promtool_and_the_structural_check():
    assert promrules.promtool(), "promtool not found: install Debian's prometheus package (.ci/run does it)"
    assert validate_objects([RULE], NO_CRDS) == []


def test_a_bad_expression_names_the_rule_and_says_promtool_found_it():
    (problem,) = validate_objects([_broken()], NO_CRDS)
    assert (problem.kind, problem.name, problem.path) == ("PrometheusRule", "vllm", "spec.groups[0].rules[2]")
    assert problem.message.startswith("checked by promtool: ") and '"VllmNoReadyReplica"' in problem.message
    assert not problem.unchecked


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o["spec"]["groups"][0]["rules"][0].update(severity="page"), "spec.groups[0].rules[0]"),
        (lambda o: o["spec"]["groups"][0]["rules"][1].update({"for": "5 minutes"}), "spec.groups[0].rules[1].for"),
        (lambda o: o["spec"]["groups"][0]["rules"][3].pop("expr"), "spec.groups[0].rules[3]"),
        (lambda o: o["spec"].update(group=[]), "spec"),
    ],
    ids=["unknown-field", "bad-duration", "no-expr", "misspelt-groups"],
)
def test_fields_the_renderer_does_not_write_are_structural_errors(mutate, path):
    obj = copy.deepcopy(RULE)
    mutate(obj)
    problems = validate_objects([obj], NO_CRDS)
    assert problems and problems[0].path == path and "structural check of a PrometheusRule" in problems[0].message


def test_without_promtool_the_rules_are_reported_unchecked_not_passed(monkeypatch):
    monkeypatch.setattr(promrules, "promtool", lambda: None)
    (problem,) = validate_objects([_broken()], NO_CRDS)
    assert problem.unchecked and problem.message.startswith("not checked: promtool not found")


def test_a_crd_schema_from_the_cluster_does_not_stop_promtool_parsing_the_expressions():
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    crd = {
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "PrometheusRule"},
            "versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}],
        },
    }
    crds = CrdSchemas.from_documents([("cluster:prometheusrules", crd)])
    (problem,) = validate_objects([_broken()], crds)
    assert problem.message.startswith("checked by promtool: ")
