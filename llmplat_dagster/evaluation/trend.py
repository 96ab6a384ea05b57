"""The nightly trend: one row per night and variant from the comparison's per-night figures, and its plot."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

SERIES = {"quality_delta": "quality delta vs FP16", "e2e_p95_s": "p95 e2e latency (s)"}


def trend_frame(records: list[tuple[str, Mapping[str, Mapping[str, float]]]], nights: int) -> pd.DataFrame:
    """[(night, {variant: {"quality_delta": x, "e2e_p95_s": y}})] -> one row per night and variant, the newest
    `nights` nights; the first record of a night and variant wins (records come newest first)."""
    if nights < 1:
        raise ValueError(f"a trend needs at least one night, got {nights}")
    rows = []
    for night, by_variant in records:
        for variant, values in by_variant.items():
            series = {k: float(v) for k, v in values.items() if k in SERIES and isinstance(v, int | float)}
            if series:
                rows.append({"night": night, "variant": variant, **series})
    if not rows:
        return pd.DataFrame(columns=["night", "variant", *SERIES])
    frame = pd.DataFrame(rows).groupby(["night", "variant"], as_index=False).first()
    keep = sorted(frame["night"].unique())[-nights:]
    return frame[frame["night"].isin(keep)].sort_values(["night", "variant"]).reset_index(drop=True)


def trend_plot(frame: pd.DataFrame, measured_against: str) -> bytes:
    from llmplat_dagster.plots import figure, png

    with figure(1, len(SERIES), figsize=(11, 3.8)) as (fig, axes):
        for ax, (series, label) in zip(axes, SERIES.items(), strict=True):
            for variant, group in frame.groupby("variant"):
                ax.plot(group["night"], group[series], marker="o", label=variant)
            ax.set_title(label)
            ax.tick_params(axis="x", rotation=45)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"nightly trend — measured against {measured_against}", fontsize=9)
        return png(fig, dpi=90)
