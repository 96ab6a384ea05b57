"""Metadata a person reads in the Dagster UI: units in the labels, sensible rounding, native tables.

Raw summaries (`serving.results.latency_summary`: seconds, shares) stay machine-shaped in the pure layers and in
the parquet results; this module is the one place that turns them into what the asset page shows, so every asset
says `TTFT p95 (ms) 88.4`, never `ttft_s_p95 0.08843912`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd

# (summary key, label, scale, decimals)
LATENCY: tuple[tuple[str, str, float, int], ...] = (
    ("ttft_s_p50", "TTFT p50 (ms)", 1000.0, 1),
    ("ttft_s_p95", "TTFT p95 (ms)", 1000.0, 1),
    ("ttft_s_p99", "TTFT p99 (ms)", 1000.0, 1),
    ("tpot_s_p50", "TPOT p50 (ms)", 1000.0, 2),
    ("tpot_s_p95", "TPOT p95 (ms)", 1000.0, 2),
    ("itl_s_p50", "ITL p50 (ms)", 1000.0, 2),
    ("itl_s_p95", "ITL p95 (ms)", 1000.0, 2),
    ("e2e_s_p50", "e2e p50 (s)", 1.0, 3),
    ("e2e_s_p95", "e2e p95 (s)", 1.0, 3),
    ("e2e_s_p99", "e2e p99 (s)", 1.0, 3),
    ("request_throughput", "throughput (requests/s)", 1.0, 2),
    ("output_token_throughput", "output throughput (tokens/s)", 1.0, 1),
    ("dispatch_delay_p95_s", "client dispatch delay p95 (ms)", 1000.0, 1),
)
ERROR_RATE = "error rate (%)"

# pandas dtype kind -> TableColumn type
_KINDS = {"i": "int", "u": "int", "f": "float", "b": "bool", "M": "datetime"}


def number(value: Any, scale: float = 1.0, decimals: int = 3) -> float | None:
    """`value * scale` rounded; None for a missing or non-finite figure (the UI shows nothing, not `nan`)."""
    try:
        scaled = float(value) * scale
    except (TypeError, ValueError):
        return None
    return round(scaled, decimals) if math.isfinite(scaled) else None


def latency_metadata(summary: Mapping[str, Any]) -> dict[str, float]:
    """TTFT/TPOT/ITL/e2e percentiles, throughput and the error rate, each labelled with its unit."""
    out = {label: v for key, label, scale, dp in LATENCY if (v := number(summary.get(key), scale, dp)) is not None}
    if (rate := number(summary.get("error_rate"), 100.0, 1)) is not None:
        out[ERROR_RATE] = rate
    return out


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(str(name), _KINDS.get(frame[name].dtype.kind, "string")) for name in frame.columns]
    )


def frame_table(
    frame: pd.DataFrame, columns: Iterable[str] | None = None, limit: int = 20, text_width: int = 80
) -> dg.TableMetadataValue:
    """The first `limit` rows of `frame` as a native table (with its schema); long texts cut, NaNs left empty."""
    view = frame[[c for c in (columns or frame.columns) if c in frame]].head(limit)
    records = []
    for row in view.to_dict("records"):
        cells = {}
        for name, value in row.items():  # every record has every field (Dagster requires it); a gap is None
            if isinstance(value, float):
                cells[str(name)] = round(value, 4) if math.isfinite(value) else None
            elif isinstance(value, str):
                cells[str(name)] = value if len(value) <= text_width else value[: text_width - 1] + "…"
            elif isinstance(value, bool | int) or value is None:
                cells[str(name)] = value
            else:
                cells[str(name)] = str(value)
        records.append(dg.TableRecord(cells))
    return dg.MetadataValue.table(records, schema=column_schema(view))


def stored_frame_metadata(frame: pd.DataFrame, uri: str) -> dict[str, Any]:
    """Dagster's standard keys for a stored table: where it is, how many rows, which columns."""
    return {
        "dagster/uri": dg.MetadataValue.path(uri) if "://" not in uri else dg.MetadataValue.url(uri),
        "dagster/row_count": len(frame),
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(frame)),
    }
