"""`llmplat manifests render|validate|diff` as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from llmplat_dagster.catalog import default_catalog_path
from llmplat_dagster.cli import main


def test_render_then_diff_then_drift(tmp_path: Path, capsys):
    out = tmp_path / "manifests"
    assert main(["manifests", "render", "--out", str(out)]) == 0
    assert "rendered 32 files" in capsys.readouterr().out
    assert main(["manifests", "diff", "--dir", str(out)]) == 0
    assert "matches the catalog" in capsys.readouterr().out

    assert main(["manifests", "diff", "--dir", str(out), "--revision", "mistral-7b-awq=" + "f" * 40]) == 1
    captured = capsys.readouterr()
    assert "+        - " + "f" * 40 in captured.out
    assert "run `llmplat manifests render` and commit" in captured.err


def test_validate_both_overlays_with_crds(tmp_path: Path, crd_dir: Path, capsys):
    out = tmp_path / "m"
    main(["manifests", "render", "--out", str(out)])
    capsys.readouterr()
    assert main(["manifests", "validate", "--dir", str(out), "--crd-dir", str(crd_dir)]) == 0
    text = capsys.readouterr().out
    assert f"{out}/overlays/dev: 24 objects, Kubernetes 1.31 strict + CRD schemas: ok" in text
    assert f"{out}/overlays/prod: 24 objects, Kubernetes 1.31 strict + CRD schemas: ok" in text


def test_validate_judges_a_tree_scaled_past_its_node_pool(tmp_path: Path, crd_dir: Path, capsys):
    out = tmp_path / "m"
    main(["manifests", "render", "--out", str(out)])
    scaled = out / "overlays" / "prod" / "scaledobject-mistral-7b-awq.yaml"
    scaled.write_text(scaled.read_text().replace("maxReplicaCount: 3", "maxReplicaCount: 6"))
    capsys.readouterr()
    assert main(["manifests", "validate", "--dir", str(out), "--overlay", "prod", "--crd-dir", str(crd_dir)]) == 1
    assert (
        "Overlay/prod: at replicas: overlay 'prod': field 'max_replicas': 15 model servers at full scale "
        "(mistral-7b-awq 6, mistral-7b-fp16 3, mistral-7b-lora 3, mistral-7b-judge 3) need 15 GPU nodes (one server "
        "per node by anti-affinity), but node pool 'gpu-spot' has at most 12 (max_nodes)"
    ) in capsys.readouterr().out


def test_validate_checks_alert_rules_with_promtool(tmp_path: Path, crd_dir: Path, capsys):
    """No upstream CRD for PrometheusRule is loaded: the project's own check runs promtool on the rules."""
    out = tmp_path / "m"
    main(["manifests", "render", "--out", str(out)])
    rules = out / "base" / "prometheusrule-vllm.yaml"
    text = rules.read_text()
    rules.write_text(text.replace("> 0.05", "> > 0.05", 1))
    capsys.readouterr()
    assert main(["manifests", "validate", "--dir", str(out), "--overlay", "dev", "--crd-dir", str(crd_dir)]) == 1
    printed = capsys.readouterr().out
    assert "PrometheusRule/vllm: at spec.groups[0].rules[1]: checked by promtool: " in printed
    assert 'group "llmplat-vllm", rule 2, "VllmErrorRatioHigh": could not parse expression' in printed
    rules.write_text(text.replace("for: 5m", "for: 5 minutes", 1))
    assert main(["manifests", "validate", "--dir", str(out), "--overlay", "dev", "--crd-dir", str(crd_dir)]) == 1
    assert "PrometheusRule/vllm: at spec.groups[0].rules[1].for: '5 minutes' does not match" in capsys.readouterr().out


def test_validate_reports_a_broken_file_by_kind_name_and_path(tmp_path: Path, crd_dir: Path, capsys):
    out = tmp_path / "m"
    main(["manifests", "render", "--out", str(out)])
    svc = out / "base" / "service-mistral-7b-judge.yaml"
    svc.write_text(svc.read_text().replace("port: 8000", "port: eight-thousand"))
    capsys.readouterr()
    assert main(["manifests", "validate", "--dir", str(out), "--overlay", "dev", "--crd-dir", str(crd_dir)]) == 1
    assert "Service/mistral-7b-judge: at spec.ports[0].port: 'eight-thousand' is not of type 'integer'" in (
        capsys.readouterr().out
    )


def test_a_bad_catalog_exits_2_naming_file_line_variant_field(tmp_path: Path, capsys):
    bad = tmp_path / "catalog.yaml"
    text = default_catalog_path().read_text().replace("quantization: none", "quantization: int3")
    bad.write_text(text)
    assert main(["manifests", "render", "--catalog", str(bad), "--out", str(tmp_path / "o")]) == 2
    line = text[: text.index("quantization: int3")].count("\n") + 1
    err = capsys.readouterr().err
    assert f"{bad}:{line}: variant 'mistral-7b-fp16': field 'quantization': unknown quantization 'int3'" in err
    assert not (tmp_path / "o").exists()


def test_console_script_is_installed_and_prints_one_overlay():
    exe = shutil.which("llmplat", path=str(Path(sys.executable).parent))
    assert exe, "the `llmplat` console script is not installed"
    done = subprocess.run([exe, "manifests", "render", "--stdout", "--overlay", "prod"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "kind: ScaledObject" in done.stdout and "kind: HorizontalPodAutoscaler" not in done.stdout
