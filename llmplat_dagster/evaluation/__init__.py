"""Pure evaluation logic (promptsets, statistics, quality metrics): no Dagster import, tested exhaustively."""
