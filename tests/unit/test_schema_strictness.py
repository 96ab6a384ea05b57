"""Custom resources without a CRD schema: reported as not schema-checked, failing only in strict mode; a kind the
project validates itself (PROJECT_VALIDATORS) counts as checked."""

from __future__ import annotations

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s import render
from llmplat_dagster.k8s import validate as v
from llmplat_dagster.k8s.cluster import ClusterError
from llmplat_dagster.k8s.dryrun import DryRunCluster

NO_CRDS = v.CrdSchemas({}, {})


@pytest.fixture(scope="module")
def prod() -> list[dict]:
    return render.render(load_catalog(), "prod")


@pytest.mark.parametrize(("strict", "failing"), [(False, 0), (True, 5)])
def test_unchecked_custom_resources_fail_only_in_strict_mode(prod, strict: bool, failing: int):
    problems = v.validate_objects(prod, NO_CRDS)
    assert [p.name for p in problems if p.unchecked] == ["mistral-7b-awq", "mistral-7b-fp16", "mistral-7b-lora",
                                                         "mistral-7b-judge", "vllm"]  # fmt: skip
    assert len(v.failures(problems, strict)) == failing


def test_a_real_problem_fails_with_or_without_strict(prod):
    broken = [dict(o) for o in prod]
    service = next(o for o in broken if o["kind"] == "Service")
    service["spec"] = {**service["spec"], "ports": [{"port": "eight-thousand"}]}
    for strict in (False, True):
        assert any(
            not p.unchecked and "Service/" in str(p) for p in v.failures(v.validate_objects(broken, NO_CRDS), strict)
        )


@pytest.mark.parametrize(("found", "counted_as"), [([], "checked"), (["bad rule"], "failed")])
def test_a_kind_with_a_project_validator_counts_as_checked(prod, monkeypatch, found, counted_as):
    seen = []

    def project_check(obj, source):
        seen.append(obj["metadata"]["name"])
        return [v.Problem(obj["kind"], obj["metadata"]["name"], "spec", m, source) for m in found]

    monkeypatch.setitem(v.PROJECT_VALIDATORS, ("monitoring.coreos.com", "ServiceMonitor"), project_check)
    problems = v.validate_objects(prod, NO_CRDS)
    monitor = [p for p in problems if p.kind == "ServiceMonitor"]
    assert seen == ["vllm"]
    assert not any(p.unchecked for p in monitor)  # strict mode has nothing to complain about for it
    assert [p.message for p in monitor] == found
    assert len(v.failures(problems, strict=True)) == 4 + len(found)  # the four ScaledObjects are still unchecked
    assert (counted_as == "failed") == bool(v.failures(monitor, strict=False))


def test_the_dry_run_applies_unchecked_resources_unless_strict(tmp_path, prod):
    objects = [o for o in prod if o["metadata"].get("name") == "mistral-7b-awq"]
    assert DryRunCluster(tmp_path / "a", NO_CRDS).apply(objects, variant="mistral-7b-awq").message.startswith("dry run")
    with pytest.raises(ClusterError, match="ScaledObject/mistral-7b-awq: at apiVersion: not schema-checked"):
        DryRunCluster(tmp_path / "b", NO_CRDS, strict=True).apply(objects, variant="mistral-7b-awq")


def test_the_dry_run_reports_the_autoscalers_minimum_when_it_owns_replicas(tmp_path, prod):
    cluster = DryRunCluster(tmp_path, NO_CRDS)
    objects = [o for o in prod if o["metadata"].get("name") == "mistral-7b-awq"]
    cluster.apply(objects, variant="mistral-7b-awq")
    rollout = cluster.wait_for_rollout("llm-baseline", "mistral-7b-awq", timeout_s=1)
    assert (rollout.ready_replicas, rollout.desired_replicas) == (2, 2)  # the ScaledObject's minReplicaCount
