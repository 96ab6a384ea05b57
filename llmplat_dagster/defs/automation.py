"""Automation: the nightly schedule, the revision and promptset sensors, failure alerts, the trend view.

The logic lives in `llmplat_dagster.automation` (look-ups, planning, versions, alerts); this module only turns
its answers into Dagster run requests, skip reasons and cursors.
"""

import datetime as dt
import hashlib
import json

import dagster as dg

from llmplat_dagster.automation.promptset_versions import PromptsetSourceError, list_promptset_versions, new_versions
from llmplat_dagster.catalog import Catalog, CatalogError
from llmplat_dagster.defs.comparison import ComparisonResource
from llmplat_dagster.defs.keys import (
    EVALUATION,
    PREFIX,
    PURPOSE_TAG,
    RESPONSES,
    TREND,
    asset_key,
    night_of,
    op_name,
    variant_keys,
)
from llmplat_dagster.defs.pins import pin_event, pins_for_run
from llmplat_dagster.pins import Pin, apply_pins
from llmplat_dagster.s3uri import parse_s3_uri
from llmplat_dagster.settings import Settings


def _evaluation_keys(catalog: Catalog) -> list[dg.AssetKey]:
    return [*EVALUATION, TREND] if catalog.evaluation else []


def _variant_of(step_key: str | None, catalog: Catalog) -> str | None:
    """`llm_baseline__mistral_7b_awq__canary` -> `mistral-7b-awq`."""
    if not step_key:
        return None
    return next((v.name for v in catalog.variants if f"__{v.group_name}__" in step_key), None)


def _moved_pins(plan, current: dict[str, Pin]) -> list[Pin]:
    """Each moved variant's pin: its stored pin with the moved model or adapter revisions replaced."""
    pins = []
    for variant, changes in sorted(plan.changes.items()):
        old = current.get(variant) or Pin(variant)
        adapters = {**old.adapter_revisions, **plan.adapter_revisions.get(variant, {})}
        revision = plan.model_revisions.get(variant, old.revision)
        why = "; ".join(f"{c.repo} moved {(c.old_sha or 'none')[:12]} -> {c.new_sha[:12]}" for c in changes)
        pins.append(Pin(variant, revision, adapters, "model_revision_sensor", why))
    return pins


def automation_defs(catalog: Catalog, settings: Settings) -> dg.Definitions:
    nightly_job = dg.define_asset_job(
        "nightly_comparison_job",
        selection=dg.AssetSelection.assets(
            *[asset_key(v, "canary") for v in catalog.names], *_evaluation_keys(catalog)
        ),
        description="Canary runs, the quantization comparison and the LoRA A/B for one night, then the trend.",
    )
    revision_job = dg.define_asset_job(
        "revision_rollout_job",
        selection=dg.AssetSelection.key_prefixes([PREFIX]).materializable(),
        description="Re-roll and re-evaluate the variants whose upstream model revision moved (sensor-driven).",
    )

    return dg.Definitions(
        jobs=[nightly_job, revision_job],
        schedules=[_nightly_schedule(settings, nightly_job)],
        sensors=[
            _revision_sensor(catalog, settings, revision_job),
            _promptset_sensor(catalog, settings, nightly_job),
            _failure_alert_sensor(catalog),
        ],
    )


def _nightly_schedule(settings: Settings, nightly_job) -> dg.ScheduleDefinition:
    tz = settings.nightly_timezone

    @dg.schedule(
        name="nightly_comparison_schedule",
        cron_schedule=settings.nightly_cron,
        execution_timezone=tz,
        job=nightly_job,
        description=f"Nightly evaluation at `{settings.nightly_cron}` ({tz}); each night keeps its partition.",
    )
    def nightly_comparison_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        night = night_of(context.scheduled_execution_time, tz)
        return dg.RunRequest(run_key=f"nightly-{night}", partition_key=night, tags={"llmplat/trigger": "nightly"})

    return nightly_comparison_schedule


