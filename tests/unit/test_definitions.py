"""The graph's shape, the environment choice, and the local instance configuration."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.rollout import GOLDEN_CHECKS
from llmplat_dagster.settings import Settings, SettingsError

VARIANTS = ["mistral-7b-awq", "mistral-7b-fp16", "mistral-7b-lora", "mistral-7b-judge"]


def test_every_expected_asset_check_and_job_key():
    defs = build_definitions(Settings())
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    stages = ("manifests", "deployment", "readiness", "canary")
    evaluation = {"quant_sensitivity_responses", "quant_quality_comparison", "lora_ab_experiment", "quality_trend"}
    evaluation |= {"promotion_record"}
    pins = {f"llm_baseline/{v}/revision_pin" for v in VARIANTS}
    assert keys == {f"llm_baseline/{v}/{s}" for v in VARIANTS for s in (*stages, "load_sweep")} | pins | {
        f"llm_baseline/{k}" for k in (*evaluation, "shared/manifests")
    }
    assert not any(graph.get(dg.AssetKey.from_user_string(k)).is_materializable for k in pins)  # pins are recorded
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    manifests = {k for k in keys if k.endswith("/manifests")}
    golden = {(f"llm_baseline/{v}/readiness", c) for v in VARIANTS for c in GOLDEN_CHECKS}
    gates = {
        ("llm_baseline/quant_quality_comparison", f"promotion_gate_{v}") for v in ("mistral_7b_awq", "mistral_7b_lora")
    }
    assert checks == {(k, "schema_valid") for k in manifests} | golden | gates
    daily = {"canary", "quant_sensitivity_responses", "quant_quality_comparison", "lora_ab_experiment"}
    daily |= {"promotion_record"}
    for key in graph.get_all_asset_keys():
        partitioned = graph.get(key).partitions_def is not None
        assert partitioned == (key.path[-1] in daily), key
    assert tuple(GOLDEN_CHECKS) == ("models_listed", "chat_completion", "metric_contract")
    for v in VARIANTS:
        for stage in (*stages, "revision_pin"):
            assert graph.get(dg.AssetKey(["llm_baseline", v, stage])).group_name == v.replace("-", "_")
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    per_variant = {f"{stage}_{v.replace('-', '_')}_job" for v in VARIANTS for stage in ("rollout", "canary")}
    assert jobs == per_variant | {
        "manifests_job",
        "rollout_job",
        "canary_job",
        "baseline_job",
        "nightly_comparison_job",
        "revision_rollout_job",
        "autoscaling_validation_job",
        "load_sweep_job",
        "pin_revision_job",
    }
    awq = defs.resolve_job_def("rollout_mistral_7b_awq_job").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in awq} == {f"llm_baseline/mistral-7b-awq/{s}" for s in stages[:3]}
    assert {s.name for s in defs.schedules} == {"nightly_comparison_schedule", "load_sweep_schedule"}
    assert {s.name for s in defs.sensors} == {
        "model_revision_sensor",
        "promptset_sensor",
        "run_failure_alert_sensor",
    }
    rollout = defs.resolve_job_def("rollout_job").asset_layer.selected_asset_keys
    assert {k.path[-1] for k in rollout} == {"manifests", "deployment", "readiness"}
    canary = defs.resolve_job_def("canary_job").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in canary} == {f"llm_baseline/{v}/canary" for v in VARIANTS}
    sweeps = defs.resolve_job_def("load_sweep_job").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in sweeps} == {f"llm_baseline/{v}/load_sweep" for v in VARIANTS}
    baseline = defs.resolve_job_def("baseline_job").asset_layer.selected_asset_keys
    assert not any(k.path[-1] == "load_sweep" for k in baseline)  # on demand and weekly, not in the main job


def test_importing_reads_no_environment_and_the_choice_is_made_when_built(monkeypatch):
    monkeypatch.setenv("LLMPLAT_ENV", "staging")
    module = importlib.reload(importlib.import_module("llmplat_dagster.definitions"))
    with pytest.raises(SettingsError, match="LLMPLAT_ENV='staging' is not an environment"):
        module.defs()
    monkeypatch.setenv("LLMPLAT_ENV", "prod")
    assert isinstance(module.defs(), dg.Definitions)


def test_settings_parse_revision_pins_and_reject_garbage():
    s = Settings.from_env({"LLMPLAT_MODEL_REVISIONS": "mistral-7b-awq=" + "a" * 40, "LLMPLAT_ENV": "prod"})
    assert s.revisions == {"mistral-7b-awq": "a" * 40} and s.overlay == "prod"
    with pytest.raises(SettingsError, match="LLMPLAT_MODEL_REVISIONS: expected VARIANT=VALUE"):
        Settings.from_env({"LLMPLAT_MODEL_REVISIONS": "mistral-7b-awq"})


def test_strictness_and_revision_resolution_are_settings():
    s = Settings.from_env({"LLMPLAT_STRICT_SCHEMAS": "1", "LLMPLAT_RESOLVE_REVISIONS": "0", "HF_ENDPOINT": "http://h"})
    assert s.strict_schemas and not s.hub_online  # an explicit 0 wins over a configured Hub
    assert Settings.from_env({"HF_ENDPOINT": "http://h"}).hub_online and Settings(environment="prod").hub_online
    assert not Settings.from_env({}).hub_online and not Settings.from_env({}).strict_schemas  # the local default
    with pytest.raises(SettingsError, match="LLMPLAT_STRICT_SCHEMAS='maybe': expected 1 or 0"):
        Settings.from_env({"LLMPLAT_STRICT_SCHEMAS": "maybe"})


@pytest.mark.parametrize(
    ("environment", "autoscaler"), [("local", "HorizontalPodAutoscaler"), ("prod", "ScaledObject")]
)
def test_manifest_assets_materialize_with_content_hash_versions(crd_dir: Path, environment: str, autoscaler: str):
    defs = build_definitions(Settings(environment=environment, crd_dirs=(crd_dir,), resolve_revisions=False))
    result = defs.resolve_job_def("manifests_job").execute_in_process()
    assert result.success
    assert {m.asset_key.path[-1] for m in result.get_asset_materialization_events()} == {"manifests"}
    awq = result.output_for_node("llm_baseline__mistral_7b_awq__manifests")
    assert [o["kind"] for o in awq] == [
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        autoscaler,
    ]
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    meta = mats["llm_baseline/mistral-7b-awq/manifests"].materialization.metadata
    assert len(meta["content_hash"].value) == 16
    assert mats["llm_baseline/mistral-7b-awq/manifests"].materialization.tags["dagster/data_version"] == (
        meta["content_hash"].value
    )
    assert all(e.passed for e in result.get_asset_check_evaluations())


@pytest.mark.parametrize(
    ("strict", "severity"), [(False, dg.AssetCheckSeverity.WARN), (True, dg.AssetCheckSeverity.ERROR)]
)
def test_schema_check_reports_unchecked_custom_resources_and_strict_blocks(strict: bool, severity):
    defs = build_definitions(Settings(environment="prod", strict_schemas=strict, resolve_revisions=False))
    result = defs.resolve_job_def("manifests_job").execute_in_process(raise_on_error=False)
    evals = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    awq = evals["llm_baseline/mistral-7b-awq/manifests"]
    assert not awq.passed and awq.severity == severity
    assert awq.metadata["not_schema_checked"].value == ["ScaledObject/mistral-7b-awq"]
    assert "not schema-checked" in awq.description and "LLMPLAT_CRD_DIR" in awq.description
    assert result.success is not strict  # a blocking check at ERROR fails the run; at WARN it only reports


def test_dagster_definitions_validate_passes_on_the_workspace(repo_root: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "LLMPLAT_CRD_DIR"} | {"DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_local_instance_is_sqlite_under_dagster_home_with_a_run_queue(repo_root: Path, tmp_path: Path, monkeypatch):
    """Rollouts serialised per variant and retried dead runs: shown by making them happen in
    tests/integration/test_webserver_journeys.py, on this same file."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text((repo_root / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert str(tmp_path) in instance.run_storage._conn_string
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    workspace = yaml.safe_load((repo_root / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "llmplat_dagster.definitions"


def test_a_run_can_pin_a_new_model_revision_into_the_rendered_deployment():
    defs = build_definitions(Settings())
    sha = "1" * 40
    op = "llm_baseline__mistral_7b_awq__manifests"
    result = defs.resolve_job_def("manifests_job").execute_in_process(
        run_config={"ops": {op: {"config": {"revision": sha}}}}
    )
    awq = result.output_for_node(op)
    args = next(o for o in awq if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--revision") + 1] == sha
    fp16 = result.output_for_node("llm_baseline__mistral_7b_fp16__manifests")
    fp16_args = next(o for o in fp16 if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sha not in fp16_args


def test_every_asset_has_its_teams_owner_and_kinds_and_every_check_a_description():
    """What the UI's owner and kind filters and the check pages show."""
    defs = build_definitions(Settings(resolve_revisions=False))
    graph = defs.resolve_asset_graph()
    teams = {"mistral-7b-awq": "quant", "mistral-7b-fp16": "platform", "mistral-7b-lora": "finetune"}
    teams["mistral-7b-judge"] = "eval"
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.kinds, key
        if len(key.path) == 3 and key.path[1] in teams:
            assert node.owners == [f"team:{teams[key.path[1]]}"], key
        elif key.path[1] == "shared":
            assert node.owners == ["team:platform"], key
        else:
            assert node.owners == ["team:eval"], key  # the catalog's evaluation.team
    for check in graph.asset_check_keys:
        assert graph.get_check_spec(check).description, check
    # the shared manifests feed every variant's deployment (an edge in the graph, not an island)
    shared = dg.AssetKey(["llm_baseline", "shared", "manifests"])
    assert {k.path[1] for k in graph.get(shared).child_keys} == set(teams)
