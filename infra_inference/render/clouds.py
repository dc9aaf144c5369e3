"""What a GpuPool asks of its cloud: the node pool (GKE) or node group (EKS) settings, as plain data.

Field names are the cloud resources' own (`google_container_node_pool`,
`aws_eks_node_group`), in the singular block names Terraform uses; the Pulumi
components map them onto their typed args and the Terraform data source
`infra_inference_gpu_pool_settings` returns them as they are, so both delivery
paths configure the same nodes.
"""

from __future__ import annotations

from infra_inference.render.common import Obj
from infra_inference.render.pool import node_labels
from infra_inference.specs.gpus import EKS_GPU_AMI_TYPE, GPUS
from infra_inference.specs.pool import GpuPoolSpec

_GKE_SHARING = {"time-slicing": "TIME_SHARING", "mps": "MPS"}
# GKE's own default node scopes (logging, monitoring, pulling images), not cloud-platform: with
# cloud-platform, anything that reaches the node's credentials acts with the full power of its
# service account. Workloads get their cloud access through Workload Identity instead.
GKE_NODE_SCOPES = [
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/trace.append",
]
# IMDSv2 only, one hop: a pod (one hop further than the node, through its network namespace)
# cannot reach the instance metadata service, so it cannot take the node role's credentials.
EKS_METADATA_OPTIONS = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}


def cloud_taints(spec: GpuPoolSpec) -> list[Obj]:
    return [{"key": t.key, "value": t.value, "effect": t.cloud_effect} for t in spec.effective_taints]


def gke_accelerator(spec: GpuPoolSpec) -> Obj:
    """One `guest_accelerator`: GPU type and count, time-sharing/MPS clients or the MIG partition size."""
    s = spec.sharing
    sharing = None
    if s.strategy in _GKE_SHARING:
        sharing = {"gpu_sharing_strategy": _GKE_SHARING[s.strategy],
                   "max_shared_clients_per_gpu": s.replicas_per_gpu or 1}
    return {
        "type": GPUS[spec.gpu_type].gke_accelerator or "",
        "count": spec.gpus_per_node,
        # GKE installs the driver itself: no driver DaemonSet to maintain.
        "gpu_driver_installation_config": {"gpu_driver_version": "LATEST"},
        "gpu_sharing_config": sharing,
        "gpu_partition_size": s.mig_profile if s.strategy == "mig" else None,
    }


def gke_node_pool(name: str, spec: GpuPoolSpec) -> Obj:
    """Arguments of a GKE node pool for this GpuPool (all but `cluster` and the node service account,
    which the user's program knows)."""
    return {
        "name": name,
        "location": spec.location,
        "node_locations": spec.zones or None,
        # Our min/max are totals across zones, as on EKS; GKE's plain min/max would be per zone.
        "autoscaling": {"total_min_node_count": spec.min_nodes, "total_max_node_count": spec.max_nodes,
                        "location_policy": "ANY"},
        "management": {"auto_repair": True, "auto_upgrade": True},
        "node_config": {
            "machine_type": spec.resolved_machine_type,
            "spot": spec.spot,
            "labels": node_labels(name, spec),
            "taint": cloud_taints(spec),
            "guest_accelerator": [gke_accelerator(spec)],
            "gcfs_config": {"enabled": True} if spec.image_streaming else None,
            "oauth_scopes": list(GKE_NODE_SCOPES),
            # Pods see the GKE metadata server, which serves only their own Workload Identity:
            # never the node's token, nor the instance attributes (kubelet credentials).
            "workload_metadata_config": {"mode": "GKE_METADATA"},
        },
    }


def eks_node_group(name: str, spec: GpuPoolSpec) -> Obj:
    """Arguments of an EKS managed node group (all but cluster, role and subnets, which come from the user),
    and the metadata options of the launch template it runs with."""
    return {
        "node_group_name": name,
        "instance_types": [spec.resolved_machine_type],
        "ami_type": EKS_GPU_AMI_TYPE,
        "capacity_type": "SPOT" if spec.spot else "ON_DEMAND",
        "scaling_config": {"min_size": spec.min_nodes, "max_size": spec.max_nodes, "desired_size": spec.min_nodes},
        "labels": node_labels(name, spec),
        "taint": cloud_taints(spec),
        "metadata_options": dict(EKS_METADATA_OPTIONS),
    }
