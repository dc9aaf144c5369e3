"""GKE node pool for a GpuPool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra_inference.render.pool import node_labels
from infra_inference.specs.gpus import GPUS
from infra_inference.specs.pool import GpuPoolSpec

_SHARING = {"time-slicing": "TIME_SHARING", "mps": "MPS"}
# GKE's own default node scopes (logging, monitoring, pulling images), not cloud-platform: with
# cloud-platform, anything that reaches the node's credentials acts with the full power of its
# service account. Workloads get their cloud access through Workload Identity instead.
NODE_SCOPES = [
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/trace.append",
]


def accelerator(spec: GpuPoolSpec) -> gcp.container.NodePoolNodeConfigGuestAcceleratorArgs:
    s = spec.sharing
    sharing = None
    if s.strategy in _SHARING:
        sharing = gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
            gpu_sharing_strategy=_SHARING[s.strategy], max_shared_clients_per_gpu=s.replicas_per_gpu or 1)
    return gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
        type=GPUS[spec.gpu_type].gke_accelerator or "",
        count=spec.gpus_per_node,
        # GKE installs the driver itself: no driver DaemonSet to maintain.
        gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
            gpu_driver_version="LATEST"),
        gpu_sharing_config=sharing,
        gpu_partition_size=s.mig_profile if s.strategy == "mig" else None,
    )


def node_pool(name: str, spec: GpuPoolSpec, arg: Callable[[str], Any], opts: pulumi.ResourceOptions) -> gcp.container.NodePool:
    return gcp.container.NodePool(
        f"{name}-nodepool",
        name=name,
        cluster=arg("cluster"),
        location=spec.location,
        node_locations=spec.zones or None,
        # Our min/max are totals across zones, as on EKS; GKE's plain min/max would be per zone.
        autoscaling=gcp.container.NodePoolAutoscalingArgs(
            total_min_node_count=spec.min_nodes, total_max_node_count=spec.max_nodes, location_policy="ANY"),
        management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
        node_config=gcp.container.NodePoolNodeConfigArgs(
            machine_type=spec.resolved_machine_type,
            spot=spec.spot,
            labels=node_labels(name, spec),
            taints=[gcp.container.NodePoolNodeConfigTaintArgs(key=t.key, value=t.value, effect=t.cloud_effect)
                    for t in spec.effective_taints],
            guest_accelerators=[accelerator(spec)],
            gcfs_config=gcp.container.NodePoolNodeConfigGcfsConfigArgs(enabled=True) if spec.image_streaming else None,
            oauth_scopes=NODE_SCOPES,
            service_account=arg("node_service_account"),
            # Pods see the GKE metadata server, which serves only their own Workload Identity:
            # never the node's token, nor the instance attributes (kubelet credentials).
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
        ),
        opts=opts,
    )
