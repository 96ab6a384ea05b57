"""The promotion record: which candidate revision passed its gate on which night, with the numbers that decided.

Downstream of the comparison, whose promotion gates are blocking checks: at ERROR severity a failed gate stops
this asset (nothing is promoted that night; the failed check holds the numbers), at WARN it is written with the
candidate marked not promoted. One partition per night, so the record of every night stays.
"""

from typing import TYPE_CHECKING

import dagster as dg

from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.comparison import ComparisonResource
from llmplat_dagster.defs.keys import COMPARISON, PROMOTION
from llmplat_dagster.defs.ownership import evaluation_asset
from llmplat_dagster.evaluation.promotion import NUMBERS

if TYPE_CHECKING:
    import pandas as pd


def _table(frame: "pd.DataFrame") -> dg.TableMetadataValue:
    columns = [("candidate", "string", "candidate"), ("model_revision", "string", "model revision")]
    columns += [("promoted", "bool", "promoted"), ("why", "string", "gate")]
    columns += [(out, "float", label) for _, out, label in NUMBERS if out in frame]
    records = [
        dg.TableRecord(
            {
                name: (round(v, 4) if isinstance(v, float) else v)
                for name, _, _ in columns
                if (v := row.get(name)) is not None and v == v
            }
        )
        for row in frame.to_dict("records")
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description=label) for name, kind, label in columns])
    return dg.MetadataValue.table(records, schema=schema)


def _measured_against(context: dg.AssetExecutionContext, night: str) -> str:
    """What the comparison's figures were measured against (the simulator says so), from its materialization."""
    partitions = [night] if context.has_partition_key else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=COMPARISON, asset_partitions=partitions), limit=1
    )
    mat = found.records[0].asset_materialization if found.records else None
    value = mat.metadata.get("measured_against") if mat is not None else None
    return str(value.value) if value is not None else "unknown"


def promotion_defs(catalog: Catalog, partitions: dg.PartitionsDefinition | None = None) -> dg.Definitions:
    roles = catalog.evaluation
    if roles is None:
        return dg.Definitions()

    @dg.asset(
        **evaluation_asset(catalog, PROMOTION),
        ins={"compared": dg.AssetIn(COMPARISON)},
        partitions_def=partitions,
        io_manager_key="parquet_io_manager",
        description="Which candidate revision passed its promotion gate on which night, with the deciding numbers "
        "(blocked for the night when a gate fails at ERROR).",
    )
    def promotion_record(context: dg.AssetExecutionContext, compared, comparison: ComparisonResource) -> dg.Output:
        from llmplat_dagster.evaluation.promotion import promotion_frame

        night = context.partition_key if context.has_partition_key else "unpartitioned"
        rules = {
            "gate_metric": comparison.gate_metric,
            "min_quality_delta_low": comparison.min_quality_delta_low,
            "max_parse_failure_rate": comparison.max_parse_failure_rate,
        }
        frame = promotion_frame(compared, night, roles.candidates, roles.reference, rules)
        promoted = [f"{r.candidate}@{r.model_revision}" for r in frame.itertuples() if r.promoted]
        context.log.info(f"{night}: promoted {promoted or 'nothing'}")
        return dg.Output(
            frame,
            metadata={
                "night": night,
                "promoted": dg.MetadataValue.json(promoted),
                "reference": roles.reference,
                "record": _table(frame),
                "measured_against": _measured_against(context, night),
            },
        )

    return dg.Definitions(assets=[promotion_record])
