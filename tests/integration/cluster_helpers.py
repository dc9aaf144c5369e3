"""Helpers for the control-plane tests (imported by conftest and the tests)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from kubernetes import client

from infra_inference.plan.components import plan_pool
from infra_inference.render.nvidia import GPU_TOLERATION
from infra_inference.render.pool import node_labels
from tests.support.controlplane import ControlPlane, ControlPlaneError, GpuNode

POOL_LABEL = "infra-inference.test/pool"
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


SERVICE_LABEL = "infra-inference.dev/service"
REPLICA = "app.kubernetes.io/component=replica"
MODEL = {"uri": "https://models.example.com/echo.safetensors", "format": "safetensors"}
RUNTIME = {"max_concurrency": 4, "max_queue": 16, "timeout_s": 30}
SHARED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


class Stack:
    """Applies rendered objects and kwok pool nodes; removes them afterwards."""

    def __init__(self, cp: ControlPlane, api: client.ApiClient) -> None:
        self.cp, self.api = cp, api
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.sid = uuid.uuid4().hex[:6]
        self.applied: list[Mapping[str, Any]] = []
        self.nodes: list[str] = []

    def add_pool_nodes(self, doc: Mapping[str, Any], pool: str, count: int) -> list[str]:
        """``count`` nodes shaped like the document's pool ``pool``."""
        spec = plan_pool(pool, doc["pools"][pool]).spec
        zones = spec.zones or ["zone-a", "zone-b"]
        nodes = [
            GpuNode(name=f"{pool}-{i}", zone=zones[i % len(zones)], gpu_slots=spec.slots_per_node,
                    gpu_resource=spec.gpu_resource, labels=node_labels(pool, spec),
                    taints=[{"key": t.key, "value": t.value, "effect": t.effect} for t in spec.effective_taints])
            for i in range(count)
        ]  # fmt: skip
        names = self.cp.add_nodes(nodes)
        self.nodes += names
        return names

    def apply(self, objects: Sequence[Mapping[str, Any]]) -> None:
        # Namespaces before what lives in them (the Pulumi engine orders by
        # dependency; a plain list does not).
        for obj in sorted(objects, key=lambda o: o["kind"] != "Namespace"):
            try:
                self.cp.apply(obj)
            except ControlPlaneError as e:
                pytest.fail(f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']} rejected: {e}")
            self.applied.append(obj)

    def autoscaled_chat(self, policy: Mapping[str, Any]) -> str:
        """Service `chat` at a quarter GPU on one time-sliced node, autoscaled by `policy`; its namespace."""
        from infra_inference.render.stack import render_stack

        ns, pool = f"inf-{self.sid}", f"l4-{self.sid}"
        doc = {
            "platform": {"namespace": ns},
            "pools": {pool: pool_args(gpus_per_node=1, sharing={"strategy": "time-slicing", "replicas_per_gpu": 4})},
            "services": {"chat": service_args(pool, ns, gpu_fraction=0.25, autoscale=dict(policy))},
        }
        self.add_pool_nodes(doc, pool, 1)
        self.apply(render_stack(doc))
        return ns

    def pods(self, namespace: str, service: str) -> list[client.V1Pod]:
        """The replica pods of ``service`` (not its gateway's)."""
        return self.core.list_namespaced_pod(namespace, label_selector=f"{SERVICE_LABEL}={service},{REPLICA}").items

    def describe(self, namespace: str) -> Callable[[], str]:
        """For wait_until: every pod of the namespace, and its ReplicaSets' failures."""
        def text() -> str:
            failures = [f"  {rs.metadata.name}: {c.message}" for rs in self.apps.list_namespaced_replica_set(namespace).items
                        for c in rs.status.conditions or [] if c.type == "ReplicaFailure"]  # fmt: skip
            return describe_pods(self.core.list_namespaced_pod(namespace).items) + "\n" + "\n".join(failures)
        return text

    def teardown(self) -> None:
        namespaces = {o["metadata"]["name"] for o in self.applied if o["kind"] == "Namespace"} - SHARED_NAMESPACES
        for obj in self.applied:
            if obj["metadata"].get("namespace") in SHARED_NAMESPACES:
                self.cp.delete(obj)
        for ns in namespaces:
            self.core.delete_namespace(ns)
        # The next test may declare the same namespace; it must be gone, not Terminating.
        for ns in namespaces:
            wait_until(lambda ns=ns: not self.core.list_namespace(field_selector=f"metadata.name={ns}").items, f"namespace {ns} deleted")
        self.cp.delete_nodes(self.nodes)
        # PriorityClasses stay: every stack renders the same four, with the same values.


def pool_args(*, gpus_per_node: int = 1, sharing: dict[str, Any] | None = None, min_nodes: int = 1, max_nodes: int = 2) -> dict[str, Any]:
    return {"cloud": "existing", "cluster": "test", "gpu_type": "l4", "gpus_per_node": gpus_per_node,
            "min_nodes": min_nodes, "max_nodes": max_nodes, "sharing": sharing or {"strategy": "none"}}  # fmt: skip


def service_args(pool: str, namespace: str, **args: Any) -> dict[str, Any]:
    return {"pool": pool, "namespace": namespace, "model": MODEL, "runtime": RUNTIME, **args}


def requests_of(pod: client.V1Pod) -> dict[str, str]:
    return dict(pod.spec.containers[0].resources.requests or {})


def scale(apps: client.AppsV1Api, name: str, namespace: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})


def token_client(cp: ControlPlane, core: client.CoreV1Api, namespace: str, sa: str) -> client.ApiClient:
    token = core.create_namespaced_service_account_token(sa, namespace, {"spec": {"expirationSeconds": 600}}).status.token
    cfg = client.Configuration()
    cfg.host = cp.server
    cfg.ssl_ca_cert = str(cp.pki / "ca.crt")
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)
