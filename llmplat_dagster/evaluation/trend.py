"""The nightly trend: one row per night and variant from the comparison's per-night figures, and its plot."""

from __future__ import annotations

import io

import pandas as pd

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
