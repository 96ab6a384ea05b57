"""`lora_ab_experiment`: the design document's 50/50 experiment, judge-scored pairwise in both answer orders."""

from typing import TYPE_CHECKING

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.judging import judge_run, png_markdown, structured, text_cell
from llmplat_dagster.defs.keys import AB, RESPONSES
from llmplat_dagster.defs.ownership import evaluation_asset
from llmplat_dagster.defs.resources import ComparisonResource, EndpointsResource, ServingResource
from llmplat_dagster.evaluation import judge
from llmplat_dagster.evaluation.promptsets import fold_system_message

if TYPE_CHECKING:
    import pandas as pd


def ab_asset(catalog: Catalog, partitions: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    roles = catalog.evaluation
    pair = roles.ab

    @dg.asset(
        **evaluation_asset(catalog, AB),
        ins={"responses": dg.AssetIn(RESPONSES)},
        partitions_def=partitions,
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
        from llmplat_dagster.serving.requests import request_model

        ok = responses[responses["status"] == "ok"]
        servers = sorted(set(responses["measured_against"].dropna())) if "measured_against" in responses else []
        measured_against = ", ".join(servers) or "unknown"
        control = ok[ok["variant"] == pair.control].set_index("prompt_id")
        treatment = ok[ok["variant"] == pair.treatment].set_index("prompt_id")
        ids = sorted(set(control.index) & set(treatment.index))
        requests = _pairwise_requests(control, treatment, ids, structured(comparison, judge.PAIRWISE_SCHEMA))
        judge_v = catalog.variant(roles.judge)
        with endpoints.open(judge_v.name) as url:
            texts = judge_run(url, judge_v.served_name, requests, serving)
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
                "measured_against": measured_against,
                "plot": dg.MetadataValue.md(
                    png_markdown(
                        ab.ab_plot(
                            result, control=pair.control, treatment=pair.treatment, measured_against=measured_against
                        ),
                        "A/B: wins, ties and losses; win rate with its CI",
                    )
                ),
            },
        )

    return lora_ab_experiment


def _pairwise_requests(control: "pd.DataFrame", treatment: "pd.DataFrame", ids: list[str], extra: dict) -> list:
    """Each prompt's two answers for the judge, in both orders (position bias shows as a flipped verdict), with the
    prompt's reference answer and rubric to judge against."""
    from llmplat_dagster.serving.client import ServingRequest

    requests = []
    for pid in ids:
        q, a, b = control.at[pid, "question"], control.at[pid, "output_text"], treatment.at[pid, "output_text"]
        expected = {
            "reference": text_cell(control, pid, "reference_answer"),
            "criteria": text_cell(control, pid, "rubric"),
        }
        for order, (x, y) in (("AB", (a, b)), ("BA", (b, a))):
            messages = tuple(fold_system_message(judge.pairwise_prompt(q, x, y, **expected)))
            requests.append(ServingRequest(f"{pid}\t{order}", messages, max_tokens=64, extra_body=extra))
    return requests
