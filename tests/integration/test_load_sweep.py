"""The load sweep as `load_sweep_job` runs it, against the simulator: where a variant saturates, and what it needs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import SWEEP_STAGE, asset_key, op_name
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.settings import Settings
from llmplat_dagster.sim.testing import start_sim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SMALL = {"prompts": 6, "max_tokens": 24, "requests_per_slot": 3, "min_requests": 6, "target_request_rate": 10.0}
# A fifth of a T4's latencies: the sweep takes seconds, and the client's own few milliseconds per request stay small
# next to the simulated ones once the figures are converted back to model time.
TIME_SCALE = 0.2


def _sweep(tmp_path: Path, crd_dirs: tuple, configs: dict[str, dict]) -> dict:
    keys = [asset_key(v, SWEEP_STAGE) for v in configs]
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {op_name(asset_key(v, SWEEP_STAGE)): {"config": c} for v, c in configs.items()},
    }
    catalog = load_catalog()
    [variant] = configs
    with start_sim(vllm_args(catalog.variant(variant)), time_scale=TIME_SCALE) as sim:
        settings = Settings(home=tmp_path, crd_dirs=crd_dirs, endpoints={variant: sim.base_url})
        job = build_definitions(settings).resolve_job_def("load_sweep_job")
        result = job.execute_in_process(asset_selection=keys, run_config=run_config)
    assert result.success
    return {m.asset_key: m.materialization.metadata for m in result.get_asset_materialization_events()}


def test_fp16_saturates_at_its_sequences_and_queues_beyond(tmp_path: Path, crd_dirs: tuple):
    seqs = load_catalog().variant("mistral-7b-fp16").max_num_seqs
    assert seqs == 2  # what fits the T4 beside FP16 weights (catalog fit check); the levels below follow from it
    mats = _sweep(tmp_path, crd_dirs, {"mistral-7b-fp16": SMALL})
    meta = {k: v.value for k, v in mats[asset_key("mistral-7b-fp16", SWEEP_STAGE)].items()}
    levels = pd.read_parquet(
        tmp_path / "llmplat" / "results" / "llm_baseline" / "mistral-7b-fp16" / f"{SWEEP_STAGE}.parquet"
    )
    by = levels.set_index("concurrency")
    assert list(by.index) == [1, 2, 4]  # up to twice max_num_seqs
    assert (levels["errors"] == 0).all() and (levels["requests"] == [6, 6, 12]).all()
    # beyond max_num_seqs requests wait for a slot: TTFT jumps, throughput does not grow
    assert by.loc[4, "ttft_p95_ms"] > 3 * by.loc[2, "ttft_p95_ms"]
    assert by.loc[2, "output_token_throughput"] > 1.5 * by.loc[1, "output_token_throughput"]
    assert by.loc[4, "output_token_throughput"] < 1.3 * by.loc[2, "output_token_throughput"]
    assert meta["saturation_concurrency"] in (2, 4)
    best = meta["best_goodput (req/s)"]
    assert best > 0 and meta["replicas_needed"] == math.ceil(10.0 / best - 1e-9)
    assert meta["time_basis"].startswith(f"simulated (llmplat-sim at time scale {TIME_SCALE:g}")
    assert meta["slo"].startswith("ttft:2000 tpot:100")
    assert len(meta["levels"].records) == 3 and meta["plot"].startswith("![mistral-7b-fp16 load sweep]")
    assert set(levels["time_basis"]) == {meta["time_basis"]}


def test_the_lora_sweep_goes_through_the_adapter_and_an_unmeetable_slo_needs_no_replica_count(tmp_path, crd_dirs):
    config = {**SMALL, "concurrency_factor": 0.25, "slo_ttft_ms": 1.0, "slo_tpot_ms": None}  # 1 ms: nobody meets it
    mats = _sweep(tmp_path, crd_dirs, {"mistral-7b-lora": config})
    meta = {k: v.value for k, v in mats[asset_key("mistral-7b-lora", SWEEP_STAGE)].items()}
    assert meta["model"] == "chat-de"
    assert load_catalog().variant("mistral-7b-lora").max_num_seqs == 12
    assert [r.data["concurrency"] for r in meta["levels"].records] == [1, 2, 3]  # up to 0.25 x 12 sequences
    assert meta["best_goodput (req/s)"] == 0 and meta["replicas_needed"] == "no level met the SLO"
