"""InferencePlatform arguments: cluster-wide priorities, tenants, device plugin."""

from __future__ import annotations

import math

from pydantic import Field

from infra_inference.errors import SpecProblem
from infra_inference.specs.base import Spec
from infra_inference.specs.image import ImageSpec
from infra_inference.specs.pool import GPU_EQUIVALENT
from infra_inference.specs.names import DnsLabel
from infra_inference.specs.quantity import Quantity


class TenantSpec(Spec):
    """A team with its own namespace and GPU quota."""

    name: DnsLabel = Field(description="Tenant name; also its namespace.")
    gpu_quota: int = Field(ge=0, description="Most GPUs requested at once, in whole-GPU equivalents, over every "
                                             "nvidia.com/* resource (see gpu_quota_split).")
    gpu_quota_split: dict[str, float] | None = Field(
        None, description="How gpu_quota is shared among GPU resources, in GPU-equivalents per resource name "
                          "(nvidia.com/gpu, nvidia.com/mig-<profile>), summing to at most gpu_quota; Kubernetes "
                          "quota counts each resource on its own. Default: all of it on nvidia.com/gpu.")
    cpu_quota: Quantity | None = Field(None, description="Most CPU requested at once, e.g. '64'.")
    memory_quota: Quantity | None = Field(None, description="Most memory requested at once, e.g. '256Gi'.")


    def cross_checks(self) -> list[SpecProblem]:
        split = self.gpu_quota_split or {}
        out = [SpecProblem(f"gpu_quota_split.{r}", f"not a GPU resource; use one of {', '.join(GPU_EQUIVALENT)}")
               for r in split if r not in GPU_EQUIVALENT]
        out += [SpecProblem(f"gpu_quota_split.{r}", "must be >= 0 GPU-equivalents") for r, v in split.items() if v < 0]
        total = sum(split.values())
        if total > self.gpu_quota + 1e-9:
            out.append(SpecProblem("gpu_quota_split", f"shares sum to {total:g} GPU-equivalents, above gpu_quota "
                                   f"{self.gpu_quota}; lower them or raise gpu_quota"))
        return out

    @property
    def resource_quota(self) -> dict[str, int]:
        """The per-resource caps whose worst-case total stays within `gpu_quota`.

        A ResourceQuota caps each resource name separately and cannot weigh
        them, so each resource gets its share divided by what one unit of it
        is worth: 4 GPUs split {gpu: 2, mig-1g.10gb: 2} caps nvidia.com/gpu at
        2 and nvidia.com/mig-1g.10gb at 2 x 7 = 14 (seven per GPU); at both
        caps, 2 + 14 / 7 = 4 GPUs. Every other resource is capped at 0.
        A time-sliced or MPS slot is also `nvidia.com/gpu`, and counts as one
        whole GPU here: the cap is never exceeded, a tenant on a x4 pool just
        gets 4 slots per GPU of quota rather than 16.
        """
        split = self.gpu_quota_split if self.gpu_quota_split is not None else {"nvidia.com/gpu": self.gpu_quota}
        return {r: math.floor(split.get(r, 0.0) / per_unit + 1e-9) for r, per_unit in GPU_EQUIVALENT.items()}


class PlatformSpec(Spec):
    """Validated InferencePlatform arguments."""

    namespace: DnsLabel = Field("inference", description="Namespace for shared services and default services.")
    install_device_plugin: bool = Field(
        False, description="Install the NVIDIA device plugin for GPU nodes outside any GpuPool "
                           "(eks/existing); GKE manages its own.")
    install_dcgm_exporter: bool = Field(False, description="Install NVIDIA DCGM exporter for GPU metrics.")
    install_grafana_dashboard: bool = Field(
        True, description="A ConfigMap with the services dashboard, labelled grafana_dashboard=1 for the "
                          "Grafana sidecar (kube-prometheus-stack's default) to load.")
    install_pod_monitor: bool = Field(
        False, description="Prometheus Operator PodMonitors (the CRD must exist) that scrape every service's "
                           "gateways, replicas and autoscaler in every namespace, and the DCGM exporter when "
                           "installed. Without them, the pods' prometheus.io/* annotations say where to scrape.")
    prometheus_namespaces: list[DnsLabel] = Field(
        default_factory=lambda: ["monitoring"],
        description="Namespaces a Prometheus runs in (kube-prometheus-stack's is usually `monitoring`): each "
                    "tenant's NetworkPolicy admits them to its gateways', replicas' and autoscalers' metrics "
                    "ports, and no other port. [] admits none (a Prometheus in the platform namespace needs "
                    "no rule: it reaches tenants already).")
    tenants: list[TenantSpec] = Field(default_factory=list, description="Teams with their own quota.")
    runtime_image: ImageSpec = Field(
        default_factory=ImageSpec, description="Our runtime image for the whole stack: `infra-inference render` "
                                               "gives it to every service, policy and standby pool that names none.")

    def cross_checks(self) -> list[SpecProblem]:
        names = [t.name for t in self.tenants]
        out = [SpecProblem(f"tenants[{i}].name", f"tenant {n!r} is declared twice")
               for i, n in enumerate(names) if n in names[:i]]
        out += [SpecProblem(f"tenants[{i}].name", f"{n!r} is the platform namespace; pick another tenant name")
                for i, n in enumerate(names) if n == self.namespace]
        # A tenant's own pods would reach every other tenant's metrics ports (queue depths, model names).
        out += [SpecProblem(f"prometheus_namespaces[{i}]", f"{n!r} is a tenant; run Prometheus in a namespace of "
                            f"its own (or the platform namespace)") for i, n in enumerate(self.prometheus_namespaces)
                if n in names]
        return out
