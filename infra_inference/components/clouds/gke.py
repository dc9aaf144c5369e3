"""GKE node pool for a GpuPool: the settings of render/clouds.py as typed pulumi_gcp args."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra_inference.render.clouds import gke_node_pool
from infra_inference.specs.pool import GpuPoolSpec


def node_pool(name: str, spec: GpuPoolSpec, arg: Callable[[str], Any],
              opts: pulumi.ResourceOptions) -> gcp.container.NodePool:
    s = gke_node_pool(name, spec)
    cfg = s["node_config"]
    [acc] = cfg["guest_accelerator"]
    sharing = acc["gpu_sharing_config"]
    return gcp.container.NodePool(
        f"{name}-nodepool",
        name=s["name"],
        cluster=arg("cluster"),
        location=s["location"],
        node_locations=s["node_locations"],
        autoscaling=gcp.container.NodePoolAutoscalingArgs(**s["autoscaling"]),
        management=gcp.container.NodePoolManagementArgs(**s["management"]),
        node_config=gcp.container.NodePoolNodeConfigArgs(
            machine_type=cfg["machine_type"],
            spot=cfg["spot"],
            labels=cfg["labels"],
            taints=[gcp.container.NodePoolNodeConfigTaintArgs(**t) for t in cfg["taint"]],
            guest_accelerators=[gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                type=acc["type"],
                count=acc["count"],
                gpu_driver_installation_config=gcp.container.
                NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                    **acc["gpu_driver_installation_config"]),
                gpu_sharing_config=sharing and gcp.container.
                NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(**sharing),
                gpu_partition_size=acc["gpu_partition_size"],
            )],
            gcfs_config=cfg["gcfs_config"] and gcp.container.NodePoolNodeConfigGcfsConfigArgs(**cfg["gcfs_config"]),
            oauth_scopes=cfg["oauth_scopes"],
            service_account=arg("node_service_account"),
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                **cfg["workload_metadata_config"]),
        ),
        opts=opts,
    )
