"""A local Kubernetes control plane (real apiserver, scheduler, controllers; kwok nodes): test tooling.

For tests and for trying rendered objects against real admission, quota,
RBAC and scheduling without a cloud. ``python -m tests.support.controlplane``
(from the repository root) starts one and prints its kubeconfig path until
interrupted.

- binaries.py: finding (and building) etcd, kube-apiserver, ... and kwok
- pki.py: the certificates and the admin kubeconfig
- processes.py: spawning, health waits, stopping in order
- nodes.py: kwok nodes shaped like a GpuPool's
- cluster.py: ``ControlPlane``, which puts them together
"""

from tests.support.controlplane.binaries import BinariesUnavailable, ControlPlaneError, find_binaries
from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.nodes import GpuNode, cpu_nodes, gpu_pool_nodes

__all__ = [
    "BinariesUnavailable",
    "ControlPlane",
    "ControlPlaneError",
    "GpuNode",
    "cpu_nodes",
    "find_binaries",
    "gpu_pool_nodes",
]
