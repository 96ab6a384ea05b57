"""Per-variant rollout: `deployment` (server-side apply), `readiness` (rollout + /v1/models), golden checks."""

import time

import dagster as dg

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.keys import SHARED_MANIFESTS, asset_key, rollout_pool
from llmplat_dagster.defs.ownership import variant_asset
from llmplat_dagster.defs.resources import ClusterResource, EndpointsResource
from llmplat_dagster.k8s import render as r
from llmplat_dagster.observability import required_series
from llmplat_dagster.pins import provenance_revision

# The design document's golden path, each with what it proves (shown on the check in the UI).
GOLDEN_CHECKS = {
    "models_listed": "GET /v1/models lists the variant's served model name",
    "chat_completion": "a short greedy chat completion returns non-empty content",
    "metric_contract": "/metrics exposes every vLLM series the KEDA trigger, the dashboard and the alerts query",
}


def _annotation(objects: list, name: str) -> str | None:
    deploy = next((o for o in objects if o["kind"] == "Deployment"), None)
    return (deploy or {}).get("metadata", {}).get("annotations", {}).get(name)


def _once(objects: list) -> list:
    """The rendered objects, once. Dagster 1.13's op selection turns the blocking `schema_valid` check into a
    fan-in (dagster/_core/definitions/op_selection.py rebuilds it as a MultiDependencyDefinition), so a step picked
    by name in the launchpad receives the manifests output once per source: [[objects], [objects]]."""
    if objects and all(isinstance(item, list) for item in objects):
        if any(item != objects[0] for item in objects[1:]):
            raise dg.Failure("deployment received different manifests from its sources; re-run manifests first")
        return objects[0]
    return objects


def _deployment_asset(catalog: Catalog, v: VariantSpec) -> dg.AssetsDefinition:
    @dg.asset(
        **variant_asset(v, "deployment"),
        deps=[SHARED_MANIFESTS],  # the namespace and monitoring objects every variant's servers live in
        ins={"objects": dg.AssetIn(asset_key(v.name, "manifests"))},
        pool=rollout_pool(v.name),
        description=f"Server-side apply of {v.name}'s objects (field manager {r.FIELD_MANAGER}); one rollout of "
        f"{v.name} at a time (pool {rollout_pool(v.name)}).",
    )
    def _deployment(context: dg.AssetExecutionContext, objects: list, cluster: ClusterResource) -> dg.MaterializeResult:
        objects = _once(objects)
        result = cluster.get().apply(objects, variant=v.name)
        digest = r.content_hash(objects)
        if result.conflicts:
            raise dg.Failure(
                description=f"{v.name}: field-manager conflicts (set force_conflicts to take them): "
                + "; ".join(result.conflicts),
                metadata={"conflicts": dg.MetadataValue.json(list(result.conflicts))},
            )
        context.log.info(result.message)
        return dg.MaterializeResult(
            data_version=dg.DataVersion(digest),
            metadata={
                "applied": result.applied,
                "cluster": cluster.mode,
                "message": result.message,
                "objects": dg.MetadataValue.json(list(result.objects)),
                "image": v.image,
                "model_revision": provenance_revision(_annotation(objects, "llmplat/model-revision") or v.revision),
                "applied_hash": digest,
                "generation": result.generation if result.generation is not None else -1,
                "diff": dg.MetadataValue.md(f"```diff\n{result.diff[:8000]}\n```" if result.diff else "(no change)"),
            },
        )

    return _deployment


def _readiness_asset(catalog: Catalog, v: VariantSpec) -> dg.AssetsDefinition:
    @dg.asset(
        **variant_asset(v, "readiness"),
        deps=[asset_key(v.name, "deployment")],
        pool=rollout_pool(v.name),
        description=f"{v.name} rolled out and serving {v.served_name!r} on /v1/models; records time to ready.",
    )
    def _readiness(
        context: dg.AssetExecutionContext, cluster: ClusterResource, endpoints: EndpointsResource
    ) -> dg.MaterializeResult:
        from llmplat_dagster.serving.probes import ProbeError, describe_server, wait_for_model

        start = time.monotonic()
        rollout = cluster.get().wait_for_rollout(catalog.namespace, v.name, timeout_s=cluster.rollout_timeout_s)
        if not rollout.ready:
            raise dg.Failure(
                description=f"{v.name}: {rollout.reason}: {rollout.message}",
                metadata={"reason": rollout.reason, "evictions": rollout.evictions, "seconds": rollout.seconds},
            )
        with endpoints.open(v.name) as url:
            try:
                models = wait_for_model(url, v.served_name, deadline_s=cluster.rollout_timeout_s)
            except ProbeError as exc:
                raise dg.Failure(str(exc)) from None
            server = describe_server(url)
        context.log.info(f"{v.name} ready: {rollout.message}; {url} serves {models} ({server})")
        return dg.MaterializeResult(
            metadata={
                "time to ready (s)": round(time.monotonic() - start, 1),
                "rollout": f"{rollout.reason}: {rollout.message}",
                "ready_replicas": f"{rollout.ready_replicas}/{rollout.desired_replicas}",
                "evictions": rollout.evictions,
                "endpoint": url,
                "endpoint_kind": endpoints.mode,
                "server": server,
                "models": dg.MetadataValue.json(models),
            }
        )

    return _readiness


def _golden_checks(catalog: Catalog, v: VariantSpec) -> dg.AssetChecksDefinition:
    key = asset_key(v.name, "readiness")
    required = required_series(catalog, v.name)

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                name, asset=key, blocking=True, description=f"{what} (blocking: a failure stops the canary)"
            )
            for name, what in GOLDEN_CHECKS.items()
        ],
        name=f"{v.group_name}_golden_checks",
        description="The design document's golden path: model list, a chat completion, the metric contract.",
    )
    def _checks(endpoints: EndpointsResource):
        from llmplat_dagster.serving.probes import chat_probe, models_probe

        with endpoints.open(v.name) as url:
            for name, probe in (
                ("models_listed", models_probe(url, v.served_name)),
                ("chat_completion", chat_probe(url, v.served_name)),
            ):
                yield dg.AssetCheckResult(
                    check_name=name,
                    passed=probe.passed,
                    description=probe.description,
                    metadata=_json_lists(probe.metadata),
                )
            yield _metric_check(url, required)

    return _checks


def _json_lists(metadata: dict) -> dict:
    return {k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v for k, v in metadata.items()}


def _metric_check(url: str, required: list[str]) -> dg.AssetCheckResult:
    from llmplat_dagster.serving.probes import metrics_probe

    report, error = metrics_probe(url, required)
    if report is None:
        return dg.AssetCheckResult(
            check_name="metric_contract", passed=False, description=error, metadata={"error": error}
        )
    return dg.AssetCheckResult(
        check_name="metric_contract",
        passed=report.ok,
        description=report.describe(),
        metadata={
            "generation": report.generation or "unknown",
            "missing": dg.MetadataValue.json(list(report.missing)),
            "hints": dg.MetadataValue.json(report.hints),
            "required": dg.MetadataValue.json(required),
        },
    )


def rollout_defs(catalog: Catalog) -> dg.Definitions:
    assets, checks = [], []
    for v in catalog.variants:
        assets += [_deployment_asset(catalog, v), _readiness_asset(catalog, v)]
        checks.append(_golden_checks(catalog, v))
    return dg.Definitions(assets=assets, asset_checks=checks)
