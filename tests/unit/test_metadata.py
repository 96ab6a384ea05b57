"""What the UI shows of a frame or a latency summary: units in labels, rounding, native tables."""

import math

import dagster as dg
import pandas as pd

from llmplat_dagster.defs.metadata import ERROR_RATE, frame_table, latency_metadata, stored_frame_metadata


def test_latency_has_units_in_its_labels_and_sensible_rounding():
    meta = latency_metadata(
        {"ttft_s_p50": 0.0884391, "e2e_s_p95": 0.9335094070000305, "output_token_throughput": 141.23456,
         "error_rate": 0.0303, "itl_s_p95": math.nan, "unknown_key": 1.0}
    )  # fmt: skip
    assert meta == {
        "TTFT p50 (ms)": 88.4,
        "e2e p95 (s)": 0.934,
        "output throughput (tokens/s)": 141.2,
        ERROR_RATE: 3.0,
    }  # NaN and unknown figures are left out, not shown as `nan`


def test_a_frame_becomes_a_native_table_whose_records_all_have_every_field():
    frame = pd.DataFrame({"variant": ["a", "b"], "p95": [1.23456, math.nan], "ok": [True, False], "n": [3, 4]})
    table = frame_table(frame)
    assert [c.name for c in table.schema.columns] == ["variant", "p95", "ok", "n"]
    assert [c.type for c in table.schema.columns] == ["string", "float", "bool", "int"]
    assert [r.data for r in table.records] == [
        {"variant": "a", "p95": 1.2346, "ok": True, "n": 3},
        {"variant": "b", "p95": None, "ok": False, "n": 4},
    ]
    long = frame_table(pd.DataFrame({"text": ["x" * 500]}), text_width=20)
    assert len(long.records[0].data["text"]) == 20


def test_a_stored_frame_carries_dagsters_standard_keys():
    meta = stored_frame_metadata(pd.DataFrame({"a": [1, 2]}), "s3://bucket/results/x.parquet")
    assert meta["dagster/row_count"] == 2
    assert isinstance(meta["dagster/column_schema"], dg.TableSchemaMetadataValue)
    assert meta["dagster/uri"].value == "s3://bucket/results/x.parquet"
