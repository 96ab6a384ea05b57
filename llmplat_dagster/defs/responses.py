"""`quant_sensitivity_responses`: the quant-sensitivity promptset through the reference and every candidate (the
catalog's `evaluation:` roles), with top-k logprobs and whether each answer passes its prompt's checks."""

import json

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.judging import question
from llmplat_dagster.defs.keys import RESPONSES, asset_key
from llmplat_dagster.defs.ownership import evaluation_asset
from llmplat_dagster.defs.provenance import provenance
from llmplat_dagster.defs.resources import ComparisonResource, EndpointsResource, ServingResource
from llmplat_dagster.evaluation.promptsets import fold_system_message, load_promptset


class ResponsesConfig(dg.Config):
    """Run-time promptset override (the promptset sensor points a run at a new S3 version)."""

    promptset: str | None = None


def responses_asset(catalog: Catalog, partitions: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    roles = catalog.evaluation

    @dg.asset(
        **evaluation_asset(catalog, RESPONSES),
        deps=[asset_key(v, "readiness") for v in roles.compared],
        io_manager_key="parquet_io_manager",
        partitions_def=partitions,
        description="The quant-sensitivity promptset through the reference and every candidate, with top-k logprobs.",
    )
    def quant_sensitivity_responses(
        context: dg.AssetExecutionContext,
        config: ResponsesConfig,
        endpoints: EndpointsResource,
        serving: ServingResource,
        comparison: ComparisonResource,
    ) -> dg.Output:
        import pandas as pd

        from llmplat_dagster.evaluation.accuracy import expectation_columns
        from llmplat_dagster.serving.client import run_promptset
        from llmplat_dagster.serving.probes import describe_server
        from llmplat_dagster.serving.requests import request_model, serving_requests
        from llmplat_dagster.serving.results import results_frame
        from llmplat_dagster.serving.timebase import probe_timebase

        names = roles.compared
        limit = min(catalog.variant(n).max_model_len for n in names)
        promptset = load_promptset(
            config.promptset or comparison.promptset, max_model_len=limit, variant=roles.reference
        )
        requests = serving_requests(promptset.prompts, seed=comparison.seed, top_logprobs=comparison.top_logprobs)
        frames, servers = [], {}
        for name in names:
            with endpoints.open(name) as url:
                servers[name], timebase = describe_server(url), probe_timebase(url)
                rows = run_promptset(
                    url,
                    request_model(catalog.variant(name)),
                    requests,
                    concurrency=serving.concurrency,
                    variant=name,
                    timeout_s=serving.timeout_s,
                )
            context.log.info(f"{name}: {sum(r.ok for r in rows)}/{len(rows)} ok ({servers[name]})")
            source = provenance(context.instance, catalog, name)
            frames.append(
                results_frame(rows).assign(
                    measured_against=servers[name],
                    model=request_model(catalog.variant(name)),
                    time_scale=timebase.time_scale,
                    time_basis=timebase.label,
                    promptset_version=promptset.version,
                    **source,
                )
            )
        frame = pd.concat(frames, ignore_index=True)
        frame = frame.assign(**expectation_columns(frame, promptset.prompts))
        # Parquet cannot hold ragged {token: logprob} maps as columns; keep them as JSON text.
        frame["top_logprobs"] = frame["top_logprobs"].map(lambda v: json.dumps(v) if v else None)
        questions = {p.id: question(fold_system_message([dict(m) for m in p.messages])) for p in promptset.prompts}
        frame["question"] = frame["prompt_id"].map(questions)
        return dg.Output(
            frame,
            metadata={
                "promptset": promptset.name,
                "promptset_version": promptset.version,
                "measured_against": dg.MetadataValue.json(servers),
                "rows": len(frame),
                "error_rate": round(float((frame["status"] != "ok").mean()), 4),
                "checkable_prompts": sum(p.checkable for p in promptset.prompts),
                "accuracy": dg.MetadataValue.json(
                    {v: round(float(g["correct"].dropna().astype(bool).mean()), 4) for v, g in frame.groupby("variant")}
                ),
            },
        )

    return quant_sensitivity_responses
