"""A local Kubernetes control plane (real apiserver, scheduler, controllers; kwok nodes).

For tests and for trying rendered objects against real admission, quota,
RBAC and scheduling without a cloud. ``python -m infra_inference.devcluster``
starts one and prints its kubeconfig path until interrupted.
"""

from infra_inference.devcluster._controlplane import (
    BinariesUnavailable,
    ControlPlane,
    ControlPlaneError,
    GpuNode,
    cpu_nodes,
    find_binaries,
    gpu_pool_nodes,
)

__all__ = [
    "BinariesUnavailable",
    "ControlPlane",
    "ControlPlaneError",
    "GpuNode",
    "cpu_nodes",
    "find_binaries",
    "gpu_pool_nodes",
]
