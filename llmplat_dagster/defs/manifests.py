"""Per-variant manifest assets (`llm_baseline/<variant>/manifests`) and their schema checks."""

from collections import Counter

import dagster as dg

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.keys import SHARED_GROUP, SHARED_MANIFESTS, asset_key
from llmplat_dagster.k8s import render as r
from llmplat_dagster.k8s.tree import dump
from llmplat_dagster.k8s.validate import CrdSchemas, validate_objects


def _output(objects: list[r.Obj], overlay: str, extra: dict | None = None) -> dg.Output:
    digest = r.content_hash(objects)
    kinds = Counter(o["kind"] for o in objects)
    return dg.Output(
        objects,
        data_version=dg.DataVersion(digest),
        metadata={
            "content_hash": digest,
            "overlay": overlay,
            "objects": dg.MetadataValue.json([r.object_id(o) for o in objects]),
            "kinds": dg.MetadataValue.json(dict(kinds)),
            "preview": dg.MetadataValue.md("```yaml\n" + "---\n".join(dump(o) for o in objects)[:6000] + "\n```"),
            **(extra or {}),
        },
    )


def _schema_check(key: dg.AssetKey, crds: CrdSchemas, name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=key, name="schema_valid", blocking=True, description=f"{name}: strict schema + CRDs")
    def _check(objects: list) -> dg.AssetCheckResult:
        problems = validate_objects(objects, crds)
        missing = [p for p in problems if p.unverified]
        real = [p for p in problems if p not in missing]
        return dg.AssetCheckResult(
            passed=not problems,
            # Without CRD schemas we cannot judge custom resources: warn, don't block a local run.
            severity=dg.AssetCheckSeverity.ERROR if real else dg.AssetCheckSeverity.WARN,
            metadata={
                "problems": dg.MetadataValue.json([str(p) for p in problems]),
                "crd_sources": dg.MetadataValue.json(sorted(crds.sources.values())),
            },
        )

    return _check


class ManifestsConfig(dg.Config):
    """Run-time pin of the model revision (the revision sensor sets it when the Hub moves)."""

    revision: str | None = None
    adapter_revisions: dict[str, str] = {}


def variant_manifests(catalog: Catalog, v: VariantSpec, overlay: str, crds: CrdSchemas) -> dg.Definitions:
    key = asset_key(v.name, "manifests")

    @dg.asset(
        key=key,
        group_name=v.group_name,
        kinds={"kubernetes"},
        tags={"llmplat/variant": v.name},
        description=f"Rendered {overlay} objects for {v.name} ({v.purpose}); data version = content hash.",
    )
    def _manifests(config: ManifestsConfig) -> dg.Output:
        revisions = {v.name: config.revision} if config.revision else None
        adapters = {v.name: config.adapter_revisions} if config.adapter_revisions else None
        spec = (
            catalog.with_overrides(revisions, adapter_revisions=adapters).variant(v.name)
            if revisions or adapters
            else v
        )
        objects = r.render_variant(catalog, spec, overlay)
        return _output(
            objects,
            overlay,
            {"image": spec.image, "model_id": spec.model_id, "model_revision": spec.revision, "pinned": spec.pinned},
        )

    return dg.Definitions(assets=[_manifests], asset_checks=[_schema_check(key, crds, v.name)])


def shared_manifests(catalog: Catalog, overlay: str, crds: CrdSchemas) -> dg.Definitions:
    """The namespace, ServiceMonitor, alert rules and Grafana dashboard every variant shares."""
    key = SHARED_MANIFESTS

    @dg.asset(key=key, group_name=SHARED_GROUP, kinds={"kubernetes"})
    def _shared() -> dg.Output:
        return _output(r.shared_objects(catalog, overlay), overlay)

    return dg.Definitions(assets=[_shared], asset_checks=[_schema_check(key, crds, "shared")])


def manifests_defs(catalog: Catalog, overlay: str, crds: CrdSchemas) -> dg.Definitions:
    parts = [shared_manifests(catalog, overlay, crds)]
    parts += [variant_manifests(catalog, v, overlay, crds) for v in catalog.variants]
    return dg.Definitions.merge(*parts)
