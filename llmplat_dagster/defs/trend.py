"""The trend view: quality delta and p95 latency per variant over the last N nights, with a plot."""

import base64

import dagster as dg

from llmplat_dagster.defs.io import NIGHTLY
from llmplat_dagster.defs.keys import COMPARISON, EVALUATION_GROUP, TREND


def trend_defs(nights: int) -> dg.Definitions:
    @dg.asset(
        key=TREND,
        deps=[COMPARISON],
        group_name=EVALUATION_GROUP,
        description=f"Quality delta and p95 latency per variant over the last {nights} nights.",
    )
    def quality_trend(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        import pandas as pd

        from llmplat_dagster.evaluation.trend import trend_frame, trend_plot

        result = context.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=COMPARISON), limit=nights * 4)
        records, against = [], set()
        for record in result.records:
            mat = record.asset_materialization
            if mat is None:
                continue
            meta = {k: v.value for k, v in mat.metadata.items()}
            if meta.get("purpose", NIGHTLY) != NIGHTLY:
                continue  # a re-roll or promptset run of that night: kept beside the night's, not a trend point
            against.add(str(meta.get("measured_against", "unknown")))
            night = mat.partition or record.timestamp and pd.Timestamp(record.timestamp, unit="s").strftime("%Y-%m-%d")
            records.append((night, {k: float(v) for k, v in meta.items() if "/" in k and isinstance(v, int | float)}))
        frame = trend_frame(list(reversed(records)), nights)
        metadata = {
            "nights": int(frame["night"].nunique()),
            "table": dg.MetadataValue.md(frame.to_markdown(index=False)),
        }
        if len(frame):
            png = trend_plot(frame, ", ".join(sorted(against)))
            metadata["plot"] = dg.MetadataValue.md(f"![trend](data:image/png;base64,{base64.b64encode(png).decode()})")
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(assets=[quality_trend])
