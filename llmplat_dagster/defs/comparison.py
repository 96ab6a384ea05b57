"""Quantization-quality comparison: responses -> judge scores -> metrics with CIs, Pareto, promotion gates; A/B.

Three assets, so each expensive step persists on its own:
`quant_sensitivity_responses` (the quant-sensitivity promptset through FP16 and each candidate, with top-k
logprobs), `quant_quality_comparison` (judge scores + paired metrics, CIs, latency, cost, Pareto; one gate check
per candidate) and `lora_ab_experiment` (pairwise judge, both answer orders, win rate with a sign test).
"""

import base64
import json
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.keys import AB, COMPARISON, EVALUATION_GROUP, RESPONSES, asset_key
from llmplat_dagster.defs.provenance import provenance
from llmplat_dagster.defs.resources import EndpointsResource, ServingResource
from llmplat_dagster.evaluation import judge
from llmplat_dagster.evaluation.cost import DEFAULT_PRICES, load_prices
from llmplat_dagster.evaluation.gate import DEFAULT_METRIC, DEFAULT_MIN_DELTA_LOW, GATE_METRICS, GateRules
from llmplat_dagster.evaluation.promptsets import fold_system_message, load_promptset

# numpy/scipy/pandas/matplotlib (the statistics) and httpx (the serving client) are imported inside the assets:
# every run pod and code server loads this module, and only evaluation runs need them.
if TYPE_CHECKING:
    import pandas as pd

    from llmplat_dagster.serving.client import ServingRequest


class ComparisonResource(dg.ConfigurableResource):
    """Everything a reviewer may want to change without touching code; the roles (reference, candidates,
    judge, A/B pair) are declared in the catalog's `evaluation:` section, which the graph is built from."""

    promptset: str = "quant-sensitivity"
    top_logprobs: int = 5
    structured_judge_output: bool = Field(default=True, description="ask for response_format json_schema")
    n_resamples: int = 2000
    seed: int = 0
    min_quality_delta_low: float = Field(
        default=DEFAULT_MIN_DELTA_LOW, description="gate: lowest acceptable CI bound of the delta"
    )
    max_parse_failure_rate: float = Field(default=0.1, description="gate: highest acceptable judge parse failures")
    gate_metric: str = Field(default=DEFAULT_METRIC, description=f"gate: one of {', '.join(GATE_METRICS)}")
    gate_severity: str = Field(default="ERROR", description="ERROR blocks downstream (trend, promotion); WARN reports")
    capacity: str = Field(default="spot", description="spot | on_demand: which node price to use")
    node_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRICES.items()},
        description="{instance_type: {spot_per_hour, on_demand_per_hour}} in $ (example list prices; set yours)",
    )

    def price_per_hour(self, instance_type: str) -> float:
        try:
            prices = load_prices(self.node_prices)
        except ValueError as exc:
            raise dg.Failure(f"comparison.node_prices: {exc}") from None
        if instance_type not in prices:
            raise dg.Failure(
                f"no price for instance type {instance_type!r} in comparison.node_prices (configured: {sorted(prices)})"
            )
        try:
            return prices[instance_type].per_hour(self.capacity)
        except ValueError as exc:
            raise dg.Failure(f"comparison.capacity: {exc}") from None

    def rules(self) -> GateRules:
        return GateRules(
            min_quality_delta_low=self.min_quality_delta_low,
            max_parse_failure_rate=self.max_parse_failure_rate,
            metric=self.gate_metric,
        )


class ResponsesConfig(dg.Config):
    """Run-time promptset override (the promptset sensor points a run at a new S3 version)."""

    promptset: str | None = None


def _question(messages) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _judge_run(
    url: str, judge_model: str, requests: "list[ServingRequest]", serving: ServingResource
) -> dict[str, str]:
    from llmplat_dagster.serving.client import run_promptset

    rows = run_promptset(url, judge_model, requests, concurrency=serving.concurrency, timeout_s=serving.timeout_s)
    return {r.prompt_id: (r.output_text if r.ok else f"<judge request failed: {r.error}>") for r in rows}


