"""The one room that sees everything: Definitions for the environment chosen in `Settings.from_env`."""

from __future__ import annotations

import dagster as dg

from llmplat_dagster.catalog import Catalog, load_catalog
from llmplat_dagster.defs.automation import automation_defs
from llmplat_dagster.defs.autoscaling import autoscaling_defs
from llmplat_dagster.defs.canary import canary_defs
from llmplat_dagster.defs.comparison import ComparisonResource, comparison_defs
from llmplat_dagster.defs.io import ParquetIOManager
from llmplat_dagster.defs.keys import (
    PREFIX,
    ROLLOUT_STAGES,
    STAGES,
    SWEEP_STAGE,
    VARIANT_TAG,
    asset_key,
    daily_partitions,
    variant_job_name,
)
from llmplat_dagster.defs.load_sweep import load_sweep_defs
from llmplat_dagster.defs.manifests import manifests_defs
from llmplat_dagster.defs.pins import pin_defs
from llmplat_dagster.defs.promotion import promotion_defs
from llmplat_dagster.defs.resources import ClusterResource, EndpointsResource, HubResource, ServingResource
from llmplat_dagster.defs.rollout import rollout_defs
from llmplat_dagster.defs.trend import trend_defs
from llmplat_dagster.k8s.validate import CrdSchemas
from llmplat_dagster.s3uri import is_s3
from llmplat_dagster.settings import Settings


def jobs(catalog: Catalog) -> list[dg.UnresolvedAssetJobDefinition]:
    """All-variant jobs, plus one rollout and one canary job per variant: picking a variant is picking a job.

    Per-variant jobs rather than a `variants:` run config: a run's plan then holds only that variant's steps,
    so it claims only that variant's rollout pool (runs wait per variant, not for each other), and the
    launchpad needs no step names.
    """
    # The load sweep is weekly and on demand (load_sweep_job), never part of the main job.
    everything = dg.AssetSelection.key_prefixes([PREFIX]).materializable() - dg.AssetSelection.key_substring(
        f"/{SWEEP_STAGE}"
    )
    by_stage = {stage: dg.AssetSelection.key_substring(f"/{stage}") & everything for stage in STAGES}
    rollout = by_stage["manifests"] | by_stage["deployment"] | by_stage["readiness"]
    defined = [
        dg.define_asset_job("manifests_job", selection=by_stage["manifests"], description="Render and schema-check."),
        dg.define_asset_job(
            "rollout_job",
            selection=rollout,
            description="manifests -> server-side apply -> readiness + golden checks, every variant "
            "(one variant: rollout_<variant>_job).",
        ),
        dg.define_asset_job(
            "canary_job", selection=by_stage["canary"], description="Canary runs (one variant: canary_<variant>_job)."
        ),
        dg.define_asset_job(
            "baseline_job",
            selection=everything,
            description="The whole graph: the main job.",
        ),
    ]
    for v in catalog.variants:
        defined += [
            dg.define_asset_job(
                variant_job_name("rollout", v.name),
                selection=dg.AssetSelection.assets(*[asset_key(v.name, s) for s in ROLLOUT_STAGES]),
                tags={VARIANT_TAG: v.name},
                description=f"Roll out {v.name} only: manifests -> apply -> readiness + golden checks.",
            ),
            dg.define_asset_job(
                variant_job_name("canary", v.name),
                selection=dg.AssetSelection.assets(asset_key(v.name, "canary")),
                tags={VARIANT_TAG: v.name},
                description=f"The canary promptset through {v.name} only.",
            ),
        ]
    return defined


class S3NotConfigured(dg.ConfigurableResource):
    """The `s3` resource where nothing is kept in S3 (the local default): asking it for a client says what to set."""

    def get_client(self):
        raise dg.Failure("no S3 is configured: set LLMPLAT_RESULTS_URI or LLMPLAT_PROMPTSET_S3_URI to s3://...")


def s3_resource(settings: Settings, **config) -> dg.ConfigurableResource:
    """dagster-aws' S3Resource where S3 is used (prod, or an s3:// results or promptset URI), imported only then."""
    uses_s3 = settings.environment == "prod" or settings.promptset_s3_uri or is_s3(settings.results_uri or "")
    if not uses_s3:
        return S3NotConfigured()
    from dagster_aws.s3 import S3Resource

    return S3Resource(**config)


def resources(settings: Settings) -> dict[str, object]:
    state = settings.state_dir
    hub = HubResource(online=settings.hub_online, endpoint=settings.hf_endpoint, timeout_s=settings.hf_timeout_s)
    shared = {"comparison": ComparisonResource(), "s3": s3_resource(settings), "hub": hub}
    if settings.environment == "prod":
        # Inside the cluster (deploy/): the run pod's service account, Service DNS, results in S3 through IRSA.
        # Unset LLMPLAT_RESULTS_URI fails the first run that stores a result, naming the variable (dg.EnvVar).
        return {
            **shared,
            "cluster": ClusterResource(mode="kubernetes", in_cluster=True),
            "endpoints": EndpointsResource(mode="service-dns"),
            # Checkpoints next to the results in S3: a replacement run pod resumes what a killed one wrote.
            "serving": ServingResource(
                checkpoint_dir=f"{settings.results_uri.rstrip('/')}/checkpoints"
                if settings.results_uri
                else str(state / "checkpoints")
            ),
            "parquet_io_manager": ParquetIOManager(
                base_uri=settings.results_uri or dg.EnvVar("LLMPLAT_RESULTS_URI"),
                s3=s3_resource(settings, region_name=dg.EnvVar("AWS_REGION")),
            ),
        }
    return {
        **shared,
        "cluster": ClusterResource(
            mode="dry-run",
            state_dir=str(state / "dry-run"),
            crd_dirs=[str(d) for d in settings.crd_dirs],
            strict_schemas=settings.strict_schemas,
        ),
        "endpoints": EndpointsResource(mode="url-map", urls=dict(settings.endpoints)),
        "serving": ServingResource(checkpoint_dir=str(state / "checkpoints")),
        "parquet_io_manager": ParquetIOManager(base_uri=settings.results_uri or str(state / "results")),
    }


def build_definitions(settings: Settings, overrides: dict[str, object] | None = None) -> dg.Definitions:
    """`overrides` replaces resources by key (tests, one-off runs); everything else comes from `settings`."""
    catalog = load_catalog(settings.catalog_path, revisions=settings.revisions, image=settings.image)
    crds = CrdSchemas.from_dirs(settings.crd_dirs)
    nights = daily_partitions(settings.nightly_timezone, settings.first_night)
    return dg.Definitions.merge(
        pin_defs(catalog),
        manifests_defs(catalog, settings.overlay, crds, settings.strict_schemas),
        rollout_defs(catalog),
        canary_defs(catalog, nights),
        comparison_defs(catalog, nights),
        promotion_defs(catalog, nights),
        trend_defs(catalog, settings.trend_nights) if catalog.evaluation else dg.Definitions(),
        automation_defs(catalog, settings),
        autoscaling_defs(catalog),
        load_sweep_defs(catalog, settings.nightly_timezone),
        dg.Definitions(jobs=jobs(catalog), resources={**resources(settings), **(overrides or {})}),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily by Dagster's tools, so importing this module reads no environment."""
    return build_definitions(Settings.from_env())
