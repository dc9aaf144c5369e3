"""Helpers for the control-plane tests (imported by conftest and the tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

POOL_LABEL = "infra-inference.test/pool"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
WAIT_S = 90.0  # a guard against hanging, never an assertion about speed


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S,
               describe: Callable[[], str] | None = None) -> Any:  # fmt: skip
    """Poll until ``predicate()`` is truthy and return it; fail naming ``what`` (and ``describe()``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            state = f"\n{describe()}" if describe else ""
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}{state}")
        time.sleep(0.25)


def gpu_pod(name: str, *, pool: str, gpus: int = 1, resource: str = "nvidia.com/gpu", priority_class: str | None = None,
            labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A bare pod asking for ``gpus`` of ``resource`` on the nodes of ``pool``."""
    spec: dict[str, Any] = {
        "nodeSelector": {POOL_LABEL: pool},
        "tolerations": [GPU_TOLERATION],
        "terminationGracePeriodSeconds": 0,
        "containers": [{
            "name": "main",
            "image": "registry.k8s.io/pause:3.10",
            "resources": {"limits": {resource: str(gpus)}},
        }],
    }  # fmt: skip
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def running(pod: client.V1Pod) -> bool:
    return bool(pod.spec.node_name) and pod.status.phase == "Running"


def unschedulable(pod: client.V1Pod) -> str | None:
    """The scheduler's message when it has tried and found no node, else None."""
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            return cond.message or "Unschedulable"
    return None


def describe_pods(pods: list[client.V1Pod]) -> str:
    """One line per pod: name, node, phase, priority, scheduler message."""
    return "\n".join(
        f"  {p.metadata.name}: node={p.spec.node_name} phase={p.status.phase} priority={p.spec.priority}"
        f"{' deleting' if p.metadata.deletion_timestamp else ''} {unschedulable(p) or ''}"
        for p in pods
    )
