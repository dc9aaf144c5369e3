"""GpuPool arguments: where the GPU nodes live and how one GPU is shared."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from infra_inference.errors import SpecProblem
from infra_inference.specs.base import Spec
from infra_inference.specs.gpus import GPUS, Cloud, GpuType, default_machine, gpu_of_machine, machines_for

SharingStrategy = Literal["none", "time-slicing", "mps", "mig"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

# Label every pool node carries, so pods and device plugins can select one pool.
POOL_LABEL = "infra-inference.dev/pool"
# The NVIDIA device plugin's resource for a whole (or time-sliced, or MPS-shared) GPU.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
_CLOUD_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def mig_resource(profile: str | None) -> str:
    """The device plugin's resource for one MIG profile under its mixed strategy: nvidia.com/mig-1g.10gb."""
    return f"nvidia.com/mig-{profile}"


# What one unit of each extended resource is worth in whole GPUs, for tenant quotas: a MIG
# instance is the share of a GPU it takes up (1g.10gb: seven per 80 GB card, 1/7).
GPU_EQUIVALENT: dict[str, float] = {
    GPU_RESOURCE: 1.0,
    **{mig_resource(p): 1.0 / n for p, n in sorted({(p, n) for i in GPUS.values() for p, n in i.mig_profiles.items()})},
}

# Stands in for a value another resource provides later (a pulumi.Output, an unknown Terraform value)
# while the rest of the args are planned; the real value is checked once it is known.
PENDING = "pending-output"
# The fields that may be such values: they name things in the cloud account and shape no object of ours.
DEFERRABLE = {"cluster": PENDING, "node_role_arn": PENDING, "subnet_ids": [PENDING],
              "node_service_account": "pending@pending.iam.gserviceaccount.com"}

# The NVIDIA device plugin accepts 2..48 time-slicing/MPS replicas per GPU; GKE
# caps max_shared_clients_per_gpu at 48 too.
MIN_SHARED_REPLICAS = 2
MAX_SHARED_REPLICAS = 48

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class SharingSpec(Spec):
    """How one physical GPU is split into schedulable slots."""

    strategy: SharingStrategy = Field("none", description="none (whole GPUs), time-slicing, mps or mig.")
    replicas_per_gpu: int | None = Field(
        None, description="Slots per GPU for time-slicing and mps (2..48).")
    mig_profile: str | None = Field(
        None, description="MIG instance profile for strategy mig, e.g. 1g.10gb on A100-80GB/H100-80GB.")

    def cross_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        shared = self.strategy in ("time-slicing", "mps")
        if shared:
            n = self.replicas_per_gpu
            if n is None:
                out.append(SpecProblem("replicas_per_gpu", f"required for strategy {self.strategy!r}; "
                                       f"set it between {MIN_SHARED_REPLICAS} and {MAX_SHARED_REPLICAS}"))
            elif not MIN_SHARED_REPLICAS <= n <= MAX_SHARED_REPLICAS:
                out.append(SpecProblem("replicas_per_gpu", f"{n} is outside {MIN_SHARED_REPLICAS}.."
                                       f"{MAX_SHARED_REPLICAS}, the range the NVIDIA device plugin accepts"))
        elif self.replicas_per_gpu is not None:
            out.append(SpecProblem("replicas_per_gpu", f"only applies to time-slicing and mps, not "
                                   f"{self.strategy!r}; remove it"))
        if self.strategy == "mig" and not self.mig_profile:
            out.append(SpecProblem("mig_profile", "required for strategy 'mig', e.g. '1g.10gb'"))
        if self.strategy != "mig" and self.mig_profile:
            out.append(SpecProblem("mig_profile", f"only applies to strategy 'mig', not {self.strategy!r}"))
        return out


class TaintSpec(Spec):
    """A Kubernetes node taint."""

    key: str = Field(description="Taint key.")
    value: str = Field("", description="Taint value.")
    effect: TaintEffect = Field("NoSchedule", description="NoSchedule, PreferNoSchedule or NoExecute.")

    @property
    def cloud_effect(self) -> str:
        """The effect as GKE node pools and EKS node groups spell it: NoSchedule -> NO_SCHEDULE."""
        return _CLOUD_EFFECT[self.effect]


