"""Who owns each asset and what it is, for the UI's owner and kind filters; spread into every asset definition.

Owners come from the catalog: a variant's assets belong to its `team`, the evaluation's to `evaluation.team`, the
shared objects to `platform_team` (Dagster's `team:<name>` owners). Kinds are what an asset talks to or stores.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.keys import EVALUATION_GROUP, SHARED_GROUP, VARIANT_TAG, asset_key

# the last part of an asset key -> its kinds (the UI shows at most three)
KINDS: dict[str, set[str]] = {
    "manifests": {"kubernetes", "yaml"},
    "deployment": {"kubernetes"},
    "readiness": {"kubernetes", "vllm"},
    "canary": {"vllm", "parquet"},
    "load_sweep": {"vllm", "parquet"},
    "revision_pin": {"huggingface"},
    "quant_sensitivity_responses": {"vllm", "parquet"},
    "quant_quality_comparison": {"pandas", "parquet"},
    "lora_ab_experiment": {"vllm", "parquet"},
    "promotion_record": {"parquet"},
    "quality_trend": {"pandas"},
}


def variant_asset(v: VariantSpec, stage: str) -> dict[str, Any]:
    """Key, group, owner, kinds and tag of `llm_baseline/<variant>/<stage>`."""
    return {
        "key": asset_key(v.name, stage),
        "group_name": v.group_name,
        "owners": [f"team:{v.team}"],
        "kinds": KINDS[stage],
        "tags": {VARIANT_TAG: v.name},
    }


def evaluation_asset(catalog: Catalog, key: dg.AssetKey) -> dict[str, Any]:
    team = catalog.evaluation.team if catalog.evaluation else catalog.platform_team
    return {"key": key, "group_name": EVALUATION_GROUP, "owners": [f"team:{team}"], "kinds": KINDS[key.path[-1]]}


def shared_asset(catalog: Catalog, key: dg.AssetKey) -> dict[str, Any]:
    return {
        "key": key,
        "group_name": SHARED_GROUP,
        "owners": [f"team:{catalog.platform_team}"],
        "kinds": KINDS[key.path[-1]],
    }
