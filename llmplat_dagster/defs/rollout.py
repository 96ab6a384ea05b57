"""Per-variant rollout: `deployment` (server-side apply), `readiness` (rollout + /v1/models), golden checks."""

import time

import dagster as dg
import httpx

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.keys import asset_key
from llmplat_dagster.defs.resources import ClusterResource, EndpointsResource, describe_server
from llmplat_dagster.k8s import render as r
from llmplat_dagster.observability import required_series
from llmplat_dagster.serving.metrics import metric_contract, parse_metrics

ROLLOUT_TAG = "llmplat/rollout-variant"  # dagster.yaml limits runs to one per value of this tag
GOLDEN_CHECKS = ("models_listed", "chat_completion", "metric_contract")


def served_models(base_url: str, timeout_s: float = 5.0) -> list[str]:
    response = httpx.get(f"{base_url}/v1/models", timeout=timeout_s)
    response.raise_for_status()
    return [m["id"] for m in response.json().get("data", [])]


def wait_for_model(base_url: str, name: str, deadline_s: float, sleep=time.sleep, clock=time.monotonic) -> list[str]:
    """The port can answer before the model is loaded (503, or refused): poll /v1/models until it lists `name`."""
    end, last = clock() + deadline_s, "no answer"
    while True:
        try:
            models = served_models(base_url)
            if name in models:
                return models
            last = f"/v1/models lists {models}, not {name!r}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if clock() >= end:
            raise dg.Failure(f"{base_url} never served {name!r} within {deadline_s:.0f}s: {last}")
        sleep(1.0)


def _annotation(objects: list, name: str) -> str | None:
    deploy = next((o for o in objects if o["kind"] == "Deployment"), None)
    return (deploy or {}).get("metadata", {}).get("annotations", {}).get(name)


def _deployment_asset(catalog: Catalog, v: VariantSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key(v.name, "deployment"),
        ins={"objects": dg.AssetIn(asset_key(v.name, "manifests"))},
        group_name=v.group_name,
        kinds={"kubernetes"},
        tags={"llmplat/variant": v.name},
        description=f"Server-side apply of {v.name}'s objects (field manager {r.FIELD_MANAGER}).",
    )
    def _deployment(context: dg.AssetExecutionContext, objects: list, cluster: ClusterResource) -> dg.MaterializeResult:
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
                "model_revision": _annotation(objects, "llmplat/model-revision") or v.revision,
                "applied_hash": digest,
                "generation": result.generation if result.generation is not None else -1,
                "diff": dg.MetadataValue.md(f"```diff\n{result.diff[:8000]}\n```" if result.diff else "(no change)"),
            },
        )

    return _deployment


def _readiness_asset(catalog: Catalog, v: VariantSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key(v.name, "readiness"),
        deps=[asset_key(v.name, "deployment")],
        group_name=v.group_name,
        tags={"llmplat/variant": v.name},
        description=f"{v.name} rolled out and serving {v.served_name!r} on /v1/models; records time to ready.",
    )
    def _readiness(
        context: dg.AssetExecutionContext, cluster: ClusterResource, endpoints: EndpointsResource
    ) -> dg.MaterializeResult:
        start = time.monotonic()
        rollout = cluster.get().wait_for_rollout(catalog.namespace, v.name, timeout_s=cluster.rollout_timeout_s)
        if not rollout.ready:
            raise dg.Failure(
                description=f"{v.name}: {rollout.reason}: {rollout.message}",
                metadata={"reason": rollout.reason, "evictions": rollout.evictions, "seconds": rollout.seconds},
            )
        with endpoints.open(v.name) as url:
            models = wait_for_model(url, v.served_name, deadline_s=cluster.rollout_timeout_s)
            server = describe_server(url)
        context.log.info(f"{v.name} ready: {rollout.message}; {url} serves {models} ({server})")
        return dg.MaterializeResult(
            metadata={
                "time_to_ready_s": round(time.monotonic() - start, 3),
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
        specs=[dg.AssetCheckSpec(name, asset=key, blocking=True) for name in GOLDEN_CHECKS],
        name=f"{v.group_name}_golden_checks",
        description="The design document's golden path: model list, a chat completion, the metric contract.",
    )
    def _checks(endpoints: EndpointsResource):
        with endpoints.open(v.name) as url:
            try:
                models = served_models(url)
                yield dg.AssetCheckResult(
                    check_name="models_listed",
                    passed=v.served_name in models,
                    metadata={"expected": v.served_name, "models": dg.MetadataValue.json(models)},
                )
            except httpx.HTTPError as exc:
                yield dg.AssetCheckResult(check_name="models_listed", passed=False, metadata={"error": str(exc)})
            yield _chat_check(url, v)
            yield _metric_check(url, required)

    return _checks


def _chat_check(url: str, v: VariantSpec) -> dg.AssetCheckResult:
    body = {
        "model": v.served_name,
        "messages": [{"role": "user", "content": "Say hello in one word."}],
        "max_tokens": 10,
        "temperature": 0,
    }
    try:
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        content = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
        detail = "" if response.status_code == 200 else response.text[:300]
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        content, detail = "", f"{type(exc).__name__}: {exc}"
    return dg.AssetCheckResult(
        check_name="chat_completion",
        passed=bool(content and content.strip()),
        metadata={"content": (content or "")[:200], "error": detail},
    )


def _metric_check(url: str, required: list[str]) -> dg.AssetCheckResult:
    try:
        response = httpx.get(f"{url}/metrics", timeout=10)
        response.raise_for_status()
        report = metric_contract(parse_metrics(response.text), required)
    except httpx.HTTPError as exc:
        return dg.AssetCheckResult(check_name="metric_contract", passed=False, metadata={"error": str(exc)})
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
