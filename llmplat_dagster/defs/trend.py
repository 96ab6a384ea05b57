"""The trend view: quality delta and p95 latency per variant over the last N nights, with a plot."""

import base64
import io

import dagster as dg
import pandas as pd

from llmplat_dagster.defs.keys import COMPARISON, EVALUATION_GROUP, TREND

SERIES = {"quality_delta": "quality delta vs FP16", "e2e_p95_s": "p95 e2e latency (s)"}


def trend_frame(records: list[tuple[str, dict[str, float]]], nights: int) -> pd.DataFrame:
    """[(night, {"quality_delta/<variant>": x, ...})] -> one row per night and variant, newest `nights` nights."""
    rows = []
    for night, values in records:
        for key, value in values.items():
            series, _, variant = key.partition("/")
            if series in SERIES and variant:
                rows.append({"night": night, "variant": variant, series: value})
    if not rows:
        return pd.DataFrame(columns=["night", "variant", *SERIES])
    frame = pd.DataFrame(rows).groupby(["night", "variant"], as_index=False).first()
    keep = sorted(frame["night"].unique())[-nights:]
    return frame[frame["night"].isin(keep)].sort_values(["night", "variant"]).reset_index(drop=True)


def trend_plot(frame: pd.DataFrame, measured_against: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SERIES), figsize=(11, 3.8))
    for ax, (series, label) in zip(axes, SERIES.items(), strict=True):
        for variant, group in frame.groupby("variant"):
            ax.plot(group["night"], group[series], marker="o", label=variant)
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=45)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"nightly trend — measured against {measured_against}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def trend_defs(nights: int) -> dg.Definitions:
    @dg.asset(
        key=TREND,
        deps=[COMPARISON],
        group_name=EVALUATION_GROUP,
        description=f"Quality delta and p95 latency per variant over the last {nights} nights.",
    )
    def quality_trend(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        result = context.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=COMPARISON), limit=nights * 4)
        records, against = [], set()
        for record in result.records:
            mat = record.asset_materialization
            if mat is None:
                continue
            meta = {k: v.value for k, v in mat.metadata.items()}
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
