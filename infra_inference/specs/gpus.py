"""What each supported GPU is on each cloud: accelerator names, machine shapes, MIG profiles.

Pure data. The tables list the machine shapes that carry each GPU, with the
number of GPUs each shape has, so a pool can default its machine type and
reject a `gpus_per_node` the shape does not offer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GpuType = Literal["t4", "l4", "a10g", "a100-40gb", "a100-80gb", "h100-80gb"]
Cloud = Literal["gke", "eks", "existing"]

GIB = 1024**3


@dataclass(frozen=True)
class GpuInfo:
    """One canonical GPU type and how each cloud names and packages it."""

    memory_bytes: int
    # GKE accelerator type; None where GKE does not offer the GPU.
    gke_accelerator: str | None
    # machine type -> GPUs it carries. The first entry for each count is the default.
    gke_machines: dict[str, int] = field(default_factory=dict)
    eks_instances: dict[str, int] = field(default_factory=dict)
    # MIG profile -> instances one GPU splits into. Empty: no MIG on this GPU.
    mig_profiles: dict[str, int] = field(default_factory=dict)


# MIG geometry from NVIDIA's MIG user guide: a "1g" slice is 1/7 of the SMs, so
# an 80 GB card gives seven 1g.10gb instances, three 2g.20gb, two 3g.40gb.
_MIG_80GB = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1}

GPUS: dict[str, GpuInfo] = {
    "t4": GpuInfo(
        memory_bytes=16 * GIB,
        gke_accelerator="nvidia-tesla-t4",
        gke_machines={"n1-standard-8": 1, "n1-standard-16": 2, "n1-standard-32": 4, "n1-standard-4": 1},
        eks_instances={"g4dn.xlarge": 1, "g4dn.12xlarge": 4, "g4dn.metal": 8, "g4dn.2xlarge": 1,
                       "g4dn.4xlarge": 1, "g4dn.8xlarge": 1, "g4dn.16xlarge": 1},
    ),
    "l4": GpuInfo(
        memory_bytes=24 * GIB,
        gke_accelerator="nvidia-l4",
        gke_machines={"g2-standard-8": 1, "g2-standard-24": 2, "g2-standard-48": 4, "g2-standard-96": 8,
                      "g2-standard-4": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-32": 1},
        eks_instances={"g6.xlarge": 1, "g6.12xlarge": 4, "g6.48xlarge": 8, "g6.2xlarge": 1,
                       "g6.4xlarge": 1, "g6.8xlarge": 1, "g6.16xlarge": 1, "g6.24xlarge": 4},
    ),
    "a10g": GpuInfo(
        memory_bytes=24 * GIB,
        gke_accelerator=None,
        eks_instances={"g5.xlarge": 1, "g5.12xlarge": 4, "g5.48xlarge": 8, "g5.2xlarge": 1,
                       "g5.4xlarge": 1, "g5.8xlarge": 1, "g5.16xlarge": 1, "g5.24xlarge": 4},
    ),
    "a100-40gb": GpuInfo(
        memory_bytes=40 * GIB,
        gke_accelerator="nvidia-tesla-a100",
        gke_machines={"a2-highgpu-1g": 1, "a2-highgpu-2g": 2, "a2-highgpu-4g": 4, "a2-highgpu-8g": 8,
                      "a2-megagpu-16g": 16},
        eks_instances={"p4d.24xlarge": 8},
        mig_profiles={"1g.5gb": 7, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1},
    ),
    "a100-80gb": GpuInfo(
        memory_bytes=80 * GIB,
        gke_accelerator="nvidia-a100-80gb",
        gke_machines={"a2-ultragpu-1g": 1, "a2-ultragpu-2g": 2, "a2-ultragpu-4g": 4, "a2-ultragpu-8g": 8},
        eks_instances={"p4de.24xlarge": 8},
        mig_profiles=_MIG_80GB,
    ),
    "h100-80gb": GpuInfo(
        memory_bytes=80 * GIB,
        gke_accelerator="nvidia-h100-80gb",
        gke_machines={"a3-highgpu-1g": 1, "a3-highgpu-2g": 2, "a3-highgpu-4g": 4, "a3-highgpu-8g": 8},
        eks_instances={"p5.48xlarge": 8},
        mig_profiles=_MIG_80GB,
    ),
}

# The EKS-optimized accelerated AMI: NVIDIA driver and container toolkit
# preinstalled. AL2023 is the current one; ARM GPUs are out of scope.
EKS_GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"


def machines_for(gpu_type: str, cloud: str) -> dict[str, int]:
    """Machine shapes carrying this GPU on this cloud (empty for "existing")."""
    info = GPUS[gpu_type]
    return {"gke": info.gke_machines, "eks": info.eks_instances}.get(cloud, {})


def default_machine(gpu_type: str, cloud: str, gpus_per_node: int) -> str | None:
    """The first listed shape with exactly `gpus_per_node` GPUs, or None if there is none."""
    for machine, count in machines_for(gpu_type, cloud).items():
        if count == gpus_per_node:
            return machine
    return None


def gpu_of_machine(machine_type: str, cloud: str) -> tuple[str, int] | None:
    """Which GPU (and how many) a known machine shape carries; None for shapes we don't list."""
    for gpu_type in GPUS:
        count = machines_for(gpu_type, cloud).get(machine_type)
        if count is not None:
            return gpu_type, count
    return None