def _revision_sensor(catalog: Catalog, settings: Settings, revision_job) -> dg.SensorDefinition:
    tz = settings.nightly_timezone

    @dg.sensor(
        name="model_revision_sensor",
        job=revision_job,
        minimum_interval_seconds=900,
        description="A new commit on a tracked Hub ref re-rolls and re-evaluates only the variants built on it.",
    )
    def model_revision_sensor(context: dg.SensorEvaluationContext):
        from llmplat_dagster.automation.hub import lookup_revisions, tracked_repos
        from llmplat_dagster.automation.revisions import plan_revision_tick, run_key, run_tags

        cursor = json.loads(context.cursor) if context.cursor else {}
        token = dg.EnvVar("HF_TOKEN").get_value() or None  # never logged; look-up errors are token-free
        results = lookup_revisions(
            list(tracked_repos(catalog)), endpoint=settings.hf_endpoint, token=token, timeout_s=settings.hf_timeout_s
        )
        # What the last rollouts rendered: the catalog with the stored pins, so a pinned sha is the baseline.
        current = pins_for_run(context.instance, catalog)
        try:
            pinned = apply_pins(catalog, current)
        except CatalogError as exc:  # a pin the catalog has outgrown: plan from the catalog, say so
            context.log.warning(f"stored pins ignored for this tick: {exc}")
            pinned = catalog
        plan = plan_revision_tick(pinned, cursor, results)
        for reason in plan.skipped:
            context.log.warning(f"revision look-up skipped: {reason}")
        context.update_cursor(json.dumps(plan.new_cursor, sort_keys=True))
        if not plan.changes:
            reason = "; ".join(plan.skipped) if plan.skipped else "no tracked revision moved"
            return dg.SkipReason(("all look-ups failed: " if plan.all_failed else "") + reason)
        selection = variant_keys(plan.variants)
        if catalog.evaluation and set(plan.variants) & catalog.evaluation.variants:
            selection += _evaluation_keys(catalog)
        pins: dict[str, dict] = {}
        for v, sha in plan.model_revisions.items():
            pins.setdefault(v, {})["revision"] = sha
        for v, adapters in plan.adapter_revisions.items():
            pins.setdefault(v, {})["adapter_revisions"] = adapters
        run_config = {"ops": {op_name(asset_key(v, "manifests")): {"config": c} for v, c in pins.items()}}
        request = dg.RunRequest(
            run_key=run_key(plan.changes),
            asset_selection=selection,
            partition_key=night_of(dt.datetime.now(dt.UTC), tz),
            run_config=run_config,
            # its own purpose: a re-roll's results go beside the night's, never over them (defs/io.py)
            tags={**run_tags(plan.changes), "llmplat/trigger": "model-revision", PURPOSE_TAG: run_key(plan.changes)},
        )
        # The pins outlive this run: the next plain rollout renders them too (llm_baseline/<variant>/revision_pin).
        events = [pin_event(pin) for pin in _moved_pins(plan, current)]
        return dg.SensorResult(run_requests=[request], asset_events=events)

    return model_revision_sensor


def _promptset_sensor(catalog: Catalog, settings: Settings, nightly_job) -> dg.SensorDefinition:
    tz = settings.nightly_timezone

    @dg.sensor(
        name="promptset_sensor",
        job=nightly_job,
        minimum_interval_seconds=300,
        description="A new promptset version under the configured S3 prefix re-runs the canaries or the comparison.",
    )
    def promptset_sensor(context: dg.SensorEvaluationContext, s3: dg.ConfigurableResource):
        if not settings.promptset_s3_uri:
            return dg.SkipReason("LLMPLAT_PROMPTSET_S3_URI is not set: no promptset prefix to watch")
        bucket, prefix = parse_s3_uri(settings.promptset_s3_uri, what="LLMPLAT_PROMPTSET_S3_URI")
        try:
            versions = list_promptset_versions(s3.get_client(), bucket, prefix)
        except PromptsetSourceError as exc:
            return dg.SkipReason(str(exc))
        cursor = json.loads(context.cursor) if context.cursor else {}
        fresh, new_cursor = new_versions(versions, cursor)
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        if not fresh:
            return dg.SkipReason(f"no new promptset version under {settings.promptset_s3_uri}")
        night = night_of(dt.datetime.now(dt.UTC), tz)
        requests = []
        for version in fresh:
            uri = f"s3://{bucket}/{version.key}"
            if version.name == ComparisonResource().promptset:
                selection = [*EVALUATION, TREND]
                ops = {op_name(RESPONSES): {"config": {"promptset": uri}}}
            else:
                selection = [asset_key(v, "canary") for v in catalog.names]
                ops = {op_name(asset_key(v, "canary")): {"config": {"promptset": uri}} for v in catalog.names}
            requests.append(
                dg.RunRequest(
                    run_key=f"promptset-{version.token}",
                    asset_selection=selection,
                    partition_key=night,
                    run_config={"ops": ops},
                    tags={
                        "llmplat/trigger": "promptset",
                        "llmplat/promptset": version.name[:63],
                        PURPOSE_TAG: f"promptset-{hashlib.sha256(version.token.encode()).hexdigest()[:16]}",
                    },
                )
            )
        return requests

    return promptset_sensor


def _failure_alert_sensor(catalog: Catalog) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="run_failure_alert_sensor", description="A concise alert for every failed run.")
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
        from llmplat_dagster.automation.alerts import format_alert, post_alert

        run = context.dagster_run
        failures = context.get_step_failure_events()
        step = failures[0].step_key if failures else None
        if failures and failures[0].step_failure_data.error:
            reason = failures[0].step_failure_data.error.message
        else:
            reason = context.failure_event.message or "run failed"
        text = format_alert(run.job_name, run.run_id, step, _variant_of(step, catalog), reason)
        webhook = dg.EnvVar("LLMPLAT_ALERT_WEBHOOK").get_value()
        if not webhook:
            context.log.error(text)
            return
        outcome = post_alert(webhook, text)
        if not outcome.sent:
            context.log.error(f"alert not delivered ({outcome.error}): {text}")

    return run_failure_alert_sensor
