"""Asset keys, groups, partitions, tags and op names: spelled once, here, and imported everywhere else.

The UI, sensors' run config (`ops: {<op name>: ...}`), the demo summary and the tests all name the same
things; when they spell them on their own they drift apart.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

PREFIX = "llm_baseline"
STAGES = ("manifests", "deployment", "readiness", "canary")
ROLLOUT_STAGES = ("manifests", "deployment", "readiness")
SWEEP_STAGE = "load_sweep"  # per variant, on demand and weekly: not part of the main job
PIN_STAGE = "revision_pin"

SHARED_MANIFESTS = dg.AssetKey([PREFIX, "shared", "manifests"])
RESPONSES = dg.AssetKey([PREFIX, "quant_sensitivity_responses"])
COMPARISON = dg.AssetKey([PREFIX, "quant_quality_comparison"])
AB = dg.AssetKey([PREFIX, "lora_ab_experiment"])
TREND = dg.AssetKey([PREFIX, "quality_trend"])
PROMOTION = dg.AssetKey([PREFIX, "promotion_record"])
EVALUATION = (RESPONSES, COMPARISON, AB, PROMOTION)

# The comparison's per-variant figures the trend reads back (metadata key of each nightly comparison).
TREND_POINTS = "trend points"

SHARED_GROUP = f"{PREFIX}_shared"
EVALUATION_GROUP = "evaluation"

VARIANT_TAG = "llmplat/variant"
TRIGGER_TAG = "llmplat/trigger"
PURPOSE_TAG = "llmplat/purpose"  # set on runs whose results must not replace the night's (defs/io.py)

# The first night this project evaluated (LLMPLAT_FIRST_NIGHT moves it for a new deployment); partitions before
# it would only show as "missing" in the UI and make every partitioned asset look mostly unfilled.
PARTITIONS_START = "2026-11-28"


def asset_key(variant: str, stage: str) -> dg.AssetKey:
    """`llm_baseline/<variant>/<stage>`."""
    return dg.AssetKey([PREFIX, variant, stage])


def pin_key(variant: str) -> dg.AssetKey:
    """`llm_baseline/<variant>/revision_pin`: the revisions the next rollout renders (see `llmplat_dagster.pins`)."""
    return asset_key(variant, PIN_STAGE)


def rollout_pool(variant: str) -> str:
    """The concurrency pool of a variant's rollout steps; the instance limits every pool to one run at a time."""
    return f"rollout-{variant}"


def variant_job_name(stage: str, variant: str) -> str:
    """`rollout_mistral_7b_awq_job`: one job per variant, so picking a variant is picking a job."""
    return f"{stage}_{variant.replace('-', '_')}_job"


def op_name(key: dg.AssetKey) -> str:
    """The op (step) Dagster derives from an asset key, as run config and step keys name it."""
    return key.to_python_identifier()


def variant_keys(variants, stages=STAGES) -> list[dg.AssetKey]:
    return [asset_key(v, s) for v in variants for s in stages]


def daily_partitions(timezone: str, first_night: str = PARTITIONS_START) -> dg.DailyPartitionsDefinition:
    """One partition per night from the first; `end_offset=1` so tonight's run writes tonight's date."""
    return dg.DailyPartitionsDefinition(start_date=first_night, timezone=timezone, end_offset=1)


def night_of(moment: dt.datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d")
