"""Environments (overlays) and the GPU node pools they schedule onto, as the variant catalog declares them.

What differs between dev and prod (replicas, autoscaler, claims, the Prometheus KEDA reads, KEDA's pacing,
optional off-hours scale-to-zero and OpenTelemetry) lives here, validated with the catalog; everything else is
the variants themselves (catalog.py).
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Unknown fields are errors, and a loaded catalog cannot be changed by accident."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodePool(Strict):
    """A group of GPU nodes an overlay schedules onto; `autoscaler: none` means it stays at min_nodes."""

    min_nodes: int = Field(ge=0)
    max_nodes: int = Field(ge=1)
    autoscaler: Literal["cluster-autoscaler", "karpenter", "none"]

    @model_validator(mode="after")
    def _ordered(self) -> NodePool:
        if self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes {self.max_nodes} is below min_nodes {self.min_nodes}")
        return self


def _cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a five-field cron expression")
    return value


class OffHours(Strict):
    """KEDA cron window in which capacity is held; outside it an idle variant scales to zero."""

    timezone: str
    start: Annotated[str, AfterValidator(_cron)]
    end: Annotated[str, AfterValidator(_cron)]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value


class PrometheusSpec(Strict):
    """The Prometheus KEDA queries and whose operator picks up the ServiceMonitor and PrometheusRule."""

    release: str = "prometheus"  # kube-prometheus-stack's Helm release (and its ruleSelector label)
    namespace: str = "observability"
    url: str | None = None  # a Prometheus elsewhere; default: the chart's service for release + namespace

    @property
    def address(self) -> str:
        """kube-prometheus-stack names its Prometheus Service `<fullname>-prometheus`, fullname being the release
        name (when it contains the chart name) or `<release>-kube-prometheus-stack`, cut to 26 characters
        (charts/kube-prometheus-stack/templates/_helpers.tpl); port 9090."""
        if self.url:
            return self.url
        chart = "kube-prometheus-stack"
        full = self.release if chart in self.release else f"{self.release}-{chart}"
        return f"http://{full[:26].rstrip('-')}-prometheus.{self.namespace}.svc:9090"


class KedaSpec(Strict):
    queue_threshold: int = Field(default=5, ge=1)  # waiting requests per replica
    polling_interval_s: int = Field(default=15, ge=1)
    scale_up_stabilization_s: int = Field(default=0, ge=0)
    scale_down_stabilization_s: int = Field(default=300, ge=0)  # what delays a scale-down (cooldown does not)
    cooldown_s: int = Field(default=300, ge=0)  # KEDA applies it only to scaling to zero (off_hours)
    fallback_failures: int = Field(default=3, ge=1)  # failed Prometheus reads before holding `replicas`


class ReplicaOverride(Strict):
    replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)


class Overlay(Strict):
    """What differs between environments; everything else is the variant catalog."""

    name: str = ""  # the key under `overlays:`
    node_pool: str
    replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    autoscaler: Literal["hpa", "keda"]  # hpa: CPU (autoscaling plumbing only); keda: vLLM queue depth
    cache_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"]
    cache_storage_class: str
    prometheus: PrometheusSpec = PrometheusSpec()
    keda: KedaSpec = KedaSpec()
    off_hours: OffHours | None = None
    otlp_traces_endpoint: str | None = None
    variants: dict[str, ReplicaOverride] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Overlay:
        if self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas {self.max_replicas} is below replicas {self.replicas}")
        if self.off_hours is not None and self.autoscaler != "keda":
            raise ValueError("off_hours scale-to-zero needs autoscaler: keda (an HPA cannot reach zero)")
        if self.otlp_traces_endpoint is not None and not self.otlp_traces_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"otlp_traces_endpoint {self.otlp_traces_endpoint!r} must be an http(s) URL")
        return self

    def for_variant(self, name: str) -> Overlay:
        """This overlay with one variant's replica overrides applied (the objects of that variant read it)."""
        override = self.variants.get(name)
        if override is None:
            return self
        replicas = override.replicas or self.replicas
        return self.model_copy(
            update={"replicas": replicas, "max_replicas": override.max_replicas or max(self.max_replicas, replicas)}
        )
