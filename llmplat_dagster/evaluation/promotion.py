"""The promotion record's rows: per candidate, its revision, whether its gate passed, and the deciding numbers.

Pure (no Dagster; pandas is imported where a record is built): `defs/promotion.py` wires it as an asset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# (column in the comparison's per-variant frame, column in the record, label in the UI); absent ones are skipped
NUMBERS = (
    ("quality_delta", "quality_delta", "quality Δ vs reference"),
    ("quality_delta_ci_low", "quality_delta_ci_low", "Δ CI low"),
    ("quality_delta_ci_high", "quality_delta_ci_high", "Δ CI high"),
    ("judge_mean", "judge_mean", "judge mean (1-10)"),
    ("judge_parse_failure_rate", "judge_parse_failure_rate", "judge parse failures (share)"),
    ("e2e_s_p95", "e2e_p95_s", "e2e p95 (s)"),
    ("cost_per_mtok", "cost_per_mtok_usd", "$ / 1M output tokens"),
)
PROVENANCE = ("model_revision", "manifest_hash", "vllm_image", "promptset_version")


def promotion_frame(per_variant: pd.DataFrame, night: str, candidates, reference: str, rules: dict) -> pd.DataFrame:
    """One row per candidate: its revision, passed or not, the rule that tripped, the deciding numbers."""
    import pandas as pd

    by_variant = per_variant.set_index("variant")
    ref_revision = str(by_variant["model_revision"].get(reference, "")) if "model_revision" in by_variant else ""
    rows = []
    for candidate in candidates:
        if candidate not in by_variant.index:
            rows.append({"night": night, "candidate": candidate, "promoted": False, "why": "not compared"})
            continue
        r = by_variant.loc[candidate]
        tripped = r.get("gate_tripped")
        tripped = list(tripped) if tripped is not None and not isinstance(tripped, str) else []
        row = {
            "night": night,
            "candidate": candidate,
            "promoted": bool(r.get("gate_passed")),
            "why": "; ".join(map(str, tripped)) or "all promotion rules pass",
            "reference": reference,
            "reference_revision": ref_revision,
            **{c: str(r.get(c, "")) for c in PROVENANCE},
            **{out: float(r[col]) for col, out, _ in NUMBERS if col in r and pd.notna(r[col])},
            **rules,
        }
        rows.append(row)
    return pd.DataFrame(rows)
