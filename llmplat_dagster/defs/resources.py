"""Resources: thin configurable shells over the cluster, endpoint and serving layers (logic lives there)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from llmplat_dagster.evaluation.cost import DEFAULT_PRICES, load_prices
from llmplat_dagster.evaluation.gate import DEFAULT_METRIC, DEFAULT_MIN_DELTA_LOW, GATE_METRICS, GateRules


class ClusterResource(dg.ConfigurableResource):
    """`dry-run` (local default: render, validate, diff; applies nothing) or `kubernetes` (server-side apply)."""

    mode: str = Field(default="dry-run", description="dry-run | kubernetes")
    state_dir: str = Field(default=".dagster_home/llmplat/dry-run", description="dry run: what it recorded last")
    crd_dirs: list[str] = Field(default_factory=list, description="dry run: CRD folders for schema checks")
    strict_schemas: bool = Field(default=False, description="dry run: fail on custom resources no CRD checks")
    kube_context: str | None = Field(default=None, description="kubeconfig context (kubernetes mode)")
    in_cluster: bool = Field(default=False, description="use the pod's service account (kubernetes mode)")
    force_conflicts: bool = Field(default=False, description="take fields owned by another field manager")
    rollout_timeout_s: float = Field(default=900.0, description="deadline for a rollout to become ready")

    def get(self):
        if self.mode == "dry-run":
            from llmplat_dagster.k8s.dryrun import DryRunCluster
            from llmplat_dagster.k8s.validate import CrdSchemas

            crds = CrdSchemas.from_dirs(self.crd_dirs)
            return DryRunCluster(Path(self.state_dir), crds=crds, strict=self.strict_schemas)
        if self.mode == "kubernetes":
            from llmplat_dagster.k8s.kube import KubernetesCluster

            return KubernetesCluster.from_config(
                context=self.kube_context, in_cluster=self.in_cluster, force_conflicts=self.force_conflicts
            )
        raise dg.Failure(f"cluster mode {self.mode!r} is not one of dry-run, kubernetes")


class EndpointsResource(dg.ConfigurableResource):
    """Where a variant's OpenAI-compatible server answers: a URL map, service DNS, or a port-forward."""

    mode: str = Field(default="url-map", description="url-map | service-dns | port-forward")
    urls: dict[str, str] = Field(default_factory=dict, description="url-map: variant -> base URL")
    namespace: str = "llm-baseline"
    port: int = 8000
    kube_context: str | None = None

    def resolver(self):
        from llmplat_dagster.k8s import endpoints as ep

        if self.mode == "url-map":
            return ep.StaticEndpoints(dict(self.urls))
        if self.mode == "service-dns":
            return ep.ServiceDnsEndpoints(self.namespace, port=self.port)
        if self.mode == "port-forward":
            from kubernetes import config

            return ep.PortForwardEndpoints(config.new_client_from_config(context=self.kube_context), self.namespace)
        raise dg.Failure(f"endpoints mode {self.mode!r} is not one of url-map, service-dns, port-forward")

    @contextlib.contextmanager
    def open(self, variant: str) -> Iterator[str]:
        """The variant's base URL; no server for it fails the step saying what to set, not with a bare KeyError."""
        with contextlib.ExitStack() as stack:
            try:
                url = stack.enter_context(self.resolver().open(variant))
            except LookupError as exc:  # EndpointError, or no ready pod to forward to
                raise dg.Failure(description=str(exc), metadata={"endpoints": self.mode}) from None
            yield url


class HubResource(dg.ConfigurableResource):
    """The Hugging Face Hub a rollout asks which commit a branch points at, so provenance records a sha."""

    online: bool = Field(default=False, description="ask the Hub; off: branches are recorded as unresolved")
    endpoint: str | None = Field(default=None, description="Hub URL (HF_ENDPOINT); default huggingface.co")
    timeout_s: float = 10.0
    attempts: int = Field(default=3, description="look-ups per ref before it is reported unresolved")

    def resolve(self, spec):
        """`Resolved` shas for the branches `spec` loads; HF_TOKEN is read here, never logged."""
        from llmplat_dagster.automation.resolve import refs_to_resolve, resolve

        if not self.online or not refs_to_resolve(spec):
            hint = "Hub look-ups are off (local default; set HF_ENDPOINT or LLMPLAT_RESOLVE_REVISIONS=1)"
            return resolve(spec, None, offline_reason=hint)
        from llmplat_dagster.automation.hub import lookup_revisions

        token = dg.EnvVar("HF_TOKEN").get_value() or None

        def lookup(refs):
            return lookup_revisions(refs, endpoint=self.endpoint, token=token, timeout_s=self.timeout_s)

        return resolve(spec, lookup, attempts=self.attempts)


class ServingResource(dg.ConfigurableResource):
    """How canary runs drive a server."""

    promptset: str = Field(default="canary", description="packaged name, local path or s3:// URI")
    strict_promptsets: bool = Field(default=True, description="fail the load on any bad line (else skip them)")
    concurrency: int = 8
    timeout_s: float = 120.0
    max_error_rate: float = Field(default=0.2, description="fail the canary above this share of failed requests")
    checkpoint_dir: str = Field(default=".dagster_home/llmplat/checkpoints", description="rows written so far")
    progress_interval_s: float = 5.0


class ComparisonResource(dg.ConfigurableResource):
    """Everything a reviewer may want to change without touching code; the roles (reference, candidates,
    judge, A/B pair) are declared in the catalog's `evaluation:` section, which the graph is built from."""

    promptset: str = "quant-sensitivity"
    top_logprobs: int = 5
    structured_judge_output: bool = Field(default=True, description="ask for response_format json_schema")
    n_resamples: int = 2000
    seed: int = 0
    min_quality_delta_low: float = Field(
        default=DEFAULT_MIN_DELTA_LOW, description="gate: lowest acceptable CI bound of the delta"
    )
    max_parse_failure_rate: float = Field(default=0.1, description="gate: highest acceptable judge parse failures")
    gate_metric: str = Field(default=DEFAULT_METRIC, description=f"gate: one of {', '.join(GATE_METRICS)}")
    gate_severity: str = Field(default="ERROR", description="ERROR blocks downstream (trend, promotion); WARN reports")
    capacity: str = Field(default="spot", description="spot | on_demand: which node price to use")
    node_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRICES.items()},
        description="{instance_type: {spot_per_hour, on_demand_per_hour}} in $ (example list prices; set yours)",
    )

    def price_per_hour(self, instance_type: str) -> float:
        try:
            prices = load_prices(self.node_prices)
        except ValueError as exc:
            raise dg.Failure(f"comparison.node_prices: {exc}") from None
        if instance_type not in prices:
            raise dg.Failure(
                f"no price for instance type {instance_type!r} in comparison.node_prices (configured: {sorted(prices)})"
            )
        try:
            return prices[instance_type].per_hour(self.capacity)
        except ValueError as exc:
            raise dg.Failure(f"comparison.capacity: {exc}") from None

    def rules(self) -> GateRules:
        return GateRules(
            min_quality_delta_low=self.min_quality_delta_low,
            max_parse_failure_rate=self.max_parse_failure_rate,
            metric=self.gate_metric,
        )
