"""The whole asset graph, in-process, against the simulator: what `make demo` does, asserted."""

from __future__ import annotations

import contextlib
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.resources import ServingResource
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.pins import provenance_revision
from llmplat_dagster.settings import Settings
from llmplat_dagster.sim.testing import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CATALOG = load_catalog()
VARIANTS = CATALOG.names
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
NIGHT = "2026-11-28"


@contextlib.contextmanager
def sim_fleet(**per_variant):
    """One in-process simulator per variant, started from the variant's own vLLM args."""
    with contextlib.ExitStack() as stack:
        yield {
            v.name: stack.enter_context(start_sim(vllm_args(v), time_scale=0.02, **per_variant.get(v.name, {})))
            for v in CATALOG.variants
        }


def _defs(tmp_path: Path, crd_dirs: tuple, sims, **overrides) -> dg.Definitions:
    settings = Settings(home=tmp_path, crd_dirs=crd_dirs, endpoints={n: s.base_url for n, s in sims.items()})
    return build_definitions(settings, overrides=overrides or None)


def only_unchecked(check: dg.AssetCheckEvaluation) -> bool:
    """A schema check that found nothing wrong but a custom resource no CRD checks (no CRDs beside the clone)."""
    return (
        check.check_name == "schema_valid"
        and check.severity == dg.AssetCheckSeverity.WARN
        and check.metadata["problems"].value == []
        and bool(check.metadata["not_schema_checked"].value)
    )


def _key(variant: str, stage: str) -> dg.AssetKey:
    return dg.AssetKey(["llm_baseline", variant, stage])


