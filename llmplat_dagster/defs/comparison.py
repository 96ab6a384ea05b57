"""Quantization-quality comparison: responses -> judge scores -> metrics with CIs, Pareto, promotion gates; A/B.

Three assets, so each expensive step persists on its own: `quant_sensitivity_responses` (defs/responses.py),
`quant_quality_comparison` (here: judge scores + paired metrics, CIs, latency, cost, Pareto; one promotion gate
check per candidate) and `lora_ab_experiment` (defs/ab.py: pairwise judge, both answer orders, sign test).
"""

import json
from typing import TYPE_CHECKING

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.ab import ab_asset
from llmplat_dagster.defs.judging import joined, judge_run, png_markdown, structured
from llmplat_dagster.defs.keys import COMPARISON, RESPONSES, TREND_POINTS, asset_key
from llmplat_dagster.defs.metadata import frame_table
from llmplat_dagster.defs.ownership import evaluation_asset
from llmplat_dagster.defs.resources import ComparisonResource, EndpointsResource, ServingResource
from llmplat_dagster.defs.responses import responses_asset
from llmplat_dagster.evaluation import judge
from llmplat_dagster.evaluation.promptsets import fold_system_message

# numpy/scipy/pandas/matplotlib (the statistics) and httpx (the serving client) are imported inside the assets:
# every run pod and code server loads this module, and only evaluation runs need them.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ComparisonResource", "comparison_defs", "gate_check_name"]

# The comparison's columns a person reads first, labelled with their units (all of them are in the parquet).
REPORT_COLUMNS = {
    "variant": "variant",
    "role": "role",
    "accuracy": "accuracy (share)",
    "accuracy_ci_low": "accuracy CI low",
    "accuracy_ci_high": "accuracy CI high",
    "quality_delta": "Δ gate metric vs reference",
    "quality_delta_ci_low": "Δ CI low",
    "quality_delta_ci_high": "Δ CI high",
    "similarity_mean": "ROUGE-L vs reference",
    "kl_mean": "top-k KL vs reference",
    "judge_mean": "judge mean (1-10)",
    "e2e_s_p95": "e2e p95 (s)",
    "output_token_throughput": "output throughput (tokens/s)",
    "cost_per_mtok": "$ / 1M output tokens",
    "on_frontier": "on Pareto frontier",
    "dominated_by": "dominated by",
    "not_separable_from": "not separable from",
    "gate_passed": "gate passed",
}


def comparison_defs(catalog: Catalog, partitions: dg.PartitionsDefinition | None = None) -> dg.Definitions:
    roles = catalog.evaluation
    if roles is None:  # a catalog without an `evaluation:` section evaluates nothing
        return dg.Definitions()
    assets = [responses_asset(catalog, partitions), _comparison_asset(catalog, partitions)]
    if roles.ab is not None:
        assets.append(ab_asset(catalog, partitions))
    return dg.Definitions(assets=assets)


