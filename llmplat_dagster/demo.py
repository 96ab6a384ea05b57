"""`llmplat demo`: the main job, locally, on the embedded default (dry-run cluster, simulator endpoints).

Materializes the graph into the local Dagster instance so `dagster dev` shows the history afterwards, then
prints a per-variant summary. Everything here runs against stand-ins and the summary says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg

from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.settings import Settings


def _instance() -> dg.DagsterInstance:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def run_demo(settings: Settings | None = None, out=sys.stdout) -> int:
    settings = settings or Settings.from_env()
    defs = build_definitions(settings)
    job = defs.resolve_job_def("manifests_job")
    with _instance() as instance:
        result = job.execute_in_process(instance=instance, tags={"llmplat/trigger": "demo"})
    checks = {(e.asset_key.path[1], e.check_name): e for e in result.get_asset_check_evaluations()}
    print(f"\nllmplat demo — environment {settings.environment!r}, run {result.run_id[:8]}", file=out)
    print("cluster: none (manifests rendered and schema-checked only; nothing applied)", file=out)
    print(f"{'variant':<20} {'objects':>7}  {'content hash':<18} {'schema check':<14} revision", file=out)
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        name = m.asset_key.path[1]
        meta = m.metadata
        check = checks.get((name, "schema_valid"))
        status = "—" if check is None else ("pass" if check.passed else f"FAIL ({check.severity.value.lower()})")
        objs = len(meta["objects"].value)
        rev = meta["model_revision"].value if "model_revision" in meta else ""
        print(f"{name:<20} {objs:>7}  {meta['content_hash'].value:<18} {status:<14} {rev}", file=out)
    failed = [k for k, e in checks.items() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    print(f"instance: {os.environ['DAGSTER_HOME']} (see it with `dagster dev -w workspace.yaml`)", file=out)
    return 0 if result.success and not failed else 1
