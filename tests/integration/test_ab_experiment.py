"""The LoRA A/B through the Dagster job: the judge scores against each prompt's expected answer, so the verdict is
measured, not fixed in advance by who wrote the reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplat_dagster.defs.keys import AB, RESPONSES
from tests.integration.test_graph import NIGHT, QUIET, _defs, sim_fleet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEYS = [RESPONSES, AB]


def _ab(tmp_path: Path, crd_dirs: tuple, **lora) -> dict:
    with sim_fleet(**{"mistral-7b-lora": lora}) as sims:
        job = _defs(tmp_path, crd_dirs, sims).resolve_job_def("baseline_job")
        result = job.execute_in_process(asset_selection=KEYS, run_config=QUIET, partition_key=NIGHT)
    meta = next(m.materialization.metadata for m in result.get_asset_materialization_events() if m.asset_key == AB)
    return {k: v.value for k, v in meta.items()}


def test_a_treatment_identical_to_its_control_gets_one_half_and_no_evidence(tmp_path: Path, crd_dirs: tuple):
    """The adapter at full precision, knowing what the base knows: its own words, the same answers."""
    ab = _ab(tmp_path, crd_dirs, quant_noise=0.0, lora_noise=0.0)
    assert ab["treatment_model"] == "chat-de" and ab["control"] == "mistral-7b-fp16"
    assert ab["win_rate"] == pytest.approx(0.5, abs=0.05) and ab["p_value"] > 0.5
    assert ab["win_rate_ci_low"] < 0.5 < ab["win_rate_ci_high"] and ab["unparsed"] == 0


def test_a_treatment_that_gets_answers_wrong_loses(tmp_path: Path, crd_dirs: tuple):
    ab = _ab(tmp_path, crd_dirs, quant_noise=1.5)
    assert ab["win_rate"] < 0.35 and ab["win_rate_ci_high"] < 0.5 and ab["p_value"] < 0.01