def _comparison_asset(catalog: Catalog, partitions: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    roles = catalog.evaluation

    @dg.asset(
        **evaluation_asset(catalog, COMPARISON),
        ins={"responses": dg.AssetIn(RESPONSES)},
        deps=[asset_key(roles.judge, "readiness")],
        io_manager_key="parquet_io_manager",
        partitions_def=partitions,
        check_specs=[
            dg.AssetCheckSpec(
                gate_check_name(v),
                asset=COMPARISON,
                blocking=True,  # at ERROR severity a failed gate stops the trend and the promotion record
                description=f"promotion gate for {v}: quality delta CI and judge parse failures vs the reference"
                + (" (advisory: reports at WARN, never blocks)" if v in roles.advisory_gates else ""),
            )
            for v in roles.candidates
        ],
        description="Per candidate vs FP16: quality delta with bootstrap CIs, judge score, latency, cost, Pareto.",
    )
    def quant_quality_comparison(
        context: dg.AssetExecutionContext,
        responses,
        endpoints: EndpointsResource,
        serving: ServingResource,
        comparison: ComparisonResource,
    ):

        from llmplat_dagster.evaluation.comparison import compare

        _fail_on_dead_variants(responses, roles.compared)
        rows = responses.copy()
        rows["top_logprobs"] = rows["top_logprobs"].map(lambda v: json.loads(v) if isinstance(v, str) else None)
        judge_scores, judged_against = _judge_scores(
            rows[rows["status"] == "ok"], catalog.variant(roles.judge), endpoints, serving, comparison
        )
        instance = catalog.node.instance_type
        prices = {n: comparison.price_per_hour(instance) for n in roles.compared}
        servers = sorted(set(responses["measured_against"].dropna())) or [judged_against]
        report = compare(
            rows,
            reference=roles.reference,
            candidates=tuple(roles.candidates),
            judge_scores=judge_scores,
            prices=prices,
            rules=comparison.rules(),
            n_resamples=comparison.n_resamples,
            seed=comparison.seed,
            measured_against=", ".join(servers),
        )
        context.log.info("\n" + report.markdown)
        origin = rows.drop_duplicates("variant").set_index("variant")
        per_variant = report.per_variant.copy()
        for column in ("model_revision", "manifest_hash", "vllm_image", "promptset_version"):
            per_variant[column] = per_variant["variant"].map(origin[column]) if column in origin else None
        basis = sorted(set(responses["time_basis"].dropna())) if "time_basis" in responses else []
        stored = per_variant.assign(
            dominated_by=joined(per_variant["dominated_by"]),
            not_separable_from=joined(per_variant["not_separable_from"]),
            gate_tripped=per_variant["gate_tripped"].map(lambda v: list(v) if v is not None else []),
        )
        table = stored[[c for c in REPORT_COLUMNS if c in stored]].rename(columns=REPORT_COLUMNS)
        yield dg.Output(
            stored,
            metadata={
                TREND_POINTS: dg.MetadataValue.json(_trend_points(per_variant)),
                "time_basis": "; ".join(basis) or "unknown",
                "measured_against": report.measured_against,
                "comparison": frame_table(table),
                "report": dg.MetadataValue.md(report.markdown),
                "pareto_plot": dg.MetadataValue.md(png_markdown(report.plot_png, "Pareto: quality vs p95 latency")),
                "judge": judged_against,
                "judge_note": judge.SAME_FAMILY_NOTE,
                "price_basis": f"{instance} {comparison.capacity} ${prices[roles.reference]}/h",
            },
        )
        yield from _gate_results(per_variant, comparison, roles)

    return quant_quality_comparison


def _trend_points(per_variant: "pd.DataFrame") -> dict[str, dict[str, float]]:
    """What the trend reads back per variant (one JSON entry in the UI, not a float per variant and figure)."""
    return {
        r.variant: {
            "quality_delta": float(r.quality_delta),
            "e2e_p95_s": float(r.e2e_s_p95),
            "accuracy": float(r.accuracy),
        }
        for r in per_variant.itertuples()
    }


def _judge_scores(ok: "pd.DataFrame", judge_v, endpoints, serving, comparison) -> tuple["pd.DataFrame", str]:
    """The judge's score of every answered prompt against the prompt's reference answer and rubric (never against
    another model's answer); parse failures are kept as errors. Returns the scores and what the judge ran on."""
    import pandas as pd

    from llmplat_dagster.serving.client import ServingRequest
    from llmplat_dagster.serving.probes import describe_server

    requests = [
        ServingRequest(
            prompt_id=f"{r.variant}\t{r.prompt_id}",
            messages=tuple(
                fold_system_message(
                    judge.judge_prompt(r.question, r.output_text, reference=r.reference_answer, criteria=r.rubric)
                )
            ),
            max_tokens=160,
            temperature=0.0,
            extra_body=structured(comparison, judge.JUDGE_SCHEMA),
        )
        for r in ok.itertuples()
    ]
    with endpoints.open(judge_v.name) as url:
        judged_against = describe_server(url)
        texts = judge_run(url, judge_v.served_name, requests, serving)
    scores = []
    for rid, text in texts.items():
        variant, prompt_id = rid.split("\t", 1)
        parsed = judge.parse_judge(text)
        scores.append({"prompt_id": prompt_id, "variant": variant, "score": parsed.score, "error": parsed.error})
    return pd.DataFrame(scores, columns=["prompt_id", "variant", "score", "error"]), judged_against


def _fail_on_dead_variants(responses: "pd.DataFrame", names: list[str]) -> None:
    """A variant without one answered prompt cannot be compared: say which, and why, instead of reporting n=0."""
    dead = []
    for name in names:
        mine = responses[responses["variant"] == name]
        if not (mine["status"] == "ok").any():
            first = mine["error"].dropna().iloc[0] if mine["error"].notna().any() else "no rows at all"
            dead.append(f"{name}: 0 of {len(mine)} responses ok (first error: {first})")
    if dead:
        raise dg.Failure(
            description="nothing to compare for " + "; ".join(dead) + ". Is the endpoint up? The responses are "
            "kept in the quant_sensitivity_responses partition.",
            metadata={"dead_variants": dg.MetadataValue.json([d.split(":", 1)[0] for d in dead])},
        )


def gate_check_name(variant: str) -> str:
    return f"promotion_gate_{variant.replace('-', '_')}"


def _gate_results(per_variant: "pd.DataFrame", comparison: ComparisonResource, roles):
    """One check result per candidate: which rule tripped and by how much, with the thresholds it was held to, at
    the configured severity (WARN for the catalog's advisory gates, which report without blocking)."""
    configured = dg.AssetCheckSeverity(comparison.gate_severity.upper())
    thresholds = {
        "gate_metric": comparison.gate_metric,
        "threshold: min Δ CI low": comparison.min_quality_delta_low,
        "threshold: max judge parse failures (share)": comparison.max_parse_failure_rate,
    }
    for variant in roles.candidates:
        advisory = variant in roles.advisory_gates
        severity = dg.AssetCheckSeverity.WARN if advisory else configured
        row = per_variant.loc[per_variant["variant"] == variant]
        if row.empty:
            yield dg.AssetCheckResult(
                check_name=gate_check_name(variant),
                passed=False,
                severity=severity,
                description="not compared",
                metadata={**thresholds, "advisory": advisory},
            )
            continue
        r = row.iloc[0]
        tripped = list(r["gate_tripped"]) if r["gate_tripped"] is not None else []
        source = {c: str(r.get(c)) for c in ("model_revision", "manifest_hash", "vllm_image")}
        yield dg.AssetCheckResult(
            check_name=gate_check_name(variant),
            passed=bool(r["gate_passed"]),
            severity=severity,
            description=("; ".join(tripped) or "all promotion rules pass")
            + (" (advisory: reports, never blocks)" if advisory else ""),
            metadata={
                **thresholds,
                "advisory": advisory,
                "observed: Δ": round(float(r["quality_delta"]), 4),
                "observed: Δ CI low": round(float(r["quality_delta_ci_low"]), 4),
                "observed: Δ CI high": round(float(r["quality_delta_ci_high"]), 4),
                "accuracy Δ": round(float(r["accuracy_delta"]), 4),
                "accuracy McNemar p": round(float(r["accuracy_mcnemar_p"]), 4),
                "observed: judge parse failures (share)": round(float(r["judge_parse_failure_rate"]), 4),
                "tripped": dg.MetadataValue.json(tripped),
                **source,
            },
        )
