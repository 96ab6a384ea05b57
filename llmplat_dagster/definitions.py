"""The one room that sees everything: Definitions for the environment chosen in `Settings.from_env`."""

from __future__ import annotations

import dagster as dg

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.defs.manifests import manifests_defs
from llmplat_dagster.k8s.validate import CrdSchemas
from llmplat_dagster.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    catalog = load_catalog(settings.catalog_path, revisions=settings.revisions, image=settings.image)
    crds = CrdSchemas.from_dirs(settings.crd_dirs)
    manifests_job = dg.define_asset_job(
        "manifests_job",
        selection=dg.AssetSelection.key_prefixes(["llm_baseline"]).required_multi_asset_neighbors(),
        description="Render and schema-check every variant's manifests.",
    )
    return dg.Definitions.merge(
        manifests_defs(catalog, settings.overlay, crds),
        dg.Definitions(jobs=[manifests_job]),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily by Dagster's tools, so importing this module reads no environment."""
    return build_definitions(Settings.from_env())
