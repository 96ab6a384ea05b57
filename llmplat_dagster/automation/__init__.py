"""Automation logic the Dagster sensors, schedules and jobs call: no Dagster import here.

`hub` looks up upstream commit shas, `revisions` plans what a revision tick re-rolls, `promptset_versions`
finds new promptset versions in S3, `alerts` formats and posts failure alerts, `autoscaling` runs the design
document's section 6.3 scale-up/scale-down validation. Clients, time and sleep are injected so tests stay
fast and the wiring in `llmplat_dagster.defs` stays thin.
"""
