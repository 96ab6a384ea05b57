"""Per-variant canary runs: a promptset through the serving client, one parquet row per request.

Rows are checkpointed as they finish, so a run cut short (spot preemption of the endpoint, a killed run)
resumes from what was already written instead of starting over. The checkpoint is keyed by what was measured
(night, promptset version, rollout, purpose) and cleared only after the results are stored.
"""

from typing import TYPE_CHECKING

import dagster as dg

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.io import run_purpose
from llmplat_dagster.defs.keys import asset_key
from llmplat_dagster.defs.metadata import ERROR_RATE, frame_table, latency_metadata
from llmplat_dagster.defs.ownership import variant_asset
from llmplat_dagster.defs.provenance import provenance
from llmplat_dagster.defs.resources import EndpointsResource, ServingResource
from llmplat_dagster.evaluation.promptsets import load_promptset

if TYPE_CHECKING:
    import pandas as pd

PREVIEW_COLUMNS = ["prompt_id", "status", "ttft_s", "tpot_s", "e2e_s", "output_tokens", "error", "output_text"]


class CanaryConfig(dg.Config):
    """Run-time promptset override (the promptset sensor points a run at a new S3 version)."""

    promptset: str | None = None


def _metadata(frame: "pd.DataFrame", summary: dict, extra: dict) -> dict:
    """Latency with units, what it was measured against, and the first rows as a native table."""
    return {**latency_metadata(summary), **extra, "preview": frame_table(frame, PREVIEW_COLUMNS, limit=10)}


def _canary_asset(catalog: Catalog, v: VariantSpec, partitions: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    @dg.asset(
        **variant_asset(v, "canary"),
        partitions_def=partitions,
        deps=[asset_key(v.name, "readiness")],
        io_manager_key="parquet_io_manager",
        description=f"The canary promptset through {v.name}, timed like `vllm bench serve`; one row per request.",
    )
    def _canary(
        context: dg.AssetExecutionContext,
        config: CanaryConfig,
        endpoints: EndpointsResource,
        serving: ServingResource,
    ):
        # The serving stack (httpx, pandas) is imported when a canary runs, not when the code location loads.
        from llmplat_dagster.serving.checkpoint import CheckpointError
        from llmplat_dagster.serving.client import Progress, run_promptset
        from llmplat_dagster.serving.probes import describe_server
        from llmplat_dagster.serving.requests import request_model, serving_requests
        from llmplat_dagster.serving.results import resumed_summary
        from llmplat_dagster.serving.timebase import probe_timebase

        promptset = load_promptset(
            config.promptset or serving.promptset,
            max_model_len=v.max_model_len,
            variant=v.name,
            strict=serving.strict_promptsets,
        )
        for issue in promptset.issues:
            context.log.warning(f"skipped: {issue}")
        source = provenance(context.instance, catalog, v.name)
        checkpoint = _checkpoint(context, v, serving, promptset.version, source)
        done = checkpoint.ok_rows()
        if done:
            context.log.info(f"resuming: {len(done)} rows already written in {checkpoint.location}")

        def progress(p: Progress) -> None:
            context.log.info(f"{v.name}: {p.done}/{p.total} requests ({p.errors} failed), {p.requests_per_s:.1f} req/s")

        with endpoints.open(v.name) as url:
            server, timebase = describe_server(url), probe_timebase(url)
            new = run_promptset(
                url,
                request_model(v),
                serving_requests(promptset.prompts),
                concurrency=serving.concurrency,
                variant=v.name,
                skip_ids={r.prompt_id for r in done},
                on_result=checkpoint.append,
                on_progress=progress,
                progress_interval_s=serving.progress_interval_s,
                timeout_s=serving.timeout_s,
            )
        frame, summary = resumed_summary(done, new)
        _fail_above_error_rate(frame, v, serving.max_error_rate, checkpoint.location)
        frame = frame.assign(**source, promptset_version=promptset.version)
        # Dagster stores a yielded output before resuming here: the rows leave the checkpoint only once the
        # results are written, so a failed write keeps them for the re-run.
        yield dg.Output(
            frame.drop(columns=["top_logprobs"], errors="ignore"),
            metadata=_metadata(
                frame,
                summary,
                {
                    "measured_against": server,
                    "time_basis": timebase.raw_label,
                    "endpoint": url,
                    "model": request_model(v),
                    "promptset": promptset.name,
                    "promptset_version": promptset.version,
                    **source,
                    "requests": len(frame),
                    "resumed_rows": len(done),
                },
            ),
        )
        try:
            checkpoint.clear()
        except CheckpointError as exc:
            raise dg.Failure(f"{v.name}: results stored, but {exc}") from None

    return _canary


def _checkpoint(context: dg.AssetExecutionContext, v: VariantSpec, serving: ServingResource, version: str, source):
    """The checkpoint of this measurement: night, promptset version, rollout and purpose (one never resumes another)."""
    from llmplat_dagster.serving.checkpoint import Checkpoint, checkpoint_key

    key = checkpoint_key(
        night=context.partition_key if context.has_partition_key else "unpartitioned",
        promptset_version=version,
        model_revision=source["model_revision"],
        manifest_hash=source["manifest_hash"],
        purpose=run_purpose(context.run.tags),
    )
    return Checkpoint(serving.checkpoint_dir, v.name, key)


def _fail_above_error_rate(frame: "pd.DataFrame", v: VariantSpec, max_error_rate: float, kept_in: str) -> None:
    errors = int((frame["status"] != "ok").sum())
    error_rate = errors / len(frame) if len(frame) else 1.0
    if error_rate > max_error_rate:
        first = frame.loc[frame["status"] != "ok", "error"].iloc[0] if errors else "no request was sent"
        raise dg.Failure(
            description=(
                f"{v.name}: {errors}/{len(frame)} canary requests failed (first: {first}); "
                f"{len(frame) - errors} good rows are kept in {kept_in} and a re-run resumes from them"
            ),
            metadata={ERROR_RATE: round(100 * error_rate, 1), "checkpoint": kept_in},
        )


def canary_defs(catalog: Catalog, partitions: dg.PartitionsDefinition | None = None) -> dg.Definitions:
    return dg.Definitions(assets=[_canary_asset(catalog, v, partitions) for v in catalog.variants])
