"""Fixtures for tests against the local Kubernetes control plane.

``controlplane`` (session): etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok from ``tools/controlplane`` (built on first use when
Go is installed; ``make test`` builds it up front), with a default cluster:
three kwok GPU nodes ``gpu-0..2`` (4 ``nvidia.com/gpu`` each, GPU taint,
zones ``zone-a``/``zone-b``) and two untainted CPU nodes ``cpu-0..1``. When the
binaries are unavailable, every test using it is skipped with the reason.

Tests that need to know the exact capacity they compete for take a private
pool from ``gpu_pool`` (their own nodes, label ``infra-inference.test/pool``)
and a private ``namespace``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import kubernetes
import pytest
from tests.integration.cluster_helpers import POOL_LABEL, Stack, wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.controlplane import (
    BinariesUnavailable,
    ControlPlane,
    cpu_nodes,
    find_binaries,
    gpu_pool_nodes,
)


@pytest.fixture(scope="session")
def controlplane() -> Iterator[ControlPlane]:
    try:
        bin_dir = find_binaries(build=os.environ.get("INFRA_INFERENCE_CONTROLPLANE_BUILD", "1") != "0")
    except BinariesUnavailable as e:
        pytest.skip(f"Kubernetes control plane unavailable: {e}")
    cp = ControlPlane(bin_dir)
    try:
        cp.start()
    except BinariesUnavailable as e:  # e.g. no openssl for the certificates
        pytest.skip(f"Kubernetes control plane unavailable: {e}")
    try:
        cp.add_nodes([*gpu_pool_nodes("gpu", nodes=3, gpu_slots=4, labels={POOL_LABEL: "default"}), *cpu_nodes("cpu")])
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def api(controlplane: ControlPlane) -> Iterator[client.ApiClient]:
    """A kubernetes ApiClient authenticated as cluster admin."""
    api_client = kubernetes.config.new_client_from_config(config_file=str(controlplane.kubeconfig))
    with api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (kwok finalizes its pods)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    wait_until(lambda: _has_default_sa(core, name), f"default ServiceAccount in {name}")
    yield name
    core.delete_namespace(name)


def _has_default_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespaced_service_account("default", ns)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


@pytest.fixture
def gpu_pool(controlplane: ControlPlane) -> Iterator[Callable[..., str]]:
    """Factory: ``gpu_pool(nodes=2, gpu_slots=4, ...) -> pool label value``.

    The nodes carry ``infra-inference.test/pool=<value>`` and the GPU taint,
    and are deleted after the test.
    """
    created: list[str] = []

    def make(*, nodes: int = 1, gpu_slots: int = 4, gpu_resource: str = "nvidia.com/gpu", labels: dict[str, str] | None = None) -> str:
        pool = f"p-{uuid.uuid4().hex[:6]}"
        specs = gpu_pool_nodes(pool, nodes=nodes, gpu_slots=gpu_slots, gpu_resource=gpu_resource,
                               labels={POOL_LABEL: pool, **(labels or {})})  # fmt: skip
        created.extend(controlplane.add_nodes(specs))
        return pool

    yield make
    controlplane.delete_nodes(created)


@pytest.fixture
def stack(controlplane: ControlPlane, api: client.ApiClient) -> Iterator[Stack]:
    s = Stack(controlplane, api)
    yield s
    s.teardown()