def test_whole_graph_materializes_against_the_simulator(tmp_path: Path, crd_dirs: tuple):
    with sim_fleet() as sims:
        result = (
            _defs(tmp_path, crd_dirs, sims)
            .resolve_job_def("baseline_job")
            .execute_in_process(run_config=QUIET, partition_key=NIGHT)
        )
    assert result.success
    mats = {m.asset_key: m.materialization.metadata for m in result.get_asset_materialization_events()}
    stages = ("manifests", "deployment", "readiness", "canary")
    shared = ("shared/manifests", "quant_sensitivity_responses", "quant_quality_comparison", "lora_ab_experiment")
    shared += ("promotion_record",)
    assert set(mats) == {_key(v, s) for v in VARIANTS for s in stages} | {
        dg.AssetKey(["llm_baseline", *k.split("/")]) for k in (*shared, "quality_trend")
    }
    checks = result.get_asset_check_evaluations()
    gates = {c.check_name: c for c in checks if c.check_name.startswith("promotion_gate_")}
    assert len(checks) == 4 * 3 + 5 + 2 and len(gates) == 2
    assert all(c.passed or only_unchecked(c) for c in checks if c.check_name not in gates)
    comparison = mats[dg.AssetKey(["llm_baseline", "quant_quality_comparison"])]
    assert "simulator" in comparison["measured_against"].value
    assert comparison["time_basis"].value.startswith("simulated (llmplat-sim at time scale 0.02")
    assert comparison["pareto_plot"].value.startswith("![Pareto")
    assert "| mistral-7b-awq" in comparison["report"].value and "McNemar p=" in comparison["report"].value
    per_variant = pd.read_parquet(
        tmp_path / "llmplat" / "results" / "llm_baseline" / "quant_quality_comparison" / f"{NIGHT}.parquet"
    ).set_index("variant")
    assert set(per_variant.index) == {"mistral-7b-fp16", "mistral-7b-awq", "mistral-7b-lora"}
    # every variant answered the 42 checkable prompts; the gate is on the paired accuracy delta's lower bound
    assert (per_variant["accuracy_n"] == 42).all()
    assert (per_variant["accuracy_ci_low"] <= per_variant["accuracy"]).all()
    for variant in ("mistral-7b-awq", "mistral-7b-lora"):
        gate = gates[f"promotion_gate_{variant.replace('-', '_')}"]
        assert gate.passed is bool(per_variant.loc[variant, "quality_delta_ci_low"] >= -0.10)
        assert gate.passed or gate.description.startswith("quality delta lower bound")
    # AWQ's gate blocks (ERROR); the LoRA adapter's is advisory (catalog `advisory_gates`): it reports at WARN, so
    # the promotion record and the trend above were written whatever it found
    assert gates["promotion_gate_mistral_7b_awq"].severity == dg.AssetCheckSeverity.ERROR
    assert gates["promotion_gate_mistral_7b_lora"].severity == dg.AssetCheckSeverity.WARN
    assert gates["promotion_gate_mistral_7b_lora"].metadata["advisory"].value is True
    # LoRA is evaluated through its adapter, a model of its own: it answers differently from the AWQ base
    responses = pd.read_parquet(
        tmp_path / "llmplat" / "results" / "llm_baseline" / "quant_sensitivity_responses" / f"{NIGHT}.parquet"
    )
    texts = responses.pivot(index="prompt_id", columns="variant", values="output_text")
    assert set(responses.loc[responses["variant"] == "mistral-7b-lora", "model"]) == {"chat-de"}
    assert (texts["mistral-7b-lora"] != texts["mistral-7b-awq"]).mean() > 0.5
    # cost in simulated T4 time: a T4 serving FP16 at 4 sequences costs dollars per 1M tokens, not cents
    assert 0.3 < per_variant.loc["mistral-7b-fp16", "cost_per_mtok"] < 5
    ab = mats[dg.AssetKey(["llm_baseline", "lora_ab_experiment"])]
    assert ab["treatment_model"].value == "chat-de" and 0 < ab["win_rate"].value < 1 and ab["p_value"].value > 0
    assert ab["plot"].value.startswith("![A/B") and "simulator" in ab["measured_against"].value
    assert per_variant["model_revision"].to_dict() == {
        v: provenance_revision(CATALOG.variant(v).revision) for v in per_variant.index
    }  # offline: `main` is recorded as unresolved, never passed off as a commit
    assert per_variant["promptset_version"].notna().all() and per_variant["manifest_hash"].str.len().eq(16).all()
    for v in VARIANTS:
        deploy = mats[_key(v, "deployment")]
        assert deploy["applied"].value is False and deploy["message"].value.startswith("dry run")
        assert deploy["model_revision"].value == provenance_revision(CATALOG.variant(v).revision)
        ready = mats[_key(v, "readiness")]
        assert ready["endpoint"].value == sims[v].base_url
        canary = mats[_key(v, "canary")]
        assert "simulator" in canary["measured_against"].value
        assert canary["time_basis"].value.startswith("simulated, as measured at llmplat-sim's time scale 0.02")
        assert canary["model"].value == ("chat-de" if v == "mistral-7b-lora" else v)
        assert canary["requests"].value == 33 and canary["error rate (%)"].value == 0
        # units in the labels: milliseconds for TTFT, seconds for e2e
        assert 0 < canary["TTFT p50 (ms)"].value <= canary["TTFT p95 (ms)"].value <= canary["e2e p95 (s)"].value * 1000
        assert canary["preview"].value.records and canary["dagster/row_count"].value == 33
        rows = pd.read_parquet(tmp_path / "llmplat" / "results" / "llm_baseline" / v / "canary" / f"{NIGHT}.parquet")
        assert len(rows) == 33 and rows["prompt_id"].is_unique and (rows["status"] == "ok").all()
        assert {"ttft_s", "itl_s", "tpot_s", "e2e_s", "output_tokens", "error"} <= set(rows.columns)
        assert (rows["e2e_s"] >= rows["ttft_s"]).all()
        # provenance: every row says which rollout and promptset version it measured
        assert set(rows["model_revision"]) == {provenance_revision(CATALOG.variant(v).revision)}
        assert set(rows["manifest_hash"]) == {deploy["applied_hash"].value}
        assert set(rows["vllm_image"]) == {CATALOG.variant(v).image}
        assert set(rows["promptset_version"]) == {canary["promptset_version"].value}


def test_a_failing_golden_check_stops_that_variant_only(tmp_path: Path, crd_dirs: tuple):
    # A V0-generation server: the dashboards and KEDA read V1 names it does not expose.
    with sim_fleet(**{"mistral-7b-fp16": {"metrics_generation": "v0"}}) as sims:
        defs = _defs(tmp_path, crd_dirs, sims)
        result = defs.resolve_job_def("baseline_job").execute_in_process(
            run_config=QUIET, raise_on_error=False, partition_key=NIGHT
        )
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed and not only_unchecked(c)]
    assert [(c.asset_key, c.check_name) for c in failed] == [(_key("mistral-7b-fp16", "readiness"), "metric_contract")]
    assert "vllm:kv_cache_usage_perc (this server exposes vllm:gpu_cache_usage_perc)" in failed[0].description
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    assert _key("mistral-7b-fp16", "canary") not in materialized
    assert {_key(v, "canary") for v in VARIANTS if v != "mistral-7b-fp16"} <= materialized


