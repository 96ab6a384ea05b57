"""`llmplat demo`: the main job, locally, on the embedded default (dry-run cluster, simulator endpoints).

Starts the simulator fleet from the rendered dev overlay, materializes the whole graph into the local
Dagster instance (so `dagster dev` shows the history and the checks afterwards), prints a per-variant
summary and stops the fleet. Everything here runs against stand-ins and the summary says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
import warnings
from pathlib import Path

import dagster as dg

from llmplat_dagster.catalog import load_catalog
from llmplat_dagster.definitions import build_definitions
from llmplat_dagster.defs.keys import AB, COMPARISON, PROMOTION, asset_key, night_of
from llmplat_dagster.defs.metadata import ERROR_RATE
from llmplat_dagster.k8s.validate import CrdSchemas
from llmplat_dagster.settings import Settings

# The simulator at 1/20 of a T4's latencies keeps the demo well under two minutes on two cores.
SIM_ARGS = ("--sim-time-scale", "0.05")


def _instance() -> dg.DagsterInstance:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def _fmt(value, scale: float = 1.0, unit: str = "ms") -> str:
    return "—" if value is None or value != value else f"{value * scale:.0f}{unit}"


def summarize(result: dg.ExecuteInProcessResult, variants: list[str]) -> list[dict]:
    mats = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    checks: dict[str, list] = {}
    for e in result.get_asset_check_evaluations():
        checks.setdefault(e.asset_key.path[1], []).append(e)
    rows = []
    for name in variants:
        canary = mats.get(asset_key(name, "canary").to_user_string(), {})
        golden = [e for e in checks.get(name, []) if e.asset_key.path[-1] == "readiness"]

        def val(k: str, canary=canary):
            return canary[k].value if k in canary else None

        rows.append(
            {
                "variant": name,
                "ready": asset_key(name, "readiness").to_user_string() in mats,
                "golden": f"{sum(e.passed for e in golden)}/{len(golden)}",
                "ttft_p50": val("TTFT p50 (ms)"),
                "ttft_p95": val("TTFT p95 (ms)"),
                "e2e_p95": val("e2e p95 (s)"),
                "error_rate": val(ERROR_RATE),
                "against": val("measured_against") or "—",
            }
        )
    return rows


def run_demo(settings: Settings | None = None, out=sys.stdout, manifests: Path = Path("manifests/overlays/dev")) -> int:
    from llmplat_dagster.sim.fleet import deployment_args_from_manifests, start_fleet

    settings = settings or Settings.from_env()
    # Bad input (catalog, revisions, image, CRD folders) fails here, naming it, before any server starts.
    load_catalog(settings.catalog_path, revisions=settings.revisions, image=settings.image)
    CrdSchemas.from_dirs(settings.crd_dirs)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    args = deployment_args_from_manifests(manifests) if manifests.is_dir() else {}
    if not args:
        raise ValueError(f"no Deployments under {manifests}/; run `llmplat manifests render` first")
    print(f"starting the simulator fleet from {manifests} ({len(args)} variants)...", file=out)
    log_dir = settings.state_dir / "fleet"
    log_dir.mkdir(parents=True, exist_ok=True)
    with start_fleet(args, sim_args=SIM_ARGS, log_dir=log_dir) as fleet:
        settings = dataclasses.replace(settings, endpoints=fleet.endpoints)
        defs = build_definitions(settings)
        job = defs.resolve_job_def("baseline_job")
        with _instance() as instance:
            result = job.execute_in_process(
                instance=instance,
                partition_key=night_of(datetime.datetime.now(datetime.UTC), settings.nightly_timezone),
                tags={"llmplat/trigger": "demo"},
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                raise_on_error=False,
            )
    rows = summarize(result, list(args))
    print(f"\nllmplat demo — run {result.run_id[:8]} ({'success' if result.success else 'FAILED'})", file=out)
    print("cluster: dry run (rendered, validated, diffed; nothing applied); servers: llmplat sim", file=out)
    header = (
        f"{'variant':<18} {'ready':<5} {'golden':<6} {'TTFT p50':>8} {'TTFT p95':>8} {'e2e p95':>8} "
        f"{'errors':>6}  measured against"
    )
    print(header, file=out)
    for r in rows:
        err = "—" if r["error_rate"] is None else f"{r['error_rate']:.0f}%"
        print(
            f"{r['variant']:<18} {'yes' if r['ready'] else 'no':<5} {r['golden']:<6} {_fmt(r['ttft_p50']):>8} "
            f"{_fmt(r['ttft_p95']):>8} {_fmt(r['e2e_p95'], 1000.0):>8} {err:>6}  {r['against']}",
            file=out,
        )
    print("latencies are the simulator's (time scale 0.05), not a GPU's", file=out)
    mats = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    comparison = mats.get(COMPARISON.to_user_string())
    if comparison:
        print("\nquantization-quality comparison (quant-sensitivity promptset, judged by mistral-7b-judge):", file=out)
        print(comparison["report"].value, file=out)
    ab = mats.get(AB.to_user_string())
    if ab:
        m = {k: v.value for k, v in ab.items()}
        print(
            f"LoRA A/B: {m['treatment']} (adapter {m['treatment_model']}) vs {m['control']}: win rate "
            f"{m['win_rate']:.2f} [{m['win_rate_ci_low']:.2f}, {m['win_rate_ci_high']:.2f}] (ties count half; "
            f"{m['decided_pairs']} decided pairs, {m['ties_or_inconsistent']} ties), sign test p={m['p_value']:.3g}, "
            f"judge position bias {m['position_bias_rate']:.0%}; judged against each prompt's reference answer",
            file=out,
        )
    promotion = mats.get(PROMOTION.to_user_string())
    if promotion:
        promoted = ", ".join(promotion["promoted"].value) or "nothing"
        print(f"promotion record {promotion['night'].value}: promoted {promoted}", file=out)
    elif comparison:
        print("promotion record: not written (a promotion gate failed at ERROR; see its check)", file=out)
    print("Pareto plot: the quant_quality_comparison asset's metadata in the UI", file=out)
    print(f"instance: {os.environ['DAGSTER_HOME']} (browse it with `make dev`)", file=out)
    return 0 if result.success else 1
