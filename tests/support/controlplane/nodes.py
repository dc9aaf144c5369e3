"""Simulated nodes, shaped like a GpuPool's: labels, zone, GPU taint and the pool's GPU resource.

kwok manages every node carrying its annotation: it reports the node Ready and
the pods bound to it Running, with no kubelet behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra_inference.specs.pool import GPU_RESOURCE, GPU_TAINT

ZONE_LABEL = "topology.kubernetes.io/zone"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


@dataclass(frozen=True)
class GpuNode:
    """A simulated GPU node, shaped like one of a GpuPool's nodes.

    ``gpu_slots`` is the allocatable count of ``gpu_resource``: whole GPUs, or
    the shared slots a time-slicing/MPS device plugin advertises (4 GPUs with
    4 replicas each advertise 16).
    """

    name: str
    zone: str
    gpu_slots: int = 4
    gpu_resource: str = GPU_RESOURCE
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = (GPU_TAINT,)
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110

    def manifest(self) -> dict[str, Any]:
        """The v1 Node object (kwok manages it through its annotation)."""
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        if self.gpu_slots:
            resources[self.gpu_resource] = str(self.gpu_slots)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    ZONE_LABEL: self.zone,
                    **self.labels,
                },
            },
            "spec": {"taints": [dict(t) for t in self.taints]},
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }


def gpu_pool_nodes(
    pool: str,
    *,
    zones: Sequence[str] = ("zone-a", "zone-b"),
    nodes: int = 3,
    gpu_slots: int = 4,
    gpu_resource: str = GPU_RESOURCE,
    labels: Mapping[str, str] | None = None,
) -> list[GpuNode]:
    """``nodes`` GpuNodes named ``{pool}-{i}``, spread round-robin over ``zones``."""
    return [
        GpuNode(
            name=f"{pool}-{i}",
            zone=zones[i % len(zones)],
            gpu_slots=gpu_slots,
            gpu_resource=gpu_resource,
            labels=dict(labels or {}),
        )
        for i in range(nodes)
    ]


def cpu_nodes(pool: str = "cpu", *, zones: Sequence[str] = ("zone-a", "zone-b"), nodes: int = 2) -> list[GpuNode]:
    """Untainted nodes without GPUs (a cluster's system pool: gateways, autoscalers)."""
    return [GpuNode(name=f"{pool}-{i}", zone=zones[i % len(zones)], gpu_slots=0, taints=()) for i in range(nodes)]
