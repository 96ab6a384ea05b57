"""Resources: thin configurable shells over the cluster, endpoint and serving layers (logic lives there)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field


class ClusterResource(dg.ConfigurableResource):
    """`dry-run` (local default: render, validate, diff; applies nothing) or `kubernetes` (server-side apply)."""

    mode: str = Field(default="dry-run", description="dry-run | kubernetes")
    state_dir: str = Field(default=".dagster_home/llmplat/dry-run", description="dry run: what it recorded last")
    crd_dirs: list[str] = Field(default_factory=list, description="dry run: CRD folders for schema checks")
    kube_context: str | None = Field(default=None, description="kubeconfig context (kubernetes mode)")
    in_cluster: bool = Field(default=False, description="use the pod's service account (kubernetes mode)")
    force_conflicts: bool = Field(default=False, description="take fields owned by another field manager")
    rollout_timeout_s: float = Field(default=900.0, description="deadline for a rollout to become ready")

    def get(self):
        if self.mode == "dry-run":
            from llmplat_dagster.k8s.dryrun import DryRunCluster
            from llmplat_dagster.k8s.validate import CrdSchemas

            return DryRunCluster(Path(self.state_dir), crds=CrdSchemas.from_dirs(self.crd_dirs))
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
        with self.resolver().open(variant) as url:
            yield url


class ServingResource(dg.ConfigurableResource):
    """How canary runs drive a server."""

    promptset: str = Field(default="canary", description="packaged name, local path or s3:// URI")
    strict_promptsets: bool = Field(default=True, description="fail the load on any bad line (else skip them)")
    concurrency: int = 8
    timeout_s: float = 120.0
    max_error_rate: float = Field(default=0.2, description="fail the canary above this share of failed requests")
    checkpoint_dir: str = Field(default=".dagster_home/llmplat/checkpoints", description="rows written so far")
    progress_interval_s: float = 5.0
