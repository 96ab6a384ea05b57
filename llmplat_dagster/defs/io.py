"""Results as parquet: a local folder by default, S3 (through dagster-aws) in production.

A night's partition belongs to the nightly evaluation: runs with another purpose (the revision sensor re-rolling
a variant, a new promptset version) write beside it, `<asset>/<night>/<purpose>.parquet`, so they never replace
that night's results; `purpose` in the materialization says which a record is.

pandas and dagster-aws are imported when a result is written or read, not when the code location loads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from llmplat_dagster.defs.keys import PURPOSE_TAG
from llmplat_dagster.s3uri import is_s3, parse_s3_uri

NIGHTLY = "nightly"


def run_purpose(tags: Mapping[str, str]) -> str:
    """What a run's results are for: `nightly` (the schedule, a manual or re-executed run of a night) unless the
    run was launched with its own purpose tag (sensors set one per change)."""
    return tags.get(PURPOSE_TAG) or NIGHTLY


def _purpose(context: dg.InputContext | dg.OutputContext) -> str:
    try:
        return run_purpose(context.step_context.run_tags)
    except dg.DagsterInvariantViolationError:  # a context built outside a run (tests, tools)
        return NIGHTLY


if TYPE_CHECKING:
    import pandas as pd


class ParquetIOManager(dg.ConfigurableIOManager):
    """One parquet object per asset (and partition): `<base_uri>/<asset/key/path>[/<partition>].parquet`."""

    base_uri: str = ".dagster_home/llmplat/results"
    # dagster-aws' S3Resource in production; typed as the base class so loading the code needs no dagster-aws.
    s3: dg.ConfigurableResource | None = None

    def _uri(self, context: dg.InputContext | dg.OutputContext) -> str:
        parts = list(context.asset_key.path)
        if context.has_asset_partitions:
            parts.append(context.asset_partition_key)
            if (purpose := _purpose(context)) != NIGHTLY:
                from llmplat_dagster.serving.checkpoint import safe_name

                parts.append(safe_name(purpose))
        return f"{self.base_uri.rstrip('/')}/{'/'.join(parts)}.parquet"

    def _client(self):
        if self.s3 is None:
            from dagster_aws.s3 import S3Resource

            return S3Resource().get_client()
        return self.s3.get_client()

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        uri = self._uri(context)
        buffer = io.BytesIO()
        obj.to_parquet(buffer, index=False)
        if is_s3(uri):
            bucket, key = parse_s3_uri(uri, what="LLMPLAT_RESULTS_URI", key_required=True)
            self._client().put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        else:
            path = Path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".parquet.tmp")
            tmp.write_bytes(buffer.getvalue())
            tmp.replace(path)  # readers never see half a file
        from llmplat_dagster.defs.metadata import stored_frame_metadata

        context.add_output_metadata({**stored_frame_metadata(obj, uri), "purpose": _purpose(context)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        import pandas as pd

        uri = self._uri(context)  # an InputContext names the upstream asset and its partition
        if is_s3(uri):
            bucket, key = parse_s3_uri(uri, what="LLMPLAT_RESULTS_URI", key_required=True)
            body = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
            return pd.read_parquet(io.BytesIO(body))
        return pd.read_parquet(uri)
