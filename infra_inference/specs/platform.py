"""InferencePlatform arguments: cluster-wide priorities, tenants, device plugin."""

from __future__ import annotations

from pydantic import Field

from infra_inference.errors import SpecProblem
from infra_inference.specs.base import Spec
from infra_inference.specs.names import DnsLabel
from infra_inference.specs.quantity import Quantity


class TenantSpec(Spec):
    """A team with its own namespace and GPU quota."""

    name: DnsLabel = Field(description="Tenant name; also its namespace.")
    gpu_quota: int = Field(ge=0, description="Most GPU slots (requests of any nvidia.com/* resource) at once.")
    cpu_quota: Quantity | None = Field(None, description="Most CPU requested at once, e.g. '64'.")
    memory_quota: Quantity | None = Field(None, description="Most memory requested at once, e.g. '256Gi'.")


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
    tenants: list[TenantSpec] = Field(default_factory=list, description="Teams with their own quota.")

    def cross_checks(self) -> list[SpecProblem]:
        names = [t.name for t in self.tenants]
        out = [SpecProblem(f"tenants[{i}].name", f"tenant {n!r} is declared twice")
               for i, n in enumerate(names) if n in names[:i]]
        out += [SpecProblem(f"tenants[{i}].name", f"{n!r} is the platform namespace; pick another tenant name")
                for i, n in enumerate(names) if n == self.namespace]
        return out
