"""Per-variant manifest assets (`llm_baseline/<variant>/manifests`) and their schema checks."""

from collections import Counter

import dagster as dg

from llmplat_dagster.catalog import Catalog, CatalogError, VariantSpec
from llmplat_dagster.defs.keys import SHARED_MANIFESTS, asset_key, pin_key
from llmplat_dagster.defs.ownership import shared_asset, variant_asset
from llmplat_dagster.defs.pins import read_pin
from llmplat_dagster.defs.resources import HubResource
from llmplat_dagster.k8s import render as r
from llmplat_dagster.k8s.tree import dump
from llmplat_dagster.k8s.validate import UNCHECKED_HINT, CrdSchemas, failures, validate_objects
from llmplat_dagster.pins import provenance_revision


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


def _schema_check(key: dg.AssetKey, crds: CrdSchemas, name: str, strict: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key,
        name="schema_valid",
        blocking=True,
        description=f"{name}: strict Kubernetes schemas + CRD schemas; custom resources no CRD checks "
        + ("fail (strict)" if strict else "warn as not schema-checked"),
    )
    def _check(objects: list) -> dg.AssetCheckResult:
        problems = validate_objects(objects, crds)
        failing = failures(problems, strict)
        unchecked = [p for p in problems if p.unchecked]
        if failing:
            description = f"{len(failing)} problem(s): {failing[0]}"
        elif unchecked:
            description = f"{len(unchecked)} custom resource(s) not schema-checked; {UNCHECKED_HINT}"
        else:
            description = "every object passes its schema"
        return dg.AssetCheckResult(
            passed=not problems,
            # Without CRD schemas we cannot judge custom resources: warn, don't block a local run (unless strict).
            severity=dg.AssetCheckSeverity.ERROR if failing else dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "problems": dg.MetadataValue.json([str(p) for p in problems if not p.unchecked or strict]),
                "not_schema_checked": dg.MetadataValue.json([f"{p.kind}/{p.name}" for p in unchecked]),
                "strict": strict,
                "crd_sources": dg.MetadataValue.json(sorted(crds.sources.values())),
            },
        )

    return _check


class ManifestsConfig(dg.Config):
    """A one-off revision for this run only (a pin that outlives the run is `pin_revision_job`'s job)."""

    revision: str | None = None
    adapter_revisions: dict[str, str] = {}


def _wanted(instance: dg.DagsterInstance, v: VariantSpec, config: ManifestsConfig) -> tuple[str, dict, str]:
    """(model revision, adapter revisions, where they came from): run config, then the stored pin, then catalog."""
    revision, adapters, source = v.revision, {}, "catalog"
    pin = read_pin(instance, v.name)
    if pin is not None and pin.active:
        revision, adapters = pin.revision or revision, dict(pin.adapter_revisions)
        source = f"pin by {pin.pinned_by}" + (f" ({pin.reason})" if pin.reason else "")
    if config.revision or config.adapter_revisions:
        revision, source = config.revision or revision, "run config"
        adapters.update(config.adapter_revisions)
    return revision, adapters, source


def variant_manifests(
    catalog: Catalog, v: VariantSpec, overlay: str, crds: CrdSchemas, strict: bool = False
) -> dg.Definitions:
    key = asset_key(v.name, "manifests")

    @dg.asset(
        **variant_asset(v, "manifests"),
        deps=[pin_key(v.name)],
        description=f"Rendered {overlay} objects for {v.name} ({v.purpose}) at the pinned or resolved commit; "
        "data version = content hash.",
    )
    def _manifests(context: dg.AssetExecutionContext, config: ManifestsConfig, hub: HubResource) -> dg.Output:
        revision, adapters, source = _wanted(context.instance, v, config)
        try:
            wanted = catalog.with_overrides({v.name: revision}, adapter_revisions={v.name: adapters}).variant(v.name)
        except CatalogError as exc:  # e.g. a stored pin names an adapter the catalog has since dropped
            raise dg.Failure(
                f"{v.name}: the {source} revisions do not fit the catalog: {exc}. "
                "Re-pin or unpin the variant with pin_revision_job, or fix the run config."
            ) from None
        resolved = hub.resolve(wanted)
        for note in resolved.unresolved:
            context.log.warning(f"{v.name}: {note}; rendered as written and recorded as unresolved")
        spec = catalog.with_overrides(
            {v.name: resolved.revision}, adapter_revisions={v.name: resolved.adapter_revisions}
        ).variant(v.name)
        objects = r.render_variant(catalog, spec, overlay)
        return _output(
            objects,
            overlay,
            {
                "image": spec.image,
                "model_id": spec.model_id,
                "model_revision": provenance_revision(spec.revision),
                "revision_source": source,
                "resolved": dg.MetadataValue.json(resolved.resolved_refs(wanted)),
                "unresolved": dg.MetadataValue.json(list(resolved.unresolved)),
                "pinned": spec.pinned,
            },
        )

    return dg.Definitions(assets=[_manifests], asset_checks=[_schema_check(key, crds, v.name, strict)])


def shared_manifests(catalog: Catalog, overlay: str, crds: CrdSchemas, strict: bool = False) -> dg.Definitions:
    """The namespace, ServiceMonitor, alert rules and Grafana dashboard every variant shares."""
    key = SHARED_MANIFESTS

    @dg.asset(
        **shared_asset(catalog, key),
        description="The namespace, ServiceMonitor, alert rules and Grafana dashboard every variant shares; "
        "each variant's deployment depends on them.",
    )
    def _shared() -> dg.Output:
        return _output(r.shared_objects(catalog, overlay), overlay)

    return dg.Definitions(assets=[_shared], asset_checks=[_schema_check(key, crds, "shared", strict)])


def manifests_defs(catalog: Catalog, overlay: str, crds: CrdSchemas, strict: bool = False) -> dg.Definitions:
    parts = [shared_manifests(catalog, overlay, crds, strict)]
    parts += [variant_manifests(catalog, v, overlay, crds, strict) for v in catalog.variants]
    return dg.Definitions.merge(*parts)
