"""Dagster wiring only: each module exports the definitions of one domain; logic lives elsewhere."""