class GpuPoolSpec(Spec):
    """Validated GpuPool arguments (see GpuPoolArgs for the user-facing docs)."""

    cloud: Cloud = Field(description="gke, eks or existing (nodes you already run).")
    cluster: str = Field(description="Cluster name the node pool joins.")
    location: str | None = Field(None, description="GKE region/zone or AWS region. Required for gke and eks.")
    zones: list[str] = Field(default_factory=list, description="Zones for the nodes, inside `location`.")
    gpu_type: GpuType = Field(description="Canonical GPU: t4, l4, a10g, a100-40gb, a100-80gb, h100-80gb.")
    gpus_per_node: int = Field(1, ge=1, le=16, description="GPUs on each node.")
    machine_type: str | None = Field(None, description="Machine/instance type; default per cloud and GPU.")
    min_nodes: int = Field(0, ge=0, description="Fewest nodes across all zones.")
    max_nodes: int = Field(1, ge=1, description="Most nodes across all zones.")
    spot: bool = Field(False, description="Spot/preemptible capacity.")
    sharing: SharingSpec = Field(default_factory=SharingSpec, description="GPU sharing: strategy and slots.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels.")
    taints: list[TaintSpec] | None = Field(
        None, description="Node taints; default the GPU taint nvidia.com/gpu=present:NoSchedule.")
    node_role_arn: str | None = Field(None, description="EKS only: IAM role ARN of the nodes.")
    subnet_ids: list[str] | None = Field(None, description="EKS only: subnets for the nodes.")
    image_streaming: bool = Field(False, description="GKE image streaming (lazy image pulls).")
    gpu_operator: bool = Field(
        False, description="eks/existing: NVIDIA's GPU operator runs on these nodes. Required for MIG (its "
                           "mig-manager partitions the GPUs, its device plugin serves them); for other strategies "
                           "its device plugin is kept off the pool's nodes, which get the pool's own.")
    node_service_account: str | None = Field(
        None, pattern=r"^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$",
        description="GKE only: the nodes' service account email (least privilege: logging, monitoring, image pull).")

    def cross_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        if self.min_nodes > self.max_nodes:
            out.append(SpecProblem("min_nodes", f"min_nodes {self.min_nodes} is above max_nodes "
                                   f"{self.max_nodes}; lower min_nodes or raise max_nodes"))
        out += self._cloud_checks()
        out += self._machine_checks()
        out += self._sharing_checks()
        out += self._operator_checks()
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                out.append(SpecProblem(f"labels.{key}", "not a valid Kubernetes label key/value"))
        return out

    def _cloud_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        if self.cloud in ("gke", "eks") and not self.location:
            out.append(SpecProblem("location", f"required for cloud {self.cloud!r} (a region such as "
                                   f"{'us-central1' if self.cloud == 'gke' else 'us-east-1'})"))
        if self.cloud != "eks":
            for name in ("node_role_arn", "subnet_ids"):
                if getattr(self, name) is not None:
                    out.append(SpecProblem(name, f"only applies to cloud 'eks', not {self.cloud!r}"))
        else:
            if not self.node_role_arn:
                out.append(SpecProblem("node_role_arn", "required for cloud 'eks': the IAM role ARN of the nodes"))
            if not self.subnet_ids:
                out.append(SpecProblem("subnet_ids", "required for cloud 'eks': at least one subnet id"))
        if self.node_service_account is not None and self.cloud != "gke":
            out.append(SpecProblem("node_service_account", f"only applies to cloud 'gke', not {self.cloud!r}"))
        if self.image_streaming and self.cloud != "gke":
            out.append(SpecProblem("image_streaming", "GKE image streaming only exists on cloud 'gke'"))
        if self.location:
            region = self.region
            for i, zone in enumerate(self.zones):
                if not _zone_in_region(zone, region, self.cloud):
                    out.append(SpecProblem(f"zones[{i}]", f"zone {zone!r} is not in {self.location!r}; "
                                           f"use zones of region {region!r}"))
        if len(set(self.zones)) != len(self.zones):
            out.append(SpecProblem("zones", "lists a zone more than once"))
        if self.cloud == "gke" and GPUS[self.gpu_type].gke_accelerator is None:
            out.append(SpecProblem("gpu_type", f"{self.gpu_type!r} is not offered on GKE; use 'l4' or 't4' "
                                   f"for a similar class of GPU"))
        return out

    def _machine_checks(self) -> list[SpecProblem]:
        if self.cloud == "existing":
            return []
        if not machines_for(self.gpu_type, self.cloud):
            return []  # the GPU is not on this cloud at all: reported on gpu_type
        if self.machine_type is None:
            if self.resolved_machine_type is None:
                offered = sorted(set(machines_for(self.gpu_type, self.cloud).values()))
                return [SpecProblem("gpus_per_node", f"no {self.cloud} machine carries {self.gpus_per_node} "
                                    f"x {self.gpu_type}; choose one of {offered}")]
            return []
        known = gpu_of_machine(self.machine_type, self.cloud)
        if known is None:
            return []  # a shape we don't list: trust the user, the cloud API will check it
        gpu_type, count = known
        if gpu_type != self.gpu_type:
            return [SpecProblem("machine_type", f"{self.machine_type} carries {gpu_type}, not {self.gpu_type}")]
        if count != self.gpus_per_node:
            return [SpecProblem("gpus_per_node", f"{self.machine_type} has {count} GPU(s), not "
                                f"{self.gpus_per_node}; set gpus_per_node: {count} or pick another machine")]
        return []

    def _operator_checks(self) -> list[SpecProblem]:
        if self.gpu_operator and self.cloud == "gke":
            return [SpecProblem("gpu_operator", "GKE installs and manages its own GPU software; remove it")]
        if self.sharing.strategy == "mig" and self.cloud != "gke" and not self.gpu_operator:
            return [SpecProblem("gpu_operator", f"MIG on {self.cloud!r} needs NVIDIA's mig-manager to partition "
                                f"the GPUs (it reads the nvidia.com/mig.config node label); it ships with the GPU "
                                f"operator: install it with mig.strategy=mixed, then set gpu_operator: true")]
        return []

    def _sharing_checks(self) -> list[SpecProblem]:
        if self.sharing.strategy != "mig" or not self.sharing.mig_profile:
            return []
        profiles = GPUS[self.gpu_type].mig_profiles
        if not profiles:
            return [SpecProblem("sharing.strategy", f"{self.gpu_type} does not support MIG; use "
                                f"time-slicing or mps, or an A100/H100 pool")]
        if self.sharing.mig_profile not in profiles:
            return [SpecProblem("sharing.mig_profile", f"{self.sharing.mig_profile!r} is not a MIG profile of "
                                f"{self.gpu_type}; valid: {', '.join(profiles)}")]
        return []

    # Derived values. Valid only on a spec that passed its checks.

    @property
    def region(self) -> str:
        """GKE: a zone location `us-central1-a` is in region `us-central1`; AWS locations are regions."""
        loc = self.location or ""
        if self.cloud == "gke" and re.fullmatch(r"[a-z]+-[a-z]+\d+-[a-z]", loc):
            return loc.rsplit("-", 1)[0]
        return loc

    @property
    def resolved_machine_type(self) -> str | None:
        return self.machine_type or default_machine(self.gpu_type, self.cloud, self.gpus_per_node)

    @property
    def slots_per_gpu(self) -> int:
        """Schedulable slots one GPU gives: 4 for time-slicing x4, 7 for MIG 1g.10gb, else 1."""
        s = self.sharing
        if s.strategy in ("time-slicing", "mps"):
            return s.replicas_per_gpu or 1
        if s.strategy == "mig" and s.mig_profile:
            return GPUS[self.gpu_type].mig_profiles.get(s.mig_profile, 1)
        return 1

    @property
    def slots_per_node(self) -> int:
        return self.gpus_per_node * self.slots_per_gpu

    @property
    def max_slots(self) -> int:
        return self.slots_per_node * self.max_nodes

    @property
    def gpu_resource(self) -> str:
        """Extended resource a pod requests. MIG on eks/existing uses the device plugin's
        mixed strategy, which names each profile (`nvidia.com/mig-1g.10gb`); GKE always
        exposes partitions as `nvidia.com/gpu`."""
        if self.sharing.strategy == "mig" and self.cloud != "gke":
            return mig_resource(self.sharing.mig_profile)
        return GPU_RESOURCE

    @property
    def effective_taints(self) -> list[TaintSpec]:
        return list(self.taints) if self.taints is not None else [TaintSpec(**GPU_TAINT)]


def _zone_in_region(zone: str, region: str, cloud: str) -> bool:
    # GKE zones are `<region>-<letter>`; AWS zones are `<region><letter>`.
    if cloud == "gke":
        return re.fullmatch(re.escape(region) + r"-[a-z]", zone) is not None
    if cloud == "eks":
        return re.fullmatch(re.escape(region) + r"[a-z]", zone) is not None
    return zone.startswith(region)
