"""`llmplat manifests validate` as a person types it, in a checkout with and without CRDs beside it.

A fresh clone has no CRD folder: custom resources are reported as not schema-checked (with how to check them)
and the command passes, so `make demo` works; `--strict` (or LLMPLAT_STRICT_SCHEMAS=1) fails on them; with the
upstream CRDs everything is checked and strict passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LLMPLAT = str(Path(sys.executable).parent / "llmplat")
UNCHECKED = ["ServiceMonitor/vllm", *(f"ScaledObject/mistral-7b-{v}" for v in ("awq", "fp16", "lora", "judge"))]


@pytest.fixture
def clone(tmp_path: Path, repo_root: Path) -> Path:
    """The committed manifests in a folder with nothing beside it, as a fresh clone has them."""
    shutil.copytree(repo_root / "manifests", tmp_path / "checkout" / "manifests")
    return tmp_path / "checkout"


def objects(overlay: str) -> int:
    """How many objects the overlay holds: the reports count what the catalog renders, whatever it grows to."""
    from llmplat_dagster.catalog import load_catalog
    from llmplat_dagster.k8s.render import render

    return len(render(load_catalog(), overlay))


def validate(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LLMPLAT_CRD_DIR", "LLMPLAT_STRICT_SCHEMAS")}
    return subprocess.run(
        [LLMPLAT, "manifests", "validate", *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True
    )


def test_without_crds_custom_resources_are_reported_not_schema_checked_and_it_passes(clone: Path):
    done = validate(clone)
    assert done.returncode == 0, done.stdout + done.stderr
    dev = objects("dev")
    assert f"manifests/overlays/dev: {dev} objects, Kubernetes 1.31 strict + CRD schemas: ok, 1 custom" in done.stdout
    for ref in UNCHECKED:
        assert f"  not schema-checked: {ref} (no CRD schema loaded)" in done.stdout
    assert "check custom resources with --crd-dir DIR (or LLMPLAT_CRD_DIR) or --crds-from-cluster" in done.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_strict_fails_on_custom_resources_no_crd_checks(clone: Path, how: str):
    done = validate(clone, "--strict") if how == "flag" else validate(clone, LLMPLAT_STRICT_SCHEMAS="1")
    assert done.returncode == 1
    prod = objects("prod")
    assert f"manifests/overlays/prod: {prod} objects, Kubernetes 1.31 strict + CRD schemas: 5 problem(s)" in done.stdout
    assert (
        "  ScaledObject/mistral-7b-awq: at apiVersion: not schema-checked: no CRD schema for keda.sh/v1alpha1 "
        "ScaledObject (loaded: none)"
    ) in done.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_with_the_upstream_crds_strict_passes_and_everything_is_checked(clone: Path, crd_dir: Path, how: str):
    done = (
        validate(clone, "--strict", "--crd-dir", str(crd_dir))
        if how == "flag"
        else validate(clone, LLMPLAT_STRICT_SCHEMAS="1", LLMPLAT_CRD_DIR=str(crd_dir))
    )
    assert done.returncode == 0, done.stdout
    prod = objects("prod")
    assert f"manifests/overlays/prod: {prod} objects, Kubernetes 1.31 strict + CRD schemas: ok\n" in done.stdout
    assert "not schema-checked" not in done.stdout


def test_a_broken_custom_resource_fails_even_without_strict(clone: Path, crd_dir: Path):
    scaled = clone / "manifests" / "overlays" / "prod" / "scaledobject-mistral-7b-awq.yaml"
    scaled.write_text(scaled.read_text().replace("pollingInterval: 15", "pollingInterval: fifteen"))
    done = validate(clone, "--crd-dir", str(crd_dir), "--overlay", "prod")
    assert done.returncode == 1
    assert "ScaledObject/mistral-7b-awq: at spec.pollingInterval: 'fifteen' is not of type 'integer'" in done.stdout


def test_a_garbage_strict_variable_is_refused_naming_it(clone: Path):
    """The same 1/0 switch the Dagster settings read: `maybe` is neither, and is not silently taken as off."""
    done = validate(clone, LLMPLAT_STRICT_SCHEMAS="maybe")
    assert done.returncode == 2 and "LLMPLAT_STRICT_SCHEMAS='maybe': expected 1 or 0" in done.stderr
    assert validate(clone, LLMPLAT_STRICT_SCHEMAS="0").returncode == 0  # explicitly off: unchecked ones only listed