def test_canary_resumes_from_rows_written_before_the_endpoint_died(tmp_path: Path, crd_dirs: tuple):
    key = _key("mistral-7b-awq", "canary")
    serving = ServingResource(checkpoint_dir=str(tmp_path / "ckpt"), concurrency=4)
    with sim_fleet(**{"mistral-7b-awq": {"exit_after": 12}}) as sims:
        job = _defs(tmp_path, crd_dirs, sims, serving=serving).resolve_job_def("canary_job")
        first = job.execute_in_process(
            asset_selection=[key], run_config=QUIET, raise_on_error=False, partition_key=NIGHT
        )
    assert not first.success
    failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "canary requests failed" in message and "a re-run resumes from them" in message
    checkpoint = next((tmp_path / "ckpt" / "mistral-7b-awq").glob("canary-*.jsonl"))
    written = sum('"status": "ok"' in line for line in checkpoint.read_text().splitlines())
    assert 0 < written < 33

    with sim_fleet() as sims:  # the replacement pod
        job = _defs(tmp_path, crd_dirs, sims, serving=serving).resolve_job_def("canary_job")
        second = job.execute_in_process(asset_selection=[key], run_config=QUIET, partition_key=NIGHT)
        served = len(sims["mistral-7b-awq"].state.engine.timings)
    meta = next(m.materialization.metadata for m in second.get_asset_materialization_events())
    assert meta["resumed_rows"].value == written
    assert meta["requests"].value == 33 and meta["error rate (%)"].value == 0
    assert served == 33 - written  # only the rest was sent again
    assert not checkpoint.exists()


@pytest.mark.parametrize("noise", [0.05, 1.5])
def test_quantization_noise_moves_the_measured_quality_gap(tmp_path: Path, crd_dirs: tuple, noise: float):
    """The comparison measures what the simulator injects: more AWQ logit noise, more wrong answers, a failed gate.

    And the gate gates: failed at ERROR, it stops the trend and the promotion record; passed, the record names
    the revision that passed on that night, with the numbers that decided it."""
    keys = [dg.AssetKey(["llm_baseline", k]) for k in ("quant_sensitivity_responses", "quant_quality_comparison")]
    downstream = [dg.AssetKey(["llm_baseline", k]) for k in ("promotion_record", "quality_trend")]
    with sim_fleet(**{"mistral-7b-awq": {"quant_noise": noise}}) as sims:
        job = _defs(tmp_path, crd_dirs, sims).resolve_job_def("baseline_job")
        result = job.execute_in_process(
            asset_selection=keys + downstream, run_config=QUIET, partition_key=NIGHT, raise_on_error=False
        )
    frame = result.output_for_node("llm_baseline__quant_quality_comparison", "result")
    awq = frame.set_index("variant").loc["mistral-7b-awq"]
    gate = next(c for c in result.get_asset_check_evaluations() if c.check_name == "promotion_gate_mistral_7b_awq")
    materialized = {m.asset_key for m in result.get_asset_materialization_events()}
    if noise < 0.1:
        assert awq["quality_delta_ci_low"] > -0.10 and gate.passed
        assert result.success and set(downstream) <= materialized
        record = result.output_for_node("llm_baseline__promotion_record").set_index("candidate")
        assert record.loc["mistral-7b-awq", "promoted"] and record.loc["mistral-7b-awq", "night"] == NIGHT
        assert record.loc["mistral-7b-awq", "model_revision"] == provenance_revision(
            CATALOG.variant("mistral-7b-awq").revision
        )
        assert record.loc["mistral-7b-awq", "quality_delta_ci_low"] == pytest.approx(awq["quality_delta_ci_low"])
    else:
        assert awq["quality_delta_ci_high"] < -0.1 and not gate.passed and awq["accuracy_mcnemar_p"] < 0.01
        assert "quality delta lower bound" in gate.description and gate.severity == dg.AssetCheckSeverity.ERROR
        assert keys[1] in materialized  # the numbers are kept
        assert not result.success and not set(downstream) & materialized  # nothing downstream of a failed gate
