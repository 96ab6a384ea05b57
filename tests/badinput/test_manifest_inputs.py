"""A broken manifests tree, CRD folder or validate flag through `llmplat manifests validate`: exit 1 with every
problem named by file, kind, name and path, or exit 2 when the input cannot be read, naming the file or flag."""

# ruff: noqa: E501 - the case tables keep one case per entry

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from llmplat_dagster.catalog import default_catalog_path

TOKEN = "hf_" + "Ab1" * 12  # built at runtime: no token-shaped literal in the repository
DEPLOY = "base/deployment-mistral-7b-awq.yaml"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    from llmplat_dagster.catalog import load_catalog
    from llmplat_dagster.k8s.tree import write_tree

    out = tmp_path_factory.mktemp("rendered") / "manifests"
    write_tree(load_catalog(), out)
    return out


@pytest.fixture
def tree(rendered: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(rendered, copy)
    return copy


def edit_yaml(rel: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    return apply


def add_file(name: str, doc: dict | str, overlay: str = "dev") -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / "overlays" / overlay / name).write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
        kfile = root / "overlays" / overlay / "kustomization.yaml"
        spec = yaml.safe_load(kfile.read_text())
        spec["resources"].append(name)
        kfile.write_text(yaml.safe_dump(spec))

    return apply


def replace(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        assert old in path.read_text(), (rel, old)
        path.write_text(path.read_text().replace(old, new, 1))

    return apply


def container(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]["containers"][0]


def env_token(doc: dict, name: str = "EXTRA_SETTING") -> None:
    container(doc)["env"].append({"name": name, "value": TOKEN})


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "debug", "namespace": "llm-baseline"},
    "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "env": [{"name": "HF_TOKEN", "value": TOKEN}]}]},
}
CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "warm-cache", "namespace": "llm-baseline"},
    "spec": {
        "schedule": "0 * * * *",
        "jobTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox:1.36", "args": ["--hf-token", "literal"]}],
                    }
                }
            }
        },
    },
}


def configmap(data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "llm-baseline"},
            "data": data}  # fmt: skip


def service(selector: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "orphan", "namespace": "llm-baseline"},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": 8000}]},
    }


# (case, change to the tree, exit code, fragments the output must contain)
PROBLEMS = [
    ("selector-matches-no-pod", add_file("service-orphan.yaml", service({"app": "nothing"})), 1,
     ["Service/orphan: at spec.selector", "selects no pod"]),
    ("selector-typo-in-base", edit_yaml("base/service-mistral-7b-awq.yaml",
                                        lambda d: d["spec"]["selector"].update({"model-variant": "mistral-7b-aqw"})),
     1, ["Service/mistral-7b-awq: at spec.selector", "selects no pod"]),
    ("token-in-args", edit_yaml(DEPLOY, lambda d: container(d)["args"].extend(["--hf-token", "plain"])), 1,
     ["Deployment/mistral-7b-awq: at containers[0].args", "--hf-token is given a literal value"]),
    ("token-shaped-arg", edit_yaml(DEPLOY, lambda d: container(d)["args"].append(f"--api-key={TOKEN}")), 1,
     ["containers[0].args", "credential-shaped value"]),
    ("token-in-command", edit_yaml(DEPLOY, lambda d: container(d).update(command=["sh", "-c", f"export T={TOKEN}"])),
     1, ["containers[0].command", "credential-shaped"]),
    ("token-value-under-innocent-name", edit_yaml(DEPLOY, env_token), 1,
     ["containers[0].env.EXTRA_SETTING", "use secretKeyRef"]),
    ("token-env-by-name", edit_yaml(DEPLOY, lambda d: container(d)["env"].append({"name": "HF_TOKEN2", "value": "x"})),
     1, ["containers[0].env.HF_TOKEN2"]),
    ("token-in-configmap-key", add_file("configmap-settings.yaml", configmap({"HF_TOKEN": "x"})), 1,
     ["ConfigMap/settings: at data.HF_TOKEN", "must not carry a secret"]),
    ("token-in-configmap-value", add_file("configmap-settings.yaml", configmap({"notes": f"use {TOKEN}"})), 1,
     ["ConfigMap/settings: at data.notes"]),
    ("token-in-bare-pod", add_file("pod-debug.yaml", POD), 1, ["Pod/debug: at containers[0].env.HF_TOKEN"]),
    ("token-in-cronjob", add_file("cronjob-warm.yaml", CRONJOB), 1,
     ["CronJob/warm-cache: at containers[0].args", "--hf-token is given a literal value"]),
    ("duplicate-object", replace("overlays/dev/kustomization.yaml", "- ../../base\n",
                                 "- ../../base\n- ../../base/service-mistral-7b-awq.yaml\n"), 1,
     ["Service/mistral-7b-awq: at metadata.name", "duplicate object"]),
    ("secret-with-value", add_file("secret.yaml", {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "hf-token", "namespace": "llm-baseline"}, "stringData": {"HF_TOKEN": "x"}}), 1,
     ["Secret/hf-token: at data", "must not carry a value"]),
    ("numeric-quantity", replace(DEPLOY, "cpu: '3'", "cpu: 3"), 1, ["must be a string"]),
    ("schema-type", replace("base/service-mistral-7b-judge.yaml", "port: 8000", "port: eight-thousand"), 1,
     ["Service/mistral-7b-judge: at spec.ports[0].port: 'eight-thousand' is not of type 'integer'"]),
    ("unknown-field", edit_yaml(DEPLOY, lambda d: d["spec"].update(replica=2)), 1,
     ["Deployment/mistral-7b-awq", "replica"]),
    ("invalid-label-value", edit_yaml(DEPLOY, lambda d: d["metadata"]["labels"].update(
        {"app.kubernetes.io/version": "vllm/vllm-openai"})), 1,
     ["at metadata.labels.app.kubernetes.io/version", "'vllm/vllm-openai' is not a valid label"]),
    ("label-value-with-space", edit_yaml(DEPLOY, lambda d: d["spec"]["template"]["metadata"]["labels"].update(
        {"lab.team": "quant team"})), 1, ["spec.template.metadata.labels.lab.team"]),
    ("bad-object-name", edit_yaml("base/service-mistral-7b-awq.yaml", lambda d: d["metadata"].update(name="Awq_Svc")),
     1, ["'Awq_Svc' is not a valid Kubernetes name"]),
    ("bad-namespace-name", edit_yaml(DEPLOY, lambda d: d["metadata"].update(namespace="LLM Baseline")), 1,
     ["at metadata.namespace", "'LLM Baseline' is not a valid Kubernetes name"]),
    ("scaledobject-unknown-field", edit_yaml("overlays/prod/scaledobject-mistral-7b-awq.yaml",
                                             lambda d: d["spec"].update(cooldown=5)), 1,
     ["ScaledObject/mistral-7b-awq", "cooldown"]),
]  # fmt: skip

