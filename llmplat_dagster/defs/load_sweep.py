"""Per-variant load sweeps: on demand (`load_sweep_job`) and weekly; the logic is `serving/sweep.py`."""

import base64
from dataclasses import replace
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from llmplat_dagster.catalog import Catalog, VariantSpec
from llmplat_dagster.defs.keys import SWEEP_STAGE, asset_key
from llmplat_dagster.defs.ownership import variant_asset
from llmplat_dagster.defs.resources import EndpointsResource, ServingResource
from llmplat_dagster.evaluation.promptsets import load_promptset

if TYPE_CHECKING:
    import pandas as pd

WEEKLY_CRON = "0 4 * * 0"  # Sundays 04:00, clear of the nightly evaluation

COLUMNS = {
    "concurrency": ("int", "requests in flight (closed loop)"),
    "output_token_throughput": ("float", "output tokens/s"),
    "ttft_p50_ms": ("float", "TTFT p50 (ms)"),
    "ttft_p95_ms": ("float", "TTFT p95 (ms)"),
    "itl_p50_ms": ("float", "ITL p50 (ms)"),
    "itl_p95_ms": ("float", "ITL p95 (ms)"),
    "goodput": ("float", "requests/s meeting every SLO"),
    "good_share": ("float", "share of requests meeting every SLO"),
    "errors": ("int", "failed requests"),
}


class LoadSweepConfig(dg.Config):
    """What to send and what counts as good; defaults size the replicas for the support-bot pilot's SLO."""

    promptset: str = "performance"
    prompts: int | None = Field(default=None, description="use only the first N prompts (a slice keeps it short)")
    max_tokens: int | None = Field(default=None, description="cap every request's max_tokens")
    concurrency_factor: float = Field(default=2.0, description="sweep up to this x max_num_seqs")
    requests_per_slot: int = Field(default=4, description="requests per level = this x concurrency (at least min)")
    min_requests: int = 8
    slo_ttft_ms: float | None = Field(default=2000.0, description="goodput SLO on TTFT (ms), as --goodput ttft:")
    slo_tpot_ms: float | None = Field(default=100.0, description="goodput SLO on TPOT (ms), as --goodput tpot:")
    slo_e2el_ms: float | None = Field(default=None, description="goodput SLO on e2e latency (ms), as --goodput e2el:")
    target_request_rate: float = Field(default=10.0, description="requests/s the replica count is sized for")
    saturation_tolerance: float = Field(default=0.1, description="within this share of the best throughput")


def _png(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _table(levels: "pd.DataFrame") -> dg.MetadataValue:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=desc) for name, (kind, desc) in COLUMNS.items()]
    )
    records = [
        dg.TableRecord({k: (int(r[k]) if COLUMNS[k][0] == "int" else round(float(r[k]), 3)) for k in COLUMNS})
        for _, r in levels.iterrows()
    ]
    return dg.MetadataValue.table(records, schema=schema)


def _sweep_asset(v: VariantSpec) -> dg.AssetsDefinition:
    @dg.asset(
        **variant_asset(v, SWEEP_STAGE),
        deps=[asset_key(v.name, "readiness")],
        io_manager_key="parquet_io_manager",
        description=(
            f"{v.name} at concurrency 1, 2, 4, ... up to 2 x max_num_seqs ({v.max_num_seqs}): throughput, TTFT/ITL, "
            "goodput under the SLO, saturation point and replicas for a request rate."
        ),
    )
    def _load_sweep(
        context: dg.AssetExecutionContext,
        config: LoadSweepConfig,
        endpoints: EndpointsResource,
        serving: ServingResource,
    ) -> dg.Output:
        # The serving stack (httpx, pandas, numpy) is imported when a sweep runs, not when the code location loads.
        from llmplat_dagster.serving.client import run_promptset
        from llmplat_dagster.serving.probes import describe_server
        from llmplat_dagster.serving.requests import request_model, serving_requests
        from llmplat_dagster.serving.sweep import SLO, analyse, concurrency_levels, run_sweep, sweep_plot
        from llmplat_dagster.serving.timebase import probe_timebase

        slo = SLO(config.slo_ttft_ms, config.slo_tpot_ms, config.slo_e2el_ms)
        prompts = load_promptset(config.promptset, max_model_len=v.max_model_len, variant=v.name).prompts
        requests = serving_requests(prompts[: config.prompts] if config.prompts else prompts)
        if config.max_tokens:
            requests = [replace(r, max_tokens=min(r.max_tokens, config.max_tokens)) for r in requests]
        levels = concurrency_levels(v.max_num_seqs, config.concurrency_factor)
        model = request_model(v)
        with endpoints.open(v.name) as url:
            server, timebase = describe_server(url), probe_timebase(url)

            def send(concurrency, batch):
                return run_promptset(
                    url, model, batch, concurrency=concurrency, variant=v.name, timeout_s=serving.timeout_s
                )

            frame = run_sweep(
                send,
                requests,
                levels,
                slo=slo,
                time_scale=timebase.time_scale,
                requests_per_slot=config.requests_per_slot,
                min_requests=config.min_requests,
                on_level=lambda s: context.log.info(
                    f"{v.name} at concurrency {s['concurrency']}: {s['output_token_throughput']:.1f} tokens/s, "
                    f"goodput {s['goodput']:.2f} req/s ({timebase.label})"
                ),
            )
        result = analyse(frame, config.target_request_rate, config.saturation_tolerance)
        against = f"{server}; {timebase.label}"
        png = sweep_plot(frame, title=f"{v.name} load sweep", measured_against=against, slo=slo)
        best = result.best_goodput_concurrency
        return dg.Output(
            frame.assign(variant=v.name, model=model, time_basis=timebase.label, slo=slo.describe()),
            metadata={
                "measured_against": server,
                "time_basis": timebase.label,
                "model": model,
                "slo": f"{slo.describe()} (ms; a request is good only if it meets every one, as vllm bench serve)",
                "levels": _table(frame),
                "plot": dg.MetadataValue.md(_png(png, f"{v.name} load sweep")),
                "saturation_concurrency": result.saturation if result.saturation is not None else "not reached",
                "best_goodput (req/s)": round(result.best_goodput, 3),
                "best_goodput_concurrency": best if best is not None else "none met the SLO",
                "target_request_rate (req/s)": config.target_request_rate,
                "replicas_needed": result.replicas if result.replicas is not None else "no level met the SLO",
            },
        )

    return _load_sweep


def load_sweep_defs(catalog: Catalog, timezone: str = "UTC") -> dg.Definitions:
    assets = [_sweep_asset(v) for v in catalog.variants]
    job = dg.define_asset_job(
        "load_sweep_job",
        selection=dg.AssetSelection.assets(*[asset_key(v, SWEEP_STAGE) for v in catalog.names]),
        description="Load sweeps of the selected variants (concurrency 1 .. 2 x max_num_seqs); on demand or weekly.",
    )
    schedule = dg.ScheduleDefinition(
        name="load_sweep_schedule",
        job=job,
        cron_schedule=WEEKLY_CRON,
        execution_timezone=timezone,
        description=f"Weekly load sweep of every variant (`{WEEKLY_CRON}`, {timezone}).",
    )
    return dg.Definitions(assets=assets, jobs=[job], schedules=[schedule])