def _structured(cfg: ComparisonResource, schema: dict) -> dict:
    if not cfg.structured_judge_output:
        return {}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}}


def _joined(lists: "pd.Series") -> "pd.Series":
    return lists.map(lambda v: ",".join(v) if v is not None else "")


def _text(frame: "pd.DataFrame", row: str, column: str) -> str | None:
    """A text cell of an optional column (parquet gives None or NaN for a prompt without one)."""
    value = frame.at[row, column] if column in frame else None
    return value if isinstance(value, str) else None


def _png_markdown(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def comparison_defs(catalog: Catalog, partitions: dg.PartitionsDefinition | None = None) -> dg.Definitions:
    roles = catalog.evaluation
    if roles is None:  # a catalog without an `evaluation:` section evaluates nothing
        return dg.Definitions()

    @dg.asset(
        key=RESPONSES,
        deps=[asset_key(v, "readiness") for v in roles.compared],
        group_name=EVALUATION_GROUP,
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
        questions = {p.id: _question(fold_system_message([dict(m) for m in p.messages])) for p in promptset.prompts}
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

    @dg.asset(
        key=COMPARISON,
        ins={"responses": dg.AssetIn(RESPONSES)},
        deps=[asset_key(roles.judge, "readiness")],
        group_name=EVALUATION_GROUP,
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
        import pandas as pd

        from llmplat_dagster.evaluation.comparison import compare
        from llmplat_dagster.serving.client import ServingRequest
        from llmplat_dagster.serving.probes import describe_server

        _fail_on_dead_variants(responses, roles.compared)
        rows = responses.copy()
        rows["top_logprobs"] = rows["top_logprobs"].map(lambda v: json.loads(v) if isinstance(v, str) else None)
        ok = rows[rows["status"] == "ok"]
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
                extra_body=_structured(comparison, judge.JUDGE_SCHEMA),
            )
            for r in ok.itertuples()
        ]
        judge_v = catalog.variant(roles.judge)
        with endpoints.open(judge_v.name) as url:
            judged_against = describe_server(url)
            texts = _judge_run(url, judge_v.served_name, requests, serving)
        scores = []
        for rid, text in texts.items():
            variant, prompt_id = rid.split("\t", 1)
            parsed = judge.parse_judge(text)
            scores.append({"prompt_id": prompt_id, "variant": variant, "score": parsed.score, "error": parsed.error})
        judge_scores = pd.DataFrame(scores, columns=["prompt_id", "variant", "score", "error"])
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
        trend_points = {}
        for r in per_variant.itertuples():
            trend_points[f"quality_delta/{r.variant}"] = float(r.quality_delta)
            trend_points[f"e2e_p95_s/{r.variant}"] = float(r.e2e_s_p95)
            trend_points[f"accuracy/{r.variant}"] = float(r.accuracy)
        basis = sorted(set(responses["time_basis"].dropna())) if "time_basis" in responses else []
        yield dg.Output(
            per_variant.assign(
                dominated_by=_joined(per_variant["dominated_by"]),
                not_separable_from=_joined(per_variant["not_separable_from"]),
                gate_tripped=per_variant["gate_tripped"].map(lambda v: list(v) if v is not None else []),
            ),
            metadata={
                **trend_points,
                "time_basis": "; ".join(basis) or "unknown",
                "measured_against": report.measured_against,
                "report": dg.MetadataValue.md(report.markdown),
                "pareto_plot": dg.MetadataValue.md(_png_markdown(report.plot_png, "Pareto: quality vs p95 latency")),
                "judge": judged_against,
                "judge_note": judge.SAME_FAMILY_NOTE,
                "price_basis": f"{instance} {comparison.capacity} ${prices[roles.reference]}/h",
            },
        )
        yield from _gate_results(per_variant, comparison, roles)

    assets = [quant_sensitivity_responses, quant_quality_comparison]
    if roles.ab is not None:
        assets.append(_ab_asset(catalog, partitions))
    return dg.Definitions(assets=assets)


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


def _ab_asset(catalog: Catalog, partitions: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    roles = catalog.evaluation
    pair = roles.ab

    @dg.asset(
        key=AB,
        ins={"responses": dg.AssetIn(RESPONSES)},
        partitions_def=partitions,
        group_name=EVALUATION_GROUP,
        io_manager_key="parquet_io_manager",
        description="LoRA vs baseline (the design document's 50/50 experiment): judge-scored pairwise win rate.",
    )
    def lora_ab_experiment(
        context: dg.AssetExecutionContext,
        responses,
        endpoints: EndpointsResource,
        serving: ServingResource,
        comparison: ComparisonResource,
    ) -> dg.Output:
        import pandas as pd

        from llmplat_dagster.evaluation import ab
        from llmplat_dagster.serving.client import ServingRequest
        from llmplat_dagster.serving.requests import request_model

        ok = responses[responses["status"] == "ok"]
        control = ok[ok["variant"] == pair.control].set_index("prompt_id")
        treatment = ok[ok["variant"] == pair.treatment].set_index("prompt_id")
        ids = sorted(set(control.index) & set(treatment.index))
        extra = _structured(comparison, judge.PAIRWISE_SCHEMA)
        requests = []
        for pid in ids:
            q, a, b = control.at[pid, "question"], control.at[pid, "output_text"], treatment.at[pid, "output_text"]
            expected = {"reference": _text(control, pid, "reference_answer"), "criteria": _text(control, pid, "rubric")}
            for order, (x, y) in (("AB", (a, b)), ("BA", (b, a))):
                messages = tuple(fold_system_message(judge.pairwise_prompt(q, x, y, **expected)))
                requests.append(ServingRequest(f"{pid}\t{order}", messages, max_tokens=64, extra_body=extra))
        judge_v = catalog.variant(roles.judge)
        with endpoints.open(judge_v.name) as url:
            texts = _judge_run(url, judge_v.served_name, requests, serving)
        first = [judge.parse_pairwise(texts.get(pid + "\tAB", "")) for pid in ids]
        swapped = [judge.parse_pairwise(texts.get(pid + "\tBA", "")) for pid in ids]
        # The control is A in the first order: its wins are the treatment's losses. Only flipped verdicts count.
        control_wins, control_losses, ties, unparsed = judge.pairwise_outcomes(first, swapped)
        result = ab.ab_test(control_losses, control_wins, ties)
        frame = pd.DataFrame(
            {
                "prompt_id": ids,
                "verdict_control_first": [v.winner for v in first],
                "verdict_treatment_first": [v.winner for v in swapped],
                "parse_error": [v.error or w.error for v, w in zip(first, swapped, strict=True)],
            }
        )
        bias = judge.position_bias(first, swapped)
        context.log.info(
            f"{pair.treatment} vs {pair.control}: win rate {result.win_rate:.2f} "
            f"[{result.ci_low:.2f}, {result.ci_high:.2f}], p={result.p_value:.3g}, position bias {bias:.0%}"
        )
        return dg.Output(
            frame,
            metadata={
                "control": pair.control,
                "treatment": pair.treatment,
                "treatment_model": request_model(catalog.variant(pair.treatment)),
                "win_rate": result.win_rate,
                "win_rate_note": "ties count half; the sign test uses the decided pairs",
                "decided_win_rate": result.decided_win_rate,
                "win_rate_ci_low": result.ci_low,
                "win_rate_ci_high": result.ci_high,
                "p_value": result.p_value,
                "decided_pairs": result.n,
                "ties_or_inconsistent": ties,
                "unparsed": unparsed,
                "position_bias_rate": bias,
                "judge_note": judge.SAME_FAMILY_NOTE,
            },
        )

    return lora_ab_experiment