UNREADABLE = [
    ("kustomization-not-yaml", replace("overlays/dev/kustomization.yaml", "resources:", "resources: [\n"), 2,
     ["overlays/dev/kustomization.yaml:"]),
    ("kustomization-a-list", lambda root: (root / "overlays/dev/kustomization.yaml").write_text("- ../../base\n"), 2,
     ["a kustomization must be a mapping"]),
    ("kustomization-missing", lambda root: (root / "overlays/dev/kustomization.yaml").unlink(), 2,
     ["overlays/dev: no kustomization.yaml here"]),
    ("kustomization-unknown-field", replace("overlays/dev/kustomization.yaml", "resources:", "patches: []\nresources:"),
     2, ["kustomize fields ['patches'] are not understood"]),
    ("kustomization-missing-resource", replace("overlays/dev/kustomization.yaml", "- ../../base\n",
                                               "- ../../base\n- nope.yaml\n"), 2, ["resource 'nope.yaml' does not exist"]),
    ("kustomization-resources-not-list", replace("overlays/dev/kustomization.yaml", "resources:\n",
                                                 "resources: ../../base\nx:\n"), 2, ["overlays/dev/kustomization.yaml"]),
    ("kustomization-duplicate-key", replace("overlays/dev/kustomization.yaml", "kind: Kustomization\n",
                                            "kind: Kustomization\nkind: Component\n"), 2, ["duplicate key 'kind'"]),
    # The rendered overlays leave replicas to the autoscaler (no `replicas:` block); a hand-edited one is still read.
    ("replicas-for-unknown", replace("overlays/dev/kustomization.yaml", "resources:\n",
                                     "replicas:\n- name: nobody\n  count: 1\nresources:\n"), 2,
     ["replicas for unknown Deployment 'nobody'"]),
    ("replicas-count-text", replace("overlays/dev/kustomization.yaml", "resources:\n",
                                    "replicas:\n- name: mistral-7b-awq\n  count: one\nresources:\n"), 2,
     ["needs a name and an integer count"]),
    ("resource-duplicate-key", replace(DEPLOY, "kind: Deployment\n", "kind: Deployment\nkind: StatefulSet\n"), 2,
     [f"{DEPLOY}:", "duplicate key 'kind'"]),
    ("resource-not-an-object", lambda root: (root / DEPLOY).write_text("just a string\n"), 2,
     [f"{DEPLOY}: document 1 is not a Kubernetes object"]),
    ("resource-without-name", edit_yaml(DEPLOY, lambda d: d["metadata"].pop("name")), 2,
     ["document 1 is not a Kubernetes object"]),
    ("base-folder-without-kustomization", lambda root: (root / "base/kustomization.yaml").unlink(), 2,
     ["base: no kustomization.yaml here"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "code", "fragments"), PROBLEMS + UNREADABLE,
                         ids=[c[0] for c in PROBLEMS + UNREADABLE])  # fmt: skip
def test_a_broken_tree_is_reported_by_file_kind_name_and_path(llmplat, tree, crd_dir, case, change, code, fragments):
    change(tree)
    overlay = "prod" if "scaledobject" in case else "dev"
    result = llmplat("manifests", "validate", "--dir", str(tree), "--overlay", overlay, "--crd-dir", str(crd_dir))
    assert result.code == code, result.text
    for fragment in fragments:
        assert fragment in result.text, result.text


def test_json_output_lists_each_problem_with_its_place(llmplat, tree, crd_dir):
    add_file("pod-debug.yaml", POD)(tree)
    result = llmplat("manifests", "validate", "--dir", str(tree), "--overlay", "dev", "--crd-dir", str(crd_dir),
                     "-o", "json")  # fmt: skip
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False and report["problems"] == 1
    [problem] = report["overlays"][0]["problems"]
    assert problem["kind"] == "Pod" and problem["path"] == "containers[0].env.HF_TOKEN"
    assert problem["source"] == ""  # built objects; the file is named in text mode by kind/name


def write_crd(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "crd.yaml").write_text(text)
    return folder


FLAGS = [
    ("k8s-version-unknown", ["--k8s-version", "9.99"], "argument --k8s-version: Kubernetes version '9.99' has no schemas"),
    ("k8s-version-words", ["--k8s-version", "latest"], "argument --k8s-version"),
    ("k8s-version-too-old", ["--k8s-version", "1.10"], "argument --k8s-version"),
    ("dir-missing", ["--dir", "/nonexistent/manifests"], "--dir /nonexistent/manifests: no such folder"),
    ("dir-and-catalog", ["--dir", "{tree}", "--catalog", str(default_catalog_path())], "pass one or the other"),
    ("crd-dir-missing", ["--dir", "{tree}", "--crd-dir", "/nonexistent/crds"], "--crd-dir: CRD folder /nonexistent/crds"),
    ("crd-dir-empty", ["--dir", "{tree}", "--crd-dir", "{empty}"], "holds no CustomResourceDefinition"),
    ("crd-dir-not-yaml", ["--dir", "{tree}", "--crd-dir", "{broken}"], "crd.yaml:3"),
    ("crd-without-group", ["--dir", "{tree}", "--crd-dir", "{groupless}"], "a CustomResourceDefinition without 'group'"),
    ("overlay-unknown", ["--overlay", "qa"], "argument --overlay: invalid choice: 'qa'"),
    ("output-unknown", ["-o", "xml"], "argument -o/--output: invalid choice: 'xml'"),
    ("revision-no-equals", ["--revision", "mistral-7b-awq"], "argument --revision: takes VARIANT=REVISION"),
    ("revision-unknown-variant", ["--revision", "mistral-7b-gptq=abc"], "unknown variant 'mistral-7b-gptq'"),
    ("image-latest", ["--image", "vllm/vllm-openai:latest"], "must be pinned"),
    ("catalog-missing", ["--catalog", "/nonexistent/catalog.yaml"], "cannot read catalog /nonexistent/catalog.yaml"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "args", "fragment"), FLAGS, ids=[c[0] for c in FLAGS])
def test_bad_validate_flags_exit_2_naming_the_flag(llmplat, tree, tmp_path, case, args, fragment):
    folders = {
        "{tree}": str(tree),
        "{empty}": str(write_crd(tmp_path / "empty", "# nothing\n")),
        "{broken}": str(write_crd(tmp_path / "broken", "kind: CustomResourceDefinition\nspec: [\n")),
        "{groupless}": str(write_crd(tmp_path / "groupless", yaml.safe_dump(
            {"kind": "CustomResourceDefinition", "metadata": {"name": "x"}, "spec": {"names": {"kind": "X"}}}))),
    }  # fmt: skip
    result = llmplat("manifests", "validate", *[folders.get(a, a) for a in args])
    assert result.code == 2, result.text
    assert fragment in result.err, result.err


def test_validate_catalog_is_not_ignored_when_a_manifests_folder_exists(llmplat, tree, tmp_path, monkeypatch):
    """`--catalog X` in a checkout with ./manifests used to validate ./manifests and ignore X."""
    monkeypatch.chdir(tree.parent)
    bad = tmp_path / "catalog.yaml"
    bad.write_text(default_catalog_path().read_text().replace("team: quant", "team: quant team"))
    result = llmplat("manifests", "validate", "--catalog", str(bad))
    assert result.code == 2 and f"{bad}:" in result.err and "team 'quant team'" in result.err, result.text


def test_diff_of_a_missing_folder_is_an_error_not_a_full_diff(llmplat, tmp_path):
    result = llmplat("manifests", "diff", "--dir", str(tmp_path / "nope"))
    assert result.code == 2 and "--dir" in result.err and "no such folder" in result.err


def test_diff_json_names_the_changed_files(llmplat, tree):
    replace("base/service-mistral-7b-judge.yaml", "port: 8000", "port: 8001")(tree)
    result = llmplat("manifests", "diff", "--dir", str(tree), "-o", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["in_sync"] is False
    assert report["changed"] == [
        f"{tree}/base/service-mistral-7b-judge.yaml",
        "rendered/base/service-mistral-7b-judge.yaml",
    ]
