"""The trend view: quality delta and p95 latency per variant over the last N nights, with a plot."""

import base64

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.io import NIGHTLY
from llmplat_dagster.defs.keys import COMPARISON, TREND, TREND_POINTS
from llmplat_dagster.defs.metadata import frame_table
from llmplat_dagster.defs.ownership import evaluation_asset


def trend_defs(catalog: Catalog, nights: int) -> dg.Definitions:
    @dg.asset(
        **evaluation_asset(catalog, TREND),
        deps=[COMPARISON],
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
            points = meta.get(TREND_POINTS)
            if isinstance(points, dict):
                records.append((night, points))
        frame = trend_frame(records, nights)
        metadata = {
            "nights": int(frame["night"].nunique()),
            "table": frame_table(frame, limit=nights * 8),
            "measured_against": ", ".join(sorted(against)) or "no comparison yet",
        }
        if len(frame):
            png = trend_plot(frame, ", ".join(sorted(against)))
            metadata["plot"] = dg.MetadataValue.md(f"![trend](data:image/png;base64,{base64.b64encode(png).decode()})")
        return dg.MaterializeResult(metadata=metadata)

    return dg.Definitions(assets=[quality_trend])
