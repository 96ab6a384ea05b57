"""Pareto frontier over (quality, p95 latency, cost), its plot and its table.

A row is dominated when another is at least as good on every objective, strictly better on one, and on at least
one objective credibly better: its interval (``<objective>_ci_low`` / ``_ci_high`` columns, when present) lies
wholly on the better side of the other's. A pair that is better only within overlapping intervals is "not
separable": noise could flip it, so the worse-looking row stays on the frontier and the report says so. Equal rows
do not dominate each other. A missing objective value counts as the worst possible, so a variant that was not
measured cannot dominate one that was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from llmplat_dagster.plots import figure, png

MAXIMIZE = ("quality",)
MINIMIZE = ("p95_latency_s", "cost_per_mtok")


def _larger_is_better(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> np.ndarray:
    cols = [df[c].to_numpy(dtype=float) for c in maximize] + [-df[c].to_numpy(dtype=float) for c in minimize]
    if not cols:
        raise ValueError("need at least one objective")
    return np.column_stack(cols)


def _bounds(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(worst, best) end of each row's interval per objective, "larger is better"; the point without an interval."""
    point = _larger_is_better(df, maximize, minimize)
    ends = []
    for suffix in ("_ci_low", "_ci_high"):
        cols = [
            (df[c + suffix] if c + suffix in df else df[c]).to_numpy(dtype=float) * (1 if c in maximize else -1)
            for c in (*maximize, *minimize)
        ]
        ends.append(np.where(np.isnan(np.column_stack(cols)), point, np.column_stack(cols)))
    worst, best = np.minimum(*ends), np.maximum(*ends)
    return np.nan_to_num(worst, nan=-np.inf), np.nan_to_num(best, nan=-np.inf)


def _dominance(df: pd.DataFrame, maximize: Sequence[str], minimize: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(dom, sep): dom[i, j] when row i is at least as good as row j everywhere and better somewhere (NaN worst);
    sep[i, j] when on some objective row i's interval lies wholly above row j's."""
    x = np.nan_to_num(_larger_is_better(df, maximize, minimize), nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    geq = (x[:, None, :] >= x[None, :, :]).all(axis=2)
    gt = (x[:, None, :] > x[None, :, :]).any(axis=2)
    worst, best = _bounds(df, maximize, minimize)
    sep = (worst[:, None, :] > best[None, :, :]).any(axis=2)
    return geq & gt, sep


def pareto_frontier(
    df: pd.DataFrame, *, maximize: Sequence[str] = MAXIMIZE, minimize: Sequence[str] = MINIMIZE
) -> pd.Series:
    """True for rows no other row credibly dominates (named ``on_frontier``, df's index)."""
    dom, sep = _dominance(df, maximize, minimize)
    return pd.Series(~(dom & sep).any(axis=0), index=df.index, name="on_frontier")


def _who(df: pd.DataFrame, label: str, matrix: np.ndarray) -> pd.Series:
    labels = df[label].tolist()
    return pd.Series([[labels[i] for i in np.flatnonzero(matrix[:, j])] for j in range(len(df))], index=df.index)


def dominated_by(
    df: pd.DataFrame, *, label: str = "variant", maximize: Sequence[str] = MAXIMIZE, minimize: Sequence[str] = MINIMIZE
) -> pd.Series:
    """For each row, the ``label`` values of the rows that credibly dominate it (empty list on the frontier)."""
    dom, sep = _dominance(df, maximize, minimize)
    return _who(df, label, dom & sep)


def not_separable_from(
    df: pd.DataFrame, *, label: str = "variant", maximize: Sequence[str] = MAXIMIZE, minimize: Sequence[str] = MINIMIZE
) -> pd.Series:
    """For each row, the rows that look better on every objective but only within overlapping intervals."""
    dom, sep = _dominance(df, maximize, minimize)
    return _who(df, label, dom & ~sep)


def _errors(df: pd.DataFrame, column: str, point: np.ndarray) -> np.ndarray | None:
    """Asymmetric error bars from ``<column>_ci_low/_ci_high``, or None without them."""
    if f"{column}_ci_low" not in df or f"{column}_ci_high" not in df:
        return None
    low = point - df[f"{column}_ci_low"].to_numpy(dtype=float)
    high = df[f"{column}_ci_high"].to_numpy(dtype=float) - point
    return np.nan_to_num(np.clip(np.vstack([low, high]), 0, None))


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
    """PNG: quality vs p95 latency (with their intervals as error bars), colour = $/1M output tokens, frontier
    ringed and joined, variants named."""
    with figure(figsize=(7, 4.8), dpi=100) as (fig, ax):
        x, y = df[latency].to_numpy(dtype=float), df[quality].to_numpy(dtype=float)
        c = df[cost].to_numpy(dtype=float)
        finite_c = np.where(np.isfinite(c), c, np.nan)
        xerr, yerr = _errors(df, latency, x), _errors(df, quality, y)
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="grey", elinewidth=1, capsize=3, zorder=2)
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
        return png(fig, bbox_inches="tight")


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
