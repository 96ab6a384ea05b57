"""What a result measured: model sha, manifest hash and vLLM image of the rollout, and the promptset version.

Read from the latest `deployment` materialization of the variant (what was applied), falling back to the
catalog when the variant was never rolled out from this instance. Every evaluation result carries these, so a
regression can be traced to the change that caused it.
"""

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.keys import asset_key
from llmplat_dagster.pins import provenance_revision

COLUMNS = ("model_revision", "manifest_hash", "vllm_image")


def provenance(instance: dg.DagsterInstance, catalog: Catalog, variant: str) -> dict[str, str]:
    spec = catalog.variant(variant)
    event = instance.get_latest_materialization_event(asset_key(variant, "deployment"))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}
    return {
        "model_revision": str(meta.get("model_revision", provenance_revision(spec.revision))),
        "manifest_hash": str(meta.get("applied_hash", "not-rolled-out")),
        "vllm_image": str(meta.get("image", spec.image)),
    }
