"""The committed kustomize tree: valid, and never out of step with the catalog."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s.render import object_id, render
from llmplat_dagster.k8s.tree import build, diff_tree, write_tree
from llmplat_dagster.k8s.validate import CrdSchemas, validate_objects


@pytest.fixture(scope="module")
def crds(crd_dir: Path) -> CrdSchemas:
    return CrdSchemas.from_dirs([crd_dir])


def test_committed_tree_matches_what_the_catalog_renders(repo_root: Path):
    drift = diff_tree(load_catalog(), repo_root / "manifests")
    assert drift == "", f"manifests/ drifted from the catalog; run `llmplat manifests render`:\n{drift}"


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kustomize_overlay_builds_to_exactly_the_rendered_objects(repo_root: Path, overlay: str):
    built = {object_id(o): o for o in build(repo_root / "manifests" / "overlays" / overlay)}
    assert built == {object_id(o): o for o in render(load_catalog(), overlay)}


def test_changing_the_catalog_without_rerendering_is_drift(repo_root: Path, tmp_path: Path):
    tree = tmp_path / "manifests"
    shutil.copytree(repo_root / "manifests", tree)
    changed = load_catalog(revisions={"mistral-7b-fp16": "e" * 40})
    drift = diff_tree(changed, tree)
    assert "-        - 63a8b081895390a26e140280378bc85ec8bce07a" in drift
    assert "+        - " + "e" * 40 in drift
    write_tree(changed, tree)
    assert diff_tree(changed, tree) == ""


def test_render_removes_files_the_catalog_no_longer_produces(tmp_path: Path):
    catalog = load_catalog()
    write_tree(catalog, tmp_path)
    stale = tmp_path / "base" / "deployment-mistral-7b-gone.yaml"
    stale.write_text((tmp_path / "base" / "deployment-mistral-7b-awq.yaml").read_text())
    hand_written = tmp_path / "base" / "notes.yaml"
    hand_written.write_text("# mine\n")
    write_tree(catalog, tmp_path)
    assert not stale.exists() and hand_written.exists()


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_validates_strictly(repo_root: Path, crds: CrdSchemas, overlay: str):
    objects = build(repo_root / "manifests" / "overlays" / overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Service", "PersistentVolumeClaim", "ServiceMonitor"} <= kinds
    assert validate_objects(objects, crds) == []


def test_invalid_objects_are_reported_with_kind_name_and_path(crds: CrdSchemas):
    objects = copy.deepcopy(render(load_catalog(), "prod"))
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    scaled["spec"]["minReplicaCount"] = "two"
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeEvery"] = "15s"
    problems = [str(p) for p in validate_objects(objects, crds)]
    assert problems == [
        "Deployment/mistral-7b-awq: at spec.template.spec.containers[0]: Additional properties are not allowed "
        "('imagePullPolcy' was unexpected)",
        f"ScaledObject/{scaled['metadata']['name']}: at spec.minReplicaCount: 'two' is not of type 'integer'",
        "ServiceMonitor/vllm: at spec.endpoints[0]: Additional properties are not allowed "
        "('scrapeEvery' was unexpected)",
    ]


def test_house_rules_catch_what_schemas_allow():
    objects = copy.deepcopy(render(load_catalog(), "dev"))
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["cpu"] = 4
    container["env"].append({"name": "HF_TOKEN_INLINE", "value": "hf_abc"})
    problems = [str(p) for p in validate_objects([deploy], CrdSchemas({}, {}))]
    assert "Deployment/mistral-7b-awq: at containers[0].resources.limits.cpu: quantity 4 must be a string" in problems
    assert any("HF_TOKEN_INLINE" in p and "use secretKeyRef" in p for p in problems)


def test_custom_resources_without_a_crd_are_not_silently_accepted():
    objects = render(load_catalog(), "prod")
    found = validate_objects(objects, CrdSchemas({}, {}))
    problems = [str(p) for p in found]
    assert (
        "ScaledObject/mistral-7b-awq: at apiVersion: not schema-checked: no CRD schema for keda.sh/v1alpha1"
        in (problems[0])
    )
    assert "pass --crd-dir DIR (or LLMPLAT_CRD_DIR) or --crds-from-cluster" in problems[0]
    assert len(problems) == 5 and all(p.unchecked for p in found)  # four ScaledObjects and the ServiceMonitor


def test_secret_template_has_no_value_and_is_not_applied(repo_root: Path):
    template = (repo_root / "manifests" / "base" / "hf-token-secret.template.yaml").read_text()
    assert "stringData" not in template and "\ndata:" not in template
    kustomization = (repo_root / "manifests" / "base" / "kustomization.yaml").read_text()
    assert "hf-token-secret" not in kustomization
