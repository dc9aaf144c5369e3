"""InferencePlatform: what every cluster needs once."""


from typing import TypedDict

import pulumi

from infra_inference.components import gate, kube
from infra_inference.components.inputs import split
from infra_inference.plan.components import plan_platform
from infra_inference.render.platform import PRIORITY_CLASS, platform_objects


class TenantArgs(TypedDict, total=False):
    name: str
    """Tenant name, also its namespace. Required."""
    gpu_quota: int
    """Most GPUs requested at once, in whole-GPU equivalents over every nvidia.com/* resource. Required."""
    gpu_quota_split: dict[str, float]
    """GPU-equivalents of gpu_quota per resource (nvidia.com/gpu, nvidia.com/mig-<profile>), summing to at most
    gpu_quota. Default: all on nvidia.com/gpu."""
    cpu_quota: str
    """Most CPU requested at once, e.g. "64"."""
    memory_quota: str
    """Most memory requested at once, e.g. "256Gi"."""


class ImageArgs(TypedDict, total=False):
    registry: str
    """Registry host and path prefix, e.g. "123.dkr.ecr.us-east-1.amazonaws.com/ml". Default
    "ghcr.io/infra-inference"."""
    image: str
    """Repository and tag under the registry. Default "runtime:0.1.0"."""
    digest: str
    """Manifest digest, "sha256:<64 hex>": pins the image exactly."""
    image_pull_policy: str
    """IfNotPresent (default), Always, or Never (the image is already on every node)."""


class InferencePlatformArgs(TypedDict, total=False):
    namespace: str
    """Namespace for shared pieces and default services. Default inference."""
    install_device_plugin: bool
    """NVIDIA device plugin for GPU nodes outside any GpuPool (pools bring their own). Default false."""
    install_dcgm_exporter: bool
    """NVIDIA DCGM exporter for GPU metrics. Default false."""
    install_grafana_dashboard: bool
    """The services dashboard as a ConfigMap labelled grafana_dashboard=1 (Grafana sidecar). Default true."""
    install_pod_monitor: bool
    """Prometheus Operator PodMonitors for every service's gateways, replicas and autoscaler (and the DCGM
    exporter); needs the PodMonitor CRD. Default false: the pods' prometheus.io/* annotations remain."""
    prometheus_namespaces: list[str]
    """Namespaces a Prometheus runs in: each tenant's NetworkPolicy admits them to its pods' metrics ports
    only. Default ["monitoring"] (kube-prometheus-stack's usual); [] admits none."""
    tenants: list[TenantArgs]
    """Teams with a namespace, a GPU quota and a default-deny NetworkPolicy."""
    runtime_image: ImageArgs
    """Our runtime image; its reference is the `runtime_image` output, for StandbyPool prepull_images.
    Pass the same value as each InferenceService's runtime_image (`infra-inference render` does that
    for a whole stack)."""


class InferencePlatform(pulumi.ComponentResource):
    """PriorityClasses (online > batch > training > standby), tenant namespaces with quotas and
    NetworkPolicies, and optionally the device plugin and DCGM exporter."""

    pulumi_type = "infra-inference:index:InferencePlatform"

    namespace: pulumi.Output[str]
    """The platform namespace."""
    priority_classes: pulumi.Output[dict[str, str]]
    """PriorityClass name by role: online, batch, training, standby."""
    runtime_image: pulumi.Output[str]
    """Reference of the runtime image (with its digest when pinned)."""

    def __init__(self, name: str, args: InferencePlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        with gate.validating():
            plain, _ = split(dict(args), {}, f"InferencePlatform {name!r}")
            spec = plan_platform(plain, f"InferencePlatform {name!r}")
        super().__init__(self.pulumi_type, name, {}, gate.held(opts))
        kube.create(name, platform_objects(spec), pulumi.ResourceOptions(parent=self))
        self.namespace = pulumi.Output.from_input(spec.namespace)
        self.priority_classes = pulumi.Output.from_input(dict(PRIORITY_CLASS))
        self.runtime_image = pulumi.Output.from_input(spec.runtime_image.ref)
        self.register_outputs({"namespace": self.namespace, "priority_classes": self.priority_classes,
                               "runtime_image": self.runtime_image})
