"""A fifth variant, declared only in YAML: a GPTQ candidate gets its assets, its comparison row and its gate.

The catalog is the packaged one plus one variant entry and one more name under `evaluation.candidates`; the
real baseline job runs end to end against one simulator per variant. No code knows the name.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import dagster as dg
import pytest

from llmplat_dagster.catalog import default_catalog_path, load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import variant_job_name
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.settings import Settings
from llmplat_dagster.sim.testing import start_sim
from tests.catalog_edits import GPTQ, with_gptq_candidate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NIGHT = "2026-11-28"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    text = with_gptq_candidate(default_catalog_path().read_text())
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_a_gptq_candidate_added_in_yaml_is_rolled_out_compared_and_gated(tmp_path: Path, catalog_path: Path):
    catalog = load_catalog(catalog_path)
    assert GPTQ in catalog.names and GPTQ in catalog.evaluation.candidates
    with contextlib.ExitStack() as stack:
        sims = {v.name: stack.enter_context(start_sim(vllm_args(v), time_scale=0.02)) for v in catalog.variants}
        settings = Settings(
            home=tmp_path, catalog_path=catalog_path, endpoints={n: s.base_url for n, s in sims.items()}
        )
        defs = build_definitions(settings)
        result = defs.resolve_job_def("baseline_job").execute_in_process(run_config=QUIET, partition_key=NIGHT)
        served = len(sims[GPTQ].state.engine.timings)
    assert result.success
    assert {variant_job_name("rollout", GPTQ), variant_job_name("canary", GPTQ)} <= {
        j.name for j in defs.resolve_all_job_defs()
    }
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert {f"llm_baseline/{GPTQ}/{s}" for s in ("manifests", "deployment", "readiness", "canary")} <= materialized
    assert served > 33  # its canary and the quant-sensitivity promptset went to its own server

    comparison = result.output_for_node("llm_baseline__quant_quality_comparison", "result").set_index("variant")
    assert comparison.loc[GPTQ, "role"] == "candidate" and comparison.loc[GPTQ, "n"] > 0
    assert comparison.loc[GPTQ, "similarity_mean"] < 1  # its answers diverge from FP16 like AWQ's (quantization noise)
    assert comparison.loc[GPTQ, "accuracy_n"] == 42  # and its task accuracy is measured on every checkable prompt
    gates = {c.check_name: c for c in result.get_asset_check_evaluations() if c.check_name.startswith("promotion")}
    assert set(gates) == {f"promotion_gate_{v}" for v in ("mistral_7b_awq", "mistral_7b_lora", "mistral_7b_gptq")}
    assert gates["promotion_gate_mistral_7b_gptq"].passed
    record = result.output_for_node("llm_baseline__promotion_record").set_index("candidate")
    assert bool(record.loc[GPTQ, "promoted"]) and record.loc[GPTQ, "night"] == NIGHT
    graph = defs.resolve_asset_graph()
    responses = graph.get(dg.AssetKey(["llm_baseline", "quant_sensitivity_responses"]))
    assert dg.AssetKey(["llm_baseline", GPTQ, "readiness"]) in responses.parent_keys  # the graph, from the same roles
