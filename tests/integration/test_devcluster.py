"""The control-plane helpers (tests/support/controlplane) that need no running control plane."""

from __future__ import annotations

import pytest

from tests.support.controlplane import BinariesUnavailable, cpu_nodes, find_binaries, gpu_pool_nodes


def test_gpu_pool_nodes_spread_round_robin_over_zones_with_taint_and_slots() -> None:
    nodes = [n.manifest() for n in gpu_pool_nodes("l4", nodes=3, gpu_slots=16, zones=["a", "b"], labels={"pool": "l4"})]
    assert [n["metadata"]["name"] for n in nodes] == ["l4-0", "l4-1", "l4-2"]
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == ["a", "b", "a"]
    assert all(n["metadata"]["labels"]["pool"] == "l4" for n in nodes)
    assert all(n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in nodes)
    assert nodes[0]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert nodes[0]["status"]["capacity"]["nvidia.com/gpu"] == nodes[0]["status"]["allocatable"]["nvidia.com/gpu"] == "16"


def test_shared_slot_resource_replaces_nvidia_gpu() -> None:
    (node,) = gpu_pool_nodes("mig", nodes=1, gpu_slots=7, gpu_resource="nvidia.com/mig-1g.10gb")
    allocatable = node.manifest()["status"]["allocatable"]
    assert allocatable["nvidia.com/mig-1g.10gb"] == "7" and "nvidia.com/gpu" not in allocatable


def test_cpu_nodes_have_no_gpu_and_no_taint() -> None:
    node = cpu_nodes(nodes=1)[0].manifest()
    assert node["spec"]["taints"] == []
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]


def test_binary_override_must_hold_every_binary(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    monkeypatch.setenv("INFRA_INFERENCE_CONTROLPLANE_BIN", str(tmp_path))
    with pytest.raises(BinariesUnavailable, match="lacks kube-apiserver, kube-controller-manager, kube-scheduler, kwok"):
        find_binaries()
