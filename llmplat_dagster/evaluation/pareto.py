"""Pareto frontier over (quality, p95 latency, cost), its plot and its table.

A row is dominated when another is at least as good on every objective and strictly better on one; equal
rows do not dominate each other, so ties all stay on the frontier. A missing objective value counts as the
worst possible, so a variant that was not measured cannot dominate one that was.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MAXIMIZE = ("quality",)
MINIMIZE = ("p95_latency_s", "cost_per_mtok")


def _dominance(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> np.ndarray:
    """dom[i, j] is True when row i dominates row j (objectives as "larger is better", NaN worst)."""
    cols = [df[c].to_numpy(dtype=float) for c in maximize] + [-df[c].to_numpy(dtype=float) for c in minimize]
    if not cols:
        raise ValueError("need at least one objective")
    x = np.nan_to_num(np.column_stack(cols), nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    geq = (x[:, None, :] >= x[None, :, :]).all(axis=2)
    gt = (x[:, None, :] > x[None, :, :]).any(axis=2)
    return geq & gt


def pareto_frontier(
    df: pd.DataFrame, *, maximize: Sequence[str] = MAXIMIZE, minimize: Sequence[str] = MINIMIZE
) -> pd.Series:
    """True for rows no other row dominates (named ``on_frontier``, df's index)."""
    dom = _dominance(df, maximize, minimize)
    return pd.Series(~dom.any(axis=0), index=df.index, name="on_frontier")


def dominated_by(
    df: pd.DataFrame, *, label: str = "variant", maximize: Sequence[str] = MAXIMIZE, minimize: Sequence[str] = MINIMIZE
) -> pd.Series:
    """For each row, the ``label`` values of the rows that dominate it (empty list on the frontier)."""
    dom = _dominance(df, maximize, minimize)
    labels = df[label].tolist()
    return pd.Series([[labels[i] for i in np.flatnonzero(dom[:, j])] for j in range(len(df))], index=df.index)


def pareto_plot(
    df: pd.DataFrame,
    *,
    measured_against: str,
    quality: str = "quality",
    latency: str = "p95_latency_s",
    cost: str = "cost_per_mtok",
    label: str = "variant",
    on_frontier: str = "on_frontier",
    quality_label: str = "quality",
) -> bytes:
    """PNG: quality vs p95 latency, colour = $/1M output tokens, frontier ringed and joined, variants named."""
    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=100)
    try:
        x, y = df[latency].to_numpy(dtype=float), df[quality].to_numpy(dtype=float)
        c = df[cost].to_numpy(dtype=float)
        finite_c = np.where(np.isfinite(c), c, np.nan)
        points = ax.scatter(x, y, c=finite_c, cmap="viridis", s=120, zorder=3, plotnonfinite=True)
        if np.isfinite(finite_c).any():
            fig.colorbar(points, ax=ax, label="$ per 1M output tokens")
        front = df[on_frontier].to_numpy(dtype=bool) if on_frontier in df else np.zeros(len(df), bool)
        if front.any():
            ax.scatter(x[front], y[front], s=320, facecolors="none", edgecolors="crimson", linewidths=2, zorder=4)
            order = np.argsort(x[front])
            ax.plot(x[front][order], y[front][order], color="crimson", linestyle="--", linewidth=1, label="frontier")
            ax.legend(loc="best")
        for xi, yi, name in zip(x, y, df[label].astype(str), strict=True):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(8, 6), fontsize=9)
        ax.set_xlabel(f"p95 latency (s) [{latency}]")
        ax.set_ylabel(quality_label)
        fig.suptitle("Quality vs latency and cost", fontsize=12)
        ax.set_title(f"measured against: {measured_against}", fontsize=9)
        ax.grid(True, alpha=0.3)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


def markdown_table(df: pd.DataFrame, *, floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table (lists shown comma-separated, booleans as yes/no, no index)."""
    shown = df.copy()
    for col in shown.columns:
        values = shown[col]
        if values.map(lambda v: isinstance(v, list | tuple)).any():
            shown[col] = values.map(lambda v: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v)
        elif values.dtype == bool:
            shown[col] = values.map({True: "yes", False: "no"})
    return shown.to_markdown(index=False, floatfmt=floatfmt)
