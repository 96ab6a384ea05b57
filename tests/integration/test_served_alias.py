"""Clients that name the Hugging Face model id (as the design document's examples do) are served too."""

from __future__ import annotations

import httpx
import pytest

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.k8s.render import vllm_args
from llmplat_dagster.sim.testing import start_sim

pytestmark = pytest.mark.integration


def test_the_variant_answers_to_its_name_and_to_the_hugging_face_id():
    v = load_catalog().variant("mistral-7b-fp16")
    with start_sim(vllm_args(v), time_scale=0.01) as sim:
        listed = [m["id"] for m in httpx.get(f"{sim.v1_url}/models").json()["data"]]
        assert listed == ["mistral-7b-fp16", "mistralai/Mistral-7B-Instruct-v0.2"]
        for model in listed:
            response = httpx.post(
                f"{sim.v1_url}/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "What is a Pod?"}], "max_tokens": 8},
            )
            assert response.status_code == 200 and response.json()["model"] == model
        other = httpx.post(
            f"{sim.v1_url}/chat/completions",
            json={"model": "mistralai/Other", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert other.status_code == 404
        # metrics stay labelled with the variant name, which KEDA and the dashboards select on
        assert 'model_name="mistral-7b-fp16"' in httpx.get(f"{sim.base_url}/metrics").text
