"""`autoscaling_validation_job`: the design document's section 6.3, as a Dagster job with timed steps.

Records the replicas, drives the performance promptset at concurrency 50, checks that more replicas become
READY within a window (recording when the autoscaler asked and when capacity was ready), stops the load,
checks scale-down within the HPA stabilization window. The steps live in `automation.autoscaling`.
"""

import dagster as dg

from llmplat_dagster.automation.autoscaling import AutoscalingCheck
from llmplat_dagster.catalog import Catalog
from llmplat_dagster.defs.resources import ClusterResource, EndpointsResource
from llmplat_dagster.evaluation.promptsets import load_promptset


class AutoscalingConfig(dg.Config):
    variant: str = "mistral-7b-awq"
    promptset: str = "performance"
    concurrency: int = 50
    scale_up_window_s: float = 900.0  # a new spot node plus the 7.5-minute cold start
    scale_down_window_s: float = 300.0  # the ScaledObject's scale-down stabilization window
    scale_down_margin_s: float = 60.0
    poll_s: float = 15.0


def autoscaling_defs(catalog: Catalog) -> dg.Definitions:
    @dg.op(description="Baseline, load, more READY replicas within the window, stop, scale-down after the window.")
    def validate_autoscaling(
        context: dg.OpExecutionContext,
        config: AutoscalingConfig,
        cluster: ClusterResource,
        endpoints: EndpointsResource,
    ) -> dg.Output[None]:
        from llmplat_dagster.serving.load import LoadDriver
        from llmplat_dagster.serving.requests import serving_requests

        v = catalog.variant(config.variant)
        kube = cluster.get()
        if getattr(kube, "kind", "") != "kubernetes":
            raise dg.Failure(
                "autoscaling validation needs a real cluster (cluster mode `kubernetes`): "
                "a dry run has no replicas to count"
            )
        promptset = load_promptset(config.promptset, max_model_len=v.max_model_len, variant=v.name)
        requests = serving_requests(promptset.prompts, seed=None)
        with endpoints.open(v.name) as url:
            load = LoadDriver(url, v.served_name, requests, config.concurrency)
            report = AutoscalingCheck(
                read_replicas=lambda: kube.replica_counts(catalog.namespace, v.name),
                start_load=load.start,
                stop_load=load.stop,
                scale_up_window_s=config.scale_up_window_s,
                scale_down_window_s=config.scale_down_window_s,
                scale_down_margin_s=config.scale_down_margin_s,
                poll_s=config.poll_s,
            ).run()
        context.log.info("\n" + report.summary())
        metadata: dict = {
            f"{s.name}": f"{'pass' if s.passed else 'FAIL'} after {s.seconds:.1f}s: {s.detail}" for s in report.steps
        }
        for key, seconds in (
            ("scale requested after (s)", report.scale_requested_s),
            ("capacity ready after (s)", report.capacity_ready_s),
        ):
            if seconds is not None:
                metadata[key] = dg.MetadataValue.float(round(seconds, 1))
        if not report.passed:
            raise dg.Failure(
                description=f"{v.name}: autoscaling validation failed\n{report.summary()}", metadata=metadata
            )
        return dg.Output(None, metadata=metadata)

    @dg.job(
        name="autoscaling_validation_job",
        description="Does KEDA (prod) / the HPA (dev) scale a variant up under load and back down after it?",
    )
    def autoscaling_validation_job():
        validate_autoscaling()

    return dg.Definitions(jobs=[autoscaling_validation_job])
