"""What the comparison and the A/B share: asking the judge variant, structured output, reading prompt texts."""

import base64
from typing import TYPE_CHECKING

from llmplat_dagster.defs.resources import ComparisonResource, ServingResource

if TYPE_CHECKING:
    import pandas as pd

    from llmplat_dagster.serving.client import ServingRequest


def question(messages) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def judge_run(url: str, judge_model: str, requests: "list[ServingRequest]", serving: ServingResource) -> dict[str, str]:
    from llmplat_dagster.serving.client import run_promptset

    rows = run_promptset(url, judge_model, requests, concurrency=serving.concurrency, timeout_s=serving.timeout_s)
    return {r.prompt_id: (r.output_text if r.ok else f"<judge request failed: {r.error}>") for r in rows}


def structured(cfg: ComparisonResource, schema: dict) -> dict:
    if not cfg.structured_judge_output:
        return {}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}}}


def joined(lists: "pd.Series") -> "pd.Series":
    return lists.map(lambda v: ",".join(v) if v is not None else "")


def text_cell(frame: "pd.DataFrame", row: str, column: str) -> str | None:
    """A text cell of an optional column (parquet gives None or NaN for a prompt without one)."""
    value = frame.at[row, column] if column in frame else None
    return value if isinstance(value, str) else None


def png_markdown(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
